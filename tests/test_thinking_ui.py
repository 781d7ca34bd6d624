"""A reasoning model in the TUI: the thinking block, its modes and keys, copy, stop, versions.

The fake engine plays a reasoning model (its script returns (thinking, answer));
``thought_gate`` holds it between thinking and answer, so the screen can be read
while the model "thinks".
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.uihelpers import SIZE, make_app, screen_text, type_text, wait_for
from tui.core import store as st
from tui.engine.fake import FakeEngine
from tui.ui.widgets.chat_view import ChatView, MessageBox
from tui.ui.widgets.status_line import StatusLine
from tui.ui.widgets.thinking_block import (
    LiveTail,
    ThinkingBlock,
    ThinkingPrefs,
    duration,
    thinking_label,
)

THOUGHT = "The user greets me. I should greet back, briefly and kindly."
ANSWER = "Hello! How can I help?"


def thinker(thought: str = THOUGHT, answer: str = ANSWER):
    return lambda job: (thought, answer)


def answers(app) -> list[st.Message]:
    return [
        m
        for c in app.store.list_conversations()
        for m in app.store.messages(c.id)
        if m.role == "assistant"
    ]


def notified(app, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


def block(app) -> ThinkingBlock | None:
    found = list(app.query(ThinkingBlock))
    return found[-1] if found else None


async def ask(pilot, text: str = "hi") -> None:
    await type_text(pilot, text)
    await pilot.press("enter")


def test_labels_say_time_tokens_and_why_it_ended() -> None:
    assert thinking_label(True, 4.7, 120) == "Thinking… 4 s · 120 tokens"
    assert thinking_label(True, None, None) == "Thinking…"
    assert thinking_label(False, 12.2, 480) == "▸ Thought for 12 s · 480 tokens"
    assert thinking_label(False, 12.2, 1, is_open=True) == "▾ Thought for 12 s · 1 token"
    assert thinking_label(False, 3.0, 9, "stopped").endswith("9 tokens · stopped")
    assert [duration(s) for s in (0.44, 9.96, 12.4, 125)] == [
        "0.4 s",
        "10.0 s",
        "12 s",
        "2 min 5 s",
    ]


def test_prefs_mode_and_what_the_user_toggled() -> None:
    prefs = ThinkingPrefs()
    assert not prefs.is_open(1)
    prefs.toggled[1] = True
    assert prefs.is_open(1) and not prefs.is_open(2)
    prefs.set_mode("expanded")
    assert prefs.is_open(2) and not prefs.toggled  # a new mode wins over hand toggles
    prefs.set_mode("nonsense")
    assert prefs.mode == "collapsed"


def test_live_tail_wraps_only_the_end() -> None:
    from rich.console import Console

    console = Console(width=20, record=True)
    text = "\n".join(f"line {i}" for i in range(3000))
    console.print(LiveTail(text, lines=3))
    shown = console.export_text().splitlines()
    assert shown == ["line 2997", "line 2998", "line 2999"]


async def test_thinking_streams_live_then_folds_when_the_answer_starts(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(thinker(), thought_gate=gate))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "kindly." in screen_text(app))
        live = block(app)
        assert live is not None and live.live and live.has_class("-live")
        screen = screen_text(app)
        assert "Thinking…" in screen
        assert "Hello!" not in screen
        status = app.query_one(StatusLine)
        assert status.state == "thinking" and status.thinking_tokens == len(THOUGHT.split())
        assert "think 11 + 0 tok" in screen
        gate.set()
        await wait_for(pilot, lambda: any(m.status == st.COMPLETE for m in answers(app)))
        await pilot.pause()
        screen = screen_text(app)
        assert "▸ Thought for" in screen and "11 tokens" in screen
        assert "kindly" not in screen  # folded to its line
        assert "Hello! How can I help?" in screen
        (answer,) = answers(app)
        assert answer.content == ANSWER and answer.reasoning == THOUGHT  # apart, both kept
        assert answer.meta["thinking_tokens"] == 11
        assert status.state == "ready"
        assert status.thinking_tokens == 11 and status.answer_tokens == len(ANSWER.split())
        assert "think 11 + 5 tok" in screen


async def test_t_and_a_click_open_and_fold_the_thinking(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(thinker()))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "▸ Thought for" in screen_text(app))
        await pilot.press("shift+tab")  # the chat
        assert isinstance(app.focused, ChatView)
        await pilot.press("t")
        await wait_for(pilot, lambda: "kindly." in screen_text(app))
        assert "▾ Thought for" in screen_text(app)
        await pilot.press("t")
        await wait_for(pilot, lambda: "kindly." not in screen_text(app))
        head = app.query_one(".thinking-head")
        await pilot.click(head)
        await wait_for(pilot, lambda: "kindly." in screen_text(app))
        await pilot.click(app.query_one(".thinking-head"))
        await wait_for(pilot, lambda: "kindly." not in screen_text(app))


async def test_T_cycles_folded_open_hidden_for_every_answer(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(thinker()))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "▸ Thought for" in screen_text(app))
        await pilot.press("shift+tab", "T")
        await wait_for(pilot, lambda: "kindly." in screen_text(app))
        assert app.thinking_mode == "expanded"
        await pilot.press("T")
        await wait_for(pilot, lambda: "Thought for" not in screen_text(app))
        assert app.thinking_mode == "hidden" and not app.query(ThinkingBlock)
        assert "Hello! How can I help?" in screen_text(app)
        await pilot.press("T")
        await wait_for(pilot, lambda: "▸ Thought for" in screen_text(app))
        assert "kindly." not in screen_text(app)


async def test_config_can_start_with_thinking_hidden_even_while_it_streams(
    tmp_path: Path,
) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(thinker(), thought_gate=gate), thinking="hidden")
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        status = app.query_one(StatusLine)
        await wait_for(pilot, lambda: status.state == "thinking")
        await pilot.pause()
        assert not app.query(ThinkingBlock) and "briefly" not in screen_text(app)
        gate.set()
        await wait_for(pilot, lambda: "Hello! How can I help?" in screen_text(app))
        assert not app.query(ThinkingBlock)


async def test_C_copies_the_thinking_and_c_the_answer(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(thinker()))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "▸ Thought for" in screen_text(app))
        await pilot.press("shift+tab", "C")
        await wait_for(pilot, lambda: app.clipboard == THOUGHT)
        await pilot.press("c")
        await wait_for(pilot, lambda: app.clipboard == ANSWER)
        await pilot.press("k", "C")  # your own message: no thinking to copy
        await wait_for(pilot, lambda: notified(app, "has no thinking"))
        assert app.clipboard == ANSWER


async def test_stopped_while_thinking_keeps_the_thinking_marked(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(thinker(), thought_gate=gate))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "kindly." in screen_text(app))
        await pilot.press("escape")
        gate.set()
        await wait_for(pilot, lambda: any(m.status == st.CANCELLED for m in answers(app)))
        await pilot.pause()
        (answer,) = answers(app)
        assert answer.reasoning == THOUGHT and answer.content == ""
        assert "· stopped" in screen_text(app), screen_text(app)
        shown = block(app)
        assert shown is not None and not shown.live


async def test_thinking_is_shown_as_plain_text_never_markup(tmp_path: Path) -> None:
    hostile = "[bold red]not[/] **bold** [@click=app.quit]x[/] `code`"
    app = make_app(tmp_path, FakeEngine(thinker(hostile, "ok"), thought_gate=threading.Event()))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "**bold**" in screen_text(app))
        assert "[bold red]not[/]" in screen_text(app)


async def test_each_version_keeps_its_own_thinking(tmp_path: Path) -> None:
    scripts = iter([("first thought", "first answer"), ("second thought", "second answer")])
    app = make_app(tmp_path, FakeEngine(lambda job: next(scripts)))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "first answer" in screen_text(app))
        await pilot.press("shift+tab", "r")
        await wait_for(pilot, lambda: "second answer" in screen_text(app))
        app.query_one(ChatView).focus()
        await pilot.press("T")  # everything open
        await wait_for(pilot, lambda: "second thought" in screen_text(app))
        await pilot.press("v")
        await wait_for(pilot, lambda: "first answer" in screen_text(app))
        assert "first thought" in screen_text(app) and "second thought" not in screen_text(app)


async def test_a_page_mounted_mid_thought_shows_the_thinking_so_far(tmp_path: Path) -> None:
    gate = threading.Event()
    app = make_app(tmp_path, FakeEngine(thinker(), thought_gate=gate))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "kindly." in screen_text(app))
        chat = app.conversation_id
        assert chat is not None
        await app.open_conversation(chat)  # re-shown: the boxes are new
        await pilot.pause()
        boxes = list(app.query(MessageBox))
        assert boxes[-1].message.reasoning == THOUGHT
        assert "kindly." in screen_text(app) and block(app).live
        gate.set()
        await wait_for(pilot, lambda: "▸ Thought for" in screen_text(app))


async def test_a_search_hit_in_the_thinking_opens_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(thinker()))
    chat = app.store.create_conversation("assistant", "fake.gguf")
    app.store.add_message(chat.id, "user", "what is 6 times 7?")
    app.store.add_message(
        chat.id, "assistant", "42.", reasoning="Six sevens: multiplication gives forty-two."
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "▸ Thought" in screen_text(app))
        assert "multiplication" not in screen_text(app)
        await pilot.press("ctrl+f", "ctrl+t")
        await type_text(pilot, "multiplication")
        await wait_for(pilot, lambda: "1 result" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "multiplication gives" in screen_text(app))
        assert "▾ Thought" in screen_text(app)


async def test_f1_lists_the_thinking_keys_of_the_chat(tmp_path: Path) -> None:
    from tui.ui.widgets.keys_help import KeysHelp

    app = make_app(tmp_path, FakeEngine(thinker()))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot)
        await wait_for(pilot, lambda: "▸ Thought for" in screen_text(app))
        await pilot.press("shift+tab", "f1")
        await wait_for(pilot, lambda: bool(app.screen.query(KeysHelp)))
        title, rows = app.screen.query_one(KeysHelp).sections()[0]
        assert title == "Chat"
        described = {description: keys for keys, description in rows}
        assert described["Open/fold thinking"] == "t"
        assert described["All thinking: folded/open/hidden"] == "T"
        assert described["Copy thinking"] == "C"
        assert described["Copy"] == "c"


async def test_thinking_cut_short_says_why(tmp_path: Path) -> None:
    """A crash mid-thought (found partial at start), or the token limit, while thinking."""
    app = make_app(tmp_path, FakeEngine(thinker()))
    chat = app.store.create_conversation("assistant", "fake.gguf")
    app.store.add_message(chat.id, "user", "first")
    app.store.add_message(
        chat.id,
        "assistant",
        "",
        status=st.COMPLETE,
        meta={"finish_reason": "length", "thinking_tokens": 1024},
        reasoning="So long a thought that the limit came first.",
    )
    app.store.add_message(chat.id, "user", "second")
    app.store.add_message(
        chat.id,
        "assistant",
        "",
        status=st.PARTIAL,
        meta={"writer": "gone-host:1"},  # another host, long silent: counted as dead
        reasoning="Half a thought when the connection dropped.",
    )
    with app.store.transaction():
        app.store.conn.execute("update messages set updated_at = '2000-01-01'")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "interrupted" in screen_text(app))
        screen = screen_text(app)
        assert "▸ Thought · 1,024 tokens · cut off" in screen
        assert "▸ Thought · interrupted" in screen
        assert not any(b.live for b in app.query(ThinkingBlock))


def test_config_thinking_is_checked(tmp_path: Path) -> None:
    from tui.core.config import load_config

    path = tmp_path / "config.toml"
    path.write_text('thinking = "hidden"\n')
    path.chmod(0o600)
    tmp_path.chmod(0o700)
    assert load_config(path).thinking == "hidden"
    path.write_text('thinking = "open"\n')
    config = load_config(path)
    assert config.thinking == "collapsed"
    assert any("thinking" in p and "collapsed" in p for p in config.problems)
