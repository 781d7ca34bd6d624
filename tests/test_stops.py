"""StopScanner: the reverse prompt never reaches the screen, even split across tokens."""

from __future__ import annotations

import random

import pytest

from tui.core.stops import StopScanner, transcript_stops


def feed_all(scanner: StopScanner, pieces: list[str]) -> tuple[list[str], str]:
    """Feed pieces one by one; return what each call emitted and what finish() released."""
    outputs = [scanner.feed(piece) for piece in pieces]
    return outputs, scanner.finish()


def test_stop_split_across_pieces_is_never_emitted() -> None:
    scanner = StopScanner(transcript_stops("User"))
    outputs, tail = feed_all(scanner, ["Paris", " is big.", "\n", "Us", "er", ": and"])
    assert "".join(outputs) + tail == "Paris is big."
    assert scanner.stopped_on == "\nUser:"
    # Nothing that could start the stop string was shown before the stop was sure.
    assert outputs[2:] == ["", "", "", ""]


def test_stop_at_the_very_end_of_the_stream() -> None:
    scanner = StopScanner(transcript_stops("User"))
    outputs, tail = feed_all(scanner, ["Answer.", "\nUser:"])
    assert outputs == ["Answer.", ""]
    assert tail == ""
    assert scanner.stopped


def test_stop_inside_one_piece_cuts_the_rest() -> None:
    scanner = StopScanner(["###"])
    assert scanner.feed("one ### two") == "one "
    assert scanner.stopped_on == "###"
    assert scanner.feed("more") == ""  # after a stop nothing more is emitted
    assert scanner.finish() == ""


def test_partial_prefix_is_released_at_finish() -> None:
    scanner = StopScanner(["###"])
    assert scanner.feed("Heading #") == "Heading "
    assert scanner.held == "#"
    assert scanner.finish() == "#"
    assert not scanner.stopped


def test_partial_line_start_stop_is_dropped_at_finish() -> None:
    """An answer never ends with the start of the user's name ("\\nUs")."""
    scanner = StopScanner(transcript_stops("User"))
    outputs, tail = feed_all(scanner, ["Sure.", "\nUs"])
    assert "".join(outputs) + tail == "Sure."


def test_false_alarm_is_released_once_it_diverges() -> None:
    scanner = StopScanner(transcript_stops("User"))
    assert scanner.feed("Hi\nUs") == "Hi"
    assert scanner.feed("ually") == "\nUsually"
    assert scanner.finish() == ""


def test_multiple_stops_earliest_wins() -> None:
    scanner = StopScanner(["END", "\nUser:"])
    assert scanner.feed("a END b\nUser: c") == "a "
    assert scanner.stopped_on == "END"
    scanner = StopScanner(["END", "\nUser:"])
    assert scanner.feed("a\nUser: b END") == "a"
    assert scanner.stopped_on == "\nUser:"


def test_holds_the_longest_partial_of_any_stop() -> None:
    scanner = StopScanner(["\nUser:", "User:", "<end>"])
    assert scanner.feed("x\nUse") == "x"
    assert scanner.held == "\nUse"
    assert scanner.feed("r") == ""
    assert scanner.feed(":") == ""
    assert scanner.stopped_on == "\nUser:"


def test_no_stops_passes_everything_and_empty_stops_are_ignored() -> None:
    scanner = StopScanner(["", ""])
    assert scanner.stops == []
    assert scanner.feed("any\nUser: text") == "any\nUser: text"
    assert scanner.finish() == ""
    assert StopScanner(["a", "a", "b"]).stops == ["a", "b"]


def test_transcript_stops_are_the_reverse_prompt_and_extras() -> None:
    stops = transcript_stops("Alice", ["###"])
    assert stops[:2] == ["\nAlice:", "Alice:"]
    assert "###" in stops


@pytest.mark.parametrize("seed", range(5))
def test_random_streams_match_a_reference_cut(seed: int) -> None:
    """Whatever the piece boundaries, the output is the text before the first stop."""
    rng = random.Random(seed)
    stops = ["\nUser:", "User:", "##"]
    alphabet = ["a", " ", "\n", "U", "s", "e", "r", ":", "#", "é", "User", "\nUs"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        pieces, i = [], 0
        while i < len(text):
            step = rng.randint(1, 4)
            pieces.append(text[i : i + step])
            i += step
        cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
        expected = text[: min(cuts)] if cuts else text
        scanner = StopScanner(stops)
        outputs, tail = feed_all(scanner, pieces)
        got = "".join(outputs) + tail
        if cuts:
            assert got == expected
            assert scanner.stopped
        else:
            # Without a stop, everything comes out, except a dangling "\nUs…" at the end.
            assert expected.startswith(got)
            dropped = expected[len(got) :]
            assert dropped == "" or "\nUser:".startswith(dropped)
        for stop in stops:
            assert stop not in got
