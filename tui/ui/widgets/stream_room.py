"""Room to grow: a streaming answer keeps blank rows below its text, half a pane at a time.

Why: a pane that follows an answer scrolled one row for every new line, and a
scroll changes every row of the pane, so the terminal was sent the whole pane
again for each line (nine tenths of the bytes a streaming answer wrote; over
SSH, ~250 bytes per answer character). With room below the text, the answer
grows into rows that are already on screen (only the changed line is
written) and the pane scrolls half a page at a time: a whole-pane repaint
every half page instead of every line. The room goes when the answer ends.
"""

from __future__ import annotations

from textual.containers import ScrollableContainer
from textual.geometry import Size
from textual.widget import Widget


class RoomToGrow(Widget):
    """A container whose height grows in steps of half its scrolling pane, never row by row."""

    room_steps = True  # off: the plain height (tests compare both)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._room = 0  # the height reported: text and blank rows below it

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        height = super().get_content_height(container, viewport, width)
        if not self.room_steps:
            return height
        if height > self._room:
            self._room = height + self._step(viewport)
        return self._room

    def _step(self, viewport: Size) -> int:
        """Half the pane the answer scrolls in (a quarter of the screen if none)."""
        for ancestor in self.ancestors:
            if isinstance(ancestor, ScrollableContainer):
                pane = ancestor.scrollable_content_region.height
                if pane > 2:
                    return pane // 2
        return max(viewport.height // 4, 1)
