"""Helpers for Pilot tests: build the app on temp dirs, wait, read the screen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tui.core.personas import load_library
from tui.core.store import Store
from tui.engine.fake import FakeEngine
from tui.ui.app import LlamaTUI

SIZE = (80, 24)


def make_app(tmp_path: Path, engine=None, model_path: Path | None = None, **kwargs) -> LlamaTUI:
    store = Store(tmp_path / "chats.db")
    return LlamaTUI(
        store=store,
        engine=engine or FakeEngine(),
        personas=load_library(user_dir=tmp_path / "personas"),
        model_path=model_path or tmp_path / "fake.gguf",
        personas_dir=tmp_path / "personas",
        **kwargs,
    )


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 10) -> None:
    """Let the app run until ``condition()`` holds (or fail after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting; screen was:\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)


def screen_text(app: LlamaTUI) -> str:
    """What the terminal shows, as plain text lines."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def type_text(pilot: Pilot, text: str) -> None:
    for char in text:
        await pilot.press(char if char != " " else "space")
