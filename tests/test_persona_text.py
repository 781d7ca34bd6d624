"""The text forms of personas in the editor (tui.core.persona_text): plain, no Textual."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tui.core.persona_text import (
    broken_files,
    examples_to_text,
    parse_examples_text,
    parse_sampling_value,
    parse_stops_text,
    plain_number,
    stops_to_text,
    unique_id,
)
from tui.core.personas import Example, load_library

REPO_PERSONAS = Path(__file__).resolve().parent.parent / "personas"


def test_the_module_needs_no_textual_or_rich() -> None:
    """The core layer: importing it (in a fresh interpreter) loads neither."""
    import subprocess

    code = (
        "import sys, tui.core.persona_text; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_bundled_examples_round_trip_through_the_editor_format() -> None:
    library = load_library(REPO_PERSONAS, Path("/nonexistent"))
    tricky = [
        Example("User: is not a new block", "line\n\nAI: neither\n\\ backslash\n  indented"),
        Example(" leading space", "multi\nline"),
    ]
    for examples in [p.examples for p in library.personas.values()] + [tricky]:
        assert parse_examples_text(examples_to_text(examples)) == examples


def test_examples_format_is_forgiving_about_layout_and_strict_about_pairs() -> None:
    text = "\nuser: Hi\nAI:\nHello!\nHow are you?\n\n\nUser: Bye\nAi: Bye."
    assert parse_examples_text(text) == [
        Example("Hi", "Hello!\nHow are you?"),
        Example("Bye", "Bye."),
    ]
    assert parse_examples_text("  \n") == []
    with pytest.raises(ValueError, match="line 1"):
        parse_examples_text("Hello there")
    with pytest.raises(ValueError, match='line 3: this "User:" has no "AI:"'):
        parse_examples_text("User: a\nAI: b\nUser: c")
    with pytest.raises(ValueError, match='line 1: "AI:" without'):
        parse_examples_text("AI: b")


def test_stop_strings_escape_line_breaks() -> None:
    stops = ["\nUser:", "a\\nb", "tab\there", "</s>"]
    assert stops_to_text(stops) == "\\nUser:\na\\\\nb\ntab\\there\n</s>"
    assert parse_stops_text(stops_to_text(stops)) == stops
    assert parse_stops_text("\n  \n###\n") == ["###"]


def test_sampling_fields_are_checked_against_the_spec() -> None:
    assert parse_sampling_value("temperature", " ") is None
    assert parse_sampling_value("temperature", "0.5") == 0.5
    assert parse_sampling_value("top_k", "40.0") == 40
    for key, raw, reason in [
        ("temperature", "9", "between 0 and 2"),
        ("temperature", "warm", "must be a number"),
        ("temperature", "nan", "finite"),
        ("top_k", "1.5", "whole number"),
        ("seed", "-2", "between -1 and 2147483647"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_sampling_value(key, raw)


def test_new_ids_never_override_or_overwrite() -> None:
    assert unique_id("Bob", {"assistant"}) == "bob"
    assert unique_id("Bob", {"bob", "bob-2"}) == "bob-3"
    assert unique_id("../x", set()) == "x"
    assert unique_id("a/b", set()) == "a-b"


def test_numbers_read_as_people_write_them() -> None:
    assert plain_number(2.0) == "2"
    assert plain_number(40) == "40"
    assert plain_number(0.95) == "0.95"
    assert plain_number(1e300) == "1e+300"  # not an integer of 301 digits


def test_broken_files_are_the_ones_that_did_not_load(tmp_path: Path) -> None:
    bundled, user = tmp_path / "bundled", tmp_path / "user"
    bundled.mkdir()
    user.mkdir()
    (bundled / "ok.toml").write_text('name = "Ok"\n')
    (user / "bad.toml").write_text("name = [unclosed\n")
    (user / "odd.toml").write_text('name = "Odd"\nunknown_key = 1\n')  # a warning, it loads
    library = load_library(bundled, user)
    assert [p.path.name for p in broken_files(library)] == ["bad.toml"]
    assert "ok" in library.personas and "odd" in library.personas
