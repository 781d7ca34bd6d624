"""The persona library screen, driven with Pilot on temp bundled and user dirs."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, TextArea

from tests.uihelpers import SIZE, screen_text, type_text, wait_for
from tui.core.personas import Example, Persona, PersonaLibrary, load_library
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.personas import (
    PersonaEditor,
    PersonaList,
    PersonasScreen,
    describe_persona,
)

REPO_PERSONAS = Path(__file__).resolve().parent.parent / "personas"


class Host(App[None]):
    """A bare app that opens the screen, recording its result and its messages."""

    def __init__(self, user_dir: Path, bundled_dir: Path) -> None:
        super().__init__()
        self.user_dir, self.bundled_dir = user_dir, bundled_dir
        self.results: list[str | None] = []
        self.changes: list[PersonaLibrary] = []

    def on_mount(self) -> None:
        self.push_screen(PersonasScreen(self.user_dir, self.bundled_dir), self.results.append)

    def on_personas_screen_changed(self, message: PersonasScreen.Changed) -> None:
        self.changes.append(message.library)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(bundled, user): a copy of the shipped personas and an empty user dir."""
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    bundled.mkdir()
    for path in REPO_PERSONAS.glob("*.toml"):
        shutil.copy(path, bundled)
    return bundled, user


def host(dirs: tuple[Path, Path]) -> Host:
    bundled, user = dirs
    return Host(user, bundled)


def the_list(app: App) -> PersonaList:
    return app.screen.query_one(PersonaList)


async def highlight(pilot: Pilot, option_id: str) -> None:
    """Move the highlight with the arrow keys, like a person would."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PersonasScreen))
    the_list(pilot.app).focus()
    await pilot.press("home")
    for _ in range(len(the_list(pilot.app).options)):
        if the_list(pilot.app).highlighted_option.id == option_id:
            await pilot.pause()
            return
        await pilot.press("down")
    raise AssertionError(f"{option_id} is not in the list")


def read(path: Path) -> dict:
    return tomllib.loads(path.read_text("utf-8"))


def test_the_detail_names_every_field() -> None:
    persona = Persona(
        id="p",
        name="[b]Pat[/b]",
        description="desc",
        ai_name="Aiden",
        user_name="Una",
        mode="transcript",
        system="sys text",
        examples=[Example("q?", "a!")],
        greeting="hello there",
        stop=["\nUna:"],
        sampling={"temperature": 0.25},
        model="tiny.gguf",
        extra={"custom": 1},
    )
    text = describe_persona(persona, overrides_bundled=False).plain
    for expected in (
        "[b]Pat[/b]",
        "desc",
        "Aiden",
        "Una",
        "transcript",
        "sys text",
        "Una: q?",
        "Aiden: a!",
        "hello there",
        "'\\nUna:'",
        "temperature 0.25",
        "tiny.gguf",
        "custom",
    ):
        assert expected in text


# --- the screen ------------------------------------------------------------------------


async def test_list_shows_bundled_user_and_broken_files(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    user.mkdir()
    (user / "mine.toml").write_text('name = "[bold]Mine[/]"\nsystem = "x"\n')
    (user / "bob.toml").write_text('name = "My Bob"\n')
    (user / "broken.toml").write_text('name = "A"\nsystem = = 3\n')
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "Translator" in screen_text(app))
        screen = screen_text(app)
        assert "Assistant" in screen and "bundled" in screen
        assert "[bold]Mine[/]" in screen  # plain text, not markup
        assert "My Bob" in screen and "override" in screen and "yours" in screen
        assert "⚠ broken.toml" in screen
        await highlight(pilot, "problem:0")
        await wait_for(pilot, lambda: "TOML syntax error" in screen_text(app))
        screen = screen_text(app)
        assert "broken.toml" in screen and "Line    2" in screen
        assert app.screen.query_one("#button-chat", Button).disabled
        await pilot.press("delete")  # a broken file of the user's own can go, too
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: not (user / "broken.toml").exists())
        await wait_for(pilot, lambda: "⚠" not in screen_text(app))
        assert (user / "mine.toml").is_file()


async def test_create_a_persona_writes_its_file(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:assistant")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        await type_text(pilot, "Pirate")  # the name field has the focus
        editor = app.screen
        editor.query_one("#description", Input).value = "Talks like a pirate"
        editor.query_one("#ai_name", Input).value = "Captain"
        editor.query_one("#system", TextArea).text = "You are {{ai}}.\nSay arr."
        editor.query_one("#examples", TextArea).text = "User: Hi\nAI: Arr!\nAhoy."
        editor.query_one("#stop", TextArea).text = "\\nUser:"
        editor.query_one("#sampling-temperature", Input).value = "1.1"
        editor.query_one("#sampling-top_k", Input).value = "20"
        await pilot.press("f2")
        await wait_for(pilot, lambda: (user / "pirate.toml").is_file())
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        data = read(user / "pirate.toml")
        assert data["name"] == "Pirate" and data["description"] == "Talks like a pirate"
        assert data["ai_name"] == "Captain" and data["user_name"] == "User"
        assert data["mode"] == "auto" and data["system"] == "You are {{ai}}.\nSay arr."
        assert data["examples"] == [{"user": "Hi", "ai": "Arr!\nAhoy."}]
        assert data["stop"] == ["\nUser:"]
        assert data["sampling"] == {"temperature": 1.1, "top_k": 20}
        assert the_list(app).highlighted_option.id == "persona:pirate"
        assert "pirate" in app.changes[-1].personas
        assert sorted(p.name for p in bundled.iterdir()) == sorted(
            p.name for p in REPO_PERSONAS.glob("*.toml")
        )

        # An unsafe name only ever becomes a safe file name inside the user dir.
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        app.screen.query_one("#name", Input).value = "../Evil/x"
        await pilot.press("f2")
        await wait_for(pilot, lambda: (user / "evil-x.toml").is_file())
        assert read(user / "evil-x.toml")["name"] == "../Evil/x"
        assert sorted(p.name for p in user.iterdir()) == ["evil-x.toml", "pirate.toml"]
        assert not (user.parent / "x.toml").exists()


async def test_editing_a_bundled_persona_saves_a_user_override(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    original = (bundled / "bob.toml").read_bytes()
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:bob")
        await pilot.click("#button-edit")  # the mouse works as well as the keys
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        assert "bundled: saving writes your own copy" in screen_text(app)
        app.screen.query_one("#description", Input).value = "My own Bob"
        await pilot.click("#save")
        await wait_for(pilot, lambda: (user / "bob.toml").is_file())
        data = read(user / "bob.toml")
        assert data["description"] == "My own Bob" and data["name"] == "Bob"
        assert len(data["examples"]) == 2 and data["sampling"]["n_ctx"] == 512
        assert (bundled / "bob.toml").read_bytes() == original
        library = load_library(bundled, user)
        assert not library.get("bob").bundled and library.get("bob").description == "My own Bob"
        await wait_for(pilot, lambda: "override" in screen_text(app))


async def test_duplicate_makes_a_user_copy(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:coder")
        await pilot.press("d")
        await wait_for(pilot, lambda: (user / "coder-copy.toml").is_file())
        data = read(user / "coder-copy.toml")
        assert data["name"] == "Coder (copy)"
        assert data["system"] == read(bundled / "coder.toml")["system"]
        assert data["sampling"] == read(bundled / "coder.toml")["sampling"]
        await wait_for(pilot, lambda: the_list(app).highlighted_option.id == "persona:coder-copy")
        await pilot.press("d")  # a second copy gets a name of its own
        await wait_for(pilot, lambda: (user / "coder-copy-copy.toml").is_file())
        assert (user / "coder-copy.toml").is_file()


async def test_delete_asks_first(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    user.mkdir()
    mine = user / "mine.toml"
    mine.write_text('name = "Mine"\n')
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:mine")
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Delete your persona Mine" in screen_text(app)
        await pilot.press("enter")  # "Keep" has the focus: Enter does not delete
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        assert mine.is_file() and app.changes == []

        await pilot.click("#button-delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        assert mine.is_file()

        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#yes")
        await wait_for(pilot, lambda: not mine.exists())
        await wait_for(pilot, lambda: "Mine" not in screen_text(app))
        assert "mine" not in app.changes[-1].personas


async def test_bundled_personas_cannot_be_deleted(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    app = host(dirs)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await highlight(pilot, "persona:assistant")
        assert app.screen.query_one("#button-delete", Button).disabled
        await pilot.press("delete")
        await wait_for(pilot, lambda: "Assistant is bundled and cannot be" in screen_text(app))
        assert isinstance(app.screen, PersonasScreen)
        assert (bundled / "assistant.toml").is_file()


async def test_validation_errors_are_shown_and_nothing_is_written(
    dirs: tuple[Path, Path],
) -> None:
    bundled, user = dirs
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        editor = app.screen
        editor.query_one("#sampling-temperature", Input).value = "9"
        editor.query_one("#sampling-top_k", Input).value = "lots"
        editor.query_one("#examples", TextArea).text = "AI: an answer to nothing"
        await pilot.press("f2")
        await wait_for(pilot, lambda: "Name is required." in screen_text(app))
        assert editor.query_one("#name", Input).has_focus
        assert "Not saved: 4 problems" in screen_text(app)
        editor.query_one("#editor-form").scroll_end(animate=False)
        await wait_for(pilot, lambda: "temperature must be between 0 and 2" in screen_text(app))
        screen = screen_text(app)
        assert "top_k must be a number" in screen
        assert 'line 1: "AI:" without a "User:"' in screen
        assert app.screen is editor and not user.exists()

        # Esc with changes asks before throwing them away.
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is editor)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        assert not user.exists() and app.changes == []


async def test_unknown_keys_survive_an_edit(dirs: tuple[Path, Path]) -> None:
    bundled, user = dirs
    user.mkdir()
    (user / "odd.toml").write_text(
        'name = "Odd"\ncustom = "keep me"\nsystem = "old"\n'
        '[meta]\nauthor = "me"\ntags = ["a", "b"]\n'
        '[[examples]]\nuser = "q"\nai = "a"\n'
    )
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:odd")
        await pilot.press("tab", "end")  # to the end of the detail pane
        await wait_for(pilot, lambda: "Other keys (kept when" in screen_text(app))
        assert "custom, meta" in screen_text(app)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        app.screen.query_one("#system", TextArea).text = "new"
        await pilot.press("f2")
        await wait_for(pilot, lambda: read(user / "odd.toml")["system"] == "new")
        data = read(user / "odd.toml")
        assert data["custom"] == "keep me"
        assert data["meta"] == {"author": "me", "tags": ["a", "b"]}
        assert data["examples"] == [{"user": "q", "ai": "a"}]


async def test_new_chat_with_a_persona(dirs: tuple[Path, Path]) -> None:
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:bob")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.results == ["bob"])

    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:assistant")
        await pilot.click(PersonaList, offset=(3, 2))  # one click: only look at it
        await wait_for(pilot, lambda: the_list(app).highlighted_option.id == "persona:bob")
        assert app.results == []
        await pilot.click(PersonaList, offset=(3, 2), times=2)  # a double click: chat
        await wait_for(pilot, lambda: app.results == ["bob"])


async def test_import_from_the_persona_screen(tmp_path: Path) -> None:
    """i asks for a file; a Modelfile becomes a user persona, with warnings shown."""
    from tests.uihelpers import make_app, wait_for

    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        'FROM llama3\nSYSTEM """You are Mario from Super Mario Bros."""\n'
        "PARAMETER temperature 0.9\nPARAMETER tfs_z 2\n"
    )
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        app.screen.query_one("Input").value = str(modelfile)
        await pilot.press("enter")
        saved = tmp_path / "personas"
        await wait_for(pilot, lambda: any(saved.glob("*.toml")))
        (path,) = saved.glob("*.toml")
        text = path.read_text()
        assert "Mario" in text and "temperature = 0.9" in text
        messages = [str(n.message) for n in app._notifications]
        assert any("Imported" in m and "tfs_z" in m for m in messages)


async def test_importing_a_second_alice_asks_for_another_name(
    dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A second "Alice" was saved silently as alice-2.toml, shown as "Alice" too."""
    import json

    from tui.ui.screens.text_prompt import TextPromptScreen

    bundled, user = dirs
    card = tmp_path / "alice.json"
    card.write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": "Alice"}}))
    app = host(dirs)

    def shown_names() -> list[str]:
        return sorted(p.name for p in load_library(bundled, user).personas.values())

    async def import_card() -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPromptScreen))
        app.screen.query_one(Input).value = str(card)
        await pilot.press("enter")

    async with app.run_test(size=SIZE) as pilot:
        await import_card()
        await wait_for(pilot, lambda: "Alice" in shown_names())
        await import_card()
        await wait_for(pilot, lambda: "already have a persona named 'Alice'" in screen_text(app))
        assert app.screen.query_one(Input).value == "Alice 2"
        await pilot.press("escape")  # Esc: nothing is imported
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        assert len(list(user.glob("*.toml"))) == 1
        await import_card()
        await wait_for(pilot, lambda: "already have a persona named 'Alice'" in screen_text(app))
        app.screen.query_one(Input).value = "alice"  # still taken: asked again
        await pilot.press("enter")
        await wait_for(pilot, lambda: "already have a persona named 'Alice'" in screen_text(app))
        app.screen.query_one(Input).value = "Alice the spy"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(list(user.glob("*.toml"))) == 2)
    names = shown_names()
    assert "Alice" in names and "Alice the spy" in names
    assert len({n.casefold() for n in names}) == len(names)


async def test_the_editor_refuses_a_name_another_persona_has(dirs: tuple[Path, Path]) -> None:
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        app.screen.query_one("#name", Input).value = "bob"  # the bundled Bob
        await pilot.press("f2")
        await wait_for(pilot, lambda: "Another persona is already named Bob" in screen_text(app))
        assert isinstance(app.screen, PersonaEditor)
        assert not list(dirs[1].glob("*.toml"))


async def test_the_editor_sets_a_personas_reasoning_defaults(dirs: tuple[Path, Path]) -> None:
    _bundled, user = dirs
    app = host(dirs)
    async with app.run_test(size=SIZE) as pilot:
        await highlight(pilot, "persona:assistant")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        await type_text(pilot, "Quick")
        editor = app.screen
        reasoning = editor.query_one("#sampling-reasoning", Select)
        assert reasoning.is_blank()  # the default (auto) until chosen
        reasoning.value = "off"
        editor.query_one("#sampling-reasoning_effort", Select).value = "high"
        editor.query_one("#sampling-reasoning_budget", Input).value = "512"
        await pilot.press("f2")
        await wait_for(pilot, lambda: (user / "quick.toml").is_file())
        data = read(user / "quick.toml")
        assert data["sampling"] == {
            "reasoning": "off",
            "reasoning_effort": "high",
            "reasoning_budget": 512,
        }
        await wait_for(pilot, lambda: isinstance(app.screen, PersonasScreen))
        await highlight(pilot, "persona:quick")
        await pilot.click("#button-edit")
        await wait_for(pilot, lambda: isinstance(app.screen, PersonaEditor))
        assert app.screen.query_one("#sampling-reasoning", Select).value == "off"
        assert app.screen.query_one("#sampling-reasoning_effort", Select).value == "high"
        budget = app.screen.query_one("#sampling-reasoning_budget", Input)
        assert budget.value == "512"
        budget.value = "lots"
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, PersonaEditor)  # refused: not a number
        assert read(user / "quick.toml")["sampling"]["reasoning_budget"] == 512
