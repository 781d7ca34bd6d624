"""Small things a user notices: the status line, counts, placeholders, empty new chats."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.cells import cell_len

from tests.uihelpers import make_app, screen_text, type_text, wait_for
from tui.engine.fake import FakeEngine
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.status_line import StatusLine, fit_status

LOADING = "loading model… ▰▰▰▱▱▱▱▱ 40% (Esc cancels)"
LONG_MODEL = "Meta-Llama-3.1-70B-Instruct-abliterated-uncensored.Q4_K_M"


def status_row(app) -> str:
    """The status line as shown: the screen row that holds the widget."""
    status = app.query_one(StatusLine)
    row = screen_text(app).splitlines()[status.region.y]
    return row[status.region.x : status.region.right].strip()


@pytest.mark.parametrize("width", [22, 30, 40, 54, 60, 80, 108, 140])
def test_fit_status_keeps_state_and_gauge_whole(width: int) -> None:
    parts = {
        "state": "ready",
        "ctx": "ctx 3071/4096",
        "speed": "58 tok/s",
        "persona": "Translator extraordinaire",
        "model": LONG_MODEL,
    }
    line = fit_status(parts, width)
    assert cell_len(line) <= width
    assert line.startswith("ready · ctx 3071/4096")
    assert not line.rstrip().endswith("·")


def test_fit_status_shortens_the_model_before_dropping_anything() -> None:
    parts = {"state": "ready", "ctx": "ctx 61/4096", "speed": "58 tok/s", "persona": "Bob"}
    line = fit_status({**parts, "model": LONG_MODEL}, 60)
    assert line.startswith("ready · ctx 61/4096 · 58 tok/s · Bob · Meta-Llama")
    assert line.endswith("…") and cell_len(line) == 60


@pytest.mark.parametrize("columns", [80, 110])
async def test_the_status_line_fits_at_80_and_110_columns(tmp_path: Path, columns: int) -> None:
    """Cut blindly at the right edge, the gauge went first and a stray `·` was left."""
    app = make_app(tmp_path)
    async with app.run_test(size=(columns, 24)) as pilot:
        status = app.query_one(StatusLine)
        await pilot.pause()
        status.state, status.used, status.n_ctx, status.speed = LOADING, 61, 4096, 58.0
        status.persona, status.model = "Translator", f"http://gpu-box:8080/v1 · {LONG_MODEL}"
        await pilot.pause()
        row = status_row(app)
        state = LOADING if columns > 80 else LOADING.removesuffix(" (Esc cancels)")
        assert row.startswith(f"{state} · ctx 61/4096"), row  # whole, and the gauge too
        assert not row.endswith("·")


async def test_a_new_chat_does_not_show_the_last_chats_speed(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(delay=0.01))
    async with app.run_test(size=(100, 24)) as pilot:
        await type_text(pilot, "hello there")
        await pilot.press("enter")
        status = app.query_one(StatusLine)
        await wait_for(pilot, lambda: status.speed > 0 and status.state == "ready")
        first = app.conversation_id
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: app.conversation_id not in (None, first))
        await pilot.pause()
        assert status.speed == 0 and "tok/s" not in status_row(app)
        await pilot.press("alt+down")  # back to the first chat: its own speed again
        await wait_for(pilot, lambda: app.conversation_id == first)
        assert status.speed > 0


async def test_search_counts_one_result(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    chat = app.store.create_conversation("assistant")
    app.store.add_message(chat.id, "user", "a unique zebra here")
    app.store.add_message(chat.id, "user", "two giraffes, two giraffes")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+f")
        await pilot.pause()
        await type_text(pilot, "zebra")
        await wait_for(pilot, lambda: "1 result" in screen_text(app))
        assert "1 results" not in screen_text(app)


async def test_the_input_says_ask_something_while_empty(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "ask something…" in screen_text(app))
        await type_text(pilot, "hi")
        await wait_for(pilot, lambda: "ask something…" not in screen_text(app))


async def test_an_unused_new_chat_is_not_kept(tmp_path: Path) -> None:
    """Ctrl+N Ctrl+N Ctrl+N left three empty "New chat" rows; only a used chat stays."""
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await type_text(pilot, "keep me")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 1)
        for _ in range(3):
            before = app.conversation_id
            await pilot.press("ctrl+n", "enter")
            await wait_for(pilot, lambda b=before: app.conversation_id not in (None, b))
        assert len(app.store.list_conversations()) == 2  # the used one and the current one
        await pilot.press("alt+down")  # leave the new chat unused
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 1)
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 2)
        await type_text(pilot, "now it is used")
        await pilot.press("enter")
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 3)
        titles = [str(o.prompt) for o in app.query_one(ChatList).options]
        assert sum("New chat" in t for t in titles) <= 1
    chats = app.store.list_conversations()  # quitting drops the last, unused one
    assert [c.title for c in chats] == ["now it is used", "keep me"]
    assert all(any(m.role == "user" for m in app.store.messages(c.id)) for c in chats)
