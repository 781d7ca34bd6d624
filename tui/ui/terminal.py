"""A Textual Linux driver that a terminal which is gone cannot hang.

Why: when the SSH connection drops, writes to the terminal fail (EIO) or
block. Textual's writer thread dies on the first failed write; after it
its bounded queue fills, and the next write, and ``WriterThread.stop`` in
``App._shutdown``, block the UI thread forever. A blocked UI thread runs
no asyncio signal handler either, so SIGTERM seemed ignored. Here output
to a terminal that is gone (or after a hang-up) is dropped, stopping the
writer waits a bounded time, and an input thread that finds the terminal
gone reports a hang-up instead of a crash.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Iterator
from typing import IO

from textual.drivers import linux_driver
from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver

STOP_WAIT = 0.5  # seconds the writer gets to flush what is queued when the app stops
PUT_WAIT = 0.1  # a blocked queue is re-checked this often for a hang-up

# Set on SIGHUP (see tui.ui.app): the terminal is gone, nothing more is written to it.
TERMINAL_GONE = threading.Event()
# Set on SIGHUP and SIGTERM: the app is exiting; output that would block is dropped.
STOPPING = threading.Event()


class SafeWriterThread(WriterThread):
    """Textual's writer thread, except that it never blocks its callers for good."""

    def __init__(self, file: IO[str]) -> None:
        super().__init__(file)
        self.dead = threading.Event()  # a write failed: the terminal is gone
        # Characters handed to write(), and those the terminal has taken (the
        # kernel accepted them): the difference is the backlog of a slow link.
        self.queued = 0
        self.taken = 0

    @property
    def backlog(self) -> int:
        """Characters written by the app that the terminal has not taken yet."""
        return 0 if self._dropping() else self.queued - self.taken

    def _dropping(self) -> bool:
        return self.dead.is_set() or TERMINAL_GONE.is_set()

    def write(self, text: str) -> None:
        self.queued += len(text)
        while not self._dropping():
            try:
                self._queue.put(text, timeout=PUT_WAIT)
                return
            except queue.Full:  # a slow terminal: wait, unless it has gone or we exit
                if STOPPING.is_set():
                    return

    def run(self) -> None:
        try:
            self._copy()
        except (OSError, ValueError):  # EIO, or the file was closed: the terminal is gone
            pass
        finally:
            self.dead.set()
            with contextlib.suppress(queue.Empty):  # unblock anyone waiting on a full queue
                while True:
                    self._queue.get_nowait()

    def _copy(self) -> None:
        """Textual's loop (8.2.8): queue to file, flushed at each pause, counting."""
        write, flush = self._file.write, self._file.flush
        get, qsize = self._queue.get, self._queue.qsize
        unflushed = 0
        while (text := get()) is not None:
            write(text)
            unflushed += len(text)
            if qsize() == 0:
                flush()
                self.taken += unflushed
                unflushed = 0
        flush()
        self.taken += unflushed

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=STOP_WAIT)
        self.join(timeout=STOP_WAIT)  # a write stuck in the kernel is left behind (daemon)


def output_backlog(driver: object) -> int:
    """Characters the app wrote that the terminal has not taken yet (0 if unknown)."""
    writer = getattr(driver, "_writer_thread", None)
    return writer.backlog if isinstance(writer, SafeWriterThread) else 0


@contextlib.contextmanager
def _safe_writer() -> Iterator[None]:
    """LinuxDriver.start_application_mode builds its writer from a module global."""
    original = linux_driver.WriterThread
    linux_driver.WriterThread = SafeWriterThread  # type: ignore[misc]
    try:
        yield
    finally:
        linux_driver.WriterThread = original  # type: ignore[misc]


class SafeLinuxDriver(LinuxDriver):
    """LinuxDriver with :class:`SafeWriterThread`, and a hang-up when input fails."""

    def start_application_mode(self) -> None:
        with _safe_writer():
            super().start_application_mode()

    def _run_input_thread(self) -> None:
        try:
            self.run_input_thread()
        except OSError:  # EIO from read(): the terminal is gone, as after SIGHUP
            TERMINAL_GONE.set()
            os.kill(os.getpid(), signal.SIGHUP)
        except BaseException:  # anything else: reported as Textual does
            import rich.traceback

            self._app.call_later(self._app.panic, rich.traceback.Traceback())
