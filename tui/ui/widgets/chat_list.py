"""The sidebar: chats, most recently active first."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.core.store import Conversation


class ChatList(OptionList):
    HELP_AREA = "Chat list"
    DEFAULT_CSS = """
    ChatList {
        width: 24;
        height: 1fr;
        border: round $primary 50%;
        border-title-align: left;
    }
    ChatList:focus { border: round $primary; }
    """

    BINDINGS = [
        Binding("r", "act('rename')", "Rename"),
        Binding("d,delete", "act('delete')", "Delete"),
        Binding("p", "act('pin')", "Pin"),
        Binding("a", "act('archive')", "Archive"),
        Binding("u", "act('undo')", "Undo delete", show=False),
    ]

    class Action(Message):
        """The user asked for ``action`` on chat ``conversation_id`` (None for undo)."""

        def __init__(self, action: str, conversation_id: int | None) -> None:
            super().__init__()
            self.action = action
            self.conversation_id = conversation_id

    def __init__(self, **kwargs: object) -> None:
        super().__init__(markup=False, **kwargs)  # type: ignore[arg-type]
        self.border_title = "Chats"

    def action_act(self, action: str) -> None:
        index = self.highlighted
        chat = self.conversation_id_at(index) if index is not None else None
        if chat is not None or action == "undo":
            self.post_message(self.Action(action, chat))

    def show(self, conversations: list[Conversation], selected: int | None) -> None:
        """Replace the list; titles are plain text, never markup.

        While the user is working in the list, the highlight stays on the chat
        it was on (it may have moved, e.g. when pinned); otherwise it follows
        the open chat.
        """
        if self.has_focus and self.highlighted is not None:
            selected = self.conversation_id_at(self.highlighted) or selected
        width = max(self.size.width - 2, 20)
        self.set_options(
            Option(_one_line(("📌 " if c.pinned else "") + c.title, width), id=str(c.id))
            for c in conversations
        )
        for index, conversation in enumerate(conversations):
            if conversation.id == selected:
                self.highlighted = index
                break
        else:
            # E.g. the archived list, which never holds the open chat: keys act on a
            # row at once (not only after an arrow key).
            self.highlighted = 0 if conversations else None

    def conversation_id_at(self, index: int) -> int | None:
        option = self.get_option_at_index(index)
        return int(option.id) if option.id else None


def _one_line(title: str, width: int) -> Text:
    """Titles take one row each; long ones end in an ellipsis."""
    text = " ".join(title.split())
    return Text(text if len(text) <= width else text[: width - 1] + "…")
