"""The local llama.cpp engine: a child process that owns the model.

Why a process and not a thread: llama.cpp writes to the process's stdout and
stderr (which would scribble over the TUI) and can abort the whole process on
a broken model file. In a child process its output goes to a log file and a
crash is reported instead of taking the UI down. Commands and events cross a
socket pair as pickles; the cost is a few microseconds per token.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tui.core import paths
from tui.core.engine_protocol import (
    CANCEL_ALL,
    Cancel,
    CancelLoad,
    CleanEvents,
    Engine,
    EventCallback,
    Generate,
    GenerationFailed,
    GenerationFinished,
    LoadModel,
    ModelFailed,
)
from tui.core.turn_policy import FINISH_CANCELLED

CLOSE_GRACE = 0.5  # seconds the worker gets to stop by itself on close before it is killed

LOG_LIMIT_BYTES = 5 * 1024 * 1024


def read_log_tail(path: Path, lines: int = 12) -> str:
    """The last lines of the engine log, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(handle.tell() - 16384, 0))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def relevant_log_lines(tail: str, limit: int = 6) -> str:
    """The lines of llama.cpp's log that say why a load failed."""
    keywords = ("error", "failed", "invalid", "unknown", "unsupported", "corrupt", "exception")
    lines = [line for line in tail.splitlines() if any(k in line.lower() for k in keywords)]
    return "\n".join(lines[-limit:])


def _open_log(path: Path) -> int:
    """An fd for the child's stdout/stderr: the log (0600, rotated at 5 MB)."""
    try:
        paths.ensure_private_dir(path.parent)
        if path.exists() and path.stat().st_size > LOG_LIMIT_BYTES:
            path.replace(path.with_name(path.name + ".1"))
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY)


class LocalEngine(Engine):
    """Runs ``python -m tui.engine.local.host`` and relays its events."""

    def __init__(self, log_path: Path, kv_cache_mb: int | None = None):
        self.log_path = log_path
        self.kv_cache_mb = kv_cache_mb  # the config's; None: the engine's default
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._on_event: EventCallback | None = None
        self._closing = False
        self._last_load: LoadModel | None = None
        # Every job sent and not yet ended: a dead worker fails them all, not only the last.
        self._outstanding: list[int] = []

    # --- Engine interface ---------------------------------------------------------

    def start(self, on_event: EventCallback) -> None:
        self._on_event = CleanEvents(on_event)  # what it reports is data, made safe
        with self._lock:
            self._spawn()

    def load(self, request: LoadModel) -> None:
        self._last_load = request
        self._send(request)

    def generate(self, job: Generate) -> None:
        with self._lock:
            self._outstanding.append(job.job_id)
        self._send(job)

    def cancel(self, job_id: int) -> None:
        """Stop ``job_id`` (the worker also stops earlier ones); with no worker, end it here."""
        with self._lock:
            alive = self._proc is not None and not self._closing
            ended = [] if alive else [j for j in self._outstanding if j == job_id]
            self._outstanding = [j for j in self._outstanding if j not in ended]
        if alive:
            self._send(Cancel(job_id), respawn=False)
        elif self._on_event is not None:
            for job in ended:  # nothing is running them: they end now, as cancelled
                self._on_event(GenerationFinished(job, "", FINISH_CANCELLED))

    def cancel_load(self) -> None:
        """Abandon the model load in progress (it ends with ModelFailed)."""
        self._send(CancelLoad(), respawn=False)

    def kill(self) -> None:
        """End the worker now, without waiting (the app's last resort on a hang-up)."""
        self._closing = True
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()

    def close(self) -> None:
        self._closing = True
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = None
        if proc is None or conn is None:
            return
        try:
            conn.send(Cancel(CANCEL_ALL))
            conn.send(None)
        except (OSError, ValueError):
            pass
        try:
            proc.wait(timeout=CLOSE_GRACE)
        except subprocess.TimeoutExpired:  # e.g. inside a long llama.cpp call: no waiting
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=3)
        conn.close()

    # --- internals ----------------------------------------------------------------------

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        log_fd = _open_log(self.log_path)
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tui.engine.local.host",
                    str(theirs.fileno()),
                    *([] if self.kv_cache_mb is None else [str(self.kv_cache_mb)]),
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # Ctrl+C / SIGHUP to the terminal are ours to handle
            )
        finally:
            os.close(log_fd)
            theirs.close()
        conn = Connection(ours.detach())
        self._conn, self._proc = conn, proc
        threading.Thread(
            target=self._read_events, args=(conn, proc), name="engine-events", daemon=True
        ).start()

    def _send(self, message: Any, respawn: bool = True) -> None:
        with self._lock:
            if self._closing:
                return
            if self._proc is None and respawn:
                self._spawn()
                if self._last_load is not None and message is not self._last_load:
                    assert self._conn is not None
                    self._conn.send(self._last_load)
            if self._conn is not None and self._proc is not None:
                with contextlib.suppress(OSError):  # the reader thread reports a dead process
                    self._conn.send(message)

    def _read_events(self, conn: Connection, proc: subprocess.Popen[bytes]) -> None:
        assert self._on_event is not None
        while True:
            try:
                event = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(event, GenerationFinished | GenerationFailed):
                with self._lock:
                    if event.job_id in self._outstanding:
                        self._outstanding.remove(event.job_id)
            if isinstance(event, ModelFailed) and not event.log_tail:
                event.log_tail = relevant_log_lines(read_log_tail(self.log_path, 40))
            self._on_event(event)
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with self._lock:
            if self._proc is not proc:
                return  # closed, or already replaced
            self._proc = None
            # The running job and every one queued behind it: none will ever end now.
            failed, self._outstanding = self._outstanding, []
        if self._closing:
            return
        message = (
            f"The inference process stopped unexpectedly (exit code {code}). "
            f"llama.cpp's log is in {self.log_path}."
        )
        for job in failed:
            self._on_event(GenerationFailed(job, message))
        path = self._last_load.path if self._last_load else ""
        self._on_event(ModelFailed(path, message, read_log_tail(self.log_path)))
