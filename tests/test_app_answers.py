"""The answer keys in the TUI (fake engine): g continue, f start the answer, p the prompt,
r on a message left without an answer."""

from __future__ import annotations

from pathlib import Path

from tests.test_app_manage import answers, notified, say
from tests.uihelpers import SIZE, make_app, screen_text, wait_for
from tui.core import store as st
from tui.core.store_prompts import load_prompt
from tui.engine.fake import FakeEngine
from tui.ui.screens.prompt_view import PromptViewScreen
from tui.ui.widgets.chat_view import ChatView


def scripted(*replies: str) -> FakeEngine:
    queue = iter(replies)
    return FakeEngine(answer=lambda job: next(queue))


async def focus_last_answer(pilot, app) -> ChatView:
    view = app.query_one(ChatView)
    view.focus()
    await pilot.pause()
    assert view.selected is not None and view.selected.message.role == "assistant"
    return view


async def test_g_continues_the_selected_answer(tmp_path: Path) -> None:
    engine = scripted("The planets are Mercury,", " Venus and Earth.")
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "Name planets")
        await focus_last_answer(pilot, app)
        await pilot.press("g")
        await wait_for(pilot, lambda: len(engine.jobs) == 2)
        assert engine.jobs[1].prefill == "The planets are Mercury,"
        await wait_for(
            pilot,
            lambda: (
                [m.content for m in answers(app)] == ["The planets are Mercury, Venus and Earth."]
            ),
        )
        await wait_for(pilot, lambda: "Venus and Earth." in screen_text(app))
        assert len(app.store.messages(app.conversation_id)) == 2  # the same answer, no new turn


async def test_f_starts_the_answer_with_the_users_words(tmp_path: Path) -> None:
    engine = scripted("first", " moon rises")
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "haiku please")
        await focus_last_answer(pilot, app)
        await pilot.press("f")
        await pilot.pause()
        for key in [*"Autumn", "enter"]:
            await pilot.press(key)
        await wait_for(pilot, lambda: len(engine.jobs) == 2)
        assert engine.jobs[1].prefill == "Autumn"
        await wait_for(pilot, lambda: any(m.content == "Autumn moon rises" for m in answers(app)))


async def test_r_answers_a_message_left_without_an_answer(tmp_path: Path) -> None:
    engine = scripted("lost", "found")
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "hello?")
        (answer,) = answers(app)
        app.store.delete_message(answer.id)
        await app.open_conversation(app.conversation_id)
        view = app.query_one(ChatView)
        view.focus()
        await pilot.pause()
        assert view.selected.message.role == "user"
        await pilot.press("r")
        await wait_for(pilot, lambda: [m.content for m in answers(app)] == ["found"])
        assert not notified(app, "no answer to regenerate")


async def test_p_shows_the_prompt_with_special_tokens_and_sampling(tmp_path: Path) -> None:
    app = make_app(tmp_path, scripted("an answer"))
    async with app.run_test(size=(100, 30)) as pilot:
        await say(pilot, app, "what is this")
        await focus_last_answer(pilot, app)
        await pilot.press("p")
        await wait_for(pilot, lambda: "<|im_start|>user" in screen_text(app))
        text = screen_text(app)
        assert "<|im_start|>user" in text and "what is this" in text
        assert "10 tokens" in text and "seed=" in text and "temperature=" in text
        assert "nothing left out" in text
        # The special tokens are marked (reverse video), the rest plain.
        shown = app.screen.query_one("#prompt-text").render()
        marked = [shown.plain[span.start : span.end] for span in shown.spans]
        assert set(marked) == {"<|im_start|>", "<|im_end|>"}
        assert len(marked) == shown.plain.count("<|im_start|>") + shown.plain.count("<|im_end|>")
        await pilot.press("c")
        assert app.clipboard.startswith("<|im_start|>")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PromptViewScreen))
        # It was stored with the answer: it survives a restart.
        (answer,) = answers(app)
        assert load_prompt(app.store, answer.id) is not None


async def test_p_on_an_answer_without_a_record_says_so(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await say(pilot, app, "hi")
        (answer,) = answers(app)
        app.store.conn.execute("delete from prompts")
        app.store.conn.commit()
        await focus_last_answer(pilot, app)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptViewScreen))
        assert "No prompt was recorded" in screen_text(app)


async def test_g_on_a_server_that_cannot_says_so(tmp_path: Path) -> None:
    class NoPrefill(FakeEngine):
        def can_prefill(self) -> bool:
            return False

    engine = NoPrefill(answer=lambda job: "cut short")
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await say(pilot, app, "hi")
        await focus_last_answer(pilot, app)
        await pilot.press("g")
        await pilot.pause()
        assert notified(app, "cannot go on") and len(engine.jobs) == 1
        assert answers(app, st.COMPLETE)[0].content == "cut short"


async def test_x_compares_two_ways_and_keeps_the_right_one(tmp_path: Path) -> None:
    from tui.ui.screens.compare import CompareScreen

    engine = FakeEngine(
        answer=lambda job: (
            "first answer"
            if len(engine.jobs) == 1
            else f"{job.persona.ai_name} says hi at {job.sampling['temperature']:g}"
        )
    )
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await say(pilot, app, "hello there")
        await focus_last_answer(pilot, app)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        screen = app.screen
        assert "Compare answers to: “hello there”" in screen_text(app)
        # Left: the chat's settings; right: a greedy temperature, picked from the list.
        right = screen.query_one("#variant-right")
        greedy = next(
            i for i, v in enumerate(screen.choices) if v.label.startswith("Temperature 0")
        )
        right.value = greedy
        await pilot.press("r")
        await wait_for(pilot, lambda: len(engine.jobs) == 3)
        await wait_for(pilot, lambda: "says hi at 0" in screen_text(app))
        await wait_for(pilot, lambda: screen_text(app).count("done (stop") == 2)
        assert engine.jobs[2].sampling["temperature"] == 0.0
        left_text = screen.query_one("#text-left").render().plain
        assert left_text.startswith("Assistant says hi at")
        await pilot.press("2")  # keep the right one
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen))
        shown = [m.content for m in app.store.messages(app.conversation_id)]
        assert shown == ["hello there", "Assistant says hi at 0"]
        await wait_for(pilot, lambda: "says hi at 0" in screen_text(app))
        # All three answers are versions of the answer: nothing was lost.
        question = app.store.messages(app.conversation_id)[0]
        assert len(app.store.children(question.id)) == 3


async def test_x_escape_stops_then_closes_keeping_the_branch(tmp_path: Path) -> None:
    from tui.ui.screens.compare import CompareScreen

    engine = FakeEngine(answer=lambda job: "one two three four five six seven", delay=0.3)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await say(pilot, app, "hi")
        await focus_last_answer(pilot, app)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.press("r")
        await wait_for(pilot, lambda: any(j.text for j in app.service.jobs.values()))
        assert "writing" in screen_text(app) or "waiting" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: notified(app, "Stopped"))
        await wait_for(pilot, lambda: not app.service.jobs)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen))
        shown = [m.content for m in app.store.messages(app.conversation_id)]
        assert shown == ["hi", "one two three four five six seven"]
