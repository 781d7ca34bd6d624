"""The prompts table: the exact prompt each answer was generated from.

Kept out of :class:`~tui.core.store.Store`'s message rows (see
``migrations._m006_prompts``); read only when a user opens the prompt view.
What comes back is cleaned like every stored text: a prompt is data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tui.core.sanitize import clean_data, clean_text
from tui.core.store import Store, now
from tui.core.store_errors import writes

PROMPT_CHARS_CAP = 4 * 1024 * 1024  # a window of a million tokens, roughly; more is not a prompt


@dataclass
class PromptRecord:
    """One answer's prompt, as stored."""

    message_id: int
    text: str
    info: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@writes
def save_prompt(store: Store, message_id: int, text: str, info: dict[str, Any]) -> None:
    """Store (or replace: a continued answer has the prompt of its last part) the prompt."""
    with store.transaction():
        store.conn.execute(
            "insert or replace into prompts (message_id, text, info, created_at)"
            " values (?, ?, ?, ?)",
            [message_id, text[:PROMPT_CHARS_CAP], json.dumps(info), now()],
        )


def load_prompt(store: Store, message_id: int) -> PromptRecord | None:
    """The stored prompt of an answer; None if it has none (older answers, imports)."""
    row = store.conn.execute(
        "select text, info, created_at from prompts where message_id = ?", [message_id]
    ).fetchone()
    if row is None:
        return None
    text, info_text, created_at = row
    try:
        info = json.loads(info_text) if isinstance(info_text, str) else {}
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    text = text if isinstance(text, str) else ""
    return PromptRecord(message_id, clean_text(text), clean_data(info), str(created_at or ""))
