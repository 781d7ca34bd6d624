"""The thinking keys as a real terminal sends them: bursts of bytes to the app in a pty.

The app runs with the fake engine playing a reasoning model (no model needed),
in an 80x24 pseudo-terminal. Keys go in as one ``os.write`` each burst, as SSH
and tmux deliver them; the test reads the screen (pyte) and the bytes the app
writes back (the clipboard travels as OSC 52).
"""

from __future__ import annotations

import base64
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
import pytest

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
THOUGHT = "Count the letters: s t r a w b e r r y has the letter r three times."
ANSWER = "Three."
SHIFT_TAB = b"\x1b[Z"

APP = f"""
import sys
from pathlib import Path
from tui.core.personas import load_library
from tui.core.store import Store
from tui.engine.fake import FakeEngine
from tui.ui.app import LlamaTUI

home = Path(sys.argv[1])
engine = FakeEngine(lambda job: ({THOUGHT!r}, {ANSWER!r}), delay=0.01)
app = LlamaTUI(store=Store(home / "chats.db"), engine=engine,
               personas=load_library(user_dir=home / "personas"),
               model_path=home / "fake.gguf", personas_dir=home / "personas")
app.run()
"""


class Pty:
    """The app in a pty: a pyte screen of it, and every byte it wrote."""

    def __init__(self, home: Path, env: dict[str, str], app: str = APP) -> None:
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        self.child = pexpect.spawn(
            sys.executable, ["-c", app, str(home)], env=env, dimensions=(24, 80), timeout=5
        )

    def pump(self, seconds: float = 0.1) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return
            self.raw += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def until(self, check: Callable[[], object], what: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.1)
            if check():
                return
        raise AssertionError(f"{what} never happened; screen:\n{self.text()}")

    def burst(self, data: bytes) -> None:
        """Several keys in one write."""
        assert os.write(self.child.child_fd, data) == len(data)


def start(home: Path, app: str = APP) -> Pty:
    """``app`` (a Python script; this checkout first on its path) in an 80x24 pty."""
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    home.mkdir(parents=True, exist_ok=True)
    return Pty(home, env, app)


def osc52(text: str) -> bytes:
    return b"\x1b]52;c;" + base64.b64encode(text.encode())


def test_thinking_keys_in_bursts(isolated_dirs: Path) -> None:
    term = start(isolated_dirs)
    try:
        term.until(lambda: "ask something" in term.text(), "the first frame", timeout=60)
        term.burst(b"hi\r")
        term.until(lambda: "Thought for" in term.text(), "the folded thinking")
        term.until(lambda: ANSWER in term.text(), "the answer")
        assert "three times" not in term.text()
        term.burst(SHIFT_TAB + b"t")  # to the chat, open the newest answer's thinking
        term.until(lambda: "three times" in term.text(), "the thinking opened by t")
        assert "▾ Thought for" in term.text()
        term.burst(b"tT")  # fold it, then every thinking open
        term.until(lambda: "three times" in term.text(), "T: all thinking open")
        term.burst(b"T")  # hidden
        term.until(lambda: "Thought for" not in term.text(), "T: thinking hidden")
        assert ANSWER in term.text()
        term.burst(b"TC")  # folded again, and the thinking copied
        term.until(lambda: osc52(THOUGHT) in term.raw, "C copying the thinking")
        term.until(lambda: "▸ Thought for" in term.text(), "T: thinking folded")
        assert "three times" not in term.text()
        term.burst(b"c")
        term.until(lambda: osc52(ANSWER) in term.raw, "c copying the answer")
    finally:
        term.child.close(force=True)
    db = isolated_dirs / "chats.db"
    from tui.core.store import Store

    store = Store(db)
    try:
        (answer,) = [m for m in store.messages(1) if m.role == "assistant"]
        assert answer.content == ANSWER and answer.reasoning == THOUGHT
    finally:
        store.close()
