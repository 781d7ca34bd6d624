"""llama.cpp prompt files (``prompts/chat-with-bob.txt``, ``prompts/chat.txt``).

These are plain transcripts: an introduction, then ``User: …`` / ``Bob: …``
lines, usually ending with an open ``User:`` for the reverse prompt. The
introduction becomes ``system``, the exchanges ``examples``, and the persona
runs in transcript mode, which renders the same text back for the model.

``chat.txt`` is a template filled by ``examples/chat-13B.sh`` with ``sed``:
``[[USER_NAME]]``, ``[[AI_NAME]]``, ``[[DATE_TIME]]`` (``date +%H:%M``, so our
``{{time}}``) and ``[[DATE_YEAR]]`` (our ``{{year}}``).
"""

from __future__ import annotations

import re
from pathlib import Path

from tui.core.personas import Example, Persona
from tui.formats.common import parse_dialogue, pretty_stem

PLACEHOLDERS = {
    "USER_NAME": "{{user}}",
    "AI_NAME": "{{ai}}",
    "DATE_TIME": "{{time}}",
    "DATE_YEAR": "{{year}}",
}
_BRACKETED = re.compile(r"\[\[([A-Za-z_]+)\]\]")
# "Name: text" at the start of a line: a short label of at most four words
# (``### Human`` included), or a ``[[PLACEHOLDER]]``; "12:30" and URLs are not.
_TURN = re.compile(r"^[ \t]*(\[\[[A-Z_]+\]\]|[^\s:\[\]][^:\n]{0,39}?)[ \t]*:(?:[ \t]|$)(.*)$")
_DEFAULT_NAMES = {"[[USER_NAME]]": "User", "[[AI_NAME]]": "Assistant"}


def detect_speakers(text: str) -> tuple[str, str] | None:
    """The (user, AI) labels of a transcript, or None if it has no dialogue.

    The user is the label of the open turn at the end (``User:``), if any;
    the AI is the label that most often alternates with it. Without an open
    turn, the pair of labels that alternates most often wins (the later one
    on a tie, as the dialogue follows the introduction) and whoever speaks
    first in it is the user.
    """
    lines: list[tuple[str, str]] = []
    for line in text.splitlines():
        match = _TURN.match(line)
        if match and len(match.group(1).split()) <= 4:
            lines.append((match.group(1).strip(), match.group(2)))
    open_user = lines[-1][0] if lines and not lines[-1][1].strip() else None
    pairs: dict[frozenset[str], list[int]] = {}  # -> [count, last index, first index]
    for index in range(len(lines) - 1):
        first, second = lines[index][0], lines[index + 1][0]
        if first == second:
            continue
        key = frozenset((first, second))
        if open_user is not None and open_user not in key:
            continue
        entry = pairs.setdefault(key, [0, index, index])
        entry[0] += 1
        entry[1] = index
    if not pairs:
        return None
    key, (_count, _last, first_index) = max(pairs.items(), key=lambda kv: (kv[1][0], kv[1][1]))
    user = open_user or lines[first_index][0]
    (ai,) = key - {user}
    return user, ai


def parse_prompt(text: str, source: Path | None = None) -> tuple[Persona, list[str]]:
    """A persona from a llama.cpp prompt file, and what could not be mapped."""
    warnings: list[str] = []
    persona = Persona(id="", name="", mode="transcript")
    speakers = detect_speakers(text)
    if speakers is None:
        warnings.append("no 'Name: text' dialogue found; the whole file is the system prompt")
        persona.system = text.strip()
    else:
        user, ai = speakers
        dialogue = parse_dialogue(text, [user], [ai], where="exchange")
        persona.user_name = _DEFAULT_NAMES.get(user, user)
        persona.ai_name = _DEFAULT_NAMES.get(ai, ai)
        persona.system = dialogue.preamble
        persona.examples = dialogue.examples
        warnings.extend(dict.fromkeys(dialogue.warnings))
        if ai not in _DEFAULT_NAMES:
            persona.name = persona.ai_name
    unknown: list[str] = []
    persona.system = _fill(persona.system, unknown)
    persona.examples = [
        Example(_fill(e.user, unknown), _fill(e.ai, unknown)) for e in persona.examples
    ]
    for name in dict.fromkeys(unknown):
        warnings.append(f"placeholder [[{name}]] could not be mapped (kept as written)")
    persona.name = persona.name or pretty_stem(source)
    label = source.name if source else "a prompt file"
    persona.description = f"Imported from {label} (llama.cpp prompt)."
    return persona, warnings


def _fill(text: str, unknown: list[str]) -> str:
    """``[[USER_NAME]]`` → ``{{user}}`` etc.; unknown ones are collected."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.upper() in PLACEHOLDERS:
            return PLACEHOLDERS[name.upper()]
        unknown.append(name)
        return match.group(0)

    return _BRACKETED.sub(replace, text)


def looks_like_transcript(text: str) -> bool:
    """True if ``text`` has a dialogue (used to sniff files without extension)."""
    return detect_speakers(text) is not None
