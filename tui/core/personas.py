"""Personas: a prompt plus sampling defaults, one TOML file each.

Bundled personas ship read-only inside the package; the user's own live in
``<config dir>/personas`` and override a bundled one with the same file name.
Files are read with :mod:`tomllib` and written with :mod:`tomli_w`. A broken
file never stops the app: :func:`load_library` returns it as a
:class:`PersonaProblem` naming the file, the line and the reason.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from tui.core import paths
from tui.core.sampling import SPEC, Sampling, coerce, is_choice, out_of_range
from tui.core.sanitize import clean_text

MODES = ("auto", "chat", "transcript")
DEFAULT_PERSONA = "assistant"

_TEXT_KEYS = ("name", "description", "ai_name", "user_name", "mode", "system", "greeting", "model")
KNOWN_KEYS = frozenset(_TEXT_KEYS) | {"stop", "examples", "sampling"}


@dataclass
class Example:
    """One few-shot exchange, rendered as a user turn and an AI turn."""

    user: str
    ai: str


@dataclass
class Persona:
    """A persona as read from (or about to be written to) a TOML file."""

    id: str
    name: str
    description: str = ""
    ai_name: str = "Assistant"
    user_name: str = "User"
    mode: str = "auto"
    system: str = ""
    examples: list[Example] = field(default_factory=list)
    greeting: str = ""
    stop: list[str] = field(default_factory=list)
    sampling: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    path: Path | None = None
    bundled: bool = False
    # Keys this version does not know: kept so that re-saving loses nothing.
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def sampling_defaults(self) -> Sampling:
        """The persona's sampling values over llama.cpp's defaults."""
        return Sampling.from_dict(self.sampling)

    def fill(self, text: str, now: datetime | None = None) -> str:
        """Substitute the placeholders in ``text``.

        Plain string replacement, never evaluation: ``{{user}}``, ``{{ai}}``
        (also ``{{char}}``), ``{{date}}``, ``{{time}}``, ``{{year}}`` and
        ``{{datetime}}``. Unknown ``{{...}}`` are left as they are.
        """
        now = now or datetime.now()
        values = {
            "user": self.user_name,
            "ai": self.ai_name,
            "char": self.ai_name,
            "date": now.strftime("%Y-%m-%d"),
            "time": now.strftime("%H:%M"),
            "year": now.strftime("%Y"),
            "datetime": now.strftime("%Y-%m-%d %H:%M"),
        }
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1).lower(), m.group(0)), text)

    def to_toml_dict(self) -> dict[str, Any]:
        """The file contents, in a stable, readable key order."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "ai_name": self.ai_name,
            "user_name": self.user_name,
            "mode": self.mode,
        }
        if self.model:
            out["model"] = self.model
        out["system"] = self.system
        if self.greeting:
            out["greeting"] = self.greeting
        if self.stop:
            out["stop"] = list(self.stop)
        out.update(self.extra)
        if self.sampling:
            out["sampling"] = dict(self.sampling)
        if self.examples:
            out["examples"] = [{"user": e.user, "ai": e.ai} for e in self.examples]
        return out


@dataclass
class PersonaProblem:
    """A persona file that could not be loaded, and why (for people)."""

    path: Path
    reason: str
    line: int | None = None

    def __post_init__(self) -> None:
        self.reason = clean_text(self.reason)  # it may quote a key from the file

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return clean_text(f"{where}: {self.reason}")  # a file name or key may hold escapes


class PersonaError(Exception):
    """A persona file is unusable; ``problem`` says which and why."""

    def __init__(self, problem: PersonaProblem):
        super().__init__(str(problem))
        self.problem = problem


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def slugify(name: str) -> str:
    """A safe file stem for a persona name: no separators, no dots, no ``..``."""
    slug = _SLUG_UNSAFE.sub("-", name.strip().lower()).strip("-_")
    return slug[:64] or "persona"


def parse_persona(data: dict[str, Any], persona_id: str, path: Path | None = None) -> Persona:
    """Validate the TOML table of one persona; raises ValueError with a reason.

    A persona file may come from anywhere: its text is cleaned of escape
    sequences here, where it enters (names reach the status line and lists).
    """
    persona = Persona(id=persona_id, name=clean_text(persona_id), path=path)
    for key in _TEXT_KEYS:
        if key in data:
            value = data[key]
            if not isinstance(value, str):
                raise ValueError(f"'{key}' must be a string, not {type(value).__name__}")
            setattr(persona, key, clean_text(value))
    if persona.mode not in MODES:
        raise ValueError(f"'mode' must be one of {', '.join(MODES)}, not {persona.mode!r}")
    stop = data.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ValueError("'stop' must be a list of strings")
    persona.stop = [s for s in (clean_text(s) for s in stop) if s]
    persona.examples = _parse_examples(data.get("examples", []))
    persona.sampling = _parse_sampling(data.get("sampling", {}), persona.warnings)
    for key in data:
        if key not in KNOWN_KEYS:
            persona.extra[key] = data[key]
            persona.warnings.append(f"unknown key '{key}' (kept, but not used)")
    return persona


def _parse_examples(examples: Any) -> list[Example]:
    if not isinstance(examples, list):
        raise ValueError("'examples' must be an array of tables ([[examples]])")
    parsed = []
    for number, item in enumerate(examples, 1):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("user", "ai")
        ):
            raise ValueError(f"example {number} needs string fields 'user' and 'ai'")
        parsed.append(Example(user=clean_text(item["user"]), ai=clean_text(item["ai"])))
    return parsed


def _parse_sampling(table: Any, warnings: list[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ValueError("'sampling' must be a table ([sampling])")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in SPEC:
            warnings.append(f"unknown sampling setting '{key}' (ignored)")
            continue
        if is_choice(key):
            values[key] = coerce(key, value)  # ValueError names the words it may be
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"sampling.{key} must be a number, not {type(value).__name__}")
        if out_of_range(key, value):
            low, high = SPEC[key][1].low, SPEC[key][1].high
            warnings.append(f"sampling.{key} = {value} is outside {low}..{high}; clamped")
        values[key] = value
    return values


def load_persona_file(path: Path, bundled: bool = False) -> Persona:
    """Read one persona file; raises :class:`PersonaError` naming the file and line."""
    try:
        raw = read_regular_file(path, PERSONA_FILE_LIMIT)
    except OSError as exc:
        raise PersonaError(PersonaProblem(path, f"cannot read the file ({exc.strerror})")) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PersonaError(PersonaProblem(path, "not valid UTF-8 text", line)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        if line is None and "end of document" in str(exc):
            line = text.count("\n") + 1
        reason = getattr(exc, "msg", None) or str(exc)
        raise PersonaError(PersonaProblem(path, f"TOML syntax error: {reason}", line)) from exc
    try:
        persona = parse_persona(data, path.stem, path)
    except ValueError as exc:
        raise PersonaError(PersonaProblem(path, str(exc), _line_of_key(text, exc))) from exc
    persona.bundled = bundled
    return persona


PERSONA_FILE_LIMIT = 1024 * 1024  # bytes: a persona is a page of text, never megabytes


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    A FIFO named ``x.toml`` would block a plain read for ever, and a link to
    ``/dev/zero`` would never end: the file is opened without blocking,
    checked with ``fstat`` and read up to the limit. Raises OSError with a
    reason people can act on.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, device or socket)", str(path))
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit // 1024} KiB", str(path))
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while we read
                raise OSError(errno.EFBIG, f"larger than {limit // 1024} KiB", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _line_of_key(text: str, exc: ValueError) -> int | None:
    """Best effort: the line where the key named in a validation error is set."""
    match = re.search(r"'([A-Za-z_]+)'|sampling\.([A-Za-z_]+)", str(exc))
    if not match:
        return None
    key = match.group(1) or match.group(2)
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def bundled_personas_dir() -> Path:
    """The read-only personas shipped with llama-tui.

    In a wheel they live in ``tui/_bundled_personas``; in a source checkout
    (editable install) they are the repository's ``personas/`` folder.
    """
    packaged = Path(str(resources.files("tui"))) / "_bundled_personas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "personas"


@dataclass
class PersonaLibrary:
    """All personas by id, plus the files that could not be loaded."""

    personas: dict[str, Persona]
    problems: list[PersonaProblem]

    def get(self, persona_id: str | None) -> Persona:
        """The persona ``persona_id``, else the default, else a built-in fallback."""
        for candidate in (persona_id, DEFAULT_PERSONA):
            if candidate and candidate in self.personas:
                return self.personas[candidate]
        return Persona(id=DEFAULT_PERSONA, name="Assistant", system="You are a helpful assistant.")

    def same_name(self, name: str, other_than: str = "") -> Persona | None:
        """Another persona (not the id ``other_than``) shown as ``name`` (any case).

        Why: personas are picked by name in every list; two with one name
        cannot be told apart.
        """
        wanted = " ".join(name.split()).casefold()
        return next(
            (
                p
                for p in self.sorted()
                if p.id != other_than and " ".join(p.name.split()).casefold() == wanted
            ),
            None,
        )

    def sorted(self) -> list[Persona]:
        """The default persona first, then by name."""
        personas = self.personas.values()
        return sorted(personas, key=lambda p: (p.id != DEFAULT_PERSONA, p.name.lower()))


def load_library(bundled_dir: Path | None = None, user_dir: Path | None = None) -> PersonaLibrary:
    """Load bundled then user personas; user files override bundled ones by id."""
    personas: dict[str, Persona] = {}
    problems: list[PersonaProblem] = []
    for directory, bundled in (
        (bundled_dir or bundled_personas_dir(), True),
        (user_dir or paths.user_personas_dir(), False),
    ):
        if not directory.is_dir():
            continue
        unsafe = None if bundled else _others_can_write(directory)
        if unsafe:
            problems.append(PersonaProblem(directory, unsafe))
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                persona = load_persona_file(path, bundled=bundled)
            except PersonaError as exc:
                problems.append(exc.problem)
                continue
            personas[persona.id] = persona
            problems.extend(PersonaProblem(path, w) for w in persona.warnings)
    return PersonaLibrary(personas, problems)


def _others_can_write(directory: Path) -> str | None:
    """Why the user's personas are not read: another user could have planted them.

    The directory itself is enough: while only its owner can write to it, only
    its owner can have put files in it.
    """
    unsafe = paths.others_can_write(directory)
    if unsafe is None:
        return None
    return (
        f"your personas were not loaded, because {unsafe}: another user could have "
        f"written them. Check the files, then run: chmod 700 {directory}"
    )


def save_persona(persona: Persona, user_dir: Path | None = None) -> Path:
    """Write ``persona`` as a user persona file and return its path.

    The file name is the slug of the persona's id, so names with ``/`` or
    ``..`` can never escape the personas directory.
    """
    directory = paths.ensure_private_dir(user_dir or paths.user_personas_dir())
    persona.id = slugify(persona.id or persona.name)
    path = directory / f"{persona.id}.toml"
    tmp = path.with_suffix(".toml.tmp")
    paths.write_private(tmp, tomli_w.dumps(persona.to_toml_dict(), multiline_strings=True))
    tmp.replace(path)
    persona.path, persona.bundled = path, False
    return path
