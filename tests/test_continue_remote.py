"""Continue and prefill against servers: the request each kind of server gets.

llama-server: /apply-template, then the rendered prompt plus the answer's
start to /v1/completions. vLLM: a final assistant message with
continue_final_message. Ollama: a final assistant message. OpenAI proper:
refused with a reason, nothing sent. Transcript mode: any server. And the
real llama-server, when /usr/local/bin/llama-server is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remote_servers import (
    JsonReply,
    LlamaServer,
    Recorder,
    ScriptedServer,
    StreamReply,
    chat_chunk,
    llama_server_binary,
    sse,
    text_chunk,
)
from tests.test_remote_engine import BOB
from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelReady,
)
from tui.core.prompt import PersonaPrompt, Turn

PERSONA = PersonaPrompt("Be brief.")
HISTORY = [Turn("user", "Count to five.")]
RENDERED = (
    "<|im_start|>system\nBe brief.<|im_end|>\n"
    "<|im_start|>user\nCount to five.<|im_end|>\n<|im_start|>assistant\n"
)


def prefill_job(job_id: int, prefill: str, persona: PersonaPrompt = PERSONA) -> Generate:
    return Generate(job_id, persona, list(HISTORY), {"max_tokens": 32}, prefill=prefill)


def run(engine, events: Recorder, job: Generate) -> list:
    engine.generate(job)
    return events.until((GenerationFinished, GenerationFailed), job.job_id)


def test_llama_server_gets_the_rendered_prompt_plus_the_text(
    server: ScriptedServer, connect
) -> None:
    server.routes[("POST", "/apply-template")] = JsonReply({"prompt": RENDERED})
    server.routes[("POST", "/v1/completions")] = StreamReply(
        [text_chunk(" 4,"), text_chunk(" 5."), text_chunk("", "stop"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url)
    seen = run(engine, events, prefill_job(1, "1, 2, 3,"))
    finished = seen[-1]
    assert isinstance(finished, GenerationFinished) and finished.text == " 4, 5."
    (template,) = server.posts("/apply-template")
    assert template.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Count to five."},
    ]
    (request,) = server.posts("/v1/completions")
    assert request.body["prompt"] == RENDERED + "1, 2, 3,"
    assert "messages" not in request.body and not server.posts("/v1/chat/completions")
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    assert started.prompt_text == RENDERED + "1, 2, 3,"
    assert started.prompt_info["source"] == "server-template"


def test_an_old_llama_server_without_apply_template_says_so(
    server: ScriptedServer, connect
) -> None:
    engine, events = connect(server.base_url)
    failed = run(engine, events, prefill_job(1, "1, 2,"))[-1]
    assert isinstance(failed, GenerationFailed) and "apply-template" in failed.message
    assert not server.posts("/v1/completions")


@pytest.mark.parametrize("kind", ["vllm", "ollama"])
def test_vllm_and_ollama_get_a_final_assistant_message(
    server: ScriptedServer, connect, kind: str
) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk(" 3."), chat_chunk(None, "stop"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url, kind=kind, n_ctx=4096)
    finished = run(engine, events, prefill_job(1, "1, 2,"))[-1]
    assert isinstance(finished, GenerationFinished) and finished.text == " 3."
    (request,) = server.posts("/v1/chat/completions")
    assert request.body["messages"][-1] == {"role": "assistant", "content": "1, 2,"}
    assert [m["role"] for m in request.body["messages"]] == ["system", "user", "assistant"]
    if kind == "vllm":
        assert request.body["continue_final_message"] is True
        assert request.body["add_generation_prompt"] is False
    else:
        assert "continue_final_message" not in request.body


@pytest.mark.parametrize("kind", ["openai", "llama-cpp-python"])
def test_servers_that_cannot_are_refused_before_anything_is_sent(
    server: ScriptedServer, connect, kind: str
) -> None:
    engine, events = connect(server.base_url, kind=kind, n_ctx=4096)
    engine.load(LoadModel("test"))
    assert isinstance(events.until(ModelReady)[-1], ModelReady)
    assert engine.can_prefill() is False
    failed = run(engine, events, prefill_job(1, "1, 2,"))[-1]
    assert isinstance(failed, GenerationFailed) and "cannot go on" in failed.message
    assert not server.posts("/v1/chat/completions") and not server.posts("/v1/completions")


def test_transcript_mode_continues_on_any_server(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/completions")] = StreamReply(
        [text_chunk(" and"), text_chunk(" you?"), text_chunk("", "stop"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url, kind="openai", n_ctx=4096)
    finished = run(engine, events, prefill_job(1, "Fine, thanks,", BOB))[-1]
    # The space after the written text is kept: it goes on, it does not start anew.
    assert isinstance(finished, GenerationFinished) and finished.text == " and you?"
    (request,) = server.posts("/v1/completions")
    assert request.body["prompt"].endswith("User: Count to five.\nBob: Fine, thanks,")


# --- the real llama-server ----------------------------------------------------------------


@pytest.mark.model
def test_real_llama_server_continues_an_answer(model_path: Path, tmp_path: Path, connect) -> None:
    binary = llama_server_binary()
    if binary is None:
        pytest.skip("llama-server is not installed (set LLAMA_SERVER or put it on PATH)")
    served = LlamaServer(binary, model_path, tmp_path / "server.log", n_ctx=1024)
    try:
        engine, events = connect(served.base_url)
        question = [Turn("user", "List the planets of the solar system, in order.")]
        greedy = {"temperature": 0.0, "seed": 1, "n_ctx": 1024}
        whole = run(engine, events, Generate(1, PERSONA, question, {**greedy, "max_tokens": 20}))
        first = run(engine, events, Generate(2, PERSONA, question, {**greedy, "max_tokens": 8}))
        start = first[-1].text
        rest = run(
            engine,
            events,
            Generate(3, PERSONA, question, {**greedy, "max_tokens": 12}, prefill=start),
        )
        assert isinstance(rest[-1], GenerationFinished), rest[-1]
        joined = start + rest[-1].text
        assert whole[-1].text.startswith(start) and len(joined) > len(start)
        assert whole[-1].text.startswith(joined[: len(whole[-1].text)].rstrip()), (
            start,
            rest[-1].text,
        )
        started = next(e for e in rest if isinstance(e, GenerationStarted))
        assert started.prompt_text.endswith("<|im_start|>assistant\n" + start)
    finally:
        served.stop()
