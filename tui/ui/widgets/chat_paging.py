"""The chat pane's window onto a long chat: only a few pages of messages are mounted.

A chat of thousands of messages opens at once because only the newest page is
mounted; scrolling to either end mounts the next page there and unmounts pages
at the other end, so the DOM stays small however far the user scrolls.
:class:`MessageWindow` holds that window; :class:`~tui.ui.widgets.chat_view.ChatView`
adds the selection and the keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from tui.core import store as st
from tui.ui.widgets.message_box import MessageBox
from tui.ui.widgets.thinking_block import ThinkingPrefs

# Only the newest messages are mounted; earlier ones are mounted a page at a time
# when the user scrolls to the top, so a chat of thousands opens at once.
PAGE = 30
# At most this many messages stay mounted: paging in at one end unmounts pages
# at the other, so scrolling through a whole long chat keeps the DOM small.
MAX_MOUNTED = 3 * PAGE


class MessageWindow(VerticalScroll):
    """A scrolling pane showing ``_messages[_first:_last]``, paged in and out at the ends."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ai_name = "Assistant"
        self.selected: MessageBox | None = None
        self._messages: list[st.Message] = []  # the whole chat; only a window is mounted
        self._context_start_id: int | None = None
        # Messages with other versions (siblings): id -> (place from 1, how many).
        self._forks: dict[int, tuple[int, int]] = {}
        self._generation = 0  # bumped by every show(): stale paging work stops
        self._first = 0  # the mounted window is _messages[_first:_last]
        self._last = 0
        self._paging = False
        self.thinking = ThinkingPrefs()  # how thinking is shown (the T key, config's thinking)
        # The answer and thinking so far of an answer being generated (by message id),
        # so that a page mounted while it streams shows all of it: set by the app.
        self.live_text: Callable[[int], tuple[str, str] | None] = lambda message_id: None

    @property
    def shown_messages(self) -> list[st.Message]:
        """The messages of the branch on screen (all of them, mounted or not)."""
        return self._messages

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
        marker_at = first_at_or_after(self._messages, self._context_start_id)
        widgets: list[Static | MessageBox] = []
        for message in chunk:
            if message.id == marker_at:
                forgotten = sum(1 for m in self._messages if m.id < marker_at)
                if forgotten:
                    widgets.append(memory_marker(forgotten))
            if message.status == st.PARTIAL:
                live = self.live_text(message.id)
                if live is not None:
                    text, reasoning = live
                    message = dataclasses.replace(message, content=text, reasoning=reasoning)
            fork = self._forks.get(message.id)
            widgets.append(MessageBox(message, self.ai_name, self.thinking, fork))
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

    async def _wait_for_layout(self) -> None:
        done = asyncio.Event()
        self.call_after_refresh(done.set)
        await done.wait()


def memory_marker(count: int) -> Static:
    noun = "message is" if count == 1 else "messages are"
    return Static(
        f"── {count} earlier {noun} beyond the model's context ──", classes="memory-marker"
    )


def first_at_or_after(messages: list[st.Message], message_id: int | None) -> int | None:
    if not message_id:
        return None
    return next((m.id for m in messages if m.id >= message_id), None)
