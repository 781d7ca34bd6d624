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
from textual.widget import Widget
from textual.widgets import Static

from tui.core import store as st
from tui.ui.markdown_chunks import Chunk, MarkdownChunker

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
        self, message: st.Message, ai_name: str, fork: tuple[int, int] | None = None
    ) -> None:
        super().__init__(classes=message.role, id=f"msg-{message.id}")
        self.message = message
        self.ai_name = ai_name
        self.fork = fork  # (its place among its siblings from 1, how many), if it has any

    def compose(self):  # type: ignore[override]
        yield WhoLine(self._who(), classes="who")
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

    async def set_fork(self, fork: tuple[int, int] | None) -> None:
        """The message got (or lost) versions: redraw its who line."""
        self.fork = fork
        who = self.query_one_optional(".who")
        if isinstance(who, Static):
            who.update(self._who())

    def _error(self) -> str:
        error = self.message.meta.get("error")
        return f"⚠ {error}" if error and self.message.status == st.ERROR else ""

    async def append(self, text: str) -> None:
        """Stream ``text`` onto the end of the answer being generated."""
        streaming = self.query_one_optional(StreamingAnswer)
        if streaming is None:  # just mounted, not built yet: compose will show it all
            content = self.message.content + text
            self.message = dataclasses.replace(self.message, content=content)
            return
        await streaming.append(text)

    async def finish(self, message: st.Message) -> None:
        """The answer is done (or another version is shown): final text, status, error.

        The whole answer is rendered once more as one piece, so the joins
        between the streamed chunks leave no trace.
        """
        self.message = message
        body, who = self.query_one_optional(".body"), self.query_one_optional(".who")
        if body is None or not isinstance(who, Static):
            return  # just mounted, not built yet: compose will show the final message
        await body.remove()
        await self.mount(_body(message), after=who)
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


class StreamingAnswer(Vertical):
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

    def compose(self):  # type: ignore[override]
        yield from self._chunk_widgets(self.chunker.feed(self.text))
        yield Static(_markdown(self.chunker.tail(self.text)), classes="tail")

    async def append(self, text: str) -> None:
        self.text += text
        tail = self.query_one_optional(".tail")
        if not isinstance(tail, Static):
            return  # not built yet: compose starts from self.text, the next paint catches up
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
