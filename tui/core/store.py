"""The chat database: conversations and their messages in SQLite.

Built on sqlite-utils. The database runs in WAL mode with a busy timeout so
that two llama-tui processes (two SSH sessions) can share it, and every write
is its own short transaction so that a crash loses nothing already written.
The schema is versioned (``PRAGMA user_version``) and evolves through the
ordered migrations in :mod:`tui.core.migrations`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tui.core import migrations, paths
from tui.core.processes import pid_exists
from tui.core.sanitize import clean_data, clean_text
from tui.sqlite_utils_lite import sqlite_utils

# Message status values.
PARTIAL = "partial"  # being generated; saved as it streams
COMPLETE = "complete"
CANCELLED = "cancelled"  # stopped by the user; the text so far is kept
ERROR = "error"
INTERRUPTED = "interrupted"  # the process died while it was being generated
STATUSES = (PARTIAL, COMPLETE, CANCELLED, ERROR, INTERRUPTED)

TITLE_LENGTH = 60


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do."""


_WRITE_HINTS = {
    "full": "The disk is full: free some space and try again.",
    "readonly": "The file or its directory is read-only: check the permissions.",
    "read-only": "The file or its directory is read-only: check the permissions.",
    "locked": "Another program kept the database locked for too long: try again.",
}

F = TypeVar("F", bound=Callable[..., Any])


def _writes(method: F) -> F:
    """Turn SQLite write failures into a :class:`StoreError` a person can act on."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            reason = str(exc)
            hint = next((h for k, h in _WRITE_HINTS.items() if k in reason), "")
            raise StoreError(
                f"Could not save to the chat database {self.path}: {reason}. {hint}".strip()
            ) from exc

    return wrapper  # type: ignore[return-value]


@dataclass
class Conversation:
    id: int
    title: str
    persona: str
    model: str
    sampling: dict[str, Any]
    created_at: str
    updated_at: str
    context_start_id: int | None = None
    pinned: bool = False
    archived: bool = False
    problem: str = ""  # stored values that could not be used (defaults stand in)


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str  # "user" or "assistant"
    content: str
    status: str = COMPLETE
    created_at: str = ""
    updated_at: str = ""
    model: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # stored values that could not be used (left out)


def now() -> str:
    """A sortable UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def title_from(text: str) -> str:
    """A one-line chat title from the first user message."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class Store:
    """All reads and writes of the chat database go through here."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.db = _open(self.path)
        try:
            migrations.migrate(self.db, self.path)  # refuses a newer or foreign one untouched
            # WAL lets two llama-tui processes (two SSH sessions) read and write at once.
            self.db.execute("pragma journal_mode = wal")
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(open_problem(self.path, exc)) from exc
        except StoreError:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One short write transaction, taking the write lock at its start.

        ``BEGIN IMMEDIATE`` waits (busy timeout) for another process's write
        to finish. A deferred transaction that reads first (sqlite-utils looks
        at the table) and then writes can instead fail at once with "database
        is locked" when another process wrote in between.
        """
        conn = self.db.conn
        conn.execute("begin immediate")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    # --- conversations -------------------------------------------------------------

    @_writes
    def create_conversation(
        self,
        persona: str,
        model: str = "",
        sampling: dict[str, Any] | None = None,
        title: str = "",
    ) -> Conversation:
        stamp = now()
        row = {
            "title": title,
            "persona": persona,
            "model": model,
            "sampling": json.dumps(sampling or {}),
            "created_at": stamp,
            "updated_at": stamp,
        }
        with self.transaction():
            conv_id = self.db["conversations"].insert(row).last_pk
        return self.get_conversation(conv_id)

    def get_conversation(self, conv_id: int) -> Conversation:
        rows = list(self.db.query("select * from conversations where id = ?", [conv_id]))
        if not rows:
            raise KeyError(f"no chat with id {conv_id}")
        return _conversation(rows[0])

    def list_conversations(
        self, limit: int | None = None, archived: bool = False
    ) -> list[Conversation]:
        """Chats, pinned first, then most recently active first (an index scan)."""
        sql = (
            "select * from conversations where archived = ?"
            " order by pinned desc, updated_at desc, id desc"
        )
        if limit:
            sql += f" limit {int(limit)}"
        return [_conversation(r) for r in self.db.query(sql, [int(archived)])]

    def count_messages(self, conv_id: int) -> int:
        return self.db.execute(
            "select count(*) from messages where conversation_id = ?", [conv_id]
        ).fetchone()[0]

    def search(self, query: str, limit: int = 100) -> list[tuple[Message, str]]:
        """Messages matching ``query`` (FTS5, every word must match), best first.

        Returns (message, chat title) pairs. The query is quoted word by word, so
        FTS syntax characters in it are searched for, never interpreted.
        """
        words = [w.replace('"', '""') for w in query.split()]
        if not words:
            return []
        match = " ".join(f'"{w}"*' for w in words)
        rows = self.db.query(
            "select m.*, c.title as chat_title from messages_fts f"
            " join messages m on m.rowid = f.rowid"
            " join conversations c on c.id = m.conversation_id"
            " where messages_fts match ? order by rank limit ?",
            [match, limit],
        )
        return [(_message(r), clean_text(r["chat_title"] or "New chat")) for r in rows]

    @_writes
    def update_conversation(self, conv_id: int, **values: Any) -> bool:
        """Change a chat's fields; False if the chat is gone (deleted meanwhile)."""
        if "sampling" in values:
            values["sampling"] = json.dumps(values["sampling"])
        return self._update("conversations", conv_id, values)

    def _update(self, table: str, row_id: int, values: dict[str, Any]) -> bool:
        """One row's update; False if the row no longer exists (another process deleted it)."""
        columns = ", ".join(f"[{name}] = ?" for name in values)
        with self.transaction():
            cursor = self.db.execute(
                f"update [{table}] set {columns} where id = ?", [*values.values(), row_id]
            )
        return cursor.rowcount > 0

    @_writes
    def delete_conversation(self, conv_id: int) -> None:
        with self.transaction():
            self.db.execute("delete from messages where conversation_id = ?", [conv_id])
            self.db.execute("delete from conversations where id = ?", [conv_id])

    # --- messages ------------------------------------------------------------------

    @_writes
    def add_message(
        self,
        conv_id: int,
        role: str,
        content: str,
        status: str = COMPLETE,
        model: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Message:
        """Append a message (committed before this returns) and touch the chat."""
        stamp = now()
        row = {
            "conversation_id": conv_id,
            "role": role,
            "content": content,
            "status": status,
            "created_at": stamp,
            "updated_at": stamp,
            "model": model,
            "meta": json.dumps(meta or {}),
        }
        with self.transaction():
            msg_id = self.db["messages"].insert(row).last_pk
            self.db.execute(
                "update conversations set updated_at = ?,"
                " title = case when title = '' and ? = 'user' then ? else title end"
                " where id = ?",
                [stamp, role, title_from(content), conv_id],
            )
        return self.get_message(msg_id)

    @_writes
    def update_message(
        self,
        msg_id: int,
        content: str | None = None,
        status: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> bool:
        """Save streamed text and/or a new status; one short transaction.

        Returns False if the message is gone: its chat was deleted while it
        streamed (here or by another process), which the caller must survive.
        """
        values: dict[str, Any] = {"updated_at": now()}
        if content is not None:
            values["content"] = content
        if status is not None:
            values["status"] = status
        if meta is not None:
            values["meta"] = json.dumps(meta)
        return self._update("messages", msg_id, values)

    def get_message(self, msg_id: int) -> Message:
        return _message(self.db["messages"].get(msg_id))

    def messages(
        self, conv_id: int, since_id: int = 0, before_id: int | None = None
    ) -> list[Message]:
        """A chat's messages, oldest first: all, or those with ``since_id <= id < before_id``."""
        where, params = "conversation_id = ? and id >= ?", [conv_id, since_id]
        if before_id is not None:
            where += " and id < ?"
            params.append(before_id)
        rows = self.db.query(f"select * from messages where {where} order by id", params)
        return [_message(r) for r in rows]

    def last_messages(self, conv_id: int, count: int) -> list[Message]:
        """A chat's newest ``count`` messages, oldest first (without reading the rest)."""
        rows = self.db.query(
            "select * from messages where conversation_id = ? order by id desc limit ?",
            [conv_id, count],
        )
        return [_message(r) for r in rows][::-1]

    @_writes
    def delete_message(self, msg_id: int) -> None:
        with self.transaction():
            self.db.execute("delete from messages where id = ?", [msg_id])

    @_writes
    def delete_messages_from(self, conv_id: int, msg_id: int) -> None:
        """Delete message ``msg_id`` of a chat and every later one (edit and resend)."""
        with self.transaction():
            self.db.execute(
                "delete from messages where conversation_id = ? and id >= ?", [conv_id, msg_id]
            )

    def recover_interrupted(self, stale_after: float = 30.0) -> int:
        """Mark answers left ``partial`` by a crashed or killed process as interrupted.

        An answer records its writer (``meta["writer"]``: host and pid). On
        this host, a writer whose process is gone is dead at once; a writer on
        another host (a shared home directory) counts as dead once its answer
        has not been touched for ``stale_after`` seconds. A live llama-tui on
        the same database keeps its running answer.
        """
        cutoff = datetime.now(UTC).timestamp() - stale_after
        stale = datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="microseconds")
        dead = []
        for row in self.db.query(
            "select id, meta, updated_at from messages where status = ?", [PARTIAL]
        ):
            writer = json.loads(row["meta"] or "{}").get("writer", "")
            host, _, pid = writer.rpartition(":")
            if host == HOSTNAME and pid.isdigit():
                alive = pid_exists(int(pid))
            else:
                alive = row["updated_at"] >= stale
            if not alive:
                dead.append(row["id"])
        with self.transaction():
            for msg_id in dead:
                self.db.execute(
                    "update messages set status = ? where id = ? and status = ?",
                    [INTERRUPTED, msg_id, PARTIAL],
                )
        return len(dead)


HOSTNAME = socket.gethostname()


def writer_id() -> str:
    """Who is writing an answer: ``host:pid`` (see :meth:`Store.recover_interrupted`)."""
    return f"{HOSTNAME}:{os.getpid()}"


# Rows are read through these two: what a database holds (written by an older
# version, another program, an imported file) is data for the screen, so its
# text (titles, messages, meta such as an error) is cleaned of escape sequences
# here, where it enters.


def _conversation(row: dict[str, Any]) -> Conversation:
    """A chat from its row; damaged stored values give way to defaults, never a crash."""
    sampling, problem = _json_object(row["sampling"], "sampling")
    sampling, bad = clean_sampling(sampling)
    problems = [p for p in (problem, *(f"sampling.{key}" for key in bad)) if p]
    title = row["title"]
    if not isinstance(title, str):
        title, problems = str(title), [*problems, "title"]
    return Conversation(
        id=row["id"],
        title=clean_data(title or "New chat"),
        persona=str(row["persona"]),
        model=str(row["model"] or ""),
        sampling=sampling,
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"]),
        context_start_id=_int_or_none(row.get("context_start_id")),
        pinned=bool(row.get("pinned")),
        archived=bool(row.get("archived")),
        problem=", ".join(problems),
    )


def _message(row: dict[str, Any]) -> Message:
    """A message from its row; damaged meta values are left out, never a crash."""
    meta, problem = _json_object(row["meta"], "meta")
    meta, bad = clean_meta(meta)
    problems = [p for p in (problem, *(f"meta.{key}" for key in bad)) if p]
    content = row["content"]
    if not isinstance(content, str):
        content, problems = "" if content is None else str(content), [*problems, "content"]
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=str(row["role"]),
        content=clean_data(content),
        status=row["status"] if row["status"] in STATUSES else COMPLETE,
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"] or ""),
        model=str(row["model"] or ""),
        meta=clean_data(meta),
        problem=", ".join(problems),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_object(text: Any, name: str) -> tuple[dict[str, Any], str]:
    """A stored JSON object, or ({}, name) when it is not one (bad JSON, a list, NaN…)."""
    if not text:
        return {}, ""
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return {}, name
    return (value, "") if isinstance(value, dict) else ({}, name)


# meta keys the app reads, and the types they must have
_META_TYPES: dict[str, tuple[type, ...]] = {
    "prompt_tokens": (int,),
    "completion_tokens": (int,),
    "n_ctx": (int,),
    "tokens_per_second": (int, float),
    "ttft": (int, float),
    "seed": (int,),
    "start": (int,),
    "finish_reason": (str,),
    "error": (str,),
    "writer": (str,),
    "mode": (str,),
    "model": (str,),
    "endpoint": (str,),
}


def meta_problems(meta: dict[str, Any], depth: int = 0) -> list[str]:
    """The keys of ``meta`` whose values have the wrong type (what the app cannot use)."""
    bad = []
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        wrong = isinstance(value, bool) or not isinstance(value, types)
        if wrong or (isinstance(value, float) and not math.isfinite(value)):
            bad.append(key)
    if "alternatives" in meta and not _valid_versions(meta["alternatives"], depth):
        bad.append("alternatives")
    return bad


def _valid_versions(versions: Any, depth: int) -> bool:
    if not isinstance(versions, list) or depth > 1:
        return False
    for version in versions:
        if not isinstance(version, dict) or not isinstance(version.get("content"), str):
            return False
        if version.get("status", COMPLETE) not in STATUSES:
            return False
        meta = version.get("meta", {})
        if not isinstance(meta, dict) or meta_problems(meta, depth + 1):
            return False
    return True


def clean_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``meta`` without its badly typed values, and the keys that were left out."""
    bad = meta_problems(meta)
    return {k: v for k, v in meta.items() if k not in bad}, bad


def clean_sampling(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A chat's sampling settings without the ones that are not numbers (and those keys)."""
    from tui.core.sampling import SPEC, coerce

    good, bad = {}, []
    for key, value in values.items():
        try:
            if key in SPEC and value is not None:
                coerce(key, value)  # raises for what is not a number (NaN, "abc", [])
                if not math.isfinite(float(value)):
                    raise ValueError(key)
            good[key] = value
        except (ValueError, OverflowError):
            bad.append(key)
    return good, bad


def _open(path: Path) -> sqlite_utils.Database:
    """Open (creating with owner-only permissions) and configure the database."""
    if str(path) != ":memory:":
        try:
            paths.ensure_private_dir(path.parent)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(open_problem(path, exc)) from exc
    try:
        conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
        conn.execute("pragma busy_timeout = 10000")
        conn.execute("pragma synchronous = normal")
        conn.execute("pragma foreign_keys = on")
    except sqlite3.Error as exc:
        raise StoreError(open_problem(path, exc)) from exc
    return sqlite_utils.Database(conn)


def open_problem(path: Path, exc: BaseException) -> str:
    """Why ``path`` cannot be used, and what to do: only a damaged file is "moved aside".

    SQLite says "unable to open database file" alike for a full disk, a
    read-only or immutable directory and a missing one, so the directory is
    probed (a small file written and removed) to tell people the real cause.
    """
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc).rstrip(".")
    lowered = reason.lower()
    problem = "" if str(path) == ":memory:" else _directory_problem(path.parent)
    if problem == "full" or "full" in lowered:
        return (
            f"The disk holding the chat database {path} is full ({reason}). "
            "Free some space, then start llama-tui again; your chats are unharmed."
        )
    if problem or "readonly" in lowered or "read-only" in lowered:
        why = problem or "read-only"
        return (
            f"The chat database {path} cannot be written: {path.parent} is {why} ({reason}). "
            "Make the directory and the file writable (or the disk writable again), "
            "or choose another file with --db PATH or LLAMA_TUI_DB."
        )
    if isinstance(exc, OSError):
        return (
            f"Cannot create the chat database {path}: {reason}. Check that the directory "
            "is writable, or choose another file with --db PATH or LLAMA_TUI_DB."
        )
    if any(word in lowered for word in ("not a database", "malformed", "encrypted")):
        return (
            f"{path} is not a usable llama-tui database ({reason}). "
            "Move it aside (your chats are not deleted by that) or choose another file "
            "with --db PATH."
        )
    return (
        f"Cannot use the chat database {path}: {reason}. "
        "Check the file and its directory, or choose another file with --db PATH."
    )


def _directory_problem(directory: Path) -> str:
    """What is wrong with ``directory`` ("full", "not writable"…), or "" if a test write works."""
    import errno
    import shutil
    import tempfile

    try:
        if shutil.disk_usage(directory).free < 64 * 1024:
            return "full"
        with tempfile.TemporaryFile(dir=directory, prefix=".llama-tui-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        if exc.errno == errno.EROFS:
            return "on a read-only file system"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "not writable (its permissions or an immutable flag)"
        return ""  # a missing directory, a file in its place: the error says it well
    return ""


def describe(exc: BaseException) -> str:
    """A one-line message for any store failure, for the command line."""
    if isinstance(exc, StoreError):
        return str(exc)
    reason = str(exc).rstrip(".")
    hint = next((h for k, h in _WRITE_HINTS.items() if k in reason), "")
    if any(word in reason for word in ("malformed", "not a database")):
        hint = "The database file is damaged: restore a backup (chats.db.bak-v*) or move it aside."
    return f"The chat database failed: {reason}. {hint}".strip()
