"""Keyboard input from a real terminal: pastes whole, keys one at a time.

Textual 8's input parser ends a bracketed paste at the first ESC inside it
and replays the rest as key presses (so a pasted line end could send the
message), and turns Alt+Enter (ESC CR) into a plain Enter. Its driver
hands every key of a burst to the app at once, while focus changes are
queued behind them: over SSH, where several keys arrive in one read, keys
went to the widget that had the focus before the previous key moved it.

:class:`TerminalParser` reads a paste up to its end marker and delivers it
as one ``Paste`` event with escape sequences and control characters
removed; :class:`TerminalDriver` delivers each key (or paste) only when
the app has finished with the one before, and only once the app says it
is ready for input (keys typed before the first frame wait for it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import selectors
import struct
import termios
from codecs import getincrementaldecoder
from collections.abc import Generator
from typing import Any

from textual import constants, events
from textual._loop import loop_last
from textual._parser import ParseEOF, ParseError, ParseTimeout, Read1, TokenCallback
from textual._xterm_parser import XTermParser
from textual.app import App
from textual.message import Message
from textual.message_pump import MessagePump

from tui.core.sanitize import clean_text
from tui.ui.terminal import SafeLinuxDriver

ESC = "\x1b"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
ALT_ENTER = "\x1b\r"
# A paste whose end marker never comes (a broken link) ends after this long without a byte.
PASTE_IDLE = 1.0
# Settling after a key: at most this many passes, and at most this long, so that a
# widget that never settles cannot stop the keyboard.
SETTLE_ROUNDS = 24
SETTLE_TIMEOUT = 2.0


class TerminalParser(XTermParser):
    """Textual's parser, with bracketed paste and Alt+Enter read correctly.

    Every character goes through :meth:`parse` first: an ESC is held until it
    is clear whether it starts a paste (``ESC [200~``) or Alt+Enter; anything
    else is handed, in order, to Textual's own parser (run as an inner
    generator), which keeps its handling of keys, mouse and replies.
    """

    def parse(self, token_callback: TokenCallback) -> Generator[Read1, str, None]:
        inner = XTermParser.parse(self, token_callback)
        awaiting: Any = next(inner)

        def forward(text: str) -> None:
            nonlocal awaiting
            for character in text:
                awaiting = inner.send(character)

        def flush_inner() -> None:
            """Let the inner parser finish a pending ESC sequence (as on a timeout)."""
            nonlocal awaiting
            if awaiting.timeout is not None:
                awaiting = inner.throw(ParseTimeout())

        while True:
            try:
                character: str | None = yield awaiting
            except ParseTimeout:
                if awaiting.timeout is not None:
                    awaiting = inner.throw(ParseTimeout())
                continue
            except ParseEOF:
                with contextlib.suppress(StopIteration):
                    inner.throw(ParseEOF())
                return
            while character == ESC:  # again when an ESC ends what the last one started
                held, character, timed_out = yield from self._hold_escape()
                if held == PASTE_START:
                    flush_inner()
                    token_callback(events.Paste((yield from self._read_paste())))
                elif held == ALT_ENTER:
                    flush_inner()
                    token_callback(events.Key("alt+enter", None))
                else:
                    forward(held)
                    if timed_out:
                        flush_inner()
            if character is not None:
                forward(character)

    def _hold_escape(self) -> Generator[Read1, str, tuple[str, str | None, bool]]:
        """Read on from an ESC while the input may still be a paste start or Alt+Enter.

        Returns what was held, a character read after it that is not part of it
        (an ESC, which may start a paste itself), and whether the wait timed out.
        """
        held = ESC
        while held not in (PASTE_START, ALT_ENTER) and (
            PASTE_START.startswith(held) or ALT_ENTER.startswith(held)
        ):
            try:
                character = yield self.read1(constants.ESCAPE_DELAY)
            except ParseTimeout:
                return held, None, True
            if character == ESC:
                return held, ESC, False
            held += character
        return held, None, False

    def _read_paste(self) -> Generator[Read1, str, str]:
        """The pasted text up to the end marker, cleaned: it is data, never keys."""
        buffer: list[str] = []
        marker = len(PASTE_END)
        while True:
            try:
                character = yield self.read1(PASTE_IDLE)
            except ParseTimeout:
                break
            buffer.append(character)
            if character == "~" and "".join(buffer[-marker:]) == PASTE_END:
                del buffer[-marker:]
                break
        return clean_text("".join(buffer).replace("\x00", ""))


class TerminalDriver(SafeLinuxDriver):
    """Textual's Linux driver with :class:`TerminalParser` and one key at a time.

    On top of :class:`~tui.ui.terminal.SafeLinuxDriver`: a terminal that is gone
    (a dropped SSH connection) can hang neither the input nor the output.
    """

    def run_input_thread(self) -> None:
        """Textual's input loop (8.2.8), with our parser, a forgiving UTF-8 decoder,
        and Enter restored in what was typed before the app took the terminal."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        parser = TerminalParser(self._debug)
        feed, tick = parser.feed, parser.tick
        # Invalid UTF-8 (a binary paste) must not end the input thread (and the app).
        decode = getincrementaldecoder("utf-8")(errors="replace").decode
        # Bytes typed while the tty was still in cooked mode had CR turned into LF
        # (ICRNL): there an LF was an Enter, not a Ctrl+J.
        typed_ahead = _pending_bytes(fileno)

        def process_selector_events(
            selector_events: list[tuple[selectors.SelectorKey, int]], final: bool = False
        ) -> None:
            nonlocal typed_ahead
            for last, (_selector_key, mask) in loop_last(selector_events):
                if mask & selectors.EVENT_READ:
                    data = os.read(fileno, 1024 * 4)
                    if typed_ahead:
                        early, data = data[:typed_ahead], data[typed_ahead:]
                        typed_ahead -= len(early)
                        data = early.replace(b"\n", b"\r") + data
                    unicode_data = decode(data, final=final and last)
                    if not unicode_data:
                        break
                    for event in feed(unicode_data):
                        self.process_message(event)
            for event in tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process_selector_events(selector.select(0.1))
            selector.unregister(self.fileno)
            process_selector_events(selector.select(0.1), final=True)
        finally:
            selector.close()
            with contextlib.suppress(EOFError, ParseError):
                for _event in feed(""):
                    pass

    def process_message(self, message: Message) -> None:
        """Keys and pastes: one at a time, each after the app is done with the last."""
        if not isinstance(message, events.Key | events.Paste):
            super().process_message(message)
            return
        message.set_sender(self._app)
        future = asyncio.run_coroutine_threadsafe(deliver(self._app, message), self._loop)
        while not self.exit_event.is_set():
            try:
                future.result(timeout=0.05)
                return
            except concurrent.futures.TimeoutError:
                continue
            except (Exception, concurrent.futures.CancelledError):  # the app is closing
                return
        future.cancel()


def _pending_bytes(fileno: int) -> int:
    """How many bytes wait to be read on ``fileno`` (0 if that cannot be told)."""
    try:
        raw = fcntl.ioctl(fileno, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", raw)[0]


async def deliver(app: App[Any], message: Message) -> None:
    """Post an input event to ``app`` once it is ready, then wait until it settles."""
    ready: asyncio.Event | None = getattr(app, "input_ready", None)
    if ready is not None:
        await ready.wait()
    workers_before = set(app.workers)
    screen_before = _screen(app)
    # Counted while it is handled: a streaming answer's repaint waits for it (tui.ui.wire).
    app.input_pending = getattr(app, "input_pending", 0) + 1  # type: ignore[attr-defined]
    try:
        app.post_message(message)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(settle(app, screen_before, workers_before), SETTLE_TIMEOUT)
        paint_now(app)
    finally:
        app.input_pending -= 1  # type: ignore[attr-defined]


def paint_now(app: App[Any]) -> None:
    """Write the frame that shows a key now, not at the screen's next tick.

    While an answer streams, the screen's update timer runs on a fixed grid of
    ticks (``TEXTUAL_FPS`` a second: 120 as the app starts it), so a key handled
    just after a frame waited for the next tick, and then for that frame's paint
    of the answer. This is what the tick does (Textual's
    ``Screen._on_timer_update``), done at once; with nothing to paint it does
    nothing.
    """
    screen = _screen(app)
    if screen is None or not screen.is_current or app._batch_count:
        return
    if (
        screen._layout_required
        or screen._scroll_required
        or screen._repaint_required
        or screen._dirty_widgets
    ):
        with app._context(), screen._context():  # as the timer's task has them
            try:
                screen._on_timer_update()
            except Exception as error:  # as Textual's timer does
                app._handle_exception(error)


async def settle(app: App[Any], screen_before: object, workers_before: set[object]) -> None:
    """Wait until the app has finished with the input event just posted.

    A key goes from the app to the focused widget and bubbles back up, queue
    by queue: one barrier per node of that chain, in order, follows it (each
    is posted after the node before has passed the key on). What it set off
    comes next: a focus change is queued on the app, a dialog it opened mounts
    its widgets, a page may be mounted by a worker. Passes go on until one
    ends with the same screen and focus it began with and no new async worker
    running. Cheap for a key that changes nothing: a handful of callbacks.
    """
    await _barrier([app])  # the app has handled the key or passed it to the focus
    screen = _screen(app)
    if screen is None:
        return
    target = app.focused or screen
    for node in target.ancestors_with_self:  # the focus up to the screen and the app
        await _barrier([node])
    stable = 0
    for _pass in range(SETTLE_ROUNDS):
        screen, focused = _screen(app), app.focused
        if screen is None:
            return
        changed_screen = screen is not screen_before
        if changed_screen:  # a dialog opened or closed: all of it mounts, then focuses
            nodes: list[MessagePump] = [app, *screen.walk_children(with_self=True)]
        else:
            nodes = [*(focused or screen).ancestors_with_self]
        await _barrier(nodes)
        workers = [
            w
            for w in app.workers
            if w not in workers_before and not w._thread_worker and not w.is_finished
        ]
        if workers:
            stable = 0
            await app.workers.wait_for_complete(workers)
            continue
        if _screen(app) is not screen or app.focused is not focused:
            stable = 0
            continue
        stable += 1
        # A new screen's on_mount queues its focus on the app after this pass's
        # barrier there: one more quiet pass makes sure it has been applied.
        if stable >= (2 if changed_screen else 1):
            return


def _screen(app: App[Any]) -> Any:
    try:
        return app.screen
    except Exception:  # no screen yet, or closing
        return None


async def _barrier(nodes: list[MessagePump]) -> None:
    """Return once every node has processed the messages queued before this call."""
    remaining = 0
    done = asyncio.Event()

    def one_done() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            done.set()

    for node in nodes:
        if node.call_later(one_done):
            remaining += 1
    if remaining:
        await done.wait()
