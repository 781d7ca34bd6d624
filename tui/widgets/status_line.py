"""One line under the chat: model, persona, state, speed and context use."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    StatusLine.-error { color: $error; }
    """

    model: reactive[str] = reactive("")
    persona: reactive[str] = reactive("")
    state: reactive[str] = reactive("starting")
    speed: reactive[float] = reactive(0.0)
    used: reactive[int] = reactive(0)
    n_ctx: reactive[int] = reactive(0)

    def render(self) -> Text:
        parts = [self.state]
        if self.n_ctx:
            parts.append(f"ctx {self.used}/{self.n_ctx}")
        if self.speed:
            parts.append(f"{self.speed:.0f} tok/s")
        if self.persona:
            parts.append(self.persona)
        if self.model:
            parts.append(self.model)
        return Text(" · ".join(parts), no_wrap=True, overflow="ellipsis")

    def watch_state(self, state: str) -> None:
        self.set_class(state.startswith("error"), "-error")
