"""The chat database: conversations and their messages in SQLite.

Plain :mod:`sqlite3`: every read and write goes through :class:`Store`, so a
write is exactly one transaction of ours (sqlite-utils, which some versions
commit inside ``insert()``, is used only by a migration, loaded when one runs).
The database runs in WAL mode with a busy timeout so that two llama-tui
processes (two SSH sessions) can share it, and every write is its own short
transaction so that a crash loses nothing already written. The schema is
versioned (``PRAGMA user_version``) and evolves through the ordered migrations
in :mod:`tui.core.migrations`. Rows become :class:`Conversation` and
:class:`Message` in :mod:`tui.core.store_rows`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tui.core import migrations, paths
from tui.core.processes import pid_exists
from tui.core.sanitize import clean_text
from tui.core.store_errors import StoreError, open_problem, writes
from tui.core.store_errors import describe as describe  # for the command line

# Re-exported: the app knows chats and messages as ``store.Conversation`` and so on.
from tui.core.store_rows import (  # noqa: F401
    CANCELLED,
    COMPLETE,
    ERROR,
    INTERRUPTED,
    PARTIAL,
    STATUSES,
    Conversation,
    Message,
    clean_meta,
    clean_sampling,
    meta_problems,
)
from tui.core.store_rows import conversation as _conversation
from tui.core.store_rows import message as _message
from tui.core.store_tree import TreeStore

TITLE_LENGTH = 60
AT_LEAF = 0  # ``add_message``'s default parent: the chat's current leaf (no id is 0)
_CHAT_FIELDS = frozenset(
    {"title", "persona", "model", "sampling", "created_at", "updated_at", "pinned", "archived"}
)
_MESSAGE_FIELDS = frozenset(
    {"role", "content", "reasoning", "status", "created_at", "updated_at", "model", "meta"}
)


def now() -> str:
    """A sortable UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def title_from(text: str) -> str:
    """A one-line chat title from the first user message."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class Store(TreeStore):
    """All reads and writes of the chat database go through here (the tree's in
    :class:`~tui.core.store_tree.TreeStore`)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.conn = _open(self.path)
        self._depth = 0  # how many transaction() blocks are open (the outermost commits)
        try:
            migrations.migrate(self.conn, self.path)  # refuses a newer or foreign one untouched
            # WAL lets two llama-tui processes (two SSH sessions) read and write at once.
            self.conn.execute("pragma journal_mode = wal")
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(open_problem(self.path, exc)) from exc
        except StoreError:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One short write transaction, taking the write lock at its start.

        ``BEGIN IMMEDIATE`` waits (busy timeout) for another process's write
        to finish. A deferred transaction that reads first and then writes can
        instead fail at once with "database is locked" when another process
        wrote in between. Store methods called inside an open transaction join
        it: the outermost block commits all of it, or rolls all of it back.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("begin immediate")
        self._depth = 1
        try:
            yield
            self.conn.commit()
        except BaseException:
            self.conn.rollback()  # also after a failed commit: no transaction is left open
            raise
        finally:
            self._depth = 0

    def _query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Rows as dicts (a cursor of its own, so the connection keeps plain tuples)."""
        cursor = self.conn.cursor()
        cursor.row_factory = _dict_row
        return cursor.execute(sql, params).fetchall()

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row (inside a transaction); its new id."""
        columns = ", ".join(f"[{name}]" for name in row)
        marks = ", ".join("?" for _ in row)
        sql = f"insert into [{table}] ({columns}) values ({marks})"
        return self.conn.execute(sql, list(row.values())).lastrowid or 0

    # --- conversations -------------------------------------------------------------

    @writes
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
            conv_id = self._insert("conversations", row)
        return self.get_conversation(conv_id)

    @writes
    def import_chat(
        self,
        chat: dict[str, Any],
        messages: list[dict[str, Any]],
        context_start: int | None = None,
        parents: list[int | None] | None = None,
        leaf: int | None = None,
    ) -> Conversation:
        """Add a whole chat (an import) in one transaction: all of it or nothing.

        ``chat`` holds a conversation's columns and ``messages`` the messages'
        (``sampling`` and ``meta`` as dicts); ``context_start`` is the index in
        ``messages`` of the first one inside the model's window. ``parents``
        gives each message's parent as an index into ``messages`` (None: a
        first message; each parent before its children); without it the chat
        is one branch. ``leaf`` is the index of the current branch's last
        message (default: the last message).
        """
        unknown = (set(chat) - _CHAT_FIELDS).union(*(set(m) - _MESSAGE_FIELDS for m in messages))
        if unknown:  # column names go into the SQL: only ours
            raise ValueError(f"not a field of a chat or a message: {sorted(unknown)}")
        if parents is None:
            parents = [i - 1 if i else None for i in range(len(messages))]
        if len(parents) != len(messages) or any(
            p is not None and not 0 <= p < i for i, p in enumerate(parents)
        ):
            raise ValueError("each message's parent must be an earlier message")
        with self.transaction():
            row = {**chat, "sampling": json.dumps(chat.get("sampling") or {}, allow_nan=False)}
            conv_id = self._insert("conversations", row)
            ids: list[int] = []
            for message, parent in zip(messages, parents, strict=True):
                meta = json.dumps(message.get("meta") or {}, allow_nan=False)
                parent_id = None if parent is None else ids[parent]
                row = {**message, "conversation_id": conv_id, "meta": meta, "parent_id": parent_id}
                ids.append(self._insert("messages", row))
            if context_start is not None and 0 <= context_start < len(ids):
                self.conn.execute(
                    "update conversations set context_start_id = ? where id = ?",
                    [ids[context_start], conv_id],
                )
            if ids:
                chosen = leaf if leaf is not None and 0 <= leaf < len(ids) else len(ids) - 1
                self.conn.execute(
                    "update conversations set leaf_id = ? where id = ?", [ids[chosen], conv_id]
                )
        return self.get_conversation(conv_id)

    def get_conversation(self, conv_id: int) -> Conversation:
        return _conversation(self._row("conversations", conv_id, "chat"))

    def _row(self, table: str, row_id: int, noun: str) -> dict[str, Any]:
        """One row by id; KeyError naming the ``noun`` when there is none."""
        rows = self._query(f"select * from {table} where id = ?", [row_id])
        if not rows:
            raise KeyError(f"no {noun} with id {row_id}")
        return rows[0]

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
        return [_conversation(r) for r in self._query(sql, [int(archived)])]

    def count_messages(self, conv_id: int) -> int:
        return self.conn.execute(
            "select count(*) from messages where conversation_id = ?", [conv_id]
        ).fetchone()[0]

    def search(
        self, query: str, limit: int = 100, thinking: bool = False
    ) -> list[tuple[Message, str]]:
        """Messages matching ``query`` (FTS5, every word must match), best first.

        Returns (message, chat title) pairs. The query is quoted word by word, so
        FTS syntax characters in it are searched for, never interpreted. The
        answers are searched; with ``thinking``, a reasoning model's thinking too.
        """
        words = [w.replace('"', '""') for w in query.split()]
        if not words:
            return []
        match = " ".join(f'"{w}"*' for w in words)
        if not thinking:
            match = f"{{content}} : ({match})"
        rows = self._query(
            "select m.*, c.title as chat_title from messages_fts f"
            " join messages m on m.rowid = f.rowid"
            " join conversations c on c.id = m.conversation_id"
            " where messages_fts match ? order by rank limit ?",
            [match, limit],
        )
        return [(_message(r), clean_text(r["chat_title"] or "New chat")) for r in rows]

    @writes
    def update_conversation(self, conv_id: int, **values: Any) -> bool:
        """Change a chat's fields; False if the chat is gone (deleted meanwhile)."""
        if "sampling" in values:
            values["sampling"] = json.dumps(values["sampling"])
        return self._update("conversations", conv_id, values)

    def _update(self, table: str, row_id: int, values: dict[str, Any]) -> bool:
        """One row's update; False if the row no longer exists (another process deleted it)."""
        columns = ", ".join(f"[{name}] = ?" for name in values)
        with self.transaction():
            cursor = self.conn.execute(
                f"update [{table}] set {columns} where id = ?", [*values.values(), row_id]
            )
        return cursor.rowcount > 0

    @writes
    def delete_conversation(self, conv_id: int) -> None:
        with self.transaction():
            self.conn.execute("delete from messages where conversation_id = ?", [conv_id])
            self.conn.execute("delete from conversations where id = ?", [conv_id])

    # --- messages ------------------------------------------------------------------

    @writes
    def add_message(
        self,
        conv_id: int,
        role: str,
        content: str,
        status: str = COMPLETE,
        model: str = "",
        meta: dict[str, Any] | None = None,
        parent_id: int | None = AT_LEAF,
        reasoning: str = "",
    ) -> Message:
        """Add a message (committed before this returns); it becomes the chat's leaf.

        By default it follows the chat's current leaf (the end of the branch on
        screen); ``parent_id`` makes it a child of that message instead (a new
        branch beside the message's other children), ``None`` a first message.
        ``reasoning``: a reasoning model's thinking, kept beside the answer.
        """
        stamp = now()
        with self.transaction():
            if parent_id == AT_LEAF:
                parent_id = self._leaf(conv_id, adopt=True)
            elif parent_id is not None:
                self._adopt_linear(conv_id)
                owner = self.conn.execute(
                    "select conversation_id from messages where id = ?", [parent_id]
                ).fetchone()
                if owner is None or owner[0] != conv_id:
                    raise KeyError(f"no message {parent_id} in chat {conv_id}")
            row = {
                "conversation_id": conv_id,
                "parent_id": parent_id,
                "role": role,
                "content": content,
                "reasoning": reasoning,
                "status": status,
                "created_at": stamp,
                "updated_at": stamp,
                "model": model,
                "meta": json.dumps(meta or {}),
            }
            msg_id = self._insert("messages", row)
            self.conn.execute(
                "update conversations set updated_at = ?, leaf_id = ?,"
                " title = case when title = '' and ? = 'user' then ? else title end"
                " where id = ?",
                [stamp, msg_id, role, title_from(content), conv_id],
            )
        return self.get_message(msg_id)

    @writes
    def update_message(
        self,
        msg_id: int,
        content: str | None = None,
        status: str | None = None,
        meta: dict[str, Any] | None = None,
        reasoning: str | None = None,
    ) -> bool:
        """Save streamed text (answer and/or thinking) and/or a new status; one short transaction.

        Returns False if the message is gone: its chat was deleted while it
        streamed (here or by another process), which the caller must survive.
        """
        values: dict[str, Any] = {"updated_at": now()}
        if content is not None:
            values["content"] = content
        if reasoning is not None:
            values["reasoning"] = reasoning
        if status is not None:
            values["status"] = status
        if meta is not None:
            values["meta"] = json.dumps(meta)
        return self._update("messages", msg_id, values)

    def get_message(self, msg_id: int) -> Message:
        return _message(self._row("messages", msg_id, "message"))

    def messages(
        self, conv_id: int, since_id: int = 0, before_id: int | None = None
    ) -> list[Message]:
        """The chat's current branch (first message to its leaf), oldest first.

        With ``since_id`` it starts at that message, if it is on the branch
        (else at the first message: a window start left on another branch
        does not cut this one); ``before_id`` stops before that message. Ids
        grow along every branch (a message is always newer than its parent),
        so a range of the branch is a range of ids.
        """
        leaf = self._leaf(conv_id)
        if leaf is None:  # a chat of rows with no parents (another program wrote it)
            where, params = "conversation_id = ? and id >= ?", [conv_id, since_id]
            if before_id is not None:
                where += " and id < ?"
                params.append(before_id)
            rows = self._query(f"select * from messages where {where} order by id", params)
            return [_message(r) for r in rows]
        rows = self._path_rows(leaf, since_id)
        if since_id and rows and rows[0]["id"] != since_id and rows[0]["parent_id"] is not None:
            rows = self._path_rows(leaf, 0)  # ``since_id`` is on another branch
        if before_id is not None:
            rows = [r for r in rows if r["id"] < before_id]
        return [_message(r) for r in rows]

    def last_messages(self, conv_id: int, count: int) -> list[Message]:
        """The newest ``count`` messages of the current branch, oldest first."""
        leaf = self._leaf(conv_id)
        if leaf is None:
            rows = self._query(
                "select * from messages where conversation_id = ? order by id desc limit ?",
                [conv_id, count],
            )
            return [_message(r) for r in rows][::-1]
        rows = self._query(
            "with recursive path(id, parent_id, depth) as ("
            " select id, parent_id, 1 from messages where id = ?"
            " union all select m.id, m.parent_id, p.depth + 1 from messages m"
            " join path p on m.id = p.parent_id where m.id < p.id and p.depth < ?)"
            " select m.* from messages m join path using (id) order by m.id",
            [leaf, count],
        )
        return [_message(r) for r in rows]

    @writes
    def delete_messages_from(self, conv_id: int, msg_id: int) -> None:
        """Delete message ``msg_id`` of a chat and every later one, on every branch.

        No user action uses it any more (editing makes a branch; deleting asks
        for :meth:`delete_branch`); kept for tools and tests.
        """
        with self.transaction():
            self.conn.execute(
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
        for row in self._query(
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
                self.conn.execute(
                    "update messages set status = ? where id = ? and status = ?",
                    [INTERRUPTED, msg_id, PARTIAL],
                )
        return len(dead)


HOSTNAME = socket.gethostname()


def writer_id() -> str:
    """Who is writing an answer: ``host:pid`` (see :meth:`Store.recover_interrupted`)."""
    return f"{HOSTNAME}:{os.getpid()}"


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _open(path: Path) -> sqlite3.Connection:
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
        conn.execute("pragma recursive_triggers = on")  # as sqlite-utils set it, for the FTS
    except sqlite3.Error as exc:
        raise StoreError(open_problem(path, exc)) from exc
    return conn
