"""The message box at the bottom: Enter sends, Ctrl+J (or Alt+Enter) adds a line."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")


class PromptInput(TextArea):
    """A multi-line input that submits on Enter.

    Pasted text (bracketed paste) is inserted as it is, newlines included,
    and never sends by itself.
    """

    DEFAULT_CSS = """
    PromptInput {
        height: auto;
        max-height: 8;
        min-height: 3;
        border: round $primary 50%;
    }
    PromptInput:focus { border: round $primary; }
    """

    HELP_AREA = "Message box"
    # Enter and the new-line keys are handled in _on_key (before TextArea's own
    # handling); the bindings name them for F1 and the command palette.
    BINDINGS = [
        Binding("enter", "submit", "Send", show=False),
        Binding("ctrl+j,alt+enter", "newline", "New line", show=False),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs: object) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)  # type: ignore[arg-type]

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        await super()._on_key(event)

    def action_submit(self) -> None:
        if self.text.strip():
            self.post_message(self.Submitted(self.text))

    def action_newline(self) -> None:
        self.insert("\n")
