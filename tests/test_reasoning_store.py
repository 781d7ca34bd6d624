"""A reasoning model's thinking in the core: stored beside the answer, saved as it streams,
kept on stop and failure, searchable on request, carried to the next turn beside the content.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from tests.test_runner import ManualEngine
from tui.core import chat_service as rn
from tui.core import migrations
from tui.core import store as st
from tui.core.engine_protocol import (
    CleanEvents,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    TokenText,
)
from tui.core.personas import load_library, load_persona_file
from tui.core.sampling import SPEC, Sampling, coerce, is_choice
from tui.core.store_rows import clean_sampling


@pytest.fixture
def runner(store: st.Store) -> rn.ChatService:
    return rn.ChatService(store, ManualEngine(), load_library(), "model.gguf")


def test_migration_adds_reasoning_to_an_older_database(tmp_path: Path) -> None:
    before = migrations.MIGRATIONS.index(migrations._m004_reasoning)
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(st._open(path))
    with db.conn:
        for migration in migrations.MIGRATIONS[:before]:
            migration(db)
        db.execute(f"pragma user_version = {before}")
        db["conversations"].insert(
            {"id": 1, "title": "t", "persona": "bob", "created_at": "t", "updated_at": "t"}
        )
        db["messages"].insert(
            {"conversation_id": 1, "role": "assistant", "content": "an old needle",
             "status": "complete", "created_at": "t", "updated_at": "t"}
        )  # fmt: skip
    db.close()
    store = st.Store(path)
    assert migrations.version(store.conn) == migrations.SCHEMA_VERSION
    old = store.messages(1)[0]
    assert (old.content, old.reasoning) == ("an old needle", "")
    assert store.search("needle")[0][0].id == old.id  # the index was rebuilt with the old rows
    store.update_message(old.id, reasoning="pondering a haystack")
    assert store.search("haystack") == []  # answers only by default
    assert [m.id for m, _t in store.search("haystack", thinking=True)] == [old.id]
    store.close()
    column = sqlite3.connect(path).execute(
        "select dflt_value, [notnull] from pragma_table_info('messages') where name = 'reasoning'"
    )
    assert column.fetchone() == ("''", 1)


def test_reasoning_is_stored_and_cleaned_where_it_enters(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    msg = store.add_message(conv.id, "assistant", "42", reasoning="hmm\x1b]52;c;ZXZpbA==\x07 ok")
    assert store.get_message(msg.id).reasoning == "hmm ok"
    store.update_message(msg.id, reasoning="second\x1b[2J thought")
    got = store.get_message(msg.id)
    assert (got.content, got.reasoning) == ("42", "second thought")
    store.update_message(msg.id, "43")  # content alone leaves the thinking as it was
    assert store.get_message(msg.id).reasoning == "second thought"


def test_a_damaged_reasoning_value_is_read_not_fatal(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    msg = store.add_message(conv.id, "assistant", "a")
    with store.conn:
        store.conn.execute("update messages set reasoning = x'00ff' where id = ?", [msg.id])
    got = store.get_message(msg.id)
    assert isinstance(got.reasoning, str) and "reasoning" in got.problem


def test_thinking_meta_keys_are_typed(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    meta = {"thinking_tokens": "many", "thinking_seconds": 1.5, "completion_tokens": 9}
    msg = store.add_message(conv.id, "assistant", "a", meta=meta)
    got = store.get_message(msg.id)
    assert got.meta == {"thinking_seconds": 1.5, "completion_tokens": 9}
    assert "meta.thinking_tokens" in got.problem


def test_thinking_streams_into_its_own_field_and_is_saved_as_it_streams(
    runner: rn.ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "why?")
    monkeypatch.setattr(rn, "FLUSH_INTERVAL", 0.0)
    runner.handle(GenerationStarted(job_id, 20, 512, 0, "chat"))
    change = runner.handle(TokenText(job_id, "Let me think", thinking=True))
    assert change is not None and change.message_id == answer.id
    assert (change.thinking, change.text) == ("Let me think", "")
    saved = runner.store.get_message(answer.id)  # saved mid-thought, still partial
    assert (saved.reasoning, saved.content, saved.status) == ("Let me think", "", st.PARTIAL)
    change = runner.handle(TokenText(job_id, "Because.", thinking=False))
    assert (change.thinking, change.text) == ("", "Because.")
    done = runner.handle(
        GenerationFinished(
            job_id,
            "Because.",
            "stop",
            completion_tokens=30,
            seconds=2.0,
            stats={"thinking_tokens": 25, "thinking_seconds": 1.5},
            reasoning="Let me think",
        )
    )
    assert done.message.reasoning == "Let me think" and done.message.content == "Because."
    stored = runner.store.get_message(answer.id)
    assert (stored.reasoning, stored.content, stored.status) == (
        "Let me think",
        "Because.",
        st.COMPLETE,
    )
    assert stored.meta["thinking_tokens"] == 25 and stored.meta["thinking_seconds"] == 1.5
    assert stored.meta["tokens_per_second"] == 15.0  # thinking and answer tokens alike


def test_a_crash_mid_thought_keeps_the_thinking_marked_interrupted(
    runner: rn.ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "why?")
    monkeypatch.setattr(rn, "FLUSH_INTERVAL", 0.0)
    runner.handle(TokenText(job_id, "first, ", thinking=True))
    runner.handle(TokenText(job_id, "second", thinking=True))
    # The process dies here: another process finds the partial answer.
    other = st.Store(runner.store.path)
    with other.conn:
        other.conn.execute(
            "update messages set meta = '{}', updated_at = '2000-01-01' where id = ?", [answer.id]
        )
    assert other.recover_interrupted() == 1
    found = other.get_message(answer.id)
    assert (found.status, found.reasoning) == (st.INTERRUPTED, "first, second")
    other.close()


def test_flush_all_on_hangup_saves_the_thinking(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "why?")
    runner.handle(TokenText(job_id, "unsaved thought", thinking=True))  # within FLUSH_INTERVAL
    assert runner.flush_all(st.INTERRUPTED) == []
    got = runner.store.get_message(answer.id)
    assert (got.reasoning, got.status) == ("unsaved thought", st.INTERRUPTED)


def test_stop_mid_thought_keeps_the_thinking(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "why?")
    runner.handle(TokenText(job_id, "half a thou", thinking=True))
    runner.handle(GenerationFinished(job_id, "", "cancelled", reasoning="half a thou"))
    got = runner.store.get_message(answer.id)
    assert (got.status, got.content, got.reasoning) == (st.CANCELLED, "", "half a thou")
    assert "thinking_seconds" in got.meta


def test_a_failure_keeps_the_thinking(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "why?")
    runner.handle(
        GenerationFailed(job_id, "server went away", "", reasoning="I was thin\x1b[2Jking")
    )
    got = runner.store.get_message(answer.id)
    assert (got.status, got.reasoning) == (st.ERROR, "I was thinking")


def test_the_next_turn_carries_thinking_beside_the_content(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "2+2?")
    runner.handle(TokenText(job_id, "two and two", thinking=True))
    runner.handle(GenerationFinished(job_id, "4", "stop", reasoning="two and two"))
    runner.send(conv.id, "and 3+3?")
    history = runner.engine.jobs[-1].history
    assert [(t.role, t.content, t.reasoning) for t in history] == [
        ("user", "2+2?", ""),
        ("assistant", "4", "two and two"),
        ("user", "and 3+3?", ""),
    ]


def test_regenerate_and_versions_keep_each_answers_thinking(runner: rn.ChatService) -> None:
    conv = runner.new_conversation("assistant")
    _user, _answer, job_id = runner.send(conv.id, "pick")
    runner.handle(GenerationFinished(job_id, "A", "stop", reasoning="thought A"))
    answer, job_id = runner.regenerate(conv.id)
    runner.handle(GenerationFinished(job_id, "B", "stop", reasoning="thought B"))
    shown = runner.cycle_version(answer.id)  # versions are sibling answers (a tree)
    assert (shown.content, shown.reasoning) == ("A", "thought A")
    shown = runner.cycle_version(shown.id)
    assert (shown.content, shown.reasoning) == ("B", "thought B")


def test_clean_events_cleans_thinking_with_its_own_stream() -> None:
    seen: list = []
    clean = CleanEvents(seen.append)
    clean(TokenText(1, "answer \x1b", thinking=False))
    clean(TokenText(1, "think \x1b]52;c;", thinking=True))
    clean(TokenText(1, "ZXZpbA==\x07 more", thinking=True))  # the clipboard payload is dropped
    clean(TokenText(1, "[31mred", thinking=False))  # ESC held in the answer's stream
    assert [(e.text, e.thinking) for e in seen] == [
        ("answer ", False),
        ("think ", True),
        (" more", True),
        ("red", False),
    ]
    clean(GenerationFinished(1, "x", "stop", reasoning="a\x1b[2Jb"))
    assert seen[-1].reasoning == "ab"


def test_reasoning_settings_are_words_with_defaults() -> None:
    sampling = Sampling()
    assert (sampling.reasoning, sampling.reasoning_effort, sampling.reasoning_budget) == (
        "auto",
        "medium",
        -1,
    )
    assert is_choice("reasoning") and is_choice("reasoning_effort")
    assert not is_choice("reasoning_budget")
    assert coerce("reasoning", " ON ") == "on" and coerce("reasoning", False) == "off"
    assert coerce("reasoning_effort", "High") == "high"
    with pytest.raises(ValueError, match="auto, on, off"):
        coerce("reasoning", "maybe")
    with pytest.raises(ValueError):
        coerce("reasoning_effort", 2)
    merged = Sampling.from_dict({"reasoning": "off", "reasoning_budget": 10**9})
    assert merged.reasoning == "off" and merged.reasoning_budget == SPEC["reasoning_budget"][1].high
    good, bad = clean_sampling({"reasoning": "on", "reasoning_effort": "loud", "top_k": 5})
    assert good == {"reasoning": "on", "top_k": 5} and bad == ["reasoning_effort"]


def test_a_persona_sets_the_reasoning_settings(tmp_path: Path) -> None:
    path = tmp_path / "thinker.toml"
    path.write_text(
        'name = "Thinker"\nsystem = "Think."\n'
        '[sampling]\nreasoning = "off"\nreasoning_effort = "high"\nreasoning_budget = 256\n'
    )
    persona = load_persona_file(path)
    defaults = persona.sampling_defaults()
    assert (defaults.reasoning, defaults.reasoning_effort, defaults.reasoning_budget) == (
        "off",
        "high",
        256,
    )
    path.write_text('name = "Bad"\n[sampling]\nreasoning = "sometimes"\n')
    with pytest.raises(Exception, match="auto, on, off"):
        load_persona_file(path)


def test_the_fake_engine_streams_a_scripted_thinking(store: st.Store) -> None:
    """For UI tests: an answer scripted as <think>…</think>… streams its thinking apart."""
    import queue

    from tui.engine.fake import FakeEngine

    events: queue.Queue = queue.Queue()
    engine = FakeEngine(lambda job: "<think>Let me see.</think> Yes, indeed.")
    engine.start(events.put)
    runner = rn.ChatService(store, engine, load_library(), "fake")
    conv = runner.new_conversation("assistant")
    _user, answer, _job = runner.send(conv.id, "ok?")
    thinking = []
    while runner.jobs:
        change = runner.handle(events.get(timeout=5))
        if change is not None and change.thinking:
            thinking.append(change.thinking)
    got = store.get_message(answer.id)
    assert "".join(thinking) == "Let me see." == got.reasoning
    assert got.content == "Yes, indeed."
