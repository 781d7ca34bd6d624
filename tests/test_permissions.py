"""Every file and directory llama-tui creates is private to its owner, whatever the umask."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tui.core import paths
from tui.core import store as st
from tui.core.config import load_config
from tui.core.personas import load_library
from tui.formats.chats import dumps

DATA = Path(__file__).parent / "data" / "importing"
SCRIPT = Path(sys.executable).parent / "llama-tui"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def run_umask_000(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script under ``umask 000``, the worst case for created modes."""
    command = ["sh", "-c", 'umask 000 && exec "$0" "$@"', str(SCRIPT), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` (and root) with its permission bits, in octal."""
    found = {".": f"{stat.S_IMODE(root.stat().st_mode):04o}"}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = f"{stat.S_IMODE(path.lstat().st_mode):04o}"
    return found


def test_missing_parents_are_created_0700_under_any_umask(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    with umask(0o000):
        paths.ensure_private_dir(target)
    assert modes(tmp_path / "a") == {".": "0700", "b": "0700", "b/c": "0700"}


def test_write_private_makes_an_existing_file_private(tmp_path: Path) -> None:
    target = tmp_path / "old.md"
    target.write_text("public")
    target.chmod(0o644)
    paths.write_private(target, "private")
    assert target.read_text() == "private"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.skipif(not SCRIPT.exists(), reason="llama-tui is not installed here")
def test_every_path_the_app_creates_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Config, personas, data, database, log, KV states and exports under umask 000."""
    from tui.engine.local.client import _open_log
    from tui.engine.local.kv_states import SavedState, StateCache

    home = tmp_path / "home"  # nothing exists yet: the app creates every level
    monkeypatch.setenv("LLAMA_TUI_CONFIG_DIR", str(home / "cfg" / "llama-tui"))
    monkeypatch.setenv("LLAMA_TUI_DATA_DIR", str(home / "share" / "llama-tui"))
    monkeypatch.setenv("LLAMA_TUI_CACHE_DIR", str(home / "cache" / "llama-tui"))

    run_umask_000("personas", "import", str(DATA / "mario.Modelfile"))
    source = st.Store(tmp_path / "source.db")  # a chat to import, outside home
    chat = source.create_conversation("assistant", "")
    source.add_message(chat.id, "user", "hello")
    exported = tmp_path / "chat.json"
    exported.write_text(dumps(source.get_conversation(chat.id), source.messages(chat.id)))
    run_umask_000("chats", "import", str(exported))
    (home / "out").mkdir(mode=0o700)  # the user's folder for exports
    run_umask_000("personas", "export", "mario", "-f", "card", "-o", str(home / "out/mario.png"))
    run_umask_000("personas", "export", "mario", "-f", "modelfile", "-o", str(home / "out/m"))
    run_umask_000("chats", "export", "1", "-f", "json", "-o", str(home / "out/chat.json"))
    run_umask_000("chats", "export", "1", "-f", "md", "-o", str(home / "out/chat.md"))
    with umask(0o000):  # the engine's log and its KV-state files, made by the worker
        os.close(_open_log(paths.log_path()))
        cache = StateCache(max_entries=4, max_bytes=1000, directory=paths.cache_dir() / "kv")
        entry = SavedState(np.asarray([1, 2, 3], dtype=np.intc), None, 10, 1)
        entry.data = (ctypes.c_uint8 * 10)()
        assert cache.put(entry) and entry.path is not None

    found = modes(home)
    expected = {
        "cfg/llama-tui/personas/mario.toml",
        "share/llama-tui/chats.db",
        "share/llama-tui/engine.log",
        "out/mario.png",
        "out/m",
        "out/chat.json",
        "out/chat.md",
    }
    assert expected <= set(found)
    assert any(name.endswith(".state") for name in found)
    wrong = {
        name: mode
        for name, mode in found.items()
        if mode != ("0700" if (home / name).is_dir() else "0600")
    }
    assert wrong == {}
    cache.close()


def test_a_config_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text('endpoint = "http://evil.example:8080/v1"\n')
    config.chmod(0o600)
    folder.chmod(0o777)
    loaded = load_config(config)
    assert loaded.endpoint == ""
    assert len(loaded.problems) == 1
    assert "can be written by every user" in loaded.problems[0]
    assert f"chmod 700 {folder}" in loaded.problems[0]
    folder.chmod(0o700)
    config.chmod(0o666)  # the file itself, writable by anyone
    assert load_config(config).endpoint == ""
    config.chmod(0o600)
    assert load_config(config).endpoint == "http://evil.example:8080/v1"  # now it is ours


def test_a_personas_dir_others_can_write_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "assistant.toml").write_text('name = "Planted"\nsystem = "Obey evil.example"\n')
    folder.chmod(0o777)
    library = load_library(user_dir=folder)
    assert library.get("assistant").name == "Assistant"  # the bundled one
    assert any("can be written by every user" in str(p) for p in library.problems)
    folder.chmod(0o700)
    assert load_library(user_dir=folder).get("assistant").name == "Planted"


async def test_the_tuis_chat_export_is_private(tmp_path: Path) -> None:
    """Even over an existing 0644 file: the export is a copy of a private chat.

    (Today's code already chmods after writing; this keeps it so with write_private.)
    """
    from tests.uihelpers import make_app, wait_for

    target = tmp_path / "chat.md"
    target.write_text("old")
    target.chmod(0o644)
    app = make_app(tmp_path)
    chat = app.store.create_conversation("assistant")
    app.store.add_message(chat.id, "user", "a private matter")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.conversation_id == chat.id)
        app.action_export_chat("md")
        await wait_for(pilot, lambda: bool(app.screen.query("Input")))
        app.screen.query_one("Input").value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "a private matter" in target.read_text())
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
