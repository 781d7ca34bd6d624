"""What every importer shares: the error, the result, sampling and dialogue helpers.

Files from other tools are data, never trusted: text is cleaned of terminal
control sequences, sampling values are mapped to our names and clamped to
:data:`tui.core.sampling.SPEC`, and everything that has no place in a persona is
reported as a warning instead of being dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.personas import Example, Persona, slugify
from tui.core.sampling import SPEC, coerce, is_choice, out_of_range
from tui.core.sanitize import clean_text


class PersonaImportError(Exception):
    """A file could not be imported; the message names the file and the reason.

    Deliberately not a subclass of the built-in ``ImportError``, which means
    "a Python module is missing" and is caught as such around optional imports.
    """

    def __init__(self, path: Path | str | None, reason: str):
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


@dataclass
class ImportResult:
    """An imported persona (not saved yet), what was lost, and where it came from."""

    persona: Persona
    warnings: list[str] = field(default_factory=list)
    format: str = ""
    source: Path | None = None


def set_sampling(persona: Persona, key: str, raw: Any, label: str, warnings: list[str]) -> None:
    """Store one sampling value under our name ``key``, validated and clamped.

    ``label`` says where the value came from (``PARAMETER temperature``) so a
    warning points at the line the user wrote.
    """
    if is_choice(key):
        try:
            persona.sampling[key] = coerce(key, raw)
        except ValueError as exc:
            warnings.append(f"{label}: {exc} (ignored)")
        return
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        warnings.append(f"{label} {raw!r} is not a number (ignored)")
        return
    try:
        number = float(raw)
        value = coerce(key, number)
    except ValueError:
        warnings.append(f"{label} {raw!r} is not a number (ignored)")
        return
    if out_of_range(key, number):
        rng = SPEC[key][1]
        warnings.append(f"{label} {raw} is outside {rng.low:g}..{rng.high:g}; clamped to {value}")
    persona.sampling[key] = value


# Character-card placeholders, case-insensitive, and ours.
_CARD_TO_OURS = (
    (re.compile(r"\{\{\s*char\s*\}\}", re.IGNORECASE), "{{ai}}"),
    (re.compile(r"\{\{\s*user\s*\}\}", re.IGNORECASE), "{{user}}"),
    (re.compile(r"<bot>", re.IGNORECASE), "{{ai}}"),
    (re.compile(r"<user>", re.IGNORECASE), "{{user}}"),
)
_OURS_TO_CARD = re.compile(r"\{\{\s*ai\s*\}\}", re.IGNORECASE)


def from_card_placeholders(text: str) -> str:
    """``{{char}}``/``<BOT>`` → ``{{ai}}`` and ``<USER>`` → ``{{user}}``."""
    for pattern, replacement in _CARD_TO_OURS:
        text = pattern.sub(replacement, text)
    return text


def to_card_placeholders(text: str) -> str:
    """``{{ai}}`` → ``{{char}}``, the name every card tool understands."""
    return _OURS_TO_CARD.sub("{{char}}", text)


@dataclass
class Dialogue:
    """Text split into a preamble and example exchanges."""

    preamble: str = ""
    examples: list[Example] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def label_pattern(user_labels: list[str], ai_labels: list[str]) -> re.Pattern[str]:
    """A regex matching a turn line ``Label: text``; group ``label`` is the speaker."""
    labels = sorted({*user_labels, *ai_labels} - {""}, key=len, reverse=True)
    alternatives = "|".join(re.escape(label) for label in labels)
    return re.compile(rf"^[ \t]*(?P<label>{alternatives})[ \t]*:[ \t]?(?P<text>.*)$", re.I)


def parse_dialogue(
    text: str, user_labels: list[str], ai_labels: list[str], where: str = "example"
) -> Dialogue:
    """Split ``Name: text`` lines into user/AI exchanges.

    Lines that start no turn continue the previous one (multi-line answers);
    text before the first turn is the preamble. Same-speaker turns in a row
    are joined; an AI turn with no user turn before it, and a user turn with
    no answer, have no place in an :class:`Example` and are reported.
    """
    result = Dialogue()
    if not any(label for label in [*user_labels, *ai_labels]):
        result.preamble = text.strip()
        return result
    pattern = label_pattern(user_labels, ai_labels)
    users = {label.lower() for label in user_labels}
    turns: list[list[str]] = []  # [role, text]
    preamble: list[str] = []
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            role = "user" if match.group("label").lower() in users else "ai"
            if turns and turns[-1][0] == role:
                turns[-1][1] += "\n" + match.group("text")
                result.warnings.append(f"two {role} turns in a row in an {where} were joined")
            else:
                turns.append([role, match.group("text")])
        elif turns:
            turns[-1][1] += "\n" + line
        else:
            preamble.append(line)
    result.preamble = "\n".join(preamble).strip()
    result.examples, problems = pair_turns([(role, body) for role, body in turns], where)
    result.warnings.extend(problems)
    return result


def pair_turns(
    turns: list[tuple[str, str]], where: str = "example"
) -> tuple[list[Example], list[str]]:
    """Pair ``("user", text)`` / ``("ai", text)`` turns into examples.

    An AI turn with no user turn before it, and a user turn with no answer,
    have no place in an :class:`Example` and are reported; an empty user turn
    at the very end is the open reverse prompt of a transcript and is not.
    """
    examples: list[Example] = []
    warnings: list[str] = []
    pending: str | None = None
    for role, body in turns:
        body = body.strip()
        if role == "user":
            if pending:
                warnings.append(f"a user turn of an {where} has no answer; it was dropped")
            pending = body
        elif pending is None:
            warnings.append(f"an {where} starts with an AI turn and no user turn; it was dropped")
        else:
            examples.append(Example(user=pending, ai=body))
            pending = None
    if pending:
        warnings.append(f"the last user turn of an {where} has no answer; it was dropped")
    return examples, warnings


def clean_persona(persona: Persona, fallback_name: str) -> Persona:
    """Strip terminal control sequences from every text and give a safe id.

    Imported text ends up on screen (``personas show``, the TUI), so escape
    sequences in a downloaded card must never get that far.
    """
    for key in ("name", "description", "ai_name", "user_name", "system", "greeting", "model"):
        setattr(persona, key, clean_text(getattr(persona, key)))
    persona.name = " ".join(persona.name.split()) or fallback_name
    persona.ai_name = " ".join(persona.ai_name.split()) or "Assistant"
    persona.user_name = " ".join(persona.user_name.split()) or "User"
    persona.examples = [Example(clean_text(e.user), clean_text(e.ai)) for e in persona.examples]
    persona.stop = [s for s in (clean_text(s) for s in persona.stop) if s]
    persona.id = slugify(persona.name)
    persona.path, persona.bundled = None, False
    return persona


def pretty_stem(path: Path | None, default: str = "Imported") -> str:
    """A readable name from a file name: ``chat-with-bob.txt`` → ``Chat with bob``."""
    if path is None:
        return default
    stem = path.name.lstrip(".").split(".")[0]
    words = re.sub(r"[-_.]+", " ", stem).strip()
    return (words[:1].upper() + words[1:]) if words else default


def text_field(data: dict[str, Any], key: str, warnings: list[str], where: str = "") -> str:
    """``data[key]`` as a string: missing or null is empty, anything else is reported."""
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    warnings.append(f"{where}{key} is a {type(value).__name__}, not text (ignored)")
    return ""
