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
import functools
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tui.core import migrations, paths
from tui.core.processes import pid_exists
from tui.core.sanitize import clean_text
from tui.core.store_errors import StoreError, open_problem, write_problem
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

TITLE_LENGTH = 60
AT_LEAF = 0  # ``add_message``'s default parent: the chat's current leaf (no id is 0)
_CHAT_FIELDS = frozenset(
    {"title", "persona", "model", "sampling", "created_at", "updated_at", "pinned", "archived"}
)
_MESSAGE_FIELDS = frozenset(
    {"role", "content", "status", "created_at", "updated_at", "model", "meta"}
)


F = TypeVar("F", bound=Callable[..., Any])


def _writes(method: F) -> F:
    """Turn SQLite write failures into a :class:`StoreError` a person can act on."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise StoreError(write_problem(self.path, exc)) from exc

    return wrapper  # type: ignore[return-value]


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
            conv_id = self._insert("conversations", row)
        return self.get_conversation(conv_id)

    @_writes
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

    def search(self, query: str, limit: int = 100) -> list[tuple[Message, str]]:
        """Messages matching ``query`` (FTS5, every word must match), best first.

        Returns (message, chat title) pairs. The query is quoted word by word, so
        FTS syntax characters in it are searched for, never interpreted.
        """
        words = [w.replace('"', '""') for w in query.split()]
        if not words:
            return []
        match = " ".join(f'"{w}"*' for w in words)
        rows = self._query(
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
            cursor = self.conn.execute(
                f"update [{table}] set {columns} where id = ?", [*values.values(), row_id]
            )
        return cursor.rowcount > 0

    @_writes
    def delete_conversation(self, conv_id: int) -> None:
        with self.transaction():
            self.conn.execute("delete from messages where conversation_id = ?", [conv_id])
            self.conn.execute("delete from conversations where id = ?", [conv_id])

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
        parent_id: int | None = AT_LEAF,
    ) -> Message:
        """Add a message (committed before this returns); it becomes the chat's leaf.

        By default it follows the chat's current leaf (the end of the branch on
        screen); ``parent_id`` makes it a child of that message instead (a new
        branch beside the message's other children), ``None`` a first message.
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

    def _path_rows(self, leaf: int, since_id: int = 0) -> list[dict[str, Any]]:
        """The rows from the first message (or ``since_id``) down to ``leaf``, in order.

        The path's ids come from a recursive walk up the parents that reads
        only the index; the rows then from one range scan of the chat's ids
        (``first..leaf``), keeping those on the path. Joining each row back
        took twice as long as reading a linear chat (5,000 messages: 30 ms
        against 15), this costs about what that read did.
        """
        ids = [
            row[0]
            for row in self.conn.execute(
                "with recursive path(id, parent_id) as ("
                " select id, parent_id from messages where id = ?"
                " union all select m.id, m.parent_id from messages m"
                " join path p on m.id = p.parent_id where m.id < p.id and p.id > ?)"
                " select id from path",
                [leaf, since_id],
            )
        ]
        if not ids:
            return []
        owner = self.conn.execute(
            "select conversation_id from messages where id = ?", [leaf]
        ).fetchone()
        wanted = set(ids)
        rows = self._query(
            "select * from messages where conversation_id = ? and id between ? and ? order by id",
            [owner[0], min(ids), leaf],
        )
        return [row for row in rows if row["id"] in wanted]

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

    # --- the tree of a chat ----------------------------------------------------------
    # A message is always newer than its parent (its id is larger): the app, the
    # migration and imports keep it so, and every walk below requires it, so that
    # parents that loop (a damaged or hostile database) end a walk instead of hanging it.

    def _leaf(self, conv_id: int, adopt: bool = False) -> int | None:
        """The chat's current leaf: the one it remembers, else its newest message.

        None for a chat without messages, or one that never had a leaf and
        whose messages have no parents (rows another program wrote: read as
        one linear branch; with ``adopt``, inside a write, linked into one).
        """
        row = self.conn.execute(
            "select c.leaf_id, m.id from conversations c left join messages m"
            " on m.id = c.leaf_id and m.conversation_id = c.id where c.id = ?",
            [conv_id],
        ).fetchone()
        if row is not None and row[1] is not None:
            return row[1]
        if adopt:
            self._adopt_linear(conv_id)
        newest = self.conn.execute(
            "select max(id), max(parent_id) from messages where conversation_id = ?", [conv_id]
        ).fetchone()
        remembered = row is not None and row[0] is not None  # a leaf deleted meanwhile
        if newest[0] is None or not (remembered or adopt or newest[1] is not None):
            return None
        return newest[0]

    def _adopt_linear(self, conv_id: int) -> None:
        """Link a chat that never had a leaf, nor parents, into one chain (inside a write)."""
        unlinked = self.conn.execute(
            "select 1 from conversations where id = ? and leaf_id is null"
            " and not exists (select 1 from messages where conversation_id = ?"
            " and parent_id is not null)",
            [conv_id, conv_id],
        ).fetchone()
        if unlinked is not None:
            self.conn.execute(
                "update messages set parent_id = (select max(p.id) from messages p"
                " where p.conversation_id = messages.conversation_id and p.id < messages.id)"
                " where conversation_id = ?",
                [conv_id],
            )

    def branch_ids(self, conv_id: int) -> set[int]:
        """The ids of the chat's current branch (read from the index alone: cheap)."""
        leaf = self._leaf(conv_id)
        if leaf is None:
            sql, params = "select id from messages where conversation_id = ?", [conv_id]
        else:
            sql = (
                "with recursive path(id, parent_id) as ("
                " select id, parent_id from messages where id = ?"
                " union all select m.id, m.parent_id from messages m"
                " join path p on m.id = p.parent_id where m.id < p.id) select id from path"
            )
            params = [leaf]
        return {row[0] for row in self.conn.execute(sql, params)}

    def leaf_id(self, conv_id: int) -> int | None:
        """The last message of the chat's current branch (None: the chat has none)."""
        leaf = self._leaf(conv_id)
        if leaf is None:
            row = self.conn.execute(
                "select max(id) from messages where conversation_id = ?", [conv_id]
            ).fetchone()
            return row[0]
        return leaf

    @_writes
    def set_leaf(self, conv_id: int, msg_id: int) -> bool:
        """Make the branch ending at ``msg_id`` the chat's current one (False: chat gone)."""
        with self.transaction():
            self._adopt_linear(conv_id)
            owner = self.conn.execute(
                "select conversation_id from messages where id = ?", [msg_id]
            ).fetchone()
            if owner is None or owner[0] != conv_id:
                raise KeyError(f"no message {msg_id} in chat {conv_id}")
            cursor = self.conn.execute(
                "update conversations set leaf_id = ? where id = ?", [msg_id, conv_id]
            )
        return cursor.rowcount > 0

    def children(self, msg_id: int) -> list[Message]:
        """The messages that follow ``msg_id`` (its branches), oldest first."""
        rows = self._query("select * from messages where parent_id = ? order by id", [msg_id])
        return [_message(r) for r in rows]

    def siblings(self, msg_id: int) -> list[Message]:
        """``msg_id`` and the other messages with its parent (its versions), oldest first."""
        message = self.get_message(msg_id)
        if message.parent_id is not None:
            return self.children(message.parent_id)
        rows = self._query(
            "select * from messages where conversation_id = ? and parent_id is null order by id",
            [message.conversation_id],
        )
        if self._leaf(message.conversation_id) is None:  # unlinked rows: one branch
            return [message]
        return [_message(r) for r in rows]

    def path_to(self, msg_id: int) -> list[Message]:
        """The branch from the first message down to ``msg_id``, oldest first."""
        return [_message(r) for r in self._path_rows(msg_id)]

    def newest_leaf(self, msg_id: int) -> int:
        """The newest message at the end of any branch under ``msg_id`` (itself if none).

        The newest descendant is always a leaf: a child is newer than its parent.
        """
        row = self.conn.execute(
            "with recursive below(id) as (select ? union all"
            " select m.id from messages m join below b on m.parent_id = b.id where m.id > b.id)"
            " select max(id) from below",
            [msg_id],
        ).fetchone()
        return row[0]

    def subtree_ids(self, msg_id: int) -> list[int]:
        """``msg_id`` and every message under it (its replies on every branch)."""
        rows = self.conn.execute(
            "with recursive below(id) as (select ? union all"
            " select m.id from messages m join below b on m.parent_id = b.id where m.id > b.id)"
            " select id from below order by id",
            [msg_id],
        ).fetchall()
        return [r[0] for r in rows]

    def tree(self, conv_id: int) -> list[Message]:
        """Every message of the chat, on every branch, oldest first (parents first)."""
        rows = self._query(
            "select * from messages where conversation_id = ? order by id", [conv_id]
        )
        messages = [_message(r) for r in rows]
        if self._leaf(conv_id) is None:  # unlinked rows: read as one chain
            for before, message in zip(messages, messages[1:], strict=False):
                message.parent_id = before.id
        return messages

    def fork_positions(self, conv_id: int) -> dict[int, tuple[int, int]]:
        """For each message that has siblings: (its place among them from 1, how many).

        One indexed pass over the chat's (id, parent) pairs; no message text is read.
        """
        if self._leaf(conv_id) is None:
            return {}
        groups: dict[int | None, list[int]] = {}
        for msg_id, parent in self.conn.execute(
            "select id, parent_id from messages where conversation_id = ? order by id", [conv_id]
        ):
            groups.setdefault(parent, []).append(msg_id)
        return {
            msg_id: (place, len(ids))
            for ids in groups.values()
            if len(ids) > 1
            for place, msg_id in enumerate(ids, 1)
        }

    @_writes
    def delete_message(self, msg_id: int) -> int | None:
        """Delete one message; its replies stay, following the message before it instead.

        Returns the chat's leaf afterwards (None: no message left). See
        :meth:`delete_branch` to delete the replies too.
        """
        message = self.get_message(msg_id)
        conv_id = message.conversation_id
        with self.transaction():
            self._adopt_linear(conv_id)
            leaf = self._leaf(conv_id)
            siblings = [m.id for m in self.siblings(msg_id)]
            self.conn.execute(
                "update messages set parent_id = ? where parent_id = ?",
                [message.parent_id, msg_id],
            )
            self.conn.execute("delete from messages where id = ?", [msg_id])
            if leaf is None or leaf == msg_id:
                leaf = self._leaf_after_delete(conv_id, message, siblings)
            self._forget_window_start(conv_id, {msg_id})
        return leaf

    def _leaf_after_delete(self, conv_id: int, message: Message, siblings: list[int]) -> int | None:
        """The branch on screen went: the nearest sibling's newest one (before, else after),
        else the parent's. Inside the deleting transaction."""
        place = siblings.index(message.id)
        rest = siblings[:place][-1:] + siblings[place + 1 : place + 2]
        leaf = self.newest_leaf(rest[0]) if rest else message.parent_id
        self.conn.execute("update conversations set leaf_id = ? where id = ?", [leaf, conv_id])
        return leaf

    def _forget_window_start(self, conv_id: int, gone: set[int]) -> None:
        """The model's window started at a message that is gone: it starts afresh."""
        start = self.conn.execute(
            "select context_start_id from conversations where id = ?", [conv_id]
        ).fetchone()
        if start is not None and start[0] in gone:
            self.conn.execute(
                "update conversations set context_start_id = null where id = ?", [conv_id]
            )

    @_writes
    def delete_branch(self, msg_id: int) -> int | None:
        """Delete ``msg_id`` and its replies on every branch; the other branches stay whole.

        If the chat's current branch went with it, the current one becomes the
        newest branch of the nearest sibling left (the one before, else after),
        else the parent's. Returns the chat's leaf afterwards (None: no message left).
        """
        message = self.get_message(msg_id)
        conv_id = message.conversation_id
        with self.transaction():
            self._adopt_linear(conv_id)
            doomed = set(self.subtree_ids(msg_id))
            leaf = self._leaf(conv_id)
            siblings = [m.id for m in self.siblings(msg_id)]
            below = (
                "with recursive below(id) as (select ? union all select m.id from messages m"
                " join below b on m.parent_id = b.id where m.id > b.id) select id from below"
            )
            # Only a damaged database has an older message pointing into the branch:
            # it becomes a first message rather than block the delete.
            self.conn.execute(
                f"update messages set parent_id = null where parent_id in ({below})"
                f" and id < parent_id",
                [msg_id],
            )
            self.conn.execute(f"delete from messages where id in ({below})", [msg_id])
            if leaf is None or leaf in doomed:
                leaf = self._leaf_after_delete(conv_id, message, siblings)
            self._forget_window_start(conv_id, doomed)
        return leaf

    @_writes
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
