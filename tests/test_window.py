"""A chat's n_ctx is its prompt budget, not a load parameter: switching chats never reloads."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from tui.core import chat_service as rn
from tui.core import store as st
from tui.core.engine_protocol import (
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    ModelLoading,
    ModelReady,
)
from tui.core.personas import load_library
from tui.engine.local.client import LocalEngine
from tui.engine.local.window import window_cap


def test_window_cap_follows_training_context_and_memory() -> None:
    assert window_cap(4096, 8192, 23040, 0) == 4096  # memory unknown: no cap
    assert window_cap(131072, 8192, 23040, 0) == 8192  # training length
    # 100 MB available, half of it for a 23 KB/token cache: ~2,200 tokens, in 256s
    assert window_cap(8192, 8192, 23040, 100 << 20) == 2048
    assert window_cap(8192, 0, 1 << 30, 1 << 30) == 512  # never under 512


def test_the_window_loaded_is_the_largest_any_persona_or_chat_wants(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "chats.db")
    runner = rn.ChatService(store, None, load_library(), "model.gguf")  # type: ignore[arg-type]
    wanted = max(p.sampling_defaults().n_ctx for p in runner.personas.personas.values())
    assert runner.window() == wanted
    chat = runner.new_conversation("bob")
    store.update_conversation(chat.id, sampling={"n_ctx": wanted * 2})
    assert runner.window(store.get_conversation(chat.id)) == wanted * 2
    store.close()


@pytest.mark.model
def test_alternating_bob_and_assistant_loads_the_model_once(
    tmp_path: Path, model_path: Path
) -> None:
    """Bob wants 512 tokens, Assistant 4096: one load serves both, each keeps its budget."""
    store = st.Store(tmp_path / "chats.db")
    events: queue.Queue = queue.Queue()
    engine = LocalEngine(tmp_path / "engine.log")
    runner = rn.ChatService(store, engine, load_library(), str(model_path))
    engine.start(events.put)
    seen: list = []
    try:
        runner.load(str(model_path))
        chats = {pid: runner.new_conversation(pid) for pid in ("bob", "assistant")}
        for chat in chats.values():
            store.update_conversation(chat.id, sampling={"max_tokens": 4, "temperature": 0})
        budgets = []
        for turn in range(2):
            for pid, chat in chats.items():
                runner.send(chat.id, f"Say hello ({pid}, turn {turn}).")
                while runner.jobs:
                    event = events.get(timeout=120)
                    seen.append(event)
                    runner.handle(event)
                    assert not isinstance(event, GenerationFailed), event
                    if isinstance(event, GenerationStarted):
                        budgets.append((pid, event.n_ctx))
        loads = [e for e in seen if isinstance(e, ModelLoading) and e.progress == 0.0]
        assert len(loads) == 1, loads
        ready = [e for e in seen if isinstance(e, ModelReady)]
        assert ready[0].info.n_ctx >= 4096
        assert budgets == [("bob", 512), ("assistant", 4096)] * 2
        assert sum(isinstance(e, GenerationFinished) for e in seen) == 4
    finally:
        engine.close()
        store.close()
