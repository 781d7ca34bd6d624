"""Stop strings (llama.cpp's reverse prompt) over a stream of text pieces.

The model's output arrives a token at a time, so a stop string such as
``"\\nUser:"`` can be split across several pieces. :class:`StopScanner` holds
back any tail that might be the start of a stop string, so that neither the
stop string nor a prefix of it is ever shown or stored.
"""

from __future__ import annotations


class StopScanner:
    """Feed text pieces in; get back only the text that is safe to show."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self._held = ""
        self.stopped_on: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_on is not None

    @property
    def held(self) -> str:
        """Text held back because it may be the start of a stop string."""
        return self._held

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that can be emitted now."""
        if self.stopped:
            return ""
        text = self._held + piece
        cut = _first_stop(text, self.stops)
        if cut is not None:
            index, stop = cut
            self.stopped_on = stop
            self._held = ""
            return text[:index]
        keep = _longest_partial_suffix(text, self.stops)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        """The stream ended without a stop string: release what was held back.

        A held tail that is the start of a *line-start* stop (one beginning
        with a newline, like ``"\\nUser:"``) is dropped instead: the model
        was about to write the user's name, and an answer ending in
        ``"\\nUs"`` is noise. Any other partial match (``"#"`` of ``"###"``)
        is ordinary text and is released.
        """
        held, self._held = ("" if self.stopped else self._held), ""
        if held.startswith("\n") and any(
            s.startswith("\n") and s.startswith(held) for s in self.stops
        ):
            return ""
        return held


def _first_stop(text: str, stops: list[str]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for stop in stops:
        index = text.find(stop)
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    return best


def _longest_partial_suffix(text: str, stops: list[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop."""
    longest = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:length]):
                longest = length
                break
    return longest


def transcript_stops(user_name: str, extra: list[str] | None = None) -> list[str]:
    """The reverse prompt and its variants for a transcript persona.

    ``User:`` at the start of a line ends the answer wherever it appears; a
    bare ``User:`` mid-line too (small models often omit the newline, and
    llama.cpp's ``-r "User:"`` matches anywhere in the output's tail).
    """
    stops = [f"\n{user_name}:", f"{user_name}:"]
    return stops + list(extra or [])
