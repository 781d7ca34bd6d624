"""Keystroke echo latency in the prompt, idle and while an answer streams at full speed.

The installed ``llama-tui`` (real model) runs in an 80x24 pseudo-terminal.
Keys are written to the pty one at a time, about 10 a second (a fast
typist): "§" (a character the model does not write) and, in turns,
Backspace. The latency of a key is the time from writing it until the first
chunk of output after which the screen shows the new number of "§" (pyte
plays the terminal; chunks are stamped as they are read).

Interleaved phases, repeated:

- **idle**: nothing else happening (the floor: Textual's own input path);
- **streaming**: while the benchmark persona (temperature 0) streams a
  1,500-token Markdown answer as fast as the model goes.

Target: streaming p95 <= 50 ms.

Usage::

    .venv/bin/python benchmarks/bench_typing_latency.py           # 3 reps
    .venv/bin/python benchmarks/bench_typing_latency.py --quick   # 1 rep, 600 tokens
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_streaming import CASES, write_config  # noqa: E402
from ptyapp import (  # noqa: E402
    CTRL_N,
    ENTER,
    ESC,
    Term,
    app_env,
    llama_tui_command,
    machine,
    percentile,
)

MARK = "§"
BACKSPACE = "\x7f"
RUN = 12  # "§" typed, then as many Backspaces


def count_marks(term: Term) -> int:
    return sum(line.count(MARK) for line in term.screen.display)


def key_latency(term: Term, key: str, expected: int, timeout: float = 5.0) -> float | None:
    watch = term.watch(lambda t: count_marks(t) == expected)
    t0 = term.send(key)
    if not watch.event.wait(timeout):
        return None
    return max(watch.at - t0, 0.0)


def type_keys(term: Term, seconds: float | None, keys: int | None, still_going) -> list[float]:
    """Type "§"/Backspace runs; returns the latencies (seconds)."""
    latencies: list[float] = []
    shown = count_marks(term)
    end = time.monotonic() + seconds if seconds else None
    rng = random.Random(5)
    while still_going():
        if end and time.monotonic() > end:
            break
        if keys and len(latencies) >= keys:
            break
        typing_up = (len(latencies) // RUN) % 2 == 0
        key, expected = (MARK, shown + 1) if typing_up or shown == 0 else (BACKSPACE, shown - 1)
        latency = key_latency(term, key, expected)
        if latency is None:
            shown = count_marks(term)
            print(f"   a key was not echoed within 5 s (screen has {shown} marks)")
            continue
        shown = expected
        latencies.append(latency)
        time.sleep(0.07 + rng.random() * 0.06)
    return latencies


def clear_marks(term: Term) -> None:
    count = count_marks(term)
    for _ in range(count):
        term.send(BACKSPACE)
    term.wait_for(lambda t: count_marks(t) == 0, timeout=10)


def report(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no keys"
    ms = [v * 1000 for v in values]
    return (
        f"{name}: n={len(ms)} p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 rep, a 600-token answer")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    prompt, max_tokens = CASES["markdown"]
    if args.quick:
        max_tokens = 600
    home = Path(tempfile.mkdtemp(prefix="bench-typing-"))
    write_config(home, max_tokens, args.threads)
    db = home / "chats.db"
    print(f"bench_typing_latency · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    term = Term(llama_tui_command(), [f"--db={db}"], env=app_env(home))
    idle: list[float] = []
    streaming: list[float] = []
    try:
        term.wait_for("ready", timeout=120)
        for rep in range(reps):
            values = type_keys(term, None, 48, lambda: True)
            idle.extend(values)
            print(f"rep {rep + 1} {report('idle', values)}", flush=True)
            clear_marks(term)

            term.send(CTRL_N)
            term.wait_for("New chat with", timeout=10)
            term.send(ENTER)
            term.wait_for(lambda t: "New chat with" not in t.text(), timeout=10)
            time.sleep(0.3)
            term.send(prompt)
            term.wait_for(prompt[:20], timeout=10)
            time.sleep(0.2)
            term.send(ENTER)
            term.wait_for(lambda t: "generating" in t.text(), timeout=30)
            time.sleep(0.5)  # tokens are flowing

            def answering() -> bool:
                with sqlite3.connect(db) as conn:
                    row = conn.execute(
                        "select status from messages where role = 'assistant'"
                        " order by id desc limit 1"
                    ).fetchone()
                return bool(row and row[0] == "partial")

            values = type_keys(term, 120, None, answering)
            streaming.extend(values)
            print(f"rep {rep + 1} {report('streaming', values)}", flush=True)
            if answering():
                term.send(ESC)
            term.wait_for(lambda t: "generating" not in t.text(), timeout=30)
            clear_marks(term)
    finally:
        term.close()
    print("-- keystroke echo latency (key written to the pty -> frame with the change)")
    print("   " + report("idle     ", idle))
    print("   " + report("streaming", streaming))
    if streaming:
        p95 = percentile(streaming, 95) * 1000
        verdict = "OK" if p95 <= 50 else "over target"
        print(f"   streaming p95 {p95:.1f} ms (target <= 50 ms: {verdict})")


if __name__ == "__main__":
    main()
