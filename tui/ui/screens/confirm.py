"""A yes/no question in a small dialog, for actions that cannot be undone."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from tui.ui.screens.modal import Modal


class ConfirmScreen(Modal[bool]):
    """Dismisses with True for yes, False for no (also Esc and n).

    The "no" button has the focus at first, so a stray Enter never confirms
    a destructive action. The question is plain text, never markup: it
    usually contains a name the user typed.
    """

    BINDINGS = [
        Binding("escape,n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
        Binding("left,right", "toggle_focus", show=False),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question), id="question")
            with Horizontal():
                yield Button(self.yes_label, id="yes", variant="error", compact=True)
                yield Button(self.no_label, id="no", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_toggle_focus(self) -> None:
        yes, no = self.query_one("#yes", Button), self.query_one("#no", Button)
        (no if yes.has_focus else yes).focus()
