"""How often a streaming answer is painted: never more than the UI thread can afford."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.uihelpers import SIZE, make_app, type_text, wait_for
from tui.core import store as st
from tui.engine.fake import FakeEngine
from tui.ui import engine_events
from tui.ui.engine_events import PAINT_CPU_SHARE, PAINT_INTERVAL, paint_gap
from tui.ui.widgets.chat_view import StreamingAnswer


def test_cheap_paints_come_at_the_frame_rate() -> None:
    assert paint_gap(0.004, 0.003) == PAINT_INTERVAL


def test_a_slow_paint_waits_as_long_again() -> None:
    assert paint_gap(0.05, 0.01) == pytest.approx(0.1)


def test_a_paint_that_used_much_cpu_leaves_the_thread_most_of_its_time() -> None:
    gap = paint_gap(0.02, 0.015)
    assert gap == pytest.approx(0.015 / PAINT_CPU_SHARE)
    assert 0.015 / gap <= PAINT_CPU_SHARE + 1e-9


async def test_heavy_paints_of_a_fast_stream_are_spaced_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each paint "costs" 50 ms of CPU (a fake thread clock): paints come at least
    0.05 / PAINT_CPU_SHARE apart however fast the words arrive, and the whole
    answer still ends on screen."""
    cpu = itertools.count(step=0.05)
    monkeypatch.setattr(engine_events, "thread_time", lambda: next(cpu))
    words = 400
    app = make_app(tmp_path, FakeEngine(answer=lambda job: " ".join(["word"] * words), delay=0.002))
    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "go")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query(StreamingAnswer))
        started = time.monotonic()
        box = app.query_one(StreamingAnswer)
        await wait_for(
            pilot,
            lambda: any(
                m.status == st.COMPLETE
                for c in app.store.list_conversations()
                for m in app.store.messages(c.id)
                if m.role == "assistant"
            ),
            timeout=30,
        )
        elapsed = time.monotonic() - started
        gap = 0.05 / PAINT_CPU_SHARE
        # the first paint comes at once, the last when the answer ends: 2 more
        assert box.renders <= elapsed / gap + 3
        assert box.renders < words / 4  # far fewer paints than batches of words
        answer = [m for c in app.store.list_conversations() for m in app.store.messages(c.id)]
        assert answer[-1].content == " ".join(["word"] * words)
