"""ChatService: the user's message is committed first; answers are saved as they stream;
chats are deleted (with an undo copy), restored and exported in one place for the TUI and the CLI.
"""

from __future__ import annotations

import dataclasses
import queue
import stat
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
from tui.formats import chats as chat_formats


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
    runner.handle(GenerationStarted(job_id, 100, 512, 4, "chat"))  # engine dropped 4 turns
    runner.handle(GenerationFinished(job_id, "answer d", "stop"))
    runner.send(conv.id, "e")
    job = runner.engine.jobs[-1]
    # Only the remembered window is read and sent: the dropped turns stay in the store.
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


def test_regenerate_needs_an_answer(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    with pytest.raises(ValueError, match="no answer"):
        runner.regenerate(conv.id)


# Regenerate, edit and versions (now branches of a tree): tests/test_branches.py


# --- what handle() says changed -------------------------------------------------------


def test_handle_returns_the_answer_as_saved(runner: rn.ChatService) -> None:
    """The UI shows what handle() returns: it must be what the store now holds."""
    conv = runner.new_conversation("assistant")
    for text in ("a", "b"):
        _u, _a, job_id = runner.send(conv.id, text)
        finish(runner, job_id, f"answer {text}")
    _u, answer, job_id = runner.send(conv.id, "c")
    started = runner.handle(GenerationStarted(job_id, 100, 512, 2, "chat"))
    assert started is not None and started.message is None
    assert started.job.context_start_id == runner.store.get_conversation(conv.id).context_start_id
    assert started.job.context_start_id is not None  # the window moved: two turns dropped
    piece = runner.handle(TokenText(job_id, "par\x1b[31mtial"))
    assert piece is not None and piece.text == "partial"  # cleaned, as saved
    done = runner.handle(GenerationFinished(job_id, "whole answer", "context", 3, 0.1, 20, 512))
    assert done is not None and done.message is not None
    saved = runner.store.get_message(answer.id)
    assert dataclasses.replace(done.message, updated_at="") == dataclasses.replace(
        saved, updated_at=""
    )
    assert saved.content.endswith(rn.CONTEXT_LIMIT_NOTE)

    _u, failed, job_id = runner.send(conv.id, "d")
    runner.handle(TokenText(job_id, "half"))
    ended = runner.handle(GenerationFailed(job_id, "boom"))
    assert ended is not None and ended.message is not None
    saved = runner.store.get_message(failed.id)
    assert (ended.message.content, ended.message.status, ended.message.meta) == (
        saved.content,
        saved.status,
        saved.meta,
    )
    assert runner.handle(TokenText(job_id, "late")) is None  # not a job of ours any more


def test_an_answer_whose_chat_was_deleted_ends_without_a_message(
    runner: rn.ChatService,
) -> None:
    conv = runner.new_conversation("assistant")
    _u, _a, job_id = runner.send(conv.id, "hi")
    runner.store.delete_conversation(conv.id)  # e.g. by `llama-tui chats delete`
    change = runner.handle(GenerationFinished(job_id, "too late", "stop"))
    assert change is not None and change.job.gone and change.message is None


# --- chat delete, undo and export: one place for the TUI and the CLI --------------------


@pytest.fixture
def service(store: st.Store) -> rn.ChatService:
    return rn.ChatService(store, ManualEngine(), load_library(), "m.gguf", formats=chat_formats)


def test_delete_stops_the_answer_and_undo_brings_the_chat_back(service: rn.ChatService) -> None:
    conv = service.new_conversation("bob")
    _u, _a, job_id = service.send(conv.id, "precious words")
    finish(service, job_id, "kept too")
    service.store.update_conversation(conv.id, title="Mine", pinned=1, sampling={"top_k": 7})
    _u, _a, streaming = service.send(conv.id, "and more")

    deleted = service.delete_chat(conv.id)
    assert deleted.title == "Mine"
    assert service.engine.cancelled == [streaming]  # its answer is stopped
    assert service.store.list_conversations() == []

    restored = service.undo_delete()
    assert restored is not None
    assert (restored.title, restored.persona, restored.pinned) == ("Mine", "bob", True)
    assert restored.sampling == {"top_k": 7}
    contents = [m.content for m in service.store.messages(restored.id)]
    assert contents == ["precious words", "kept too", "and more", ""]
    assert service.undo_delete() is None  # one copy, used once


def test_a_failed_restore_keeps_the_undo_copy(
    service: rn.ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = service.new_conversation("assistant")
    service.store.add_message(conv.id, "user", "keep me")
    service.delete_chat(conv.id)

    def refused(store: st.Store, data: object) -> st.Conversation:
        raise st.StoreError("the disk is full")

    monkeypatch.setattr(chat_formats, "import_json", refused)
    with pytest.raises(st.StoreError):
        service.undo_delete()
    monkeypatch.undo()
    restored = service.undo_delete()  # the copy was kept: a second try works
    assert restored is not None
    assert [m.content for m in service.store.messages(restored.id)] == ["keep me"]


def test_delete_without_a_copy_and_of_a_missing_chat(service: rn.ChatService) -> None:
    conv = service.new_conversation("assistant")
    service.delete_chat(conv.id, keep_copy=False)  # the command line: no undo after it exits
    assert service.undo_delete() is None
    with pytest.raises(KeyError):
        service.delete_chat(conv.id)
    assert service.deleted == []  # nothing deleted, nothing to undo


def test_export_writes_a_private_file_in_either_format(
    service: rn.ChatService, tmp_path: Path
) -> None:
    conv = service.new_conversation("bob")
    _u, _a, job_id = service.send(conv.id, "a private matter")
    finish(service, job_id, "indeed")
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    md.write_text("old")
    md.chmod(0o644)  # an existing file readable by others becomes private too
    assert service.export_chat(conv.id, md, "md") == md
    assert service.export_chat(conv.id, js, "json") == js
    for path in (md, js):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = md.read_text()
    assert "a private matter" in text and "Bob" in text  # the persona's AI name
    data = chat_formats.loads(js.read_text())
    assert js.read_text().endswith("}\n")
    again = chat_formats.import_json(service.store, data)
    assert [m.content for m in service.store.messages(again.id)] == ["a private matter", "indeed"]
    with pytest.raises(ValueError):
        service.render_chat(conv.id, "html")


def test_a_service_without_formats_keeps_no_copy_and_exports_nothing(
    runner: rn.ChatService,
) -> None:
    conv = runner.new_conversation("assistant")
    with pytest.raises(RuntimeError):
        runner.render_chat(conv.id)
    runner.delete_chat(conv.id)
    assert runner.undo_delete() is None
