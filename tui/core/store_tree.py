"""The tree of a chat in the database: parents, the current leaf, walks up and down.

A message's ``parent_id`` is the message it follows (None: a first one) and
a chat's ``leaf_id`` the last message of the branch on screen. A message is
always newer than its parent (a larger id): the app, the migration and imports
keep it so, and every walk here requires it, so that parents that loop (a
damaged or hostile database) end a walk instead of hanging it. Part of
:class:`tui.core.store.Store`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

from tui.core.store_errors import writes
from tui.core.store_rows import Message
from tui.core.store_rows import message as _message


class TreeStore:
    """The tree reads and writes of :class:`~tui.core.store.Store` (a part of it)."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:  # Store (tui/core/store.py) has them

        def _query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...
        def transaction(self) -> contextlib.AbstractContextManager[None]: ...
        def get_message(self, msg_id: int) -> Message: ...

    def _path_rows(self, leaf: int, since_id: int = 0) -> list[dict[str, Any]]:
        """The rows from the first message (or ``since_id``) down to ``leaf``, in order.

        One statement: a walk up the parents that reads only the index (about
        3 ms for 5,000 messages), then the chat's rows in id order that are on
        it. Measured on 5,000 messages: about 10 ms more than reading a linear
        chat's rows (25-35 ms), against the 50-90 ms of making them messages.
        """
        return self._query(
            "with recursive path(id, parent_id) as ("
            " select id, parent_id from messages where id = ?"
            " union all select m.id, m.parent_id from messages m"
            " join path p on m.id = p.parent_id where m.id < p.id and p.id > ?)"
            " select * from messages where conversation_id ="
            " (select conversation_id from messages where id = ?)"
            " and id in (select id from path) order by id",
            [leaf, since_id, leaf],
        )

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

    @writes
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

        From the index alone (``messages_forks``): the parents with several
        children, then those children; no message row is read (5,000 messages
        with 100 forks: about 1 ms).
        """
        if self._leaf(conv_id) is None:
            return {}
        groups: dict[int | None, list[int]] = {}
        for parent, msg_id in self.conn.execute(
            "select parent_id, id from messages where conversation_id = ?"
            " and coalesce(parent_id, 0) in (select coalesce(parent_id, 0) from messages"
            " where conversation_id = ? group by parent_id having count(*) > 1)"
            " order by parent_id, id",
            [conv_id, conv_id],
        ):
            groups.setdefault(parent, []).append(msg_id)
        return {
            msg_id: (place, len(ids))
            for ids in groups.values()
            for place, msg_id in enumerate(ids, 1)
        }

    @writes
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

    @writes
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
