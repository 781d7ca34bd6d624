"""Hang-up and SIGTERM in every state: saved, and every process gone within seconds.

The installed ``llama-tui`` runs in a real pseudo-terminal; its engine worker
is a real child process whose model work is scripted (tests/fake_worker), so
the app can be held loading, with a message waiting for the model, streaming,
idle, with a dialog or the persona editor open. Then the terminal goes away:
the pty master is closed (a dropped SSH connection: SIGHUP, and every write
fails), or SIGHUP / SIGTERM is sent, or SIGTERM while nobody reads the
terminal (writes block). Each case runs several times: the hangs this
guards against showed up in one run out of ten.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from tests.test_e2e import Terminal
from tests.test_models import fake_gguf

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
FAKE_WORKER = Path(__file__).resolve().parent / "fake_worker"
REPEAT = int(os.environ.get("LLAMA_TUI_HANGUP_REPEAT", "1"))
# The app promises 2 s (a forced exit at 1.5 s); the margin is for a loaded test machine.
EXIT_WITHIN = 2.0 + float(os.environ.get("LLAMA_TUI_TEST_SLACK", "2.0"))
STATES = ["loading", "queued", "streaming", "idle", "dialog", "persona-editor"]
HOW = ["close-terminal", "sighup", "sigterm", "sigterm-unread"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    children = [int(p) for p in out.split()]
    return children + [d for c in children for d in descendants(c)]


def rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db, timeout=0.1) as conn:
        return conn.execute("select role, content, status from messages order by id").fetchall()


class App:
    def __init__(self, tmp_path: Path):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.db = tmp_path / "chats.db"
        self.gate = tmp_path / "load-gate"
        model = fake_gguf(tmp_path / "models" / "scripted.Q4_K_M.gguf")
        env = dict(os.environ)
        env.update(
            TERM="xterm-256color",
            PYTHONPATH=os.pathsep.join([str(FAKE_WORKER), str(ROOT), env.get("PYTHONPATH", "")]),
            LLAMA_TUI_FAKE_WORKER="1",
            LLAMA_TUI_FAKE_LOAD_GATE=str(self.gate),
        )
        self.term = Terminal(["--db", str(self.db), "--model", str(model)], env)
        self.pid = self.term.child.pid

    def load(self) -> None:
        self.gate.touch()
        self.term.wait_for("ready", timeout=30)

    def send(self, text: str) -> None:
        self.term.type(text)
        self.term.child.send("\r")

    def reach(self, state: str) -> None:
        term = self.term
        term.wait_for("loading model", timeout=30)
        deadline = time.monotonic() + 30  # shown before the engine starts (after the first frame)
        while not descendants(self.pid) and time.monotonic() < deadline:
            term.pump(0.05)
        if state == "loading":
            return
        if state == "queued":
            self.send("hi")
            term.wait_for("still loading", timeout=15)
            return
        self.load()
        if state == "streaming":
            self.send("a long one")
            term.wait_for("word20", timeout=30)
            return
        self.send("short")
        term.wait_for("word4", timeout=30)
        term.wait_for("ready", timeout=30)
        if state == "dialog":
            term.child.send("\x0e")  # Ctrl+N: the new-chat dialog
            term.wait_for("New chat with", timeout=15)
        elif state == "persona-editor":
            term.child.send("\x1bOR")  # F3, then e: edit the highlighted persona
            term.wait_for("Personas", timeout=15)
            term.child.send("e")
            term.wait_for("System prompt", timeout=15)

    def end(self, how: str) -> float:
        """Take the terminal away (or signal); returns when that happened."""
        child = self.term.child
        if how == "close-terminal":
            started = time.monotonic()
            child.ptyproc.fileobj.close()  # the master: as sshd does when the connection drops
            return started
        if how == "sigterm-unread":
            time.sleep(3.0)  # nobody reads: the app's writes fill the pty and block
        started = time.monotonic()
        os.kill(self.pid, signal.SIGHUP if how == "sighup" else signal.SIGTERM)
        return started

    def wait_gone(self, started: float, how: str, engines: list[int]) -> float:
        """Seconds until llama-tui and its engine were gone."""
        child = self.term.child
        while time.monotonic() - started < 30:
            if how in ("sighup", "sigterm"):
                self.term.pump(0.02)  # someone reads the terminal
            else:
                time.sleep(0.02)
            if not child.isalive() and not any(alive(p) for p in engines):
                return time.monotonic() - started
        for pid in [self.pid, *engines]:  # leave nothing behind for the next test
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"still running 30 s after {how}: {[self.pid, *engines]}")


def expected_rows(state: str) -> list[tuple[str, str]]:
    """(role, status) of every message the database must hold afterwards."""
    if state == "loading":
        return []
    if state == "queued":
        return [("user", "complete"), ("assistant", "interrupted")]
    if state == "streaming":
        return [("user", "complete"), ("assistant", "interrupted")]
    return [("user", "complete"), ("assistant", "complete")]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("state", STATES)
def test_hangup_or_sigterm_saves_and_every_process_exits(
    isolated_dirs: Path, tmp_path: Path, state: str, how: str
) -> None:
    for round_number in range(REPEAT):
        app = App(tmp_path / f"round{round_number}")
        try:
            app.reach(state)
            engines = descendants(app.pid)
            assert engines, "the engine runs in a child process"
            started = app.end(how)
            seconds = app.wait_gone(started, how, engines)
        finally:
            if app.term.child.isalive():
                app.term.child.kill(signal.SIGKILL)
        where = f"{state}/{how} round {round_number}"
        assert seconds <= EXIT_WITHIN, f"{where}: took {seconds:.1f} s"
        child = app.term.child
        assert (child.exitstatus, child.signalstatus) == (0, None), where
        saved = rows(app.db)
        assert [(role, stat) for role, _text, stat in saved] == expected_rows(state), where
        if state == "streaming":
            assert "word0" in saved[-1][1], f"{where}: the streamed text was not saved"
        with sqlite3.connect(app.db, timeout=0.1) as conn:  # and no lock is left behind
            conn.execute("create table if not exists probe (x)")


def test_the_hang_up_states_are_reached(isolated_dirs: Path, tmp_path: Path) -> None:
    """The harness itself: a load held by the gate ends once it opens (so 'loading' is real)."""
    app = App(tmp_path)
    try:
        app.term.wait_for("loading model", timeout=30)
        app.term.pump(1.0)
        assert "ready" not in app.term.text()
        app.load()
        app.term.child.send("\x11")
        app.term.child.expect(pexpect.EOF, timeout=15)
    finally:
        app.term.child.close(force=True)
