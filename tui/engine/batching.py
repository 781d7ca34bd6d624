"""Merging a fast stream of tokens into few UI updates.

The engine may produce tokens faster than a terminal UI should repaint
(a GPU: one every few milliseconds). :class:`TokenBatcher` sits between the
engine's event thread and the UI: the first token of a batch posts one
:class:`TokensReady`; later tokens only join the pending text until the UI
takes it. Other events pass through in order, so a finished answer is never
overtaken by its own last tokens.

A reasoning model streams thinking, then the answer: pending text is kept as
runs of one kind each (:meth:`TokenBatcher.take_parts`), so the two never mix,
and the pieces of each kind are counted (:meth:`TokenBatcher.counts`), which is
what the screen shows as tokens while the engine's exact count is not in yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from tui.core.engine_protocol import EngineEvent, GenerationFailed, GenerationFinished, TokenText


@dataclass
class TokensReady:
    """Text for job ``job_id`` is waiting: call :meth:`TokenBatcher.take`."""

    job_id: int


class TokenBatcher:
    def __init__(self, deliver: Callable[[EngineEvent | TokensReady], None]):
        self.deliver = deliver
        self._pending: dict[int, list[tuple[bool, list[str]]]] = {}
        self._counts: dict[int, list[int]] = {}  # job -> [thinking pieces, answer pieces]
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        """The engine's callback (any thread)."""
        if isinstance(event, TokenText):
            thinking = bool(getattr(event, "thinking", False))
            with self._lock:
                counts = self._counts.setdefault(event.job_id, [0, 0])
                counts[0 if thinking else 1] += 1
                pending = self._pending.get(event.job_id)
                if pending is not None:
                    if pending[-1][0] == thinking:
                        pending[-1][1].append(event.text)
                    else:
                        pending.append((thinking, [event.text]))
                    return
                self._pending[event.job_id] = [(thinking, [event.text])]
            self.deliver(TokensReady(event.job_id))
        else:
            if isinstance(event, GenerationFinished | GenerationFailed):
                with self._lock:
                    self._counts.pop(event.job_id, None)
            self.deliver(event)

    def take_parts(self, job_id: int) -> list[tuple[bool, str]]:
        """The text of ``job_id`` not yet taken, as (thinking?, text) runs in order."""
        with self._lock:
            runs = self._pending.pop(job_id, [])
        return [(thinking, "".join(pieces)) for thinking, pieces in runs]

    def take(self, job_id: int) -> str:
        """All text of ``job_id`` not yet taken, thinking and answer alike (the UI thread)."""
        return "".join(text for _thinking, text in self.take_parts(job_id))

    def counts(self, job_id: int) -> tuple[int, int]:
        """Pieces of thinking and of answer streamed so far by the running ``job_id``."""
        with self._lock:
            thinking, answer = self._counts.get(job_id, (0, 0))
        return thinking, answer
