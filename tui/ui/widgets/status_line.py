"""One line under the chat: state, context use, thinking and answer tokens, speed, persona,
model."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

SEPARATOR = " · "
# Parts are shortened (to at least these widths) then dropped in this order,
# so that the state and the ctx gauge always fit, whatever the width.
SHORTEN = (("model", 12), ("persona", 10))
DROP = ("speed", "model", "tokens", "persona")


def token_counts(thinking: int, answer: int) -> str:
    """``think 480 + 120 tok``: a reasoning model's answer; nothing for a plain one."""
    return f"think {thinking:,} + {answer:,} tok" if thinking else ""


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending with ``…`` when cut."""
    if cell_len(text) <= width:
        return text
    if width <= 0:
        return ""
    kept, used = [], 0
    for char in text:
        size = cell_len(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept).rstrip() + "…"


def fit_status(parts: dict[str, str], width: int) -> str:
    """Join ``parts`` (state, ctx, tokens, speed, persona, model) in at most ``width`` cells.

    Why: cut blindly at the right edge, the line lost the gauge first and
    ended in a stray ``·`` on an 80-column terminal.
    """
    parts = dict(parts)

    parts.setdefault("tokens", "")

    def joined() -> str:
        return SEPARATOR.join(text for text in parts.values() if text)

    for key, minimum in SHORTEN:
        excess = cell_len(joined()) - width
        if excess > 0 and cell_len(parts.get(key, "")) > minimum:
            parts[key] = shorten(parts[key], max(minimum, cell_len(parts[key]) - excess))
    for key in DROP:
        if cell_len(joined()) > width:
            parts[key] = ""
    state = parts["state"]
    if cell_len(joined()) > width and state.endswith(")") and " (" in state:
        parts["state"] = state[: state.rindex(" (")]  # a hint such as "(Esc cancels)"
    excess = cell_len(joined()) - width
    if excess > 0:  # the state gives way last; the gauge never does
        parts["state"] = shorten(parts["state"], max(1, cell_len(parts["state"]) - excess))
    return joined()


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
    """Tokens a second of the last (or running) answer, thinking and answer tokens alike."""
    thinking_tokens: reactive[int] = reactive(0)
    answer_tokens: reactive[int] = reactive(0)
    used: reactive[int] = reactive(0)
    n_ctx: reactive[int] = reactive(0)

    def render(self) -> Text:
        parts = {
            "state": self.state,
            "ctx": f"ctx {self.used}/{self.n_ctx}" if self.n_ctx else "",
            "tokens": token_counts(self.thinking_tokens, self.answer_tokens),
            "speed": f"{self.speed:.0f} tok/s" if self.speed else "",
            "persona": self.persona,
            "model": self.model,
        }
        width = self.content_size.width or 10_000  # not laid out yet: all of it
        return Text(fit_status(parts, width), no_wrap=True, overflow="crop")

    def watch_state(self, state: str) -> None:
        self.set_class(state.startswith("error"), "-error")
