"""Managing chats and messages in the TUI (fake engine)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlite_utils

from tests.uihelpers import SIZE, make_app, screen_text, type_text, wait_for
from tui.core import store as st
from tui.engine.fake import FakeEngine
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.prompt_input import PromptInput


def answers(app, status: str = st.COMPLETE) -> list[st.Message]:
    return [
        m
        for c in app.store.list_conversations() + app.store.list_conversations(archived=True)
        for m in app.store.messages(c.id)
        if m.role == "assistant" and m.status == status
    ]


def notified(app, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


async def say(pilot, app, text: str) -> None:
    before = len(answers(app))
    await type_text(pilot, text)
    await pilot.press("enter")
    await wait_for(pilot, lambda: len(answers(app)) == before + 1)
    await pilot.pause()


async def test_rename_pin_archive_from_the_chat_list(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "older chat")
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 2)
        await say(pilot, app, "newer chat")
        older = app.store.list_conversations()[1]

        app.query_one(ChatList).focus()
        await pilot.press("down")  # highlight the older chat
        await pilot.press("r")
        await pilot.pause()
        await pilot.press(*"Renamed", "enter")  # the old title is selected: replaced
        await wait_for(pilot, lambda: app.store.get_conversation(older.id).title == "Renamed")

        await pilot.press("p")  # pin: the older chat moves to the top
        await wait_for(pilot, lambda: app.store.list_conversations()[0].id == older.id)
        assert "📌 Renamed" in screen_text(app)

        app.query_one(ChatList).highlighted = 0
        await pilot.press("a")  # archive it: gone from the list, not from the database
        await wait_for(pilot, lambda: app.store.get_conversation(older.id).archived)
        assert "Renamed" not in screen_text(app)
        app.action_show_archived()
        await pilot.pause()
        assert "Renamed" in screen_text(app) and "Archived" in screen_text(app)


async def test_delete_asks_first_and_can_be_undone(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "precious words")
        app.query_one(ChatList).focus()
        await pilot.press("d")
        await pilot.pause()
        assert "Delete the chat" in screen_text(app)
        await pilot.press("n")  # keep
        await pilot.pause()
        assert len(app.store.list_conversations()) == 1

        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: app.store.list_conversations() == [])
        assert "precious words" not in screen_text(app)

        app.query_one(ChatList).focus()
        await pilot.press("u")
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 1)
        (restored,) = app.store.list_conversations()
        contents = [m.content for m in app.store.messages(restored.id)]
        assert contents == ["precious words", "You said: precious words"]


async def test_a_refused_delete_or_undo_is_a_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refusing (locked, read-only, full) must not crash the app or lose the copy."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "precious words")
        chat = app.conversation_id
        delete_conversation = app.store.delete_conversation

        def refused(conv_id: int) -> None:
            raise st.StoreError("Cannot write the chat database: it is locked.")

        monkeypatch.setattr(app.store, "delete_conversation", refused)
        app.action_delete_chat()
        await wait_for(pilot, lambda: "Delete the chat" in screen_text(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: notified(app, "it is locked"))
        assert app.is_running and app.conversation_id == chat
        assert app.service.deleted == []  # nothing was deleted: nothing to undo

        monkeypatch.setattr(app.store, "delete_conversation", delete_conversation)
        app.action_delete_chat()
        await wait_for(pilot, lambda: "Delete the chat" in screen_text(app))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.store.list_conversations() == [])
        import_json = app.service.formats.import_json

        def import_refused(store: st.Store, data: object) -> st.Conversation:
            raise st.StoreError("Cannot write the chat database: the disk is full.")

        monkeypatch.setattr(app.service.formats, "import_json", import_refused)
        await app.action_undo_delete()
        await wait_for(pilot, lambda: notified(app, "the disk is full"))
        assert app.is_running and len(app.service.deleted) == 1  # the copy is kept
        monkeypatch.setattr(app.service.formats, "import_json", import_json)
        await app.action_undo_delete()
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 1)


async def test_search_jumps_to_the_message(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "the quick brown fox")
        first = app.conversation_id
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: app.conversation_id != first)
        await say(pilot, app, "something else entirely")

        await pilot.press("ctrl+f")
        await pilot.pause()
        await type_text(pilot, "brown fox")
        await wait_for(pilot, lambda: "the quick brown fox" in screen_text(app))  # off-thread
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation_id == first)
        view = app.query_one(ChatView)
        await wait_for(pilot, lambda: view.selected is not None)
        assert view.selected.message.content == "the quick brown fox"


async def test_copy_edit_regenerate_and_versions(tmp_path: Path) -> None:
    replies = iter(["first answer\n\n```py\nprint(1)\n```", "second answer", "edited answer"])
    app = make_app(tmp_path, FakeEngine(answer=lambda job: next(replies)))
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "question")
        view = app.query_one(ChatView)
        view.focus()
        await pilot.pause()
        assert view.selected.message.role == "assistant"

        await pilot.press("y")
        assert app.clipboard == "print(1)\n"
        await pilot.press("c")
        assert app.clipboard.startswith("first answer")

        await pilot.press("r")  # regenerate: a second version beside the first
        await wait_for(pilot, lambda: any(m.content == "second answer" for m in answers(app)))
        await pilot.pause()
        await wait_for(pilot, lambda: "‹ 2/2 ›" in screen_text(app))  # which one, of how many
        view.focus()
        await pilot.press("v")
        await wait_for(pilot, lambda: answers(app)[0].content.startswith("first answer"))
        await wait_for(pilot, lambda: "‹ 1/2 ›" in screen_text(app))

        await pilot.press("up")  # the user's message
        assert view.selected.message.role == "user"
        await pilot.press("e")
        prompt = app.query_one(PromptInput)
        assert prompt.text == "question" and prompt.has_focus
        await pilot.press("end", *" again", "enter")
        await wait_for(pilot, lambda: [m.content for m in answers(app)] == ["edited answer"])
        (conv,) = app.store.list_conversations()
        assert [m.content for m in app.store.messages(conv.id)] == [
            "question again",
            "edited answer",
        ]
        kept = {m.content for m in app.store.tree(conv.id)}  # the first branch stays whole
        assert {"question", "second answer", "edited answer"} <= kept
        assert any(m.startswith("first answer") for m in kept)


async def test_help_and_palette_list_the_actions(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert app.screen.query("KeysHelp")
        await pilot.press("f1")
        await pilot.pause()
        assert not app.screen.query("KeysHelp")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for expected in ("New chat", "Search chats", "Delete chat", "Export chat as JSON"):
            assert expected in titles


async def test_persona_screen_starts_a_chat_and_persona_can_change(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "hello")
        first = app.conversation_id
        await pilot.press("f3")
        await pilot.pause()
        assert "Personas" in screen_text(app) or "bundled" in screen_text(app)
        for _ in range(6):
            option_list = app.screen.query_one("OptionList")
            if option_list.highlighted_option and option_list.highlighted_option.id == "bob":
                break
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation_id not in (None, first))
        assert app.store.get_conversation(app.conversation_id).persona == "bob"

        app.conversation_id = first
        app.action_change_persona()
        await pilot.pause()
        await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.store.get_conversation(first).persona != "assistant")
        await say(pilot, app, "again")
        job = app.engine.jobs[-1]
        persona = app.personas.get(app.store.get_conversation(first).persona)
        assert job.persona.ai_name == persona.ai_name


async def test_sampling_panel_changes_the_next_reply_and_saves_persona(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "hello")
        await pilot.press("f2")
        await pilot.pause()
        assert "temperature" in screen_text(app)
        await pilot.press("right", "right", "right")  # temperature +0.15
        await pilot.pause()
        conv = app.store.get_conversation(app.conversation_id)
        assert conv.sampling == {"temperature": 0.85}  # assistant default 0.7
        await pilot.press("f2")  # close, back to the prompt
        await wait_for(pilot, lambda: app.query_one(PromptInput).has_focus)
        await say(pilot, app, "again")
        assert app.engine.jobs[-1].sampling["temperature"] == 0.85

        await pilot.press("f2")
        await pilot.pause()
        await pilot.press("P")  # save as the persona's defaults: a user copy
        await wait_for(pilot, lambda: (tmp_path / "personas" / "assistant.toml").exists())
        saved = (tmp_path / "personas" / "assistant.toml").read_text()
        assert "temperature = 0.85" in saved
        assert app.store.get_conversation(app.conversation_id).sampling == {}


async def test_model_picker_lists_gguf_files_and_loads_the_choice(tmp_path: Path) -> None:
    from tests.test_models import fake_gguf

    other = fake_gguf(tmp_path / "models" / "other.Q4_K_M.gguf", template=False)
    app = make_app(tmp_path, model_dirs=[str(tmp_path / "models")])
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "hello")
        await pilot.press("f4")
        await wait_for(pilot, lambda: "Tiny Test" in screen_text(app))
        assert "no template: transcript" in screen_text(app)
        option_list = app.screen.query_one("OptionList")
        for _ in range(5):
            option = option_list.highlighted_option
            if option is not None and option.id == str(other):
                break
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.engine.loads[-1].path == str(other))
        assert app.store.get_conversation(app.conversation_id).model == str(other)
        await say(pilot, app, "with the other model")
        answer = app.store.messages(app.conversation_id)[-1]
        assert answer.model == str(other)


def long_chat(tmp_path: Path, count: int, context_start_id: int | None = None) -> int:
    """A chat of ``count`` messages "message number 0".."message number count-1"."""
    store = st.Store(tmp_path / "chats.db")
    conv = store.create_conversation("assistant")
    with store.conn:
        sqlite_utils.Database(store.conn)["messages"].insert_all(
            {"conversation_id": conv.id, "role": "user" if i % 2 == 0 else "assistant",
             "content": f"message number {i}", "status": "complete",
             "created_at": "t", "updated_at": "t"}
            for i in range(count)
        )  # fmt: skip
    if context_start_id is not None:
        store.update_conversation(conv.id, context_start_id=context_start_id)
    store.close()
    return conv.id


async def test_long_chat_opens_at_the_end_and_pages_in_earlier_messages(tmp_path: Path) -> None:
    from tui.ui.widgets.chat_view import PAGE, MessageBox

    long_chat(tmp_path, 2000, context_start_id=1995)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(ChatView)
        newest_page = SIZE[1] // 3 + 2  # enough to fill the pane, for a quick first frame
        assert len(view.query(MessageBox)) == newest_page  # not 2,000 widgets
        assert "message number 1999" in screen_text(app)
        assert "1994 earlier messages are beyond the model's context" in screen_text(app) or (
            view.query(".memory-marker")
        )
        view.focus()
        await pilot.press("home")  # straight to the first message
        await wait_for(pilot, lambda: "message number 0 " in screen_text(app))
        assert len(view.query(MessageBox)) == PAGE
        await pilot.press("end")  # and straight back
        await wait_for(pilot, lambda: "message number 1999" in screen_text(app))
        assert len(view.query(MessageBox)) == newest_page
        await pilot.press("pageup")  # scrolling up pages in earlier ones
        await pilot.press("pageup")
        await wait_for(pilot, lambda: len(view.query(MessageBox)) == newest_page + PAGE)
        # Jumping to a very old message (a search result) shows the page around it.
        await view.select_message(5)
        assert view.selected is not None and view.selected.message.content == "message number 4"
        assert len(view.query(MessageBox)) == PAGE
        await pilot.press("end")
        await wait_for(pilot, lambda: "message number 1999" in screen_text(app))
        assert view.at_end


async def test_page_up_alone_reaches_the_first_message_with_a_bounded_dom(
    tmp_path: Path,
) -> None:
    from tui.ui.widgets.chat_view import MAX_MOUNTED, MessageBox

    long_chat(tmp_path, 250)  # more than MAX_MOUNTED + a page: both ends get unmounted
    app = make_app(tmp_path)
    app.animation_level = "none"  # page by page without waiting for the scroll animation
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(ChatView)
        view.focus()
        most = 0
        for _ in range(400):
            if view._first == 0 and view.scroll_y == 0:
                break
            await pilot.press("pageup")
            most = max(most, len(view.query(MessageBox)))
        await pilot.pause()
        assert "message number 0 " in screen_text(app)
        assert most <= MAX_MOUNTED
        assert view.box(app.store.messages(app.conversation_id)[-1].id) is None
        top_shown = 0
        for _ in range(400):
            if view.at_end and view.scroll_y >= view.max_scroll_y:
                break
            await pilot.press("pagedown")
            most = max(most, len(view.query(MessageBox)))
            await pilot.pause()
            shown = [int(n) for n in re.findall(r"message number (\d+)", screen_text(app))]
            assert shown and min(shown) >= top_shown  # never thrown back up by a page-in
            top_shown = min(shown)
        await pilot.pause()
        assert "message number 249" in screen_text(app)
        assert most <= MAX_MOUNTED


async def test_an_answer_unmounted_while_streaming_comes_back_whole(tmp_path: Path) -> None:
    """Scrolled far up while an answer streams, then back: all of it, still streaming."""
    from tui.ui.widgets.chat_view import MessageBox

    long_chat(tmp_path, 200)
    words = [f"w{i}" for i in range(5000)]
    app = make_app(tmp_path, FakeEngine(answer=lambda job: " ".join(words), delay=0.01))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_text(pilot, "go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "w20" in screen_text(app))
        view = app.query_one(ChatView)
        answer_id = app.service.job_for(app.conversation_id).message_id
        view.focus()
        await pilot.press("home")
        await wait_for(pilot, lambda: view.box(answer_id) is None)  # unmounted while it streams
        await pilot.pause(0.3)
        await pilot.press("end")
        await wait_for(pilot, lambda: view.box(answer_id) is not None)
        box = view.box(answer_id)
        assert box is not None
        shown = box.query_one("StreamingAnswer").text
        assert shown.startswith("w0 w1 w2") and "w20 " in shown  # nothing missing
        streaming = box.query_one("StreamingAnswer")
        await wait_for(pilot, lambda: f"{shown.split()[-1]} w" in streaming.text)  # goes on
        await pilot.press("escape")  # stop it
        await wait_for(pilot, lambda: not app.service.jobs)
        await pilot.pause()
        saved = app.store.get_message(answer_id)
        assert saved.status == st.CANCELLED
        box = view.box(answer_id)
        assert isinstance(box, MessageBox) and box.message.content == saved.content
        assert saved.content.split()[-1] in screen_text(app)


async def test_crash_report_shows_no_local_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets (an API key in a local variable) never reach a crash report."""
    monkeypatch.setenv("TEST_API_KEY", "sk-secret-123")
    app = make_app(tmp_path)
    rendered: list[str] = []
    monkeypatch.setattr(app, "_print_error_renderables", lambda: rendered.extend(
        segment.text for renderable in app._exit_renderables for segment in renderable.segments
    ))  # fmt: skip

    def boom() -> None:
        api_key = os.environ["TEST_API_KEY"]  # noqa: F841
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        async with app.run_test(size=SIZE) as pilot:
            app.call_later(boom)
            await pilot.pause()
    text = "".join(rendered) or "".join(
        segment.text for renderable in app._exit_renderables for segment in renderable.segments
    )
    assert "RuntimeError" in text and "boom" in text
    assert "sk-secret-123" not in text


async def test_model_load_shows_progress_and_esc_cancels_it(tmp_path: Path) -> None:
    import threading

    from tests.test_models import fake_gguf
    from tui.ui.widgets.status_line import StatusLine

    engine = FakeEngine(load_gate=threading.Event())
    app = make_app(tmp_path, engine, model_path=fake_gguf(tmp_path / "m" / "only.Q4_K_M.gguf"))
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_for(pilot, lambda: "50%" in screen_text(app))
        assert "▰▰▰▰▱▱▱▱ 50% (Esc cancels)" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "cancelled" in app.query_one(StatusLine).state)
        assert engine.load_was_cancelled
        assert any("cancelled" in str(n.message) for n in app._notifications)
        assert "ready" not in screen_text(app)  # nothing is loaded: the status says so
        # Nothing was loaded before: the next message loads the chat's model and is answered.
        await say(pilot, app, "hello after the cancel")
        assert answers(app)[-1].content == "You said: hello after the cancel"
        assert engine.loaded == str(app.model_path)
        await wait_for(pilot, lambda: app.query_one(StatusLine).state == "ready")


async def test_cancelling_a_model_switch_keeps_the_previous_model(tmp_path: Path) -> None:
    """F4, pick another model, Esc while it loads: the chat goes on with the model it had."""
    import threading

    from tests.test_models import fake_gguf
    from tui.ui.widgets.status_line import StatusLine

    first = fake_gguf(tmp_path / "models" / "first.Q4_K_M.gguf")
    other = fake_gguf(tmp_path / "models" / "other.Q4_K_M.gguf", template=False)
    gate = threading.Event()
    gate.set()
    engine = FakeEngine(load_gate=gate)
    app = make_app(tmp_path, engine, model_path=first, model_dirs=[str(tmp_path / "models")])
    async with app.run_test(size=(100, 24)) as pilot:
        await say(pilot, app, "hello")
        gate.clear()  # the next load hangs until cancelled
        await pilot.press("f4")
        await wait_for(pilot, lambda: "found)" in screen_text(app))
        option_list = app.screen.query_one("OptionList")
        for _ in range(5):
            option = option_list.highlighted_option
            if option is not None and option.id == str(other):
                break
            await pilot.press("down")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "50%" in screen_text(app))
        await pilot.press("escape")
        status = app.query_one(StatusLine)
        await wait_for(pilot, lambda: status.state == "ready" and engine.loaded == str(first))
        assert status.model == "first.Q4_K_M"  # the truth: the model that answers
        assert app.store.get_conversation(app.conversation_id).model == str(first)
        await say(pilot, app, "still there?")
        last = app.store.messages(app.conversation_id)[-1]
        assert last.status == st.COMPLETE and last.content == "You said: still there?"
        assert last.model == str(first)


async def test_a_short_chat_follows_a_long_answer_after_a_selection(tmp_path: Path) -> None:
    """Selecting a message releases the anchor; sending a new one must re-arm it
    even while the chat is still shorter than the pane."""
    long_chat(tmp_path, 2)
    paragraphs = "\n\n".join(f"paragraph {i}" for i in range(60))
    app = make_app(tmp_path, FakeEngine(answer=lambda job: paragraphs, delay=0.002))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(ChatView)
        view.focus()
        await pilot.press("up")  # a selection: Textual's anchor is released
        assert view.selected is not None
        app.query_one(PromptInput).focus()
        await say(pilot, app, "go")
        await wait_for(pilot, lambda: "paragraph 59" in screen_text(app))
        assert view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y  # at the very end


async def test_after_a_restart_status_and_picker_show_the_chats_own_model(tmp_path: Path) -> None:
    import threading

    from tests.test_models import fake_gguf
    from tui.ui.widgets.status_line import StatusLine

    default = fake_gguf(tmp_path / "models" / "default.Q4_K_M.gguf")
    own = fake_gguf(tmp_path / "models" / "own.Q8_0.gguf")
    store = st.Store(tmp_path / "chats.db")
    conv = store.create_conversation("assistant", str(own))
    store.add_message(conv.id, "user", "hi")
    store.add_message(conv.id, "assistant", "hello")
    store.close()
    gate = threading.Event()  # the first load waits: the status must be right before it ends
    engine = FakeEngine(load_gate=gate)
    app = make_app(tmp_path, engine, model_path=default, model_dirs=[str(tmp_path / "models")])
    async with app.run_test(size=(100, 24)) as pilot:
        status = app.query_one(StatusLine)
        await wait_for(pilot, lambda: bool(engine.loads))
        await pilot.pause()
        assert status.model == "own.Q8_0"
        assert "default.Q4_K_M" not in screen_text(app)
        assert [load.path for load in engine.loads] == [str(own)]  # the chat's model, at once
        gate.set()
        await wait_for(pilot, lambda: status.state == "ready")
        await pilot.press("f4")
        await wait_for(pilot, lambda: "found)" in screen_text(app))
        assert app.screen.query_one("OptionList").highlighted_option.id == str(own)
        await pilot.press("escape")
        await pilot.pause()
        await say(pilot, app, "again")
        assert [load.path for load in engine.loads] == [str(own)]  # no silent second load
        assert status.model == "own.Q8_0"
