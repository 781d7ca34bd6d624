"""ChatService: the user's message is committed first; answers are saved as they stream."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from tui.core import chat_service as rn
from tui.core import store as st
from tui.core.engine_protocol import (
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    TokenText,
)
from tui.core.personas import load_library
from tui.engine.fake import FakeEngine


class ManualEngine:
    """An engine whose events the test sends by hand, in a chosen order."""

    def __init__(self) -> None:
        self.jobs: list = []
        self.cancelled: list[int] = []

    def start(self, on_event) -> None: ...
    def load(self, request) -> None: ...
    def close(self) -> None: ...

    def generate(self, job) -> None:
        self.jobs.append(job)

    def cancel(self, job_id: int) -> None:
        self.cancelled.append(job_id)


@pytest.fixture
def store(tmp_path: Path) -> st.Store:
    s = st.Store(tmp_path / "chats.db")
    yield s
    s.close()


@pytest.fixture
def runner(store: st.Store) -> rn.ChatService:
    return rn.ChatService(store, ManualEngine(), load_library(), "model.gguf")


def test_user_message_is_committed_before_generation(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("bob")
    user, answer, job_id = runner.send(conv.id, "Hello there")
    # Another connection sees both rows before any token arrived.
    other = st.Store(runner.store.path)
    rows = other.messages(conv.id)
    assert [(m.role, m.content, m.status) for m in rows] == [
        ("user", "Hello there", st.COMPLETE),
        ("assistant", "", st.PARTIAL),
    ]
    job = runner.engine.jobs[0]
    assert job.job_id == job_id
    assert job.history[-1].content == "Hello there"
    assert job.persona.ai_name == "Bob"
    assert job.sampling["n_ctx"] == 512  # Bob's persona default
    other.close()


def test_streamed_text_is_flushed_periodically_and_finished(
    runner: rn.ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "count")
    monkeypatch.setattr(rn, "FLUSH_INTERVAL", 0.0)
    runner.handle(GenerationStarted(job_id, 20, 512, 0, "chat"))
    runner.handle(TokenText(job_id, "one"))
    runner.handle(TokenText(job_id, " two"))
    assert runner.store.get_message(answer.id).content == "one two"
    assert runner.store.get_message(answer.id).status == st.PARTIAL
    runner.handle(GenerationFinished(job_id, "one two three", "stop", 3, 0.1, 20, 512))
    final = runner.store.get_message(answer.id)
    assert (final.content, final.status) == ("one two three", st.COMPLETE)
    assert final.meta["completion_tokens"] == 3 and final.meta["n_ctx"] == 512
    assert runner.jobs == {}


def test_cancel_keeps_the_partial_answer(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "tell me a story")
    runner.handle(TokenText(job_id, "Once upon"))
    assert runner.cancel(conv.id)
    assert runner.engine.cancelled == [job_id]
    runner.handle(GenerationFinished(job_id, "Once upon", "cancelled", 2, 0.1))
    final = runner.store.get_message(answer.id)
    assert (final.content, final.status) == ("Once upon", st.CANCELLED)


def test_failure_keeps_text_and_records_the_error(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "hi")
    runner.handle(TokenText(job_id, "Hel"))
    runner.handle(GenerationFailed(job_id, "The inference process stopped"))
    final = runner.store.get_message(answer.id)
    assert final.content == "Hel" and final.status == st.ERROR
    assert final.meta["error"] == "The inference process stopped"


def test_one_answer_at_a_time_per_chat(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    runner.send(conv.id, "first")
    with pytest.raises(rn.Busy):
        runner.send(conv.id, "second")
    other = runner.new_conversation("assistant")
    runner.send(other.id, "in another chat")  # queued behind the first
    assert len(runner.engine.jobs) == 2


def test_history_skips_empty_answers_and_merges_roles(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _u, answer, job_id = runner.send(conv.id, "first try")
    runner.handle(GenerationFailed(job_id, "boom"))  # no text: left out
    runner.send(conv.id, "second try")
    history = runner.engine.jobs[-1].history
    assert [(t.role, t.content) for t in history] == [("user", "first try\n\nsecond try")]


def test_context_start_is_remembered_between_turns(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    for text in ("a", "b", "c"):
        _u, _a, job_id = runner.send(conv.id, text)
        runner.handle(GenerationFinished(job_id, f"answer {text}", "stop"))
    _u, _a, job_id = runner.send(conv.id, "d")
    job = runner.engine.jobs[-1]
    assert job.start == 0
    runner.handle(GenerationStarted(job_id, 100, 512, 4, "chat"))  # engine dropped 4 turns
    runner.handle(GenerationFinished(job_id, "answer d", "stop"))
    runner.send(conv.id, "e")
    job = runner.engine.jobs[-1]
    # Only the remembered window is read and sent: the dropped turns stay in the store.
    assert job.start == 0
    assert [t.content for t in job.history] == ["c", "answer c", "d", "answer d", "e"]
    assert len(runner.store.messages(conv.id)) == 10


def test_greeting_becomes_first_message(tmp_path: Path, store: st.Store) -> None:
    (tmp_path / "greeter.toml").write_text('name = "G"\ngreeting = "Hi {{user}}!"\n')
    runner = rn.ChatService(store, ManualEngine(), load_library(user_dir=tmp_path), "m")
    conv = runner.new_conversation("greeter")
    assert [m.content for m in store.messages(conv.id)] == ["Hi User!"]


def test_fake_engine_streams_through_the_runner(store: st.Store) -> None:
    events: queue.Queue = queue.Queue()
    engine = FakeEngine()
    engine.start(events.put)
    runner = rn.ChatService(store, engine, load_library(), "fake")
    conv = runner.new_conversation("assistant")
    _u, answer, _job = runner.send(conv.id, "ping")
    while runner.jobs:
        runner.handle(events.get(timeout=5))
    assert store.get_message(answer.id).content == "You said: ping"


def test_terminal_escapes_never_reach_the_store(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    user, _a, job_id = runner.send(conv.id, "hi\x1b[2J\x1b]52;c;ZXZpbA==\x07 there")
    runner.handle(TokenText(job_id, "ok\x1b[31m red"))
    runner.flush_all()
    assert runner.store.get_message(user.id).content == "hi there"
    assert "\x1b" not in runner.store.messages(conv.id)[1].content


def finish(runner: rn.ChatService, job_id: int, text: str) -> None:
    runner.handle(GenerationFinished(job_id, text, "stop", 3, 0.1, 20, 512))


def test_regenerate_keeps_earlier_answers_reachable(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _u, first, job_id = runner.send(conv.id, "a joke please")
    finish(runner, job_id, "first joke")
    second, job_id = runner.regenerate(conv.id)
    assert runner.engine.jobs[-1].history[-1].content == "a joke please"
    finish(runner, job_id, "second joke")
    messages = runner.store.messages(conv.id)
    assert [m.content for m in messages] == ["a joke please", "second joke"]
    assert messages[1].meta["alternatives"][0]["content"] == "first joke"
    shown = runner.cycle_version(second.id)
    assert shown.content == "first joke"
    assert shown.meta["alternatives"][0]["content"] == "second joke"
    assert runner.cycle_version(second.id).content == "second joke"


def test_versions_keep_their_numbers_as_they_cycle(runner: rn.ChatService) -> None:
    """`3 versions (v)` never said which one was shown: each version keeps its number."""
    conv = runner.new_conversation("assistant")
    _u, answer, job_id = runner.send(conv.id, "a joke please")
    finish(runner, job_id, "joke 1")
    for text in ("joke 2", "joke 3"):
        answer, job_id = runner.regenerate(conv.id)
        finish(runner, job_id, text)
    shown = runner.store.get_message(answer.id)
    assert (shown.content, shown.meta["version"]) == ("joke 3", 3)
    seen = []
    for _ in range(4):
        shown = runner.cycle_version(answer.id)
        seen.append((shown.content, shown.meta["version"], len(shown.meta["alternatives"]) + 1))
    assert seen == [("joke 1", 1, 3), ("joke 2", 2, 3), ("joke 3", 3, 3), ("joke 1", 1, 3)]
    answer, job_id = runner.regenerate(conv.id)  # regenerated while joke 1 is shown
    finish(runner, job_id, "joke 4")
    newest = runner.store.get_message(answer.id)
    assert newest.meta["version"] == 4
    assert sorted(v["meta"]["version"] for v in newest.meta["alternatives"]) == [1, 2, 3]


def test_regenerate_needs_an_answer(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    with pytest.raises(ValueError, match="no answer"):
        runner.regenerate(conv.id)


def test_edit_and_resend_replaces_the_rest_of_the_chat(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    user, _a, job_id = runner.send(conv.id, "capital of Frnace?")
    finish(runner, job_id, "what?")
    _u, _a, job_id = runner.send(conv.id, "follow-up")
    finish(runner, job_id, "ok")
    runner.edit_and_resend(conv.id, user.id, "capital of France?")
    messages = runner.store.messages(conv.id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "capital of France?"),
        ("assistant", ""),
    ]
    assert [t.content for t in runner.engine.jobs[-1].history] == ["capital of France?"]
