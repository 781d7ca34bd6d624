"""A local answer's thinking as it streams (see :mod:`tui.core.reasoning`).

Counted and timed for the saved meta (``thinking_tokens``, ``thinking_seconds``:
tokens per second count thinking and answer alike), and held to the chat's
thinking budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tui.core.turn_policy import ReplyFilter


class Thought:
    """One answer's thinking as it streams: its pieces sent, its tokens counted and timed,
    and its budget: past ``budget`` tokens the thinking is closed and the model answers.
    """

    def __init__(self, send: Callable[[str, bool], None], reply: ReplyFilter, budget: int):
        self.send, self.reply, self.budget = send, reply, budget
        self.tokens = 0  # tokens spent thinking (markers included)
        self.since = 0.0  # monotonic time of the first thinking token
        self.until = 0.0  # ... and of the first answer text after it

    def show(self, piece: str, final: bool = False) -> None:
        """Feed one token's text (or, ``final``, the end); send what can be shown."""
        reply = self.reply
        was = reply.thinking
        pieces = reply.feed(piece) if piece else []
        if final:
            pieces += reply.finish()
        if not final and (was or reply.thinking or any(t for t, _ in pieces)):
            self.tokens += 1
            self.since = self.since or time.monotonic()
        for thinking, text in pieces:
            if not thinking and self.since and not self.until:
                self.until = time.monotonic()
            self.send(text, thinking)

    def over_budget(self) -> bool:
        return self.reply.thinking and 0 <= self.budget <= self.tokens

    def close(self, close_text: str) -> str:
        """End the thinking: the text to write into the answer (the closing marker).

        llama.cpp's ``--reasoning-budget`` does the same: the model then
        reads its thinking as closed, and answers.
        """
        self.reply.close_thinking()
        return close_text

    def stats(self, ended: float) -> dict[str, Any]:
        if not self.tokens and not self.reply.reasoning:
            return {}
        seconds = (self.until or ended) - (self.since or ended)
        return {"thinking_tokens": self.tokens, "thinking_seconds": seconds}
