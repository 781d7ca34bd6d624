"""The app's life: quitting, hang-ups and SIGTERM (save, then exit within seconds), crash
reports, and tidying memory while nothing streams."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import threading
import time
from typing import Any

from textual.app import App
from textual.timer import Timer

from tui.core import store as st
from tui.core.chat_service import ChatService
from tui.core.engine_protocol import Engine
from tui.core.personas import PersonaLibrary
from tui.ui.terminal import STOPPING, TERMINAL_GONE

EXIT_DEADLINE = 1.5  # seconds from SIGHUP/SIGTERM to a forced exit (the engine killed)
TIDY_DELAY = 1.0  # seconds of quiet before a full garbage collection (see _tidy_memory)


class Lifecycle(App[None]):
    """Start-to-exit housekeeping of :class:`~tui.ui.app.LlamaTUI` (a part of it)."""

    # Set up by LlamaTUI.__init__ (tui.ui.app); named here for the reader.
    store: st.Store
    engine: Engine
    service: ChatService
    personas: PersonaLibrary
    conversation_id: int | None
    _hung_up: bool
    _old_handlers: dict[int, Any]
    _tidy_timer: Timer | None

    def _schedule_tidy(self) -> None:
        if self._tidy_timer is not None:
            self._tidy_timer.stop()
        self._tidy_timer = self.set_timer(TIDY_DELAY, self._tidy_memory)

    def _tidy_memory(self) -> None:
        """Collect garbage while nothing streams, then freeze what survives.

        Why: Python's full collection walks every live object (~100,000 here,
        35-85 ms on a 2-core VM). Left to run by itself it struck every second
        or two in the middle of a stream and stalled keystrokes. Frozen
        objects are skipped by later collections, which then take a few ms.
        An answer's start freezes the heap too (no collection: that is
        instant); unfreezing here lets the cycles frozen since then (a
        closed chat's widgets) be freed, so nothing leaks for long.
        """
        self._tidy_timer = None
        if self.service.jobs:
            return  # streaming: the end of the answer schedules another
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _install_signal_handlers(self) -> None:
        """SIGHUP (the SSH connection dropped) and SIGTERM: save, then exit within seconds.

        Python-level handlers, not the event loop's: those run only when the
        loop gets control, and a UI thread blocked on a dead terminal never
        gave it back. The handler only schedules the save on the UI thread,
        and starts a deadline that ends the process (and the engine) even if
        something still blocks the orderly exit.
        """
        loop = asyncio.get_running_loop()

        def received(signum: int, _frame: object) -> None:
            STOPPING.set()  # output that would block is dropped from now on
            if signum == signal.SIGHUP:
                TERMINAL_GONE.set()  # nothing more is written to it
            if self._hung_up:
                return
            self._hung_up = True
            threading.Thread(target=self._exit_deadline, name="exit-deadline", daemon=True).start()
            loop.call_soon_threadsafe(self._on_hangup)

        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                self._old_handlers[sig] = signal.signal(sig, received)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_hangup(self) -> None:
        """Save every answer as interrupted, stop the engine, exit."""
        try:
            self.service.flush_all(st.INTERRUPTED)
        finally:
            self.engine.close()  # the worker gets a moment, then is killed
            self.exit()

    def _exit_deadline(self) -> None:
        """The last resort after a hang-up: whatever still blocks, the process ends."""
        time.sleep(EXIT_DEADLINE)
        self.engine.kill()
        os._exit(0)  # what the chats hold was saved when the signal came

    def _fatal_error(self) -> None:
        """A crash report without local variables: they may hold an API key or chat text."""
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(
            Segments(self.console.render(traceback, self.console.options))
        )
        self._close_messages_no_wait()

    async def action_quit(self) -> None:
        self.service.cancel()
        self.service.flush_all(st.CANCELLED)
        self.exit()

    def on_unmount(self) -> None:
        self._restore_signal_handlers()
        self.service.flush_all()
        self._drop_unused_chat()
        self.engine.close()
