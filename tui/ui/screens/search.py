"""Full-text search across every chat; Enter jumps to the message."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.core.store import Store
from tui.ui.screens.modal import Modal

SNIPPET = 70


class SearchScreen(Modal[tuple[int, int] | None]):
    """Dismisses with (chat id, message id) of the chosen result, or None."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "focus_results", show=False),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="Search all chats…", id="query")
            yield OptionList(markup=False, id="results")
            yield Label("Type to search · ↓ to the results · Enter: open · Esc: close",
                        classes="hint")  # fmt: skip

    @on(Input.Changed, "#query")
    def search(self, event: Input.Changed) -> None:
        results = self.store.search(event.value) if len(event.value.strip()) >= 2 else []
        options = []
        for message, title in results:
            line = Text(title[:30], style="bold")
            line.append(f"  {_snippet(message.content, event.value)}")
            options.append(Option(line, id=f"{message.conversation_id}:{message.id}"))
        self.query_one(OptionList).set_options(options)
        count = f"{len(results)} result{'' if len(results) == 1 else 's'}"
        self.query_one(Label).update(count if event.value.strip() else "")

    @on(Input.Submitted, "#query")
    def submit(self) -> None:
        results = self.query_one(OptionList)
        if results.option_count:
            self._open(results.get_option_at_index(0).id)

    @on(OptionList.OptionSelected, "#results")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self._open(event.option.id)

    def _open(self, option_id: str | None) -> None:
        if option_id:
            chat, message = option_id.split(":")
            self.dismiss((int(chat), int(message)))

    def action_focus_results(self) -> None:
        self.query_one(OptionList).focus()


def _snippet(content: str, query: str) -> str:
    """The part of the message around the first matching word, on one line."""
    flat = " ".join(content.split())
    lower = flat.lower()
    positions = [lower.find(w.lower()) for w in query.split() if w and w.lower() in lower]
    at = min(positions) if positions else 0
    start = max(at - SNIPPET // 3, 0)
    text = flat[start : start + SNIPPET]
    return ("…" if start else "") + text + ("…" if start + SNIPPET < len(flat) else "")
