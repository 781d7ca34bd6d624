"""What llama.cpp gives a chat template, so that a template renders here as there.

llama-server (``--jinja``) does not render a template with the bare messages:
``common/chat.cpp`` in llama.cpp adds variables (``enable_thinking``,
``date_string``, ``preserve_thinking``…), folds a system message into the
first user turn for templates that ignore the system role, and copies an
answer's reasoning to the field some templates read. A model behaves as its
authors and llama.cpp users expect only with the same prompt, so this module
does the same, step by step; :func:`tui.core.chat_template.render_chat` calls it.

Probing a template (does it read the system message, does it react to
``enable_thinking``) renders it a few times; the answers are cached per
template text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.core.prompt import Turn

# Renders a template with the given variables; raises on any template error.
Render = Callable[[dict[str, Any]], str]

_MARKER = "STRING_MARKER"
_C_SPACE = " \t\n\v\f\r"  # C's isspace(), which llama.cpp's trim_whitespace uses


@dataclass(frozen=True)
class TemplateCaps:
    """What a template does with its input, as llama.cpp's ``jinja::caps`` finds out."""

    system_role: bool = True  # reads a system message (else it is folded into the user's)
    typed_content_only: bool = False  # wants content as [{"type": "text", "text": …}]
    thinking: bool = False  # llama.cpp enables thinking by default for it
    thinking_field: bool = False  # reads the reasoning as ``message.thinking`` (gpt-oss, LFM2)
    gemma4: bool = False  # llama.cpp reopens the model's turn when the prompt ends a turn
    mistral_blocks: bool = False  # system and assistant content as [THINK]/text blocks
    # llama.cpp trims every message's text (StepFun: its model loops otherwise)
    trim_content: bool = False


class _Message(dict[str, Any]):
    """A message that notes whether the template looked at its content.

    llama.cpp marks a value "used" when the template reads it; a template that
    never reads the system message's content does not support the system role.
    """

    content_read = False

    def __getitem__(self, key: str) -> Any:
        if key == "content":
            self.content_read = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "content":
            self.content_read = True
        return super().get(key, default)


def _base(messages: list[Any]) -> dict[str, Any]:
    """The variables of llama.cpp's capability probes (``caps_try_execute``)."""
    return {
        "messages": messages,
        "tools": [],
        "bos_token": "",
        "eos_token": "",
        "add_generation_prompt": True,
    }


def _quietly(render: Render, variables: dict[str, Any]) -> str | None:
    """The rendered text, or None where the template refuses these variables."""
    try:
        return render(variables)
    except Exception:  # a probe that fails says "not supported"; time limits still apply
        return None


def probe_caps(template: str, render: Render) -> TemplateCaps:
    """Find out what llama.cpp finds out about ``template`` (by rendering it)."""
    system = _Message(role="system", content="System message")
    _quietly(render, _base([system, {"role": "user", "content": "User message"}]))
    as_string = _quietly(render, _base([{"role": "user", "content": _MARKER}]))
    typed_only = False
    if as_string is None or _MARKER not in as_string:
        typed = [{"role": "user", "content": [{"type": "text", "text": _MARKER}]}]
        typed_only = _MARKER in (_quietly(render, _base(typed)) or "")
    return TemplateCaps(
        system_role=system.content_read,
        typed_content_only=typed_only,
        thinking=_reacts_to_thinking(template, render),
        thinking_field=_gpt_oss(template) or _lfm2(template) or _lfm2_5(template),
        gemma4="'<|tool_call>call:'" in template,
        mistral_blocks=_ministral3(template),
        trim_content="You have access to the following functions in JSONSchema format" in template,
    )


def _reacts_to_thinking(template: str, render: Render) -> bool:
    """Whether llama-server turns ``enable_thinking`` on by default for this template.

    llama.cpp enables thinking where its template analysis finds reasoning
    markers (``common/chat-diff-analyzer.cpp``): switching ``enable_thinking``
    opens or closes a tag at the end of the generation prompt (``<think>``
    left open), or an answer's reasoning is rendered followed by a tag
    (``</think>``). A template that only rewords an instruction when the
    switch flips (Apertus's "Deliberation: enabled") is not a thinking
    template to llama.cpp, and is rendered with thinking off.
    """
    if "enable_thinking" not in template:
        return False  # the switch is not read: its default changes nothing
    special = _specialized_thinking(template)
    if special is not None:
        return special
    if "content.split('</think>')" in template and "reasoning_content" not in template:
        return True  # llama.cpp's patch for old Qwen / DeepSeek templates
    user = {"role": "user", "content": "U_USER_MSG Hello END_U"}
    outputs = []
    for enabled in (False, True):
        variables = _base([user])
        variables["enable_thinking"] = enabled
        outputs.append(_quietly(render, variables))
    off, on = outputs
    if off is not None and on is not None and off != on and _tag_at_end(off, on):
        return True
    answer = {"role": "assistant", "content": "A_ASST_MSG I can help END_A"}
    thought = "REASON_PART I am thinking END_R"
    variables = _base([user, {**answer, "reasoning_content": thought}])
    variables["enable_thinking"] = True
    del variables["add_generation_prompt"]
    shown = _quietly(render, variables) or ""
    at = shown.find(thought)
    after = _segments(shown[at + len(thought) :].lstrip()) if at >= 0 else []
    return bool(after) and after[0][0] == "<>"  # the thought is closed by a tag


def _has(*needed: str, without: tuple[str, ...] = ()) -> Callable[[str], bool]:
    """A test of a template's source, as llama.cpp recognises template families."""
    return lambda t: all(s in t for s in needed) and not any(s in t for s in without)


_ministral3 = _has("[SYSTEM_PROMPT]", "[TOOL_CALLS]", "[ARGS]", without=("[CALL_ID]",))
_gpt_oss = _has("<|channel|>")
_lfm2 = _has("<|tool_list_start|>", "<|tool_list_end|>")
_lfm2_5 = _has("List of tools: [", without=("<|tool_list_start|>",))


def _deepseek_dsml(template: str) -> bool:
    return _has("dsml_token", "DSML")(template) and (
        "function_calls" in template or "tool_calls" in template
    )


# llama.cpp's own handlers for template families (common_chat_try_specialized_template,
# in its order): how it recognises each, and whether it gives it thinking (None: where
# the template has <think>).
_SPECIALIZED: tuple[tuple[Callable[[str], bool], bool | None], ...] = (
    (_ministral3, True),  # Ministral 3, Magistral
    (_gpt_oss, True),
    (_has("<atem:function_calls>", "<|eom|>"), True),  # Muse Glimmer
    (_has(">>>all", ">>>${recipient}"), False),  # Functionary v3.2
    (_has("<|tool_calls_section_begin|>", "<|tool_call_begin|>"), True),  # Kimi K2
    (_has("<|open|>", "<|close|>", "<|end_of_msg|>"), True),  # Kimi K3
    (_has("<role>ASSISTANT</role>", "<arg_key>"), True),  # Ling 3
    (_has("<|START_TEXT|>", "<|START_ACTION|>"), True),  # Cohere2 MoE
    (_lfm2, True),
    (_lfm2_5, True),
    (_has("<|role_sep|>", "<|message_sep|>", without=("<|function_call|>",)), False),  # GigaChat 3
    (_has("]<]minimax[>[", "<tool_call>", "<invoke name="), True),  # MiniMax M3
    (_deepseek_dsml, True),  # DeepSeek V3.2 / V4
    (_has("'<|tool_call>call:'"), True),  # Gemma 4
    (_has("Tool usage guidelines:", '<function name="', '<param name="'), True),  # MiniCPM5
    (
        _has(
            "<tool_call>",
            "<function=",
            "<parameter=",
            without=("'<tool_call><function=' ~ tool_call.name ~ '>'",),
        ),
        None,
    ),  # Qwen3-Coder, Qwen3.5, Nemotron 3 Nano, StepFun 3.5
)


def _specialized_thinking(template: str) -> bool | None:
    """Thinking support of a family llama.cpp handles itself; None for the others."""
    for recognised, thinking in _SPECIALIZED:
        if recognised(template):
            return "<think>" in template if thinking is None else thinking
    return None


def _segments(text: str) -> list[tuple[str, str]]:
    """``text`` cut into markers (``<…>``, ``[…]``) and plain text, as llama.cpp cuts it."""
    out: list[tuple[str, str]] = []
    start, opener = 0, ""
    for at, char in enumerate(text):
        if not opener and char in "<[":
            if start < at:
                out.append(("text", text[start:at]))
            start, opener = at, char
        elif opener and char == {"<": ">", "[": "]"}[opener]:
            out.append(("<>", text[start : at + 1]))
            start, opener = at + 1, ""
    if start < len(text):
        out.append(("text", text[start:]))
    return out


def _tag_at_end(off: str, on: str) -> bool:
    """Whether thinking on/off differ by markers at the end of the prompt."""
    common = 0
    for a, b in zip(off, on, strict=False):
        if a != b:
            break
        common += 1
    while common and off[common - 1] not in ">]" and common < len(off) and common < len(on):
        common -= 1  # back to a segment border, as llama.cpp diffs segments
    left, right = off[common:], on[common:]
    if not left.strip() or not right.strip():
        return True  # one side only adds text at the very end: <think> opened or closed
    for base, extended in ((on, off), (off, on)):
        anchor = base[-64:]
        at = extended.rfind(anchor)
        if at < 0 or at + len(anchor) >= len(extended):
            continue
        extra = [s for s in _segments(extended[at + len(anchor) :].strip()) if s[1].strip()]
        if len(extra) == 2 and all(kind == "<>" for kind, _ in extra):
            return True
    return False


def llama_messages(turns: Sequence[Turn], caps: TemplateCaps) -> list[dict[str, Any]]:
    """The messages as llama.cpp hands them to the template.

    An assistant turn's reasoning goes in ``reasoning_content`` (and
    ``thinking`` for templates that read that). A system message that the
    template would ignore or refuse is joined to the next message with a
    newline, as llama.cpp's ``system_message_not_supported`` workaround does,
    so a persona works with every template.
    """
    messages: list[dict[str, Any]] = []
    trim = _C_SPACE if caps.trim_content else ""
    for turn in turns:
        message: dict[str, Any] = {"role": turn.role, "content": turn.content.strip(trim)}
        reasoning = turn.reasoning.strip(trim)
        if reasoning:
            message["reasoning_content"] = reasoning
            if caps.thinking_field:
                message["thinking"] = reasoning
        messages.append(message)
    if not caps.system_role and messages and messages[0]["role"] == "system":
        first = messages.pop(0)
        if messages:
            messages[0]["content"] = f"{first['content']}\n{messages[0]['content']}"
    if caps.mistral_blocks:
        for message in messages:
            if message["role"] in ("system", "assistant"):
                blocks = []
                if "reasoning_content" in message:
                    thought = message.pop("reasoning_content")
                    blocks.append({"type": "thinking", "thinking": thought})
                blocks.append({"type": "text", "text": message["content"]})
                message["content"] = blocks
    elif caps.typed_content_only:
        for message in messages:
            message["content"] = [{"type": "text", "text": message["content"]}]
    return messages


def llama_variables(
    caps: TemplateCaps,
    *,
    thinking: bool | None,
    reasoning_effort: str | None,
    preserve_reasoning: bool,
    now: datetime,
) -> dict[str, Any]:
    """The variables besides the messages that llama-server passes to every template.

    ``tools`` stays undefined (no tools), as in llama.cpp; ``date_string`` and
    ``strftime_now`` give today's date (Llama 3.x prints it).
    """
    effort = (reasoning_effort or "").strip()
    enabled = caps.thinking if thinking is None else thinking
    if effort == "none":  # llama-server's "no reasoning at all"
        enabled, effort = False, ""
    variables: dict[str, Any] = {
        "enable_thinking": enabled,
        "datetime": now.strftime("%b %d %Y"),
        "date_string": now.strftime("%d %b %Y"),
        "strftime_now": lambda fmt: now.strftime(str(fmt)[:100]),
        "preserve_reasoning": preserve_reasoning,
        "preserve_thinking": preserve_reasoning,
        "clear_thinking": not preserve_reasoning,
        "truncate_history_thinking": not preserve_reasoning,
        "drop_thinking": not preserve_reasoning,
    }
    if effort:
        variables["reasoning_effort"] = variables["reasoning_strength"] = effort
    return variables


def finish(text: str, caps: TemplateCaps, add_generation_prompt: bool) -> str:
    """llama.cpp's last touch: Gemma 4 reopens the model's turn if the template did not."""
    if caps.gemma4 and add_generation_prompt and text.endswith("<turn|>\n"):
        return text + "<|turn>model\n"
    return text
