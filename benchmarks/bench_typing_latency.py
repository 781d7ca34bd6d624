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

Target: streaming p95 <= 25 ms (was 50 ms until 2026-12-02).

``--tmux`` runs the app inside tmux (a private socket, no status bar), as many
SSH users do: the pty then carries what the tmux client draws. ``--compare``
runs the code before this branch too (a temporary ``git worktree``),
interleaved.

Usage::

    .venv/bin/python benchmarks/bench_typing_latency.py           # 3 reps
    .venv/bin/python benchmarks/bench_typing_latency.py --quick   # 1 rep, 600 tokens
    .venv/bin/python benchmarks/bench_typing_latency.py --tmux --tokens 1200 \\
        --interval 0.25 --compare   # the issue's tmux case, before and after
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
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
from wireapp import default_baseline, rev_name, versions  # noqa: E402

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


def type_keys(
    term: Term, seconds: float | None, keys: int | None, still_going, interval: float | None = None
) -> list[float]:
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
        sent = time.monotonic()
        latency = key_latency(term, key, expected)
        if latency is None:
            shown = count_marks(term)
            print(f"   a key was not echoed within 5 s (screen has {shown} marks)")
            continue
        shown = expected
        latencies.append(latency)
        if interval:
            time.sleep(max(interval - (time.monotonic() - sent), 0))
        else:
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


def tmux_command(
    command: str, args: list[str], socket: Path, size: tuple[int, int]
) -> tuple[str, list[str]]:
    """``command args`` inside a tmux session on a private socket, no status bar: the
    pty then sees what a user of tmux (over SSH, say) sees."""
    conf = socket.with_suffix(".conf")
    conf.write_text(
        'set -g status off\nset -g default-terminal "tmux-256color"\nset -sg escape-time 10\n',
        "utf-8",
    )
    cols, rows = size
    inner = " ".join([command, *args])
    return "tmux", ["-S", str(socket), "-f", str(conf), "new-session", "-x", str(cols),
                    "-y", str(rows), inner]  # fmt: skip


def tmux_clock(socket: Path):  # noqa: ANN201
    """A function returning the tmux server's CPU seconds so far."""
    import psutil

    out = subprocess.run(
        ["tmux", "-S", str(socket), "display-message", "-p", "#{pid}"],
        capture_output=True, text=True,
    )  # fmt: skip
    process = psutil.Process(int(out.stdout.strip()))
    return lambda: sum(process.cpu_times()[:2])


def one_version(name: str, command: str, args: argparse.Namespace, prompt: str, rep: int,
                idle: list[float], streaming: list[float]) -> None:  # fmt: skip
    """Start the app (in tmux, if asked), type while idle, then while an answer streams."""
    home = Path(tempfile.mkdtemp(prefix="bench-typing-"))
    write_config(home, args.tokens, args.threads)
    db = home / "chats.db"
    cols, rows = args.size
    env = app_env(home, COLUMNS=str(cols), LINES=str(rows))
    argv = [f"--db={db}"]
    socket = home / "tmux.sock"
    if args.tmux:
        command, argv = tmux_command(command, argv, socket, args.size)
    term = Term(command, argv, env=env, cols=cols, rows=rows)
    try:
        term.wait_for("ready", timeout=180)
        values = type_keys(term, None, args.idle_keys, lambda: True, args.interval)
        idle.extend(values)
        print(f"{name} rep {rep + 1} {report('idle', values)}", flush=True)
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
        term.wait_for(lambda t: "generating" in t.text(), timeout=60)
        time.sleep(0.5)  # tokens are flowing
        tmux_cpu = tmux_clock(socket) if args.tmux else None
        cpu0 = tmux_cpu() if tmux_cpu else 0.0

        def answering() -> bool:
            with sqlite3.connect(db) as conn:
                row = conn.execute(
                    "select status from messages where role = 'assistant' order by id desc limit 1"
                ).fetchone()
            return bool(row and row[0] == "partial")

        values = type_keys(term, 300, None, answering, args.interval)
        streaming.extend(values)
        extra = ""
        if tmux_cpu:
            # tmux stops drawing for 100 ms (then redraws everything) whenever more than
            # 1 + cols*rows*8 bytes wait for the terminal: it counts what it dropped.
            dropped = subprocess.run(
                ["tmux", "-S", str(socket), "list-clients", "-F", "#{client_discarded}"],
                capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            extra = (
                f" · tmux server CPU {tmux_cpu() - cpu0:.2f} s"
                f" · tmux discarded {int(dropped[0]) // 1024 if dropped else '?'} KiB"
            )
        print(f"{name} rep {rep + 1} {report('streaming', values)}{extra}", flush=True)
        if answering():
            term.send(ESC)
        term.wait_for(lambda t: "generating" not in t.text(), timeout=60)
    finally:
        term.close()
        if args.tmux:
            subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 rep, a 600-token answer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tmux", action="store_true", help="run the app inside tmux")
    parser.add_argument("--size", default="80x24", help="COLSxROWS")
    parser.add_argument(
        "--interval", type=float, default=None, help="seconds from key to key (default 0.07-0.13)"
    )
    parser.add_argument("--tokens", type=int, default=None, help="answer length (default 1,500)")
    parser.add_argument("--idle-keys", type=int, default=48)
    parser.add_argument(
        "--compare", action="store_true", help="also run the code before this branch, interleaved"
    )
    parser.add_argument("--baseline", default=None, help="with --compare: git revision")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    prompt, max_tokens = CASES["markdown"]
    args.tokens = args.tokens or (600 if args.quick else max_tokens)
    args.size = tuple(int(v) for v in args.size.split("x"))
    where = (
        f"tmux {args.size[0]}x{args.size[1]}" if args.tmux else f"pty {args.size[0]}x{args.size[1]}"
    )
    print(f"bench_typing_latency · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    pace = f"{args.interval:g} s" if args.interval else "0.07-0.13 s after each echo"
    print(f"{where}, {args.tokens}-token answer, a key every {pace}")
    baseline = (args.baseline or default_baseline()) if args.compare else None
    if baseline:
        print(f"base = {rev_name(baseline)}")
    with versions(baseline) as commands:
        if not args.compare:
            commands = {"app": Path(llama_tui_command())}
        idle: dict[str, list[float]] = {name: [] for name in commands}
        streaming: dict[str, list[float]] = {name: [] for name in commands}
        for rep in range(reps):
            for name, command in commands.items():
                one_version(name, str(command), args, prompt, rep, idle[name], streaming[name])
    print("-- keystroke echo latency (key written to the pty -> frame with the change)")
    for name in commands:
        print(f"   {name:5} " + report("idle     ", idle[name]))
        print(f"   {name:5} " + report("streaming", streaming[name]))
        if streaming[name]:
            p95 = percentile(streaming[name], 95) * 1000
            verdict = "OK" if p95 <= 25 else "over target"
            print(f"   {name:5} streaming p95 {p95:.1f} ms (target <= 25 ms: {verdict})")
    print(f"load after: {machine().rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
