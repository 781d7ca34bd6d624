"""Turning a persona and a chat history into the exact prompt for the model.

Two ways, as llama.cpp users know them:

- **chat mode**: the model's own chat template (``tokenizer.chat_template``
  from the GGUF), rendered in Jinja's sandbox the way llama-cpp-python's
  ``Jinja2ChatFormatter`` does, with the generation prompt appended;
- **transcript mode** (the seed's ``./main -i -r "User:"``): the persona text,
  then ``User: …`` / ``Bob: …`` lines, ending with ``Bob:``.

``auto`` picks chat mode when the model has a template. Nothing here imports
llama.cpp or Textual; token counting is passed in as a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from tui.core.chat_template import TemplateError, render_chat
from tui.core.personas import Persona
from tui.core.reasoning import KNOWN_TAGS
from tui.core.sampling import REASONING_AUTO, REASONING_ON, SPEC
from tui.core.stops import transcript_stops

CHAT, TRANSCRIPT = "chat", "transcript"


@dataclass(frozen=True)
class Turn:
    """One message as the model sees it."""

    role: str  # "system", "user" or "assistant"
    content: str
    # An assistant turn's thinking (a reasoning model's), never inside ``content``:
    # the chat template gets it as ``reasoning_content`` and decides what to keep.
    reasoning: str = ""


@dataclass
class PersonaPrompt:
    """The parts of a persona that shape the prompt, placeholders filled."""

    system: str
    examples: list[Turn] = field(default_factory=list)
    ai_name: str = "Assistant"
    user_name: str = "User"
    mode: str = "auto"
    stop: list[str] = field(default_factory=list)

    @classmethod
    def from_persona(cls, persona: Persona, now: datetime | None = None) -> PersonaPrompt:
        examples: list[Turn] = []
        for example in persona.examples:
            examples.append(Turn("user", persona.fill(example.user, now)))
            examples.append(Turn("assistant", persona.fill(example.ai, now)))
        return cls(
            system=persona.fill(persona.system, now).strip(),
            examples=examples,
            ai_name=persona.ai_name,
            user_name=persona.user_name,
            mode=persona.mode,
            stop=list(persona.stop),
        )


def with_prefill(prompt: str, prefill: str, mode: str) -> str:
    """``prompt`` (ending where the answer begins) followed by the answer's start.

    Appended, not rendered as a final assistant message: many templates close
    every assistant message with an end-of-turn token (ChatML's
    ``<|im_end|>``), after which the model would start a new turn instead of
    going on. In transcript mode the answer follows ``Bob:`` after a space,
    as the model wrote it. A generation prompt that opens a thinking block
    (DeepSeek-R1, Bielik) gets it closed first, empty, as templates write
    thinking that is off (``<think>\n\n</think>\n\n``): the text is the
    answer, and the model goes on with the answer, not with thinking.
    """
    if not prefill:
        return prompt
    if mode == TRANSCRIPT:
        return f"{prompt} {prefill}"
    tail = prompt.rstrip()
    for tags in KNOWN_TAGS:
        if tail.endswith(tags.open):
            prompt = f"{tail}\n\n{tags.close}\n\n"
            break
    return prompt + prefill


def choose_mode(persona_mode: str, chat_template: str | None) -> str:
    """``chat`` or ``transcript``; never a guessed format for a template-less model."""
    if persona_mode in (CHAT, TRANSCRIPT):
        return CHAT if persona_mode == CHAT and chat_template else TRANSCRIPT
    return CHAT if chat_template else TRANSCRIPT


def render_transcript(persona: PersonaPrompt, turns: Sequence[Turn], open_reply: bool) -> str:
    """The seed's transcript: persona text, ``Name: text`` lines, ending ``AI:``."""
    parts = [persona.system + "\n\n"] if persona.system else []
    for turn in turns:
        name = persona.ai_name if turn.role == "assistant" else persona.user_name
        if turn.role == "system":
            parts.append(turn.content.strip() + "\n")
            continue
        parts.append(f"{name}: {turn.content.strip()}\n")
    if open_reply:
        parts.append(f"{persona.ai_name}:")
    return "".join(parts)


@dataclass
class PromptFormat:
    """What the engine knows about the loaded model's format, and the chat's thinking switch."""

    chat_template: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    # A reasoning model's thinking (the chat's ``reasoning`` settings): None = as the
    # template (and llama.cpp) defaults; see :func:`thinking_options`.
    thinking: bool | None = None
    reasoning_effort: str | None = None


def thinking_options(reasoning: str, effort: str) -> tuple[bool | None, str | None]:
    """The template's thinking switch and effort for the settings ``reasoning`` and ``effort``.

    "auto" leaves the template's default (llama.cpp renders thinking on where
    a template can switch it); the effort is passed when thinking is on or the
    effort was changed from its default.
    """
    thinking = None if reasoning == REASONING_AUTO else reasoning == REASONING_ON
    wanted = thinking is not False and (thinking or effort != SPEC["reasoning_effort"][0])
    return thinking, effort if wanted else None


@dataclass
class BuiltPrompt:
    """A prompt ready for the model, and how the history was fitted into it."""

    text: str
    tokens: list[int]
    mode: str
    stops: list[str]
    start: int  # index of the first history turn inside the window
    n_keep: int  # tokens of the persona block, never dropped
    # The turns in the window as the model sees them (an old answer may be cut).
    turns: list[Turn] = field(default_factory=list)
    prefill: str = ""  # the answer's start, at the end of ``text`` (continue / prefill)


class PromptTooLong(Exception):
    """Even the persona plus the newest message do not fit the window."""

    def __init__(self, needed: int, budget: int, persona_tokens: int = 0):
        if persona_tokens > budget:
            message = (
                f"The persona's prompt alone needs {persona_tokens} tokens but the model's "
                f"window leaves room for {budget}. Shorten the persona, or raise the "
                "context size (n_ctx) of this chat."
            )
        else:
            message = (
                f"This message needs {needed} tokens but the model's window leaves room "
                f"for {budget}. Shorten it, or raise the context size (n_ctx) of this chat."
            )
        super().__init__(message)
        self.needed, self.budget, self.persona_tokens = needed, budget, persona_tokens


# Where an over-long earlier answer was cut to fit the window (see PromptBuilder.build).
CUT_MARK = "\n[…]\n"


def cut_middle(text: str, keep: int) -> str:
    """``text`` with its middle replaced by :data:`CUT_MARK`, ``keep`` characters kept.

    The beginning says what the answer was about, the end is what the user
    read last: both matter more than the middle.
    """
    if keep >= len(text):
        return text
    tail = keep // 2
    end = text[len(text) - tail :].lstrip() if tail else ""
    return text[: keep - tail].rstrip() + CUT_MARK + end


def fold_opening(
    persona: PersonaPrompt, history: Sequence[Turn]
) -> tuple[PersonaPrompt, list[Turn]]:
    """Move the AI's opening words into the system text, for strict chat templates.

    Some templates (Mistral's, Gemma's) refuse a conversation that does not
    begin with the user; the greeting then reaches the model this way.
    """
    opening = []
    rest = list(history)
    while rest and rest[0].role == "assistant":
        opening.append(rest.pop(0).content)
    said = "\n\n".join(opening)
    note = f"{persona.ai_name} opened the conversation with:\n{said}"
    system = f"{persona.system}\n\n{note}" if persona.system else note
    return replace(persona, system=system), rest


# Characters per token of English text, roughly, for the first guess at how far back a
# window can reach (see PromptBuilder._overflowing_suffix; a wrong guess costs time only).
CHARS_PER_TOKEN_GUESS = 4


class PromptBuilder:
    """Renders persona + history for one model, and fits it into the window.

    ``tokenize`` turns rendered text into the model's tokens (with BOS where
    the model wants one); it is the only link to the model.
    """

    def __init__(self, fmt: PromptFormat, tokenize: Callable[[str], list[int]]):
        self.fmt = fmt
        self.tokenize = tokenize
        self._prefill = ""  # the answer's start, during one build()

    def render(
        self, persona: PersonaPrompt, history: Sequence[Turn], mode: str, prefill: str = ""
    ) -> str:
        """The whole prompt text, ending where the AI's answer begins (or goes on).

        A window that opens with the AI's own words (a persona's greeting) is
        rendered as it is; a template that insists on a user turn first gets
        those words in the system text instead (see :func:`fold_opening`).
        ``prefill`` (the answer's start, already written) is appended to the
        prompt as it stands, never rendered as a message (see :func:`with_prefill`).
        """
        if mode == CHAT:
            try:
                text = self._render_chat(persona, history)
            except TemplateError:
                if not history or history[0].role != "assistant":
                    raise
                text = self._render_chat(*fold_opening(persona, history))
        else:
            text = render_transcript(persona, [*persona.examples, *history], open_reply=True)
        return with_prefill(text, prefill, mode)

    def _render_chat(self, persona: PersonaPrompt, history: Sequence[Turn]) -> str:
        head = [Turn("system", persona.system)] if persona.system else []
        return render_chat(
            self.fmt.chat_template or "",
            [*head, *persona.examples, *history],
            self.fmt.bos_token,
            self.fmt.eos_token,
            thinking=self.fmt.thinking,
            reasoning_effort=self.fmt.reasoning_effort,
        )

    def stops(self, persona: PersonaPrompt, mode: str) -> list[str]:
        if mode == TRANSCRIPT:
            return transcript_stops(persona.user_name, persona.stop)
        return list(persona.stop)

    def build(
        self,
        persona: PersonaPrompt,
        history: Sequence[Turn],
        budget: int,
        start: int = 0,
        prefill: str = "",
    ) -> BuiltPrompt:
        """Fit ``history[start:]`` into ``budget`` tokens, dropping in chunks.

        ``start`` is where the previous turn's window began (the caller keeps
        it between turns). The persona block always stays (llama.cpp's
        ``n_keep``). If the history from ``start`` does not fit, the oldest
        turns after the persona block are dropped until what is left takes at
        most half of the room after it, as llama.cpp's context shift does
        (``n_discard = n_left / 2``): the next turns then extend the same
        prefix, and the KV cache is reused, until the window fills again.
        Nothing is dropped while things fit, so consecutive turns render
        byte-identically up to the new message.

        The latest exchange (the user's previous message and the answer to it)
        is kept whenever it fits the budget, even past the half-room target:
        "summarize that" must see what "that" was. An answer too long for the
        window is cut in the middle (:data:`CUT_MARK`) rather than dropped
        whole. A dropped window begins with a user turn; the chat's very
        first message (a persona's greeting) is kept while it fits.

        ``prefill``: the start of the answer, already written (continue, or a
        prefill the user typed); it counts against the budget like the history.
        """
        self._prefill = prefill
        try:
            return self._build(persona, history, budget, start)
        finally:
            self._prefill = ""

    def _build(
        self, persona: PersonaPrompt, history: Sequence[Turn], budget: int, start: int
    ) -> BuiltPrompt:
        mode = choose_mode(persona.mode, self.fmt.chat_template)
        start = min(max(start, 0), len(history) - 1)
        if start > 0:
            start = _user_turn_at_or_after(history, start)
        over = self._overflowing_suffix(persona, history, mode, start, budget)
        if over is not None:  # the window begins at or after it: read no further back
            start, tokens = over
        else:
            tokens = self._tokens(persona, history[start:], mode)
        head = self._head_tokens(persona, mode)
        n_keep = _common_prefix(head, tokens)
        window = list(history[start:])
        if len(tokens) > budget:
            target = n_keep + max(budget - n_keep, 0) // 2
            start = self._first_start_fitting(persona, history, mode, start, target)
            start, window = self._keep_latest_exchange(persona, history, mode, start, budget)
            tokens = self._tokens(persona, window, mode)
            if len(tokens) > budget:
                raise PromptTooLong(len(tokens), budget, len(head))
            n_keep = _common_prefix(head, tokens)
        text = self.render(persona, window, mode, self._prefill)
        built = BuiltPrompt(text, tokens, mode, self.stops(persona, mode), start, n_keep)
        built.turns = window
        built.prefill = self._prefill
        return built

    def _head_tokens(self, persona: PersonaPrompt, mode: str) -> list[int]:
        """The persona block alone, kept first in the window; [] if the template needs a
        message to render at all (Gemma 2 reads ``messages[0]``) and the persona has no
        system text or examples: then there is no block to keep."""
        try:
            return self.tokenize(self.render(persona, [], mode))
        except TemplateError:
            if persona.system or persona.examples:
                raise
            return []

    def _keep_latest_exchange(
        self,
        persona: PersonaPrompt,
        history: Sequence[Turn],
        mode: str,
        start: int,
        budget: int,
    ) -> tuple[int, list[Turn]]:
        """Widen a window that lost the previous exchange, if that exchange can fit.

        Returns the window's start and its turns; the previous answer may be
        cut (beginning and end kept) so that it fits.
        """
        users = [i for i in range(len(history)) if history[i].role == "user"]
        if len(users) < 2 or start <= users[-2]:
            return start, list(history[start:])
        previous, last = users[-2], users[-1]
        widened = list(history[previous:])
        if len(self._tokens(persona, widened, mode)) <= budget:
            return previous, widened
        if last - previous != 2 or history[previous + 1].role != "assistant":
            return start, list(history[start:])
        answer = history[previous + 1].content

        def cut_to(keep: int) -> list[Turn]:
            return [history[previous], Turn("assistant", cut_middle(answer, keep)), *history[last:]]

        low, high = 0, len(answer) - 1  # the longest cut that fits: binary search
        if len(self._tokens(persona, cut_to(0), mode)) > budget:
            return start, list(history[start:])
        while low < high:
            mid = (low + high + 1) // 2
            if len(self._tokens(persona, cut_to(mid), mode)) <= budget:
                low = mid
            else:
                high = mid - 1
        return previous, cut_to(low)

    def _tokens(self, persona: PersonaPrompt, history: Sequence[Turn], mode: str) -> list[int]:
        """The tokens of the prompt, with the prefill of the build in progress."""
        return self.tokenize(self.render(persona, history, mode, self._prefill))

    def _overflowing_suffix(
        self,
        persona: PersonaPrompt,
        history: Sequence[Turn],
        mode: str,
        start: int,
        budget: int,
    ) -> tuple[int, list[int]] | None:
        """A user turn after ``start`` from which the rest alone exceeds ``budget``, and its tokens.

        Why: a chat of thousands of messages (imported, or whose window was
        never stored) would otherwise be rendered and tokenized whole, several
        times over, before the first answer: seconds. Everything before such a
        turn is outside the window anyway (more turns never take fewer tokens),
        so the search starts there and gives the same window. Suffixes of
        ``CHARS_PER_TOKEN_GUESS`` characters per budget token are tried, doubling;
        None when the history from ``start`` is under twice the next try (an
        ordinary turn: no extra tokenizer call, which is an HTTP request for a
        remote engine): then the caller reads it all, as before.
        """
        wanted = budget * CHARS_PER_TOKEN_GUESS
        total = sum(len(turn.content) for turn in history[start + 1 :])
        while 2 * wanted <= total:
            chars, probe = 0, start
            for index in range(len(history) - 1, start, -1):
                chars += len(history[index].content)
                if chars >= wanted and history[index].role == "user":
                    probe = index
                    break
            if probe <= start:
                return None
            tokens = self._tokens(persona, history[probe:], mode)
            if len(tokens) > budget:
                return probe, tokens
            wanted *= 2
        return None

    def _first_start_fitting(
        self,
        persona: PersonaPrompt,
        history: Sequence[Turn],
        mode: str,
        start: int,
        target: int,
    ) -> int:
        """The earliest user turn from which the rest fits ``target`` tokens.

        Binary search over user-turn starts (fewer turns, fewer tokens). The
        newest user turn is always kept; if even it exceeds ``target``, it is
        used alone (the caller checks it against the whole budget).
        """
        candidates = [i for i in range(start, len(history)) if history[i].role == "user"]
        if not candidates:
            return max(len(history) - 1, 0)
        low, high = 0, len(candidates) - 1
        while low < high:
            mid = (low + high) // 2
            if len(self._tokens(persona, history[candidates[mid] :], mode)) <= target:
                high = mid
            else:
                low = mid + 1
        return candidates[low]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two token lists share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _user_turn_at_or_after(history: Sequence[Turn], index: int) -> int:
    """History in the window always begins with a user turn."""
    for i in range(max(index, 0), len(history)):
        if history[i].role == "user":
            return i
    return max(len(history) - 1, 0)
