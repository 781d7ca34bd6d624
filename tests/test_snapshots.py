"""SVG snapshots of whole screens at 80x24, where layout matters.

Regenerate after an intended change with ``pytest tests/test_snapshots.py
--snapshot-update`` and look at the report before committing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import textual

from tests.uihelpers import make_app
from tui.core import store as st
from tui.engine.fake import FakeEngine

SNAPSHOT_TEXTUAL = "8.2.8"  # pinned in pyproject.toml's test extra


@pytest.fixture(autouse=True)
def drawn_with_the_pinned_textual() -> None:
    """Never skipped: another Textual draws other pixels, and that must be seen, not hidden."""
    assert textual.__version__ == SNAPSHOT_TEXTUAL, (
        f"the snapshots are drawn with Textual {SNAPSHOT_TEXTUAL}, this is "
        f"{textual.__version__}: pip install -e '.[test]' (which pins it), or redraw them "
        "with --snapshot-update after upgrading the pin"
    )


def seeded_app(tmp_path: Path):
    store_path = tmp_path / "chats.db"
    store = st.Store(store_path)
    older = store.create_conversation("bob", "fake.gguf")
    store.add_message(older.id, "user", "Please tell me the largest city in Europe.")
    store.add_message(older.id, "assistant", "Sure. The largest city in Europe is Moscow.")
    chat = store.create_conversation("assistant", "fake.gguf")
    store.add_message(chat.id, "user", "Show me [bold]Python[/] to reverse a list")
    store.add_message(
        chat.id,
        "assistant",
        "Use slicing:\n\n```python\nitems = [1, 2, 3]\nprint(items[::-1])\n```\n\n"
        "Or `items.reverse()` to reverse **in place**.",
    )
    store.close()
    # The model never finishes loading: the status line is the same on every run.
    return make_app(tmp_path, FakeEngine(load_gate=threading.Event()))


def test_main_screen_80x24(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(seeded_app(tmp_path), terminal_size=(80, 24))


def test_sampling_panel_80x24(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(seeded_app(tmp_path), terminal_size=(80, 24), press=["f2"])


def thinking_app(tmp_path: Path):
    """A chat with a reasoning model: one answer after its thinking, one stopped mid-thought."""
    store = st.Store(tmp_path / "chats.db")
    chat = store.create_conversation("assistant", "fake.gguf")
    store.add_message(chat.id, "user", "Is 1001 a prime?")
    meta = {"thinking_tokens": 480, "thinking_seconds": 12.4, "completion_tokens": 600,
            "prompt_tokens": 40, "n_ctx": 4096, "tokens_per_second": 31.5}  # fmt: skip
    store.add_message(
        chat.id,
        "assistant",
        "No: 1001 = 7 × 11 × 13.",
        meta=meta,
        reasoning="Try small primes. 1001 / 7 = 143, and 143 = 11 × 13. So it is not prime.",
    )
    store.add_message(chat.id, "user", "And [bold]1009[/]?")
    store.add_message(
        chat.id,
        "assistant",
        "",
        status=st.CANCELLED,
        meta={"thinking_tokens": 35, "thinking_seconds": 2.0},
        reasoning="Check divisors up to 31: 2, 3, 5, 7 [red]no[/], 11, 13…",
    )
    store.close()
    return make_app(tmp_path, FakeEngine(load_gate=threading.Event()))


def test_thinking_folded_and_opened_80x24(snap_compare, tmp_path: Path) -> None:
    """The first answer's thinking folded to its line, the stopped one opened with t."""
    app = thinking_app(tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), press=["shift+tab", "t"])
