"""Persona files: bundled ones load, user ones override, broken ones are reported."""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from tui.core import personas as ps


def test_bundled_personas_load_without_problems() -> None:
    library = ps.load_library(user_dir=Path("/nonexistent"))
    assert library.problems == []
    assert {"assistant", "bob", "chatllama"} <= set(library.personas)
    assert all(p.bundled for p in library.personas.values())
    assert library.sorted()[0].id == "assistant"


def test_chatllama_carries_the_seed_sampling_values() -> None:
    chatllama = ps.load_library().get("chatllama")
    sampling = chatllama.sampling_defaults()
    assert (sampling.n_ctx, sampling.temperature, sampling.top_k, sampling.top_p) == (
        4096,
        0.7,
        40,
        0.5,
    )
    assert (sampling.repeat_last_n, sampling.repeat_penalty, sampling.max_tokens) == (
        256,
        1.17647,
        1024,
    )
    assert chatllama.ai_name == "ChatLLaMa"


def test_placeholders_are_plain_substitution() -> None:
    persona = ps.Persona(id="x", name="X", ai_name="Bob", user_name="Ann")
    now = datetime(2023, 3, 17, 9, 5)
    text = "{{user}} meets {{ai}} at {{time}} in {{year}}; {{ __import__('os') }} {{unknown}}"
    assert persona.fill(text, now) == (
        "Ann meets Bob at 09:05 in 2023; {{ __import__('os') }} {{unknown}}"
    )


def test_user_persona_overrides_bundled(tmp_path: Path) -> None:
    (tmp_path / "bob.toml").write_text('name = "My Bob"\nsystem = "mine"\n')
    library = ps.load_library(user_dir=tmp_path)
    assert library.get("bob").name == "My Bob"
    assert library.get("bob").bundled is False


@pytest.mark.parametrize(
    ("content", "reason", "line"),
    [
        ('name = "A"\nsystem = = 3\n', "TOML syntax error", 2),
        ('name = "A"\nsystem = """never closed\n', "Unterminated string", 3),
        ('name = "A"\nsystem = 42\n', "'system' must be a string", 2),
        ('name = "A"\nmode = "poetry"\n', "'mode' must be one of", 2),
        ('name = "A"\n[sampling]\ntemperature = "hot"\n', "sampling.temperature must be", 3),
        ('name = "A"\nexamples = "hi"\n', "'examples' must be an array", 2),
    ],
)
def test_broken_files_are_reported_with_file_and_line(
    tmp_path: Path, content: str, reason: str, line: int
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(content)
    library = ps.load_library(user_dir=tmp_path)
    assert "broken" not in library.personas
    (problem,) = library.problems
    assert problem.path == path
    assert reason in problem.reason
    assert problem.line == line
    assert str(problem).startswith(f"{path}:{line}: ")


def test_invalid_utf8_is_reported(tmp_path: Path) -> None:
    (tmp_path / "latin.toml").write_bytes(b'name = "A"\nsystem = "caf\xe9"\n')
    (problem,) = ps.load_library(user_dir=tmp_path).problems
    assert "UTF-8" in problem.reason and problem.line == 2


def test_unknown_keys_warn_and_survive_a_resave(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "odd.toml").write_text('name = "Odd"\nsystem = "s"\nvoice = "deep"\n')
    library = ps.load_library(user_dir=user)
    assert any("unknown key 'voice'" in p.reason for p in library.problems)
    persona = library.get("odd")
    path = ps.save_persona(persona, user)
    assert tomllib.loads(path.read_text())["voice"] == "deep"


def test_out_of_range_sampling_is_clamped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "hot.toml").write_text('name = "Hot"\n[sampling]\ntemperature = 9.5\n')
    library = ps.load_library(user_dir=tmp_path)
    assert library.get("hot").sampling_defaults().temperature == 2.0
    assert any("outside" in p.reason for p in library.problems)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "..", "Mein Persönchen!"])
def test_saved_file_names_are_safe(tmp_path: Path, name: str) -> None:
    persona = ps.Persona(id=name, name=name, system="s")
    path = ps.save_persona(persona, tmp_path)
    assert path.parent == tmp_path
    assert "/" not in path.stem and ".." not in path.name
    assert ps.load_persona_file(path).name == name


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    bob = ps.load_library().get("chatllama")
    bob.id = "my-chatllama"
    path = ps.save_persona(bob, tmp_path)
    again = ps.load_persona_file(path)
    assert again.system == bob.system
    assert again.examples == bob.examples
    assert again.sampling == bob.sampling
    assert again.bundled is False
