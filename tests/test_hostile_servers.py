"""Hostile servers (issue 13, items 7 and 10): too much data, and honest timeouts.

A scripted server sends far more than ``max_tokens`` asks for, as many
small pieces, one giant piece, endless keep-alive comments or one huge
non-streamed JSON answer. The engine stops reading at a bound tied to
``max_tokens`` (and a byte cap), keeps what came and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.remote_servers import Recorder, Reply, ScriptedServer, StallReply, chat_chunk
from tests.test_remote_engine import job, text_of
from tui.core.engine_protocol import GenerationFailed, GenerationFinished, LoadModel, ModelFailed
from tui.engine.remote import discovery, stream

MAX_TOKENS = 16
CHAR_CAP = MAX_TOKENS * getattr(stream, "CHARS_PER_TOKEN", 64)  # 64: before it existed


@dataclass
class FloodReply(Reply):
    """Write ``count`` copies of ``unit`` as one chunked stream; count what got out."""

    unit: bytes
    count: int
    content_type: str = "text/event-stream"
    written: int = 0
    finished: bool = False

    def respond(self, handler) -> None:  # type: ignore[no-untyped-def]
        handler.send_response(200)
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        batch = self.unit * max(1, 65536 // len(self.unit))
        try:
            while self.written < self.count:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(batch), batch))
                self.written += len(batch) // len(self.unit)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
            self.finished = True
        except OSError:
            handler.close_connection = True


def finished(recorder: Recorder) -> tuple[list, GenerationFinished | GenerationFailed]:
    seen = recorder.until((GenerationFinished, GenerationFailed))
    return seen, seen[-1]


# Far beyond 16 tokens: 20 MB in 100-character pieces, one 1 MB piece, 20 MB of comments.
FLOODS = {
    "many pieces": FloodReply(chat_chunk("x" * 100), 200_000),
    "one giant piece": FloodReply(chat_chunk("y" * 1_000_000), 1),
    "keep-alive comments": FloodReply(b": " + b"z" * 1000 + b"\n", 20_000),
}


@pytest.mark.parametrize("name", list(FLOODS))
def test_an_answer_far_beyond_max_tokens_is_cut_and_kept(
    server: ScriptedServer,  # noqa: F811
    connect,  # noqa: F811
    name: str,
) -> None:
    flood = FLOODS[name]
    flood.written, flood.finished = 0, False
    server.routes[("POST", "/v1/chat/completions")] = flood
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Hi", max_tokens=MAX_TOKENS))
    seen, end = finished(events)
    assert isinstance(end, GenerationFinished), end
    assert end.reason == "capped"
    assert len(end.text) <= CHAR_CAP and len(text_of(seen)) <= CHAR_CAP
    if name != "keep-alive comments":
        assert end.text.startswith(end.text[:1] * min(len(end.text), 50)) and end.text
    if name != "one giant piece":  # 1 MB fits in the sockets' buffers
        assert not flood.finished  # reading stopped: the server could not send 20 MB


def test_a_huge_answer_that_ignores_streaming_is_cut(server: ScriptedServer, connect) -> None:  # noqa: F811
    body = json.dumps(
        {"choices": [{"message": {"content": "w" * 5_000_000}, "finish_reason": "stop"}]}
    ).encode()
    server.routes[("POST", "/v1/chat/completions")] = FloodReply(body, 1, "application/json")
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Hi", max_tokens=MAX_TOKENS))
    _seen, end = finished(events)
    assert isinstance(end, GenerationFinished)
    assert end.reason == "capped" and end.text == "w" * CHAR_CAP


def test_an_answer_within_the_bounds_is_untouched(server: ScriptedServer, connect) -> None:  # noqa: F811
    from tests.remote_servers import StreamReply, sse

    pieces = [chat_chunk("word ") for _ in range(MAX_TOKENS)]
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(
        [*pieces, chat_chunk(None, "length"), sse("[DONE]")]
    )
    engine, events = connect(server.base_url)
    engine.generate(job(1, "Hi", max_tokens=MAX_TOKENS))
    _seen, end = finished(events)
    assert end.reason == "length" and end.text == ("word " * MAX_TOKENS).strip()


def test_capped_answers_are_saved_with_a_note(tmp_path) -> None:
    from tui.core import chat_service as rn
    from tui.core import store as st
    from tui.core.personas import load_library

    class Engine:
        def generate(self, job) -> None: ...  # noqa: ANN001
        def cancel(self, job_id: int) -> None: ...

    store = st.Store(tmp_path / "chats.db")
    runner = rn.ChatService(store, Engine(), load_library(), "m")
    conv = runner.new_conversation("assistant")
    _user, answer, job_id = runner.send(conv.id, "hi")
    runner.handle(GenerationFinished(job_id, "xxxx", "capped", 16, 1.0, 5, 100))
    saved = store.get_message(answer.id)
    assert saved.content == "xxxx" + getattr(rn, "CAPPED_NOTE", "(no note)")
    assert saved.status == st.COMPLETE
    assert runner.history(conv, upto=10**9)[0][-1].content == "xxxx"


def test_a_stalled_models_list_reports_the_real_timeout(
    server: ScriptedServer,  # noqa: F811
    connect,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/models waits at most METADATA_TIMEOUT, and the message says that, not the answer's."""
    monkeypatch.setattr(discovery, "METADATA_TIMEOUT", 0.5)
    server.routes[("GET", "/v1/models")] = StallReply()
    engine, events = connect(server.base_url, timeout=30)
    engine.load(LoadModel("test"))
    message = events.until(ModelFailed)[-1].message
    assert "sent nothing for 0.5 s" in message and "30 s" not in message


def test_quit_is_prompt_while_a_server_floods(server: ScriptedServer, tmp_path) -> None:  # noqa: F811
    """In a real terminal: a server streams without end; Ctrl+Q mid-answer and after the cut.

    Before, 20 MB froze the UI and quitting took a minute; the wait here is generous
    (10 s) so that only a hang fails it, not a slow machine.
    """
    import contextlib
    import os
    import sys
    import time
    from pathlib import Path

    import pexpect
    import pyte

    server.routes[("POST", "/v1/chat/completions")] = FloodReply(chat_chunk("flood "), 10**9)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "TERM": "xterm-256color"}
    for when in ("mid-answer", "after the cut"):
        screen = pyte.Screen(100, 30)
        stream = pyte.ByteStream(screen)
        args = ["-m", "tui", "--endpoint", server.base_url, "--db", str(tmp_path / "c.db")]
        child = pexpect.spawn(sys.executable, args, env=env, dimensions=(30, 100), timeout=5)

        def pump_until(needle: str, timeout: float = 30, screen=screen, stream=stream, child=child):
            end = time.monotonic() + timeout
            while needle not in "\n".join(screen.display):
                shown = "\n".join(screen.display)
                assert time.monotonic() < end, f"{needle!r} never appeared:\n{shown}"
                with contextlib.suppress(pexpect.TIMEOUT):
                    stream.feed(child.read_nonblocking(1 << 20, timeout=0.05))

        try:
            pump_until("ready")
            child.send("hi\r")
            pump_until("flood flood")
            if when == "after the cut":
                pump_until("cut off")
            child.send("\x11")  # Ctrl+Q
            child.expect(pexpect.EOF, timeout=10)
        finally:
            child.close(force=True)
