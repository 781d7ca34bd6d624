"""Bad input gives a clear message, no traceback, and loses nothing.

One test per row of the README's table "When something is wrong" (rows
covered elsewhere name their test).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.uihelpers import SIZE, make_app, screen_text, type_text, wait_for
from tui.core import store as st
from tui.engine.fake import FakeEngine
from tui.ui.widgets.prompt_input import PromptInput

SCRIPT = Path(sys.executable).parent / "llama-tui"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def fill_database(store: st.Store) -> None:
    """Make every further page allocation fail, as on a full disk (SQLITE_FULL)."""
    pages = store.conn.execute("pragma page_count").fetchone()[0]
    store.conn.execute(f"pragma max_page_count = {pages}")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "/nonexistent/model.gguf"], "Model file not found: /nonexistent/model.gguf"),
        (["--model", "/etc/hostname"], "is not a GGUF model file"),
        (["--model", "/tmp"], "is a directory"),
        (["--endpoint", "nosuch"], "nosuch"),
    ],
)
def test_unusable_model_or_endpoint_on_the_command_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = run("--db", str(tmp_path / "c.db"), *args, "ask", "hi")
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_database_file_is_initialised(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    store = st.Store(empty)
    assert store.list_conversations() == []
    store.close()


async def test_full_disk_keeps_the_message_in_the_input(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(answer=lambda job: "ok"))
    async with app.run_test(size=SIZE) as pilot:
        fill_database(app.store)
        text = "important " * 3000  # needs new pages
        app.query_one(PromptInput).insert(text)
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(PromptInput).text == text  # nothing lost
        messages = [str(n.message) for n in app._notifications]
        assert any("database or disk is full" in m and "free some space" in m for m in messages)
        app.store.conn.execute("pragma max_page_count = 1073741823")
        await pilot.press("enter")  # space again: the same text goes through
        await wait_for(pilot, lambda: app.query_one(PromptInput).text == "")


async def test_full_disk_while_streaming_is_reported_once(tmp_path: Path) -> None:
    engine = FakeEngine(answer=lambda job: " ".join(["word"] * 1500), delay=0.002)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(app.service.jobs))
        fill_database(app.store)
        await wait_for(pilot, lambda: not app.service.jobs, timeout=30)
        await pilot.pause()
        full = [n for n in app._notifications if "disk is full" in str(n.message)]
        assert len(full) == 1
        assert "ready" in screen_text(app)  # the app kept running


async def test_huge_paste_with_control_bytes(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(answer=lambda job: "ok"))
    async with app.run_test(size=SIZE) as pilot:
        paste = ("x" * 1023 + "\n") * 1024 + "\x00\x07\x1b[2Jend"  # 1 MB and some junk
        app.query_one(PromptInput).insert(paste)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.service.jobs and app.store.list_conversations())
        (conv,) = app.store.list_conversations()
        stored = app.store.messages(conv.id)[0].content
        assert len(stored) > 1_000_000
        assert stored.endswith("end") and "\x00" not in stored and "\x1b" not in stored


@pytest.mark.model
def test_context_larger_than_the_model_supports_is_capped(model_path: Path) -> None:
    import queue

    from tui.core.engine_protocol import LoadModel, ModelReady
    from tui.engine.local.model import ModelRunner

    events: queue.Queue = queue.Queue()
    runner = ModelRunner(events.put, lambda job_id: False)
    assert runner.load(LoadModel(str(model_path), n_ctx=1_000_000))
    ready = [e for e in list(events.queue) if isinstance(e, ModelReady)]
    assert ready and ready[-1].info.n_ctx == ready[-1].info.n_ctx_train == 8192
    runner.close()
