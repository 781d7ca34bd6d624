"""TerminalParser on its own: what each byte sequence becomes (no terminal needed)."""

from __future__ import annotations

import time

from textual import constants, events

from tui.ui.terminal_input import TerminalParser


def parse(*chunks: str, wait: bool = False) -> list[tuple[str, str]]:
    """Feed ``chunks`` as separate reads; ``wait``: let the ESC timeout pass at the end."""
    parser = TerminalParser()
    found: list[events.Event] = []
    for chunk in chunks:
        found += parser.feed(chunk)
    if wait:
        time.sleep(constants.ESCAPE_DELAY * 2)
        found += parser.tick()
    return [
        ("paste", e.text) if isinstance(e, events.Paste) else ("key", e.key)
        for e in found
        if isinstance(e, events.Paste | events.Key)
    ]


def test_a_paste_with_escape_sequences_is_one_clean_paste() -> None:
    assert parse("\x1b[200~AAA\x1b[31mBBB\x1b[0m CCC\x1b[201~Z") == [
        ("paste", "AAABBB CCC"),
        ("key", "Z"),
    ]


def test_line_ends_and_controls_in_a_paste_are_text_not_keys() -> None:
    paste = "a\r\nb\rc\nd\x00\x07\x9b2J\x1b]52;c;eHl6\x07\te"
    assert parse(f"\x1b[200~{paste}\x1b[201~") == [("paste", "a\nb\nc\nd\te")]


def test_a_paste_split_over_reads_anywhere() -> None:
    data = "k\x1b[200~one\x1b[1mtwo\x1b[201~\x1b[A"
    expected = [("key", "k"), ("paste", "onetwo"), ("key", "up")]
    for cut in range(1, len(data)):
        assert parse(data[:cut], data[cut:]) == expected, cut


def test_alt_enter_is_its_own_key() -> None:
    assert parse("a\x1b\rb") == [("key", "a"), ("key", "alt+enter"), ("key", "b")]


def test_escape_then_a_paste_right_after() -> None:
    assert parse("\x1b\x1b[200~x\x1b[201~") == [("key", "escape"), ("paste", "x")]


def test_other_keys_as_textual_reads_them() -> None:
    keys = parse("\x1b[H\x1b[B\x1b[C\x1b[6~\x1bOQ\x1b[Z\x1b[5;5~\n\r")
    assert [k for _kind, k in keys] == [
        "home", "down", "right", "pagedown", "f2", "shift+tab", "ctrl+pageup", "ctrl+j", "enter",
    ]  # fmt: skip
    assert parse("\x1b", wait=True) == [("key", "escape")]
    assert parse("\x1ba", wait=True) == [("key", "alt+a")]
