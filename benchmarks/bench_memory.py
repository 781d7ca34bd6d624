"""Memory: the UI process and the engine process, with a 10,000-chat database.

llama-tui runs as two processes: the UI (Textual, the database) and the
engine child (llama.cpp and the model). Each is measured on its own (RSS and
USS from psutil), in the installed ``llama-tui`` in an 80x24 pseudo-terminal,
against baselines started the same way:

- **model-alone**: a bare Python process that loads the same model with the
  same ``llama_cpp.Llama`` arguments and generates 300 tokens (the model's
  own size: weights, KV cache, compute buffers, llama-cpp-python's logits);
- **model-alone · same context**: the same, but with as many tokens in its
  context as the app's engine held after its answer (its prompt and answer
  tokens, from the answer's record in the database). llama.cpp's KV cache is
  allocated whole but only becomes resident as tokens fill it (about 23 KiB a
  token for SmolLM2), so a long chat costs the model itself memory that a
  short prompt does not;
- **textual-floor**: a minimal Textual app (Python + Textual, nothing else);
- **app/empty-db** and **app/big-db** at "ready"; for big-db also after
  opening the 5,000-message chat and after one streamed 300-token answer.

Targets: UI RSS beyond the floor, and engine RSS beyond model-alone, each
<= 150 MB with the big database.

Usage::

    .venv/bin/python benchmarks/bench_memory.py            # 3 reps, 10k chats / 200k messages
    .venv/bin/python benchmarks/bench_memory.py --quick    # 1 rep, 1k chats / 20k messages
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from bench_startup import FLOOR_APP  # noqa: E402
from bench_streaming import CASES, write_config  # noqa: E402
from make_big_db import benchmark_db  # noqa: E402
from ptyapp import ENTER, Term, app_env, llama_tui_command, machine  # noqa: E402

MODEL_ALONE = """
import os, sys, time
devnull = os.open(os.devnull, os.O_WRONLY)
saved = os.dup(2)
os.dup2(devnull, 2)
import llama_cpp
from tui.core.models import default_model_path
llm = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=4096, verbose=True)
# A prompt of int(argv[1]) tokens (a short one by default), then as many tokens as the
# app's answer (300): the KV cache and llama-cpp-python's scores fill as they go.
context = int(sys.argv[1]) if len(sys.argv) > 1 else 0
prompt = llm.tokenize(b"Tell me a story.")
if context > 300:
    filler = llm.tokenize(b" The quick brown fox jumps over the lazy dog." * 600)
    prompt = (prompt + filler)[: context - 300]
for count, _token in enumerate(llm.generate(prompt, temp=0.0)):
    if count >= 300:
        break
os.dup2(saved, 2)
print("MODEL-READY", flush=True)
time.sleep(600)
"""
ALT_DOWN = "\x1b[1;3B"


def mem(proc: psutil.Process | None) -> tuple[float, float]:
    """(RSS, USS) in MiB."""
    if proc is None:
        return 0.0, 0.0
    info = proc.memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def engine_of(ui: psutil.Process) -> psutil.Process | None:
    children = ui.children()
    return children[0] if children else None


def settle(term: Term, quiet: float = 1.5, timeout: float = 60) -> None:
    """Wait until the app has drawn nothing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    time.sleep(0.2)
    while time.monotonic() < deadline:
        last = term.chunks[-1][0] if term.chunks else 0.0
        if time.monotonic() - last >= quiet:
            return
        time.sleep(0.1)


def measure_floor(env: dict[str, str]) -> tuple[float, float]:
    term = Term(sys.executable, ["-c", FLOOR_APP], env=env)
    try:
        term.wait_for("ready", timeout=60)
        time.sleep(1.0)
        return mem(psutil.Process(term.pid))
    finally:
        term.close()


def measure_model_alone(env: dict[str, str], context: int = 0) -> tuple[float, float]:
    """The model in a bare process, with ``context`` tokens in its KV cache (0: a short prompt)."""
    term = Term(sys.executable, ["-c", MODEL_ALONE, str(context)], env=env, live=False)
    try:
        deadline = time.monotonic() + 120
        while b"MODEL-READY" not in b"".join(d for _, d in term.chunks):
            if time.monotonic() > deadline:
                raise TimeoutError("model-alone did not load")
            time.sleep(0.1)
        time.sleep(0.5)
        return mem(psutil.Process(term.pid))
    finally:
        term.close(quit_keys=None)


def measure_app(home: Path, db: Path, env: dict[str, str], full: bool) -> dict[str, tuple]:
    term = Term(llama_tui_command(), [f"--db={db}"], env=env)
    out: dict[str, tuple] = {}
    try:
        term.wait_for("ready", timeout=120)
        time.sleep(1.5)
        ui = psutil.Process(term.pid)
        out["ready"] = (*mem(ui), *mem(engine_of(ui)))
        if not full:
            return out
        term.send(ALT_DOWN)  # the long chat is the second newest
        settle(term)
        out["long chat open"] = (*mem(ui), *mem(engine_of(ui)))
        prompt = CASES["short"][0]
        term.send(prompt)
        term.wait_for(prompt[:20], timeout=10)
        term.send(ENTER)
        deadline = time.monotonic() + 300
        with sqlite3.connect(db) as conn:
            before = conn.execute("select max(id) from messages").fetchone()[0]
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                row = conn.execute(
                    "select status from messages where id > ? and role = 'assistant'"
                    " order by id desc limit 1",
                    [before],
                ).fetchone()
            if row and row[0] != "partial":
                break
            time.sleep(0.2)
        time.sleep(1.5)
        out["after a 300-token answer"] = (*mem(ui), *mem(engine_of(ui)))
        with sqlite3.connect(db) as conn:
            (meta,) = conn.execute(
                "select meta from messages where role = 'assistant' order by id desc limit 1"
            ).fetchone()
        tokens = json.loads(meta or "{}")
        used = tokens.get("prompt_tokens", 0) + tokens.get("completion_tokens", 0)
        out["context tokens"] = (float(used),)
    finally:
        term.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    big_src = benchmark_db(args.quick)
    home = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    write_config(home, CASES["short"][1], None)
    env = app_env(home)
    print(f"bench_memory · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    rows: dict[str, list[tuple]] = {}
    for rep in range(reps):
        # A fresh copy each time: the answers written must not pile up.
        big = home / "big.db"
        src = sqlite3.connect(big_src)
        dst = sqlite3.connect(big)
        src.backup(dst)
        src.close()
        dst.close()
        steps = [
            ("textual-floor", lambda: {"ready": (*measure_floor(env), 0.0, 0.0)}),
            ("model-alone", lambda: {"ready": (0.0, 0.0, *measure_model_alone(env))}),
            ("app/empty-db", lambda r=rep: measure_app(home, home / f"empty{r}.db", env, False)),
            ("app/big-db", lambda b=big: measure_app(home, b, env, True)),
        ]
        if rep % 2:
            steps.reverse()
        context = 0
        for name, step in steps:
            for phase, values in step().items():
                if phase == "context tokens":
                    context = int(values[0])
                    continue
                rows.setdefault(f"{name} · {phase}", []).append(values)
                print(
                    f"rep {rep + 1} {name:<14} {phase:<26} UI rss {values[0]:6.1f} uss "
                    f"{values[1]:6.1f} | engine rss {values[2]:6.1f} uss {values[3]:6.1f} MiB",
                    flush=True,
                )
        # After the app: the same number of tokens in a bare model's context.
        values = (0.0, 0.0, *measure_model_alone(env, context))
        rows.setdefault("model-alone · same context", []).append(values)
        print(f"rep {rep + 1} model-alone    same context ({context} tokens)  "
              f"engine rss {values[2]:6.1f} uss {values[3]:6.1f} MiB", flush=True)  # fmt: skip

    def med(key: str, index: int) -> float:
        return statistics.median(v[index] for v in rows[key])

    print(f"-- memory in MiB, median of {reps} (RSS / USS)")
    for key in rows:
        print(
            f"   {key:<42} UI {med(key, 0):6.1f} / {med(key, 1):6.1f}   "
            f"engine {med(key, 2):6.1f} / {med(key, 3):6.1f}"
        )
    floor = med("textual-floor · ready", 0)
    model = med("model-alone · ready", 2)
    same_context = med("model-alone · same context", 2)
    for key in rows:
        if key.startswith("app/big-db"):
            ui_over = med(key, 0) - floor
            engine_over = med(key, 2) - model
            verdict = "OK" if max(ui_over, engine_over) <= 150 else "over target"
            print(
                f"   {key}: UI {med(key, 0):.0f} MiB ({ui_over:+.0f} over the Textual floor), "
                f"engine {engine_over:+.0f} MiB over the model alone (target <= 150: {verdict})"
            )
    after = "app/big-db · after a 300-token answer"
    if after in rows:
        print(
            f"   {after}: engine {med(after, 2) - same_context:+.0f} MiB over the model alone "
            f"with the same number of tokens in its context ({same_context:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
