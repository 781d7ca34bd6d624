"""Personas as the text a person edits, and back: examples, stop strings, numbers, ids.

The persona editor (``tui/ui/screens/persona_editor.py``) shows these forms in
its text boxes; they are plain formats, kept here so that they can be tested
and reused without Textual. Every parser's ValueError is a message for people.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable

from tui.core.personas import (
    Example,
    PersonaError,
    PersonaLibrary,
    PersonaProblem,
    load_persona_file,
    slugify,
)
from tui.core.sampling import SPEC, Range, coerce, out_of_range

_ROLE_LINE = re.compile(r"(user|ai):[ ]?(.*)\Z", re.IGNORECASE)


def examples_to_text(examples: Iterable[Example]) -> str:
    """Examples as editable text: "User: …" / "AI: …" blocks separated by blank lines.

    Continuation lines that would read as a new block (or start with a
    backslash) get a leading backslash, so that parsing gives back exactly
    the same texts.
    """
    return "\n\n".join(
        _block_to_text("User", e.user) + "\n" + _block_to_text("AI", e.ai) for e in examples
    )


def _block_to_text(prefix: str, text: str) -> str:
    first, *rest = text.split("\n")
    escaped = ["\\" + line if _needs_escape(line) else line for line in rest]
    return "\n".join([f"{prefix}: {first}", *escaped])


def _needs_escape(line: str) -> bool:
    return line.startswith("\\") or _ROLE_LINE.match(line) is not None


def parse_examples_text(text: str) -> list[Example]:
    """Read the format of :func:`examples_to_text`; ValueError names the line at fault."""
    blocks: list[tuple[str, int, list[str]]] = []  # (role, line number, lines)
    for number, line in enumerate(text.split("\n"), 1):
        match = _ROLE_LINE.match(line)
        if match:
            blocks.append((match.group(1).lower(), number, [match.group(2)]))
        elif blocks:
            blocks[-1][2].append(line[1:] if line.startswith("\\") else line)
        elif line.strip():
            raise ValueError(f'line {number}: an example starts with a line "User: …"')
    examples = []
    for index in range(0, len(blocks), 2):
        role, number, lines = blocks[index]
        if role != "user":
            raise ValueError(f'line {number}: "AI:" without a "User:" line before it')
        if index + 1 >= len(blocks) or blocks[index + 1][0] != "ai":
            raise ValueError(f'line {number}: this "User:" has no "AI:" answer after it')
        examples.append(Example(user=_block_text(lines), ai=_block_text(blocks[index + 1][2])))
    return examples


def _block_text(lines: list[str]) -> str:
    """The text of one block: blank lines at its end separate blocks, not content."""
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > 1 and not lines[0]:
        lines.pop(0)  # "User:" alone on its line, the text below it
    return "\n".join(lines)


_STOP_ESCAPE = re.compile(r"\\(.)")
_STOP_CHARS = {"n": "\n", "t": "\t", "\\": "\\"}


def stops_to_text(stops: Iterable[str]) -> str:
    """Stop strings one per line, with line breaks, tabs and backslashes escaped."""
    escape = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t"})
    return "\n".join(stop.translate(escape) for stop in stops)


def parse_stops_text(text: str) -> list[str]:
    """The inverse of :func:`stops_to_text`; blank lines are skipped."""
    unescape = lambda m: _STOP_CHARS.get(m.group(1), m.group(0))  # noqa: E731
    return [_STOP_ESCAPE.sub(unescape, line) for line in text.split("\n") if line.strip()]


def plain_number(value: float | int | str) -> str:
    """A number as people write it: 2 rather than 2.0, full precision otherwise.

    A word setting's value (``reasoning = "on"``) is shown as it is.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def parse_sampling_value(key: str, raw: str) -> float | int | str | None:
    """One sampling field of the form: None when empty (the default), else a checked number."""
    raw = raw.strip()
    if not raw:
        return None
    _default, rng = SPEC[key]
    if not isinstance(rng, Range):
        return coerce(key, raw)  # a word: ValueError names the words it may be
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{key} must be a number, not {raw!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} must be a finite number")
    if rng.integer and not number.is_integer():
        raise ValueError(f"{key} must be a whole number")
    if out_of_range(key, number):
        raise ValueError(
            f"{key} must be between {plain_number(rng.low)} and {plain_number(rng.high)}"
        )
    return coerce(key, number)


def unique_id(name: str, taken: Collection[str]) -> str:
    """A file stem for a new persona that neither overrides nor overwrites another."""
    base = slugify(name)
    candidate, number = base, 2
    while candidate in taken:
        candidate = f"{base[:60]}-{number}"
        number += 1
    return candidate


def broken_files(library: PersonaLibrary) -> list[PersonaProblem]:
    """The problems of files that did not load (warnings of loaded files are not)."""
    loaded = {p.path for p in library.personas.values()}
    broken, seen = [], set()
    for problem in library.problems:
        if problem.path in loaded or problem.path in seen:
            continue
        seen.add(problem.path)
        try:  # a file with warnings that a user file overrides: it loads, it is not broken
            load_persona_file(problem.path)
        except PersonaError:
            broken.append(problem)
    return broken
