"""The persona editor: a form for every field of a persona; F2 saves, Esc cancels.

The text forms of examples, stop strings and numbers are in
:mod:`tui.core.persona_text`; this module holds only the widgets. Everything a
user typed is shown as plain text, never as markup.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from tui.core.persona_text import (
    examples_to_text,
    parse_examples_text,
    parse_sampling_value,
    parse_stops_text,
    plain_number,
    stops_to_text,
    unique_id,
)
from tui.core.personas import MODES, Persona, PersonaLibrary, parse_persona, save_persona
from tui.core.sampling import SPEC, Choice
from tui.ui.screens.confirm import ConfirmScreen

EXAMPLES_HELP = (
    'Each example is a line "User: …" then a line "AI: …"; the lines after either one '
    'continue it. Start a line with \\ to write "User:" or "AI:" literally.'
)
STOP_HELP = "One stop string per line. Write \\n for a line break, \\t for a tab, \\\\ for \\."
MODE_HELP = "auto: the model's chat template if it has one · chat · transcript (User:/AI: text)"

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
                for key, (default, rng) in SPEC.items():
                    yield Label(key)
                    value = persona.sampling.get(key)
                    if isinstance(rng, Choice):  # reasoning auto/on/off, effort: a list
                        yield Select(
                            [(word, word) for word in rng.options],
                            prompt=f"{default} (default)",
                            value=value if value in rng.options else Select.NULL,
                            compact=True,
                            id=f"sampling-{key}",
                        )
                        continue
                    yield Input(
                        "" if value is None else plain_number(value),
                        placeholder=plain_number(default),
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
        sampling: dict[str, float | int | str] = {}
        bad_sampling = []
        for key in SPEC:
            field = self.query_one(f"#sampling-{key}")
            if isinstance(field, Select):  # a word setting: a choice, or the default
                if isinstance(field.value, str):
                    sampling[key] = field.value
                continue
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
