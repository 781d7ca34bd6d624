"""A one-line slider for numbers: a bar with a thumb, and the value beside it.

Textual has no slider, and ``textual-slider`` (0.2) only knows integer
steps, draws three rows and posts ``Changed`` when the value is set from
code, which would echo every programmatic update back as a user edit. This
one takes float steps, types its values, fits one row, and posts
:class:`Slider.Changed` only for what the user did (keys, typing, mouse).

Keys: left/right one step, page-up/page-down or shift+left/right ten steps,
home/end the ends of the range; typing a number then Enter sets that value
(Escape cancels). Mouse: click on the bar sets the value there; drag to slide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

Number = int | float

# What may start or continue a typed value.
TYPING_CHARS = frozenset("0123456789.-")
PAGE = 10


def decimals_of(step: float) -> int:
    """How many decimals a value on a ``step`` grid needs (0.05 -> 2, 16 -> 0)."""
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".", 1)[1]) if "." in text else 0


def format_number(value: Number, decimals: int, integer: bool) -> str:
    """The value as shown: as many decimals as the step, more for a finer typed value."""
    if integer:
        return str(int(value))
    text = f"{value:.{decimals}f}"
    if float(text) != value:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text


class Slider(Widget, can_focus=True):
    """A number in ``[low, high]`` on a ``step`` grid, edited with keys, typing or mouse.

    With ``labels`` it becomes a choice between ``len(labels)`` values
    (``low``, ``low + step``, ...) drawn as segments instead of a bar.
    Setting :attr:`value` from code posts nothing.
    """

    DEFAULT_CSS = """
    Slider { height: 1; width: 1fr; }
    Slider > .slider--empty { color: $foreground 30%; }
    Slider > .slider--filled { color: $accent 70%; }
    Slider > .slider--thumb { color: $accent; text-style: bold; }
    Slider:focus > .slider--thumb { color: $text; background: $accent; }
    Slider > .slider--choice { color: $foreground 60%; }
    Slider > .slider--chosen { color: $text; background: $accent 60%; text-style: bold; }
    Slider:focus > .slider--chosen { background: $accent; }
    Slider > .slider--value { text-style: bold; }
    Slider > .slider--typing { background: $boost; text-style: underline; }
    """

    COMPONENT_CLASSES = {
        "slider--empty",
        "slider--filled",
        "slider--thumb",
        "slider--choice",
        "slider--chosen",
        "slider--value",
        "slider--typing",
    }

    BINDINGS = [
        Binding("left", "step(-1)", "Less", show=False),
        Binding("right", "step(1)", "More", show=False),
        Binding("pagedown,shift+left", f"step(-{PAGE})", "Much less", show=False),
        Binding("pageup,shift+right", f"step({PAGE})", "Much more", show=False),
        Binding("home", "to_low", "Minimum", show=False),
        Binding("end", "to_high", "Maximum", show=False),
        Binding("enter", "commit", "Set typed value", show=False),
    ]

    draggable = True
    """Whether dragging after a click keeps setting the value (False: a click only)."""

    value: reactive[Number] = reactive(0.0)
    typing: reactive[str] = reactive("")
    """The number being typed (shown in place of the value until Enter)."""

    class Changed(Message):
        """The user changed the value (never sent for a value set from code)."""

        def __init__(self, slider: Slider, value: Number) -> None:
            super().__init__()
            self.slider = slider
            self.value = value

        @property
        def control(self) -> Slider:
            return self.slider

    def __init__(
        self,
        low: float,
        high: float,
        step: float,
        *,
        value: Number | None = None,
        integer: bool = False,
        coerce: Callable[[float], Number] | None = None,
        labels: Sequence[str] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        """``coerce`` (e.g. ``functools.partial(sampling.coerce, name)``) gets the last
        word on every value the user makes: it may clamp, round, or raise ValueError."""
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        if not low < high or step <= 0:
            raise ValueError(f"bad slider range {low}..{high} step {step}")
        self.low = int(low) if integer else float(low)
        self.high = int(high) if integer else float(high)
        self.step = step
        self.integer = integer
        self.decimals = 0 if integer else decimals_of(step)
        self.labels = tuple(labels) if labels else None
        self._coerce = coerce
        self._dragging = False
        self.set_reactive(Slider.value, self.validate_value(low if value is None else value))

    # --- values -------------------------------------------------------------------------

    def validate_value(self, value: Number) -> Number:
        """Clamp to the range and give the value its type, whoever sets it."""
        number = min(max(float(value), self.low), self.high)
        if self.integer:
            return int(round(number))
        return round(number, max(self.decimals, 6))

    def format(self, value: Number) -> str:
        return format_number(value, self.decimals, self.integer)

    @property
    def value_width(self) -> int:
        """Columns kept for the value, so that the bar does not jump as it changes."""
        if self.labels:
            return 0
        widest = max(len(self.format(self.low)), len(self.format(self.high)))
        return max(widest, len(self.format(self.value)))

    def stepped(self, steps: int) -> Number:
        """The value ``steps`` grid points away; an off-grid value first snaps to the grid."""
        position = self.value / self.step
        base = math.floor(position + 1e-9) if steps > 0 else math.ceil(position - 1e-9)
        return self.validate_value((base + steps) * self.step)

    def set_by_user(self, value: Number) -> None:
        """Set ``value`` as the user's edit: coerce it, and post Changed if it differs."""
        if self._coerce is not None:
            value = self._coerce(value)
        value = self.validate_value(value)
        self.typing = ""
        if value != self.value:
            self.value = value
            self.post_message(self.Changed(self, value))

    # --- keys ---------------------------------------------------------------------------

    def action_step(self, steps: int) -> None:
        self.typing = ""
        self.set_by_user(self.stepped(steps))

    def action_to_low(self) -> None:
        self.set_by_user(self.low)

    def action_to_high(self) -> None:
        self.set_by_user(self.high)

    def action_commit(self) -> None:
        """Set the typed number; a bell (and the old value) if it is not a number."""
        if not self.typing:
            return
        try:
            self.set_by_user(float(self.typing))
        except ValueError:
            self.typing = ""
            self.app.bell()

    def on_key(self, event: events.Key) -> None:
        """Digits start or extend a typed value; Backspace and Escape edit it."""
        if event.character and event.character in TYPING_CHARS:
            self.typing += event.character
        elif self.typing and event.key == "backspace":
            self.typing = self.typing[:-1]
        elif self.typing and event.key == "escape":
            self.typing = ""
        else:
            return
        event.stop()
        event.prevent_default()

    def on_blur(self) -> None:
        """Leaving with a half-typed value keeps it, as if Enter had been pressed."""
        self.action_commit()

    # --- mouse --------------------------------------------------------------------------

    def _bar_width(self) -> int:
        width = self.content_size.width
        value_width = max(self.value_width, len(self.typing))
        return max(width - value_width - (1 if value_width else 0), 1)

    def value_at(self, x: int) -> Number | None:
        """The value under column ``x`` of the bar (None: not on the bar)."""
        width = self._bar_width()
        if not 0 <= x < width:
            return None
        if self.labels:
            index = min(x * len(self.labels) // width, len(self.labels) - 1)
            return self.validate_value(self.low + index * self.step)
        fraction = x / (width - 1) if width > 1 else 0.0
        raw = self.low + fraction * (self.high - self.low)
        if x >= width - 1:
            return self.high
        return self.validate_value(round(raw / self.step) * self.step)

    def _on_mouse_down(self, event: events.MouseDown) -> None:
        offset = event.get_content_offset(self)
        if event.button != 1 or offset is None:
            return
        value = self.value_at(offset.x)
        if value is None:
            return
        event.stop()
        self.set_by_user(value)
        if self.draggable:
            self._dragging = True
            self.capture_mouse()

    def _on_mouse_move(self, event: events.MouseMove) -> None:
        if not self._dragging:
            return
        x = event.get_content_offset_capture(self).x
        value = self.value_at(min(max(x, 0), self._bar_width() - 1))
        if value is not None:
            self.set_by_user(value)
        event.stop()

    def _on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()
            event.stop()

    def _on_mouse_release(self, event: events.MouseRelease) -> None:
        self._dragging = False

    # --- drawing ------------------------------------------------------------------------

    def render_bar(self, width: int) -> Text:
        """The bar (or the choices) in ``width`` columns."""
        if self.labels:
            return self._render_choices(width)
        span = self.high - self.low
        fraction = (self.value - self.low) / span if span else 0.0
        thumb = round(fraction * (width - 1))
        bar = Text(no_wrap=True)
        bar.append("━" * thumb, self.get_component_rich_style("slider--filled"))
        bar.append("●", self.get_component_rich_style("slider--thumb"))
        bar.append("─" * (width - thumb - 1), self.get_component_rich_style("slider--empty"))
        return bar

    def _render_choices(self, width: int) -> Text:
        assert self.labels
        count = len(self.labels)
        chosen = round((self.value - self.low) / self.step)
        text = Text(no_wrap=True)
        for index, label in enumerate(self.labels):
            cell = width * (index + 1) // count - width * index // count
            style = "slider--chosen" if index == chosen else "slider--choice"
            text.append(label[:cell].center(cell), self.get_component_rich_style(style))
        return text

    def render_value(self) -> Text:
        """The value column: the typed text while typing, else the value."""
        if self.typing:
            return Text(
                self.typing.rjust(self.value_width), self.get_component_rich_style("slider--typing")
            )
        if self.labels:
            return Text()
        return Text(
            self.format(self.value).rjust(self.value_width),
            self.get_component_rich_style("slider--value"),
        )

    def render(self) -> Text:
        text = self.render_bar(self._bar_width())
        value = self.render_value()
        if value.cell_len:
            text.append(" ")
            text.append_text(value)
        text.no_wrap = True
        text.overflow = "crop"
        return text
