"""The persona library: list, view, create, edit, duplicate and delete personas.

Bundled personas are read-only: editing one saves a user copy with the same
id, which overrides it; deleting that copy brings the bundled one back. All
writes go through :func:`tui.core.personas.save_persona` into the user directory.
The screen tells the app about changes with :class:`PersonasScreen.Changed`
and dismisses with the id of a persona to start a new chat with (or None).

Everything a user typed is shown as plain text (``rich.text.Text``), never as
markup.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from tui.core import paths
from tui.core.personas import (
    MODES,
    Example,
    Persona,
    PersonaError,
    PersonaLibrary,
    PersonaProblem,
    bundled_personas_dir,
    load_library,
    load_persona_file,
    parse_persona,
    save_persona,
    slugify,
)
from tui.core.sampling import SPEC, coerce, out_of_range
from tui.ui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from tui.formats import ImportResult  # imported when used: it is slow to load

EXAMPLES_HELP = (
    'Each example is a line "User: …" then a line "AI: …"; the lines after either one '
    'continue it. Start a line with \\ to write "User:" or "AI:" literally.'
)
STOP_HELP = "One stop string per line. Write \\n for a line break, \\t for a tab, \\\\ for \\."
MODE_HELP = "auto: the model's chat template if it has one · chat · transcript (User:/AI: text)"

# --- the editor's text formats ---------------------------------------------------------

_ROLE_LINE = re.compile(r"(user|ai):[ ]?(.*)\Z", re.IGNORECASE)


def examples_to_text(examples: Iterable[Example]) -> str:
    """Examples as editable text: "User: …" / "AI: …" blocks separated by blank lines.

    Continuation lines that would read as a new block (or start with a
    backslash) get a leading backslash, so that parsing gives back exactly
    the same texts.
    """
    return "\n\n".join(
        _block_to_text("User", e.user) + "\n" + _block_to_text("AI", e.ai) for e in examples
    )


def _block_to_text(prefix: str, text: str) -> str:
    first, *rest = text.split("\n")
    escaped = ["\\" + line if _needs_escape(line) else line for line in rest]
    return "\n".join([f"{prefix}: {first}", *escaped])


def _needs_escape(line: str) -> bool:
    return line.startswith("\\") or _ROLE_LINE.match(line) is not None


def parse_examples_text(text: str) -> list[Example]:
    """Read the format of :func:`examples_to_text`; ValueError names the line at fault."""
    blocks: list[tuple[str, int, list[str]]] = []  # (role, line number, lines)
    for number, line in enumerate(text.split("\n"), 1):
        match = _ROLE_LINE.match(line)
        if match:
            blocks.append((match.group(1).lower(), number, [match.group(2)]))
        elif blocks:
            blocks[-1][2].append(line[1:] if line.startswith("\\") else line)
        elif line.strip():
            raise ValueError(f'line {number}: an example starts with a line "User: …"')
    examples = []
    for index in range(0, len(blocks), 2):
        role, number, lines = blocks[index]
        if role != "user":
            raise ValueError(f'line {number}: "AI:" without a "User:" line before it')
        if index + 1 >= len(blocks) or blocks[index + 1][0] != "ai":
            raise ValueError(f'line {number}: this "User:" has no "AI:" answer after it')
        examples.append(Example(user=_block_text(lines), ai=_block_text(blocks[index + 1][2])))
    return examples


def _block_text(lines: list[str]) -> str:
    """The text of one block: blank lines at its end separate blocks, not content."""
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > 1 and not lines[0]:
        lines.pop(0)  # "User:" alone on its line, the text below it
    return "\n".join(lines)


_STOP_ESCAPE = re.compile(r"\\(.)")
_STOP_CHARS = {"n": "\n", "t": "\t", "\\": "\\"}


def stops_to_text(stops: Iterable[str]) -> str:
    """Stop strings one per line, with line breaks, tabs and backslashes escaped."""
    escape = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t"})
    return "\n".join(stop.translate(escape) for stop in stops)


def parse_stops_text(text: str) -> list[str]:
    """The inverse of :func:`stops_to_text`; blank lines are skipped."""
    unescape = lambda m: _STOP_CHARS.get(m.group(1), m.group(0))  # noqa: E731
    return [_STOP_ESCAPE.sub(unescape, line) for line in text.split("\n") if line.strip()]


def _number(value: float | int) -> str:
    """A number as people write it: 2 rather than 2.0, full precision otherwise."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def parse_sampling_value(key: str, raw: str) -> float | int | None:
    """One sampling field of the form: None when empty (the default), else a checked number."""
    raw = raw.strip()
    if not raw:
        return None
    _default, rng = SPEC[key]
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, not {raw!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} must be a finite number")
    if rng.integer and not number.is_integer():
        raise ValueError(f"{key} must be a whole number")
    if out_of_range(key, number):
        raise ValueError(f"{key} must be between {_number(rng.low)} and {_number(rng.high)}")
    return coerce(key, number)


def unique_id(name: str, taken: Collection[str]) -> str:
    """A file stem for a new persona that neither overrides nor overwrites another."""
    base = slugify(name)
    candidate, number = base, 2
    while candidate in taken:
        candidate = f"{base[:60]}-{number}"
        number += 1
    return candidate


def broken_files(library: PersonaLibrary) -> list[PersonaProblem]:
    """The problems of files that did not load (warnings of loaded files are not)."""
    loaded = {p.path for p in library.personas.values()}
    broken, seen = [], set()
    for problem in library.problems:
        if problem.path in loaded or problem.path in seen:
            continue
        seen.add(problem.path)
        try:  # a file with warnings that a user file overrides: it loads, it is not broken
            load_persona_file(problem.path)
        except PersonaError:
            broken.append(problem)
    return broken


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
    sampling = " · ".join(f"{k} {_number(v)}" for k, v in persona.sampling.items())
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


# --- the editor ----------------------------------------------------------------------

_TEXT_FIELDS = ("name", "description", "ai_name", "user_name", "model")


class PersonaEditor(Screen[Persona | None]):
    """A form for every field of a persona; F2 saves, Esc cancels.

    ``persona`` None creates a new one. The file is written here (so that a
    failed write keeps the form open) and the saved persona is the result.
    """

    BINDINGS = [
        Binding("f2", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        persona: Persona | None,
        user_dir: Path,
        taken: Collection[str],
        library: PersonaLibrary | None = None,
    ) -> None:
        super().__init__()
        self.original = persona
        self.user_dir = user_dir
        self.taken = set(taken)
        self.library = library  # to refuse a name another persona is shown as
        self._start: tuple[object, ...] = ()

    def _title(self) -> Text:
        persona = self.original
        if persona is None:
            return Text("New persona", style="bold")
        title = Text(f"Edit {persona.name}", style="bold")
        if persona.bundled:
            title.append(
                f"  (bundled: saving writes your own copy to {self.user_dir / persona.id}.toml)",
                style="dim",
            )
        return title

    def compose(self) -> ComposeResult:
        persona = self.original or Persona(id="", name="")
        yield Static(self._title(), id="editor-title")
        with VerticalScroll(id="editor-form"):
            for key, label in (("name", "Name"), ("description", "Description")):
                yield from self._row(key, label, getattr(persona, key))
            yield from self._row("ai_name", "AI name", persona.ai_name)
            yield from self._row("user_name", "User name", persona.user_name)
            with Horizontal(classes="row"):
                yield Label("Mode")
                options = [(mode, mode) for mode in MODES]
                mode = persona.mode if persona.mode in MODES else "auto"
                yield Select(options, value=mode, allow_blank=False, compact=True, id="mode")
            yield Label("", id="mode-error", classes="error", markup=False)
            yield Label(MODE_HELP, classes="help", markup=False)
            yield from self._row("model", "Model", persona.model, "any model (optional)")
            yield Label("System prompt", classes="section")
            yield self._area("system", persona.system, "{{user}}, {{ai}}, {{date}}… are filled in")
            yield Label("Greeting (the AI's first message, optional)", classes="section")
            yield self._area("greeting", persona.greeting)
            yield Label("Examples", classes="section")
            yield Label(EXAMPLES_HELP, classes="help", markup=False)
            yield self._area("examples", examples_to_text(persona.examples), "User: Hi\nAI: Hello!")
            yield Label("", id="examples-error", classes="error", markup=False)
            yield Label("Stop strings", classes="section")
            yield Label(STOP_HELP, classes="help", markup=False)
            yield self._area("stop", stops_to_text(persona.stop))
            yield Label("", id="stop-error", classes="error", markup=False)
            yield Label("Sampling (empty: llama.cpp's default)", classes="section")
            with Grid(id="sampling-grid"):
                for key, (default, _rng) in SPEC.items():
                    yield Label(key)
                    value = persona.sampling.get(key)
                    yield Input(
                        "" if value is None else _number(value),
                        placeholder=_number(default),
                        compact=True,
                        id=f"sampling-{key}",
                    )
            yield Label("", id="sampling-error", classes="error", markup=False)
        with Horizontal(id="editor-buttons"):
            yield Button("Save", id="save", variant="primary", compact=True, action="screen.save")
            yield Button("Cancel", id="cancel", compact=True, action="screen.cancel")
            yield Label("", id="form-error", classes="error", markup=False)
        yield Footer()

    def _row(self, key: str, label: str, value: str, placeholder: str = "") -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label(label)
            yield Input(value, placeholder=placeholder, compact=True, id=key)
        yield Label("", id=f"{key}-error", classes="error", markup=False)

    def _area(self, key: str, text: str, placeholder: str = "") -> TextArea:
        return TextArea(
            text,
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            placeholder=placeholder,
            id=key,
        )

    def on_mount(self) -> None:
        self._start = self._snapshot()
        self.query_one("#name", Input).focus()

    def _snapshot(self) -> tuple[object, ...]:
        """Every value of the form, to tell whether anything was changed."""
        return tuple(
            w.value if isinstance(w, Input | Select) else w.text
            for w in self.query("Input, Select, TextArea").results()
            if isinstance(w, Input | Select | TextArea)
        )

    def _text(self, key: str) -> str:
        widget = self.query_one(f"#{key}")
        if isinstance(widget, TextArea):
            return widget.text
        return self.query_one(f"#{key}", Input).value

    def build(self) -> tuple[Persona | None, dict[str, str]]:
        """The persona the form describes, or the errors by field id."""
        errors: dict[str, str] = {}
        values = {key: self._text(key) for key in _TEXT_FIELDS}
        for key in ("name", "ai_name", "user_name"):
            values[key] = values[key].strip()
            if not values[key]:
                errors[key] = f"{key.replace('_', ' ').capitalize()} is required."
        own_id = self.original.id if self.original else ""
        twin = self.library.same_name(values["name"], own_id) if self.library else None
        if twin is not None and values["name"]:
            errors["name"] = f"Another persona is already named {twin.name} ({twin.id})."
        mode = self.query_one("#mode", Select).value
        if mode not in MODES:
            errors["mode"] = f"Mode must be one of {', '.join(MODES)}."
        try:
            examples = parse_examples_text(self._text("examples"))
        except ValueError as exc:
            errors["examples"] = f"Examples, {exc}"
            examples = []
        stop = parse_stops_text(self._text("stop"))
        sampling: dict[str, float | int] = {}
        bad_sampling = []
        for key in SPEC:
            try:
                value = parse_sampling_value(key, self.query_one(f"#sampling-{key}", Input).value)
            except ValueError as exc:
                bad_sampling.append(key)
                errors[f"sampling-{key}"] = str(exc)
                continue
            if value is not None:
                sampling[key] = value
        if bad_sampling:
            errors["sampling"] = "; ".join(errors[f"sampling-{k}"] for k in bad_sampling)
        if errors:
            return None, errors
        base = copy.deepcopy(self.original) if self.original else Persona(id="", name="")
        persona_id = base.id or unique_id(values["name"], self.taken)
        persona = dataclasses.replace(
            base,
            id=persona_id,
            name=values["name"],
            description=values["description"].strip(),
            ai_name=values["ai_name"],
            user_name=values["user_name"],
            model=values["model"].strip(),
            mode=str(mode),
            system=self._text("system"),
            greeting=self._text("greeting"),
            examples=examples,
            stop=stop,
            sampling=sampling,
            warnings=[],
        )
        try:  # the file must load again exactly as the app reads it
            parse_persona(persona.to_toml_dict(), persona.id)
        except ValueError as exc:
            return None, {"form": str(exc)}
        return persona, {}

    def _show_errors(self, errors: dict[str, str]) -> None:
        for label in self.query(".error").results(Label):
            key = (label.id or "").removesuffix("-error")
            message = errors.get(key, "")
            label.update(Text(message))
            label.set_class(bool(message), "-shown")
        for widget in self.query("Input, TextArea").results():
            widget.set_class(widget.id in errors, "-bad")
        summary = self.query_one("#form-error", Label)
        if "form" not in errors and errors:
            count = len([k for k in errors if k != "sampling"])
            summary.update(Text(f"Not saved: {count} problem{'s' if count != 1 else ''} above"))
            summary.add_class("-shown")
        fields = [k for k in errors if k not in ("sampling", "form")]
        if fields:
            self.query_one(f"#{fields[0]}").focus()

    def action_save(self) -> None:
        persona, errors = self.build()
        if persona is None:
            self._show_errors(errors)
            return
        try:
            save_persona(persona, self.user_dir)
        except OSError as exc:
            self._show_errors({"form": f"Could not save: {exc}"})
            return
        self.dismiss(persona)

    def action_cancel(self) -> None:
        if self._snapshot() == self._start:
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmScreen("Discard your changes to this persona?", "Discard", "Keep editing"),
            answered,
        )
