"""Text from models, servers, files and databases is data: make it safe for a terminal.

Escape sequences (ANSI colours, ``ESC [ 2J`` screen clears, ``ESC ] 52``
clipboard writes, ``ESC [ c`` queries the terminal answers by typing into
the app), their 8-bit C1 forms (``\\x9b``, ``\\x9d``) and every other control
character must never reach the terminal. Everything except newline and tab
is removed; a lone carriage return becomes a newline. The payload of a
string sequence (OSC, DCS, SOS, PM, APC: a clipboard's contents, a title) is
removed with it.

A stream (an answer arriving piece by piece) goes through one
:class:`StreamCleaner`, which remembers a sequence cut between two pieces
(``ESC`` at the end of one, ``]52;c;…`` at the start of the next), so that
cleaning the pieces one by one gives exactly what cleaning the whole text
gives.
"""

from __future__ import annotations

import re
from typing import Any

# Anything that needs a look: every C0/C1 control except \t and \n.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A sequence (or control), in the order a terminal would read it.
_SEQUENCE = re.compile(
    r"(?P<string>(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])"  # OSC, DCS, SOS, PM, APC
    r"[^\x07\x1b\x9c\x18\x1a]*(?P<end>[\x07\x9c\x18\x1a]|\x1b\\)?)"  # payload, BEL or ST
    r"|(?P<csi>(?:\x1b\[|\x9b)[0-?]*[ -/]*)(?P<final>[@-~])?"  # CSI, 7- or 8-bit
    r"|(?P<esc>\x1b[ -/]*)(?P<esc_final>[0-~])?"  # other escapes, or a lone ESC
    r"|(?P<cr>\r\n?)"  # line ends: \r\n and \r become \n
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # any other control character
)
# A string sequence ends with BEL or ST; CAN and SUB cancel it; ESC starts another.
_STRING_END = re.compile(r"[\x07\x9c\x18\x1a]|(?=\x1b)")
_MAX_HELD = 64  # an unfinished CSI longer than this is dropped, not held


class StreamCleaner:
    """Cleans a text that arrives in pieces; one per stream (e.g. per answer)."""

    def __init__(self) -> None:
        self._held = ""  # an unfinished sequence (or \r) at the end of the last piece
        self._in_string = False  # inside an OSC/DCS/... payload, which is dropped

    def feed(self, piece: str) -> str:
        """The safe text of ``piece`` (what is unfinished waits for the next piece)."""
        if self._in_string:
            end = _STRING_END.search(piece)
            if end is None:
                return ""
            self._in_string = False
            piece = piece[end.end() :]
        if self._held:
            piece, self._held = self._held + piece, ""
        if not _CONTROL.search(piece):
            return piece
        out: list[str] = []
        last = 0
        for match in _SEQUENCE.finditer(piece):
            out.append(piece[last : match.start()])
            last = match.end()
            if match.group("cr"):
                if match.group("cr") == "\r" and last == len(piece):
                    self._held = "\r"  # a \n may follow in the next piece
                else:
                    out.append("\n")
            elif last == len(piece) and self._unfinished(match):
                if match.group("string"):
                    self._in_string = True
                else:
                    held = match.group(0)
                    self._held = held if len(held) <= _MAX_HELD else ""
        out.append(piece[last:])
        return "".join(out)

    @staticmethod
    def _unfinished(match: re.Match[str]) -> bool:
        if match.group("string"):
            return match.group("end") is None
        if match.group("csi"):
            return match.group("final") is None
        return bool(match.group("esc")) and match.group("esc_final") is None

    def finish(self) -> str:
        """The end of the stream: what was held back, cleaned (a \\r becomes \\n)."""
        held = self._held
        self._held, self._in_string = "", False
        return "\n" if held == "\r" else ""


def clean_text(text: str) -> str:
    """``text`` without escape sequences or control characters (\\n and \\t kept)."""
    if not _CONTROL.search(text):
        return text
    cleaner = StreamCleaner()
    return cleaner.feed(text) + cleaner.finish()


def clean_line(text: str) -> str:
    """``text`` cleaned and on one line (names, titles, ids in lists and status lines)."""
    return " ".join(clean_text(text).split())


def clean_data(value: Any) -> Any:
    """Every string in a JSON-like value cleaned (dict keys too); other values as they are."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_data(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_data(v) for k, v in value.items()}
    return value
