"""Fewer bytes to the terminal: only the pieces of lines that changed are written.

Why: Textual repaints a widget's whole region when it refreshes, so every
frame of a streaming answer rewrote all the lines of its live tail (and the
"who" line, and the lines around it) although only the last one or two had
changed. Over SSH those bytes are the cost users feel: a 600-token answer
wrote ~1 MB. Here each partial update (Textual's ``ChopsUpdate``: pieces of
lines, each a "chop" between two widgets' edges) is compared, piece by
piece, with what was last written at the same place: a piece that would
write the same characters in the same colours again is left out, and of a
piece that changed only the cells that differ are written (a line that grew
by a word costs that word). Colour codes are written once per run of the same
colours, not around every segment. A full update (a resize, a new screen),
a resize and a resume after Ctrl+Z forget what was written.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style
from textual._compositor import ChopsUpdate, LayoutUpdate
from textual.app import App
from textual.strip import Strip

from tui.ui.terminal import output_backlog

HOLD_RECHECK = 0.01  # seconds: a held paint looks again this often
HOLD_BACKLOG = 0  # characters the terminal has not taken yet that hold a streaming paint


def paint_held(app: App[object]) -> bool:
    """Should a streaming answer wait before it repaints?

    While the terminal has not taken what was written (a slow SSH link), a new
    frame would only queue behind the old ones, and a key's echo behind both:
    the answer catches up in one frame once the link drains. While a key is
    being handled, its echo goes first.
    """
    return (
        output_backlog(getattr(app, "_driver", None)) > HOLD_BACKLOG
        or getattr(app, "input_pending", 0) > 0
    )


# What is on the terminal now, as written: per line, per chop start: (end, text, strip).
Painted = dict[int, dict[int, tuple[int, str, Strip]]]


class DiffedChops(ChopsUpdate):
    """A ``ChopsUpdate`` that leaves out the chops the terminal already shows."""

    def __init__(self, update: ChopsUpdate, painted: Painted) -> None:
        super().__init__(update.chops, update.spans, update.chop_ends)
        self.painted = painted
        self.skipped = 0  # chops left out (for tests and benchmarks)

    def render_segments(self, console: Console) -> str:
        out: list[str] = []
        for y, x1, x2 in self.spans:
            line = self.chops[y]
            for end, (x, strip) in zip(self.chop_ends[y], line.items(), strict=False):
                if strip is None or x > x2 or end <= x1:
                    continue
                if not (x2 > x >= x1 and end <= x2):
                    strip = strip.crop(0, min(end, x2) - x)
                    end = min(end, x2)
                self._put(out, console, y, x, end, strip)
        return "".join(out)

    def _put(
        self, out: list[str], console: Console, y: int, x: int, end: int, strip: Strip
    ) -> None:
        row = self.painted.setdefault(y, {})
        before = row.get(x)
        if before is not None and before[0] == end and before[2] is strip:
            self.skipped += 1  # the very strip written last time
            return
        text = render(strip, console)
        if before is not None and before[:2] == (end, text):
            self.skipped += 1
            return
        for start in [s for s, (e, _, _) in row.items() if s < end and e > x]:
            del row[start]  # overwritten, wholly or in part
        row[x] = (end, text, strip)
        if before is not None and before[0] == end:
            changed = _changed_cells(before[2], strip)
            if changed is not None:  # only the cells that differ (a line that grew)
                first, last = changed
                out.append(f"\x1b[{y + 1};{x + first + 1}H")
                out.append(render(strip.crop(first, last), console))
                return
        out.append(f"\x1b[{y + 1};{x + 1}H")
        out.append(text)


def render(strip: Strip, console: Console) -> str:
    """The strip as terminal sequences, a colour change only where the colours change.

    Textual writes every segment as ``ESC[colours m text ESC[0m``, and a line of
    highlighted code is dozens of segments, most of them in the same colours.
    Like Textual's, what is written leaves the colours reset at its end.
    """
    color_system = console._color_system or ColorSystem.TRUECOLOR
    out: list[str] = []
    current = ""  # the colours in effect: reset
    for segment in strip:
        style = segment.style
        if segment.control or (style is not None and style._link):
            return strip.render(console)  # rare: Textual's own way
        ansi = ""
        if style is not None:
            ansi = style._ansi
            if ansi is None:
                ansi = Strip.render_ansi(style, color_system)
        if ansi != current:
            out.append(f"\x1b[0;{ansi}m" if current and ansi else f"\x1b[{ansi or 0}m")
            current = ansi
        out.append(segment.text)
    if current:
        out.append("\x1b[0m")
    return "".join(out)


def _cells(strip: Strip) -> list[tuple[str, Style | None]] | None:
    """One entry per cell (a wide character's second cell is ``("", None)``), or None
    where a character's width is not plain 1 or 2 (combining marks, emoji sequences)."""
    cells: list[tuple[str, Style | None]] = []
    for segment in strip:
        if segment.control:
            return None
        style = segment.style
        if style is not None and style._meta:  # mouse offsets: not what the cell shows
            style = style.clear_meta_and_links()
        for char in segment.text:
            width = cell_len(char)
            if width == 1:
                cells.append((char, style))
            elif width == 2:
                cells.append((char, style))
                cells.append(("", None))
            else:
                return None
    return cells


def _changed_cells(old: Strip, new: Strip) -> tuple[int, int] | None:
    """The cells ``[first, last)`` where ``new`` differs from ``old`` (same width), on
    whole characters; None if they cannot be compared cell by cell."""
    before, after = _cells(old), _cells(new)
    if before is None or after is None or len(before) != len(after) or not after:
        return None
    first = next((i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b), None)
    if first is None:
        return None
    last = len(after)
    while last > first and before[last - 1] == after[last - 1]:
        last -= 1
    if after[first] == ("", None) or before[first] == ("", None):
        first -= 1  # never start in the middle of a wide character
    if last < len(after) and (after[last] == ("", None) or before[last] == ("", None)):
        last += 1  # nor end there
    return max(first, 0), last


class LineDiffDisplay(App[None]):
    """The app's display step with :class:`DiffedChops` (a part of ``LlamaTUI``)."""

    _wire_painted: Painted
    chops_skipped: int

    def _display(self, screen, renderable):  # type: ignore[no-untyped-def]
        painted = self.__dict__.setdefault("_wire_painted", {})
        if isinstance(renderable, LayoutUpdate):
            painted.clear()  # everything is written again
        elif isinstance(renderable, ChopsUpdate) and not self.is_inline:
            renderable = DiffedChops(renderable, painted)
        super()._display(screen, renderable)
        if isinstance(renderable, DiffedChops):
            self.chops_skipped = getattr(self, "chops_skipped", 0) + renderable.skipped

    def _on_resize(self, event: object) -> None:
        """(Textual calls each class's handler in turn: App's does the resize.)"""
        self.__dict__.setdefault("_wire_painted", {}).clear()  # a full repaint follows

    def _on_driver_signal_resume(self, event: object) -> None:
        """Back from Ctrl+Z: the terminal shows whatever the shell left on it."""
        self.__dict__.setdefault("_wire_painted", {}).clear()
