"""A store transaction is all or nothing, whichever sqlite-utils is installed.

sqlite-utils 3.x commits inside ``insert()``/``update()``, which broke
``Store.transaction()`` while the store wrote through it; the store now writes
with plain sqlite3. CI runs these with the oldest sqlite-utils pyproject allows
(the ``test`` extra pins it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tui.core import store as st
from tui.formats import chats


def counts(path: Path) -> tuple[int, int]:
    """Chats and messages in the file, read by a second connection (what others see)."""
    other = st.Store(path)
    try:
        chats_ = other.conn.execute("select count(*) from conversations").fetchone()[0]
        messages = other.conn.execute("select count(*) from messages").fetchone()[0]
    finally:
        other.close()
    return chats_, messages


def test_sqlite_utils_version_is_allowed() -> None:
    major = int(metadata.version("sqlite-utils").split(".")[0])
    assert major >= 4, "pyproject requires sqlite-utils>=4"


def test_writes_inside_a_transaction_that_fails_leave_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    store = st.Store(path)
    kept = store.create_conversation("assistant", title="kept")
    with pytest.raises(RuntimeError, match="half-way"), store.transaction():
        chat = store.create_conversation("assistant", title="lost")
        store.add_message(chat.id, "user", "first")
        store.add_message(chat.id, "assistant", "second")
        store.update_conversation(kept.id, title="renamed")
        store.delete_conversation(kept.id)
        raise RuntimeError("half-way")
    assert counts(path) == (1, 0)
    assert store.get_conversation(kept.id).title == "kept"
    assert [c.title for c in store.list_conversations()] == ["kept"]
    store.close()


def test_writes_inside_a_transaction_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    store = st.Store(path)
    with store.transaction():
        chat = store.create_conversation("assistant")
        store.add_message(chat.id, "user", "hello")
        assert counts(path) == (0, 0)  # not visible to others before the commit
    assert counts(path) == (1, 1)
    # the store can write on its own again after the outer transaction
    store.add_message(chat.id, "assistant", "hi")
    assert counts(path) == (1, 2)
    store.close()


def export(messages: list[dict]) -> dict:
    return {
        "format": chats.FORMAT,
        "version": chats.FORMAT_VERSION,
        "conversation": {"title": "imported", "persona": "assistant"},
        "messages": messages,
    }


def test_import_chat_failing_half_way_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    store = st.Store(path)
    good = {"role": "user", "content": "one", "status": st.COMPLETE, "meta": {}}
    # the third row breaks a NOT NULL constraint after two rows went in
    rows = [good, {**good, "content": "two"}, {**good, "role": None}]
    with pytest.raises(st.StoreError, match="Could not save"):
        store.import_chat({"title": "t", "persona": "assistant"}, rows)
    assert counts(path) == (0, 0)
    assert store.list_conversations() == []
    store.close()


def test_import_of_an_export_is_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    store = st.Store(path)
    messages = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    chat = chats.import_json(store, export(messages))
    assert [m.content for m in store.messages(chat.id)] == [f"m{i}" for i in range(5)]
    assert counts(path) == (1, 5)
    store.close()


def test_a_refused_import_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    store = st.Store(path)
    store.conn.execute("pragma query_only = 1")  # as a read-only file would refuse it
    with pytest.raises(st.StoreError, match=str(path)):
        chats.import_json(store, export([{"role": "user", "content": "hi"}]))
    store.conn.execute("pragma query_only = 0")
    assert counts(path) == (0, 0)
    store.close()


def test_opening_an_up_to_date_database_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    st.Store(path).close()  # created and migrated here
    code = (
        "import sys\n"
        "from tui.core.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "chat = store.create_conversation('assistant')\n"
        "store.add_message(chat.id, 'user', 'hi')\n"
        "store.close()\n"
        "print(sorted(m for m in ('sqlite_utils', 'numpy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout.strip().replace("'", '"')) == []
    assert counts(path) == (1, 1)


def test_a_new_database_is_migrated_with_sqlite_utils(tmp_path: Path) -> None:
    """The migrations still work with the installed sqlite-utils (imported only for them)."""
    path = tmp_path / "new.db"
    store = st.Store(path)
    chat = store.create_conversation("assistant")
    store.add_message(chat.id, "user", "findable words")
    assert [m.content for m, _title in store.search("findable")] == ["findable words"]
    store.close()


def test_import_chat_takes_only_known_fields(tmp_path: Path) -> None:
    """Field names become column names in the SQL: anything else is refused, nothing written."""
    path = tmp_path / "chats.db"
    store = st.Store(path)
    message = {"role": "user", "content": "x", "status": st.COMPLETE}
    with pytest.raises(ValueError, match="not a field"):
        store.import_chat({"persona": "a"}, [message, {**message, "id] = 0; --": 1}])
    assert counts(path) == (0, 0)
    store.close()
