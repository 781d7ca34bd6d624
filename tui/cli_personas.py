"""``llama-tui personas list | show NAME | export NAME | import FILE``.

Plain functions over :mod:`tui.core.personas` and :mod:`tui.formats`, kept out
of ``cli.py`` so that it stays small: :func:`add_parser` declares the
subcommands, :func:`run` carries one out and returns the exit status.
Results go to ``out``; warnings and errors to ``err``, so that
``personas export bob -f card > bob.json`` writes nothing else to the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from tui.core import paths
from tui.core.personas import (
    Persona,
    PersonaLibrary,
    bundled_personas_dir,
    load_library,
    save_persona,
    slugify,
)
from tui.core.sanitize import clean_text
from tui.formats import (
    EXPORT_FORMATS,
    FORMATS,
    PersonaImportError,
    export_persona,
    export_toml,
    import_persona,
)
from tui.formats.card import export_card_png

_EXPORT_LABELS = {
    "toml": "a llama-tui persona",
    "modelfile": "an Ollama Modelfile",
    "card": "a V2 card",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``personas`` and its actions to ``subparsers`` (from ``add_subparsers``)."""
    parser = subparsers.add_parser(
        "personas",
        help="list, show, import and export personas",
        description="List, show, import and export personas. Without an action: list.",
    )
    actions = parser.add_subparsers(dest="personas_action", metavar="ACTION")
    actions.add_parser("list", help="list the personas (the default)")
    show = actions.add_parser("show", help="print a persona as TOML")
    show.add_argument("name", metavar="NAME", help="the persona's id or name")
    export = actions.add_parser(
        "export", help="write a persona as TOML, an Ollama Modelfile or a character card"
    )
    export.add_argument("name", metavar="NAME", help="the persona's id or name")
    export.add_argument(
        "--format", "-f", choices=EXPORT_FORMATS, default="toml", help="default: toml"
    )
    export.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output (a card to FILE.png is a PNG card)",
    )
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    imp = actions.add_parser(
        "import",
        help="import a Modelfile, character card (.json/.png), web UI character (.yaml), "
        "llama.cpp prompt (.txt) or persona (.toml)",
    )
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--name", metavar="NEW", help="the name (and so the id) to import it as")
    imp.add_argument("--format", choices=list(FORMATS), help="the file's format (default: detect)")
    imp.add_argument("--force", action="store_true", help="replace a user persona of that id")
    return parser


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Carry out ``args.personas_action``; 0 on success, 1 on an error (reported on ``err``)."""
    out, err = out or sys.stdout, err or sys.stderr
    action = getattr(args, "personas_action", None) or "list"
    handlers = {"list": _list, "show": _show, "export": _export, "import": _import}
    return handlers[action](args, out, err)


def find_persona(library: PersonaLibrary, name: str) -> Persona | None:
    """A persona by id, by the id its name would get, or by name (any case)."""
    for key in (name, slugify(name)):
        if key in library.personas:
            return library.personas[key]
    wanted = name.casefold()
    return next((p for p in library.sorted() if p.name.casefold() == wanted), None)


def _list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    library = load_library()
    for persona in library.sorted():
        origin = "bundled" if persona.bundled else "user"
        line = f"{persona.id:<16} {origin:<8} {persona.description}"
        out.write(clean_text(line).replace("\n", " ") + "\n")
    _problems(library, err)
    return 0


def _show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    library = load_library()
    persona = _lookup(library, args.name, err)
    if persona is None:
        return 1
    origin = "bundled" if persona.bundled else "user"
    out.write(clean_text(f"# {persona.id} ({origin}): {persona.path}") + "\n")
    out.write(clean_text(export_toml(persona)))
    return 0


def _export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    persona = _lookup(load_library(), args.name, err)
    if persona is None:
        return 1
    text, warnings = export_persona(persona, args.format)
    if args.output:
        target = Path(args.output).expanduser()
        if target.exists() and not args.force:
            err.write(f"llama-tui: {target} exists; use --force to overwrite it\n")
            return 1
        try:
            if args.format == "card" and target.suffix.lower() == ".png":
                data, warnings = export_card_png(persona)
                paths.write_private(target, data)
            else:
                paths.write_private(target, text)
        except OSError as exc:
            err.write(f"llama-tui: cannot write {target}: {exc.strerror}\n")
            return 1
        label = _EXPORT_LABELS[args.format]
        out.write(clean_text(f"Exported {persona.name!r} as {label}: {target}") + "\n")
    else:
        out.write(text)
    for warning in warnings:
        err.write(f"warning: {warning}\n")
    return 0


def _import(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        result = import_persona(Path(args.file).expanduser(), name=args.name, fmt=args.format)
    except PersonaImportError as exc:
        err.write(clean_text(f"llama-tui: cannot import {exc}") + "\n")
        return 1
    persona, user_dir = result.persona, paths.user_personas_dir()
    target = user_dir / f"{persona.id}.toml"
    twin = load_library().same_name(persona.name, other_than=persona.id)
    if twin is not None:
        err.write(
            clean_text(
                f"llama-tui: you already have a persona named {twin.name!r} ('{twin.id}'); "
                "use --name to import this one under another name\n"
            )
        )
        return 1
    if target.exists() and not args.force:
        err.write(
            f"llama-tui: you already have a persona '{persona.id}' ({target}); "
            "use --force to replace it, or --name to import under another name\n"
        )
        return 1
    try:
        path = save_persona(persona, user_dir)
    except OSError as exc:
        err.write(f"llama-tui: cannot save {target}: {exc.strerror}\n")
        return 1
    kind = FORMATS.get(result.format, result.format)
    out.write(f"Imported {persona.name!r} ({kind}) as '{persona.id}': {path}\n")
    if (bundled_personas_dir() / f"{persona.id}.toml").is_file():
        out.write(f"It replaces the bundled persona '{persona.id}' (delete {path} to undo).\n")
    for warning in result.warnings:
        err.write(clean_text(f"warning: {warning}") + "\n")
    return 0


def _lookup(library: PersonaLibrary, name: str, err: TextIO) -> Persona | None:
    persona = find_persona(library, name)
    if persona is None:
        err.write(
            clean_text(f"llama-tui: no persona {name!r} (see: llama-tui personas list)") + "\n"
        )
    _problems(library, err)
    return persona


def _problems(library: PersonaLibrary, err: TextIO) -> None:
    for problem in library.problems:
        err.write(clean_text(f"warning: {problem}") + "\n")
