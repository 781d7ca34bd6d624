"""The console script and the packaging of the bundled personas."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tui import __version__

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "llama-tui"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def needs_script() -> None:
    if not SCRIPT.exists():
        pytest.skip("llama-tui is not installed in this environment")


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"llama-tui {__version__}"
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--model", "--db", "--persona", "LLAMA_TUI_DATA_DIR"):
        assert flag in result.stdout


def test_personas_list_shows_bundled_ones() -> None:
    result = run("personas", "list")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"assistant", "bob", "chatllama"} <= set(names)


def test_paths_follow_the_environment(isolated_dirs: Path) -> None:
    out = run("paths").stdout
    assert str(isolated_dirs / "data" / "chats.db") in out
    assert str(isolated_dirs / "config" / "config.toml") in out


def test_chats_list_on_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    result = run("--db", str(bad), "chats", "list")
    assert result.returncode == 1
    assert "not a usable llama-tui database" in result.stderr
    assert "Traceback" not in result.stderr


def test_wheel_ships_the_bundled_personas(tmp_path: Path) -> None:
    """A plain (non-editable) install gets the personas inside the package."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("llama_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for persona in ("assistant", "bob", "chatllama"):
        assert f"tui/_bundled_personas/{persona}.toml" in names
    assert "tui/app.py" in names and "tui/engine/worker.py" in names
