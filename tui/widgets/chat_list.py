"""The sidebar: chats, most recently active first."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.store import Conversation


class ChatList(OptionList):
    DEFAULT_CSS = """
    ChatList {
        width: 24;
        height: 1fr;
        border: round $primary 50%;
        border-title-align: left;
    }
    ChatList:focus { border: round $primary; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(markup=False, **kwargs)  # type: ignore[arg-type]
        self.border_title = "Chats"

    def show(self, conversations: list[Conversation], selected: int | None) -> None:
        """Replace the list; titles are plain text, never markup."""
        width = max(self.size.width - 2, 20)
        self.set_options(Option(_one_line(c.title, width), id=str(c.id)) for c in conversations)
        for index, conversation in enumerate(conversations):
            if conversation.id == selected:
                self.highlighted = index
                break

    def conversation_id_at(self, index: int) -> int | None:
        option = self.get_option_at_index(index)
        return int(option.id) if option.id else None


def _one_line(title: str, width: int) -> Text:
    """Titles take one row each; long ones end in an ellipsis."""
    text = " ".join(title.split())
    return Text(text if len(text) <= width else text[: width - 1] + "…")
