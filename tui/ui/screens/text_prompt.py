"""Ask for one line of text (a chat title, a file name)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label

from tui.ui.screens.modal import Modal


class TextPromptScreen(Modal[str | None]):
    """Dismisses with the text (Enter) or None (Esc)."""

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, markup=False)
            yield Input(self.value, select_on_focus=True)
            yield Label("Enter: save · Esc: cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)
