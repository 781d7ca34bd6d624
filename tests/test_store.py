"""The chat database: round trips, ordering, durability settings, bad files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
import sqlite_utils

from tui.core import migrations
from tui.core import store as st


@pytest.fixture
def store(tmp_path: Path) -> st.Store:
    s = st.Store(tmp_path / "data" / "chats.db")
    yield s
    s.close()


def test_conversation_and_messages_round_trip(store: st.Store) -> None:
    conv = store.create_conversation("bob", "model.gguf", {"temperature": 0.5})
    store.add_message(conv.id, "user", "Hello, Bob.")
    answer = store.add_message(conv.id, "assistant", "", status=st.PARTIAL, model="m")
    store.update_message(answer.id, "Hello. How may I", meta={"n_ctx": 512})
    store.update_message(answer.id, status=st.COMPLETE)

    again = store.get_conversation(conv.id)
    assert again.persona == "bob"
    assert again.model == "model.gguf"
    assert again.sampling == {"temperature": 0.5}
    assert again.title == "Hello, Bob."
    assert store.count_messages(conv.id) == 2
    messages = store.messages(conv.id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "Hello, Bob.", st.COMPLETE),
        ("assistant", "Hello. How may I", st.COMPLETE),
    ]
    assert messages[1].meta == {"n_ctx": 512}
    assert messages[0].created_at <= messages[1].created_at


def test_messages_of_a_range(store: st.Store) -> None:
    conv = store.create_conversation("bob", "m", {})
    other = store.create_conversation("bob", "m", {})
    ids = [store.add_message(conv.id, "user", f"m{i}").id for i in range(6)]
    store.add_message(other.id, "user", "elsewhere")
    assert [m.content for m in store.messages(conv.id, ids[2])] == ["m2", "m3", "m4", "m5"]
    assert [m.content for m in store.messages(conv.id, ids[2], before_id=ids[4])] == ["m2", "m3"]
    assert [m.content for m in store.messages(conv.id, before_id=ids[1])] == ["m0"]
    assert [m.content for m in store.last_messages(conv.id, 2)] == ["m4", "m5"]
    assert [m.content for m in store.last_messages(other.id, 5)] == ["elsewhere"]


def test_title_comes_from_first_user_message_only(store: st.Store) -> None:
    conv = store.create_conversation("assistant")
    store.add_message(conv.id, "assistant", "Greetings!")
    store.add_message(conv.id, "user", "first   line\nsecond " + "x" * 100)
    store.add_message(conv.id, "user", "another question")
    title = store.get_conversation(conv.id).title
    assert title.startswith("first line second")
    assert len(title) <= st.TITLE_LENGTH and title.endswith("…")


def test_list_is_newest_activity_first(store: st.Store) -> None:
    a = store.create_conversation("assistant")
    b = store.create_conversation("assistant")
    assert [c.id for c in store.list_conversations()] == [b.id, a.id]
    store.add_message(a.id, "user", "bump")
    assert [c.id for c in store.list_conversations()] == [a.id, b.id]


def test_data_survives_reopen_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "chats.db"
    first = st.Store(path)
    conv = first.create_conversation("assistant")
    first.add_message(conv.id, "user", "persist me")
    first.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    second = st.Store(path)
    assert second.messages(conv.id)[0].content == "persist me"
    assert second.conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert migrations.version(second.conn) == migrations.SCHEMA_VERSION
    second.close()


def test_recover_marks_answers_of_dead_writers_interrupted(store: st.Store) -> None:
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    conv = store.create_conversation("assistant")

    def partial(text: str, writer: str) -> st.Message:
        return store.add_message(conv.id, "assistant", text, st.PARTIAL, meta={"writer": writer})

    dead_here = partial("half an ans", f"{st.HOSTNAME}:{gone.pid}")
    alive_here = partial("still streaming", st.writer_id())
    other_host_fresh = partial("elsewhere", "other-host:123")
    other_host_old = partial("elsewhere, long ago", "other-host:456")
    with store.conn:
        store.conn.execute(
            "update messages set updated_at = '2000-01-01' where id = ?", [other_host_old.id]
        )
    assert store.recover_interrupted() == 2
    status = {m.id: m.status for m in store.messages(conv.id)}
    assert status[dead_here.id] == status[other_host_old.id] == st.INTERRUPTED
    assert status[alive_here.id] == status[other_host_fresh.id] == st.PARTIAL
    assert store.get_message(dead_here.id).content == "half an ans"


def test_delete_conversation_removes_its_messages(store: st.Store) -> None:
    conv = store.create_conversation("assistant")
    store.add_message(conv.id, "user", "bye")
    store.delete_conversation(conv.id)
    assert store.list_conversations() == []
    assert store.conn.execute("select count(*) from messages").fetchone()[0] == 0


def test_corrupt_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(st.StoreError, match="not a usable llama-tui database"):
        st.Store(path)


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    conn = sqlite3.connect(path)
    conn.execute(f"pragma user_version = {migrations.SCHEMA_VERSION + 5}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(st.StoreError, match="newer llama-tui"):
        st.Store(path)
    assert path.read_bytes() == before


def test_unwritable_directory_gives_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("a file where a directory should be")
    with pytest.raises(st.StoreError, match="Cannot create the chat database"):
        st.Store(not_a_dir / "sub" / "chats.db")


def test_full_text_search_finds_messages_and_treats_syntax_as_text(store: st.Store) -> None:
    a = store.create_conversation("assistant")
    b = store.create_conversation("bob")
    store.add_message(a.id, "user", "How do I reverse a list in Python?")
    hit = store.add_message(b.id, "assistant", "Moscow is the largest city in Europe.")
    store.update_message(hit.id, "Moscow is the largest city in Europe, says Bob.")
    results = store.search("largest europe")
    assert [(m.id, title) for m, title in results] == [(hit.id, "New chat")]
    assert store.search("revers") and store.search("revers")[0][0].conversation_id == a.id
    assert store.search('" OR * NEAR(') == []  # FTS syntax is searched for, not run
    store.delete_conversation(b.id)
    assert store.search("Moscow") == []


def test_pinned_first_and_archived_hidden(store: st.Store) -> None:
    old = store.create_conversation("assistant")
    new = store.create_conversation("assistant")
    gone = store.create_conversation("assistant")
    store.update_conversation(old.id, pinned=1)
    store.update_conversation(gone.id, archived=1)
    assert [c.id for c in store.list_conversations()] == [old.id, new.id]
    assert [c.id for c in store.list_conversations(archived=True)] == [gone.id]


def test_migration_from_version_1_keeps_data_and_makes_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(st._open(path))
    with db.conn:
        migrations.MIGRATIONS[0](db)
        db.execute("pragma user_version = 1")
        db["conversations"].insert(
            {"id": 1, "title": "old chat", "persona": "bob", "created_at": "t", "updated_at": "t"}
        )
        db["messages"].insert(
            {"conversation_id": 1, "role": "user", "content": "an old needle",
             "status": "complete", "created_at": "t", "updated_at": "t"}
        )  # fmt: skip
    db.close()
    store = st.Store(path)
    assert migrations.version(store.conn) == migrations.SCHEMA_VERSION
    assert store.list_conversations()[0].title == "old chat"
    assert store.search("needle")[0][0].content == "an old needle"  # FTS index rebuilt
    backup = tmp_path / "old.db.bak-v1"
    assert backup.exists()
    assert sqlite3.connect(backup).execute("pragma user_version").fetchone()[0] == 1
    store.close()


def test_search_over_thousands_of_messages(store: st.Store) -> None:
    """FTS5 finds the few matching messages among thousands, best match first."""
    import random

    rng = random.Random(42)
    words = [
        "the",
        "model",
        "answer",
        "python",
        "list",
        "dragon",
        "city",
        "river",
        "window",
        "token",
        "cache",
    ]
    chats = [store.create_conversation("assistant") for _ in range(20)]
    rows = [
        {"conversation_id": chats[i % 20].id, "role": "user" if i % 2 else "assistant",
         "content": " ".join(rng.choice(words) for _ in range(12)), "status": "complete",
         "created_at": "t", "updated_at": "t"}
        for i in range(5000)
    ]  # fmt: skip
    rows[1234]["content"] = "Krakow has a dragon called Smok Wawelski near the Vistula"
    rows[4321]["content"] = "Smok the dragon, again: Smok Smok"
    with store.conn:
        sqlite_utils.Database(store.conn)["messages"].insert_all(rows)
    found = store.search("smok dragon")
    assert [m.content for m, _title in found] == [rows[4321]["content"], rows[1234]["content"]]
    assert len(store.search("dragon", limit=50)) == 50
    assert store.search("wawel")[0][0].content.startswith("Krakow")  # prefix match


@pytest.mark.parametrize("old_version", range(1, migrations.SCHEMA_VERSION))
def test_each_migration_from_the_previous_schema(tmp_path: Path, old_version: int) -> None:
    """A database at every older version opens, keeps its data and leaves a backup."""
    path = tmp_path / f"v{old_version}.db"
    db = sqlite_utils.Database(st._open(path))
    with db.conn:
        for migration in migrations.MIGRATIONS[:old_version]:
            migration(db)
        db.execute(f"pragma user_version = {old_version}")
        db["conversations"].insert(
            {"id": 1, "title": "kept", "persona": "bob", "created_at": "t", "updated_at": "t"}
        )
        db["messages"].insert(
            {"conversation_id": 1, "role": "user", "content": "a partial needle",
             "status": "partial", "created_at": "2000-01-01", "updated_at": "2000-01-01"}
        )  # fmt: skip
    db.close()
    store = st.Store(path)
    assert migrations.version(store.conn) == migrations.SCHEMA_VERSION
    assert store.get_conversation(1).title == "kept"
    assert store.search("needle")[0][0].content == "a partial needle"
    assert store.recover_interrupted() == 1  # no writer recorded, long untouched
    assert (tmp_path / f"v{old_version}.db.bak-v{old_version}").exists()
    store.close()


def test_a_failed_delete_is_a_store_error(store: st.Store) -> None:
    """Edit and resend deletes the rest of the chat: a refused write is reported, not raised raw."""
    conv = store.create_conversation("bob", "m", {})
    first = store.add_message(conv.id, "user", "one")
    store.add_message(conv.id, "assistant", "two")
    store.conn.execute("pragma query_only = 1")
    with pytest.raises(st.StoreError, match="Could not save"):
        store.delete_messages_from(conv.id, first.id)
    store.conn.execute("pragma query_only = 0")
    store.delete_messages_from(conv.id, first.id + 1)
    assert [m.content for m in store.messages(conv.id)] == ["one"]
