"""Ollama Modelfiles, both ways.

The reader follows Ollama's own parser (``parser/parser.go``): instructions
are case-insensitive, ``#`` starts a comment only where an instruction could
start, and a value runs to the end of the line unless it opens a ``"`` or
``\"\"\"`` quote, in which case it runs on (across lines, without escapes)
until a line ends with the closing quote.

``PARAMETER`` names are mapped to ours (``num_ctx`` → ``n_ctx``,
``num_predict`` → ``max_tokens``, ``mirostat`` → ``mirostat_mode``) and
clamped; ``TEMPLATE``, ``ADAPTER``, ``LICENSE`` and unknown parameters have
no place in a persona and are reported.

What Ollama has no instruction for (the persona's name, names, mode,
greeting) is written as one ``# llama-tui: {json}`` comment, which Ollama
ignores and this reader restores, so an export imports back unchanged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tui.core.personas import MODES, Persona
from tui.core.sampling import SPEC
from tui.formats.common import PersonaImportError, pair_turns, pretty_stem, set_sampling

# Ollama parameter -> our sampling setting.
PARAMETERS = {
    "num_ctx": "n_ctx",
    "num_predict": "max_tokens",
    "mirostat": "mirostat_mode",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "seed": "seed",
}
OLLAMA_NAMES = {ours: theirs for theirs, ours in PARAMETERS.items()}
INSTRUCTIONS = (
    "from",
    "parameter",
    "template",
    "system",
    "message",
    "adapter",
    "license",
    "draft",
    "renderer",
    "parser",
    "requires",
)
_NOT_MAPPED = {
    "template": "TEMPLATE could not be mapped: llama-tui uses the GGUF's own chat template "
    "(or transcript mode)",
    "adapter": "ADAPTER could not be mapped: LoRA adapters are not supported",
    "license": "LICENSE could not be mapped (not kept)",
    "draft": "DRAFT could not be mapped: speculative decoding is not supported",
    "renderer": "RENDERER could not be mapped",
    "parser": "PARSER could not be mapped",
    "requires": "REQUIRES could not be mapped (an Ollama version requirement)",
}
META_PREFIX = "# llama-tui:"
_META_KEYS = ("name", "description", "ai_name", "user_name", "mode", "greeting")
_INSTRUCTION = re.compile(r"^([A-Za-z]+)(?:[ \t]+(.*))?$")
_ZWSP = "\u200b"
_QUOTE_AT_EOL = re.compile(r'"(?=[ \t]*$)', re.MULTILINE)
_MARKED_QUOTE = re.compile(r'"\u200b(?=[ \t]*$)', re.MULTILINE)


@dataclass
class Command:
    """One instruction of a Modelfile, its value unquoted."""

    name: str  # lower case
    args: str
    line: int


def _complete(value: str) -> bool:
    """Ollama's ``unquote`` test: is this value closed (or never quoted)?"""
    value = value.strip()
    if value.startswith('"""'):
        return len(value) >= 6 and value.endswith('"""')
    if value.startswith('"'):
        return len(value) >= 2 and value.endswith('"')
    return True


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"""'):
        value = value[3:-3]
    elif value.startswith('"'):
        value = value[1:-1]
    return _MARKED_QUOTE.sub('"', value)


def parse_commands(
    text: str, source: Path | None = None
) -> tuple[list[Command], dict[str, object], list[str]]:
    """The instructions of a Modelfile, its llama-tui comment, and problems.

    Raises :class:`PersonaImportError` for an unclosed quote, as Ollama does.
    """
    commands: list[Command] = []
    meta: dict[str, object] = {}
    warnings: list[str] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number].lstrip()
        start = number + 1
        number += 1
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith(META_PREFIX):
                meta = _read_meta(line[len(META_PREFIX) :], start, warnings)
            continue
        match = _INSTRUCTION.match(line)
        if not match or match.group(1).lower() not in INSTRUCTIONS:
            word = line.split()[0]
            warnings.append(f"line {start}: unknown instruction {word!r} (ignored)")
            continue
        name, value = match.group(1).lower(), match.group(2) or ""
        head = ""
        if name in ("parameter", "message"):
            parts = value.lstrip().split(None, 1) + ["", ""]
            head, value = parts[0], parts[1]
        while not _complete(value):
            if number >= len(lines):
                raise PersonaImportError(source, f"line {start}: the quote is never closed")
            value += "\n" + lines[number]
            number += 1
        value = _unquote(value)
        commands.append(Command(name, f"{head} {value}" if head else value, start))
    return commands, meta, warnings


def _read_meta(text: str, line: int, warnings: list[str]) -> dict[str, object]:
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        warnings.append(f"line {line}: the llama-tui comment is not a JSON object (ignored)")
        return {}
    return meta


def parse_modelfile(text: str, source: Path | None = None) -> tuple[Persona, list[str]]:
    """A persona from an Ollama Modelfile, and what could not be mapped."""
    commands, meta, warnings = parse_commands(text, source)
    persona = Persona(id="", name="")
    messages: list[tuple[str, str]] = []
    models: list[str] = []  # FROM values: a name when nothing else gives one
    systems: list[str] = []  # SYSTEM instructions: the last one wins, as in Ollama
    system_messages: list[str] = []  # MESSAGE system ...: kept, after it
    for command in commands:
        where = f"line {command.line}: "
        if command.name == "from":
            models.append(command.args.strip())
            _set_model(persona, command.args, source, warnings, where)
        elif command.name == "parameter":
            _set_parameter(persona, command.args, warnings, where)
        elif command.name == "system":
            systems.append(command.args.strip())
        elif command.name == "message":
            role, _, body = command.args.partition(" ")
            role = role.lower()
            if role == "system":
                system_messages.append(body.strip())
            elif role in ("user", "assistant"):
                messages.append(("user" if role == "user" else "ai", body))
            else:
                warnings.append(f"{where}MESSAGE role {role!r} could not be mapped")
        else:
            warnings.append(where + _NOT_MAPPED[command.name])
    persona.system = "\n\n".join(s for s in [*systems[-1:], *system_messages] if s)
    if len(systems) > 1:
        warnings.append("several SYSTEM instructions: only the last one is used, as in Ollama")
    persona.examples, problems = pair_turns(messages, "exchange of MESSAGEs")
    warnings.extend(dict.fromkeys(problems))
    _apply_meta(persona, meta, warnings)
    if not persona.name:
        persona.name = _guess_name(persona.system, models[-1:], source)
    if not persona.description:
        label = source.name if source else "a Modelfile"
        persona.description = f"Imported from {label} (Ollama Modelfile)."
    return persona, warnings


def _set_model(
    persona: Persona, value: str, source: Path | None, warnings: list[str], where: str
) -> None:
    """Keep ``FROM`` if it names a GGUF file (made absolute, as Ollama resolves it)."""
    if not value.lower().endswith(".gguf"):
        warnings.append(
            f"{where}FROM {value} could not be mapped: it is an Ollama model, not a GGUF file; "
            "choose the model in llama-tui"
        )
        return
    model = Path(value).expanduser()
    if not model.is_absolute() and source is not None:
        model = source.parent / model
    persona.model = os.path.normpath(model)


def _set_parameter(persona: Persona, args: str, warnings: list[str], where: str) -> None:
    name, _, value = args.partition(" ")
    name = name.lower()
    if name == "stop":
        if value:
            persona.stop.append(value)
        return
    if name not in PARAMETERS:
        warnings.append(f"{where}PARAMETER {name} could not be mapped")
        return
    set_sampling(persona, PARAMETERS[name], value.strip(), f"{where}PARAMETER {name}", warnings)


def _apply_meta(persona: Persona, meta: dict[str, object], warnings: list[str]) -> None:
    for key in _META_KEYS:
        value = meta.get(key)
        if isinstance(value, str):
            setattr(persona, key, value)
    if persona.mode not in MODES:
        warnings.append(f"mode {persona.mode!r} in the llama-tui comment is unknown; using auto")
        persona.mode = "auto"


_CALLED = re.compile(
    r"\b(?i:you are called|you are named|you are|you're|your name is)\s+"
    r"((?:[A-Z][\w'’-]+)(?:\s+[A-Z][\w'’-]+){0,2})"
)
_NOT_NAMES = {"A", "An", "The", "Your", "My", "Our", "This", "That", "Not", "Now", "Here", "AI"}


def _guess_name(system: str, models: list[str], source: Path | None) -> str:
    """A name for a Modelfile that gives none: ``mario.Modelfile`` → ``Mario``.

    A bare ``Modelfile`` says nothing in its file name (nor does its folder:
    ``~/dl/Modelfile`` is not "Dl"), so the name comes from the content: who
    the SYSTEM prompt says the model is ("You are Mario, …"), else the model
    in FROM (``llama3.2:1b`` → ``Llama3.2``, ``./tiny.gguf`` → ``Tiny``).
    """
    if source is not None and source.name.lower() not in ("modelfile", "modelfile.txt"):
        return pretty_stem(source, "Modelfile")
    match = _CALLED.search(system)
    if match:
        words = match.group(1).split()
        while words and words[0] in _NOT_NAMES:
            words.pop(0)
        if words:
            return " ".join(words)
    if models:
        base = re.split(r"[/\\]", models[0].strip("\"' "))[-1].split(":")[0]
        base = re.sub(r"\.gguf$", "", base, flags=re.IGNORECASE)
        base = re.sub(r"[.-](?:I?Q\d\w*|B?F(?:16|32))$", "", base, flags=re.IGNORECASE)
        words = re.sub(r"[-_]+", " ", base).strip()
        if words:
            return words[:1].upper() + words[1:]
    return "Modelfile"


def looks_like_modelfile(text: str) -> bool:
    """True if the first instruction-like line is a Modelfile instruction."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _INSTRUCTION.match(line)
        return bool(match and match.group(2) and match.group(1).lower() in INSTRUCTIONS)
    return False


def quote(text: str) -> str | None:
    """``text`` as a Modelfile value that Ollama reads back unchanged, or None.

    ``\"\"\"`` quotes are preferred; a value is cut short if one of its lines
    ends with the closing quote, so each candidate is checked the way the
    reader scans it.
    """
    if text and "\n" not in text and text == text.strip() and not text.startswith('"'):
        return text
    for mark in ('"""', '"'):
        candidate = mark + text + mark
        lines = candidate.split("\n")
        cut_short = any(_complete("\n".join(lines[: i + 1])) for i in range(len(lines) - 1))
        if not cut_short and _complete(candidate):
            return candidate
    return None


def export_modelfile(persona: Persona) -> tuple[str, list[str]]:
    """An Ollama Modelfile for ``persona``, and what Ollama will not understand."""
    warnings: list[str] = []
    out = [
        f"# Ollama Modelfile exported by llama-tui from the persona {persona.name!r}.",
        f"# Create an Ollama model with: ollama create {persona.id or 'persona'} -f <this file>",
    ]
    meta = {key: getattr(persona, key) for key in _META_KEYS if getattr(persona, key)}
    out.append(META_PREFIX + " " + json.dumps(meta, ensure_ascii=False))
    if persona.model:
        out.append(f"FROM {persona.model}")
    else:
        out.append("# Set FROM to an Ollama model or a GGUF file before `ollama create`:")
        out.append("# FROM llama3.2")
        warnings.append("the persona names no model: set FROM before `ollama create`")
    for key in SPEC:
        if key in persona.sampling and key in OLLAMA_NAMES:
            out.append(f"PARAMETER {OLLAMA_NAMES[key]} {persona.sampling[key]}")
        elif key in persona.sampling:
            warnings.append(f"{key} has no Modelfile PARAMETER (not exported)")
    for stop in persona.stop:
        out.append(_line("PARAMETER stop", stop, warnings))
    if persona.system:
        out.append(_line("SYSTEM", persona.system, warnings))
    for example in persona.examples:
        out.append(_line("MESSAGE user", example.user, warnings))
        out.append(_line("MESSAGE assistant", example.ai, warnings))
    texts = [persona.system, *[e.user + e.ai for e in persona.examples]]
    if any("{{" in text for text in texts):
        warnings.append(
            "Ollama does not fill {{user}}/{{ai}}/{{time}} placeholders; they stay as written"
        )
    if persona.mode == "transcript":
        warnings.append("Ollama has no transcript mode: it will use the model's chat template")
    if persona.greeting:
        warnings.append("Ollama has no greeting: it is kept only in the llama-tui comment")
    return "\n".join(out) + "\n", warnings


def _line(instruction: str, text: str, warnings: list[str]) -> str:
    quoted = quote(text)
    if quoted is None:
        # A line ending in a quote would end the value early (Ollama trims spaces
        # before checking), so such lines get an invisible ZERO WIDTH SPACE, which
        # Ollama keeps reading past and this reader removes again.
        text = _QUOTE_AT_EOL.sub('"' + _ZWSP, text)
        warnings.append(f"{instruction}: a line ending in a quote was marked with U+200B")
        quoted = quote(text) or f'"""{text}"""'
    return f"{instruction} {quoted}"
