"""Where llama-tui keeps its files.

Data (the chat database, logs) lives in the XDG data dir and configuration
(config.toml, the user's personas) in the XDG config dir, both found with
platformdirs. Environment variables override them so that tests, scripts and
people with unusual setups never touch the default locations:

- ``LLAMA_TUI_DATA_DIR``: the data directory
- ``LLAMA_TUI_CONFIG_DIR``: the config directory
- ``LLAMA_TUI_DB``: the database file (``--db`` on the command line wins)
- ``LLAMA_TUI_CACHE_DIR``: throwaway files (the engine's saved KV states)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import platformdirs

APP_NAME = "llama-tui"


def data_dir() -> Path:
    """The directory for the database and logs (not created)."""
    override = os.environ.get("LLAMA_TUI_DATA_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """The directory for config.toml and user personas (not created)."""
    override = os.environ.get("LLAMA_TUI_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    """The directory for files that can be lost at any time (not created)."""
    override = os.environ.get("LLAMA_TUI_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME))


def kv_states_dir() -> Path:
    """Saved KV states of recent chats (kept across restarts within ``kv_cache_mb``)."""
    return cache_dir() / "kv-states"


def default_db_path() -> Path:
    """The chat database: ``$LLAMA_TUI_DB`` or ``<data dir>/chats.db``."""
    override = os.environ.get("LLAMA_TUI_DB")
    return Path(override).expanduser() if override else data_dir() / "chats.db"


def user_personas_dir() -> Path:
    """Where the user's own persona files live."""
    return config_dir() / "personas"


def log_path() -> Path:
    """The engine log: llama.cpp's own output goes here, never to the screen."""
    return data_dir() / "engine.log"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent readable by the owner only (0700).

    The mode is set after ``mkdir`` because the umask filters ``mkdir``'s mode:
    under ``umask 000`` a parent made with default settings would be 0777 and
    another user could plant a ``config.toml`` in it. A directory that already
    exists is left as it is: it may be the user's own choice
    (``--db ~/shared/chats.db``) and is not ours to change.
    """
    missing: list[Path] = []
    probe = path
    while not probe.is_dir() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made by another process meanwhile: not ours to change
        directory.chmod(0o700)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600), even if it exists.

    Why: exports and persona files hold chats and prompts; a file created with
    the default mode (0644) would be readable by every local user.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        file.write(payload)


def others_can_write(path: Path) -> str | None:
    """Why other local users could change what is in ``path``, or None if they cannot.

    A directory (or file) is unsafe when another user owns it, when everyone may
    write to it, or when its group may and that group is not the owner's private
    group. Missing paths are safe: ``ensure_private_dir`` creates them 0700.
    """
    try:
        info = path.stat()
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to another user (uid {info.st_uid})"
    if mode & stat.S_IWOTH:
        return f"{path} can be written by every user (mode {mode:04o})"
    if mode & stat.S_IWGRP and not _private_group(info.st_gid):
        return f"{path} can be written by its group (mode {mode:04o})"
    return None


def _private_group(gid: int) -> bool:
    """True for a user-private group: named after this user and with no other member."""
    try:
        import grp
        import pwd

        group, user = grp.getgrgid(gid), pwd.getpwuid(os.getuid())
    except (ImportError, KeyError):
        return False
    return group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}
