"""The ``llama-tui`` command: the TUI by default, plus a few subcommands.

Subcommands reuse the core modules; nothing here imports Textual unless the
TUI is started.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui import __version__, paths
from tui.config import load_config
from tui.models import INSTALL_HINT, ModelFileError, check_model_file, default_model_path
from tui.personas import load_library
from tui.store import Store, StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llama-tui",
        description="Chat with local language models (llama.cpp) in your terminal.",
        epilog=(
            "Data: $LLAMA_TUI_DATA_DIR or the XDG data dir; config and your personas: "
            "$LLAMA_TUI_CONFIG_DIR or the XDG config dir."
        ),
    )
    parser.add_argument("--version", action="version", version=f"llama-tui {__version__}")
    parser.add_argument("--model", "-m", metavar="PATH.gguf", help="the GGUF model to chat with")
    parser.add_argument(
        "--db", metavar="PATH", help="the chat database (default: $LLAMA_TUI_DB or the data dir)"
    )
    parser.add_argument("--persona", "-p", metavar="NAME", help="persona for new chats")
    parser.add_argument("--threads", "-t", type=int, metavar="N", help="CPU threads for llama.cpp")
    parser.add_argument(
        "--gpu-layers", type=int, metavar="N", help="layers to offload to the GPU (-1 = all)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    personas = sub.add_parser("personas", help="list the personas")
    personas.add_argument("action", choices=["list"], nargs="?", default="list")
    chats = sub.add_parser("chats", help="list the chats in the database")
    chats.add_argument("action", choices=["list"], nargs="?", default="list")
    sub.add_parser("paths", help="show where data, config and logs live")
    return parser


def resolve_model(arg: str | None, configured: str) -> tuple[Path | None, str]:
    """The model to use and, if none is usable, a message saying why."""
    chosen = arg or configured
    if chosen:
        path = Path(chosen).expanduser()
        try:
            check_model_file(path)
        except ModelFileError as exc:
            return None, str(exc)
        return path, ""
    path = default_model_path()
    if path is None:
        return None, f"No model is installed. {INSTALL_HINT}"
    return path, ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config()
    db_path = Path(args.db).expanduser() if args.db else paths.default_db_path()

    if args.command == "paths":
        print(f"database: {db_path}")
        print(f"config:   {config.path}")
        print(f"personas: {paths.user_personas_dir()}")
        print(f"log:      {paths.log_path()}")
        return 0
    if args.command == "personas":
        library = load_library()
        for persona in library.sorted():
            origin = "bundled" if persona.bundled else "user"
            print(f"{persona.id:<16} {origin:<8} {persona.description}")
        for problem in library.problems:
            print(f"warning: {problem}", file=sys.stderr)
        return 0

    try:
        store = Store(db_path)
    except StoreError as exc:
        print(f"llama-tui: {exc}", file=sys.stderr)
        return 1

    if args.command == "chats":
        for conversation in store.list_conversations():
            print(
                f"{conversation.id:>6}  {conversation.updated_at[:16]}  "
                f"{conversation.message_count:>4} msgs  {conversation.title}"
            )
        return 0

    for problem in config.problems:
        print(f"warning: {problem}", file=sys.stderr)
    model_path, problem = resolve_model(args.model, config.model)
    from tui.app import LlamaTUI  # Textual only when the TUI runs
    from tui.engine.local import LocalEngine

    app = LlamaTUI(
        store=store,
        engine=LocalEngine(paths.log_path()),
        personas=load_library(),
        model_path=model_path,
        default_persona=args.persona or config.persona,
        model_problem=problem,
        n_threads=args.threads or config.n_threads,
        n_gpu_layers=args.gpu_layers if args.gpu_layers is not None else config.n_gpu_layers,
    )
    app.run()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
