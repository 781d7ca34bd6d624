"""text-generation-webui characters (``characters/*.yaml``, and the old JSON).

Current files have ``name``, ``greeting``, ``context`` and optionally
``example_dialogue``; older ones (and Pygmalion JSON) use ``char_name``,
``char_persona``, ``char_greeting``, ``world_scenario``, ``example_dialogue``
and ``your_name``, which the web UI turned into ``{{char}}'s Persona: …`` and
``Scenario: …`` lines; so do we.

A ``context`` often ends with a sample chat (``{{user}}: …`` / ``{{char}}: …``
lines, as in the web UI's own ``Example.yaml``); that part becomes examples,
so that chat mode sends it as real turns. YAML is read with
``yaml.safe_load`` only: a character file never constructs Python objects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tui.core.personas import Example, Persona
from tui.formats.common import (
    PersonaImportError,
    from_card_placeholders,
    parse_dialogue,
    pretty_stem,
    text_field,
)

KEYS = frozenset(
    {
        "name",
        "greeting",
        "context",
        "example_dialogue",
        "char_name",
        "char_persona",
        "char_greeting",
        "world_scenario",
        "your_name",
    }
)
_START = re.compile(r"<start>", re.IGNORECASE)


def parse_webui_yaml(text: str, source: Path | None = None) -> tuple[Persona, list[str]]:
    """A persona from a web UI character YAML file."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is a dependency
        raise PersonaImportError(source, "reading YAML needs PyYAML: pip install pyyaml") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PersonaImportError(source, f"not valid YAML: {problem}{where}") from exc
    except RecursionError as exc:
        raise PersonaImportError(source, "not valid YAML: nested too deeply") from exc
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "empty document"
        raise PersonaImportError(source, f"expected a YAML mapping of character fields, not {kind}")
    return webui_to_persona(data, source)


def is_webui(data: dict[str, Any]) -> bool:
    """True if a JSON/YAML object uses the web UI's keys (old ``char_*`` or ``context``)."""
    return "char_name" in data or "char_persona" in data or "context" in data


def webui_to_persona(data: dict[str, Any], source: Path | None = None) -> tuple[Persona, list[str]]:
    """Map a web UI character to a persona; warnings list unknown keys."""
    warnings: list[str] = []

    def text(key: str) -> str:
        return text_field(data, key, warnings).strip()

    name = text("name") or text("char_name") or pretty_stem(source)
    user = text("your_name") or "User"
    persona = Persona(id="", name=name, ai_name=name, user_name=user)
    context = text("context")
    old = [f"{{{{char}}}}'s Persona: {text('char_persona')}"] if text("char_persona") else []
    if text("world_scenario"):
        old.append(f"Scenario: {text('world_scenario')}")
    if context and old:
        warnings.append("char_persona and world_scenario were ignored: context is set")
    users, ais = ["{{user}}", "<user>", user], ["{{char}}", "<bot>", name]
    if "char_name" in data:
        users.append("You")  # the old web UI's default your_name
    system, examples = _split_context(context or "\n".join(old), users, ais, warnings)
    for block in _START.split(text("example_dialogue")):
        dialogue = parse_dialogue(block, users, ais)
        examples += dialogue.examples
        warnings.extend(f"example_dialogue: {w}" for w in dialogue.warnings)
        if dialogue.preamble:
            warnings.append("text in example_dialogue outside any turn was dropped")
    persona.system = from_card_placeholders(system)
    persona.examples = [
        Example(from_card_placeholders(e.user), from_card_placeholders(e.ai)) for e in examples
    ]
    persona.greeting = from_card_placeholders(text("greeting") or text("char_greeting"))
    label = source.name if source else "a character file"
    persona.description = f"Imported from {label} (text-generation-webui character)."
    for key in data:
        if key not in KEYS:
            warnings.append(f"key '{key}' could not be mapped")
    return persona, warnings


def _split_context(
    context: str, users: list[str], ais: list[str], warnings: list[str]
) -> tuple[str, list[Example]]:
    """The prose of ``context`` and the sample chat at its end, if there is one."""
    blocks = _START.split(context)
    head = parse_dialogue(blocks[0], users, ais, where="example in context")
    examples, problems = list(head.examples), list(head.warnings)
    for block in blocks[1:]:
        dialogue = parse_dialogue(block, users, ais, where="example in context")
        examples += dialogue.examples
        problems += dialogue.warnings
    if not examples:
        return context.strip(), []
    warnings.extend(problems)
    return head.preamble, examples
