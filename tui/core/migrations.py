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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m001_initial,
    _m002_pin_archive_search,
    _m003_fast_start,
    _m004_reasoning,
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
