"""Merging a fast stream of tokens into few UI updates.

The engine may produce tokens faster than a terminal UI should repaint
(a GPU: one every few milliseconds). :class:`TokenBatcher` sits between the
engine's event thread and the UI: the first token of a batch posts one
:class:`TokensReady`; later tokens only join the pending text until the UI
takes it (a reasoning model's thinking apart from its answer). Other events
pass through in order, so a finished answer is never overtaken by its own
last tokens.

The pieces of each kind are counted too (:meth:`TokenBatcher.counts`): that is
what the screen shows as tokens while an answer streams, until the engine's
exact count comes with the end of the answer.
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
        self._pending: dict[int, tuple[list[str], list[str]]] = {}  # answer, thinking
        self._counts: dict[int, list[int]] = {}  # job -> [answer pieces, thinking pieces]
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        """The engine's callback (any thread)."""
        if isinstance(event, TokenText):
            with self._lock:
                self._counts.setdefault(event.job_id, [0, 0])[event.thinking] += 1
                pending = self._pending.get(event.job_id)
                if pending is not None:
                    pending[event.thinking].append(event.text)
                    return
                pending = self._pending[event.job_id] = ([], [])
                pending[event.thinking].append(event.text)
            self.deliver(TokensReady(event.job_id))
        else:
            if isinstance(event, GenerationFinished | GenerationFailed):
                with self._lock:
                    self._counts.pop(event.job_id, None)  # the end carries exact figures
            self.deliver(event)

    def take(self, job_id: int) -> tuple[str, str]:
        """All answer text and all thinking of ``job_id`` not yet taken (the UI thread)."""
        with self._lock:
            answer, thinking = self._pending.pop(job_id, ([], []))
        return "".join(answer), "".join(thinking)

    def counts(self, job_id: int) -> tuple[int, int]:
        """Pieces of thinking and of answer streamed so far by the running job ``job_id``.

        One piece is one token from llama.cpp and, nearly always, from a server's
        stream; (0, 0) once the job has ended.
        """
        with self._lock:
            answer, thinking = self._counts.get(job_id, (0, 0))
        return thinking, answer
