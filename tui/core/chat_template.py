"""Rendering a model's own chat template (``tokenizer.chat_template`` from the GGUF).

To the same text as llama-server (``--jinja``) renders, since that is the
prompt the model's makers and llama.cpp users expect (what llama.cpp adds is
in :mod:`tui.core.template_compat`). In Jinja's sandbox, with bounds on time
and size: a template is data from a downloaded file, and one that loops or
builds huge strings is stopped with a :class:`TemplateError`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tui.core.template_compat import (
    TemplateCaps,
    finish,
    llama_messages,
    llama_variables,
    probe_caps,
)

if TYPE_CHECKING:
    from tui.core.prompt import Turn


class TemplateError(Exception):
    """The model's chat template could not be rendered."""


def _raise(message: str) -> None:
    raise TemplateError(f"the model's chat template refused this conversation: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt)[:100])


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Transformers' (and llama-cpp-python's) ``tojson``: no HTML escaping, UTF-8 kept."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@lru_cache(maxsize=1)
def _environment() -> Any:
    """Jinja's sandbox, made on first use: the UI process never renders a template
    (the engine does), so it does not pay for importing Jinja at start-up.

    The environment of llama-cpp-python's Jinja2ChatFormatter (itself aligned
    with Transformers), with the few rules where llama.cpp's own Jinja differs
    and real templates rely on them: ``none`` and undefined values join text
    as "" (``"a" + none``, ``"a" ~ none``, ``{{ none }}``).
    """
    import jinja2
    import jinja2.ext
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class LlamaJoin(CodeGenerator):
        """``a ~ b`` joins None and undefined values as "", as llama.cpp does."""

        def visit_Concat(self, node: Any, frame: Any) -> None:  # noqa: N802 (Jinja's name)
            self.write("environment.llama_join((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class IgnoreGenerationTags(jinja2.ext.Extension):
        """Pass-through for Hugging Face's ``{% generation %}`` tag, as Transformers does."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    from jinja2.exceptions import SecurityError

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        """No operator may build a huge string or number (``"x" * 10**10``, ``9**9**9``).

        And ``"text" + none_or_undefined`` is ``"text"``, as in llama.cpp's Jinja
        (Firefunction's template adds the undefined ``functions``).
        """

        intercepted_binops = frozenset({"*", "**", "+"})
        code_generator_class = LlamaJoin

        @staticmethod
        def llama_join(values: Sequence[Any]) -> str:
            return "".join("" if _is_nothing(v) else str(v) for v in values)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "+" and _text_and_nothing(left, right):
                return ("" if _is_nothing(left) else left) + ("" if _is_nothing(right) else right)
            if operator == "**" and (abs(_as_number(right)) > 64 or abs(_as_number(left)) > 2**64):
                raise SecurityError("the power is too large")
            if operator == "*":
                sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
                counts = [v for v in (left, right) if isinstance(v, int)]
                if sizes and counts and sizes[0] * max(counts[0], 0) > _BIG:
                    raise SecurityError("the repeated text is too long")
            return super().call_binop(context, operator, left, right)

    env = BoundedSandbox(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        extensions=[IgnoreGenerationTags, jinja2.ext.loopcontrols],
        finalize=lambda value: "" if value is None else value,
    )
    env.filters["tojson"] = _tojson
    # llama.cpp's builtins; each render passes its own strftime_now (its date can be set)
    env.globals.update(raise_exception=_raise, strftime_now=_strftime_now)
    return env


def _is_nothing(value: Any) -> bool:
    import jinja2

    return value is None or isinstance(value, jinja2.Undefined)


def _text_and_nothing(left: Any, right: Any) -> bool:
    """A string added to None or an undefined value (llama.cpp treats those as "")."""
    return (isinstance(left, str) and _is_nothing(right)) or (
        isinstance(right, str) and _is_nothing(left)
    )


def _as_number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    """Compiling a template costs more than rendering it; a build renders it often."""
    return _environment().from_string(template)


RENDER_SECONDS = 5.0  # a chat template renders in milliseconds; an endless loop is stopped
RENDER_CHARS = 4 * 1024 * 1024  # plus this much beyond the messages themselves
_BIG = 1024 * 1024  # the longest string or list one template operator may build


class _Overrun(BaseException):
    """A template ran past :data:`RENDER_SECONDS` (raised from SIGALRM).

    Not an ``Exception``: a capability probe, which ignores a template's
    errors, must not swallow it.
    """


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (main thread only, where signals land).

    The local engine renders templates on its process's main thread; elsewhere
    (a worker thread) only the size bounds apply.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def overrun(_signum: int, _frame: Any) -> None:
        raise _Overrun

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def render_chat(
    template: str,
    turns: Sequence[Turn],
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    *,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
    preserve_reasoning: bool = True,
    now: datetime | None = None,
) -> str:
    """Render ``turns`` with a GGUF chat template, as llama-server (``--jinja``) renders it.

    The template gets what llama.cpp gives it (see :mod:`tui.core.template_compat`):

    - ``thinking``: None renders the template as llama.cpp does by default
      (thinking on where the template can switch it, e.g. ``<think>`` left
      open for QwQ and DeepSeek-R1); True or False sets the template's
      ``enable_thinking`` (llama-server's ``--reasoning on|off``).
    - ``reasoning_effort``: "low", "medium", "high"… for templates that read
      it (gpt-oss); None keeps the template's default; "none" turns thinking off.
    - ``preserve_reasoning``: keep earlier answers' reasoning in templates
      that can (llama-server's default, ``--reasoning-preserve``).
    - ``now``: the date templates print (``date_string``, ``strftime_now``).

    A turn's ``reasoning`` reaches the template as ``reasoning_content``.

    In Jinja's sandbox: a hostile template cannot reach Python objects, files
    or imports. Message texts are data to the template, never template code,
    so ``{{ 7*7 }}`` typed by the user stays ``{{ 7*7 }}``.
    """
    limit = RENDER_CHARS + 2 * sum(len(t.content) + len(t.reasoning) for t in turns)
    try:
        with _time_limit(RENDER_SECONDS):
            caps = _caps(template)
            variables = llama_variables(
                caps,
                thinking=thinking,
                reasoning_effort=reasoning_effort,
                preserve_reasoning=preserve_reasoning,
                now=now or datetime.now(),
            )
            variables.update(
                messages=llama_messages(turns, caps), bos_token=bos_token, eos_token=eos_token
            )
            if add_generation_prompt:  # llama.cpp leaves it undefined otherwise
                variables["add_generation_prompt"] = True
            return finish(_generate(template, variables, limit), caps, add_generation_prompt)
    except TemplateError:
        raise
    except (_Overrun, RecursionError, MemoryError):
        raise TemplateError(
            f"the model's chat template did not finish within {RENDER_SECONDS:g} s "
            "(an endless loop?): choose a persona in transcript mode, or another model."
        ) from None
    except Exception as exc:  # a template can fail in many ways: TypeError, SecurityError…
        raise TemplateError(f"the model's chat template failed: {exc}") from exc


def _generate(template: str, variables: dict[str, Any], limit: int) -> str:
    """The template's text for ``variables``, stopped past ``limit`` characters."""
    out, size = [], 0
    for piece in _compile(template).generate(**variables):
        out.append(piece)
        size += len(piece)
        if size > limit:
            raise TemplateError(
                f"the model's chat template produced more than {limit} characters "
                "for this chat: it looks broken (an endless loop?)."
            )
    return "".join(out)


@lru_cache(maxsize=8)
def _caps(template: str) -> TemplateCaps:
    """What the template does with its input; probed once per template."""
    return probe_caps(template, lambda variables: _generate(template, variables, RENDER_CHARS))
