"""The TUI driven with Textual's Pilot (fake engine, plus one real-model run)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest

from tests.uihelpers import SIZE, make_app, screen_text, type_text, wait_for
from tui.core import store as st
from tui.core.engine_protocol import GenerationFinished, GenerationStarted, TokenText
from tui.engine.fake import FakeEngine
from tui.engine.local.client import LocalEngine
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.chat_view import MessageBox, StreamingAnswer
from tui.ui.widgets.prompt_input import PromptInput


def complete_answers(app) -> list[st.Message]:
    return [
        m
        for c in app.store.list_conversations()
        for m in app.store.messages(c.id)
        if m.role == "assistant" and m.status == st.COMPLETE
    ]


async def test_send_streams_an_answer_and_persists_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(delay=0.01))
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "hello there")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1)
        await pilot.pause()
        screen = screen_text(app)
        assert "You said: hello there" in screen
        assert "hello there" in screen.split("Chats")[1]  # sidebar title
        assert app.query_one(PromptInput).text == ""
    (conv,) = app.store.list_conversations()
    assert conv.title == "hello there" and conv.persona == "assistant"


async def test_multiline_entry_with_ctrl_j(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "line one")
        await pilot.press("ctrl+j")
        await type_text(pilot, "line two")
        assert app.query_one(PromptInput).text == "line one\nline two"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1)
    (conv,) = app.store.list_conversations()
    assert app.store.messages(conv.id)[0].content == "line one\nline two"


async def test_markup_and_escapes_are_shown_literally(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one(PromptInput).insert("[bold red]x[/] [link=http://e.vil]y[/link]\x1b[2J")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1)
        await pilot.pause()
        screen = screen_text(app)
        assert "[bold red]x[/] [link=http://e.vil]y[/link]" in screen
        assert "\x1b" not in screen


async def test_new_chat_with_persona_and_switching(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "first chat")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1)

        await pilot.press("ctrl+n")
        await pilot.pause()
        screen = screen_text(app)
        assert "Bob" in screen and "ChatLLaMa" in screen
        await type_text(pilot, "b")  # nothing typed into the prompt behind the modal
        for _ in range(5):
            await pilot.press("down")
            if app.screen.query_one("OptionList").highlighted_option.id == "bob":
                break
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.store.list_conversations()) == 2)
        await wait_for(pilot, lambda: app.query_one(PromptInput).has_focus)
        bob_chat = app.conversation_id
        assert app.store.get_conversation(bob_chat).persona == "bob"
        await type_text(pilot, "hi bob")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 2)
        assert "You said: hi bob" in screen_text(app)

        await pilot.press("alt+down")  # keyboard: to the older chat
        await wait_for(pilot, lambda: app.conversation_id != bob_chat)
        await pilot.pause()
        assert "You said: first chat" in screen_text(app)
        assert "You said: hi bob" not in screen_text(app)

        chat_list = app.query_one(ChatList)  # mouse: click the Bob chat (newest, on top)
        await pilot.click(ChatList, offset=(3, 1))
        await wait_for(pilot, lambda: app.conversation_id == bob_chat)
        assert chat_list.highlighted == 0


async def test_history_is_there_after_a_restart(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "remember me")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1)
        await pilot.press("ctrl+q")
    app.store.close()

    again = make_app(tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = screen_text(again)
        assert "remember me" in screen and "You said: remember me" in screen


LONG_ANSWER = (
    "\n\n".join(
        f"## Part {i}\n\nSome words about part {i}.\n\n```python\n"
        + "\n".join(f"value_{i}_{j} = {j}" for j in range(20))
        + "\n```"
        for i in range(8)
    )
    + "\n\nThe very last line."
)


async def test_a_long_answer_streams_in_chunks_and_ends_as_one_rendering(
    tmp_path: Path,
) -> None:
    """Finished chunks are not redrawn while the tail streams; the end is one Markdown."""
    # Slow enough that a loaded machine still sees the stream half way (8+ chunks).
    engine = FakeEngine(answer=lambda job: LONG_ANSWER, delay=0.015)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.query("StreamingAnswer > .chunk")) >= 4)
        streaming = app.query_one(StreamingAnswer)
        first_chunk = app.query("StreamingAnswer > .chunk").first()
        assert streaming.chunker.tail(streaming.text).count("\n") <= 8 + 12 + 4
        await wait_for(pilot, lambda: len(app.query("StreamingAnswer > .chunk")) >= 8)
        assert app.query("StreamingAnswer > .chunk").first() is first_chunk  # not re-mounted
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1, timeout=30)
        await pilot.pause()
        assert not app.query(StreamingAnswer)
        (box,) = [b for b in app.query(MessageBox) if b.message.role == "assistant"]
        assert len(box.query(".body")) == 1
        assert "The very last line." in screen_text(app)  # scrolled to the end
        assert "value_7_19 = 19" in screen_text(app)


async def test_idle_tidy_freezes_the_heap_and_frees_cycles_frozen_before(
    tmp_path: Path,
) -> None:
    """The full collection runs when idle; what a stream's start froze is not kept forever."""

    class Node:
        pass

    app = make_app(tmp_path)
    try:
        async with app.run_test(size=SIZE):
            node = Node()
            node.itself = node  # a cycle: only the cyclic collector frees it
            ref = weakref.ref(node)
            gc.freeze()  # what an answer's start does
            del node
            gc.collect()
            assert ref() is not None  # frozen: skipped by collections during the stream
            app._tidy_memory()
            assert ref() is None
            assert gc.get_freeze_count() > 0  # the survivors are frozen again
    finally:
        gc.unfreeze()


async def test_stop_key_cancels_and_keeps_partial_answer(tmp_path: Path) -> None:
    engine = FakeEngine(answer=lambda job: " ".join(["word"] * 400), delay=0.02)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(app.service.jobs))
        await pilot.pause(0.2)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.service.jobs)
        (conv,) = app.store.list_conversations()
        answer = app.store.messages(conv.id)[1]
        assert answer.status == st.CANCELLED
        assert 0 < answer.content.count("word") < 400
        assert "stopped" in screen_text(app)


async def test_message_sent_while_loading_is_queued(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(load_gate=gate))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "loading model" in screen_text(app)
        await type_text(pilot, "early")
        await pilot.press("enter")
        await pilot.pause()
        assert any("still loading" in str(n.message) for n in app._notifications)
        assert complete_answers(app) == []
        gate.set()
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1)


async def test_missing_model_is_explained_and_app_keeps_running(tmp_path: Path) -> None:
    app = make_app(tmp_path, model_path=None)
    app.model_path = None
    app.model_problem = "No model is installed. Install it with pip."
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "error: no model" in screen_text(app)
        await type_text(pilot, "hello")
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(PromptInput).text == "hello"  # not lost
        assert app.store.list_conversations() == []


@pytest.mark.model
async def test_real_model_answers_in_the_app(tmp_path: Path, model_path: Path) -> None:
    engine = LocalEngine(tmp_path / "engine.log")
    app = make_app(tmp_path, engine, model_path=model_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "What is the capital of France?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1, timeout=60)
        await pilot.pause()
        answer = complete_answers(app)[0]
        assert answer.content.strip()
        assert answer.meta["completion_tokens"] > 0
        assert "ready" in screen_text(app)
        assert answer.content.split()[0] in screen_text(app)


async def test_text_for_a_box_not_built_yet_is_kept_not_lost_or_fatal() -> None:
    """A page mounted by a worker may get streamed text before it has composed itself."""
    from dataclasses import replace

    answer = st.Message(7, 1, "assistant", "Hello", st.PARTIAL)
    box = MessageBox(answer, "Assistant")
    await box.append(" world")  # no StreamingAnswer child yet
    assert box.message.content == "Hello world"
    streaming = StreamingAnswer("Hello")
    await streaming.append(" there")  # no .tail child yet: no NoMatches
    assert streaming.text == "Hello there"
    await box.finish(replace(answer, content="Hello world!", status=st.COMPLETE))
    assert box.message.status == st.COMPLETE


async def test_streamed_text_is_painted_directly_and_nothing_is_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batched text goes one way (batcher → paint → service → screen), and the end of an
    answer is shown from what the service returns, not read back from the database."""
    engine = FakeEngine(answer=lambda job: " ".join(["word"] * 60), delay=0.005)
    app = make_app(tmp_path, engine)
    handled: list[type] = []
    reads: list[int] = []
    async with app.run_test(size=SIZE) as pilot:
        handle, get_message = app.service.handle, app.store.get_message

        def recording_handle(event):
            handled.append(type(event))
            if isinstance(event, GenerationStarted):
                reads.clear()  # sending read the new rows back (the store's own add_message)
            return handle(event)

        def counting_get_message(message_id: int) -> st.Message:
            reads.append(message_id)
            return get_message(message_id)

        monkeypatch.setattr(app.service, "handle", recording_handle)
        monkeypatch.setattr(app.store, "get_message", counting_get_message)
        await type_text(pilot, "go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(complete_answers(app)) == 1, timeout=30)
        await pilot.pause()
        assert "word word" in screen_text(app)
    assert GenerationStarted in handled and GenerationFinished in handled
    assert TokenText not in handled  # painted straight from the batcher, not re-posted
    assert reads == []  # the answer's end came from the service, not the database
    (answer,) = complete_answers(app)
    assert answer.content == " ".join(["word"] * 60)
