"""Compare: one question, two answers side by side (two personas, models or samplings).

The left and right panes each pick a way to answer; ``r`` asks both (the
local engine answers one after the other), ``[`` or ``1`` keeps the left
answer as the chat's branch, ``]`` or ``2`` the right one. Both answers are
stored as versions of the answer to the question either way (``‹ ›`` in the
chat shows them). Answer text is shown as plain text: it is data.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Select, Static

from tui.core.chat_branches import Busy
from tui.core.compare import SIDES, Comparison
from tui.core.compare_variants import Variant

POLL_SECONDS = 0.1  # how often the panes show what the answers wrote


class CompareScreen(Screen[int | None]):
    """Dismisses with the kept answer's id, or None (Esc, nothing kept)."""

    BINDINGS = [
        Binding("r", "run", "Ask both"),
        Binding("left_square_bracket,1", "keep('left')", "Keep left"),
        Binding("right_square_bracket,2", "keep('right')", "Keep right"),
        Binding("escape", "close", "Stop / close"),
    ]

    def __init__(self, comparison: Comparison, choices: list[Variant], ai_name: str) -> None:
        super().__init__()
        self.comparison = comparison
        self.choices = choices
        self.ai_name = ai_name

    def compose(self) -> ComposeResult:
        question = " ".join(self.comparison.question.content.split())
        if len(question) > 200:
            question = question[:199] + "…"
        yield Label(Text(f"Compare answers to: “{question}”"), id="compare-question")
        with Horizontal(id="compare-panes"):
            for index, side in enumerate(SIDES):
                with Vertical(classes="compare-pane", id=f"pane-{side}"):
                    options = [(Text(v.label), i) for i, v in enumerate(self.choices)]
                    start = min(index, len(self.choices) - 1)
                    yield Select(options, value=start, allow_blank=False, id=f"variant-{side}")
                    yield Label("", id=f"state-{side}", classes="compare-state")
                    with VerticalScroll(id=f"scroll-{side}", classes="compare-scroll"):
                        yield Static("", id=f"text-{side}", classes="compare-text")
        yield Label(
            "Pick a way for each side · r: ask both · [ or 1: keep left · ] or 2: keep right "
            "· Esc: stop, then close",
            classes="hint",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(POLL_SECONDS, self.show)
        self.show()

    def variant(self, side: str) -> Variant:
        value = self.query_one(f"#variant-{side}", Select).value
        return self.choices[value if isinstance(value, int) else 0]

    def show(self) -> None:
        """Paint both panes from the comparison (the service saves the text as it streams)."""
        for side in SIDES:
            state = self.comparison.state(side)
            self.query_one(f"#state-{side}", Label).update(Text(state))
            text = self.comparison.text(side)
            widget = self.query_one(f"#text-{side}", Static)
            if getattr(widget, "_shown", None) != text:
                widget._shown = text  # type: ignore[attr-defined]
                widget.update(Text(text))

    def action_run(self) -> None:
        try:
            self.comparison.run(self.variant("left"), self.variant("right"))
        except (Busy, ValueError) as exc:
            self.notify(str(exc), severity="warning")
            return
        self.show()

    def action_keep(self, side: str) -> None:
        try:
            kept = self.comparison.keep(side)
        except (Busy, ValueError) as exc:
            self.notify(str(exc), severity="warning")
            return
        self.dismiss(kept)

    def action_close(self) -> None:
        if self.comparison.stop():
            self.notify("Stopped: what was written is kept. Esc again closes.")
            return
        self.dismiss(None)
