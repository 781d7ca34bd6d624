"""Tavern / SillyTavern character cards (V1, V2 ``chara_card_v2``, V3 ``chara_card_v3``).

A card describes a character rather than a prompt, so its fields are put
together the way SillyTavern's default story string does: the card's
``system_prompt``, the ``description``, ``{{char}}'s personality: …`` and
``Scenario: …`` become our ``system``; ``first_mes`` is the greeting and
``mes_example`` (``<START>``-separated chats) the examples. Lorebooks,
alternate greetings, post-history instructions and assets have no place in a
persona and are reported.

Exports are V2 cards (JSON, or a PNG with a ``chara`` chunk). What a card has
no field for (sampling, stop strings, mode, the user's name) travels in
``data.extensions.llama_tui``, the place the V2 spec gives applications.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

from tui.core.personas import MODES, Example, Persona
from tui.core.sampling import SPEC
from tui.formats.common import (
    PersonaImportError,
    from_card_placeholders,
    parse_dialogue,
    pretty_stem,
    set_sampling,
    text_field,
    to_card_placeholders,
)
from tui.formats.png import PngError, make_png, text_chunks

EXTENSION = "llama_tui"
V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
_MAPPED = {*V1_FIELDS, "system_prompt", "creator_notes", "nickname", "extensions"}
# Facts about the card, not about how the character talks: listed in one line.
_METADATA = {
    "tags",
    "creator",
    "character_version",
    "creation_date",
    "modification_date",
    "source",
    "creator_notes_multilingual",
    "spec",
    "spec_version",
    "avatar",
    "create_date",
}
_WHY = {
    "alternate_greetings": "only first_mes is used as the greeting",
    "group_only_greetings": "group chats are not supported",
    "character_book": "lorebooks are not supported",
    "post_history_instructions": "there is no place for text after the chat history",
    "assets": "images and other assets are not supported",
}
_EMPTY = (None, "", [], {}, False)
_START = re.compile(r"<start>", re.IGNORECASE)
_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)


def parse_card_json(text: str, source: Path | None = None) -> tuple[Persona, list[str]]:
    """A persona from a card's JSON text."""
    return card_to_persona(load_json(text, source), source)


def load_json(text: str, source: Path | None) -> dict[str, Any]:
    """The JSON object in ``text``, or a :class:`PersonaImportError` saying where it breaks."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise PersonaImportError(source, f"not valid JSON: {exc.msg} ({where})") from exc
    except RecursionError as exc:
        raise PersonaImportError(source, "not valid JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise PersonaImportError(source, f"expected a JSON object, not a {type(data).__name__}")
    return data


def parse_card_png(data: bytes, source: Path | None = None) -> tuple[Persona, list[str]]:
    """A persona from a PNG card: the ``ccv3`` chunk if there is one, else ``chara``."""
    try:
        texts = text_chunks(data)
    except PngError as exc:
        raise PersonaImportError(source, str(exc)) from exc
    keywords = [k for k in ("ccv3", "chara") if k in texts]
    if not keywords:
        raise PersonaImportError(
            source, "the PNG holds no character card (no 'chara' or 'ccv3' text chunk)"
        )
    warnings: list[str] = []
    for keyword in keywords:
        try:
            card = load_json(_unbase64(texts[keyword], source, keyword), source)
        except PersonaImportError as exc:
            if keyword == keywords[-1]:
                raise
            warnings.append(f"the '{keyword}' chunk is unreadable ({exc.reason}); used 'chara'")
            continue
        persona, more = card_to_persona(card, source)
        return persona, warnings + more
    raise AssertionError("unreachable")  # pragma: no cover


def _unbase64(text: str, source: Path | None, keyword: str) -> str:
    if text.lstrip().startswith("{"):
        return text  # some tools store the JSON itself
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PersonaImportError(source, f"the '{keyword}' chunk is not base64") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PersonaImportError(source, f"the '{keyword}' chunk is not UTF-8 JSON") from exc


def is_card(data: dict[str, Any]) -> bool:
    """True if a JSON object looks like a V1, V2 or V3 card."""
    if str(data.get("spec", "")).startswith("chara_card_"):
        return True
    if isinstance(data.get("data"), dict) and "name" in data["data"]:
        return True
    return "name" in data and any(key in data for key in V1_FIELDS[1:])


def card_to_persona(card: dict[str, Any], source: Path | None = None) -> tuple[Persona, list[str]]:
    """Map a card (any version) to a persona; warnings list what has no place in it."""
    warnings: list[str] = []
    spec = card.get("spec")
    if isinstance(card.get("data"), dict) and (spec is None or str(spec).startswith("chara_")):
        data = card["data"]
        if spec not in ("chara_card_v2", "chara_card_v3"):
            warnings.append(f"unknown card spec {spec!r}; read as V2")
        version = "V3" if spec == "chara_card_v3" else "V2"
    elif is_card(card) or isinstance(card.get("name"), str):
        data, version = card, "V1"
    else:
        raise PersonaImportError(source, "not a character card (no 'spec' and no 'name' field)")

    def text(key: str) -> str:
        return text_field(data, key, warnings).strip()

    card_name = text("name") or pretty_stem(source)
    ai_name = text("nickname") or card_name
    persona = Persona(id="", name=card_name, ai_name=ai_name)
    parts = [_ORIGINAL.sub("", text("system_prompt")).strip(), text("description")]
    if text("personality"):
        parts.append(f"{{{{char}}}}'s personality: {text('personality')}")
    if text("scenario"):
        parts.append(f"Scenario: {text('scenario')}")
    persona.system = from_card_placeholders("\n\n".join(p for p in parts if p))
    persona.greeting = from_card_placeholders(text("first_mes"))
    persona.examples = _examples(text("mes_example"), [card_name, ai_name], warnings)
    notes = text("creator_notes")
    first_line = notes.splitlines()[0].strip() if notes else ""
    persona.description = first_line[:200] or f"Imported from {_label(source)} ({version} card)."
    if notes and first_line != notes:
        warnings.append("creator_notes was shortened to its first line for the description")
    _read_extensions(persona, data.get("extensions"), warnings)
    _report_unmapped(data, warnings)
    return persona, warnings


def _label(source: Path | None) -> str:
    return source.name if source else "a character card"


def _examples(text: str, names: list[str], warnings: list[str]) -> list[Example]:
    """``<START>``-separated chats → examples; ``{{char}}:``/``<BOT>:``/name lines are the AI."""
    examples: list[Example] = []
    for block in _START.split(text):
        if not block.strip():
            continue
        dialogue = parse_dialogue(block, ["{{user}}", "<user>"], ["{{char}}", "<bot>", *names])
        if dialogue.preamble:
            warnings.append("text in mes_example outside any turn was dropped")
        warnings.extend(f"mes_example: {w}" for w in dialogue.warnings)
        examples += [
            Example(from_card_placeholders(e.user), from_card_placeholders(e.ai))
            for e in dialogue.examples
        ]
    return examples


def _read_extensions(persona: Persona, extensions: Any, warnings: list[str]) -> None:
    """Restore what a llama-tui export put in ``extensions.llama_tui``; report the rest."""
    if not isinstance(extensions, dict):
        return
    ours = extensions.get(EXTENSION)
    if isinstance(ours, dict):
        for key in ("name", "user_name", "model"):
            if isinstance(ours.get(key), str) and ours[key]:
                setattr(persona, key, ours[key])
        if ours.get("mode") in MODES:
            persona.mode = ours["mode"]
        stop = ours.get("stop")
        if isinstance(stop, list):
            persona.stop = [s for s in stop if isinstance(s, str) and s]
        sampling = ours.get("sampling")
        if isinstance(sampling, dict):
            for key, value in sampling.items():
                if key in SPEC:
                    set_sampling(persona, key, value, f"extensions.{EXTENSION}.{key}", warnings)
                else:
                    warnings.append(f"extensions.{EXTENSION}.{key} could not be mapped")
    others = sorted(k for k, v in extensions.items() if k != EXTENSION and v not in _EMPTY)
    if others:
        warnings.append(f"card extensions could not be mapped: {', '.join(others)}")


def _report_unmapped(data: dict[str, Any], warnings: list[str]) -> None:
    metadata = []
    for key, value in data.items():
        if key in _MAPPED or value in _EMPTY:
            continue
        if key in _METADATA:
            metadata.append(key)
        elif key in _WHY:
            count = f" ({len(value)})" if isinstance(value, list) else ""
            warnings.append(f"{key}{count} could not be mapped: {_WHY[key]}")
        else:
            warnings.append(f"{key} could not be mapped")
    if metadata:
        warnings.append(f"card metadata not kept: {', '.join(sorted(metadata))}")


def card_dict(persona: Persona) -> dict[str, Any]:
    """A V2 card for ``persona``, with V1 copies at the top for older tools."""
    ours: dict[str, Any] = {
        "name": persona.name,
        "user_name": persona.user_name,
        "mode": persona.mode,
    }
    if persona.model:
        ours["model"] = persona.model
    if persona.stop:
        ours["stop"] = list(persona.stop)
    if persona.sampling:
        ours["sampling"] = dict(persona.sampling)
    examples = "\n".join(
        f"<START>\n{{{{user}}}}: {to_card_placeholders(e.user)}\n"
        f"{{{{char}}}}: {to_card_placeholders(e.ai)}"
        for e in persona.examples
    )
    data: dict[str, Any] = {
        "name": persona.ai_name,
        "description": to_card_placeholders(persona.system),
        "personality": "",
        "scenario": "",
        "first_mes": to_card_placeholders(persona.greeting),
        "mes_example": examples,
        "creator_notes": persona.description,
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": [],
        "creator": "",
        "character_version": "",
        "extensions": {EXTENSION: ours},
    }
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": data,
        **{key: data[key] for key in V1_FIELDS},
    }


def export_card(persona: Persona) -> tuple[str, list[str]]:
    """The persona as V2 card JSON, and what other card tools will ignore."""
    warnings = []
    if persona.sampling or persona.stop or persona.mode != "auto":
        warnings.append(
            f"sampling, stop strings and mode are kept in extensions.{EXTENSION}; "
            "other card tools ignore them"
        )
    return json.dumps(card_dict(persona), ensure_ascii=False, indent=2) + "\n", warnings


def export_card_png(persona: Persona) -> tuple[bytes, list[str]]:
    """The persona as a PNG card (a 1×1 image with a ``chara`` chunk)."""
    text, warnings = export_card(persona)
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return make_png({"chara": payload}), warnings
