"""TokenBatcher: many tokens, few UI messages, order kept."""

from __future__ import annotations

import threading

from tui.core.engine_protocol import GenerationFinished, TokenText
from tui.engine.batching import TokenBatcher, TokensReady


def test_tokens_join_one_pending_batch_until_taken() -> None:
    delivered: list = []
    batcher = TokenBatcher(delivered.append)
    for piece in ("Hel", "lo", ", wor", "ld"):
        batcher(TokenText(7, piece))
    assert delivered == [TokensReady(7)]  # one message for four tokens
    assert batcher.take(7) == ("Hello, world", "")
    assert batcher.take(7) == ("", "")
    batcher(TokenText(7, "!"))
    assert delivered == [TokensReady(7), TokensReady(7)]  # a new batch after the take


def test_other_events_pass_through_in_order() -> None:
    delivered: list = []
    batcher = TokenBatcher(delivered.append)
    batcher(TokenText(1, "a"))
    finished = GenerationFinished(1, "a", "stop")
    batcher(finished)
    assert delivered == [TokensReady(1), finished]


def test_nothing_is_lost_across_threads() -> None:
    batcher = TokenBatcher(lambda event: None)
    taken: list[str] = []
    done = threading.Event()

    def produce() -> None:
        for i in range(5000):
            batcher(TokenText(3, f"{i},"))
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    while not done.is_set():
        taken.append(batcher.take(3)[0])
    thread.join()
    taken.append(batcher.take(3)[0])
    assert "".join(taken) == "".join(f"{i}," for i in range(5000))


def test_thinking_is_batched_apart_from_the_answer() -> None:
    delivered: list = []
    batcher = TokenBatcher(delivered.append)
    batcher(TokenText(5, "Let me ", thinking=True))
    batcher(TokenText(5, "see.", thinking=True))
    batcher(TokenText(5, "Yes."))
    assert delivered == [TokensReady(5)]
    assert batcher.take(5) == ("Yes.", "Let me see.")
