"""The answer keys as a real terminal sends them: ``g``, ``f`` and ``x`` in bursts of bytes.

The app runs with a scripted fake engine (no model needed) in an 80x24
pseudo-terminal; each burst is one ``os.write``, as SSH and tmux deliver keys,
so a key that opens a dialog arrives together with what is typed into it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_thinking_terminal import SHIFT_TAB, Pty, start
from tui.core.store import Store

pytestmark = [pytest.mark.e2e]

REPLIES = [
    "The planets are Mercury,",  # the first answer, cut short
    " Venus and Earth.",  # g: the model goes on from it
    " moon rises",  # f: after the user's "Autumn"
    "Left way.",  # x: the two sides of the comparison
    "Right way.",
]

APP = f"""
import sys
from pathlib import Path
from tui.core.personas import load_library
from tui.core.store import Store
from tui.engine.fake import FakeEngine
from tui.ui.app import LlamaTUI

home = Path(sys.argv[1])
replies = iter({REPLIES!r})
engine = FakeEngine(lambda job: next(replies), delay=0.01)
app = LlamaTUI(store=Store(home / "chats.db"), engine=engine,
               personas=load_library(user_dir=home / "personas"),
               model_path=home / "fake.gguf", personas_dir=home / "personas")
app.run()
"""


def ready(term: Pty) -> bool:
    return "ready" in term.text() and "generating" not in term.text()


def test_g_f_and_x_in_bursts(isolated_dirs: Path) -> None:
    term = start(isolated_dirs, APP)
    try:
        term.until(lambda: "ask something" in term.text(), "the first frame", timeout=60)
        term.burst(b"Name planets\r")
        term.until(lambda: "Mercury," in term.text() and ready(term), "the first answer")

        term.burst(SHIFT_TAB + b"g")  # to the chat (the newest answer), and continue it
        term.until(lambda: "Venus and Earth." in term.text() and ready(term), "g continuing")

        term.burst(b"fAutumn\r")  # the dialog opens, the words go into it, Enter sends
        term.until(lambda: "Autumn moon rises" in term.text() and ready(term), "f prefilling")

        term.burst(b"x")
        term.until(lambda: "Compare answers to" in term.text(), "the compare screen")
        term.burst(b"r")  # ask both ways
        term.until(lambda: term.text().count("done (stop") == 2, "both answers, ended")
        assert "Left way." in term.text() and "Right way." in term.text()
        term.burst(b"2")  # keep the right one
        term.until(lambda: "Compare answers to" not in term.text(), "the compare screen closing")
        term.until(lambda: "Right way." in term.text(), "the kept answer in the chat")
    finally:
        term.child.close(force=True)

    store = Store(isolated_dirs / "chats.db")
    try:
        (conversation,) = store.list_conversations()
        shown = [m.content for m in store.messages(conversation.id)]
        assert shown == ["Name planets", "Right way."]
        question = store.messages(conversation.id)[0]
        versions = sorted(m.content for m in store.children(question.id))
        assert versions == [
            "Autumn moon rises",
            "Left way.",
            "Right way.",
            "The planets are Mercury, Venus and Earth.",
        ]
    finally:
        store.close()


STREAMING_APP = APP.replace(
    "engine = FakeEngine(lambda job: next(replies), delay=0.01)",
    'engine = FakeEngine(lambda job: " ".join(["word"] * 400), delay=0.02)',
)


def test_keys_typed_while_an_answer_streams_show_before_it_ends(isolated_dirs: Path) -> None:
    """A burst of letters typed during an 8 s answer is in the message box while the
    status line still says "generating" (the key's frame is written at once)."""
    term = start(isolated_dirs, STREAMING_APP)
    try:
        term.until(lambda: "ask something" in term.text(), "the first frame", timeout=60)
        term.burst(b"go\r")
        term.until(lambda: "generating" in term.text() and "word word" in term.text(), "a stream")
        term.burst(b"next question")
        term.until(lambda: "next question" in term.text(), "the typed letters on screen")
        assert "generating" in term.text()  # the answer is still streaming
        term.until(lambda: "ready" in term.text() and "generating" not in term.text(), "the end")
        assert "next question" in term.text()  # typed text kept, not sent
    finally:
        term.child.close(force=True)
