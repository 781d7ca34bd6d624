"""The thinking of a reasoning model, shown apart from its answer.

While the model thinks, a dimmed block with a rule on its left streams the
newest lines of the thinking, labelled with the time and the tokens so far.
Once the answer starts it folds to one line ("▸ Thought for 12 s · 480
tokens") that a click, or ``t`` on the selected message, opens and closes.
:class:`ThinkingPrefs` (one per chat pane) holds how thinking is shown:
folded (the default), all of it open, or none of it.

Thinking is model output: shown as plain text, never as markup or Markdown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from tui.core.config import THINKING_MODES

LIVE_LINES = 8  # the newest lines of the thinking shown while the model thinks
LIVE_CHARS = 4_000  # only this much of the end is wrapped per frame (the rest is off screen)
SHOWN_THINKING = 20_000  # characters of an opened thinking laid out; the rest stays stored


@dataclass
class ThinkingPrefs:
    """How the chat pane shows thinking: the mode, and what the user opened or folded.

    Kept by the pane, not by a message box, so that a message paged out and in
    again (or re-shown after an answer ends) keeps its state.
    """

    mode: str = "collapsed"
    toggled: dict[int, bool] = field(default_factory=dict)  # message id -> open, set by the user
    started: dict[int, float] = field(default_factory=dict)  # message id -> when it began to think

    def is_open(self, message_id: int) -> bool:
        """Whether the thinking of a message (once answered) is shown open."""
        return self.toggled.get(message_id, self.mode == "expanded")

    def set_mode(self, mode: str) -> None:
        """Another mode: what the user opened or folded by hand gives way to it."""
        self.mode = mode if mode in THINKING_MODES else "collapsed"
        self.toggled.clear()

    def began(self, message_id: int) -> float:
        """When message ``message_id`` started thinking (now, the first time it is asked)."""
        return self.started.setdefault(message_id, time.monotonic())


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``2 min 5 s``: short, and steady while it counts up."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def thinking_label(
    live: bool, seconds: float | None, tokens: int | None, note: str = "", is_open: bool = False
) -> str:
    """The block's one line: ``Thinking… 4 s · 120 tokens`` or ``▸ Thought for 12 s · …``."""
    if live:
        head = "Thinking…" if seconds is None else f"Thinking… {int(seconds)} s"
    else:
        head = "Thought" if seconds is None else f"Thought for {duration(seconds)}"
        head = f"{'▾' if is_open else '▸'} {head}"
    parts = [head]
    if tokens:
        parts.append(f"{tokens:,} token{'s' if tokens != 1 else ''}")
    if note:
        parts.append(note)
    return " · ".join(parts)


class LiveTail:
    """The last :data:`LIVE_LINES` lines of ``text`` as wrapped at the pane's width.

    Only the end of the text is wrapped, so a frame costs the same after ten
    tokens of thinking and after ten thousand.
    """

    def __init__(self, text: str, lines: int = LIVE_LINES) -> None:
        tail = text[-LIVE_CHARS:]
        if len(text) > LIVE_CHARS and "\n" in tail:
            tail = tail[tail.index("\n") + 1 :]  # start at a line's start, not mid-word
        self.text = Text(tail.strip("\n"))
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wrapped = self.text.wrap(console, options.max_width)
        for line in wrapped[-self.lines :]:
            yield from line.render(console)
            yield Segment.line()


class ThinkingBlock(Vertical):
    """One answer's thinking: live and streaming, or folded to a line, or open."""

    DEFAULT_CSS = """
    ThinkingBlock {
        height: auto;
        margin: 0 0 1 1;
        padding: 0 0 0 1;
        border-left: outer $foreground 20%;
        color: $text-muted;
    }
    ThinkingBlock.-live { border-left: outer $accent 60%; }
    ThinkingBlock .thinking-head { height: auto; text-style: italic; }
    ThinkingBlock .thinking-head:hover { color: $text; text-style: italic underline; }
    ThinkingBlock .thinking-text { height: auto; color: $text-muted; }
    ThinkingBlock.-folded .thinking-text { display: none; }
    """

    class Toggle(Message):
        """The user clicked the block's line: open or fold it."""

        def __init__(self, block: ThinkingBlock) -> None:
            super().__init__()
            self.block = block

    def __init__(
        self,
        text: str,
        *,
        live: bool,
        is_open: bool,
        seconds: float | None = None,
        tokens: int | None = None,
        note: str = "",
        started: float | None = None,
    ) -> None:
        super().__init__(classes="thinking")
        self.text = text
        self.live = live
        self.is_open = is_open
        self.seconds = seconds
        self.tokens = tokens
        self.note = note
        self.started = started if started is not None else time.monotonic()
        self._ticker: Timer | None = None
        self._set_classes()

    def compose(self):  # type: ignore[override]
        yield ThinkingHead(self._label(), classes="thinking-head")
        yield Static(self._body(), classes="thinking-text")

    def on_mount(self) -> None:
        if self.live:
            self._ticker = self.set_interval(1.0, self._tick)

    def _set_classes(self) -> None:
        self.set_class(self.live, "-live")
        self.set_class(not (self.live or self.is_open), "-folded")

    def _elapsed(self) -> float | None:
        return time.monotonic() - self.started if self.live else self.seconds

    def _label(self) -> Text:
        label = thinking_label(self.live, self._elapsed(), self.tokens, self.note, self.is_open)
        return Text(label)

    def _body(self) -> LiveTail | Text:
        if self.live:
            return LiveTail(self.text)
        if not self.is_open:
            return Text("")  # folded: not laid out at all
        shown = self.text[:SHOWN_THINKING]
        body = Text(shown.strip("\n"))
        if len(self.text) > SHOWN_THINKING:
            more = len(self.text) - SHOWN_THINKING
            body.append(f"\n… {more:,} more characters of thinking (C copies all of it)")
        return body

    def _redraw(self, body: bool = True) -> None:
        head = self.query_one_optional(".thinking-head")
        if isinstance(head, Static):
            head.update(self._label())
        text = self.query_one_optional(".thinking-text")
        if body and isinstance(text, Static):
            text.update(self._body())

    def _tick(self) -> None:
        """Once a second while thinking: the time in the label counts up."""
        if self.live:
            self._redraw(body=False)

    def append(self, text: str, tokens: int | None = None) -> None:
        """More thinking streamed in."""
        self.text += text
        if tokens is not None:
            self.tokens = tokens
        self._redraw()

    def end_live(self, seconds: float | None = None, tokens: int | None = None) -> None:
        """The answer started (or the turn ended): fold to one line, unless it is open."""
        if not self.live:
            return
        self.seconds = seconds if seconds is not None else time.monotonic() - self.started
        if tokens is not None:
            self.tokens = tokens
        self.live = False
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self._set_classes()
        self._redraw()

    def set_open(self, is_open: bool) -> None:
        if is_open == self.is_open:
            return
        self.is_open = is_open
        self._set_classes()
        self._redraw()


class ThinkingHead(Static):
    """The block's line; a click on it opens or folds the block (not while it streams)."""

    def on_click(self, event: events.Click) -> None:
        block = self.parent
        if isinstance(block, ThinkingBlock) and not block.live:
            event.stop()
            block.post_message(ThinkingBlock.Toggle(block))
