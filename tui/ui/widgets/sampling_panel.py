"""The sampling panel: one slider per setting of the current chat.

Data goes down as attributes (:meth:`SamplingPanel.show`, :attr:`unsupported`)
and comes up as messages: :class:`SamplingPanel.Changed` after every edit,
:class:`SamplingPanel.SaveAsPersonaDefaults` when the user asks for it. The
panel never touches the store: the app decides what an edit means (a chat
keeps only the values that differ from its persona's defaults).

Keys on a focused row: left/right, page-up/page-down, home/end, a typed
number then Enter (see :mod:`tui.ui.widgets.slider`); up/down move between
rows; ``r`` or Delete resets the row to the persona's default, ``R`` resets
them all, ``P`` saves the values as the persona's defaults; Esc closes the
panel (the first Esc cancels a number being typed). On the seed row, space
switches between a random and a fixed seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import partial

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Static

from tui.core.sampling import FIELD_NAMES, SPEC, Choice, Sampling, coerce
from tui.ui.widgets.slider import Number, Slider, decimals_of, format_number

MIROSTAT_LABELS = ("off", "v1", "v2")
# llama.cpp's mirostat samplers replace the usual chain (llama-cpp-python only
# checks the temperature for 0, i.e. greedy).
MIROSTAT_REPLACES = ("temperature", "top_k", "top_p", "min_p", "typical_p")
MIROSTAT_ONLY = ("mirostat_tau", "mirostat_eta")
GREEDY_IGNORES = ("top_k", "top_p", "min_p", "typical_p")
REASONING_ONLY = ("reasoning_effort", "reasoning_budget")  # nothing to steer with thinking off
UNSUPPORTED_REASON = "not used by this server"
KEY_HELP = "←/→ change · type a number, Enter · r reset"


def ignored_settings(values: Sampling, unsupported: Iterable[str] = ()) -> dict[str, str]:
    """The settings the backend will ignore with ``values``, each with a short reason.

    The slider stays editable (the value is kept for later), it is only dimmed.
    """
    reasons: dict[str, str] = {}
    if values.mirostat_mode:
        reasons.update(dict.fromkeys(MIROSTAT_REPLACES, "ignored while mirostat is on"))
    else:
        reasons.update(dict.fromkeys(MIROSTAT_ONLY, "used only with mirostat"))
        if values.temperature == 0:
            reasons.update(dict.fromkeys(GREEDY_IGNORES, "ignored: temperature 0 is greedy"))
    if values.reasoning == "off":
        reasons.update(dict.fromkeys(REASONING_ONLY, "ignored while reasoning is off"))
    reasons.update(dict.fromkeys((n for n in unsupported if n in SPEC), UNSUPPORTED_REASON))
    return reasons


def shown_value(name: str, value: Number | str) -> str:
    """A value as the panel writes it: words where the number means a mode."""
    if isinstance(value, str):
        return value  # a word setting (reasoning = "auto")
    if name == "seed" and value < 0:
        return "random"
    if name == "mirostat_mode":
        return MIROSTAT_LABELS[int(value)]
    _default, rng = SPEC[name]
    text = format_number(value, 0 if rng.integer else decimals_of(rng.step), rng.integer)
    if "." in text:  # 0.70 -> 0.7, 1.00 -> 1.0: short, still clearly a fraction
        text = text.rstrip("0")
        text += "0" if text.endswith(".") else ""
    return text


class SeedField(Slider):
    """The seed: random (-1) or a fixed number.

    Space (or a click on "random") switches; typing a number, or left/right,
    fixes it. Switching back to fixed brings back the last fixed seed, else
    a new random one, so that "fixed" reproduces from now on.
    """

    BINDINGS = [Binding("space", "toggle_random", "Random/fixed", show=False)]

    def __init__(self, value: int, **kwargs: object) -> None:
        _default, rng = SPEC["seed"]
        super().__init__(
            rng.low,
            rng.high,
            1,
            value=value,
            integer=True,
            coerce=partial(coerce, "seed"),
            **kwargs,  # type: ignore[arg-type]
        )
        self._last_fixed: int | None = value if value >= 0 else None

    draggable = False  # a click toggles; a drag would toggle back and forth

    def action_toggle_random(self) -> None:
        self.set_by_user(self._toggled())

    def value_at(self, x: int) -> Number | None:
        """A click on the check box switches between random and fixed."""
        return self._toggled() if x < len(self._box()) else None

    def _toggled(self) -> int:
        """The other state: random, or the last fixed seed (a new one the first time)."""
        if self.value >= 0:
            self._last_fixed = int(self.value)
            return -1
        if self._last_fixed is None:
            self._last_fixed = random.randrange(int(self.high))
        return self._last_fixed

    def _box(self) -> str:
        return "[x] random" if self.value < 0 else "[ ] random"

    def render_bar(self, width: int) -> Text:
        style = "slider--thumb" if self.value < 0 else "slider--choice"
        return Text(self._box()[:width].ljust(width), self.get_component_rich_style(style))

    def render_value(self) -> Text:
        if self.value < 0 and not self.typing:
            return Text(" " * self.value_width)
        return super().render_value()


class ChoiceField(Slider):
    """A setting that is one of a few words (reasoning: auto, on, off), drawn as segments.

    The slider's value is the index of the word; :meth:`word` and :meth:`index`
    translate, so the panel deals in the words the settings hold.
    """

    def __init__(self, options: tuple[str, ...], word: str, **kwargs: object) -> None:
        self.options = tuple(options)
        super().__init__(
            0,
            len(self.options) - 1,
            1,
            value=self.index(word),
            integer=True,
            labels=self.options,
            **kwargs,  # type: ignore[arg-type]
        )

    def index(self, word: object) -> int:
        return self.options.index(word) if word in self.options else 0  # type: ignore[arg-type]

    def word(self, value: Number | None = None) -> str:
        return self.options[int(self.value if value is None else value)]


class SettingRow(Vertical):
    """One setting: its name and the persona's default, the slider, a hint when ignored."""

    DEFAULT_CSS = """
    SettingRow { height: auto; padding: 0 1; }
    SettingRow:focus-within { background: $boost; }
    SettingRow .row-head { height: 1; }
    SettingRow .label { width: 1fr; }
    SettingRow .default { width: auto; color: $text-muted; }
    SettingRow.-changed .label { color: $accent; text-style: bold; }
    SettingRow .hint { height: auto; color: $text-warning; display: none; }
    SettingRow.-inactive .hint { display: block; }
    SettingRow.-inactive .label, SettingRow.-inactive Slider { text-opacity: 45%; }
    """

    def __init__(self, setting: str, slider: Slider) -> None:
        super().__init__(id=f"row-{setting}")
        self.setting = setting
        self.slider = slider
        help_text = SPEC[setting][1].help
        self.tooltip = Text(help_text) if help_text else None
        self._shown: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row-head"):
            yield Static(Text(self.setting), classes="label")
            yield Static("", classes="default")
        yield self.slider
        yield Static("", classes="hint")

    def show(self, value: Number | str, default: Number | str, reason: str | None) -> None:
        """Show ``value`` against the persona's ``default``; ``reason``: why it is ignored.

        Texts are only replaced when they change: every edit redraws all rows,
        and each Static update costs a layout pass.
        """
        slider = self.slider
        slider.value = slider.index(value) if isinstance(slider, ChoiceField) else value  # type: ignore[assignment]
        self.set_class(value != default, "-changed")
        self.set_class(reason is not None, "-inactive")
        default_text, hint = f"({shown_value(self.setting, default)})", reason or ""
        if (default_text, hint) != self._shown:
            self._shown = (default_text, hint)
            self.query_one(".default", Static).update(Text(default_text))
            self.query_one(".hint", Static).update(Text(hint))


class SamplingPanel(Vertical):
    """The sampling settings of one chat, over the defaults of its persona."""

    HELP_AREA = "Sampling panel"

    DEFAULT_CSS = """
    SamplingPanel {
        width: 36;
        height: 1fr;
        border: round $primary 50%;
        border-title-align: left;
    }
    SamplingPanel.-active { border: round $primary; }
    SamplingPanel #sampling-rows { height: 1fr; overflow-y: auto; scrollbar-size-vertical: 1; }
    SamplingPanel #sampling-help {
        height: 3;
        padding: 0 1;
        color: $text-muted;
        border-top: hkey $primary 30%;
    }
    SamplingPanel #sampling-buttons { height: 1; align-horizontal: center; }
    SamplingPanel #sampling-buttons Button { width: auto; min-width: 0; margin: 0 1; }
    """

    BINDINGS = [
        Binding("up", "move(-1)", "Previous setting", show=False),
        Binding("down", "move(1)", "Next setting", show=False),
        Binding("r,delete", "reset", "Reset"),
        Binding("R", "reset_all", "Reset all"),
        Binding("P", "save_defaults", "Save to persona"),
        Binding("escape", "close", "Close", show=False),  # listed by F1
    ]

    unsupported: reactive[frozenset[str]] = reactive(frozenset(), init=False)
    """Settings the backend does not accept at all (e.g. a plain OpenAI server)."""

    class Changed(Message):
        """The user changed a setting; ``overrides`` is what differs from the persona."""

        def __init__(self, panel: SamplingPanel, values: Sampling, overrides: dict) -> None:
            super().__init__()
            self.panel = panel
            self.values = values
            self.overrides = overrides

        @property
        def control(self) -> SamplingPanel:
            return self.panel

    class CloseRequested(Message):
        """The user asked to close the panel (Esc)."""

    class SaveAsPersonaDefaults(Message):
        """The user asked to make ``values`` the persona's defaults."""

        def __init__(self, panel: SamplingPanel, values: Sampling) -> None:
            super().__init__()
            self.panel = panel
            self.values = values

        @property
        def control(self) -> SamplingPanel:
            return self.panel

    def __init__(
        self,
        values: Sampling | None = None,
        defaults: Sampling | None = None,
        unsupported: Iterable[str] = (),
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._defaults = defaults or Sampling()
        self._values = values or self._defaults
        self.set_reactive(SamplingPanel.unsupported, frozenset(unsupported))
        self._row_list: list[SettingRow] = []
        self.border_title = "Sampling"

    # --- data down ------------------------------------------------------------------------

    @property
    def values(self) -> Sampling:
        return self._values

    @property
    def defaults(self) -> Sampling:
        return self._defaults

    @property
    def overrides(self) -> dict[str, Number | str]:
        """What a chat stores: the values that differ from the persona's defaults."""
        return self._values.diff(self._defaults)

    def show(self, values: Sampling, defaults: Sampling) -> None:
        """Show another chat (or persona); posts nothing."""
        self._values, self._defaults = values, defaults
        self._refresh_rows()

    def watch_unsupported(self) -> None:
        self._refresh_rows()

    def focus_setting(self, name: str | None = None) -> None:
        """Focus the slider of ``name`` (default: the first one)."""
        self.query_one(f"#row-{name or FIELD_NAMES[0]}", SettingRow).slider.focus()

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="sampling-rows"):
            for name, (_default, rng) in SPEC.items():
                value = getattr(self._values, name)
                if isinstance(rng, Choice):  # reasoning auto/on/off, effort low/medium/high
                    slider: Slider = ChoiceField(rng.options, value, name=name, id=f"slider-{name}")
                elif name == "seed":
                    slider = SeedField(value, name=name, id=f"slider-{name}")
                else:
                    slider = Slider(
                        rng.low,
                        rng.high,
                        rng.step,
                        value=value,
                        integer=rng.integer,
                        coerce=partial(coerce, name),
                        labels=MIROSTAT_LABELS if name == "mirostat_mode" else None,
                        name=name,
                        id=f"slider-{name}",
                    )
                yield SettingRow(name, slider)
        yield Static(Text(KEY_HELP), id="sampling-help")
        with Horizontal(id="sampling-buttons"):
            yield Button("Reset all", id="sampling-reset-all", compact=True)
            yield Button("Save to persona", id="sampling-save", compact=True)

    def on_mount(self) -> None:
        self._row_list = list(self.query(SettingRow))
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        reasons = ignored_settings(self._values, self.unsupported)
        for row in self._row_list:  # empty until mounted: show() before then just stores
            name = row.setting
            row.show(getattr(self._values, name), getattr(self._defaults, name), reasons.get(name))

    def _rows(self) -> list[SettingRow]:
        return self._row_list

    def _focused_row(self) -> SettingRow | None:
        focused = self.screen.focused
        for row in self._rows():
            if focused is row.slider:
                return row
        return None

    # --- edits up -------------------------------------------------------------------------

    def _set(self, changes: dict[str, Number | str]) -> None:
        """Apply ``changes`` (coerced), redraw, and post Changed if anything changed."""
        new = Sampling.from_dict(changes, base=self._values)
        if new == self._values:
            self._refresh_rows()
            return
        self._values = new
        self._refresh_rows()
        focused = self._focused_row()
        if focused is not None:  # hints may have appeared above it and pushed it away
            self.call_after_refresh(focused.scroll_visible, animate=False)
        self.post_message(self.Changed(self, new, new.diff(self._defaults)))

    @on(Slider.Changed)
    def _slider_changed(self, event: Slider.Changed) -> None:
        event.stop()
        if event.slider.name in SPEC:
            value = event.value
            if isinstance(event.slider, ChoiceField):
                value = event.slider.word(value)  # type: ignore[assignment]
            self._set({event.slider.name: value})

    def on_descendant_blur(self, _event: events.DescendantBlur) -> None:
        self.set_class(self.has_focus_within, "-active")

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Bring the whole row into view and say what the setting does."""
        # A class, not :focus-within, so that moving between rows restyles two rows,
        # not the whole panel.
        self.set_class(self.has_focus_within, "-active")
        row = next((r for r in self._rows() if r.slider is event.widget), None)
        if row is None:
            return
        row.scroll_visible(animate=False)
        help_text = SPEC[row.setting][1].help
        self.query_one("#sampling-help", Static).update(
            Text(f"{row.setting}: {help_text}" if help_text else KEY_HELP)
        )

    def action_move(self, delta: int) -> None:
        rows = self._rows()
        current = self._focused_row()
        index = rows.index(current) + delta if current else (0 if delta > 0 else len(rows) - 1)
        rows[min(max(index, 0), len(rows) - 1)].slider.focus()

    def action_reset(self) -> None:
        row = self._focused_row()
        if row is not None:
            row.slider.typing = ""
            self._set({row.setting: getattr(self._defaults, row.setting)})

    def action_reset_all(self) -> None:
        for row in self._rows():
            row.slider.typing = ""
        self._set(self._defaults.to_dict())

    def action_close(self) -> None:
        self.post_message(self.CloseRequested())

    def action_save_defaults(self) -> None:
        self.post_message(self.SaveAsPersonaDefaults(self, self._values))

    @on(Button.Pressed, "#sampling-reset-all")
    def _reset_all_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_reset_all()

    @on(Button.Pressed, "#sampling-save")
    def _save_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_save_defaults()
