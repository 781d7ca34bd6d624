"""Errors of the remote engine, and the messages that explain them to people.

A server's error body is data: only a bounded, flattened excerpt of it
(:func:`_error_text`) ever reaches a message.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tui.core.endpoints import Endpoint, config_advice

_ERROR_BODY_LIMIT = 300  # characters of a server's error text shown to people


class RemoteError(Exception):
    """A failure explained for people (the message is shown as it is)."""


class _StreamCut(RemoteError):
    """The answer stopped without the server saying it was finished."""


class _Refused(RemoteError):
    """The server answered the request with an error status (kept for a retry)."""

    def __init__(self, message: str, status: int, body: str):
        super().__init__(message)
        self.status, self.body = status, body


class _TooLong(_Refused):
    """The server says the prompt (plus the answer asked for) exceeds its window."""


def transport_message(
    endpoint: Endpoint,
    exc: httpx.HTTPError,
    what: str,
    mid_answer: bool = False,
    waited: float | None = None,
) -> str:
    """``waited``: the read timeout the request really had (metadata: 15 s at most)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"The server at {endpoint.base_url} did not accept a connection within "
            f"{endpoint.connect_timeout:g} s: check the address and that the machine is up."
        )
    if isinstance(exc, httpx.ConnectError):
        return (
            f"Cannot connect to {endpoint.base_url}: is the server running at "
            f"{endpoint.root_url}? ({_reason(exc)})"
        )
    if isinstance(exc, httpx.TimeoutException):
        during = "in the middle of the answer" if mid_answer else "to the request"
        return (
            f"The server at {endpoint.base_url} sent nothing for "
            f"{waited if waited is not None else endpoint.timeout:g} s "
            f"{during}; it may be overloaded. If it is just slow, "
            f"{config_advice(endpoint, 'timeout', int(endpoint.timeout * 2))}."
        )
    if mid_answer:
        return (
            f"The connection to {endpoint.base_url} broke in the middle of the answer "
            f"({_reason(exc)}); the text so far is kept."
        )
    return f"The request for the {what} to {endpoint.base_url} failed: {_reason(exc)}."


def status_message(endpoint: Endpoint, model: str, status: int, body: str, what: str) -> str:
    """Why a server answered ``status`` for the ``what``, with the fix to try."""
    detail = _error_text(_json_or_none(body) or body)
    detail = f" The server said: {detail}" if detail else ""
    if status in (401, 403):
        if not endpoint.api_key_env:
            advice = (
                "it wants an API key: put the key in an environment variable and "
                f"{config_advice(endpoint, 'api_key_env', 'NAME_OF_THAT_VARIABLE')}"
            )
        elif endpoint.api_key() is None:
            advice = f"the API key should be in ${endpoint.api_key_env}, which is not set"
        else:
            advice = f"check the API key in ${endpoint.api_key_env}"
        return f"The server at {endpoint.base_url} refused access (HTTP {status}): {advice}."
    if status == 404:
        model = f" or does not know the model '{model}'" if model else ""
        return (
            f"The server at {endpoint.base_url} has no such address{model} (HTTP 404) "
            f"for the {what}: check base_url (it usually ends in /v1) and model "
            f"({config_advice(endpoint, 'model')}).{detail}"
        )
    if status in (400, 413, 422, 500) and _sounds_too_long(detail):
        window, _ = _window_in_error(body)
        return (
            "The server says the prompt does not fit its context window: lower this "
            f"chat's n_ctx, or {config_advice(endpoint, 'n_ctx', window or None)}"
            f".{detail}"
        )
    if status in (400, 422):
        return f"The server at {endpoint.base_url} rejected the request (HTTP {status}).{detail}"
    if status == 503:
        return (
            f"The server at {endpoint.base_url} is busy or still loading its model "
            f"(HTTP 503); try again in a moment.{detail}"
        )
    if status >= 500:
        return f"The server at {endpoint.base_url} failed (HTTP {status}).{detail}"
    return f"The server at {endpoint.base_url} answered HTTP {status} for the {what}.{detail}"


def too_long_message(endpoint: Endpoint, n_ctx: int, exc: _TooLong, retried: bool) -> str:
    """The server's refusal, with advice that is valid config."""
    window, _ = _window_in_error(exc.body)
    window = window or n_ctx
    detail = _error_text(_json_or_none(exc.body) or exc.body)
    detail = f" The server said: {detail}" if detail else ""
    again = ", even after trimming the chat to it" if retried else ""
    return (
        f"The server says the prompt does not fit its context window ({window} "
        f"tokens){again}. Lower this chat's n_ctx, or "
        f"{config_advice(endpoint, 'n_ctx', window)}.{detail}"
    )


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_or_error(text: str) -> dict[str, Any]:
    data = _json_or_none(text)
    if not isinstance(data, dict):
        raise RemoteError(f"The server sent something that is not JSON: {text[:80]!r}")
    return data


def _error_text(body: Any) -> str:
    """The human part of an error body: OpenAI, FastAPI, Ollama or plain text."""
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return _error_text(value)
        return ""
    if isinstance(body, list):
        return "; ".join(_error_text(b) for b in body[:3])
    text = " ".join(str(body).split())
    return text[:_ERROR_BODY_LIMIT] + ("…" if len(text) > _ERROR_BODY_LIMIT else "")


# How servers say how big their window is, when they refuse a prompt:
# llama-cpp-python ("exceed context window of 512"; its server: "maximum context length
# is 512 tokens"), llama.cpp's server ("exceeds the available context size (512 tokens)"),
# vLLM and OpenAI ("maximum context length is 4096 tokens").
_WINDOW_PATTERNS = (
    re.compile(r"context window of (\d+)"),
    re.compile(r"maximum context length is (\d+)"),
    re.compile(r"available context size \((\d+)"),
    re.compile(r"\bn_ctx\D{0,4}(\d+)"),
)
_REQUESTED_PATTERNS = (
    re.compile(r"[Rr]equested tokens \((\d+)\)"),
    re.compile(r"you requested (\d+) tokens"),
    re.compile(r"request \((\d+) tokens\)"),
)


def _window_in_error(body: str) -> tuple[int, int]:
    """(the server's window, the tokens the request needed) from an error body; 0 = unknown.

    llama.cpp's server also puts them in the error object as ``n_ctx`` and
    ``n_prompt_tokens``.
    """
    data = _json_or_none(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and _positive_int(error.get("n_ctx")):
        return _positive_int(error.get("n_ctx")), _positive_int(error.get("n_prompt_tokens"))
    text = _error_text(data) if data is not None else body
    window = next((int(m.group(1)) for p in _WINDOW_PATTERNS if (m := p.search(text))), 0)
    needed = next((int(m.group(1)) for p in _REQUESTED_PATTERNS if (m := p.search(text))), 0)
    return window, needed


def _sounds_too_long(detail: str) -> bool:
    lowered = detail.lower()
    return any(w in lowered for w in ("context", "too long", "exceed", "maximum", "n_ctx"))


def _reason(exc: httpx.HTTPError) -> str:
    """A short reason from an httpx error ('Connection refused', 'peer closed…')."""
    text = str(exc) or type(exc).__name__
    if "] " in text and text.startswith("["):  # "[Errno 111] Connection refused"
        text = text.split("] ", 1)[1]
    return text.rstrip(".")


def _positive_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
