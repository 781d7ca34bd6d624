"""The turn policy both engines share (tui/core/turn_policy.py): budget, reply filter, reasons."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tui.core.prompt import CHAT, TRANSCRIPT, PersonaPrompt
from tui.core.turn_policy import (
    FINISH_CANCELLED,
    FINISH_CAPPED,
    FINISH_CONTEXT,
    FINISH_LENGTH,
    FINISH_REASONS,
    FINISH_STOP,
    ReplyFilter,
    answer_reserve,
    answer_room,
    clean_reply,
    finish_reason,
    prompt_budget,
)

ROOT = Path(__file__).resolve().parent.parent
BOB = PersonaPrompt("Transcript with Bob.", ai_name="Bob", mode="transcript")


# --- the budget ------------------------------------------------------------------------


def test_the_history_leaves_a_share_of_the_window_for_the_answer() -> None:
    assert answer_reserve(512, 1024) == 128  # a quarter of a small window
    assert answer_reserve(4096, 100) == 100  # max_tokens when smaller
    assert answer_reserve(2048, -1) == 512  # "until the window is full": a quarter
    assert answer_reserve(2, 0) == 1  # never nothing
    assert prompt_budget(512, 1024) == 384
    assert prompt_budget(512, 1024, margin=32) == 352


def test_the_answer_may_grow_to_max_tokens_or_the_windows_end() -> None:
    assert answer_room(512, 400, 64) == answer_room(512, 400, 64, 0)
    small = answer_room(512, 400, 64)
    assert (small.room, small.limit) == (112, 64)
    full = answer_room(512, 400, 1024)
    assert (full.room, full.limit) == (112, 112)
    endless = answer_room(512, 400, -1)
    assert (endless.room, endless.limit) == (112, 112)
    margin = answer_room(512, 400, 1024, margin=32)
    assert (margin.room, margin.limit) == (80, 80)


def test_an_answer_at_its_limit_ended_for_the_window_or_for_max_tokens() -> None:
    assert answer_room(512, 400, 1024).reason_at_limit() == FINISH_CONTEXT
    assert answer_room(512, 400, 64).reason_at_limit() == FINISH_LENGTH
    # A server that stopped short of the max_tokens asked for: its window was full.
    assert answer_room(512, 400, 64).reason_at_limit(window_full=True) == FINISH_CONTEXT


def test_finish_reasons() -> None:
    space = answer_room(512, 400, 64)
    assert finish_reason(space, at_limit=False) == FINISH_STOP
    assert finish_reason(space, at_limit=True) == FINISH_LENGTH
    assert finish_reason(space, at_limit=True, window_full=True) == FINISH_CONTEXT
    assert finish_reason(space, at_limit=False, window_full=True) == FINISH_STOP
    assert finish_reason(space, at_limit=True, capped=True) == FINISH_CAPPED
    assert finish_reason(space, at_limit=True, capped=True, cancelled=True) == FINISH_CANCELLED
    assert finish_reason(answer_room(512, 400, -1), at_limit=True) == FINISH_CONTEXT
    assert set(FINISH_REASONS) == {"stop", "length", "context", "cancelled", "capped"}


# --- the reply filter ------------------------------------------------------------------


def answer(pieces: list[tuple[bool, str]]) -> str:
    """The answer's text among (thinking, text) pieces."""
    return "".join(text for thinking, text in pieces if not thinking)


def feed_all(reply: ReplyFilter, pieces: list[str]) -> list[str]:
    shown = [answer(reply.feed(piece)) for piece in pieces]
    return [*shown, answer(reply.finish())]


def test_the_space_after_bobs_name_is_dropped_in_transcript_mode_only() -> None:
    assert "".join(feed_all(ReplyFilter([], TRANSCRIPT), [" ", " Hello", " there"])) == (
        "Hello there"
    )
    assert "".join(feed_all(ReplyFilter([], CHAT), [" Hello", " there"])) == " Hello there"


def test_a_stop_string_split_across_pieces_is_never_shown() -> None:
    reply = ReplyFilter(["\nUser:"], TRANSCRIPT)
    shown = [answer(reply.feed(p)) for p in [" Fine", ".\nUs", "er: next"]]
    assert shown == ["Fine", ".", ""]
    assert reply.stopped
    assert reply.finish() == [] and reply.feed("more") == []


def test_held_text_that_was_no_stop_is_released_once_and_stripped() -> None:
    reply = ReplyFilter(["###"], TRANSCRIPT)
    assert reply.feed(" #") == []  # maybe the start of "###"
    assert reply.finish() == [(False, "#")]  # it was text after all: once, without the space
    assert not reply.stopped


def test_the_stored_answer_is_cleaned() -> None:
    assert clean_reply(" Bob: Hello there.  \n", BOB, TRANSCRIPT) == "Hello there."
    assert clean_reply(" Bob: kept in chat mode ", BOB, CHAT) == " Bob: kept in chat mode"


# --- one policy, two engines -------------------------------------------------------------

ENGINES = [
    "tui/engine/local/model.py",
    "tui/engine/remote/engine.py",
    "tui/engine/remote/stream.py",
]


@pytest.mark.parametrize("path", ENGINES)
def test_the_engines_do_not_compute_the_policy_themselves(path: str) -> None:
    """No engine builds its own stop scanner, room/limit arithmetic or reason strings."""
    source = (ROOT / path).read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert "StopScanner" not in source
    assert ".lstrip(" not in source  # the space after "Bob:" is the filter's
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert not strings & {"context", "cancelled", "capped"}, path
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"answer_reserve", "room"}, path


def test_both_engines_use_the_turn_policy() -> None:
    for path in ("tui/engine/local/model.py", "tui/engine/remote/engine.py"):
        source = (ROOT / path).read_text(encoding="utf-8")
        for name in ("answer_room", "prompt_budget", "finish_reason", "ReplyFilter", "clean_reply"):
            assert name in source, (path, name)
