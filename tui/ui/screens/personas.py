"""The persona library: list, view, create, edit, duplicate and delete personas.

Bundled personas are read-only: editing one saves a user copy with the same
id, which overrides it; deleting that copy brings the bundled one back. All
writes go through :func:`tui.core.personas.save_persona` into the user directory.
The screen tells the app about changes with :class:`PersonasScreen.Changed`
and dismisses with the id of a persona to start a new chat with (or None).

The editor is :mod:`tui.ui.screens.persona_editor`; the text forms both use
(examples, stop strings, numbers, new ids) are plain functions in
:mod:`tui.core.persona_text`. Everything a user typed is shown as plain text
(``rich.text.Text``), never as markup.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, OptionList, Static
from textual.widgets.option_list import Option

from tui.core import paths
from tui.core.persona_text import broken_files, plain_number, unique_id
from tui.core.personas import (
    Persona,
    PersonaLibrary,
    PersonaProblem,
    bundled_personas_dir,
    load_library,
    save_persona,
)
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.persona_editor import PersonaEditor

if TYPE_CHECKING:
    from tui.formats import ImportResult  # imported when used: it is slow to load


def describe_persona(persona: Persona, overrides_bundled: bool) -> Text:
    """Every field of a persona, as plain text for the detail pane."""
    text = Text()
    text.append(persona.name, style="bold")
    text.append("\n")
    if persona.description:
        text.append(persona.description + "\n", style="italic")
    text.append("\n")
    if persona.bundled:
        origin = "bundled, read-only: editing saves your own copy, which overrides it"
    elif overrides_bundled:
        origin = "yours, overrides the bundled persona of the same id"
    else:
        origin = "yours"

    def field(label: str, value: str, empty: str = "") -> None:
        text.append(f"{label:<11}", style="bold")
        if value:
            text.append(value)
        else:
            text.append(empty or "(none)", style="dim")
        text.append("\n")

    field("Origin", origin)
    field("Id", persona.id)
    field("File", str(persona.path or ""))
    field("AI name", persona.ai_name)
    field("User name", persona.user_name)
    field("Mode", persona.mode)
    field("Model", persona.model, "(any)")
    field("Stop", ", ".join(repr(s) for s in persona.stop))
    sampling = " · ".join(f"{k} {plain_number(v)}" for k, v in persona.sampling.items())
    field("Sampling", sampling, "(llama.cpp defaults)")
    field("Greeting", persona.greeting)
    text.append("\nSystem prompt\n", style="bold")
    text.append(persona.system or "(none)", style="" if persona.system else "dim")
    text.append("\n")
    text.append(f"\nExamples ({len(persona.examples)})\n", style="bold")
    for example in persona.examples:
        text.append(f"{persona.user_name}: ", style="bold")
        text.append(example.user + "\n")
        text.append(f"{persona.ai_name}: ", style="bold")
        text.append(example.ai + "\n")
    if persona.extra:
        text.append("\nOther keys (kept when saving)\n", style="bold")
        text.append(", ".join(persona.extra) + "\n")
    for warning in persona.warnings:
        text.append("\nWarning: ", style="bold yellow")
        text.append(warning)
    return text


def describe_problem(problem: PersonaProblem) -> Text:
    """A broken file: where, and why it was skipped."""
    text = Text("Broken persona file (not loaded)\n\n", style="bold red")
    for label, value in (
        ("File", str(problem.path)),
        ("Line", str(problem.line) if problem.line else "?"),
        ("Reason", problem.reason),
    ):
        text.append(f"{label:<8}", style="bold")
        text.append(value + "\n")
    text.append("\nFix it in a text editor; it is skipped until then.", style="dim")
    return text


# --- widgets -------------------------------------------------------------------------


class PersonaList(OptionList):
    """The personas, then the broken files. A click views; a double click selects.

    Each persona is tagged "bundled", "yours" or "override" (yours, in place
    of the bundled persona with the same id).
    """

    DEFAULT_CSS = """
    PersonaList { width: 32; height: 1fr; border: round $primary 50%; }
    PersonaList:focus { border: round $primary; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(markup=False, **kwargs)  # type: ignore[arg-type]
        self.border_title = "Personas"

    def show(
        self,
        personas: list[Persona],
        problems: list[PersonaProblem],
        overriding: Collection[str],
        selected: str | None,
    ) -> None:
        """Replace the options; ids are ``persona:<id>`` and ``problem:<index>``."""
        width = 26
        options: list[Option | None] = []
        for persona in personas:
            tag = "override" if persona.id in overriding else "yours"
            tag = "bundled" if persona.bundled else tag
            name = _fit(persona.name, width - len(tag) - 2)
            line = Text(name, style="bold")
            line.append(" " * (width - len(name) - len(tag)) + tag, style="dim")
            options.append(Option(line, id=f"persona:{persona.id}"))
        if problems:
            options.append(None)
        for index, problem in enumerate(problems):
            line = Text("⚠ " + _fit(problem.path.name, width - 9), style="red")
            line.append(" broken", style="dim")
            options.append(Option(line, id=f"problem:{index}"))
        before = self.highlighted or 0
        self.set_options(options)
        ids = [o.id for o in self.options]
        if selected in ids:
            self.highlighted = ids.index(selected)
        elif ids:  # the highlighted one was deleted: stay at the same place
            self.highlighted = min(before, len(ids) - 1)

    async def _on_click(self, event: events.Click) -> None:
        event.prevent_default()  # replaces OptionList's click, which selects at once
        index = event.style.meta.get("option")
        if index is None or self.get_option_at_index(index).disabled:
            return
        self.highlighted = index
        if event.chain >= 2:
            self.action_select()


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the library screen --------------------------------------------------------------


class PersonasScreen(Screen[str | None]):
    """Browse and manage personas; dismisses with a persona id to chat with, or None."""

    BINDINGS = [
        Binding("escape,f3", "close", "Close"),
        Binding("ctrl+n", "chat", "New chat"),
        Binding("n", "new", "New"),
        Binding("e", "edit", "Edit"),
        Binding("d", "duplicate", "Duplicate"),
        Binding("delete", "delete", "Delete"),
        Binding("i", "import", "Import"),
    ]

    class Changed(Message):
        """Persona files were written or deleted: ``library`` is the fresh library."""

        def __init__(self, library: PersonaLibrary) -> None:
            super().__init__()
            self.library = library

    def __init__(
        self,
        user_dir: Path | None = None,
        bundled_dir: Path | None = None,
        selected: str | None = None,
    ) -> None:
        super().__init__()
        self.user_dir = user_dir or paths.user_personas_dir()
        self.bundled_dir = bundled_dir or bundled_personas_dir()
        self.library = PersonaLibrary({}, [])
        self.problems: list[PersonaProblem] = []
        self._initial = selected

    def compose(self) -> ComposeResult:
        yield Static(
            Text("Enter or double click: new chat with it · Tab: move between panes"),
            id="personas-hint",
        )
        with Horizontal(id="personas-main"):
            yield PersonaList(id="persona-list")
            with VerticalScroll(id="persona-detail"):
                yield Static(id="persona-text")
        with Horizontal(id="persona-buttons"):
            for label, name in (
                ("Chat", "chat"),
                ("New", "new"),
                ("Edit", "edit"),
                ("Duplicate", "duplicate"),
                ("Delete", "delete"),
                ("Import", "import"),
                ("Close", "close"),
            ):
                yield Button(label, id=f"button-{name}", compact=True, action=f"screen.{name}")
        yield Footer()

    def on_mount(self) -> None:
        self.reload(self._initial)
        self.query_one(PersonaList).focus()

    # --- state --------------------------------------------------------------------

    def reload(self, selected: str | None = None) -> None:
        """Read the files again and show them, keeping ``selected`` highlighted."""
        self.library = load_library(self.bundled_dir, self.user_dir)
        self.problems = broken_files(self.library)
        overriding = {
            p.id
            for p in self.library.personas.values()
            if not p.bundled and (self.bundled_dir / f"{p.id}.toml").is_file()
        }
        option = f"persona:{selected}" if selected else None
        self.query_one(PersonaList).show(self.library.sorted(), self.problems, overriding, option)
        self._show_highlighted()

    def _changed(self, selected: str | None) -> None:
        self.reload(selected)
        self.post_message(self.Changed(self.library))

    def current(self) -> Persona | PersonaProblem | None:
        """The highlighted persona or broken file."""
        option = self.query_one(PersonaList).highlighted_option
        if option is None or option.id is None:
            return None
        kind, _, key = option.id.partition(":")
        if kind == "persona":
            return self.library.personas.get(key)
        return self.problems[int(key)]

    def _overrides(self, persona: Persona) -> bool:
        return not persona.bundled and (self.bundled_dir / f"{persona.id}.toml").is_file()

    @on(OptionList.OptionHighlighted, "#persona-list")
    def _highlighted(self) -> None:
        self._show_highlighted()

    def _show_highlighted(self) -> None:
        item = self.current()
        detail = self.query_one("#persona-text", Static)
        if isinstance(item, Persona):
            detail.update(describe_persona(item, self._overrides(item)))
        elif isinstance(item, PersonaProblem):
            detail.update(describe_problem(item))
        else:
            detail.update(Text("No personas.", style="dim"))
        self.query_one("#persona-detail", VerticalScroll).scroll_home(animate=False)
        for name in ("chat", "edit", "duplicate"):
            self.query_one(f"#button-{name}", Button).disabled = not isinstance(item, Persona)
        deletable = isinstance(item, Persona) and not item.bundled
        self.query_one("#button-delete", Button).disabled = not deletable

    def _persona_or_say(self) -> Persona | None:
        item = self.current()
        if isinstance(item, PersonaProblem):
            self.notify(
                f"{item.path.name} could not be loaded; fix it in a text editor.",
                severity="warning",
                markup=False,
            )
            return None
        return item

    # --- actions ------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#persona-list")
    def _selected(self) -> None:
        self.action_chat()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_chat(self) -> None:
        persona = self._persona_or_say()
        if persona is not None:
            self.dismiss(persona.id)

    def _taken(self) -> set[str]:
        on_disk = {p.stem for p in self.user_dir.glob("*.toml")}
        return set(self.library.personas) | on_disk

    def action_new(self) -> None:
        editor = PersonaEditor(None, self.user_dir, self._taken(), self.library)
        self.app.push_screen(editor, self._saved)

    def action_edit(self) -> None:
        persona = self._persona_or_say()
        if persona is not None:
            editor = PersonaEditor(persona, self.user_dir, self._taken(), self.library)
            self.app.push_screen(editor, self._saved)

    def _saved(self, persona: Persona | None) -> None:
        if persona is not None:
            self.notify(f"Saved {persona.name} to {persona.path}", markup=False)
            self._changed(persona.id)
        self.query_one(PersonaList).focus()

    def action_duplicate(self) -> None:
        persona = self._persona_or_say()
        if persona is None:
            return
        name = f"{persona.name} (copy)"
        if self.library.same_name(name):
            name = self._free_name(name)
        twin = dataclasses.replace(
            copy.deepcopy(persona),
            id=unique_id(name, self._taken()),
            name=name,
            path=None,
            bundled=False,
            warnings=[],
        )
        try:
            save_persona(twin, self.user_dir)
        except OSError as exc:
            self.notify(f"Could not save the copy: {exc}", severity="error", markup=False)
            return
        self.notify(f"Saved {twin.name} to {twin.path}", markup=False)
        self._changed(twin.id)

    def action_import(self) -> None:
        """Import a Modelfile, character card, web UI YAML or llama.cpp prompt file."""
        from tui.formats import PersonaImportError, import_persona
        from tui.ui.screens.text_prompt import TextPromptScreen

        def chosen(target: str | None) -> None:
            if not target or not target.strip():
                return
            try:
                result = import_persona(Path(target.strip()).expanduser())
            except PersonaImportError as exc:
                self.notify(str(exc), title="Import failed", severity="error", markup=False)
                return
            self._import_named(result, result.persona.name)

        self.app.push_screen(TextPromptScreen("Import a persona from (file path)"), chosen)

    def _import_named(self, result: ImportResult, name: str) -> None:
        """Save ``result`` as ``name``; ask for another name while one is taken."""
        from tui.ui.screens.text_prompt import TextPromptScreen

        twin = self.library.same_name(name)
        if twin is not None:

            def renamed(new: str | None) -> None:
                if new and new.strip():
                    self._import_named(result, " ".join(new.split()))

            question = (
                f"You already have a persona named {twin.name!r}. Import this one as (Esc cancels):"
            )
            self.app.push_screen(TextPromptScreen(question, self._free_name(name)), renamed)
            return
        persona = result.persona
        persona.name = name
        persona.id = unique_id(name, self._taken())
        try:
            save_persona(persona, self.user_dir)
        except OSError as exc:
            self.notify(f"Could not save: {exc}", severity="error", markup=False)
            return
        notes = "".join(f"\n• {w}" for w in result.warnings)
        self.notify(f"Imported {persona.name} ({result.format}) to {persona.path}{notes}",
                    timeout=15, markup=False)  # fmt: skip
        self._changed(persona.id)

    def _free_name(self, name: str) -> str:
        """``name 2``, ``name 3``…: the first that no persona is shown as."""
        number = 2
        while self.library.same_name(f"{name} {number}"):
            number += 1
        return f"{name} {number}"

    def action_delete(self) -> None:
        item = self.current()
        if item is None:
            return
        if isinstance(item, PersonaProblem):
            path = item.path
            if path.is_dir():  # the personas folder itself, not read (others can write it)
                self.notify(item.reason, severity="warning", markup=False)
                return
            if path.parent.resolve() != self.user_dir.resolve():
                self.notify("Bundled files cannot be deleted.", severity="warning")
                return
            question = f"Delete the broken file {path}?"
        elif item.bundled or item.path is None:
            self.notify(
                f"{item.name} is bundled and cannot be deleted (edit it to make your own copy).",
                severity="warning",
                markup=False,
            )
            return
        else:
            path = item.path
            question = f"Delete your persona {item.name} ({path})?"
            if self._overrides(item):
                question += " The bundled persona of the same id will be used again."
            else:
                question += " Chats that use it will use the default persona."

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                path.unlink()
            except OSError as exc:
                self.notify(f"Could not delete {path}: {exc}", severity="error", markup=False)
                return
            self._changed(None)

        self.app.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), answered)
