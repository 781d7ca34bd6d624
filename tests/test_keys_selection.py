"""What a key acts on is what the user sees selected (fake engine, Pilot)."""

from __future__ import annotations

from pathlib import Path

from tests.uihelpers import SIZE, make_app, screen_text, wait_for
from tui.core import store as st
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.chat_view import ChatView, MessageBox
from tui.ui.widgets.prompt_input import PromptInput
from tui.ui.widgets.sampling_panel import SamplingPanel

COUNT = 76  # as in the report: more than two pages


def seed_long_chat(app) -> list[st.Message]:
    chat = app.store.create_conversation("assistant", title="Long chat")
    for number in range(COUNT):
        role = "user" if number % 2 == 0 else "assistant"
        app.store.add_message(chat.id, role, f"message number {number:02d} from {role}")
    return app.store.messages(chat.id)


def selected(app) -> MessageBox | None:
    return app.query_one(ChatView).selected


def selected_id(app) -> int | None:
    box = selected(app)
    return box.message.id if box is not None else None


def selected_is_shown(app) -> bool:
    """The selected box is marked and its text is on the screen."""
    box = selected(app)
    return (
        box is not None and box.has_class("-selected") and box.message.content in screen_text(app)
    )


async def test_home_end_and_pages_move_the_selection_with_the_view(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    messages = seed_long_chat(app)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(ChatView)
        view.focus()
        await wait_for(pilot, lambda: selected(app) is not None)
        assert selected_id(app) == messages[-1].id

        await pilot.press("home")
        await wait_for(pilot, lambda: selected_id(app) == messages[0].id)
        await wait_for(pilot, lambda: selected_is_shown(app))
        await pilot.press("c")
        await wait_for(pilot, lambda: app.clipboard == messages[0].content)

        await pilot.press("end")
        await wait_for(pilot, lambda: selected_id(app) == messages[-1].id)
        await wait_for(pilot, lambda: selected_is_shown(app))

        for key in ("pageup", "pageup", "pageup", "pagedown"):
            before = selected(app).message.id
            await pilot.press(key)
            await wait_for(pilot, lambda: selected_is_shown(app))
            now = selected(app).message.id
            assert now < before if key == "pageup" else now > before
        await pilot.press("c")
        await wait_for(
            pilot,
            lambda: selected(app) is not None and app.clipboard == selected(app).message.content,
        )


async def test_scrolling_away_brings_the_selection_along(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    seed_long_chat(app)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(ChatView)
        view.focus()
        await wait_for(pilot, lambda: selected(app) is not None)
        view.scroll_relative(y=-12, animate=False)  # as the mouse wheel does
        await pilot.pause()
        await wait_for(pilot, lambda: selected_is_shown(app))


async def test_delete_asks_with_the_start_of_the_message(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    messages = seed_long_chat(app)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one(ChatView).focus()
        await pilot.press("home")
        await wait_for(pilot, lambda: selected_id(app) == messages[0].id)
        await pilot.press("d")
        await wait_for(pilot, lambda: "Delete this message, or" in screen_text(app))
        assert "message number 00 from user" in screen_text(app)
        await pilot.press("y")  # only this message: the replies stay
        await wait_for(pilot, lambda: len(app.store.messages(messages[0].conversation_id)) == 75)
        assert app.store.messages(messages[0].conversation_id)[0].id == messages[1].id


async def test_the_archived_list_has_a_highlighted_row_at_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    kept = app.store.create_conversation("assistant", title="Kept chat")
    app.store.add_message(kept.id, "user", "hello")
    archived = app.store.create_conversation("assistant", title="Old chat")
    app.store.update_conversation(archived.id, archived=1)
    async with app.run_test(size=SIZE) as pilot:
        chat_list = app.query_one(ChatList)
        chat_list.focus()
        app.action_show_archived()
        await pilot.pause()
        assert chat_list.highlighted is not None
        await pilot.press("a")  # unarchive, no ↑ first
        await wait_for(pilot, lambda: not app.store.get_conversation(archived.id).archived)


async def test_esc_closes_the_sampling_panel(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(SamplingPanel)
        await pilot.press("f2")
        await wait_for(pilot, lambda: panel.display and panel.has_focus_within)
        await pilot.press("1")  # a number being typed: the first Esc only cancels it
        await pilot.press("escape")
        assert panel.display
        await pilot.press("escape")
        await wait_for(pilot, lambda: not panel.display)
        assert app.query_one(PromptInput).has_focus
        assert app.query_one(ChatList).display
