"""The exact prompt of one answer: what the model read, for debugging a persona or a template.

Shows the rendered text with its special tokens marked (``<|im_start|>``,
BOS), the token count, what the window left out, the sampling values and
the seed. The text is data, shown as plain text: never markup, and it was
cleaned of escape sequences where it entered (the engine events, the store).
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from tui.core.prompt_record import SOURCES
from tui.core.store_prompts import PromptRecord
from tui.ui.screens.modal import Modal

SPECIAL_STYLE = "bold reverse"
# Sampling values worth a line; the rest are the persona's defaults, shown too if changed.
SAMPLING_ORDER = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty",
                  "repeat_last_n", "presence_penalty", "frequency_penalty", "mirostat_mode",
                  "max_tokens", "n_ctx")  # fmt: skip


def facts(record: PromptRecord, left_out: int) -> list[str]:
    """The lines above the prompt: counts, what was dropped, sampling, seed, source."""
    info: dict[str, Any] = record.info
    lines = []
    tokens, n_ctx = info.get("tokens"), info.get("n_ctx")
    line = f"{tokens} tokens" if tokens is not None else "token count unknown"
    if n_ctx:
        line += f" of a {n_ctx}-token window"
    cached = info.get("cached_tokens")
    if cached:
        line += f" ({cached} reused from the cache)"
    lines.append(line)
    cut = int(info.get("cut") or 0)
    if left_out or cut:
        parts = []
        if left_out:
            parts.append(f"{left_out} earlier message{'s' if left_out != 1 else ''} left out")
        if cut:
            parts.append(f"{cut} earlier answer{'s' if cut != 1 else ''} shortened in the middle")
        lines.append("Truncation: " + ", ".join(parts) + " (the window is full).")
    else:
        lines.append("Truncation: nothing left out: the whole chat fits the window.")
    sampling = info.get("sampling") if isinstance(info.get("sampling"), dict) else {}
    shown = [f"{k}={sampling[k]}" for k in SAMPLING_ORDER if k in sampling]
    seed = info.get("seed")
    shown.append(f"seed={seed}" if seed is not None else "seed: the server's own")
    lines.append("Sampling: " + " ".join(shown))
    prefill = int(info.get("prefill") or 0)
    if prefill:
        lines.append(f"Went on from {prefill} characters of the answer already written.")
    source = str(info.get("source", ""))
    lines.append(f"Mode: {info.get('mode', '?')} · {SOURCES.get(source, source or 'unknown')}")
    return lines


def marked(text: str, special: list[str]) -> Text:
    """``text`` as plain text, its special tokens in :data:`SPECIAL_STYLE`."""
    out = Text(no_wrap=False)
    tokens = sorted({s for s in special if s}, key=len, reverse=True)
    if not tokens:
        out.append(text)
        return out
    pattern = re.compile("|".join(re.escape(s) for s in tokens))
    last = 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        out.append(match.group(), style=SPECIAL_STYLE)
        last = match.end()
    out.append(text[last:])
    return out


class PromptViewScreen(Modal[None]):
    """Read-only; Esc or q closes it, c copies the prompt text."""

    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Close"),
        Binding("c", "copy", "Copy prompt"),
    ]

    def __init__(self, record: PromptRecord | None, left_out: int = 0, who: str = "") -> None:
        super().__init__()
        self.record = record
        self.left_out = left_out
        self.who = who

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-view"):
            yield Label(Text(f"The prompt of {self.who or 'this answer'}"), id="prompt-title")
            if self.record is None:
                yield Static(
                    Text(
                        "No prompt was recorded for this answer: it was written before "
                        "llama-tui kept prompts, imported, or its generation never started."
                    ),
                    id="prompt-facts",
                )
            else:
                yield Static(Text("\n".join(facts(self.record, self.left_out))), id="prompt-facts")
                special = self.record.info.get("special")
                tokens = (
                    [s for s in special if isinstance(s, str)] if isinstance(special, list) else []
                )
                with VerticalScroll(id="prompt-body"):
                    yield Static(marked(self.record.text, tokens), id="prompt-text")
            yield Label("Esc: close · c: copy the prompt · special tokens are highlighted",
                        classes="hint")  # fmt: skip

    def on_mount(self) -> None:
        body = self.query("#prompt-body")
        if body:
            body.first().focus()

    def action_copy(self) -> None:
        if self.record is not None:
            self.app.copy_to_clipboard(self.record.text)
            self.notify("Prompt copied to the clipboard.")
