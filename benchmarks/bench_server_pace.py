"""Every pace of server: a very fast stream and a very slow one, on screen in time.

A scripted OpenAI-compatible server streams to the real app
(``llama-tui --endpoint URL``) in an 80x24 pseudo-terminal:

- **fast**: 3,000 tokens at 2,000 tokens/s (a small model on a big GPU): how
  long after the server sent its last token that token is on screen, and the
  UI process's CPU seconds from Enter to the end, per second of stream (cores);
- **slow**: 40 tokens at 5 tokens/s (a big model on a CPU), each a distinct
  word: for every token, the time from the server sending it to the first
  frame showing it.

Side by side, interleaved: **base** (the code before this branch, in a
temporary ``git worktree``; ``--baseline REV``) and **new** (this tree).

Targets: fast: last token on screen within 0.3 s, at most half a core;
slow: every token on screen within 50 ms of its arrival.

Usage::

    .venv/bin/python benchmarks/bench_server_pace.py            # 3 reps
    .venv/bin/python benchmarks/bench_server_pace.py --quick    # 1 rep
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_streaming import write_config  # noqa: E402
from ptyapp import Term, app_env, machine, percentile  # noqa: E402
from wireapp import (  # noqa: E402
    END,
    CpuClock,
    PacedReply,
    default_baseline,
    markdown_answer,
    paced_server,
    rev_name,
    split_tokens,
    versions,
)


def start(command: Path, reply: PacedReply) -> tuple[Term, object]:
    server = paced_server(reply)
    home = Path(tempfile.mkdtemp(prefix="bench-pace-"))
    write_config(home, 8000, None)  # no token limit in the way
    term = Term(str(command), ["--endpoint", server.base_url], env=app_env(home))
    term.wait_for("ready", timeout=60)
    term.send("go")
    term.wait_for("go", timeout=10)
    time.sleep(0.3)
    return term, server


def fast_run(command: Path, tokens: list[str], rate: float) -> tuple[float, float, float]:
    """(last token's delay on screen, UI CPU seconds, stream seconds)."""
    reply = PacedReply(tokens, rate)
    term, server = start(command, reply)
    try:
        clock = CpuClock(term.pid)
        cpu0 = clock.seconds()
        shown = term.watch(lambda t: END in t.text())
        term.send("\r")
        if not shown.event.wait(120):
            raise TimeoutError(term.text())
        term.wait_for(lambda t: "ready" in t.text() and "generating" not in t.text(), 30)
        cpu = clock.seconds() - cpu0
        return shown.at - reply.sent[-1], cpu, reply.sent[-1] - reply.sent[0]
    finally:
        term.close()
        server.close()  # type: ignore[attr-defined]


def shows(word: str):  # noqa: ANN201
    return lambda term: word in term.text()


def slow_run(command: Path, count: int, rate: float) -> list[float]:
    """Per token: its delay on screen (seconds)."""
    tokens = [f" w{i:03d}x" for i in range(count)] + [f" {END}"]
    reply = PacedReply(tokens, rate)
    term, server = start(command, reply)
    try:
        watches = [term.watch(shows(token.strip())) for token in tokens]
        term.send("\r")
        if not watches[-1].event.wait(30 + count / rate):
            raise TimeoutError(term.text())
        for watch in watches:
            watch.event.wait(5)
        return [w.at - s for w, s in zip(watches, reply.sent, strict=True) if w.event.is_set()]
    finally:
        term.close()
        server.close()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 rep")
    parser.add_argument("--baseline", default=None, help="git revision (default: merge-base)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--fast-rate", type=float, default=2000.0)
    parser.add_argument("--fast-tokens", type=int, default=3000)
    parser.add_argument("--slow-rate", type=float, default=5.0)
    parser.add_argument("--slow-tokens", type=int, default=40)
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    fast_tokens = split_tokens(markdown_answer(args.fast_tokens))[: args.fast_tokens - 1]
    fast_tokens.append(f" {END}\n")
    baseline = None if args.no_baseline else (args.baseline or default_baseline())
    print(f"bench_server_pace · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    print(f"base = {rev_name(baseline) if baseline else '-'}")
    with versions(baseline) as commands:
        fast: dict[str, list[tuple[float, float, float]]] = {n: [] for n in commands}
        slow: dict[str, list[float]] = {n: [] for n in commands}
        for _ in range(reps):
            for name, command in commands.items():
                fast[name].append(fast_run(command, fast_tokens, args.fast_rate))
                slow[name].extend(slow_run(command, args.slow_tokens, args.slow_rate))
        print(f"-- fast: {len(fast_tokens)} tokens at {args.fast_rate:g}/s, {reps} reps")
        for name, runs in fast.items():
            lags = [r[0] * 1000 for r in runs]
            cores = [r[1] / max(r[2], 1e-9) for r in runs]
            cpu = [r[1] for r in runs]
            print(
                f"   {name:5} last token on screen +{statistics.median(lags):.0f} ms "
                f"[{min(lags):.0f}..{max(lags):.0f}] · UI CPU {statistics.median(cpu):.2f} s "
                f"= {statistics.median(cores):.2f} cores over the "
                f"{statistics.median(r[2] for r in runs):.2f} s stream"
            )
        print(f"-- slow: {args.slow_tokens} tokens at {args.slow_rate:g}/s, {reps} reps")
        for name, values in slow.items():
            ms = [v * 1000 for v in values]
            print(
                f"   {name:5} token on screen after its arrival: n={len(ms)} "
                f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
                f"max {max(ms):.1f} ms"
            )
    print(f"load after: {machine().rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
