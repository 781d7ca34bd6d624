"""Full-text search across every chat; Enter jumps to the message.

Answers are searched; Ctrl+T (or the check box) searches a reasoning model's
thinking too, and a result found only in the thinking says so and opens it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.core.store import Message, Store, StoreError
from tui.ui.screens.modal import Modal

SNIPPET = 70
DEBOUNCE = 0.1  # seconds of no typing before the query runs


class SearchScreen(Modal[tuple[int, int] | None]):
    """Dismisses with (chat id, message id) of the chosen result, or None."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "focus_results", show=False),
        Binding("ctrl+t", "toggle_thinking", "Thinking too", show=False),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self._wanted = ""  # what the box says: only its results are ever shown
        self._shown = ""  # the query whose results are shown
        self._open_when_shown = False  # Enter came before the results: open the first
        self._in_thinking: set[int] = set()  # shown results found in the thinking only
        self.opened_in_thinking = False  # the chosen result was found in its thinking

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Input(placeholder="Search all chats…", id="query")
            yield Checkbox("Search thinking too (Ctrl+T)", compact=True, id="thinking")
            yield OptionList(markup=False, id="results")
            yield Label("Type to search · ↓ to the results · Enter: open · Esc: close",
                        classes="hint")  # fmt: skip

    @property
    def thinking(self) -> bool:
        """Whether a reasoning model's thinking is searched too (else the answers only)."""
        return self.query_one("#thinking", Checkbox).value

    def action_toggle_thinking(self) -> None:
        box = self.query_one("#thinking", Checkbox)
        box.value = not box.value

    @on(Checkbox.Changed, "#thinking")
    def _thinking_changed(self) -> None:
        """Search again, the other way (what the box says stays)."""
        self._shown = ""  # the shown results are of the other kind now
        self._open_when_shown = False
        query = self.query_one("#query", Input).value
        self.run_worker(self._search(query), group="search", exclusive=True)

    @on(Input.Changed, "#query")
    def search(self, event: Input.Changed) -> None:
        """Search as the user types, off the UI thread: typing never waits for the database.

        Each key replaces the search before it (an exclusive worker); the query
        runs once typing pauses for :data:`DEBOUNCE` seconds.
        """
        self._wanted = event.value
        self._open_when_shown = False  # Enter was for what the box said then
        self.run_worker(self._search(event.value), group="search", exclusive=True)

    async def _search(self, query: str) -> None:
        results: list[tuple[Message, str]] = []
        elsewhere: set[int] = set()
        problem = ""
        thinking = self.thinking
        if len(query.strip()) >= 2:
            await asyncio.sleep(DEBOUNCE)  # cancelled here by the next key
            try:
                results, elsewhere = await asyncio.to_thread(self._find, query, thinking)
            except (sqlite3.Error, StoreError) as exc:
                problem = f"Search failed: {exc}"
        if query == self._wanted and thinking == self.thinking:  # never a replaced search's
            self._show(query, results, problem, elsewhere)

    def _find(self, query: str, thinking: bool) -> tuple[list[tuple[Message, str]], set[int]]:
        """The results, and which of them are on another branch than their chat shows."""
        results = self.store.search(query, thinking=True) if thinking else self.store.search(query)
        branches: dict[int, set[int]] = {}
        for message, _title in results:
            if message.conversation_id not in branches:
                branches[message.conversation_id] = self.store.branch_ids(message.conversation_id)
        elsewhere = {m.id for m, _t in results if m.id not in branches[m.conversation_id]}
        return results, elsewhere

    def _show(
        self,
        query: str,
        results: list[tuple[Message, str]],
        problem: str,
        elsewhere: set[int] | None = None,
    ) -> None:
        """Put the results of ``query`` on screen (on the UI thread).

        A hit on a branch its chat does not show says so (opening it opens that branch).
        """
        options = []
        self._in_thinking = set()
        for message, title in results:
            line = Text(title[:30], style="bold")
            if elsewhere and message.id in elsewhere:
                line.append("  (other branch)", style="italic")
            if message.reasoning and not _mentions(message.content, query):
                self._in_thinking.add(message.id)  # found in the thinking alone
                line.append("  thinking: ", style="italic")
                line.append(_snippet(message.reasoning, query))
            else:
                line.append(f"  {_snippet(message.content, query)}")
            options.append(Option(line, id=f"{message.conversation_id}:{message.id}"))
        self.query_one(OptionList).set_options(options)
        count = f"{len(results)} result{'' if len(results) == 1 else 's'}"
        self.query_one(Label).update(Text(problem or (count if query.strip() else "")))
        self._shown = query
        if self._open_when_shown:
            self._open_when_shown = False
            self.submit()

    @on(Input.Submitted, "#query")
    def submit(self) -> None:
        """Enter in the box: open the first result (once the results of what was typed are in)."""
        if self._shown != self._wanted:
            self._open_when_shown = True
            return
        results = self.query_one(OptionList)
        if results.option_count:
            self._open(results.get_option_at_index(0).id)

    @on(OptionList.OptionSelected, "#results")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self._open(event.option.id)

    def _open(self, option_id: str | None) -> None:
        if option_id:
            chat, message = option_id.split(":")
            self.opened_in_thinking = int(message) in self._in_thinking
            self.dismiss((int(chat), int(message)))

    def action_focus_results(self) -> None:
        self.query_one(OptionList).focus()


def _mentions(text: str, query: str) -> bool:
    """Whether every word of ``query`` starts a word of ``text`` (as the search matched)."""
    words = {w.lower() for w in re.findall(r"\w+", text)}
    wanted = [w.lower() for w in re.findall(r"\w+", query)]
    return all(any(word.startswith(w) for word in words) for w in wanted)


def _snippet(content: str, query: str) -> str:
    """The part of the message around the first matching word, on one line."""
    flat = " ".join(content.split())
    lower = flat.lower()
    positions = [lower.find(w.lower()) for w in query.split() if w and w.lower() in lower]
    at = min(positions) if positions else 0
    start = max(at - SNIPPET // 3, 0)
    text = flat[start : start + SNIPPET]
    return ("…" if start else "") + text + ("…" if start + SNIPPET < len(flat) else "")
