"""The sampling panel and its slider, driven with Pilot in a small app of their own."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from textual import on
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from tests.uihelpers import SIZE, screen_text
from tui.core.sampling import SPEC, Sampling
from tui.ui.widgets.sampling_panel import (
    ChoiceField,
    SamplingPanel,
    SeedField,
    SettingRow,
    ignored_settings,
    shown_value,
)
from tui.ui.widgets.slider import Slider, decimals_of, format_number

PERSONA = Sampling.from_dict({"temperature": 0.7, "top_k": 50})


class PanelApp(App[None]):
    """A chat-sized stand-in for the real screen: the panel docked on the right."""

    CSS = "#main { height: 1fr; } #chat { width: 1fr; }"

    def __init__(
        self,
        values: Sampling | None = None,
        defaults: Sampling = PERSONA,
        unsupported: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.initial = values or defaults
        self.defaults = defaults
        self.unsupported = unsupported
        self.changes: list[SamplingPanel.Changed] = []
        self.saved: list[Sampling] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield Static("chat", id="chat")
            yield SamplingPanel(self.initial, self.defaults, self.unsupported, id="sampling")

    def on_mount(self) -> None:
        self.panel.focus_setting()

    @property
    def panel(self) -> SamplingPanel:
        return self.query_one(SamplingPanel)

    def slider(self, name: str) -> Slider:
        return self.query_one(f"#slider-{name}", Slider)

    def row(self, name: str) -> SettingRow:
        return self.query_one(f"#row-{name}", SettingRow)

    @on(SamplingPanel.Changed)
    def changed(self, message: SamplingPanel.Changed) -> None:
        self.changes.append(message)

    @on(SamplingPanel.SaveAsPersonaDefaults)
    def save(self, message: SamplingPanel.SaveAsPersonaDefaults) -> None:
        self.saved.append(message.values)


async def focus_row(app: PanelApp, pilot, name: str) -> None:
    app.panel.focus_setting(name)
    await pilot.pause()


# --- pure helpers ---------------------------------------------------------------------------


def test_number_formatting_follows_the_step() -> None:
    assert [decimals_of(s) for s in (0.05, 0.1, 1, 16, 0.01)] == [2, 1, 0, 0, 2]
    assert format_number(0.7, 2, False) == "0.70"
    assert format_number(0.733, 2, False) == "0.733"  # a typed value is not hidden
    assert format_number(4096, 0, True) == "4096"
    assert shown_value("temperature", 0.7) == "0.7"
    assert shown_value("typical_p", 1.0) == "1.0"
    assert shown_value("seed", -1) == "random"
    assert shown_value("mirostat_mode", 2) == "v2"


def test_ignored_settings_explain_why() -> None:
    assert set(ignored_settings(Sampling())) == {"mirostat_tau", "mirostat_eta"}
    mirostat = ignored_settings(Sampling(mirostat_mode=2))
    assert set(mirostat) == {"temperature", "top_k", "top_p", "min_p", "typical_p"}
    assert "mirostat" in mirostat["top_k"]
    greedy = ignored_settings(Sampling(temperature=0.0))
    assert {"top_k", "top_p", "min_p", "typical_p"} <= set(greedy)
    remote = ignored_settings(Sampling(), ["top_k", "no_such_setting"])
    assert remote["top_k"] == "not used by this server" and "no_such_setting" not in remote


def test_slider_steps_snap_to_the_grid_and_clamp() -> None:
    slider = Slider(0.0, 2.0, 0.05, value=0.73)
    assert slider.stepped(1) == 0.75 and slider.stepped(-1) == 0.7  # off grid: snap first
    slider.value = 0.7
    assert slider.stepped(1) == 0.75 and slider.stepped(-1) == 0.65
    assert slider.stepped(100) == 2.0 and slider.stepped(-100) == 0.0
    tokens = Slider(-1, 8192, 16, value=-1, integer=True)
    assert tokens.stepped(1) == 0 and tokens.stepped(2) == 16 and tokens.stepped(-1) == -1
    assert isinstance(tokens.stepped(1), int)
    with pytest.raises(ValueError):
        Slider(1, 1, 1)


# --- keyboard -----------------------------------------------------------------------------


async def test_keys_change_values_and_every_change_is_posted() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        assert app.slider("temperature").has_focus
        await pilot.press("right", "right", "left")
        assert app.panel.values.temperature == 0.75
        await pilot.press("pageup")  # ten steps
        assert app.panel.values.temperature == 1.25
        await pilot.press("shift+left")
        assert app.panel.values.temperature == 0.75
        await pilot.press("end")
        assert app.panel.values.temperature == 2.0
        await pilot.press("right")  # at the end: no change, no message
        await pilot.press("home")
        assert app.panel.values.temperature == 0.0

        await pilot.press("down")  # next row
        assert app.slider("top_k").has_focus
        await pilot.press("pagedown")
        await pilot.pause()
        assert app.panel.values.top_k == 40
        await pilot.press("up")
        assert app.slider("temperature").has_focus
        panel = app.panel

    temperatures = [m.values.temperature for m in app.changes]
    assert temperatures == [0.75, 0.8, 0.75, 1.25, 0.75, 2.0, 0.0, 0.0]
    last = app.changes[-1]
    assert last.values == Sampling.from_dict({"temperature": 0.0, "top_k": 40})
    assert last.overrides == {"temperature": 0.0, "top_k": 40}  # differs from the persona
    assert last.control is panel


async def test_typed_values_are_clamped_and_bad_ones_ignored() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("0", ".", "7", "3", "3")
        assert app.slider("temperature").typing == "0.733"
        assert "0.733" in screen_text(app)
        assert app.panel.values.temperature == 0.7  # not yet: Enter sets it
        await pilot.press("enter")
        assert app.panel.values.temperature == 0.733
        assert "0.733" in screen_text(app)

        await focus_row(app, pilot, "top_k")
        await pilot.press("9", "9", "9", "enter")
        assert app.panel.values.top_k == 200  # clamped to the range
        await pilot.press("-", "5", "enter")
        assert app.panel.values.top_k == 0
        await pilot.press("1", "2", "backspace", "enter")
        assert app.panel.values.top_k == 1

        await focus_row(app, pilot, "top_p")
        await pilot.press("1", ".", "2", ".", "3", "enter")  # not a number
        assert app.panel.values.top_p == 0.95
        await pilot.press("5", "escape")  # cancelled
        assert app.slider("top_p").typing == "" and app.panel.values.top_p == 0.95
        await pilot.press("0", ".", "5", "down")  # leaving the row keeps what was typed
        assert app.panel.values.top_p == 0.5

        await focus_row(app, pilot, "n_ctx")
        await pilot.press("1", "0", "0", "enter")
        assert app.panel.values.n_ctx == 256

    assert [m.values.top_k for m in app.changes if m.values.top_k != 50] == [200, 0, 1, 1, 1]
    assert app.changes[-1].values.n_ctx == 256
    assert isinstance(app.changes[-1].values.top_k, int)


async def test_reset_row_and_reset_all_go_back_to_the_persona() -> None:
    start = Sampling.from_dict({"temperature": 1.5, "top_k": 10, "seed": 7})
    app = PanelApp(values=start)
    async with app.run_test(size=SIZE) as pilot:
        assert app.row("temperature").has_class("-changed")
        assert "(0.7)" in screen_text(app)  # the persona's default, beside the value
        await pilot.press("r")
        assert app.panel.values.temperature == 0.7
        assert not app.row("temperature").has_class("-changed")
        await pilot.press("down", "delete")
        assert app.panel.values.top_k == 50
        assert app.changes[-1].overrides == {"seed": 7}

        await pilot.press("right", "R")  # reset all
        assert app.panel.values == PERSONA
        assert app.changes[-1].overrides == {}

        await pilot.press("left")
        await pilot.click("#sampling-reset-all")
        assert app.panel.values == PERSONA
        assert app.changes[-1].overrides == {}


async def test_save_as_persona_defaults_by_key_and_button() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("right", "P")
        await pilot.click("#sampling-save")
    assert len(app.saved) == 2
    assert all(saved.temperature == 0.75 for saved in app.saved)


# --- mouse ----------------------------------------------------------------------------------


async def test_click_and_drag_on_the_bar_set_the_value() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        slider = app.slider("temperature")
        bar = slider._bar_width()
        assert bar >= 20  # a usable bar in a 36-column panel
        await pilot.click(slider, offset=(0, 0))
        assert app.panel.values.temperature == 0.0
        await pilot.click(slider, offset=(bar - 1, 0))
        assert app.panel.values.temperature == 2.0
        await pilot.click(slider, offset=(bar // 2, 0))
        assert app.panel.values.temperature == slider.value_at(bar // 2)
        assert 0.8 <= app.panel.values.temperature <= 1.2
        await pilot.click(slider, offset=(bar + 2, 0))  # on the number: nothing happens
        assert app.panel.values.temperature == slider.value_at(bar // 2)

        await pilot.mouse_down(slider, offset=(2, 0))  # drag to the right
        await pilot.hover(slider, offset=(bar - 3, 0))
        await pilot.hover(slider, offset=(bar + 5, 0))  # past the end: the end
        await pilot.mouse_up(slider, offset=(bar + 5, 0))
        assert app.panel.values.temperature == 2.0
        assert app.changes[-1].values.temperature == 2.0

        await focus_row(app, pilot, "mirostat_mode")
        mirostat = app.slider("mirostat_mode")
        await pilot.click(mirostat, offset=(mirostat.size.width - 2, 0))
        assert app.panel.values.mirostat_mode == 2


# --- inactive settings ------------------------------------------------------------------


async def test_mirostat_makes_the_usual_samplers_inactive() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        replaced = ("temperature", "top_k", "top_p", "min_p", "typical_p")
        assert not any(app.row(name).has_class("-inactive") for name in replaced)
        assert app.row("mirostat_tau").has_class("-inactive")
        await focus_row(app, pilot, "mirostat_mode")
        await pilot.press("right")
        assert app.panel.values.mirostat_mode == 1
        assert all(app.row(name).has_class("-inactive") for name in replaced)
        assert not app.row("mirostat_tau").has_class("-inactive")
        assert not app.row("repeat_penalty").has_class("-inactive")
        await pilot.pause()
        assert app.slider("mirostat_mode").has_focus
        assert "v1" in screen_text(app)
        app.panel.focus_setting("top_k")
        await pilot.pause()
        assert "ignored while mirostat is on" in screen_text(app)
        await pilot.press("right")  # still editable, kept for later
        assert app.panel.values.top_k == 51
        assert app.changes[-1].overrides == {"mirostat_mode": 1, "top_k": 51}


async def test_settings_a_server_does_not_take_are_inactive() -> None:
    app = PanelApp(unsupported=["top_k", "typical_p"])
    async with app.run_test(size=SIZE) as pilot:
        assert app.row("top_k").has_class("-inactive")
        assert "not used by this server" in screen_text(app)
        app.panel.unsupported = frozenset({"min_p"})
        await pilot.pause()
        assert not app.row("top_k").has_class("-inactive")
        assert app.row("min_p").has_class("-inactive")
    assert app.changes == []


async def test_show_replaces_the_chat_without_posting() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        other_persona = Sampling(temperature=0.2)
        app.panel.show(Sampling(temperature=0.3, n_ctx=8192), other_persona)
        await pilot.pause()
        assert app.slider("temperature").value == 0.3
        assert app.slider("n_ctx").value == 8192
        assert "(0.2)" in screen_text(app)
        assert app.panel.overrides == {"temperature": 0.3, "n_ctx": 8192}
        assert app.changes == []
        await pilot.press("r")
        assert app.changes[-1].values == Sampling(temperature=0.2, n_ctx=8192)
        assert app.changes[-1].overrides == {"n_ctx": 8192}


# --- seed and layout --------------------------------------------------------------------


async def test_seed_is_random_or_fixed() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        await focus_row(app, pilot, "seed")
        assert isinstance(app.slider("seed"), SeedField)
        assert "[x] random" in screen_text(app)
        await pilot.press("4", "2", "enter")
        assert app.panel.values.seed == 42
        assert "[ ] random" in screen_text(app)
        await pilot.press("space")
        assert app.panel.values.seed == -1
        await pilot.press("space")  # back to the last fixed seed
        assert app.panel.values.seed == 42
        await pilot.press("left")
        assert app.panel.values.seed == 41
        await pilot.click(app.slider("seed"), offset=(1, 0))  # the check box
        assert app.panel.values.seed == -1
    assert app.changes[-1].overrides == {}


async def test_every_setting_is_reachable_in_a_narrow_panel() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        assert app.panel.outer_size.width == 36
        rows = [app.row(n) for n in SPEC]  # SPEC order, the word settings too
        assert list(app.query(SettingRow).results()) == rows
        assert "seed" not in screen_text(app)  # below the fold at 80x24
        await pilot.press(*["down"] * (len(SPEC) + 2))
        await pilot.pause()
        last = list(SPEC)[-1]
        assert app.slider(last).has_focus  # the last row stays focused
        screen = screen_text(app)
        assert last in screen  # scrolled into view
        assert "temperature" not in screen


# --- reasoning: word settings and the thinking budget ------------------------------------------


async def test_reasoning_is_chosen_with_the_keys_and_the_mouse() -> None:
    app = PanelApp()
    async with app.run_test(size=SIZE) as pilot:
        await focus_row(app, pilot, "reasoning")
        field = app.slider("reasoning")
        assert isinstance(field, ChoiceField) and field.word() == "auto"
        assert "auto" in screen_text(app) and "off" in screen_text(app)
        await pilot.press("right")
        assert app.panel.values.reasoning == "on"
        assert app.changes[-1].overrides == {"reasoning": "on"}
        await pilot.press("right")
        assert app.panel.values.reasoning == "off"
        await pilot.click(field, offset=(1, 0))  # the first segment
        assert app.panel.values.reasoning == "auto"
        assert app.changes[-1].overrides == {}
        await focus_row(app, pilot, "reasoning_effort")
        await pilot.press("end")
        assert app.panel.values.reasoning_effort == "high"
        await focus_row(app, pilot, "reasoning_budget")
        await pilot.press("right", "right")
        assert app.panel.values.reasoning_budget == 64  # -1, then 0, then steps of 64
        await pilot.press("r")  # back to the persona's
        assert app.panel.values.reasoning_budget == -1


async def test_effort_and_budget_are_dimmed_while_reasoning_is_off() -> None:
    app = PanelApp(values=Sampling.from_dict({"reasoning": "off"}, PERSONA))
    async with app.run_test(size=SIZE) as pilot:
        await focus_row(app, pilot, "reasoning_budget")
        assert app.row("reasoning_budget").has_class("-inactive")
        assert app.row("reasoning_effort").has_class("-inactive")
        assert "ignored while reasoning is off" in screen_text(app)
        await focus_row(app, pilot, "reasoning")
        await pilot.press("home")
        await pilot.pause()
        assert not app.row("reasoning_effort").has_class("-inactive")


def test_a_word_setting_is_shown_as_its_word() -> None:
    assert shown_value("reasoning", "off") == "off"
    reasons = ignored_settings(Sampling.from_dict({"reasoning": "off"}))
    assert set(reasons) >= {"reasoning_effort", "reasoning_budget"}
    assert "reasoning_effort" not in ignored_settings(Sampling())
