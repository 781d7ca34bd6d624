"""config.toml: every value is checked, and problems are shown inside the TUI."""

from __future__ import annotations

import os
from pathlib import Path

import pexpect
import pytest

from tui.core.config import load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('n_threads = "eight"', "n_threads"),
        ("n_threads = 0", "n_threads"),
        ("n_threads = true", "n_threads"),
        ("n_gpu_layers = -5", "n_gpu_layers"),
        ("n_gpu_layers = 2.5", "n_gpu_layers"),
        ("model_dirs = [1, 2]", "model_dirs"),
        ('model_dirs = "~/models"', "model_dirs"),
        ("model = 7", "model"),
        ("theme = 3", "theme"),
        ("persona = []", "persona"),
    ],
)
def test_every_bad_value_is_named_with_file_key_and_reason(
    tmp_path: Path, line: str, key: str
) -> None:
    path = write(tmp_path, line + "\n")
    config = load_config(path)
    (problem,) = config.problems
    value = line.split(" = ", 1)[1]
    assert problem.startswith(f"{path}: {key} = {value} is not ")
    assert "ignored" in problem
    assert getattr(config, key) == getattr(load_config(tmp_path / "none.toml"), key)


def test_good_values_are_taken(tmp_path: Path) -> None:
    path = write(tmp_path, 'n_threads = 8\nn_gpu_layers = -1\nmodel_dirs = ["~/m"]\n')
    config = load_config(path)
    assert config.problems == []
    assert (config.n_threads, config.n_gpu_layers, config.model_dirs) == (8, -1, ["~/m"])


@pytest.mark.e2e
def test_an_unknown_theme_and_bad_values_are_shown_in_the_tui_not_a_crash(
    isolated_dirs: Path,
) -> None:
    from tests.test_e2e import Terminal

    config_dir = isolated_dirs / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        'theme = "no-such-theme"\nn_threads = "eight"\nmodel = "/nonexistent/m.gguf"\n'
    )
    env = dict(os.environ, TERM="xterm-256color")
    term = Terminal([], env)
    # The TUI is up, not a traceback. The config warnings pop up (bottom right) in the
    # same frame as the status line's state, and at 80 columns a toast covers its end:
    # "error: no mode" is what always stays visible of "error: no model".
    term.wait_for("error: no mode", timeout=30)
    screen = term.wait_for('"no-such-theme"', timeout=10)
    assert "n_threads" in screen and '"eight"' in screen
    term.child.send("\x11")  # Ctrl+Q
    term.child.expect(pexpect.EOF, timeout=15)
    term.child.close()
    assert term.child.exitstatus == 0
    assert "Traceback" not in term.text() and "InvalidThemeError" not in term.text()
