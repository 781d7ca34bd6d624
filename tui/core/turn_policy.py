"""One turn's policy, shared by the local and the remote engine.

Both engines fit a chat into a window, ask for an answer and filter what
comes back the same way; the rules live here once, so a chat behaves alike
whichever engine answers it:

- the budget: how much of the window the history may take
  (:func:`prompt_budget`, :func:`answer_reserve`) and how long the answer
  may grow (:func:`answer_room`);
- the reply filter (:class:`ReplyFilter`): stop strings held back and cut,
  the space after ``Bob:`` dropped in transcript mode, and the answer as
  stored (:func:`clean_reply`);
- why an answer ended: the ``FINISH_*`` reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.core.prompt import TRANSCRIPT, PersonaPrompt
from tui.core.reasoning import PLAIN, Piece, ReasoningFormat, ReasoningSplitter
from tui.core.stops import StopScanner

# Why an answer ended (GenerationFinished.reason).
FINISH_STOP = "stop"  # the model ended it, or a stop string did
FINISH_LENGTH = "length"  # it reached the chat's max_tokens
FINISH_CONTEXT = "context"  # it filled the window
FINISH_CANCELLED = "cancelled"  # the user stopped it
FINISH_CAPPED = "capped"  # a server sent far more than asked for: reading stopped
FINISH_REASONS = (FINISH_STOP, FINISH_LENGTH, FINISH_CONTEXT, FINISH_CANCELLED, FINISH_CAPPED)

# Tokens kept free for the answer: at most this fraction of the window (see answer_reserve).
RESERVE_DIVISOR = 4


def answer_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens the history must leave free for the answer, in proportion to the window.

    ``max_tokens`` when it is smaller than a quarter of the window, else a
    quarter: a 512-token window with max_tokens 1024 keeps 128 for the
    answer and 384 for the history (the answer may still grow into whatever
    the prompt leaves free, up to the window's end).
    """
    share = max(n_ctx // RESERVE_DIVISOR, 1)
    return max(min(max_tokens, share) if max_tokens > 0 else share, 1)


def prompt_budget(n_ctx: int, max_tokens: int, margin: int = 0) -> int:
    """Tokens the prompt (persona + history) may take in a window of ``n_ctx``.

    ``margin``: tokens kept free besides (the remote engine's allowance for a
    chat template it cannot see).
    """
    return n_ctx - answer_reserve(n_ctx, max_tokens) - margin


@dataclass(frozen=True)
class AnswerRoom:
    """How long an answer may grow after a prompt."""

    room: int  # tokens left in the window after the prompt (and any margin)
    limit: int  # tokens to ask for: the room, or max_tokens if that is smaller

    def reason_at_limit(self, window_full: bool = False) -> str:
        """Why an answer that reached ``limit`` ended: the window, or max_tokens.

        ``window_full``: the engine saw the window fill before the limit (a
        server that stopped short of what was asked).
        """
        return FINISH_CONTEXT if window_full or self.limit == self.room else FINISH_LENGTH


def answer_room(n_ctx: int, prompt_tokens: int, max_tokens: int, margin: int = 0) -> AnswerRoom:
    """The room after a prompt of ``prompt_tokens``, never asking past the window's end.

    ``max_tokens`` <= 0 means "until the window is full".
    """
    room = n_ctx - prompt_tokens - margin
    limit = min(room, max_tokens) if max_tokens > 0 else room
    return AnswerRoom(room, limit)


def finish_reason(
    space: AnswerRoom,
    *,
    at_limit: bool,
    cancelled: bool = False,
    capped: bool = False,
    window_full: bool = False,
) -> str:
    """Why an answer ended, the same way for every engine.

    ``at_limit``: it reached the limit asked for (the local engine counted
    ``space.limit`` tokens; a server said ``finish_reason: length``).
    ``window_full``: the engine saw the window fill before the limit.
    """
    if cancelled:
        return FINISH_CANCELLED
    if capped:
        return FINISH_CAPPED
    if at_limit:
        return space.reason_at_limit(window_full)
    return FINISH_STOP


class ReplyFilter:
    """The answer's text as it streams: what may be shown, piece by piece.

    A reasoning model's thinking is split from its answer first
    (:class:`tui.core.reasoning.ReasoningSplitter`, with the markers of
    ``reasoning``; ``inside``: the prompt opened the thinking): pieces come
    out as ``(thinking, text)``. In the answer, stop strings are cut (a tail
    that may begin one is held back until it is known), and in transcript
    mode the space the model writes after ``Bob:`` is dropped until the first
    visible text. The thinking is never cut by stop strings (it may well
    mention "User:").

    ``text`` and ``reasoning`` hold the whole answer and thinking so far.
    """

    def __init__(
        self,
        stops: list[str],
        mode: str,
        reasoning: ReasoningFormat = PLAIN,
        inside: bool = False,
        continuing: bool = False,
    ):
        self._scanner = StopScanner(stops)
        # Drop the space after "Bob:"; not when going on from text already written
        # (continue, prefill), where a space is a space between two words.
        self._leading = mode == TRANSCRIPT and not continuing
        self.splitter = ReasoningSplitter(reasoning, inside)
        self.text = ""
        self.reasoning = ""
        # The answer shown so far turned out to be thinking (a server's template opened
        # it): the caller moves what it kept, and clears this.
        self.took_back = False

    @property
    def stopped(self) -> bool:
        """True once a stop string was seen: the answer is over."""
        return self._scanner.stopped

    @property
    def thinking(self) -> bool:
        """True while the model is inside its thinking."""
        return self.splitter.thinking

    def feed(self, piece: str, thinking: bool = False) -> list[Piece]:
        """Add a piece of the model's output; the pieces that can be shown now.

        ``thinking``: the piece is known to be thinking (a server that splits
        it, ``reasoning_content``); it is not searched for markers.
        """
        if thinking:
            return self._take([(True, piece)])
        return self._take(self.splitter.feed(piece))

    def finish(self) -> list[Piece]:
        """The stream ended: what was held back and is ordinary text after all."""
        out = self._take(self.splitter.finish())
        tail = self._strip(self._scanner.finish())
        if tail:
            self.text += tail
            out.append((False, tail))
        return out

    def close_thinking(self) -> list[Piece]:
        """End the thinking now (a thinking budget ran out)."""
        return self._take(self.splitter.close_thinking())

    def _take(self, pieces: list[Piece]) -> list[Piece]:
        if self.splitter.moved:  # what was shown as answer was thinking after all
            self.splitter.moved = False
            self.reasoning, self.text = self.reasoning + self.text, ""
            self.took_back = True
        out: list[Piece] = []
        for thinking, text in pieces:
            if self._scanner.stopped:
                break
            if thinking:
                self.reasoning += text
                out.append((True, text))
                continue
            shown = self._strip(self._scanner.feed(text))
            if shown:
                self.text += shown
                out.append((False, shown))
        return out

    def _strip(self, out: str) -> str:
        if self._leading and out:
            out = out.lstrip(" ")
            self._leading = not out
        return out


def clean_reply(text: str, persona: PersonaPrompt, mode: str, continuing: bool = False) -> str:
    """The answer as shown and stored: no leading space after ``Bob:``, no name echo.

    ``continuing``: ``text`` goes on from an answer already written (continue,
    prefill), so it is kept as it came, leading space and all, and only its
    trailing white space goes.
    """
    if continuing:
        return text.rstrip()
    if mode == TRANSCRIPT:
        text = text.lstrip(" ")
        prefix = f"{persona.ai_name}:"
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip(" ")
    return text.rstrip()
