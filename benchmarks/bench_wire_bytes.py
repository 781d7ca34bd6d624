"""Bytes written to the terminal per answer character while a Markdown answer streams.

A scripted OpenAI-compatible server streams a Markdown answer (headings,
lists, code blocks; ~4-character tokens) at 100 tokens/s; the real app
(``llama-tui --endpoint URL``) runs in a pseudo-terminal of 80x24 and of
120x40, the view following the answer. Every byte the app writes to the pty
from Enter until the status line says "ready" again is counted, and divided
by the answer's length in characters and by the stream's duration.

Side by side in the same run, interleaved: **base** (the code before this
branch, checked out into a temporary ``git worktree``; ``--baseline REV``)
and **new** (this tree). Also printed: the last token's delay on screen
(server sent it -> its frame read from the pty) and the UI's CPU seconds, and
where the bytes go (frames that repaint half the pane or more, colour codes).

Target: <= 40 bytes per answer character at both sizes.

Usage::

    .venv/bin/python benchmarks/bench_wire_bytes.py              # 3 reps
    .venv/bin/python benchmarks/bench_wire_bytes.py --quick      # 1 rep, 300 tokens
    .venv/bin/python benchmarks/bench_wire_bytes.py --dump /tmp/wire   # raw output per run
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_streaming import write_config  # noqa: E402
from ptyapp import Term, app_env, machine  # noqa: E402
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

SIZES = ((80, 24), (120, 40))


@dataclass
class Run:
    bytes: int
    chars: int
    seconds: float  # first token sent -> last token sent
    lag: float  # last token sent -> on screen
    cpu: float  # UI CPU seconds from Enter to "ready"
    output: bytes

    @property
    def per_char(self) -> float:
        return self.bytes / self.chars

    @property
    def per_second(self) -> float:
        return self.bytes / max(self.seconds, 1e-9)


def run_once(command: Path, cols: int, rows: int, tokens: list[str], rate: float) -> Run:
    reply = PacedReply(tokens, rate)
    server = paced_server(reply)
    home = Path(tempfile.mkdtemp(prefix="bench-wire-"))
    write_config(home, 8000, None)  # no token limit in the way
    env = app_env(home, COLUMNS=str(cols), LINES=str(rows))
    term = Term(str(command), ["--endpoint", server.base_url], env=env, cols=cols, rows=rows)
    try:
        term.wait_for("ready", timeout=60)
        term.send("go")
        term.wait_for("go", timeout=10)
        time.sleep(0.3)
        clock = CpuClock(term.pid)
        cpu0 = clock.seconds()
        start = len(term.chunks)
        term.send("\r")
        shown = term.watch(lambda t: END in t.text())
        if not shown.event.wait(60 + len(tokens) / rate):
            raise TimeoutError(f"the answer's end never showed:\n{term.text()}")
        term.wait_for(lambda t: "ready" in t.text() and "generating" not in t.text(), timeout=30)
        time.sleep(0.3)  # the final frame's last bytes
        cpu = clock.seconds() - cpu0
        output = b"".join(data for _, data in term.chunks[start:])
        text = "".join(tokens)
        return Run(
            bytes=len(output),
            chars=len(text),
            seconds=reply.sent[-1] - reply.sent[0],
            lag=shown.at - reply.sent[-1],
            cpu=cpu,
            output=output,
        )
    finally:
        term.close()
        server.close()


def where_the_bytes_go(output: bytes, rows: int) -> str:
    """Frames (split where the cursor goes back to the prompt after each one), classed by
    how many rows they touch; and the share of colour codes, cursor moves and spaces."""
    ends = collections.Counter(re.findall(rb"\x1b\[(\d+;\d+)H(?=\x1b\[\d+;\d+H)", output))
    if not ends or not output:
        return "no frames"
    end = b"\x1b[" + ends.most_common(1)[0][0] + b"H"
    frames = [f for f in output.split(end) if f]
    whole = [f for f in frames if len(set(re.findall(rb"\x1b\[(\d+);\d+H", f))) >= rows // 2]
    sgr = sum(len(m) for m in re.findall(rb"\x1b\[[0-9;]*m", output))
    moves = sum(len(m) for m in re.findall(rb"\x1b\[[0-9;]*H", output))
    return (
        f"{len(frames)} frames; {len(whole)} repaint half the rows or more, "
        f"{sum(map(len, whole)) / len(output):.0%} of the bytes; colour codes "
        f"{sgr / len(output):.0%}, cursor moves {moves / len(output):.0%}, "
        f"spaces {output.count(b' ') / len(output):.0%}"
    )


def line(name: str, runs: list[Run]) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} [{min(values):.1f}..{max(values):.1f}]"

    return (
        f"   {name:5} bytes/char {med([r.per_char for r in runs])}"
        f" · KiB/s {med([r.per_second / 1024 for r in runs])}"
        f" · total KiB {statistics.median([r.bytes for r in runs]) / 1024:.0f}"
        f" · last token on screen +{statistics.median([r.lag for r in runs]) * 1000:.0f} ms"
        f" · UI CPU {statistics.median([r.cpu for r in runs]):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 rep, 300 tokens")
    parser.add_argument("--tokens", type=int, default=600)
    parser.add_argument("--rate", type=float, default=100.0, help="tokens/s")
    parser.add_argument("--baseline", default=None, help="git revision (default: merge-base)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--sizes", default="80x24,120x40")
    parser.add_argument("--dump", type=Path, help="write each run's raw output here")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    tokens = split_tokens(markdown_answer(300 if args.quick else args.tokens))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    baseline = None if args.no_baseline else (args.baseline or default_baseline())
    print(f"bench_wire_bytes · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    print(
        f"answer: {len(tokens)} tokens, {len(''.join(tokens))} characters, "
        f"{args.rate:g} tokens/s; base = {rev_name(baseline) if baseline else '-'}"
    )
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    with versions(baseline) as commands:
        for cols, rows in sizes:
            results: dict[str, list[Run]] = {name: [] for name in commands}
            for rep in range(reps):
                for name, command in commands.items():
                    run = run_once(command, cols, rows, tokens, args.rate)
                    results[name].append(run)
                    if args.dump:
                        (args.dump / f"{name}-{cols}x{rows}-{rep}.bin").write_bytes(run.output)
            print(f"-- {cols}x{rows}, {reps} reps (median [min..max])")
            for name, runs in results.items():
                print(line(name, runs), flush=True)
                print(f"         {where_the_bytes_go(runs[0].output, rows)}")
            new = statistics.median(r.per_char for r in results["new"])
            verdict = "OK" if new <= 40 else "over target"
            print(f"   new: {new:.1f} bytes per answer character (target <= 40: {verdict})")
    print(f"load after: {machine().rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
