"""Search as you type (Ctrl+F): the query runs off the UI thread, the newest one wins."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual.app import App
from textual.widgets import Input, OptionList

from tests.uihelpers import SIZE, screen_text, type_text, wait_for
from tui.core.store import Store
from tui.ui.screens.search import SearchScreen

APP_CSS = Path(__file__).resolve().parent.parent / "tui" / "ui" / "app.tcss"


class SlowStore(Store):
    """A store whose search for ``slow`` blocks until released (a huge database, a lock)."""

    def __init__(self, path: Path, slow: str) -> None:
        super().__init__(path)
        self.slow = slow
        self.release = threading.Event()
        self.slow_started = threading.Event()
        self.slow_done = threading.Event()
        self.queries: list[str] = []

    def search(self, query: str, limit: int = 100, thinking: bool = False):  # type: ignore[override]
        self.queries.append(query)
        if query == self.slow:
            self.slow_started.set()
            self.release.wait(30)
            try:
                return super().search(query, limit, thinking)
            finally:
                self.slow_done.set()
        return super().search(query, limit, thinking)


class Host(App[None]):
    CSS_PATH = str(APP_CSS)

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.results: list[tuple[int, int] | None] = []

    def on_mount(self) -> None:
        self.push_screen(SearchScreen(self.store), self.results.append)


def seeded(tmp_path: Path, slow: str = "") -> tuple[SlowStore, dict[str, int]]:
    store = SlowStore(tmp_path / "chats.db", slow)
    chat = store.create_conversation("assistant", title="Animals")
    ids = {}
    for text in ("a zebra in the zoo", "zero gravity", "a zealous giraffe"):
        ids[text] = store.add_message(chat.id, "user", text).id
    return store, ids


def shown(app: App) -> list[str]:
    results = app.screen.query_one(OptionList)
    return [str(results.get_option_at_index(i).prompt) for i in range(results.option_count)]


async def test_a_slow_query_never_blocks_typing_nor_shows_stale_results(tmp_path: Path) -> None:
    store, _ids = seeded(tmp_path, slow="ze")
    app = Host(store)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
            await type_text(pilot, "ze")
            # The search for "ze" is stuck in the database: the keys still go in.
            await wait_for(pilot, lambda: store.slow_started.is_set(), timeout=30)
            await type_text(pilot, "bra")
            box = app.screen.query_one("#query", Input)
            assert box.value == "zebra"
            assert not store.slow_done.is_set(), "typing waited for the slow search"
            await wait_for(pilot, lambda: "1 result" in screen_text(app), timeout=30)
            assert len(shown(app)) == 1 and "zebra" in shown(app)[0]
            # The stale search ends now: its three matches must not replace zebra's one.
            store.release.set()
            await wait_for(pilot, lambda: store.slow_done.is_set(), timeout=30)
            for _ in range(10):
                await pilot.pause(0.02)
            assert len(shown(app)) == 1 and "zebra" in shown(app)[0]
            assert "1 result" in screen_text(app)
    finally:
        store.release.set()
        store.close()


async def test_fast_typing_ends_with_the_results_of_the_whole_query(tmp_path: Path) -> None:
    store, _ids = seeded(tmp_path)
    app = Host(store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press(*"zealous")
        await wait_for(pilot, lambda: "1 result" in screen_text(app), timeout=30)
        assert len(shown(app)) == 1 and "zealous giraffe" in shown(app)[0]
        assert store.queries[-1] == "zealous"
        await pilot.press(*["backspace"] * 5)  # "ze": every message again
        await wait_for(pilot, lambda: "3 results" in screen_text(app), timeout=30)
    store.close()


async def test_enter_right_after_typing_opens_the_first_result(tmp_path: Path) -> None:
    """Enter before the (debounced) results are in waits for them, then opens the first."""
    store, ids = seeded(tmp_path)
    app = Host(store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press(*"gravity", "enter")
        await wait_for(pilot, lambda: app.results != [], timeout=30)
        chat_id = store.list_conversations()[0].id
        assert app.results == [(chat_id, ids["zero gravity"])]
    store.close()


async def test_enter_on_an_empty_box_opens_nothing_later(tmp_path: Path) -> None:
    store, _ids = seeded(tmp_path)
    app = Host(store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press("enter")
        await type_text(pilot, "zebra")
        await wait_for(pilot, lambda: "1 result" in screen_text(app), timeout=30)
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            await pilot.pause(0.05)
        assert app.results == [] and isinstance(app.screen, SearchScreen)
    store.close()


async def test_thinking_is_searched_only_when_asked_and_says_where_it_matched(
    tmp_path: Path,
) -> None:
    store, ids = seeded(tmp_path)
    chat = store.list_conversations()[0].id
    thought = store.add_message(
        chat, "assistant", "The answer is 42.", reasoning="Hmm, a zebra would say otherwise."
    )
    app = Host(store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen))
        await type_text(pilot, "zebra")
        await wait_for(pilot, lambda: "1 result" in screen_text(app), timeout=30)
        assert "zoo" in shown(app)[0]  # the answers only: the thinking is not searched
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "2 results" in screen_text(app), timeout=30)
        (hit,) = [line for line in shown(app) if "thinking:" in line]
        assert "a zebra would say" in hit and "42" not in hit
        await pilot.press("ctrl+t")  # off again: back to the answers
        await wait_for(pilot, lambda: "1 result" in screen_text(app), timeout=30)
        await pilot.click("#thinking")  # the check box, with the mouse
        await wait_for(pilot, lambda: "2 results" in screen_text(app), timeout=30)
        results = app.screen.query_one(OptionList)
        index = next(i for i, line in enumerate(shown(app)) if "thinking:" in line)
        results.highlighted = index
        results.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.results != [], timeout=30)
    assert app.results == [(chat, thought.id)]
    assert ids  # the seeded messages are still there
    store.close()
