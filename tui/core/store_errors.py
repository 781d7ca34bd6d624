"""Why the chat database cannot be used, in words a person can act on.

SQLite's messages name neither the file nor the fix; these do (see
:class:`tui.core.store.Store`, whose writes raise :class:`StoreError`).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do."""


_WRITE_HINTS = {
    "full": "The disk is full: free some space and try again.",
    "readonly": "The file or its directory is read-only: check the permissions.",
    "read-only": "The file or its directory is read-only: check the permissions.",
    "locked": "Another program kept the database locked for too long: try again.",
}


def write_problem(path: Path, exc: BaseException) -> str:
    """Why a write to ``path`` failed, and what to do (a full disk, a read-only file…)."""
    reason = str(exc)
    hint = next((h for k, h in _WRITE_HINTS.items() if k in reason), "")
    return f"Could not save to the chat database {path}: {reason}. {hint}".strip()


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


F = TypeVar("F", bound=Callable[..., Any])


def writes(method: F) -> F:
    """Turn SQLite write failures of a store method into a :class:`StoreError` a person
    can act on (the store has a ``path``)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise StoreError(write_problem(self.path, exc)) from exc

    return wrapper  # type: ignore[return-value]
