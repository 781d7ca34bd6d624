"""A key's echo is written as soon as the key is handled, not at the screen's next tick.

While an answer streams, Textual's screen paints on a fixed 60 Hz grid, so a key
handled just after a frame waited up to 16.7 ms for the next one (issue 17, item 6).
These tests stop that timer altogether: the echo can then only come from the
paint that :func:`tui.ui.terminal_input.deliver` does itself.
"""

from __future__ import annotations

from pathlib import Path

from textual import events

from tests.uihelpers import SIZE, make_app
from tui.engine.fake import FakeEngine
from tui.ui.terminal_input import deliver
from tui.ui.widgets.prompt_input import PromptInput


def record_frames(app) -> list[object]:
    """Every update the app hands to the terminal from now on."""
    frames: list[object] = []
    display = app._display

    def recording(screen, renderable):  # noqa: ANN001, ANN202
        frames.append(renderable)
        return display(screen, renderable)

    app._display = recording
    return frames


async def test_a_key_is_on_screen_when_it_has_been_handled(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine())
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptInput)
        prompt.focus()
        await pilot.pause()
        screen = app.screen
        screen._update_timer.stop()  # no tick will paint anything from here on
        frames = record_frames(app)

        await deliver(app, events.Key("x", "x"))

        assert prompt.text == "x"
        assert frames, "the key was handled but no frame was written for it"
        assert not screen._dirty_widgets  # that frame carried everything pending
