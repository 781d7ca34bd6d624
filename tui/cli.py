"""The ``llama-tui`` command: the TUI by default, plus subcommands for scripts.

Subcommands reuse the core modules (store, personas, chat service, engine); nothing
here imports Textual unless the TUI is started.
"""

from __future__ import annotations

import argparse
import os
import queue
import sqlite3
import sys
from pathlib import Path

from tui import __version__
from tui import cli_personas as persona_commands
from tui.core import paths
from tui.core.config import Config, load_config
from tui.core.endpoints import Endpoint
from tui.core.engine_protocol import Engine, EventCallback, Generate, LoadModel
from tui.core.models import INSTALL_HINT, ModelFileError, check_model_file, default_model_path
from tui.core.personas import load_library
from tui.core.store import Store, StoreError, describe


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
    parser.add_argument(
        "--endpoint",
        "-e",
        metavar="NAME|URL",
        help="chat with a model on an OpenAI-compatible server (llama.cpp, vLLM, Ollama): "
        "a name from [endpoints.NAME] in the config, or a URL like http://localhost:8080/v1",
    )
    parser.add_argument("--persona", "-p", metavar="NAME", help="persona for new chats")
    parser.add_argument("--threads", "-t", type=int, metavar="N", help="CPU threads for llama.cpp")
    parser.add_argument(
        "--gpu-layers", type=int, metavar="N", help="layers to offload to the GPU (-1 = all)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    persona_commands.add_parser(sub)

    chats = sub.add_parser("chats", help="list, show, export, import or delete chats")
    chat_sub = chats.add_subparsers(dest="action", metavar="ACTION")
    chat_sub.add_parser("list", help="the chats, most recent first")
    show = chat_sub.add_parser("show", help="print a chat as Markdown (the branch on screen)")
    show.add_argument("id", type=int)
    show.add_argument("--tree", action="store_true", help="print its branches as an outline")
    show.add_argument("--all-branches", action="store_true", help="print every branch")
    export = chat_sub.add_parser("export", help="export a chat as Markdown or JSON")
    export.add_argument("id", type=int)
    export.add_argument("--format", "-f", choices=["md", "json"], default="md")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    export.add_argument(
        "--all-branches",
        action="store_true",
        help="Markdown of every branch, not only the one on screen (JSON always has all)",
    )
    imp = chat_sub.add_parser(
        "import", help="import a chat exported as JSON (or as llama-tui's Markdown, FILE.md)"
    )
    imp.add_argument("file")
    delete = chat_sub.add_parser("delete", help="delete a chat and its messages")
    delete.add_argument("id", type=int)

    ask = sub.add_parser("ask", help="ask one question; the answer streams to stdout")
    ask.add_argument("prompt", nargs="?", help="the message (default: read stdin)")
    ask.add_argument("--chat", "-c", type=int, metavar="ID", help="continue this chat")
    ask.add_argument("--persona", dest="ask_persona", metavar="NAME")
    ask.add_argument("--model", dest="ask_model", metavar="PATH.gguf")
    ask.add_argument("--endpoint", dest="ask_endpoint", metavar="NAME|URL")
    ask.add_argument(
        "--think",
        action="store_true",
        help="show a reasoning model's thinking on stderr as it streams (stdout: the answer)",
    )
    ask.add_argument(
        "--reasoning",
        choices=["auto", "on", "off"],
        help="thinking on or off for this chat (auto: as the model's template or server says)",
    )
    ask.add_argument(
        "--reasoning-budget", type=int, metavar="N", help="thinking tokens before it must answer"
    )

    sub.add_parser("models", help="list the GGUF models the model picker offers")
    config = sub.add_parser("config", help="show the config file's path or contents")
    config.add_argument("action", choices=["path", "show"], nargs="?", default="show")
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


def choose_backend(
    model_arg: str | None, endpoint_arg: str | None, config: Config
) -> tuple[Path | None, Endpoint | None, str]:
    """(local model path, remote endpoint, problem): a remote endpoint wins if asked for."""
    from tui.core.endpoints import EndpointError, resolve_endpoint

    spec = endpoint_arg or ("" if model_arg else config.endpoint)
    if spec:
        try:
            return None, resolve_endpoint(spec, config.endpoints), ""
        except EndpointError as exc:
            return None, None, str(exc)
    path, problem = resolve_model(model_arg, config.model)
    return path, None, problem


def make_engine(endpoint: Endpoint | None, config: Config | None = None) -> Engine:
    if endpoint is not None:
        from tui.engine.remote import RemoteEngine

        return RemoteEngine(endpoint)
    from tui.engine.local.client import LocalEngine

    return LocalEngine(paths.log_path(), config.kv_cache_mb if config else None)


def main(argv: list[str] | None = None) -> int:
    """Run a command; any failure is one line on stderr and a non-zero status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141  # `llama-tui chats show 1 | head`: the reader left
    except (StoreError, sqlite3.Error) as exc:
        print(f"llama-tui: {_one_line(describe(exc))}", file=sys.stderr)
        return 1
    except (OSError, RecursionError, MemoryError, ValueError) as exc:
        print(f"llama-tui: {_one_line(_os_message(exc))}", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to be read"
    return str(exc) or type(exc).__name__


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config()
    db_path = Path(args.db).expanduser() if args.db else paths.default_db_path()

    if args.command == "paths":
        print(f"database: {db_path}")
        print(f"config:   {config.path}")
        print(f"personas: {paths.user_personas_dir()}")
        print(f"log:      {paths.log_path()}")
        print(f"cache:    {paths.cache_dir()}")
        print(f"kv cache: {paths.kv_states_dir()}  (saved chat states, kv_cache_mb)")
        return 0
    if args.command == "personas":
        return persona_commands.run(args)
    if args.command == "models":
        return models_command(args, config)
    if args.command == "config":
        return config_command(args, config)

    try:
        store = Store(db_path)
    except StoreError as exc:
        print(f"llama-tui: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "chats":
            return chats_command(args, store)
        if args.command == "ask":
            return ask_command(args, store, config)
        return run_tui(args, store, config)
    finally:
        store.close()


def models_command(args: argparse.Namespace, config: Config) -> int:
    from tui.core.gguf_info import GGUFError, read_gguf_info
    from tui.core.models import discover_models
    from tui.core.sanitize import clean_text

    found = discover_models(config.model_dirs, extra=[args.model or "", config.model])
    if not found:
        print(f"No GGUF models found. {INSTALL_HINT}", file=sys.stderr)
        return 1
    print(f"{'NAME':<34} {'QUANT':<7} {'SIZE':>9} {'CTX':>7} {'TEMPLATE':<8} {'SOURCE':<11} PATH")
    for path, source in found:
        shown = clean_text(str(path))  # a file name is data: no escape sequences
        try:
            info = read_gguf_info(path)
        except GGUFError as exc:
            name, problem = clean_text(path.name), clean_text(str(exc))
            print(f"{name:<34} {'?':<7} {'':>9} {'':>7} {'':<8} {source:<11} {shown} ({problem})")
            continue
        print(
            f"{info.name[:34]:<34} {info.quantization:<7} {info.size_label:>9} "
            f"{info.context_length:>7} {'yes' if info.has_chat_template else 'no':<8} "
            f"{source:<11} {shown}"
        )
    return 0


def config_command(args: argparse.Namespace, config: Config) -> int:
    assert config.path is not None
    if args.action == "path":
        print(config.path)
        return 0
    if config.path.is_file():
        sys.stdout.write(config.path.read_text("utf-8"))
    else:
        print(f"# {config.path} does not exist yet; the defaults are in use:", file=sys.stderr)
        import tomli_w

        defaults = {"persona": config.persona, "n_gpu_layers": config.n_gpu_layers,
                    "model_dirs": config.model_dirs}  # fmt: skip
        sys.stdout.write(tomli_w.dumps(defaults))
    for problem in config.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


def chats_command(args: argparse.Namespace, store: Store) -> int:
    from tui.core.chat_service import ChatService
    from tui.formats import chats as chat_formats

    action = args.action or "list"
    if action == "list":
        for conversation in store.list_conversations():
            print(
                f"{conversation.id:>6}  {conversation.updated_at[:16].replace('T', ' ')}  "
                f"{store.count_messages(conversation.id):>4} msgs  {conversation.title}"
            )
        return 0
    if action == "import":
        try:
            text = Path(args.file).read_text("utf-8")
            if args.file.endswith(".md"):
                conversation = chat_formats.import_markdown(store, text)
            else:
                conversation = chat_formats.import_json(store, chat_formats.loads(text))
        except (OSError, UnicodeDecodeError, chat_formats.ChatImportError) as exc:
            print(f"llama-tui: cannot import {args.file}: {exc}", file=sys.stderr)
            return 1
        print(f"imported as chat {conversation.id}: {conversation.title}")
        return 0
    try:
        store.get_conversation(args.id)
    except KeyError:
        print(
            f"llama-tui: there is no chat {args.id} (see `llama-tui chats list`)", file=sys.stderr
        )
        return 1
    service = ChatService(store, _NoEngine(), load_library(), "", formats=chat_formats)
    if action == "delete":
        conversation = service.delete_chat(args.id, keep_copy=False)  # no undo after we exit
        print(f"deleted chat {conversation.id}: {conversation.title}")
    elif action == "show" and args.tree:
        conversation = store.get_conversation(args.id)
        ai_name = service.persona_of(conversation).ai_name
        print(f"{conversation.title} (chat {args.id}) · ● the branch on screen")
        print(service.branch_outline(args.id, ai_name))
    elif action == "export" and args.output:
        out = service.export_chat(args.id, Path(args.output), args.format, args.all_branches)
        print(f"wrote {out}", file=sys.stderr)
    else:
        fmt = "md" if action == "show" else args.format
        sys.stdout.write(service.render_chat(args.id, fmt, args.all_branches))
    return 0


class _NoEngine(Engine):
    """The engine of the commands that run no turn (delete, show, export)."""

    def start(self, on_event: EventCallback) -> None:
        raise RuntimeError("this command runs no chat turn")

    def load(self, request: LoadModel) -> None:
        raise RuntimeError("this command loads no model")

    def generate(self, job: Generate) -> None:
        raise RuntimeError("this command runs no chat turn")

    def cancel(self, job_id: int) -> None:
        """Nothing runs here, so there is nothing to stop."""

    def close(self) -> None:
        """Nothing was started."""


def ask_command(args: argparse.Namespace, store: Store, config: Config) -> int:
    """One turn without the TUI, stored like a TUI turn; exit status 1 on failure."""
    from tui.core.chat_service import ChatService
    from tui.core.engine_protocol import (
        GenerationFailed,
        GenerationFinished,
        ModelFailed,
        TokenText,
    )

    prompt = args.prompt if args.prompt not in (None, "-") else sys.stdin.read()
    if not prompt.strip():
        print("llama-tui: nothing to ask (give a prompt or pipe one in)", file=sys.stderr)
        return 2
    model_path, endpoint, problem = choose_backend(
        args.ask_model or args.model, args.ask_endpoint or args.endpoint, config
    )
    if model_path is None and endpoint is None:
        print(f"llama-tui: {problem}", file=sys.stderr)
        return 1
    model_id = endpoint.label if endpoint else str(model_path)
    library = load_library()
    events: queue.Queue = queue.Queue()
    engine = make_engine(endpoint, config)
    service = ChatService(store, engine, library, model_id)
    if args.chat is not None:
        try:
            conversation = store.get_conversation(args.chat)
        except KeyError:
            print(f"llama-tui: there is no chat {args.chat}", file=sys.stderr)
            return 1
    else:
        persona = args.ask_persona or args.persona or config.persona
        conversation = service.new_conversation(persona)
        conversation.model = ""  # a new chat had no model: one that fails to load is not kept
    thinking_settings = {
        key: value
        for key, value in (
            ("reasoning", args.reasoning),
            ("reasoning_budget", args.reasoning_budget),
        )
        if value is not None
    }
    if thinking_settings:  # the chat keeps them, as the sampling panel would
        conversation.sampling = {**conversation.sampling, **thinking_settings}
        store.update_conversation(conversation.id, sampling=conversation.sampling)
    engine.start(events.put)
    status = 0
    gpu_layers = args.gpu_layers if args.gpu_layers is not None else config.n_gpu_layers
    try:
        engine.load(
            LoadModel(
                model_id,
                n_ctx=service.sampling_of(conversation).n_ctx,
                n_threads=args.threads or config.n_threads,
                n_gpu_layers=gpu_layers,
            )
        )
        service.send(conversation.id, prompt)
        reported: list[str] = []
        thought_shown = False  # the thinking on stderr was ended by a blank line
        while service.jobs:
            event = events.get()
            change = service.handle(event)
            if isinstance(event, TokenText) and change is not None:
                if change.thinking and args.think:  # the answer alone goes to stdout
                    sys.stderr.write(change.thinking)
                    sys.stderr.flush()
                if change.text and args.think and change.job.reasoning and not thought_shown:
                    thought_shown = True
                    sys.stderr.write("\n\n")
                sys.stdout.write(change.text)  # cleaned by the service, as it saved it
                sys.stdout.flush()
            elif isinstance(event, GenerationFinished) and event.reason == "capped":
                print(
                    "\nllama-tui: the server sent more than the token limit allows; "
                    "the answer was cut off there",
                    file=sys.stderr,
                )
            elif isinstance(event, ModelFailed | GenerationFailed):
                status = 1 if isinstance(event, GenerationFailed) else status
                if isinstance(event, ModelFailed) and event.path == service.model:
                    # The chat keeps the model it had, not one that cannot load.
                    store.update_conversation(conversation.id, model=conversation.model)
                # A failed load also fails the job, whose message repeats the reason.
                if not any(seen in event.message for seen in reported):
                    reported.append(event.message)
                    print(f"llama-tui: {event.message}", file=sys.stderr)
        sys.stdout.write("\n")
    except KeyboardInterrupt:
        service.cancel()
        service.flush_all("cancelled")
        status = 130
    finally:
        engine.close()
    print(f"(chat {conversation.id})", file=sys.stderr)
    return status


def run_tui(args: argparse.Namespace, store: Store, config: Config) -> int:
    for problem in config.problems:
        print(f"warning: {problem}", file=sys.stderr)
    model_path, endpoint, problem = choose_backend(args.model, args.endpoint, config)
    # Textual checks for screen updates at most TEXTUAL_FPS times a second (60 by
    # default), so a keystroke waited up to 17 ms for its frame while an answer
    # streamed. Streamed text stays at 30 frames a second (PAINT_INTERVAL).
    os.environ.setdefault("TEXTUAL_FPS", "120")
    from tui.ui.app import LlamaTUI  # Textual only when the TUI runs (reads TEXTUAL_FPS)

    app = LlamaTUI(
        store=store,
        engine=make_engine(endpoint, config),
        personas=load_library(),
        model_path=model_path,
        default_persona=args.persona or config.persona,
        model_problem=problem,
        n_threads=args.threads or config.n_threads,
        n_gpu_layers=args.gpu_layers if args.gpu_layers is not None else config.n_gpu_layers,
        personas_dir=paths.user_personas_dir(),
        model_dirs=config.model_dirs,
        endpoint=endpoint,
        config_problems=config.problems,  # printed above too, but the TUI hides that at once
        thinking=config.thinking,
    )
    if config.theme:
        app.use_theme(config.theme, str(config.path))
    app.run()
    from tui.ui.terminal import TERMINAL_GONE

    if TERMINAL_GONE.is_set():  # hung up: what Python flushes at exit has nowhere to go
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)
    return app.return_code or 0  # a crash (a traceback on screen) exits with 1


if __name__ == "__main__":
    sys.exit(main())
