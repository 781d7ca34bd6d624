"""Text from models, files and pastes is data: make it safe for a terminal.

Escape sequences (ANSI colours, ``ESC [ 2J`` screen clears, ``ESC ] 52``
clipboard writes) and other control characters must never reach the
terminal. Everything except newline and tab is removed; a lone carriage
return becomes a newline.
"""

from __future__ import annotations

import re

# ESC-introduced sequences first (so their parameters go too), then any
# remaining C0/C1 control character except \t and \n.
_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]?"  # other two-byte escapes, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """``text`` without escape sequences or control characters (\\n and \\t kept)."""
    if not text.isprintable():
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _CONTROLS.sub("", _ESCAPES.sub("", text))
    return text
