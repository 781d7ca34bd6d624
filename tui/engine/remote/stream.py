"""Reading an answer as it streams: server-sent events, bounds, and cancelling.

A hostile or broken server may stream far more than max_tokens asks for (20 MB
froze the UI): :class:`_Progress` cuts the answer at bounds derived from it,
keeps what came, and the finish reason says so (``capped``). :class:`_Active`
lets a cancel cut the one connection the answer uses.
"""

from __future__ import annotations

import codecs
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tui.core.endpoints import Endpoint
from tui.core.turn_policy import FINISH_CAPPED, FINISH_STOP, ReplyFilter
from tui.engine.remote.messages import (
    RemoteError,
    _error_text,
    _json_or_error,
    _json_or_none,
    _Refused,
    _sounds_too_long,
    _StreamCut,
    _TooLong,
    status_message,
    transport_message,
)

CHARS_PER_TOKEN = 64  # generous: real tokens average about 4 characters
ANSWER_CHAR_CAP = 4 * 1024 * 1024  # whatever max_tokens says
STREAM_BYTES_PER_TOKEN = 4096  # raw SSE bytes (JSON framing, keep-alives) per token


@dataclass
class _Progress:
    """What one answer has produced so far (kept when it fails or is cancelled)."""

    text: str = ""
    reasoning: str = ""  # the thinking (a reasoning model's), beside the answer
    pieces: int = 0  # streamed pieces: about one token each
    thinking_pieces: int = 0  # of those, thinking
    first_at: float = 0.0  # monotonic time of the first piece
    answer_at: float = 0.0  # monotonic time of the first answer piece after thinking
    budget: int = -1  # thinking pieces allowed before reading stops (-1: no limit)
    over_budget: bool = False  # reading stopped there: the thinking must be closed
    char_cap: int = ANSWER_CHAR_CAP  # bounds on what is read (see CHARS_PER_TOKEN)
    piece_cap: int = 2**62
    byte_cap: int = 2**62
    received: int = 0  # raw bytes of the stream so far
    capped: bool = False  # the server sent more than the bounds: reading stopped

    def count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The stream's chunks, stopping (``capped``) once ``byte_cap`` bytes have come."""
        for chunk in chunks:
            self.received += len(chunk)
            if self.received > self.byte_cap:
                self.capped = True
                return
            yield chunk


@dataclass
class _Active:
    """The request in flight, so that :meth:`RemoteEngine.cancel` can cut it."""

    job_id: int
    aborted: bool = False
    sock: socket.socket | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: remember the socket as soon as it is connected."""
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            with self.lock:
                self.sock = sock
                aborted = self.aborted
            if aborted:
                self._shutdown()

    def abort(self) -> None:
        """Cut the connection now: a read blocked on it returns at once."""
        with self.lock:
            self.aborted = True
        self._shutdown()

    def _shutdown(self) -> None:
        with self.lock:
            sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)


def stream_answer(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, str],
    active: _Active,
    progress: _Progress,
    reply: ReplyFilter,
    on_text: Callable[[str, bool], None],
    endpoint: Endpoint,
    model: str,
) -> tuple[str | None, dict[str, Any]]:
    """Post ``payload`` and stream the answer; returns (finish_reason, usage).

    The thinking arrives as ``delta.reasoning_content`` (llama.cpp's server,
    DeepSeek, vLLM), ``delta.reasoning`` (newer vLLM, Ollama) or inline as
    ``<think>…</think>`` in the content (servers that do not split it):
    ``reply`` splits the latter. What may be shown goes through ``reply``
    (stop strings, the space after ``Bob:``), is bounded by ``progress``'s
    caps, and is added to ``progress.text`` (or ``progress.reasoning``) and
    given to ``on_text(text, thinking)`` piece by piece. Past
    ``progress.budget`` thinking pieces, reading stops (``over_budget``).
    """
    finish: str | None = None
    usage: dict[str, Any] = {}
    done = False

    def show(pieces: list[tuple[bool, str]]) -> None:
        for thinking, out in pieces:
            left = progress.char_cap - len(progress.text) - len(progress.reasoning)
            if len(out) > left:
                out, progress.capped = out[: max(left, 0)], True
            if not out or active.aborted:
                continue
            if thinking:
                progress.reasoning += out
            else:
                progress.text += out
                if progress.reasoning and not progress.answer_at:
                    progress.answer_at = time.monotonic()
            on_text(out, thinking)

    def emit(piece: str, thinking: bool = False) -> None:
        pieces = reply.feed(piece, thinking)
        if reply.took_back:  # the answer so far was thinking: the final texts say so
            reply.took_back = False
            progress.reasoning, progress.text = progress.reasoning + progress.text, ""
        show(pieces)

    try:
        with client.stream(
            "POST",
            url,
            json=payload,
            headers=headers,
            extensions={"trace": active.trace},
        ) as response:
            if response.status_code != 200:
                body = _read_limited(response)
                status = response.status_code
                message = status_message(endpoint, model, status, body, "answer")
                detail = _error_text(_json_or_none(body) or body)
                if status in (400, 413, 422, 500) and _sounds_too_long(detail):
                    raise _TooLong(message, status, body)
                raise _Refused(message, status, body)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # A server that ignored stream=true: one JSON answer.
                data = _json_or_error(_read_limited(response, 10**7))
                piece, thought, finish = _choice_text(data)
                usage = data.get("usage") or {}
                progress.first_at = time.monotonic()
                progress.pieces = 1 if piece or thought else 0
                emit(thought, thinking=True)
                emit(piece)
                done = True
            else:
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                chunks = progress.count(response.iter_bytes())
                for event, data in _sse_events(chunks, decoder):
                    if active.aborted or progress.capped:
                        break
                    if data.strip() == "[DONE]":
                        done = True
                        break
                    parsed = _json_or_none(data)
                    if event == "error" or (isinstance(parsed, dict) and "error" in parsed):
                        detail = _error_text(parsed or data) or "no details"
                        message = (
                            "The server reported an error in the middle of the answer: " + detail
                        )
                        if not progress.pieces and _sounds_too_long(detail):
                            raise _TooLong(message, 400, data)
                        raise RemoteError(message)
                    if not isinstance(parsed, dict):  # parsed once: this runs per token
                        raise RemoteError(
                            f"The server sent something that is not JSON: {data[:80]!r}"
                        )
                    chunk = parsed
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
                    piece, thought, chunk_finish = _choice_text(chunk)
                    finish = chunk_finish or finish
                    if piece or thought:
                        progress.first_at = progress.first_at or time.monotonic()
                        progress.pieces += 1
                        if thought:
                            emit(thought, thinking=True)
                        if piece:
                            emit(piece)
                        if thought or reply.thinking:
                            progress.thinking_pieces += 1
                        progress.capped |= progress.pieces > progress.piece_cap
                    if 0 <= progress.budget < progress.thinking_pieces and not progress.text:
                        progress.over_budget = True
                        break
                    if reply.stopped or progress.capped:
                        break  # leaving the block closes the stream
    except httpx.HTTPError as exc:
        if active.aborted:
            return None, usage
        mid_answer = progress.pieces > 0
        raise RemoteError(transport_message(endpoint, exc, "answer", mid_answer)) from None
    if active.aborted:
        return None, usage
    if progress.capped:
        return FINISH_CAPPED, usage
    if progress.over_budget:
        return None, usage
    if not (done or finish or reply.stopped):
        raise _StreamCut(
            f"The connection to {endpoint.base_url} ended in the middle of the "
            "answer; the text so far is kept."
            if progress.pieces
            else f"The server at {endpoint.base_url} closed the stream without "
            "answering; it may have rejected the prompt (see the server's log)."
        )
    show(reply.finish())
    return (FINISH_STOP if reply.stopped else finish), usage


def _sse_events(
    chunks: Iterator[bytes], decoder: codecs.IncrementalDecoder
) -> Iterator[tuple[str, str]]:
    """(event, data) pairs from a server-sent-events byte stream.

    Lines end in LF or CRLF; ``data:`` lines are joined with newlines;
    a blank line ends an event; ``:`` lines are keep-alive comments.
    """
    buffer, event, data = "", "", []
    for chunk in chunks:
        buffer += decoder.decode(chunk)
        *lines, buffer = buffer.split("\n")
        for line in lines:
            line = line.removesuffix("\r")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "", []
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value
                elif name == "error":  # llama.cpp's server: "error: {...}"
                    event, data = "error", [value]
    tail = (buffer + decoder.decode(b"", final=True)).removesuffix("\r")
    name, _, value = tail.partition(":")
    if name in ("data", "error"):
        data.append(value.removeprefix(" "))
        event = "error" if name == "error" else event
    if data:
        yield event, "\n".join(data)


REASONING_FIELDS = ("reasoning_content", "reasoning")  # DeepSeek/llama.cpp/vLLM; vLLM/Ollama


def _choice_text(chunk: dict[str, Any]) -> tuple[str, str, str | None]:
    """The new answer text, the new thinking and the finish reason in a chunk."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", "", None
    choice = choices[0]
    text = choice.get("text")
    thought = ""
    for holder in ("delta", "message"):
        part = choice.get(holder)
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("content"), str):
            text = part["content"]
        for name in REASONING_FIELDS:  # a server sends one of them (a few, both alike)
            if isinstance(part.get(name), str) and part[name]:
                thought = part[name]
                break
    finish = choice.get("finish_reason")
    return (text if isinstance(text, str) else ""), thought, finish


def _read_limited(response: httpx.Response, limit: int = 65536) -> str:
    """At most ``limit`` bytes of a body, as text: error bodies can be huge pages."""
    data = b""
    with contextlib.suppress(httpx.HTTPError):
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    return data[:limit].decode("utf-8", "replace")
