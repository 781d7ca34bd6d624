"""The main pane: the messages of one chat, with the answer streaming in.

The paging of long chats is in :mod:`tui.ui.widgets.chat_paging`, one message
in :mod:`tui.ui.widgets.message_box`; here are the selection and the keys.
"""

from __future__ import annotations

import asyncio

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from tui.core import store as st
from tui.core.config import THINKING_MODES
from tui.ui.widgets.chat_paging import (
    MAX_MOUNTED,
    PAGE,
    MessageWindow,
    first_at_or_after,
    memory_marker,
)
from tui.ui.widgets.message_box import MessageBox, StreamingAnswer
from tui.ui.widgets.thinking_block import ThinkingBlock

__all__ = ["MAX_MOUNTED", "PAGE", "ChatView", "MessageBox", "StreamingAnswer"]


class ChatView(MessageWindow):
    """Focus it (Tab, or click) to pick a message with ↑/↓ and act on it."""

    HELP_AREA = "Chat"

    BINDINGS = [
        Binding("up,k", "select(-1)", "Prev message", show=False),
        Binding("down,j", "select(1)", "Next message", show=False),
        Binding("c", "act('copy')", "Copy"),
        Binding("C", "act('copy_thinking')", "Copy thinking", show=False),
        Binding("y", "act('copy_code')", "Copy code"),
        Binding("t", "toggle_thinking", "Open/fold thinking", show=False),
        Binding("T", "thinking_mode", "All thinking: folded/open/hidden", show=False),
        Binding("e", "act('edit')", "Edit"),
        Binding("r", "act('regenerate')", "Regenerate"),
        Binding("left,h", "act('previous_sibling')", "Prev version", show=False),
        Binding("right,l", "act('next_sibling')", "Next version", show=False),
        Binding("v", "act('version')", "Next version (round)", show=False),
        Binding("b", "app.branch_tree", "Branches (tree)", show=False),
        Binding("d,delete", "act('delete')", "Delete"),
        Binding("g", "act('continue')", "Continue answer", show=False),
        Binding("f", "act('prefill')", "Start answer with…", show=False),
        Binding("p", "act('prompt')", "Prompt seen", show=False),
        Binding("x", "act('compare')", "Compare answers", show=False),
    ]

    class Action(Message):
        """The user asked for ``action`` on message ``message_id``."""

        def __init__(self, action: str, message_id: int) -> None:
            super().__init__()
            self.action = action
            self.message_id = message_id

    class ThinkingModeChanged(Message):
        """The user switched how thinking is shown (``T``): ``mode`` is one of THINKING_MODES."""

        def __init__(self, mode: str) -> None:
            super().__init__()
            self.mode = mode

    DEFAULT_CSS = """
    ChatView { height: 1fr; padding: 0 1; }
    ChatView .memory-marker { color: $warning; text-style: italic; margin: 0 0 1 0; }
    ChatView .hidden-note { color: $text-muted; margin: 0 0 1 0; }
    ChatView .empty { color: $text-muted; }
    """

    can_focus = True

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.conversation_id: int | None = None
        self._show_lock = asyncio.Lock()

    async def show(
        self,
        conversation_id: int,
        messages: list[st.Message],
        ai_name: str,
        context_start_id: int | None = None,
        around: int | None = None,
        forks: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        """Replace the pane with a window of a chat's messages (the branch on screen).

        By default the newest page, scrolled to the end; with ``around`` (a
        message id) the page around that message, e.g. for a search result.
        ``forks`` says which messages have other versions (``‹ 2/3 ›``).
        One at a time: two overlapping rebuilds would mount the same messages.
        """
        async with self._show_lock:
            self._forks = dict(forks or {})
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
                        self._context_start_id, around=around, forks=self._forks)  # fmt: skip

    def on_message_box_sibling_clicked(self, event: MessageBox.SiblingClicked) -> None:
        """A click on ``‹`` or ``›``: the same as ←/→ on that message."""
        event.stop()
        box = self.box(event.message_id)
        if box is not None:
            self._select(box, scroll=False)
        action = "previous_sibling" if event.step < 0 else "next_sibling"
        self.post_message(self.Action(action, event.message_id))

    async def _jump(self, around: int | None) -> None:
        """Show the page around message ``around`` (the top), or the newest (the end);
        the message it jumped to is the selected one."""
        await self._reshow(around)
        if around is not None:
            self.scroll_home(animate=False, immediate=True)
        self._select_end(last=around is None)

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
            return self.box(message.id) or MessageBox(message, self.ai_name, self.thinking)
        self._last = len(self._messages)
        box = MessageBox(message, self.ai_name, self.thinking, self._forks.get(message.id))
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

    # --- thinking -------------------------------------------------------------------

    async def action_toggle_thinking(self) -> None:
        """``t``: open or fold the thinking of the selected answer."""
        self._ensure_selection()
        box = self.selected
        if box is None or not box.is_attached:
            return
        if not box.message.reasoning:
            self.notify("This message has no thinking.")
            return
        if self.thinking.mode == "hidden":
            self.notify("Thinking is hidden: T shows it again.")
            return
        await self._toggle(box)

    async def _toggle(self, box: MessageBox) -> None:
        message_id = box.message.id
        self.thinking.toggled[message_id] = not self.thinking.is_open(message_id)
        await box.show_thinking()

    async def on_thinking_block_toggle(self, event: ThinkingBlock.Toggle) -> None:
        """A click on a thinking block's line: open or fold it, and select its message."""
        event.stop()
        box = next((a for a in event.block.ancestors if isinstance(a, MessageBox)), None)
        if box is None:
            return
        if self.has_focus:
            self._select(box, scroll=False)
        await self._toggle(box)

    async def open_thinking(self, message_id: int) -> None:
        """Show the thinking of message ``message_id`` open (a search found it there)."""
        box = self.box(message_id)
        if box is None or not box.message.reasoning:
            return
        if self.thinking.mode == "hidden":
            await self.set_thinking_mode("collapsed")  # it was asked for: show it
            self.post_message(self.ThinkingModeChanged("collapsed"))
        self.thinking.toggled[message_id] = True
        await box.show_thinking()
        self.scroll_to_widget(box, animate=False, immediate=True)

    async def action_thinking_mode(self) -> None:
        """``T``: thinking folded to a line (default), all of it open, or hidden."""
        mode = THINKING_MODES[(THINKING_MODES.index(self.thinking.mode) + 1) % len(THINKING_MODES)]
        await self.set_thinking_mode(mode)
        self.post_message(self.ThinkingModeChanged(mode))

    async def set_thinking_mode(self, mode: str) -> None:
        """Show every thinking block the ``mode`` way (see THINKING_MODES)."""
        self.thinking.set_mode(mode)
        for box in list(self.query(MessageBox)):
            await box.show_thinking()

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
        target = self.box(first_at_or_after(messages, start_id) or -1)
        if forgotten and target is not None:
            await self.mount(memory_marker(forgotten), before=target)
