"""One message of the chat pane: who said it and what, the answer streaming in.

A finished message is laid out once (Markdown rendered once per width, long
messages cut at :data:`SHOWN_CHARS`); an answer being generated re-renders only
its newest lines. Model output is Markdown, never console markup.
"""

from __future__ import annotations

import dataclasses

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown as RichMarkdown
from rich.measure import Measurement
from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

from tui.core import store as st
from tui.ui.markdown_chunks import Chunk, MarkdownChunker
from tui.ui.widgets.stream_room import RoomToGrow
from tui.ui.widgets.thinking_block import ThinkingBlock, ThinkingPrefs
from tui.ui.wire import HOLD_RECHECK, paint_held

_STATUS_NOTES = {
    st.PARTIAL: "…",
    st.CANCELLED: "stopped",
    st.INTERRUPTED: "interrupted",
    st.ERROR: "error",
}


class MessageBox(Vertical):
    """One message: who said it, and what.

    A finished answer is one ``Static`` showing Rich's Markdown rendering
    (cheap to lay out, however long the chat); the answer being generated is
    a :class:`StreamingAnswer`, which re-renders only its newest lines.
    """

    DEFAULT_CSS = """
    MessageBox { height: auto; margin: 0 0 1 0; }
    MessageBox .who { color: $text-muted; text-style: bold; height: 1; }
    MessageBox.user .who { color: $accent; }
    MessageBox .body { padding: 0 0 0 1; }
    MessageBox .error-note { color: $error; height: auto; padding: 0 0 0 1; }
    MessageBox Vertical.body { height: auto; padding: 0; }
    MessageBox .hidden-note { color: $warning; padding: 0 0 0 1; }
    MessageBox.-selected { background: $boost; border-left: thick $accent; }
    """

    class SiblingClicked(Message):
        """The user clicked ``‹`` (``step`` -1) or ``›`` (+1) of message ``message_id``."""

        def __init__(self, message_id: int, step: int) -> None:
            super().__init__()
            self.message_id = message_id
            self.step = step

    def __init__(
        self,
        message: st.Message,
        ai_name: str,
        thinking: ThinkingPrefs | None = None,
        fork: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(classes=message.role, id=f"msg-{message.id}")
        self.message = message
        self.ai_name = ai_name
        self.prefs = thinking or ThinkingPrefs()
        self.fork = fork  # (its place among its siblings from 1, how many), if it has any

    def compose(self):  # type: ignore[override]
        yield WhoLine(self._who(), classes="who")
        block = self._thinking_block()
        if block is not None:
            yield block
        if self.message.role == "assistant" and self.message.status == st.PARTIAL:
            yield StreamingAnswer(self.message.content, classes="body")
        else:
            yield _body(self.message)
        if self._error():
            yield Static(Text(self._error()), classes="error-note")

    def _who(self) -> Text:
        """``You  ‹ 2/3 ›  stopped``: who, which of the message's versions, its state."""
        name = "You" if self.message.role == "user" else self.ai_name
        notes = [_STATUS_NOTES.get(self.message.status, "")]
        if self.message.meta.get("edited") is True:
            notes.append("edited")
        line = Text(name)
        if self.fork is not None:
            place, count = self.fork
            line.append("  ")
            line.append(f"‹ {place}/{count} ›", style="bold")
        note = " · ".join(n for n in notes if n)
        if note:
            line.append(f"  {note}")
        return line

    def arrows(self) -> tuple[int, int] | None:
        """The columns of ``‹`` and ``›`` on the who line (None: no other versions)."""
        if self.fork is None:
            return None
        name = "You" if self.message.role == "user" else self.ai_name
        left = Text(name).cell_len + 2
        place, count = self.fork
        return left, left + len(f"‹ {place}/{count} ›") - 1

    @property
    def thinking_live(self) -> bool:
        """The model is still thinking: the answer is open and has no text yet."""
        message = self.message
        return message.status == st.PARTIAL and not message.content and bool(message.reasoning)

    def _thinking_block(self) -> ThinkingBlock | None:
        """The thinking above the answer, as the pane's preferences show it (or None)."""
        message = self.message
        if message.role != "assistant" or not message.reasoning or self.prefs.mode == "hidden":
            return None
        live = self.thinking_live
        seconds = message.meta.get("thinking_seconds")
        tokens = message.meta.get("thinking_tokens")
        return ThinkingBlock(
            message.reasoning,
            live=live,
            is_open=self.prefs.is_open(message.id),
            seconds=float(seconds) if isinstance(seconds, int | float) else None,
            tokens=tokens if isinstance(tokens, int) else None,
            note=self._thinking_note(),
            started=self.prefs.began(message.id) if live else None,
        )

    def _thinking_note(self) -> str:
        """Why the thinking has no answer after it: stopped, cut off, interrupted."""
        message = self.message
        if message.content.strip() or message.status == st.PARTIAL:
            return ""
        if message.status == st.COMPLETE:
            reason = message.meta.get("finish_reason")
            return "cut off" if reason in ("length", "context", "capped") else ""
        return {st.CANCELLED: "stopped", st.INTERRUPTED: "interrupted", st.ERROR: "failed"}.get(
            message.status, ""
        )

    async def append_thinking(self, text: str, tokens: int | None = None) -> None:
        """Stream ``text`` onto the thinking of the answer being generated."""
        meta = (
            self.message.meta
            if tokens is None
            else {**self.message.meta, "thinking_tokens": tokens}
        )
        reasoning = self.message.reasoning + text
        self.message = dataclasses.replace(self.message, reasoning=reasoning, meta=meta)
        block = self.query_one_optional(ThinkingBlock)
        if block is not None:
            block.append(text, tokens)
            return
        who = self.query_one_optional(".who")
        block = self._thinking_block()
        if who is not None and block is not None:  # else compose shows it when it runs
            await self.mount(block, after=who)

    async def show_thinking(self) -> None:
        """The pane's thinking mode changed (or this block was toggled): show it so."""
        block = self.query_one_optional(ThinkingBlock)
        wanted = self.prefs.mode != "hidden" and bool(self.message.reasoning)
        if block is not None and wanted:
            block.set_open(self.prefs.is_open(self.message.id))
        elif block is not None:
            await block.remove()
        elif wanted:
            who = self.query_one_optional(".who")
            block = self._thinking_block()
            if who is not None and block is not None:
                await self.mount(block, after=who)

    def _error(self) -> str:
        error = self.message.meta.get("error")
        return f"⚠ {error}" if error and self.message.status == st.ERROR else ""

    async def append(self, text: str) -> None:
        """Stream ``text`` onto the end of the answer being generated."""
        block = self.query_one_optional(ThinkingBlock)
        if block is not None and block.live and text:
            block.end_live()  # the answer started: the thinking folds to its line
        streaming = self.query_one_optional(StreamingAnswer)
        if streaming is None:  # just mounted, not built yet: compose will show it all
            content = self.message.content + text
            self.message = dataclasses.replace(self.message, content=content)
            return
        if not self.message.content and text:  # only whether it started matters here
            self.message = dataclasses.replace(self.message, content=text)
        await streaming.append(text)

    async def finish(self, message: st.Message) -> None:
        """The answer is done (or another version is shown): final text, status, error.

        The whole answer is rendered once more as one piece, so the joins
        between the streamed chunks leave no trace.
        """
        self.message = message
        if message.status != st.PARTIAL:
            self.prefs.started.pop(message.id, None)  # its thinking has ended
        body, who = self.query_one_optional(".body"), self.query_one_optional(".who")
        if body is None or not isinstance(who, Static):
            return  # just mounted, not built yet: compose will show the final message
        await body.remove()
        for block in self.query(ThinkingBlock):
            await block.remove()
        await self.mount(_body(message), after=who)
        block = self._thinking_block()
        if block is not None:
            await self.mount(block, after=who)
        who.update(self._who())
        for note in self.query(".error-note"):
            await note.remove()
        if self._error():
            await self.mount(Static(Text(self._error()), classes="error-note"))


class WhoLine(Static):
    """The who line of a message; a click on ``‹`` or ``›`` shows another version."""

    def on_click(self, event: events.Click) -> None:
        box = self.parent
        if not isinstance(box, MessageBox):
            return
        arrows = box.arrows()
        offset = event.get_content_offset(self)
        if arrows is None or offset is None:
            return
        left, right = arrows
        step = -1 if abs(offset.x - left) <= 1 else 1 if abs(offset.x - right) <= 1 else 0
        if step:
            event.stop()
            self.post_message(MessageBox.SiblingClicked(box.message.id, step))


class StreamingAnswer(RoomToGrow, Vertical):
    """An answer as it streams: finished chunks stay as rendered, only the tail is redrawn.

    Re-rendering (and re-laying out) the whole answer on every repaint made
    each frame slower as the answer grew, and typing lagged behind; here a
    frame costs the same at the first line and at the thousandth.
    """

    DEFAULT_CSS = """
    StreamingAnswer { height: auto; }
    StreamingAnswer > .chunk { margin: 0 0 1 0; }
    StreamingAnswer > .chunk.-joined { margin: 0; }
    """

    def __init__(self, text: str, **kwargs: str) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.chunker = MarkdownChunker()
        self.shown = len(text)  # self.text[:shown] is on screen (or in compose's first frame)
        self.renders = 0  # re-renders of the tail (tests count them)
        self.held = 0  # appends that waited for the terminal or a key
        self._catch_up: Timer | None = None

    def compose(self):  # type: ignore[override]
        yield from self._chunk_widgets(self.chunker.feed(self.text))
        yield Static(_markdown(self.chunker.tail(self.text)), classes="tail")

    async def append(self, text: str) -> None:
        self.text += text
        if not self.is_attached:
            return  # compose starts from self.text
        if paint_held(self.app):  # the terminal is behind, or a key is being handled
            self.held += 1
            if self._catch_up is None:
                self._catch_up = self.set_timer(HOLD_RECHECK, self.catch_up)
            return
        await self.catch_up()

    async def catch_up(self) -> None:
        """Show the text that came since the last time (all of it at once)."""
        self._catch_up = None
        if paint_held(self.app):
            self._catch_up = self.set_timer(HOLD_RECHECK, self.catch_up)
            return
        tail = self.query_one_optional(".tail")
        if not isinstance(tail, Static) or self.shown == len(self.text):
            return  # not built yet (compose starts from self.text), or nothing new
        self.shown = len(self.text)
        self.renders += 1
        new = self.chunker.feed(self.text)
        if new:
            await self.mount_all(self._chunk_widgets(new), before=tail)
        tail.update(_markdown(self.chunker.tail(self.text)))

    @staticmethod
    def _chunk_widgets(chunks: list[Chunk]) -> list[Static]:
        return [
            Static(_markdown(chunk.source), classes="chunk -joined" if chunk.joined else "chunk")
            for chunk in chunks
        ]


def _markdown(text: str) -> RenderedOnce:
    """Model output as Markdown: Rich's renderer takes no console markup from it."""
    return RenderedOnce(RichMarkdown(text, code_theme="monokai", hyperlinks=False))


class RenderedOnce:
    """A Rich renderable that is rendered once per width, however often it is asked.

    Textual renders a widget's content twice per layout (once for its
    height, once for its lines); for Markdown with highlighted code that
    doubled the cost of every streaming frame.
    """

    def __init__(self, renderable: RichMarkdown) -> None:
        self.renderable = renderable
        self._width: int | None = None
        self._segments: list[Segment] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self._width != options.max_width:
            self._segments = list(console.render(self.renderable, options))
            self._width = options.max_width
        yield from self._segments

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.renderable)


def _body(message: st.Message) -> Widget:
    """A finished message: your text as typed, an answer as Markdown (never markup).

    Only its first :data:`SHOWN_CHARS` characters are laid out: a 20 MB
    message (an import, a paste) took half a minute and gigabytes to render,
    and every start-up opens the newest chat. The rest stays in the database,
    and a note says how to get at it.
    """
    content, hidden = shown_part(message.content)
    body = Static(Text(content) if message.role == "user" else _markdown(content), classes="body")
    if not hidden:
        return body
    note = Static(Text(hidden_note(hidden)), classes="hidden-note")
    return Vertical(body, note, classes="body")


SHOWN_CHARS = 20_000  # of one message; the rest is not laid out (see _body)


def shown_part(text: str) -> tuple[str, int]:
    """The start of ``text`` to show (cut at a line end if one is near) and how much is left."""
    if len(text) <= SHOWN_CHARS:
        return text, 0
    cut = text.rfind("\n", SHOWN_CHARS // 2, SHOWN_CHARS)
    cut = cut if cut > 0 else SHOWN_CHARS
    return text[:cut], len(text) - cut


def hidden_note(hidden: int) -> str:
    return (
        f"… {hidden:,} more characters not shown. The whole message is kept: select it and "
        "press c to copy it, or export the chat (Ctrl+P → Export)."
    )
