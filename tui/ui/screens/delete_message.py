"""Deleting a message that has replies: only it, or it and its replies (its branch)?"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from tui.ui.screens.modal import Modal

ONLY = "message"  # the message alone; its replies follow the message before it
BRANCH = "branch"  # the message and every reply under it


class DeleteMessageScreen(Modal[str | None]):
    """Dismisses with :data:`ONLY` (y), :data:`BRANCH` (b) or None (n, Esc: keep).

    "Keep" has the focus at first, so a stray Enter deletes nothing; ← → move
    between the buttons. The question is plain text: it quotes the message.
    """

    BINDINGS = [
        Binding("escape,n", "answer(None)", "Keep"),
        Binding("y", "answer('message')", "Only this message"),
        Binding("b", "answer('branch')", "With its replies"),
        Binding("left", "move(-1)", show=False),
        Binding("right", "move(1)", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question), id="question")
            with Horizontal():
                yield Button("Only this (y)", id="message", variant="warning", compact=True)
                yield Button("With its replies (b)", id="branch", variant="error", compact=True)
                yield Button("Keep", id="keep", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "keep" else event.button.id)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)

    def action_move(self, step: int) -> None:
        buttons = list(self.query(Button))
        focused = next((i for i, b in enumerate(buttons) if b.has_focus), len(buttons) - 1)
        buttons[(focused + step) % len(buttons)].focus()
