"""Launch to interactive first frame, with a 10,000-chat database.

Runs the installed ``llama-tui`` in an 80x24 pseudo-terminal (pexpect + pyte)
and stamps, from the moment before the process is spawned:

- **frame**: the first screen with the sidebar ("Chats") and the status line;
- **chats**: the first screen listing the newest chat's title (the sidebar
  filled: the app is usable);
- **ready**: the status line says "ready" (the model loaded, after the frame).

Interleaved, repetition after repetition, with two baselines:

- **textual-floor**: a minimal Textual app (one Static) started the same way:
  the cost of Python + Textual + the first frame, which llama-tui cannot beat;
- **empty-db**: llama-tui with an empty database;
- **big-db**: llama-tui with the big database (see make_big_db.py).

Target: big-db "chats" <= 0.7 s (median of >= 5 runs); the model loads after.

Usage::

    .venv/bin/python benchmarks/bench_startup.py            # 7 reps, 10k chats / 200k messages
    .venv/bin/python benchmarks/bench_startup.py --quick    # 3 reps, 1k chats / 20k messages
    .venv/bin/python benchmarks/bench_startup.py --profile /tmp/startup.html  # pyinstrument
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_big_db import benchmark_db  # noqa: E402
from ptyapp import CTRL_Q, Term, app_env, llama_tui_command, machine, summary  # noqa: E402

FLOOR_APP = """
from textual.app import App
from textual.widgets import Footer, Static

class Floor(App):
    def compose(self):
        yield Static("Chats")
        yield Static("ready")
        yield Footer()

Floor().run()
"""


def newest_title(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "select title from conversations where archived = 0"
            " order by pinned desc, updated_at desc, id desc limit 1"
        ).fetchone()
    return " ".join((row[0] if row else "").split())


def launch(kind: str, db: Path | None, env: dict[str, str], title: str) -> dict[str, float]:
    """One start; returns the seconds from spawn to each milestone."""
    if kind == "textual-floor":
        term = Term(sys.executable, ["-c", FLOOR_APP], env=env)
        quit_keys = CTRL_Q
    else:
        term = Term(llama_tui_command(), [f"--db={db}"], env=env)
        quit_keys = CTRL_Q
    t0 = term.started
    marks: dict[str, float] = {}
    try:
        frame = term.watch(_status)
        needle = title[:14]
        chats = term.watch(lambda t: needle in t.text())
        ready = term.watch(lambda t: "ready" in t.text())
        for name, watch in (("frame", frame), ("chats", chats), ("ready", ready)):
            if watch.event.wait(60):
                marks[name] = watch.at - t0
    finally:
        term.close(quit_keys)
    return marks


def _status(term: Term) -> bool:
    text = term.text()
    return "Chats" in text and ("loading model" in text or "ready" in text or "error" in text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 reps, a 1k-chat database")
    parser.add_argument("--db", type=Path, help="use this database as big-db")
    parser.add_argument("--profile", metavar="FILE", help="pyinstrument one big-db start")
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    big = args.db or benchmark_db(args.quick)
    home = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = app_env(home)
    empty = home / "empty.db"
    print(f"bench_startup · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    print(f"big-db: {big} ({big.stat().st_size / 2**20:.0f} MiB)")

    if args.profile:
        profile_start(big, env, args.profile)
        return

    launch("empty-db", empty, env, "New chat")  # creates the empty database; warms caches
    launch("big-db", big, env, newest_title(big))
    kinds = {
        "textual-floor": (None, "Chats"),
        "empty-db": (empty, "New chat"),
        "big-db": (big, newest_title(big)),
    }
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for rep in range(reps):
        order = list(kinds)
        if rep % 2:
            order.reverse()
        for kind in order:
            db, title = kinds[kind]
            marks = launch(kind, db, env, title)
            results[kind].append(marks)
            shown = ", ".join(f"{k} {v:.3f}s" for k, v in marks.items())
            print(f"rep {rep + 1} {kind:<14} {shown}", flush=True)

    print(f"-- launch to milestone, {reps} interleaved reps")
    for kind, runs in results.items():
        for mark in ("frame", "chats", "ready"):
            values = [r[mark] for r in runs if mark in r]
            if values and not (kind == "textual-floor" and mark != "frame"):
                print(f"   {kind:<14} {mark:<6} {summary(values)}")
    big_chats = sorted(r["chats"] for r in results["big-db"] if "chats" in r)
    if big_chats:
        median = big_chats[len(big_chats) // 2]
        verdict = "OK" if median <= 0.7 else "over target"
        print(f"   big-db first usable frame: median {median:.3f}s (target <= 0.7 s: {verdict})")


def profile_start(big: Path, env: dict[str, str], output: str) -> None:
    """pyinstrument the UI process from start to first usable frame (then quit)."""
    command = Path(sys.executable).parent / "pyinstrument"
    if not command.exists():
        sys.exit("pyinstrument is not installed: .venv/bin/pip install pyinstrument")
    renderer = "html" if output.endswith(".html") else "text"
    args = ["-r", renderer, "-o", output, "-m", "tui.cli", f"--db={big}"]
    term = Term(str(command), args, env=env)
    title = newest_title(big)[:14]
    try:
        term.wait_for(lambda t: title in t.text(), timeout=60)
        time.sleep(0.5)
    finally:
        term.close(CTRL_Q, timeout=30)
    print(f"profile written to {output}")


if __name__ == "__main__":
    main()
