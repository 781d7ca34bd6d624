"""The base of every dialog: centred over the app, a framed box, Esc closes it."""

from __future__ import annotations

from typing import TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen

T = TypeVar("T")


class Modal(ModalScreen[T]):
    """A dialog whose content is one ``Vertical`` box; Esc dismisses it with None.

    Subclasses give the box its size in ``tui/ui/app.tcss`` and may bind Esc to
    something else (a confirmation answers "no"). The look shared by every
    dialog lives here, so that a dialog pushed by any app looks like one.
    """

    DEFAULT_CSS = """
    Modal { align: center middle; }
    Modal > Vertical {
        height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    Modal OptionList { border: none; }
    Modal .hint { color: $text-muted; }
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
