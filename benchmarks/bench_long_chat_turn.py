"""A turn in the 5,000-message chat: the work before the model reads a token.

Two costs grow with a chat's length unless they are bounded:

- **history**: the UI reads the chat's messages and sends the turns to the
  engine (``ChatService.history`` and the pickle that crosses the pipe);
- **window**: the engine renders and tokenizes the turns to find the window
  that fits the context (``PromptBuilder.build``, with SmolLM2's tokenizer).

Each is timed for the long chat of the benchmark database (``make_big_db``)
in two states, side by side, interleaved:

- **no window stored** (``context_start_id`` empty: an imported chat, or the
  first turn after an upgrade): the first turn must look at the whole chat;
- **window stored** (every later turn): only the window is read.

and, as the baseline, the same with the short cuts off (the whole chat read
and sent, and the window found by tokenizing everything from the start: the
code before 2026-11-25). The windows found must be identical.

    .venv/bin/python benchmarks/bench_long_chat_turn.py [--reps 5] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_big_db import benchmark_db  # noqa: E402
from ptyapp import machine, summary  # noqa: E402

from tui.core import store as st  # noqa: E402
from tui.core.chat_service import ChatService  # noqa: E402
from tui.core.engine_protocol import LoadModel  # noqa: E402
from tui.core.models import default_model_path  # noqa: E402
from tui.core.personas import load_library  # noqa: E402
from tui.core.prompt import PersonaPrompt, PromptBuilder  # noqa: E402
from tui.engine.local.model import ModelRunner  # noqa: E402


class FullReadBuilder(PromptBuilder):
    """The baseline: every window search tokenizes the history from ``start``."""

    def _overflowing_suffix(self, *args: Any) -> None:
        return None


def full_history(runner: ChatService, conversation: st.Conversation) -> tuple[list, list]:
    """The baseline: the whole chat, whatever window is stored."""
    return runner.history(dataclasses.replace(conversation, context_start_id=None), upto=2**62)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 chats; the long one has 500")
    args = parser.parse_args()
    src = benchmark_db(args.quick)
    info = json.loads(Path(str(src) + ".json").read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-turn-"))
    db = work / "big.db"
    with sqlite3.connect(src) as a, sqlite3.connect(db) as b:
        a.backup(b)
    store = st.Store(db)
    chat_id = info["long_chat_id"]
    runner = ChatService.__new__(ChatService)  # only its history(): no engine, no personas
    runner.store = store

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)  # llama.cpp's load chatter
    model = ModelRunner(lambda event: None, lambda job_id: False, verbose=False)
    model.load(LoadModel(str(default_model_path()), n_ctx=4096))
    os.dup2(saved, 2)
    assert model.builder is not None
    baseline = FullReadBuilder(model.builder.fmt, model._tokenize)
    builders = {"new": model.builder, "baseline": baseline}
    library = load_library(user_dir=work / "no-personas")
    persona = PersonaPrompt.from_persona(library.get("assistant"))
    budget = 4096 - 1024  # n_ctx minus the default reserve for the answer

    # The window as the first turn finds it; the later turns start from it.
    conversation = store.get_conversation(chat_id)
    history, ids = runner.history(conversation, upto=2**62)
    window = builders["new"].build(persona, history, budget, 0)
    stored_id = ids[window.start]
    print(f"bench_long_chat_turn · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    print(f"chat of {len(history)} turns ({sum(len(t.content) for t in history):,} characters); "
          f"window from turn {window.start}: {len(window.tokens)} tokens")  # fmt: skip

    times: dict[str, list[float]] = {}
    sent: dict[str, int] = {}
    for rep in range(args.reps):
        order = ["new", "baseline"] if rep % 2 == 0 else ["baseline", "new"]
        for stored in (None, stored_id):
            state = "no window stored" if stored is None else "window stored"
            store.update_conversation(chat_id, context_start_id=stored)
            conversation = store.get_conversation(chat_id)
            for kind in order:
                began = time.perf_counter()
                if kind == "new":
                    turns, turn_ids = runner.history(conversation, upto=2**62)
                else:
                    turns, turn_ids = full_history(runner, conversation)
                blob = pickle.dumps(turns, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.loads(blob)  # the engine's side of the pipe
                read = time.perf_counter()
                start = 0 if kind == "new" else turn_ids.index(stored) if stored else 0
                built = builders[kind].build(persona, turns, budget, start)
                done = time.perf_counter()
                assert turns[built.start:] == history[window.start:], (kind, state)  # fmt: skip
                times.setdefault(f"{state} · {kind} · history", []).append(read - began)
                times.setdefault(f"{state} · {kind} · window", []).append(done - read)
                times.setdefault(f"{state} · {kind} · total", []).append(done - began)
                sent[f"{state} · {kind}"] = len(blob)
    model.close()
    store.close()
    shutil.rmtree(work, ignore_errors=True)

    print(f"-- ms, median [min, max] of {args.reps}; the same window in every case")
    for state in ("no window stored", "window stored"):
        for kind in ("baseline", "new"):
            parts = "  ".join(
                f"{part} {summary(times[f'{state} · {kind} · {part}'], 'ms', 1000)}"
                for part in ("history", "window", "total")
            )
            kilobytes = sent[f"{state} · {kind}"] / 1e3
            print(f"   {state:<17} {kind:<8} {parts}  sent {kilobytes:.0f} kB")
        base = sorted(times[f"{state} · baseline · total"])[args.reps // 2]
        new = sorted(times[f"{state} · new · total"])[args.reps // 2]
        print(f"   {state}: {base / new:.0f}x less work before the first token")


if __name__ == "__main__":
    main()
