"""End to end: the installed ``llama-tui`` in a real pseudo-terminal, as over SSH.

pexpect runs the command in an 80x24 pty; pyte plays the terminal, so the
test reads the screen the way a person would see it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.model]
COLS, ROWS = 80, 24


def llama_tui_command() -> str:
    """The console script installed next to this Python (the venv's bin)."""
    candidate = Path(sys.executable).parent / "llama-tui"
    found = str(candidate) if candidate.exists() else shutil.which("llama-tui")
    if not found:
        pytest.skip("the llama-tui command is not installed")
    return found


class Terminal:
    """A pty running llama-tui, with a screen we can read."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            llama_tui_command(), args, env=env, dimensions=(ROWS, COLS), timeout=5
        )

    def pump(self, seconds: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                return

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.1)
            if needle in self.text():
                return self.text()
        raise AssertionError(f"{needle!r} never appeared; screen:\n{self.text()}")

    def wait_gone(self, needle: str, timeout: float = 30) -> str:
        """Wait until ``needle`` is no longer on screen (e.g. a dialog has closed)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.1)
            if needle not in self.text():
                return self.text()
        raise AssertionError(f"{needle!r} never went away; screen:\n{self.text()}")

    def type(self, text: str) -> None:
        self.child.send(text)
        self.pump(0.2)


@pytest.fixture
def env(isolated_dirs: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    return environment


def test_chat_in_a_real_terminal_then_find_it_in_the_database(
    env: dict[str, str], isolated_dirs: Path
) -> None:
    term = Terminal([], env)
    try:
        term.wait_for("ready", timeout=60)
        screen = term.text()
        assert "Chats" in screen and "Quit" in screen
        term.type("What is the capital of France?")
        term.child.send("\r")
        term.wait_for("You", timeout=10)
        # Wait for the answer to finish: the status line goes from "generating" back to
        # "ready" (at 80 columns it has no room left for the speed).
        deadline = time.monotonic() + 60
        generating = False
        while time.monotonic() < deadline:
            term.pump(0.2)
            generating = generating or "generating" in term.text()
            if generating and "generating" not in term.text() and "ready" in term.text():
                break
        else:
            raise AssertionError(f"the answer did not end in 60 s; screen:\n{term.text()}")
        term.pump(0.5)  # the answer's final rendering
        screen = term.text()
        assert "What is the capital of France?" in screen
        assert "Assistant" in screen
        assert "llama_" not in screen and "load_tensors" not in screen  # no llama.cpp chatter
        term.child.send("\x11")  # Ctrl+Q
        term.child.expect(pexpect.EOF, timeout=15)
    finally:
        term.child.close(force=True)

    db = isolated_dirs / "data" / "chats.db"
    assert db.exists(), "the default database lives in $LLAMA_TUI_DATA_DIR"
    rows = (
        sqlite3.connect(db)
        .execute("select role, content, status from messages order by id")
        .fetchall()
    )
    assert rows[0] == ("user", "What is the capital of France?", "complete")
    assert rows[1][0] == "assistant" and rows[1][1].strip() and rows[1][2] == "complete"
    assert rows[1][1].split()[0] in screen


def test_db_flag_and_env_var_choose_the_database(env: dict[str, str], tmp_path: Path) -> None:
    for args, variable in (([f"--db={tmp_path / 'flag.db'}"], None), ([], "env.db")):
        run_env = dict(env)
        if variable:
            run_env["LLAMA_TUI_DB"] = str(tmp_path / variable)
        term = Terminal(args, run_env)
        try:
            term.wait_for("Chats", timeout=30)
            term.child.send("\x11")
            term.child.expect(pexpect.EOF, timeout=15)
        finally:
            term.child.close(force=True)
    assert (tmp_path / "flag.db").exists() and (tmp_path / "env.db").exists()


@pytest.mark.parametrize("term_name", ["xterm-256color", "screen", "vt100"])
def test_no_color_and_plain_terminals(env: dict[str, str], term_name: str) -> None:
    """NO_COLOR is honoured (Textual draws in greys only); tmux's and old terminal types
    still get a usable screen."""
    run_env = dict(env, NO_COLOR="1", TERM=term_name)
    term = Terminal([], run_env)
    try:
        screen = term.wait_for("Chats", timeout=30)
        term.wait_for("Quit", timeout=10)
        assert "New chat" in screen or "New chat" in term.text()
        colours = {
            colour
            for row in term.screen.buffer.values()
            for char in row.values()
            for colour in (char.fg, char.bg)
        }
        greys = {"default", "black", "white", "brightblack", "brightwhite"}
        hues = {c for c in colours - greys if not (len(c) == 6 and c[:2] == c[2:4] == c[4:])}
        assert not hues, f"colours other than greys with NO_COLOR: {hues}"
        term.child.send("\x11")
        term.child.expect(pexpect.EOF, timeout=15)
    finally:
        term.child.close(force=True)
