"""The main pane: the messages of one chat, with the answer streaming in."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown as RichMarkdown
from rich.measure import Measurement
from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from tui.core import store as st
from tui.ui.markdown_chunks import Chunk, MarkdownChunker

# Only the newest messages are mounted; earlier ones are mounted a page at a time
# when the user scrolls to the top, so a chat of thousands opens at once.
PAGE = 30
# At most this many messages stay mounted: paging in at one end unmounts pages
# at the other, so scrolling through a whole long chat keeps the DOM small.
MAX_MOUNTED = 3 * PAGE

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

    def __init__(self, message: st.Message, ai_name: str) -> None:
        super().__init__(classes=message.role, id=f"msg-{message.id}")
        self.message = message
        self.ai_name = ai_name

    def compose(self):  # type: ignore[override]
        yield Static(self._who(), classes="who")
        if self.message.role == "assistant" and self.message.status == st.PARTIAL:
            yield StreamingAnswer(self.message.content, classes="body")
        else:
            yield _body(self.message)
        if self._error():
            yield Static(Text(self._error()), classes="error-note")

    def _who(self) -> Text:
        name = "You" if self.message.role == "user" else self.ai_name
        notes = [_STATUS_NOTES.get(self.message.status, "")]
        versions = self.message.meta.get("alternatives")
        if versions and isinstance(versions, list):
            shown = self.message.meta.get("version")
            total = len(versions) + 1
            where = f"version {shown}/{total}" if isinstance(shown, int) else f"{total} versions"
            notes.append(f"{where} (v)")
        return Text(f"{name}  {' · '.join(n for n in notes if n)}".rstrip())

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


class ChatView(VerticalScroll):
    """Focus it (Tab, or click) to pick a message with ↑/↓ and act on it."""

    HELP_AREA = "Chat"

    BINDINGS = [
        Binding("up,k", "select(-1)", "Prev message", show=False),
        Binding("down,j", "select(1)", "Next message", show=False),
        Binding("c", "act('copy')", "Copy"),
        Binding("y", "act('copy_code')", "Copy code"),
        Binding("e", "act('edit')", "Edit"),
        Binding("r", "act('regenerate')", "Regenerate"),
        Binding("v", "act('version')", "Versions", show=False),
        Binding("d,delete", "act('delete')", "Delete"),
    ]

    class Action(Message):
        """The user asked for ``action`` on message ``message_id``."""

        def __init__(self, action: str, message_id: int) -> None:
            super().__init__()
            self.action = action
            self.message_id = message_id

    DEFAULT_CSS = """
    ChatView { height: 1fr; padding: 0 1; }
    ChatView .memory-marker { color: $warning; text-style: italic; margin: 0 0 1 0; }
    ChatView .hidden-note { color: $text-muted; margin: 0 0 1 0; }
    ChatView .empty { color: $text-muted; }
    """

    can_focus = True

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.conversation_id: int | None = None
        self.ai_name = "Assistant"
        self.selected: MessageBox | None = None
        self._messages: list[st.Message] = []  # the whole chat; only a window is mounted
        self._context_start_id: int | None = None
        self._generation = 0  # bumped by every show(): stale paging work stops
        self._first = 0  # the mounted window is _messages[_first:_last]
        self._last = 0
        self._paging = False
        self._show_lock = asyncio.Lock()
        # The text so far of an answer being generated (by message id), so that a
        # page mounted while it streams shows all of it: set by the app.
        self.live_text: Callable[[int], str | None] = lambda message_id: None

    async def show(
        self,
        conversation_id: int,
        messages: list[st.Message],
        ai_name: str,
        context_start_id: int | None = None,
        around: int | None = None,
    ) -> None:
        """Replace the pane with a window of a chat's messages.

        By default the newest page, scrolled to the end; with ``around`` (a
        message id) the page around that message, e.g. for a search result.
        One at a time: two overlapping rebuilds would mount the same messages.
        """
        async with self._show_lock:
            await self._show(conversation_id, messages, ai_name, context_start_id, around)

    async def _show(
        self,
        conversation_id: int,
        messages: list[st.Message],
        ai_name: str,
        context_start_id: int | None,
        around: int | None,
    ) -> None:
        self.workers.cancel_group(self, "paging")  # never page into a replaced chat
        self._paging = True  # scroll events during the first layout are not the user's
        self._generation += 1
        self.conversation_id = conversation_id
        self.ai_name = ai_name
        self.selected = None
        self._messages = list(messages)
        self._context_start_id = context_start_id
        index = next((i for i, m in enumerate(messages) if m.id == around), None)
        if index is None:
            # Enough to fill the pane (a message takes at least 3 rows), no more:
            # every mounted answer is rendered before the chat first shows.
            self._last = len(messages)
            self._first = max(self._last - min(PAGE, self.app.size.height // 3 + 2), 0)
        else:
            self._first = max(index - PAGE // 2, 0)
            self._last = min(self._first + PAGE, len(messages))
        await self.remove_children()
        widgets: list[Static | MessageBox] = []
        if self._first:
            widgets.append(Static(self._earlier_note(), classes="hidden-note earlier"))
        widgets += self._widgets_for(self._messages[self._first : self._last])
        if self._last < len(messages):
            widgets.append(Static(self._later_note(), classes="hidden-note later"))
        if not messages:
            widgets.append(Static("Say something to start the chat.", classes="empty"))
        await self.mount_all(widgets)
        if self.at_end:
            # Stay at the bottom while Markdown lays out and answers stream in, until
            # the user scrolls up (Textual re-anchors when they scroll back down).
            self.anchor()
        else:
            self.anchor(False)
        await self._wait_for_layout()
        self._paging = False

    @property
    def at_end(self) -> bool:
        """True when the newest message is mounted."""
        return self._last >= len(self._messages)

    def _earlier_note(self) -> str:
        return f"↑ {self._first} earlier messages (scroll up or Home to see them)"

    def _later_note(self) -> str:
        later = len(self._messages) - self._last
        return f"↓ {later} later messages (scroll down or End to see them)"

    def _widgets_for(self, chunk: list[st.Message]) -> list[Static | MessageBox]:
        """Message boxes, with the memory marker before the first remembered one."""
        marker_at = _first_at_or_after(self._messages, self._context_start_id)
        widgets: list[Static | MessageBox] = []
        for message in chunk:
            if message.id == marker_at:
                forgotten = sum(1 for m in self._messages if m.id < marker_at)
                if forgotten:
                    widgets.append(memory_marker(forgotten))
            if message.status == st.PARTIAL:
                live = self.live_text(message.id)
                if live is not None:
                    message = dataclasses.replace(message, content=live)
            widgets.append(MessageBox(message, self.ai_name))
        return widgets

    async def _unmount_messages(self, boxes: list[MessageBox]) -> None:
        """Unmount message boxes (and the memory marker just before any of them)."""
        doomed: list[Widget] = []
        for box in boxes:
            index = self.children.index(box)
            before = self.children[index - 1] if index else None
            if before is not None and before.has_class("memory-marker"):
                doomed.append(before)
            doomed.append(box)
            if box is self.selected:
                self.selected = None
        await self.remove_children(doomed)

    async def _refresh_note(self, which: str) -> None:
        """Update the "N earlier" or "N later" note (``which``), mounting it if absent."""
        text = self._earlier_note() if which == "earlier" else self._later_note()
        note = self.query_one_optional(f".{which}")
        if isinstance(note, Static):
            note.update(text)
        else:
            before = 0 if which == "earlier" else None  # the first child, or the last
            await self.mount(Static(text, classes=f"hidden-note {which}"), before=before)

    async def _trim_later(self, incoming: int) -> None:
        """Make room for ``incoming`` earlier messages: unmount the newest."""
        excess = (self._last - self._first + incoming) - MAX_MOUNTED
        if excess <= 0:
            return
        boxes = list(self.query(MessageBox))
        await self._unmount_messages(boxes[-excess:])
        self._last -= excess
        await self._refresh_note("later")
        self.anchor(False)

    async def _trim_earlier(self, incoming: int) -> None:
        """Make room for ``incoming`` later messages: unmount the oldest, view kept still."""
        excess = (self._last - self._first + incoming) - MAX_MOUNTED
        if excess <= 0:
            return
        height_before, y_before = self.virtual_size.height, self.scroll_y
        boxes = list(self.query(MessageBox))
        await self._unmount_messages(boxes[:excess])
        self._first += excess
        await self._refresh_note("earlier")
        await self._wait_for_layout()
        # From the offset before: the layout may already have clamped scroll_y.
        self.scroll_to(y=y_before - (height_before - self.virtual_size.height),
                       animate=False, immediate=True)  # fmt: skip

    async def show_earlier(self) -> bool:
        """Mount the previous page above the shown messages, keeping the view still."""
        if not self._first or self._paging:
            return False
        self._paging = True
        generation = self._generation
        try:
            first = max(self._first - PAGE, 0)
            note = self.query_one_optional(".earlier")  # always the first child
            if note is None or not isinstance(note, Static):
                return False
            await self._trim_later(self._first - first)
            await self._wait_for_layout()
            anchor = self.children[1] if len(self.children) > 1 else None
            height_before = self.virtual_size.height
            await self.mount_all(self._widgets_for(self._messages[first : self._first]),
                                 before=anchor)  # fmt: skip
            if generation != self._generation:
                return False
            self._first = first
            if first:
                note.update(self._earlier_note())
            else:
                await note.remove()
            await self._wait_for_layout()
            self.scroll_to(y=self.scroll_y + self.virtual_size.height - height_before,
                           animate=False, immediate=True)  # fmt: skip
        finally:
            if generation == self._generation:  # else show() owns the flag now
                self._paging = False
        return True

    async def show_later(self) -> bool:
        """Mount the next page below the shown messages (after a jump to an old one)."""
        if self.at_end or self._paging:
            return False
        self._paging = True
        generation = self._generation
        try:
            last = min(self._last + PAGE, len(self._messages))
            note = self.query_one_optional(".later")  # always the last child
            if note is None or not isinstance(note, Static):
                return False
            await self._trim_earlier(last - self._last)
            await self.mount_all(self._widgets_for(self._messages[self._last : last]),
                                 before=note)  # fmt: skip
            self._last = last
            if self.at_end:
                await note.remove()
                # Follow the newest text again once the user reaches the bottom.
                self._anchored = True
                self.release_anchor()
            else:
                note.update(self._later_note())
        finally:
            if generation == self._generation:  # else show() owns the flag now
                self._paging = False
        return True

    @property
    def _anchored(self) -> bool:  # type: ignore[override]
        # Textual 8's compositor sets a negative scroll offset for an anchored
        # widget whose content is shorter than the pane (a gap opens at the
        # top), so the anchor only holds once the chat fills the pane.
        pane = self.scrollable_content_region.height
        return self._anchor_wanted and self.virtual_size.height > pane

    @_anchored.setter
    def _anchored(self, value: bool) -> None:
        self._anchor_wanted = value

    def anchor(self, anchor: bool = True) -> None:
        """Follow the end (or stop), whatever an earlier ``release_anchor()`` said.

        Textual clears its "released" flag only while the content is taller than
        the pane, so a selection made before a rebuild (or in a short chat) would
        otherwise keep the pane from following the end once the content grows.
        """
        super().anchor(anchor)
        if anchor:
            self._anchor_released = False

    def action_scroll_home(self) -> None:
        """Home: to the first message, however long the chat, and select it."""
        self.release_anchor()
        if self._first:
            self.run_worker(self._jump(self._messages[0].id), group="jump", exclusive=True)
        else:
            self.scroll_home(animate=False, immediate=True)
            self._select_end(last=False)

    def action_scroll_end(self) -> None:
        """End: to the newest message (its page is mounted, if it was not), selected."""
        if not self.at_end:
            self.run_worker(self._jump(None), group="jump", exclusive=True)
        else:
            self._select_end(last=True)
            self.scroll_end(animate=False, immediate=True)
            self.anchor()  # follow the newest text again

    def _select_end(self, last: bool) -> None:
        """Select the first or the newest mounted message (when the view has the focus)."""
        boxes = list(self.query(MessageBox))
        if boxes and self.has_focus:
            self._select(boxes[-1] if last else boxes[0], scroll=False)

    def action_page_up(self) -> None:
        self._page(-1)

    def action_page_down(self) -> None:
        self._page(1)

    def _page(self, direction: int) -> None:
        """PgUp/PgDn: scroll a page, the selection moves with it (same place in the view).

        At either end of the chat the selection goes to the first or newest message.
        """
        height = self.scrollable_content_region.height
        box = self.selected if self.selected is not None and self.selected.is_attached else None
        offset = 0
        if box is not None:
            offset = min(max(box.virtual_region.y - round(self.scroll_y), 0), height - 1)
        before = self.scroll_y
        if direction < 0:
            self.release_anchor()  # else the next layout pulls the view back to the end
        self.scroll_to(y=before + direction * height, animate=False, immediate=True)
        if not self.has_focus:
            return
        if self.scroll_y == before:  # already at that end
            self._select_end(last=direction > 0)
            return
        target = self._box_at(round(self.scroll_y) + offset)
        if target is not None:
            self._select(target, scroll=False)

    async def _reshow(self, around: int | None = None) -> None:
        """Re-show this chat: the page around message ``around``, or the newest."""
        await self.show(self.conversation_id or 0, self._messages, self.ai_name,
                        self._context_start_id, around=around)  # fmt: skip

    async def _jump(self, around: int | None) -> None:
        """Show the page around message ``around`` (the top), or the newest (the end);
        the message it jumped to is the selected one."""
        await self._reshow(around)
        if around is not None:
            self.scroll_home(animate=False, immediate=True)
        self._select_end(last=around is None)

    async def _wait_for_layout(self) -> None:
        done = asyncio.Event()
        self.call_after_refresh(done.set)
        await done.wait()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._paging or not self._messages:
            return
        self._keep_selection_visible()
        if new_value <= 0 and self._first:
            self.run_worker(self.show_earlier(), group="paging", exclusive=True)
        elif new_value >= self.max_scroll_y and not self.at_end and old_value < new_value:
            self.run_worker(self.show_later(), group="paging", exclusive=True)

    async def add(self, message: st.Message) -> MessageBox:
        for empty in self.query(".empty"):
            await empty.remove()
        was_at_end = self.at_end
        self._messages.append(message)
        if not was_at_end:  # looking at old messages: jump back to the newest
            await self._reshow()
            return self.box(message.id) or MessageBox(message, self.ai_name)
        self._last = len(self._messages)
        box = MessageBox(message, self.ai_name)
        await self.mount(box)
        self.anchor()
        return box

    async def update_message(self, message: st.Message) -> None:
        """A message changed (an answer finished, another version picked): show it."""
        for index, known in enumerate(self._messages):
            if known.id == message.id:
                self._messages[index] = message
                break
        box = self.box(message.id)
        if box is not None:
            await box.finish(message)

    def on_focus(self) -> None:
        self._ensure_selection()

    def _ensure_selection(self) -> None:
        """After focus or a re-render: a selected message, marked, and on screen
        (the newest one if none was selected)."""
        if self.selected is None or not self.selected.is_attached:
            boxes = list(self.query(MessageBox))
            if boxes:
                self._select(boxes[-1])
            return
        self.selected.add_class("-selected")  # blur took the mark away
        self._keep_selection_visible()

    def _is_visible(self, box: MessageBox) -> bool:
        region = box.virtual_region
        top, height = self.scroll_y, self.scrollable_content_region.height
        return region.height > 0 and region.y < top + height and region.bottom > top

    def _box_at(self, y: int) -> MessageBox | None:
        """The message box at virtual row ``y`` (or the nearest one below, then above)."""
        boxes = list(self.query(MessageBox))
        for box in boxes:
            if box.virtual_region.bottom > y:
                return box
        return boxes[-1] if boxes else None

    def _keep_selection_visible(self) -> None:
        """The view moved (wheel, scroll bar, a page): the selection comes along.

        What ``c`` copies or ``d`` deletes is always a message the user can see.
        """
        box = self.selected
        if box is None or not self.has_focus or not box.is_attached or self._is_visible(box):
            return
        visible = [b for b in self.query(MessageBox) if self._is_visible(b)]
        if visible:
            below = box.virtual_region.y >= self.scroll_y
            self._select(visible[-1] if below else visible[0], scroll=False)

    def on_blur(self) -> None:
        if self.selected is not None:
            self.selected.remove_class("-selected")

    def action_select(self, step: int) -> None:
        boxes = list(self.query(MessageBox))
        if not boxes:
            return
        index = boxes.index(self.selected) if self.selected in boxes else len(boxes)
        self._select(boxes[min(max(index + step, 0), len(boxes) - 1)])

    def _select(self, box: MessageBox, scroll: bool = True) -> None:
        if self.selected is not None:
            self.selected.remove_class("-selected")
        self.selected = box
        box.add_class("-selected")
        if not scroll:
            return
        self.release_anchor()
        # Now, not after the next refresh: a deferred scroll would land after a
        # rebuild that came in between (End right after a search jump) and throw
        # the new page off its end. A box not laid out yet simply is not scrolled to.
        self.scroll_to_widget(box, animate=False, immediate=True)

    def action_act(self, action: str) -> None:
        self._ensure_selection()  # on screen: never a message scrolled out of sight
        if self.selected is not None and self.selected.is_attached:
            self.post_message(self.Action(action, self.selected.message.id))

    async def select_message(self, message_id: int) -> bool:
        """Select (and scroll to) a message, e.g. a search result, mounting pages as needed."""
        box = self.box(message_id)
        if box is None and any(m.id == message_id for m in self._messages):
            await self._reshow(around=message_id)
            await self._wait_for_layout()
            box = self.box(message_id)
        if box is not None:
            self.focus()
            self._select(box)
        return box is not None

    def box(self, message_id: int) -> MessageBox | None:
        try:
            return self.query_one(f"#msg-{message_id}", MessageBox)
        except Exception:
            return None

    async def set_memory_start(self, start_id: int | None) -> None:
        """Move the "beyond the model's context" marker before message ``start_id``."""
        if start_id == self._context_start_id and self.query(".memory-marker"):
            return
        self._context_start_id = start_id
        for marker in self.query(".memory-marker"):
            await marker.remove()
        messages = self._messages
        forgotten = sum(1 for m in messages if start_id and m.id < start_id)
        target = self.box(_first_at_or_after(messages, start_id) or -1)
        if forgotten and target is not None:
            await self.mount(memory_marker(forgotten), before=target)


def memory_marker(count: int) -> Static:
    noun = "message is" if count == 1 else "messages are"
    return Static(
        f"── {count} earlier {noun} beyond the model's context ──", classes="memory-marker"
    )


def _first_at_or_after(messages: list[st.Message], message_id: int | None) -> int | None:
    if not message_id:
        return None
    return next((m.id for m in messages if m.id >= message_id), None)
