"""Shared by the benchmarks: run a command in a pseudo-terminal and watch its screen.

A reader thread takes the child's output as it comes and stamps every chunk
with ``time.monotonic()`` (one clock for every process on Linux); it does
nothing else, so a chunk is stamped when it arrives, not when the parser
is done with the one before (pyte needs 10-20 ms for a full frame). While
``live`` is on, a second thread feeds each chunk to a pyte screen and checks
the registered watches after it, so a watch resolves with the time of the
very chunk that made it true. During a measurement ``live`` can be turned off:
chunks are then only recorded (no parsing competes with the app for the
CPU) and are parsed when ``live`` comes back on, with their original times.

This is a helper module, not a benchmark; the ``bench_*.py`` scripts import
it (run them as ``python benchmarks/bench_x.py``).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pyte

ROOT = Path(__file__).resolve().parent.parent
# The reader thread needs the GIL back within ~1 ms of its read to stamp the
# chunk on time, while the parser thread is busy in pyte (default: 5 ms).
sys.setswitchinterval(0.001)
COLS, ROWS = 80, 24
CTRL_N, CTRL_Q, ESC, ENTER = "\x0e", "\x11", "\x1b", "\r"


def llama_tui_command() -> str:
    """The installed ``llama-tui`` console script next to this Python.

    ``BENCH_LLAMA_TUI=/path/to/script`` runs another command instead (e.g. a
    wrapper that patches the app before ``tui.cli.main()``, to try a fix).
    """
    override = os.environ.get("BENCH_LLAMA_TUI")
    if override:
        return override
    candidate = Path(sys.executable).parent / "llama-tui"
    found = str(candidate) if candidate.exists() else shutil.which("llama-tui")
    if not found:
        sys.exit("the llama-tui command is not installed (make setup, or pip install -e .)")
    return found


def app_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment whose llama-tui data and config live under ``home``."""
    env = dict(os.environ)
    env.update(
        TERM="xterm-256color",
        COLUMNS=str(COLS),
        LINES=str(ROWS),
        LLAMA_TUI_DATA_DIR=str(home / "data"),
        LLAMA_TUI_CONFIG_DIR=str(home / "config"),
        LLAMA_TUI_CACHE_DIR=str(home / "cache"),
        XDG_DATA_HOME=str(home / "xdg-data"),
        XDG_CONFIG_HOME=str(home / "xdg-config"),
        XDG_CACHE_HOME=str(home / "xdg-cache"),
    )
    env.pop("LLAMA_TUI_DB", None)
    env.update(extra)
    return env


@dataclass
class Watch:
    predicate: Callable[[Term], bool]
    event: threading.Event = field(default_factory=threading.Event)
    at: float = 0.0  # monotonic time of the chunk that made the predicate true


class Term:
    """A child process in an 80x24 pty; its output stamped and (optionally) parsed."""

    def __init__(
        self,
        command: str,
        args: list[str],
        env: dict[str, str] | None = None,
        cols: int = COLS,
        rows: int = ROWS,
        live: bool = True,
    ):
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.chunks: list[tuple[float, bytes]] = []
        self._fed = 0
        self._live = live
        self._lock = threading.RLock()
        self._watches: list[Watch] = []
        self.hooks: list[Callable[[float, Term], None]] = []
        self.started = time.monotonic()
        self.child = pexpect.spawn(command, args, env=env, dimensions=(rows, cols), echo=False)
        self.pid = self.child.pid
        self.closed = threading.Event()
        self._arrived = threading.Event()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._parser = threading.Thread(target=self._parse, name="pty-parser", daemon=True)
        self._reader.start()
        self._parser.start()

    # --- output ---------------------------------------------------------------------

    def _read(self) -> None:
        fd = self.child.child_fd
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if not ready:
                    if not self.child.isalive():
                        break
                    continue
                data = os.read(fd, 1 << 16)
            except OSError:
                break
            if not data:
                break
            self.chunks.append((time.monotonic(), data))  # list.append is atomic
            self._arrived.set()
        self._eof = True
        self._arrived.set()

    def _parse(self) -> None:
        while True:
            self._arrived.wait(0.5)
            self._arrived.clear()  # before feeding: a chunk arriving meanwhile sets it again
            eof = self._eof
            with self._lock:
                if self._live:
                    self._feed_pending()
            if eof:
                break
        self.closed.set()

    def _feed_pending(self) -> None:
        while self._fed < len(self.chunks):
            stamp, data = self.chunks[self._fed]
            self._fed += 1
            self.stream.feed(data)
            for hook in self.hooks:
                hook(stamp, self)
            for watch in self._watches:
                if not watch.event.is_set() and watch.predicate(self):
                    watch.at = stamp
                    watch.event.set()
            self._watches = [w for w in self._watches if not w.event.is_set()]

    @property
    def live(self) -> bool:
        return self._live

    @live.setter
    def live(self, value: bool) -> None:
        with self._lock:
            self._live = value
            if value:
                self._feed_pending()

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self.screen.display)

    def watch(self, predicate: Callable[[Term], bool]) -> Watch:
        """Resolve when the screen satisfies ``predicate`` (checked after every chunk)."""
        watch = Watch(predicate)
        with self._lock:
            if predicate(self):
                watch.at = self.chunks[-1][0] if self.chunks else time.monotonic()
                watch.event.set()
            else:
                self._watches.append(watch)
        return watch

    def wait_for(self, predicate: Callable[[Term], bool] | str, timeout: float = 60) -> float:
        """Wait until the screen satisfies ``predicate`` (or shows a string); return when."""
        if isinstance(predicate, str):
            needle = predicate
            predicate = lambda term: needle in "\n".join(term.screen.display)  # noqa: E731
        watch = self.watch(predicate)
        if not watch.event.wait(timeout):
            raise TimeoutError(f"timed out after {timeout}s; screen was:\n{self.text()}")
        return watch.at

    def bytes_since(self, index: int) -> int:
        with self._lock:
            return sum(len(data) for _, data in self.chunks[index:])

    # --- input ----------------------------------------------------------------------

    def send(self, data: str | bytes) -> float:
        """Write keys to the child; returns the monotonic time just before writing."""
        raw = data.encode() if isinstance(data, str) else data
        stamp = time.monotonic()
        os.write(self.child.child_fd, raw)
        return stamp

    def close(self, quit_keys: str | None = CTRL_Q, timeout: float = 10) -> None:
        if quit_keys and self.child.isalive():
            with contextlib.suppress(OSError):
                self.send(quit_keys)
            self.closed.wait(timeout)
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


def region(term: Term, top: int, bottom: int, left: int, right: int) -> tuple[str, ...]:
    """Rows ``top..bottom-1``, columns ``left..right-1`` of the screen."""
    return tuple(line[left:right] for line in term.screen.display[top:bottom])


def status_line(term: Term) -> str:
    """The app's status line: the row just above the prompt box."""
    lines = term.screen.display
    for index in range(len(lines) - 2, 0, -1):
        # The prompt box's top border is the first row from the bottom starting with ╭
        if lines[index][24:].lstrip().startswith("╭") and index > 0:
            return lines[index - 1]
    return ""


def summary(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    """Median [min..max] (n), values multiplied by ``scale``."""
    if not values:
        return "n/a"
    scaled = sorted(v * scale for v in values)
    med = statistics.median(scaled)
    fmt = "{:.3f}" if unit == "s" else "{:.1f}"
    return (
        f"median {fmt.format(med)} {unit} [min {fmt.format(scaled[0])}, "
        f"max {fmt.format(scaled[-1])}] (n={len(scaled)})"
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank, of a non-empty list."""
    ordered = sorted(values)
    rank = max(int(round(q / 100 * len(ordered) + 0.5)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def machine() -> str:
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (
        f"{platform.node()} · {os.cpu_count()} cores · {cpu} · Python "
        f"{platform.python_version()} · load {load[0]:.2f}"
    )
