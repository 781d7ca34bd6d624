"""A slow link: the terminal's output throttled to 1 Mbit/s while an answer streams.

The real app (``llama-tui --endpoint URL``, a scripted server streaming a
Markdown answer) runs in a pseudo-terminal whose output is read through a
relay that lets at most ``--mbit`` megabits a second through (read a little,
sleep for the time those bytes take on the link), as SSH over a thin link
does: what the app writes beyond that waits in the kernel's pty buffer, then
in the app's writer. Meanwhile a letter ("§") is typed every 250 ms.

Measured, per version and rate: how long after the server's last token the
whole answer is on screen (catch-up), the echo of each letter (key written ->
the frame that shows it, through the throttled link), the bytes written, and
how late the server's last token went out against its schedule (if the app
stopped reading the server, the server would be held back).

Side by side, interleaved: **base** (the code before this branch, in a
temporary ``git worktree``; ``--baseline REV``) and **new** (this tree).

Targets: catch-up within 1 s of the last token, echo within 100 ms.

Usage::

    .venv/bin/python benchmarks/bench_slow_link.py             # 2 reps, 100 and 1000 tokens/s
    .venv/bin/python benchmarks/bench_slow_link.py --quick     # 1 rep
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_streaming import write_config  # noqa: E402
from ptyapp import Term, app_env, machine, percentile  # noqa: E402
from wireapp import (  # noqa: E402
    END,
    PacedReply,
    default_baseline,
    markdown_answer,
    paced_server,
    rev_name,
    split_tokens,
    versions,
)

MARK = "§"


class SlowTerm(Term):
    """A Term whose output comes through a link of ``rate`` bytes per second."""

    def __init__(self, *args: object, rate: float, **kwargs: object) -> None:
        self.rate = rate
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _read(self) -> None:
        fd = self.child.child_fd
        free_at = time.monotonic()  # when the link can take the next byte
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if not ready:
                    if not self.child.isalive():
                        break
                    continue
                data = os.read(fd, 1024)
            except OSError:
                break
            if not data:
                break
            free_at = max(free_at, time.monotonic()) + len(data) / self.rate
            delay = free_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the bytes arrive once the link has carried them
            self.chunks.append((time.monotonic(), data))
            self._arrived.set()
        self._eof = True
        self._arrived.set()


@dataclass
class Run:
    catch_up: float
    echoes: list[float]
    missed: int
    kib: float
    server_late: float


def marks(term: Term) -> int:
    return sum(line.count(MARK) for line in term.screen.display)


def run_once(
    command: Path, tokens: list[str], rate: float, link: float, size: tuple[int, int]
) -> Run:
    reply = PacedReply(tokens, rate)
    server = paced_server(reply)
    home = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    write_config(home, 8000, None)
    cols, rows = size
    env = app_env(home, COLUMNS=str(cols), LINES=str(rows))
    term = SlowTerm(
        str(command), ["--endpoint", server.base_url], env=env, cols=cols, rows=rows, rate=link
    )
    try:
        term.wait_for("ready", timeout=60)
        term.send("go")
        term.wait_for("go", timeout=10)
        time.sleep(0.3)
        start = len(term.chunks)
        shown = term.watch(lambda t: END in t.text())
        term.send("\r")
        term.wait_for(lambda t: "generating" in t.text(), timeout=30)
        time.sleep(0.2)
        echoes: list[float] = []
        missed = 0
        typed = 0
        while not shown.event.is_set() and len(reply.sent) < len(tokens):
            typed += 1
            watch = term.watch(lambda t, n=typed: marks(t) >= n)
            sent = term.send(MARK)
            if watch.event.wait(2.0):
                echoes.append(watch.at - sent)
            else:
                missed += 1
            time.sleep(max(0.25 - (time.monotonic() - sent), 0))
        if not shown.event.wait(120):
            raise TimeoutError(term.text())
        planned = reply.sent[0] + (len(tokens) - 1) / rate
        return Run(
            catch_up=shown.at - reply.sent[-1],
            echoes=echoes,
            missed=missed,
            kib=term.bytes_since(start) / 1024,
            server_late=reply.sent[-1] - planned,
        )
    finally:
        term.close()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 rep")
    parser.add_argument("--mbit", type=float, default=1.0)
    parser.add_argument("--rates", default="100,1000", help="tokens/s, comma-separated")
    parser.add_argument("--tokens", type=int, default=600)
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--baseline", default=None, help="git revision (default: merge-base)")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    size = tuple(int(v) for v in args.size.split("x"))
    link = args.mbit * 1_000_000 / 8
    baseline = None if args.no_baseline else (args.baseline or default_baseline())
    print(f"bench_slow_link · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    print(
        f"link {args.mbit:g} Mbit/s, {size[0]}x{size[1]}; "
        f"base = {rev_name(baseline) if baseline else '-'}"
    )
    with versions(baseline) as commands:
        for rate in (float(r) for r in args.rates.split(",")):
            # At least 3 s of stream, so that there is time to type.
            tokens = split_tokens(markdown_answer(max(args.tokens, int(rate * 3))))
            runs: dict[str, list[Run]] = {name: [] for name in commands}
            for _ in range(reps):
                for name, command in commands.items():
                    runs[name].append(run_once(command, tokens, rate, link, size))  # type: ignore[arg-type]
            print(f"-- {rate:g} tokens/s, {len(tokens)} tokens, {reps} reps")
            for name, results in runs.items():
                echoes = [e * 1000 for r in results for e in r.echoes]
                catch = [r.catch_up for r in results]
                echo = (
                    f"p50 {percentile(echoes, 50):.0f} ms, p95 {percentile(echoes, 95):.0f} ms, "
                    f"max {max(echoes):.0f} ms (n={len(echoes)})"
                    if echoes
                    else "none"
                )
                print(
                    f"   {name:5} answer whole on screen +{statistics.median(catch):.2f} s "
                    f"[{min(catch):.2f}..{max(catch):.2f}] after the last token · echo {echo}"
                    f", {sum(r.missed for r in results)} not within 2 s"
                    f" · {statistics.median(r.kib for r in results):.0f} KiB"
                    f" · server late {max(r.server_late for r in results) * 1000:.0f} ms"
                )
    print(f"load after: {machine().rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
