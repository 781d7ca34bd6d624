"""Schema migrations: an ordered list of small functions, each applied once.

``PRAGMA user_version`` holds the number of migrations applied. Before an
existing database is migrated a backup copy is written next to it. A database
written by a newer llama-tui (a higher version than we know) is refused and
left untouched.

The migrations use sqlite-utils for schema work. It is imported only when one
runs: a start-up on an up-to-date database never loads it (it imports numpy).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.store_errors import StoreError, open_problem

if TYPE_CHECKING:
    import sqlite_utils


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["conversations"].create(
        {
            "id": int,
            "title": str,
            "persona": str,
            "model": str,
            "sampling": str,  # JSON: the chat's own sampling settings
            "created_at": str,
            "updated_at": str,
            "context_start_id": int,  # first message inside the model's window
        },
        pk="id",
        not_null={"title", "persona", "created_at", "updated_at"},
        defaults={"title": "", "model": "", "sampling": "{}"},
    )
    db["messages"].create(
        {
            "id": int,
            "conversation_id": int,
            "role": str,
            "content": str,
            "status": str,
            "created_at": str,
            "updated_at": str,
            "model": str,
            "meta": str,  # JSON: tokens, speed, finish reason, error text
        },
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "role", "content", "status", "created_at"},
        defaults={"content": "", "status": "complete", "model": "", "meta": "{}"},
    )
    db["messages"].create_index(["conversation_id", "id"])
    db["conversations"].create_index(["updated_at"])


def _m002_pin_archive_search(db: sqlite_utils.Database) -> None:
    """Pinned and archived chats; full-text search over messages (FTS5, kept by triggers)."""
    db["conversations"].add_column("pinned", int, not_null_default=0)
    db["conversations"].add_column("archived", int, not_null_default=0)
    db["messages"].enable_fts(["content"], fts_version="FTS5", create_triggers=True)


def _m003_fast_start(db: sqlite_utils.Database) -> None:
    """Indexes for start-up: the sidebar's order, and answers left partial by a crash."""
    db.execute(
        "create index if not exists conversations_sidebar"
        " on conversations (archived, pinned desc, updated_at desc, id desc)"
    )
    db.execute(
        "create index if not exists messages_partial on messages (id) where status = 'partial'"
    )


def _m004_reasoning(db: sqlite_utils.Database) -> None:
    """A reasoning model's thinking, kept beside its answer; searchable as its own column.

    The search index is rebuilt over both columns: a plain search matches the
    answers only (``{content}:``), a search that asks for it matches thinking too.
    """
    db["messages"].add_column("reasoning", str, not_null_default="")
    db["messages"].enable_fts(
        ["content", "reasoning"], fts_version="FTS5", create_triggers=True, replace=True
    )


def _m005_tree(db: sqlite_utils.Database) -> None:
    """Conversations become trees: a message has a parent, a chat its current leaf.

    Today's linear chats become parent chains (each message the child of the
    one before it) whose last message is the leaf, and the versions a
    regenerate kept (``meta["alternatives"]`` of an answer) become sibling
    answers of the version shown, which stays on the current branch. Nothing
    is lost: a version that is not a usable one stays in the meta as it was.
    """
    conn = db.conn
    conn.execute("alter table messages add column parent_id integer references messages(id)")
    conn.execute("alter table conversations add column leaf_id integer")
    conn.execute("create index if not exists messages_children on messages (parent_id, id)")
    # A chat's forks (parents with several children) from the index alone: the ‹ 2/3 ›
    # marks are read each time a chat opens.
    conn.execute(
        "create index if not exists messages_forks on messages (conversation_id, parent_id)"
    )
    # The full-text index's update trigger re-indexes a row's text on any update: for
    # 200,000 messages that was 6.8 s of the 7.7; the text does not change here.
    row = conn.execute(
        "select sql from sqlite_master where type = 'trigger' and name = 'messages_au'"
    ).fetchone()
    if row is not None:
        conn.execute("drop trigger messages_au")
    link_linear_chats(conn)
    rows = conn.execute(
        "select id, conversation_id, parent_id, meta, model, created_at, updated_at"
        " from messages where role = 'assistant' and meta like '%alternatives%' order by id"
    ).fetchall()
    columns = {row[1] for row in conn.execute("pragma table_info(messages)")}
    thinking = "reasoning" in columns  # a version's thinking has a column to go to
    for msg_id, conv_id, parent_id, meta_text, model, created, updated in rows:
        sibling = (conv_id, parent_id, model, created, updated)
        _versions_to_siblings(conn, msg_id, meta_text, sibling, thinking)
    if row is not None:
        conn.execute(row[0])  # the trigger as it was


def link_linear_chats(conn: sqlite3.Connection) -> None:
    """Each message the child of the one before it in its chat; the chat's last one its leaf."""
    conn.execute(
        "update messages set parent_id = (select max(p.id) from messages p"
        " where p.conversation_id = messages.conversation_id and p.id < messages.id)"
    )
    conn.execute(
        "update conversations set leaf_id ="
        " (select max(id) from messages where conversation_id = conversations.id)"
    )


def _versions_to_siblings(
    conn: sqlite3.Connection,
    msg_id: int,
    meta_text: str,
    sibling: tuple[int, int | None, str | None, str, str | None],
    thinking: bool,
) -> None:
    """One answer's kept versions become its siblings (see :func:`_m005_tree`).

    ``sibling``: the answer's chat, parent, model and times, which its versions
    share; with ``thinking`` a version's ``reasoning`` goes to its column.
    """
    import json

    conv_id, parent_id, model, created, updated = sibling
    try:
        meta = json.loads(meta_text or "{}")
    except (ValueError, RecursionError):
        return
    versions = meta.get("alternatives") if isinstance(meta, dict) else None
    if not isinstance(versions, list):
        return
    kept = []
    statuses = ("partial", "complete", "cancelled", "error", "interrupted")
    for version in versions:
        usable = isinstance(version, dict) and isinstance(version.get("content"), str)
        if not usable:
            kept.append(version)
            continue
        status = version.get("status")
        vmeta = version.get("meta")
        vmeta = vmeta if isinstance(vmeta, dict) else {}
        row = {
            "conversation_id": conv_id,
            "parent_id": parent_id,
            "role": "assistant",
            "content": version["content"],
            "status": status if status in statuses else "complete",
            "created_at": created,
            "updated_at": updated,
            "model": vmeta.get("model") if isinstance(vmeta.get("model"), str) else model or "",
            "meta": json.dumps(vmeta),
        }
        reasoning = version.get("reasoning")
        if thinking and isinstance(reasoning, str):
            row["reasoning"] = reasoning
        elif reasoning is not None:  # no column for it: kept in the meta, not lost
            row["meta"] = json.dumps({**vmeta, "reasoning": reasoning})
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"insert into messages ({names}) values ({marks})", list(row.values()))
    if kept:
        meta["alternatives"] = kept
    else:
        del meta["alternatives"]
    conn.execute("update messages set meta = ? where id = ?", [json.dumps(meta), msg_id])


def _m006_prompts(db: sqlite_utils.Database) -> None:
    """The exact prompt of each answer (the prompt view), in a table of its own.

    Apart from ``messages`` so that opening a chat never reads them (a prompt
    can be the whole window, tens of kilobytes per answer). A trigger, not a
    foreign key, removes one with its answer: a later migration that rebuilds
    ``messages`` (drop and copy) must not delete every prompt with it.
    """
    db.execute(
        "create table if not exists prompts ("
        " message_id integer primary key,"
        " text text not null default '',"
        " info text not null default '{}',"  # JSON: tokens, dropped, sampling, seed, …
        " created_at text not null)"
    )
    db.execute(
        "create trigger if not exists prompts_gone after delete on messages"
        " begin delete from prompts where message_id = old.id; end"
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_initial,
    _m002_pin_archive_search,
    _m003_fast_start,
    _m004_reasoning,
    _m005_tree,
    _m006_prompts,
]
SCHEMA_VERSION = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("pragma user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version it had."""
    current = version(conn)  # an unreadable file: Store explains the sqlite3 error
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer llama-tui (schema {current}; this version "
            f"knows {SCHEMA_VERSION}). Upgrade llama-tui, or use another file with --db PATH. "
            "The database was not modified."
        )
    _refuse_foreign(conn, path, current)
    if current == SCHEMA_VERSION:
        return current
    if current > 0 and str(path) != ":memory:":
        backup = path.with_name(f"{path.name}.{BACKUP_SUFFIX}{current}")
        target = sqlite3.connect(str(backup))
        with target:
            conn.backup(target)
        target.close()
        backup.chmod(0o600)
    import sqlite_utils  # only now: see the module's docstring

    db = sqlite_utils.Database(conn)
    for number in range(current, SCHEMA_VERSION):
        try:
            with conn:
                MIGRATIONS[number](db)
                conn.execute(f"pragma user_version = {number + 1}")
        except sqlite3.Error as exc:
            backup = (
                f" A copy from before is at {path}.{BACKUP_SUFFIX}{current}." if current else ""
            )
            raise StoreError(
                f"Could not update {path} to schema {number + 1}. {open_problem(path, exc)}{backup}"
            ) from exc
    return current


BACKUP_SUFFIX = "bak-v"
OUR_TABLES = frozenset({"conversations", "messages"})


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "select name from sqlite_master where type in ('table', 'view')"
        " and name not like 'sqlite_%'"
    ).fetchall()
    return {row[0] for row in rows}


def _refuse_foreign(conn: sqlite3.Connection, path: Path, current: int) -> None:
    """Refuse, untouched, a database that another application made.

    Ours is either empty (new) or has our tables; anything else (a ``users``
    table, a ``messages`` table of some other schema at version 0) belongs to
    someone else, and migrating it would add tables and switch it to WAL.
    """
    tables = _tables(conn)
    if (current == 0 and not tables) or (current > 0 and tables >= OUR_TABLES):
        return
    names = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
    raise StoreError(
        f"{path} is not a llama-tui chat database (it holds the tables {names or 'none'}"
        f" at schema version {current}), so it was left untouched. "
        "Choose another file with --db PATH or LLAMA_TUI_DB."
    )
