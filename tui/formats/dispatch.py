"""Pick the importer for a file, run it, and export personas to other tools.

The format comes from the extension when it says something (``.png``,
``.json``, ``.yaml``, ``.toml``, ``.txt``, ``Modelfile``) and from the
content otherwise. Every importer returns a persona plus warnings; this
module cleans the persona's text, gives it a safe id and wraps both in an
:class:`ImportResult`. Nothing is saved here: the caller decides where.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import tomli_w

from tui.core.personas import Persona, parse_persona
from tui.formats import card, llamacpp, modelfile, webui
from tui.formats.common import ImportResult, PersonaImportError, clean_persona, pretty_stem
from tui.formats.png import SIGNATURE

FORMATS = {
    "toml": "llama-tui persona",
    "modelfile": "Ollama Modelfile",
    "card": "character card",
    "webui": "text-generation-webui character",
    "llamacpp": "llama.cpp prompt",
}
EXPORT_FORMATS = ("toml", "modelfile", "card")
MAX_BYTES = 64 * 1024 * 1024  # PNG cards carry an image; anything bigger is not a persona
_YAML_KEY = re.compile(r"^(context|char_persona|char_name)\s*:", re.MULTILINE)


def import_persona(
    path: Path | str, name: str | None = None, fmt: str | None = None
) -> ImportResult:
    """Read ``path`` (format detected unless ``fmt`` is given) into an unsaved persona.

    ``name`` replaces the imported name (and so the id). Raises
    :class:`PersonaImportError` naming the file and the reason.
    """
    path = Path(path)
    data = _read(path)
    if fmt is not None and fmt not in FORMATS:
        raise PersonaImportError(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    fmt = fmt or detect_format(path, data)
    if fmt == "card" and data.startswith(SIGNATURE):
        persona, warnings = card.parse_card_png(data, path)
    elif fmt == "card" and path.suffix.lower() == ".png":
        raise PersonaImportError(path, "not a PNG image (the PNG signature is missing)")
    else:
        persona, warnings, fmt = _parse_text(decode_text(data, path), path, fmt)
    if name is not None:
        persona.name = name
    clean_persona(persona, pretty_stem(path))
    return ImportResult(persona, list(dict.fromkeys(warnings)), fmt, path)


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PersonaImportError(path, f"the file is too large ({size // 2**20} MiB)")
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise PersonaImportError(path, "is a directory, not a file") from exc
    except OSError as exc:
        raise PersonaImportError(path, f"cannot read the file ({exc.strerror})") from exc


def decode_text(data: bytes, path: Path | None) -> str:
    """UTF-8 text (a BOM is allowed), or an error naming the line with the bad byte."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PersonaImportError(path, f"not valid UTF-8 text (line {line})") from exc


def detect_format(path: Path, data: bytes) -> str:
    """The format of a file, from its extension or, failing that, its content."""
    name, suffix = path.name.lower(), path.suffix.lower()
    if data.startswith(SIGNATURE) or suffix == ".png":
        return "card"
    by_suffix = {".json": "card", ".yaml": "webui", ".yml": "webui", ".toml": "toml"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    if suffix == ".modelfile" or name == "modelfile" or name.startswith("modelfile."):
        return "modelfile"
    if suffix == ".txt":
        return "llamacpp"
    text = decode_text(data, path)
    if text.lstrip().startswith("{"):
        return "card"  # JSON: _parse_text tells a card from a web UI character
    if _is_modelfile(text):
        return "modelfile"
    if _YAML_KEY.search(text):
        return "webui"
    if llamacpp.looks_like_transcript(text):
        return "llamacpp"
    raise PersonaImportError(
        path,
        "unknown format: expected a character card (.png/.json), an Ollama Modelfile, "
        "a text-generation-webui character (.yaml), a llama.cpp prompt (.txt) "
        "or a llama-tui persona (.toml)",
    )


def _is_modelfile(text: str) -> bool:
    """Strict: every instruction is a Modelfile instruction ("From now on…" is prose)."""
    if not modelfile.looks_like_modelfile(text):
        return False
    try:
        commands, _meta, problems = modelfile.parse_commands(text)
    except PersonaImportError:
        return False
    return bool(commands) and not any("unknown instruction" in p for p in problems)


def _parse_text(text: str, path: Path, fmt: str) -> tuple[Persona, list[str], str]:
    if fmt == "card":  # JSON
        data = card.load_json(text, path)
        if card.is_card(data):
            return (*card.card_to_persona(data, path), "card")
        if webui.is_webui(data):
            return (*webui.webui_to_persona(data, path), "webui")
        raise PersonaImportError(
            path, "this JSON is neither a character card nor a text-generation-webui character"
        )
    if fmt == "webui":
        return (*webui.parse_webui_yaml(text, path), fmt)
    if fmt == "modelfile":
        return (*modelfile.parse_modelfile(text, path), fmt)
    if fmt == "llamacpp":
        return (*llamacpp.parse_prompt(text, path), fmt)
    return (*_parse_toml(text, path), fmt)


def _parse_toml(text: str, path: Path) -> tuple[Persona, list[str]]:
    """Another llama-tui persona file: validated exactly as the loader does."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaImportError(path, f"TOML syntax error: {exc}") from exc
    try:
        persona = parse_persona(data, path.stem, path)
    except ValueError as exc:
        raise PersonaImportError(path, str(exc)) from exc
    if "name" not in data:
        persona.name = pretty_stem(path)
    warnings, persona.warnings = persona.warnings, []
    return persona, warnings


def export_toml(persona: Persona) -> str:
    """The persona in our own format, as :func:`tui.core.personas.save_persona` writes it."""
    return tomli_w.dumps(persona.to_toml_dict(), multiline_strings=True)


def export_persona(persona: Persona, fmt: str) -> tuple[str, list[str]]:
    """``persona`` as text in ``fmt`` (toml, modelfile or card JSON), and warnings."""
    if fmt == "toml":
        return export_toml(persona), []
    if fmt == "modelfile":
        return modelfile.export_modelfile(persona)
    if fmt == "card":
        return card.export_card(persona)
    raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(EXPORT_FORMATS)})")
