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
    """Create ``path`` (and missing parents) readable by the owner only (0700).

    A directory that already exists is left as it is: it may be the user's
    own choice (``--db ~/shared/chats.db``) and is not ours to change.
    """
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return path
