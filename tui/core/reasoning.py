"""A reasoning model's output split into thinking and answer, as it streams.

Reasoning models (Qwen3, QwQ, DeepSeek-R1 and its distills, SmolLM3, GLM,
MiniMax, Magistral, gpt-oss, Gemma 4…) write their thinking before the
answer, between markers their chat template knows:

- tags: ``<think>…</think>`` (most), ``[THINK]…[/THINK]`` (Mistral),
  ``<seed:think>…</seed:think>`` (ByteDance Seed), ``<|channel>thought…<channel|>``
  (Gemma 4). A template may already open the tag in its generation prompt
  (DeepSeek-R1, QwQ): the output then starts inside the thinking, without
  an opening tag (:func:`starts_inside`);
- gpt-oss's channels (the "harmony" format):
  ``<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…``.

:class:`ReasoningSplitter` is fed the raw text piece by piece (a marker may
be cut between two pieces, or arrive as a token of its own) and returns
``(thinking, text)`` pieces: the answer never contains thinking markup.
Which markers a model uses is read from its chat template
(:func:`detect_format`); for a server that does not say, ``<think>`` at the
very start of an answer is recognised (:data:`INLINE`).
"""

from __future__ import annotations

from dataclasses import dataclass

Piece = tuple[bool, str]  # (is thinking, text)


@dataclass(frozen=True)
class Tags:
    """One pair of thinking markers."""

    open: str
    close: str


THINK = Tags("<think>", "</think>")
KNOWN_TAGS = (
    THINK,
    Tags("<seed:think>", "</seed:think>"),
    Tags("<mm:think>", "</mm:think>"),  # MiniMax M3
    Tags("<|START_THINKING|>", "<|END_THINKING|>"),  # Cohere Command A
    Tags("[THINK]", "[/THINK]"),
    Tags("<|channel>thought", "<channel|>"),
    Tags("<thinking>", "</thinking>"),
)

# gpt-oss (harmony) markers.
H_START, H_CHANNEL, H_MESSAGE, H_END = "<|start|>", "<|channel|>", "<|message|>", "<|end|>"
H_RETURN, H_CONSTRAIN, H_CALL = "<|return|>", "<|constrain|>", "<|call|>"
HARMONY_MARKERS = (H_START, H_CHANNEL, H_MESSAGE, H_END, H_RETURN, H_CONSTRAIN, H_CALL)
HARMONY_THINKING_CHANNELS = ("analysis", "commentary")

TAGS, HARMONY, NONE = "tags", "harmony", "none"


@dataclass(frozen=True)
class ReasoningFormat:
    """How one model marks its thinking.

    ``anywhere``: an opening tag is thinking wherever it appears (the
    template says the model thinks); otherwise only at the very start of
    the answer, so that an ordinary model writing about ``<think>`` keeps
    its words.
    """

    kind: str = NONE
    tags: tuple[Tags, ...] = ()
    anywhere: bool = False

    @property
    def markers(self) -> tuple[str, ...]:
        """Every marker string (to recognise them as single tokens, too)."""
        if self.kind == HARMONY:
            return HARMONY_MARKERS
        return tuple(m for t in self.tags for m in (t.open, t.close))

    @property
    def close_text(self) -> str:
        """What ends the thinking and starts the answer (written in for a budget)."""
        if self.kind == HARMONY:
            return f"{H_END}{H_START}assistant{H_CHANNEL}final{H_MESSAGE}"
        return f"{self.tags[0].close}\n\n" if self.tags else ""


PLAIN = ReasoningFormat()
INLINE = ReasoningFormat(TAGS, (THINK,), anywhere=False)
"""For a server that neither splits the thinking nor shows its template."""


def detect_format(template: str | None) -> ReasoningFormat:
    """The thinking markers a chat template uses; :data:`INLINE` when it shows none.

    A template that never mentions thinking still gets ``<think>`` at the
    very start of an answer recognised: a model may think although its
    template does not say so (a DeepSeek-R1 distill with a plain Llama template).
    """
    if not template:
        return INLINE
    if H_CHANNEL in template and H_MESSAGE in template:
        return ReasoningFormat(HARMONY, (), anywhere=True)
    others = [t for t in KNOWN_TAGS[1:] if t.close in template]
    rest = template
    for tags in others:  # "</seed:think>" is not "</think>"
        rest = rest.replace(tags.close, "").replace(tags.open, "")
    found = ([THINK] if THINK.close in rest else []) + others
    if found:
        return ReasoningFormat(TAGS, tuple(found), anywhere=True)
    return INLINE


def starts_inside(fmt: ReasoningFormat, prompt: str) -> bool:
    """True when the prompt ends inside an opened thinking block (DeepSeek-R1, QwQ).

    The model's first words are then thinking, with no opening tag.
    """
    tail = prompt.rstrip()
    for tags in fmt.tags:
        if tail.endswith(tags.open.rstrip()):
            return True
    if fmt.kind == HARMONY:  # a prompt that opened the analysis channel itself
        return tail.endswith(f"{H_CHANNEL}analysis{H_MESSAGE}")
    return False


class _Lexer:
    """Cuts a stream into text and markers; a tail that may begin a marker is held back."""

    def __init__(self, markers: tuple[str, ...]):
        self.markers = tuple(sorted(set(markers), key=len, reverse=True))
        self.held = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """(is marker, string) items, in order."""
        text = self.held + text
        self.held = ""
        out: list[tuple[bool, str]] = []
        start = 0
        while True:
            hit = self._next(text, start)
            if hit is None:
                break
            index, marker = hit
            if index > start:
                out.append((False, text[start:index]))
            out.append((True, marker))
            start = index + len(marker)
        rest = text[start:]
        keep = self._partial_tail(rest)
        if keep:
            rest, self.held = rest[:-keep], rest[-keep:]
        if rest:
            out.append((False, rest))
        return out

    def _next(self, text: str, start: int) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for marker in self.markers:
            index = text.find(marker, start)
            if index >= 0 and (best is None or index < best[0]):
                best = (index, marker)
        return best

    def _partial_tail(self, text: str) -> int:
        """Length of the longest end of ``text`` that is the beginning of a marker."""
        longest = 0
        for marker in self.markers:
            for size in range(min(len(marker) - 1, len(text)), longest, -1):
                if marker.startswith(text[-size:]):
                    longest = size
                    break
        return longest

    def finish(self) -> str:
        held, self.held = self.held, ""
        return held


class ReasoningSplitter:
    """Raw model output in, ``(thinking, text)`` pieces out; one per answer.

    The thinking's leading and the answer's leading white space (the
    ``\\n\\n`` after ``</think>``) are dropped, so that neither begins blank.
    """

    def __init__(self, fmt: ReasoningFormat, inside: bool = False):
        self.fmt = fmt
        self._lexer = _Lexer(fmt.markers) if fmt.kind != NONE else None
        self.thinking = inside  # inside a thinking block now
        self.thought = inside  # there was thinking in this answer
        self._close = fmt.tags[0].close if inside and fmt.tags else ""
        self._at_start = True  # nothing of the answer (or thinking) seen yet
        self._lead = inside  # drop white space at the start of the current part
        self._blank = ""  # white space at the very start, held until we know what follows
        # harmony: reading a header (between <|start|>/<|channel|> and <|message|>)
        self._header: str | None = None
        self.reasoning = ""  # the whole thinking so far
        self.answer = ""  # the whole answer so far
        self.moved = False  # the answer so far turned out to be thinking (see _marker)
        self._wrote_tags = False  # the answer spoke of an opening tag as text

    def feed(self, text: str) -> list[Piece]:
        if self._lexer is None:
            return self._emit(False, text)
        out: list[Piece] = []
        for is_marker, item in self._lexer.feed(text):
            if not is_marker:
                out += self._text(item)
                continue
            moved = self.moved
            out += self._marker(item)
            if self.moved and not moved:  # this piece's answer so far was thinking too
                out = [(True, piece) for _thinking, piece in out]
        return _merged(out)

    def finish(self) -> list[Piece]:
        """The stream ended: what was held back is ordinary text after all."""
        if self._lexer is None:
            return []
        out = self._text(self._lexer.finish())
        if self._blank and not (self.answer or self.reasoning):
            out.append((False, self._blank))  # an answer of white space alone
            self.answer, self._blank = self._blank, ""
        return _merged(out)

    def close_thinking(self) -> list[Piece]:
        """End the thinking now (a budget ran out), as if the model wrote the closing marker."""
        if not self.thinking:
            return []
        out: list[Piece] = []
        if self._lexer is not None:
            held = self._lexer.finish()
            out += self._text(held) if held else []
        self.thinking, self._lead, self._header = False, True, None
        return _merged(out)

    # --- the state machine ------------------------------------------------------------

    def _text(self, text: str) -> list[Piece]:
        if self._header is not None:  # harmony: "analysis", "assistant", " to=…"
            self._header += text
            return []
        return self._emit(self.thinking, text)

    def _emit(self, thinking: bool, text: str) -> list[Piece]:
        if not text:
            return []
        if self._lead:
            text = text.lstrip()
            if not text:
                return []
            self._lead = False
        elif self._at_start and self._lexer is not None:
            if not text.strip():  # blank before a possible opening tag: wait and see
                self._blank += text
                return []
            text, self._blank = self._blank + text, ""
        self._at_start = False
        if thinking:
            self.reasoning += text
        else:
            self.answer += text
        return [(thinking, text)]

    def _marker(self, marker: str) -> list[Piece]:
        if self.fmt.kind == HARMONY:
            return self._harmony(marker)
        for tags in self.fmt.tags:
            if marker == tags.open and not self.thinking:
                if self.fmt.anywhere or (self._at_start and not self.answer):
                    self.thinking = self.thought = True
                    self._close, self._lead, self._blank = tags.close, True, ""
                    return []
                self._wrote_tags = True
                return self._emit(False, marker)  # an ordinary model's words
            if marker == tags.close and self.thinking and marker == self._close:
                self.thinking, self._lead = False, True
                return []
            if marker == tags.close and not self.thought and not self._wrote_tags:
                # The prompt had opened the thinking without our knowing (a server's
                # template): everything so far was thinking. What was streamed as
                # answer is taken back (``moved``); the finished texts are right.
                self.reasoning, self.answer = self.answer, ""
                self.thought = self.moved = True
                self._lead = True
                return []
        if not self.fmt.anywhere and not self.thought:
            return self._emit(self.thinking, marker)  # not thinking markup here
        return []  # stray markup: never part of the answer

    def _harmony(self, marker: str) -> list[Piece]:
        if marker in (H_START, H_CHANNEL):
            self._header = self._header or ""
            if marker == H_CHANNEL:
                self._header = ""
            return []
        if marker == H_MESSAGE:
            channel = (self._header or "").strip().split(" ")[0].split("<")[0]
            self._header = None
            self.thinking = channel in HARMONY_THINKING_CHANNELS
            self.thought = self.thought or self.thinking
            self._lead, self._blank = True, ""
            return []
        if marker in (H_END, H_RETURN, H_CALL):
            self.thinking = False
            self._header = None
            return []
        return []  # <|constrain|>: part of a header


def _merged(pieces: list[Piece]) -> list[Piece]:
    """Neighbouring pieces of the same kind joined (fewer events)."""
    out: list[Piece] = []
    for thinking, text in pieces:
        if out and out[-1][0] == thinking:
            out[-1] = (thinking, out[-1][1] + text)
        elif text:
            out.append((thinking, text))
    return out


def split_text(text: str, fmt: ReasoningFormat, inside: bool = False) -> tuple[str, str]:
    """A whole output split at once: (thinking, answer)."""
    splitter = ReasoningSplitter(fmt, inside)
    splitter.feed(text)
    splitter.finish()
    return splitter.reasoning.strip(), splitter.answer


def strip_markup(text: str, fmt: ReasoningFormat = INLINE) -> tuple[str, str]:
    """An answer written by an older llama-tui (``<think>`` inside it): (thinking, answer)."""
    return split_text(text, fmt)
