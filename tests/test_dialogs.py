"""The dialogs share one base (tui/ui/screens/modal.py) and the app's one stylesheet."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from textual.app import App
from textual.screen import Screen

from tests.uihelpers import SIZE, wait_for
from tui.core.personas import Persona
from tui.core.store import Store
from tui.ui.app import LlamaTUI
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.modal import Modal
from tui.ui.screens.models import ModelPickerScreen
from tui.ui.screens.new_chat import NewChatScreen
from tui.ui.screens.search import SearchScreen
from tui.ui.screens.text_prompt import TextPromptScreen

UI = Path(__file__).resolve().parent.parent / "tui" / "ui"


class Host(App[None]):
    CSS_PATH = str(UI / "app.tcss")

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.dialog = screen
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


def dialogs(tmp_path: Path) -> list[tuple[Screen, object]]:
    """Every dialog, and what Esc answers."""
    return [
        (ConfirmScreen("Delete?"), False),
        (ModelPickerScreen([str(tmp_path)], "", []), None),
        (NewChatScreen([Persona(id="a", name="A")], "a"), None),
        (TextPromptScreen("Rename", "x"), None),
        (SearchScreen(Store(tmp_path / "chats.db")), None),
    ]


@pytest.mark.parametrize("index", range(5))
async def test_every_dialog_is_a_modal_that_esc_closes(tmp_path: Path, index: int) -> None:
    dialog, answer = dialogs(tmp_path)[index]
    assert isinstance(dialog, Modal)
    app = Host(dialog)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen is dialog)
        frame = dialog.query_one("Vertical")
        assert frame.styles.border.top[0] == "round"  # the base's frame
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.results == [answer])


def test_screens_take_their_style_from_the_app_stylesheet() -> None:
    """DEFAULT_CSS only in reusable widgets and the dialog base: no screen has its own CSS."""
    screens = []
    for path in sorted((UI / "screens").glob("*.py")):
        module = importlib.import_module(f"tui.ui.screens.{path.stem}")
        for cls in vars(module).values():
            if (
                isinstance(cls, type)
                and issubclass(cls, Screen)
                and cls.__module__ == module.__name__
            ):
                screens.append(cls)
                if cls is not Modal:
                    assert "DEFAULT_CSS" not in vars(cls) and "CSS" not in vars(cls), cls
    assert len(screens) >= 8  # the five dialogs, the base, the persona library and editor
    assert LlamaTUI.CSS == "" and LlamaTUI.CSS_PATH == "app.tcss"
    css = (UI / "app.tcss").read_text()
    for screen in screens:
        if screen is not Modal:
            assert screen.__name__ in css, screen
