"""Servers for the remote-engine tests, all on 127.0.0.1.

:class:`ScriptedServer` is a tiny OpenAI-compatible server whose answers are
scripted per test, including the ways real servers fail: cutting the stream,
stalling, error statuses. :class:`LlamaCppPythonServer` runs llama-cpp-python's
own server (``python -m llama_cpp.server``) with the bundled SmolLM2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tui.core.engine_protocol import EngineEvent

SERVER_MODULES = ("llama_cpp.server", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


WAIT = 20  # seconds any one engine event may take


class Recorder:
    """Collects engine events from the engine's thread."""

    def __init__(self) -> None:
        self.events: queue.Queue[EngineEvent] = queue.Queue()

    def __call__(self, event: EngineEvent) -> None:
        self.events.put(event)

    def until(self, kind: type | tuple[type, ...], job_id: int | None = None) -> list[Any]:
        """Events up to and including the first of ``kind`` (for ``job_id``, if given)."""
        seen = []
        while True:
            event = self.events.get(timeout=WAIT)
            seen.append(event)
            if isinstance(event, kind) and (job_id is None or event.job_id == job_id):
                return seen


# --- a scripted server ---------------------------------------------------------------


@dataclass
class Seen:
    """One request the scripted server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: str = ""  # what follows "?" (routes ignore it)


def sse(data: Any) -> bytes:
    """One server-sent event carrying ``data`` (JSON unless it is a string)."""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def chat_chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def text_chunk(text: str = "", finish: str | None = None) -> bytes:
    return sse({"choices": [{"index": 0, "text": text, "finish_reason": finish}]})


class Reply:
    """What the handler does for one request; subclasses script the failures."""

    def respond(self, handler: Handler) -> None:
        raise NotImplementedError


@dataclass
class JsonReply(Reply):
    body: Any
    status: int = 200

    def respond(self, handler: Handler) -> None:
        data = json.dumps(self.body).encode()
        handler.send_response(self.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@dataclass
class StreamReply(Reply):
    """Server-sent events, chunked; ``drop`` cuts the connection instead of ending it."""

    events: list[bytes]
    delay: float = 0.0
    drop: bool = False
    stall_after: bool = False  # send the events, then wait without ending

    def respond(self, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for event in self.events:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                handler.wfile.flush()
                time.sleep(self.delay)
            if self.stall_after:
                handler.server.release.wait(10)  # type: ignore[attr-defined]
            if self.drop:
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            handler.server.disconnects += 1  # type: ignore[attr-defined]
            handler.close_connection = True


class StallReply(Reply):
    """Read the request, then say nothing until the test ends."""

    def respond(self, handler: Handler) -> None:
        handler.server.release.wait(10)  # type: ignore[attr-defined]
        handler.close_connection = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output clean

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        path, _, query = self.path.partition("?")
        self.server.seen.append(Seen(method, path, dict(self.headers.items()), body, query))
        reply = self.server.routes.get((method, path))
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(body)
        if reply is None:
            reply = JsonReply({"error": {"message": f"no route {path}"}}, 404)
        reply.respond(self)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[tuple[str, str], Reply | Callable[[dict[str, Any]], Reply]]
    seen: list[Seen]
    release: threading.Event
    disconnects: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients cutting connections is what these tests are about


@dataclass
class ScriptedServer:
    """A local HTTP server; set ``routes[(method, path)]`` to script its answers."""

    routes: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.routes = self.routes
        self._server.seen = []
        self._server.release = threading.Event()
        self._server.disconnects = 0
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def seen(self) -> list[Seen]:
        return self._server.seen

    def posts(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == path]

    def close(self) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()


def llama_cpp_models(model: str = "test-model") -> JsonReply:
    """/v1/models as llama.cpp's server answers it."""
    return JsonReply(
        {
            "object": "list",
            "data": [{"id": model, "owned_by": "llamacpp", "meta": {"n_ctx_train": 8192}}],
        }
    )


def llama_cpp_props(n_ctx: int) -> JsonReply:
    return JsonReply({"default_generation_settings": {"n_ctx": n_ctx}, "total_slots": 1})


# --- llama-cpp-python's own server ---------------------------------------------------


def missing_server_modules() -> list[str]:
    """The modules ``python -m llama_cpp.server`` needs that are not installed."""
    missing = []
    for name in SERVER_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


class LlamaCppPythonServer:
    """``python -m llama_cpp.server`` on a free port; its log goes to a file."""

    def __init__(self, model: Path, log_path: Path, n_ctx: int = 2048):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
        command += ["--port", str(self.port), "--host", "127.0.0.1", "--n_ctx", str(n_ctx)]
        command += ["--n_threads", str(max(os.cpu_count() or 1, 1))]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll /v1/models until the model is loaded; raise with the log tail if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tail = self.log_path.read_text("utf-8", "replace")[-2000:]
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not start:\n{tail}")

    def warm_up(self) -> None:
        """Tiny requests first: the first of each kind takes seconds, later ones do not."""
        for path, body in (
            ("completions", {"prompt": "Hello", "max_tokens": 1}),
            (
                "chat/completions",
                {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
            ),
        ):
            httpx.post(f"{self.base_url}/{path}", json=body, timeout=120).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


# --- llama.cpp's own C++ server ------------------------------------------------------


def llama_server_binary() -> str | None:
    """``llama-server`` from $LLAMA_SERVER or PATH (or /usr/local/bin), if installed."""
    import shutil

    candidate = os.environ.get("LLAMA_SERVER") or shutil.which("llama-server")
    if not candidate and os.access("/usr/local/bin/llama-server", os.X_OK):
        candidate = "/usr/local/bin/llama-server"
    return candidate if candidate and os.access(candidate, os.X_OK) else None


class LlamaServer:
    """llama.cpp's ``llama-server`` on 127.0.0.1; :meth:`restart` keeps the port."""

    def __init__(
        self, binary: str, model: Path, log_path: Path, n_ctx: int, extra: list[str] | None = None
    ) -> None:
        self.binary, self.model, self.log_path = binary, model, log_path
        self.extra = list(extra or [])  # more options (a chat template, a reasoning format)
        self.port = free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/v1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start(n_ctx)

    def start(self, n_ctx: int) -> None:
        command = [self.binary, "-m", str(self.model), "-c", str(n_ctx)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "-np", "1"]
        command += ["-t", str(max(os.cpu_count() or 1, 1)), *self.extra]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll /health until the model is loaded; raise with the log tail if not."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.root_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tail = self.log_path.read_text("utf-8", "replace")[-2000:]
        self.stop()
        raise RuntimeError(f"llama-server did not start:\n{tail}")

    def restart(self, n_ctx: int) -> None:
        self.stop()
        self.start(n_ctx)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
