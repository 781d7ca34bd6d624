"""Nothing lost: kill -9, SIGHUP and SIGTERM mid-answer, two processes on one database.

These run the installed ``llama-tui`` in a pseudo-terminal with the real model.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.test_e2e import Terminal
from tui.core import store as st

pytestmark = [pytest.mark.e2e, pytest.mark.model]
QUESTION = "Write a long story about a dragon named Smok who lives in Krakow."


@pytest.fixture
def env(isolated_dirs: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(TERM="xterm-256color")
    return environment


def start_answer(env: dict[str, str], db: Path) -> Terminal:
    """Start llama-tui, ask for a long story, return once it is streaming."""
    term = Terminal(["--db", str(db)], env)
    term.wait_for("ready", timeout=60)
    term.child.send("\x0e")  # Ctrl+N: a new chat, so only this answer is on screen
    term.wait_for("New chat with", timeout=10)
    term.child.send("\r")
    # "Say something" may be on screen behind the dialog already (a first, empty chat):
    # the question is typed only once the dialog has closed and the new chat is shown.
    term.wait_gone("New chat with", timeout=10)
    term.wait_for("Say something", timeout=10)
    term.type(QUESTION)
    term.child.send("\r")
    term.wait_for("generating", timeout=30)
    deadline = time.monotonic() + 30
    while len(answer_words(term)) < 15 and time.monotonic() < deadline:
        term.pump(0.05)
    return term


def answer_words(term: Terminal) -> list[str]:
    """The words of the answer visible in the chat pane (right of the sidebar)."""
    lines = [line[24:] for line in term.screen.display]
    start = max((i for i, line in enumerate(lines) if line.strip().startswith("Assistant")),
                default=None)  # fmt: skip
    if start is None:
        return []
    words: list[str] = []
    for line in lines[start + 1 :]:
        if "generating" in line or "╭" in line:
            break
        words += line.split()
    return words


def engine_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select role, content, status from messages order by id").fetchall()


# Rounds of kill -9: each of the five moments below is hit twice by default; set
# LLAMA_TUI_KILL_ROUNDS higher for a longer soak.
KILL_ROUNDS = int(os.environ.get("LLAMA_TUI_KILL_ROUNDS", "10"))


def test_kill_9_mid_answer_again_and_again_loses_at_most_a_fraction(
    env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "chats.db"
    for round_number in range(KILL_ROUNDS):
        term = start_answer(env, db)
        time.sleep(0.1 + (round_number % 5) * 0.1)
        term.pump(0.02)
        shown = answer_words(term)
        engines = engine_children(term.child.pid)
        os.kill(term.child.pid, signal.SIGKILL)
        term.child.close(force=True)
        saved = rows(db)
        assert saved[-2] == ("user", QUESTION, "complete"), f"round {round_number}"
        role, content, status = saved[-1]
        assert role == "assistant" and status == "partial"
        # Saved at least five times a second while streaming: at ~100 tokens/s
        # at most a few dozen words can be missing from what was on screen.
        assert len(content.split()) >= len(shown) - 30, (round_number, shown, content)
        assert content.strip(), f"round {round_number}: nothing of the answer was saved"
        for pid in engines:  # the orphaned engine notices and exits
            assert gone(pid), f"engine {pid} outlived its UI"
    store = st.Store(db)  # the next start marks the answers interrupted
    store.recover_interrupted()
    answers = [m for c in store.list_conversations() for m in store.messages(c.id)]
    statuses = {m.status for m in answers if m.role == "assistant"}
    assert len([m for m in answers if m.role == "user"]) == KILL_ROUNDS
    assert statuses == {st.INTERRUPTED}
    store.close()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hangup_and_terminate_save_and_exit_cleanly(
    env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    db = tmp_path / "chats.db"
    term = start_answer(env, db)
    engines = engine_children(term.child.pid)
    assert engines, "the engine runs in a child process"
    os.kill(term.child.pid, sig)
    term.child.expect(pexpect.EOF, timeout=15)
    term.child.close()
    assert term.child.exitstatus == 0 and term.child.signalstatus is None
    role, content, status = rows(db)[-1]
    assert role == "assistant" and content.strip() and status == st.INTERRUPTED
    for pid in engines:
        assert gone(pid)
    with sqlite3.connect(db, timeout=0.1) as conn:  # no lock left behind
        conn.execute("insert into conversations (title, persona, created_at, updated_at)"
                     " values ('x', 'assistant', 't', 't')")  # fmt: skip


WRITER = """
import sys, time
from tui.core.store import Store, PARTIAL, COMPLETE
store = Store(sys.argv[1])
conv = store.create_conversation("assistant", title=sys.argv[2])
for i in range(150):
    store.add_message(conv.id, "user", f"{sys.argv[2]} question {i}")
    answer = store.add_message(conv.id, "assistant", "", status=PARTIAL)
    text = ""
    for token in range(5):
        text += f" t{token}"
        store.update_message(answer.id, text)
    store.update_message(answer.id, text, COMPLETE)
    store.list_conversations()
print("done")
"""


def test_two_processes_write_one_database_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    st.Store(db).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("alice", "bob")
    ]  # fmt: skip
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err and out.strip() == "done"
    store = st.Store(db)
    chats = store.list_conversations()
    assert sorted(c.title for c in chats) == ["alice", "bob"]
    for chat in chats:
        messages = store.messages(chat.id)
        assert len(messages) == 300
        assert all(m.status == st.COMPLETE for m in messages)
        assert messages[-1].content == " t0 t1 t2 t3 t4"
    store.close()
