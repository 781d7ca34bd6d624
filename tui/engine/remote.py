"""The remote engine: an OpenAI-compatible server (llama.cpp, vLLM, Ollama…).

Same interface and events as the local engine, so the UI cannot tell them
apart. The work happens on one background thread, one command at a time, in
the order given (a message sent while the server is being checked waits for
the check, as it waits for the model to load locally).

How a persona reaches the server:

- chat mode (the default: a served model is assumed to have a chat
  template; a persona can force transcript mode): ``POST {base}/chat/completions``
  with the persona's system text, its examples and the history as messages;
- transcript mode: ``POST {base}/completions`` with the same transcript
  prompt as the local engine and the ``User:`` stop strings.

Both stream server-sent events. Stop strings are also applied here (with
:class:`tui.core.stops.StopScanner`), since not every server honours them.

Fitting the history into the window uses the same :class:`PromptBuilder` as
the local engine, with a token counter that asks the server when it can
(llama.cpp's ``/tokenize``, llama-cpp-python's ``/extras/tokenize``, vLLM's
``/tokenize``) and otherwise estimates (see :func:`estimate_tokens`). In chat
mode the server applies the model's own template, which we cannot see, so the
count uses a ChatML-like stand-in and :data:`CHAT_MARGIN` tokens are kept
free for the difference.

The API key is read from the endpoint's environment variable for every
request and scrubbed from every message this engine produces.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tui.core.endpoints import Endpoint, config_advice
from tui.core.engine_protocol import (
    CANCEL_ALL,
    CleanEvents,
    Engine,
    EngineEvent,
    EventCallback,
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelFailed,
    ModelInfo,
    ModelLoading,
    ModelReady,
    TokenText,
)
from tui.core.models import display_name
from tui.core.prompt import (
    CHAT,
    TRANSCRIPT,
    PromptBuilder,
    PromptFormat,
    PromptTooLong,
    TemplateError,
    Turn,
    clean_reply,
    fold_opening,
    prompt_budget,
)
from tui.core.sampling import Sampling
from tui.core.stops import StopScanner

DEFAULT_N_CTX = 4096  # when neither the server nor the endpoint config says
# Ollama's window when neither the model (num_ctx) nor the running server says: its
# long-standing default; a larger OLLAMA_CONTEXT_LENGTH is invisible to clients.
OLLAMA_DEFAULT_N_CTX = 2048
# Servers that answer with their one model whatever name a request gives.
_ONE_MODEL_KINDS = ("llama.cpp", "llama-cpp-python")
CHAT_MARGIN = 32  # tokens kept free for the server's real chat template
METADATA_TIMEOUT = 15.0  # seconds, for /models, /props and /tokenize
_ERROR_BODY_LIMIT = 300  # characters of a server's error text shown to people
# A hostile or broken server may stream far more than max_tokens asks for (20 MB froze
# the UI): the answer is cut at these bounds, what came is kept, and the reason says so.
CHARS_PER_TOKEN = 64  # generous: real tokens average about 4 characters
ANSWER_CHAR_CAP = 4 * 1024 * 1024  # whatever max_tokens says
STREAM_BYTES_PER_TOKEN = 4096  # raw SSE bytes (JSON framing, keep-alives) per token
CAPPED_REASON = "capped"

# Used only to *count* chat-mode tokens: the server renders its own template.
COUNTING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# --- settings ------------------------------------------------------------------------

OPENAI_SETTINGS = frozenset(
    {"temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed"}
)
# n_ctx is honoured here (the chat's window is capped at it), whatever the server.
_CLIENT_SIDE = frozenset({"n_ctx"})
_EXTENSIONS: dict[str, frozenset[str]] = {
    "llama.cpp": frozenset(
        {
            "top_k",
            "min_p",
            "typical_p",
            "repeat_penalty",
            "repeat_last_n",
            "mirostat_mode",
            "mirostat_tau",
            "mirostat_eta",
        }
    ),
    "llama-cpp-python": frozenset(
        {"top_k", "min_p", "repeat_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta"}
    ),
    "vllm": frozenset({"top_k", "min_p", "repeat_penalty"}),
}


def supported_settings(kind: str) -> frozenset[str]:
    """The sampling settings a server of ``kind`` acts on; the UI greys out the rest.

    Plain OpenAI-style servers (and Ollama's OpenAI API) only know the
    OpenAI fields; llama.cpp's server knows nearly all of llama.cpp's.
    """
    return OPENAI_SETTINGS | _CLIENT_SIDE | _EXTENSIONS.get(kind, frozenset())


def sampling_fields(sampling: Sampling, kind: str) -> dict[str, Any]:
    """The request fields for ``sampling`` on a server of ``kind`` (no max_tokens/stop).

    Only fields the server knows are sent: OpenAI itself rejects unknown ones.
    """
    fields: dict[str, Any] = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
    }
    if sampling.seed >= 0:
        fields["seed"] = sampling.seed
    extra = _EXTENSIONS.get(kind, frozenset())
    if "top_k" in extra:
        # vLLM disables top-k with -1 (older versions reject 0).
        fields["top_k"] = -1 if kind == "vllm" and sampling.top_k <= 0 else sampling.top_k
    if "min_p" in extra:
        fields["min_p"] = sampling.min_p
    if "typical_p" in extra:
        fields["typical_p"] = sampling.typical_p
    if "repeat_penalty" in extra:
        name = "repetition_penalty" if kind == "vllm" else "repeat_penalty"
        fields[name] = sampling.repeat_penalty
    if "repeat_last_n" in extra:
        fields["repeat_last_n"] = sampling.repeat_last_n
    if "mirostat_mode" in extra:
        name = "mirostat" if kind == "llama.cpp" else "mirostat_mode"
        fields[name] = sampling.mirostat_mode
        fields["mirostat_tau"] = sampling.mirostat_tau
        fields["mirostat_eta"] = sampling.mirostat_eta
    return fields


def estimate_tokens(text: str) -> int:
    """A deliberately high guess of the token count, for servers that cannot count.

    One token per 3 bytes of UTF-8 (prose runs about 4 characters a token,
    CJK about one a character), plus one per digit (Llama tokenizers split
    numbers into digits), plus 8. Too high by about a third for English, so
    a request stays inside the window; a server that still refuses one is
    reported as "too long" with the advice to set the endpoint's n_ctx.
    """
    data = text.encode("utf-8")
    return (len(data) + 2) // 3 + sum(ch.isdigit() for ch in text) + 8


# --- errors --------------------------------------------------------------------------


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


@dataclass
class _Progress:
    """What one answer has produced so far (kept when it fails or is cancelled)."""

    text: str = ""
    pieces: int = 0  # streamed pieces: about one token each
    first_at: float = 0.0  # monotonic time of the first piece
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


# --- the engine ----------------------------------------------------------------------


class RemoteEngine(Engine):
    """Talks to one :class:`Endpoint`; implements :class:`tui.core.engine_protocol.Engine`."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.kind = endpoint.kind  # "auto" until the server has been checked
        self.model = endpoint.model
        self.n_ctx = 0  # the server's window, once checked
        self.window_reported = False  # whether the server said it (else config or a guess)
        self.base = endpoint.base_url  # the OpenAI-compatible API, once checked (see _api_base)
        self.counter = "estimate"  # how tokens are counted: a server kind, or "estimate"
        self.info: ModelInfo | None = None
        self._load_error = ""
        self._on_event: EventCallback | None = None
        self._work: queue.SimpleQueue[LoadModel | Generate | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cancelled_up_to = -1
        self._active: _Active | None = None
        self._closed = False
        self._counts: dict[str, list[int]] = {}
        timeout = httpx.Timeout(endpoint.timeout, connect=endpoint.connect_timeout)
        # Short requests reuse connections; each answer gets its own, so that
        # cancelling can cut exactly that connection (see _Active).
        self._client = httpx.Client(timeout=timeout)
        self._stream_client = httpx.Client(
            timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0)
        )

    # --- Engine interface ---------------------------------------------------------------

    def start(self, on_event: EventCallback) -> None:
        self._on_event = CleanEvents(on_event)  # what it reports is data, made safe
        self._thread = threading.Thread(target=self._run, name="remote-engine", daemon=True)
        self._thread.start()

    def load(self, request: LoadModel) -> None:
        self._work.put(request)

    def generate(self, job: Generate) -> None:
        self._work.put(job)

    def cancel(self, job_id: int) -> None:
        """Cancel ``job_id`` and every earlier job; an answer in flight is cut now."""
        with self._lock:
            self._cancelled_up_to = max(self._cancelled_up_to, job_id)
            active = self._active
        if active is not None and active.job_id <= job_id:
            active.abort()

    def close(self) -> None:
        self._closed = True
        self.cancel(CANCEL_ALL)
        self._work.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=3)
        self._client.close()
        self._stream_client.close()

    def supported_settings(self) -> frozenset[str]:
        """What this endpoint's server acts on (OpenAI fields until it is checked)."""
        return supported_settings(self.kind)

    # --- the worker thread --------------------------------------------------------------

    def _run(self) -> None:
        while (command := self._work.get()) is not None:
            if isinstance(command, LoadModel):
                self._load(command)
            elif isinstance(command, Generate):
                if self._is_cancelled(command.job_id):
                    self._send(GenerationFinished(command.job_id, "", "cancelled"))
                else:
                    self._generate(command)

    def _is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id <= self._cancelled_up_to

    def _send(self, event: EngineEvent) -> None:
        """Deliver an event, with the API key scrubbed from anything people read."""
        if self._closed or self._on_event is None:
            return
        if isinstance(event, ModelFailed):
            event.message, event.log_tail = (
                self._redact(event.message),
                self._redact(event.log_tail),
            )
        elif isinstance(event, GenerationFailed):
            event.message = self._redact(event.message)
        self._on_event(event)

    def _redact(self, text: str) -> str:
        key = self.endpoint.api_key()
        return text.replace(key, "[API key]") if key and text else text

    def _headers(self, streaming: bool = False) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if streaming else "application/json"}
        key = self.endpoint.api_key()  # read now: never kept on this object
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # --- checking the server ------------------------------------------------------------

    def _load(self, request: LoadModel) -> bool:
        """Check the server and model; reports ModelReady or ModelFailed, never raises."""
        where = request.path or self.endpoint.label
        self._send(ModelLoading(where, 0.0))
        started = time.monotonic()
        try:
            self.info = self._check_server()
        except Exception as exc:  # RemoteError; anything else is a bug, but must not kill us
            self.info = None
            self._load_error = (
                str(exc)
                if isinstance(exc, RemoteError)
                else f"Checking {self.endpoint.base_url} failed: {exc!r}"
            )
            self._send(ModelFailed(where, self._load_error))
            return False
        self._send(ModelReady(self.info, time.monotonic() - started))
        return True

    def _check_server(self) -> ModelInfo:
        endpoint = self.endpoint
        self.base, listing = self._api_base()
        entries = [m for m in listing.get("data") or [] if isinstance(m, dict)]
        ids = [str(m.get("id")) for m in entries if m.get("id")]
        kind = endpoint.kind
        props: dict[str, Any] = {}
        if kind in ("auto", "llama.cpp"):
            props = self._get_optional(f"{endpoint.root_url}/props")
            if kind == "auto" and isinstance(props.get("default_generation_settings"), dict):
                kind = "llama.cpp"
        if kind == "auto":
            kind = _kind_from_models(entries)
            if kind == "openai" and self._get_optional(f"{endpoint.root_url}/api/version"):
                kind = "ollama"  # user models are "owned_by" their namespace, not "library"
        model = endpoint.model or (ids[0] if ids else "")
        if endpoint.model and ids and endpoint.model not in ids and kind not in _ONE_MODEL_KINDS:
            hint = f" (ollama pull {endpoint.model})" if kind == "ollama" else ""
            raise RemoteError(
                f"The server at {endpoint.base_url} does not offer the model "
                f"'{endpoint.model}'{hint}. It offers: {', '.join(ids[:10])}. "
                f"To use one, {config_advice(endpoint, 'model', ids[0] if ids else None)}."
            )
        reported, n_ctx_train = _window_from(props, entries, model)
        default = DEFAULT_N_CTX
        if kind == "ollama" and not reported:
            reported, n_ctx_train = self._ollama_window(model)
            default = OLLAMA_DEFAULT_N_CTX
        n_ctx = reported or endpoint.n_ctx or default
        self.window_reported = bool(reported)
        if reported and endpoint.n_ctx:
            n_ctx = min(reported, endpoint.n_ctx)
        self.kind, self.model, self.n_ctx = kind, model, n_ctx
        self._counts.clear()
        self.counter = self._probe_counter()
        return ModelInfo(
            path=f"{endpoint.name}:{model}",
            name=f"{display_name(model) if model else 'model'} @ {endpoint.name}",
            n_ctx=n_ctx,
            n_ctx_train=n_ctx_train or n_ctx,
            has_chat_template=True,
        )

    def _api_base(self) -> tuple[str, dict[str, Any]]:
        """The OpenAI-compatible base URL, and its model list.

        A base_url without ``/v1`` often works for chat (llama.cpp's server
        answers ``/chat/completions`` too) but ``/completions`` there is
        llama.cpp's native API, which streams another format: when
        ``{base_url}/v1/models`` answers with a model list, that is the API.
        """
        base = self.endpoint.base_url
        if not base.endswith("/v1"):
            listing = self._get_optional(f"{base}/v1/models")
            if isinstance(listing.get("data"), list):
                return f"{base}/v1", listing
        return base, self._get_json(f"{base}/models", "model list")

    def _ollama_window(self, model: str) -> tuple[int, int]:
        """(window, training context) from Ollama's own API; its /v1 reports neither.

        The window is the model's ``num_ctx`` parameter (``/api/show``), else
        what the running model was loaded with (``/api/ps``); 0 when unknown.
        """
        root = self.endpoint.root_url
        show = self._post_optional(f"{root}/api/show", {"model": model})
        n_ctx = 0
        parameters = show.get("parameters")
        if isinstance(parameters, str):
            found = re.search(r"^\s*num_ctx\s+(\d+)\s*$", parameters, re.MULTILINE)
            n_ctx = int(found.group(1)) if found else 0
        info = show.get("model_info") if isinstance(show.get("model_info"), dict) else {}
        n_ctx_train = next(
            (_positive_int(v) for k, v in info.items() if k.endswith(".context_length")), 0
        )
        if not n_ctx:
            running = self._get_optional(f"{root}/api/ps").get("models")
            for entry in running if isinstance(running, list) else []:
                if isinstance(entry, dict) and model in (entry.get("name"), entry.get("model")):
                    n_ctx = _positive_int(entry.get("context_length"))
        return n_ctx, n_ctx_train

    def _post_optional(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON object posted for at ``url``, or {} if the server has no such thing."""
        try:
            response = self._client.post(
                url, json=body, headers=self._headers(), timeout=self._meta_timeout()
            )
            data = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            timeout = self._meta_timeout()
            response = self._client.get(url, headers=self._headers(), timeout=timeout)
        except httpx.HTTPError as exc:
            raise RemoteError(self._transport_message(exc, what, waited=timeout.read)) from None
        if response.status_code != 200:
            raise RemoteError(self._status_message(response.status_code, response.text, what))
        try:
            data = response.json()
        except ValueError:
            raise RemoteError(
                f"{url} did not answer with JSON: is {self.endpoint.base_url} an "
                "OpenAI-compatible API (the address usually ends in /v1)?"
            ) from None
        if not isinstance(data, dict):
            raise RemoteError(f"{url} answered with something other than a model list.")
        return data

    def _get_optional(self, url: str) -> dict[str, Any]:
        """A JSON object from ``url``, or {} if the server has no such thing."""
        try:
            response = self._client.get(url, headers=self._headers(), timeout=self._meta_timeout())
            data = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _meta_timeout(self) -> httpx.Timeout:
        read = min(self.endpoint.timeout, METADATA_TIMEOUT)
        return httpx.Timeout(read, connect=self.endpoint.connect_timeout)

    # --- counting tokens ----------------------------------------------------------------

    def _probe_counter(self) -> str:
        """The server's own tokenizer if it has one we know, else the estimate."""
        if self.kind in ("llama.cpp", "llama-cpp-python", "vllm"):
            with contextlib.suppress(RemoteError):
                self._server_tokens("Hello", self.kind)
                return self.kind
        return "estimate"

    def _server_tokens(self, text: str, counter: str) -> list[int]:
        root, model = self.endpoint.root_url, self.model
        if counter == "llama.cpp":
            url, body = f"{root}/tokenize", {"content": text, "add_special": True}
        elif counter == "llama-cpp-python":
            url, body = f"{root}/extras/tokenize", {"input": text, "model": model}
        else:
            url, body = f"{root}/tokenize", {"model": model, "prompt": text}
        try:
            response = self._client.post(
                url, json=body, headers=self._headers(), timeout=self._meta_timeout()
            )
            tokens = response.json().get("tokens") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            tokens = None
        if not isinstance(tokens, list):
            raise RemoteError(f"{url} could not count tokens")
        return tokens

    def _counter_for_job(self) -> Callable[[str], list[int]]:
        """A tokenize function for PromptBuilder; falls back to the estimate for good."""
        failed = False

        def tokenize(text: str) -> list[int]:
            nonlocal failed
            if self.counter != "estimate" and not failed:
                cached = self._counts.get(text)
                if cached is not None:
                    return cached
                try:
                    tokens = self._server_tokens(text, self.counter)
                except RemoteError:
                    failed = True  # a failing server is reported by the real request
                else:
                    if len(self._counts) > 256:
                        self._counts.clear()
                    self._counts[text] = tokens
                    return tokens
            return [0] * estimate_tokens(text)

        return tokenize

    # --- generating ---------------------------------------------------------------------

    def _generate(self, job: Generate) -> None:
        """Run one job to the end; reports events, never raises."""
        active = _Active(job.job_id)
        with self._lock:
            self._active = active
        if self._is_cancelled(job.job_id):
            active.abort()
        progress = _Progress()
        try:
            self._generate_job(job, active, progress)
        except RemoteError as exc:
            self._fail(job, active, progress, str(exc))
        except Exception as exc:  # the engine must survive whatever one job does
            self._fail(job, active, progress, f"Generation failed: {exc!r}")
        finally:
            with self._lock:
                self._active = None

    def _fail(self, job: Generate, active: _Active, progress: _Progress, why: str) -> None:
        if active.aborted:  # the failure is the cut we made ourselves
            self._send(GenerationFinished(job.job_id, progress.text, "cancelled", progress.pieces))
        else:
            self._send(GenerationFailed(job.job_id, why, progress.text))

    def _generate_job(self, job: Generate, active: _Active, progress: _Progress) -> None:
        """Answer ``job``; a prompt the server finds too long is trimmed and sent once more.

        The server's window can change under us (llama.cpp's server restarted
        with a smaller ``-c``) or never have been reported (llama-cpp-python):
        on a context error the window is learnt again (from the error, else
        from the server) and the history fitted into it, once.
        """
        if self.info is None and not self._load(LoadModel(self.endpoint.label)):
            raise RemoteError(self._load_error)
        if active.aborted:
            raise RemoteError("cancelled")
        sampling = Sampling.from_dict(job.sampling)
        shrink = 0
        for attempt in (1, 2):
            try:
                self._attempt(job, active, progress, sampling, shrink)
                return
            except _TooLong as exc:
                if attempt == 2 or progress.pieces or active.aborted:
                    raise RemoteError(self._too_long_message(exc, attempt == 2)) from None
                relearnt = self._relearn_window(exc, sampling)
                if relearnt is None:
                    raise RemoteError(self._too_long_message(exc, False)) from None
                shrink = relearnt

    def _window_for(self, sampling: Sampling) -> int:
        return min(self.n_ctx, sampling.n_ctx) if self.n_ctx else sampling.n_ctx

    def _attempt(
        self, job: Generate, active: _Active, progress: _Progress, sampling: Sampling, shrink: int
    ) -> None:
        """Fit the history into the window, stream the answer, report it."""
        n_ctx = self._window_for(sampling)
        builder = PromptBuilder(
            PromptFormat(chat_template=COUNTING_TEMPLATE), self._counter_for_job()
        )
        # Served models are taken to have a chat template: chat mode unless forced.
        margin = CHAT_MARGIN if job.persona.mode != TRANSCRIPT else 0
        budget = prompt_budget(n_ctx, sampling.max_tokens, margin) - shrink
        try:
            built = builder.build(job.persona, job.history, budget, job.start)
        except PromptTooLong as exc:
            if n_ctx == self.n_ctx:  # a bigger n_ctx for the chat would not help
                raise RemoteError(f"{exc} The server's window is {n_ctx} tokens.") from None
            raise RemoteError(str(exc)) from None
        except TemplateError as exc:  # only our own counting template: a bug
            raise RemoteError(f"Could not count the prompt's tokens: {exc}") from None
        prompt_tokens = len(built.tokens)
        room = n_ctx - prompt_tokens - margin - shrink  # never ask for more than the window holds
        limit = min(room, sampling.max_tokens) if sampling.max_tokens > 0 else room
        progress.char_cap = min(ANSWER_CHAR_CAP, max(limit, 1) * CHARS_PER_TOKEN)
        progress.piece_cap = 2 * max(limit, 1) + 16
        progress.byte_cap = max(limit, 1) * STREAM_BYTES_PER_TOKEN + 1024 * 1024
        stops = built.stops if self.kind != "openai" else built.stops[:4]
        payload: dict[str, Any] = {
            **sampling_fields(sampling, self.kind),
            "max_tokens": limit,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.model:
            payload["model"] = self.model
        if stops:
            payload["stop"] = stops
        if built.mode == CHAT:
            url = f"{self.base}/chat/completions"
            payload["messages"] = _messages(job.persona.system, job.persona.examples, built.turns)
        else:
            url = f"{self.base}/completions"
            payload["prompt"] = built.text
        self._send(GenerationStarted(job.job_id, prompt_tokens, n_ctx, built.start, built.mode))

        started = time.monotonic()
        try:
            result = self._stream(url, payload, job, active, built.stops, built.mode, progress)
        except _Refused as exc:
            opening = built.mode == CHAT and built.turns and built.turns[0].role == "assistant"
            if isinstance(exc, _TooLong) or not opening or exc.status in (401, 403, 404, 503):
                raise
            # A template that wants the user first: the greeting goes into the system text.
            persona, turns = fold_opening(job.persona, built.turns)
            payload["messages"] = _messages(persona.system, persona.examples, turns)
            result = self._stream(url, payload, job, active, built.stops, built.mode, progress)
        except _StreamCut:
            if progress.pieces or active.aborted or self.window_reported:
                raise
            self._why_no_answer(url, payload)  # raises _TooLong when that was the reason
            raise
        ended = time.monotonic()
        first = progress.first_at or ended
        finish, usage = result
        count = int(usage.get("completion_tokens") or progress.pieces)
        used = int(usage.get("prompt_tokens") or prompt_tokens)
        # Stopped well before the max_tokens asked for: the server's window is full. Without
        # usage, streamed pieces are counted, which can be a few short of the tokens.
        if usage.get("completion_tokens"):
            short = count < limit
        else:
            short = not self.window_reported and count + max(4, limit // 16) < limit
        if active.aborted:
            reason = "cancelled"
        elif progress.capped:
            reason = CAPPED_REASON
        elif finish == "length" and (limit == room or short):
            reason = "context"
            if short and used + count < n_ctx:
                self._set_window(used + count)  # a server that never said its window
        elif finish == "length":
            reason = "length"
        else:
            reason = "stop"
        answer = (
            progress.text
            if reason == "cancelled"
            else clean_reply(progress.text, job.persona, built.mode)
        )
        self._send(
            GenerationFinished(
                job_id=job.job_id,
                text=answer,
                reason=reason,
                completion_tokens=count,
                seconds=ended - first,
                prompt_tokens=used,
                n_ctx=n_ctx,
                stats={
                    "ttft": first - started,
                    "mode": built.mode,
                    "start": built.start,
                    "endpoint": self.endpoint.name,
                    "model": self.model,
                    **({"seed": sampling.seed} if sampling.seed >= 0 else {}),
                },
            )
        )

    # --- learning the window again ------------------------------------------------------

    def _why_no_answer(self, url: str, payload: dict[str, Any]) -> None:
        """Ask again without streaming, for one token, to read why a stream ended empty.

        llama-cpp-python's server starts the stream before it checks the
        prompt, then closes it without a word; asked without streaming, it
        answers the check's error (``Requested tokens (532) exceed context
        window of 512``) with a status. Raises :class:`_TooLong` if that is it.
        """
        probe = {k: v for k, v in payload.items() if k != "stream_options"}
        probe.update(stream=False, max_tokens=1)
        try:
            response = self._stream_client.post(url, json=probe, headers=self._headers())
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            body = response.text[:65536]
            message = self._status_message(response.status_code, body, "answer")
            detail = _error_text(_json_or_none(body) or body)
            if _sounds_too_long(detail):
                raise _TooLong(message, response.status_code, body)

    def _relearn_window(self, exc: _TooLong, sampling: Sampling) -> int | None:
        """Learn the server's window after it refused a prompt; None if nothing was learnt.

        Returns how many more tokens to leave free on the retry: 0 when the
        window turned out smaller than we thought (fitting into it is enough),
        more when the window is what we thought and our count was short.
        """
        used = self._window_for(sampling)
        window, requested = _window_in_error(exc.body)
        if not window:
            window = self._reread_window()
        if not window:
            return None
        self.window_reported = True  # the server's own figure, from now on
        if window < used:
            self._set_window(window)
            return 0
        over = requested - window if requested > window else 0
        return min(max(over, used // 8) + CHAT_MARGIN, used // 2)

    def _reread_window(self) -> int:
        """The window as the server reports it now (/props, /models); 0 if it does not say."""
        props = {}
        if self.kind == "llama.cpp":
            props = self._get_optional(f"{self.endpoint.root_url}/props")
        listing = self._get_optional(f"{self.base}/models")
        entries = [m for m in listing.get("data") or [] if isinstance(m, dict)]
        window, _ = _window_from(props, entries, self.model)
        if not window and self.kind == "ollama":
            window, _ = self._ollama_window(self.model)
        return window

    def _set_window(self, window: int) -> None:
        """Use ``window`` from now on (within the endpoint's own n_ctx, if it has one)."""
        self.n_ctx = min(window, self.endpoint.n_ctx) if self.endpoint.n_ctx else window
        if self.info is not None:
            self.info.n_ctx = self.n_ctx

    def _too_long_message(self, exc: _TooLong, retried: bool) -> str:
        """The server's refusal, with advice that is valid config."""
        window, _ = _window_in_error(exc.body)
        window = window or self.n_ctx
        detail = _error_text(_json_or_none(exc.body) or exc.body)
        detail = f" The server said: {detail}" if detail else ""
        again = ", even after trimming the chat to it" if retried else ""
        return (
            f"The server says the prompt does not fit its context window ({window} "
            f"tokens){again}. Lower this chat's n_ctx, or "
            f"{config_advice(self.endpoint, 'n_ctx', window)}.{detail}"
        )

    def _stream(
        self,
        url: str,
        payload: dict[str, Any],
        job: Generate,
        active: _Active,
        stops: list[str],
        mode: str,
        progress: _Progress,
    ) -> tuple[str | None, dict[str, Any]]:
        """Post ``payload`` and stream the answer; returns (finish_reason, usage)."""
        scanner = StopScanner(stops)
        leading = mode == TRANSCRIPT  # drop the space after "Bob:"
        finish: str | None = None
        usage: dict[str, Any] = {}
        done = False

        def emit(piece: str) -> None:
            nonlocal leading
            out = scanner.feed(piece)
            if leading and out:
                out = out.lstrip(" ")
                leading = not out
            room = progress.char_cap - len(progress.text)
            if len(out) > room:
                out, progress.capped = out[: max(room, 0)], True
            if out and not active.aborted:
                progress.text += out
                self._send(TokenText(job.job_id, out))

        try:
            with self._stream_client.stream(
                "POST",
                url,
                json=payload,
                headers=self._headers(streaming=True),
                extensions={"trace": active.trace},
            ) as response:
                if response.status_code != 200:
                    body = _read_limited(response)
                    status = response.status_code
                    message = self._status_message(status, body, "answer")
                    detail = _error_text(_json_or_none(body) or body)
                    if status in (400, 413, 422, 500) and _sounds_too_long(detail):
                        raise _TooLong(message, status, body)
                    raise _Refused(message, status, body)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignored stream=true: one JSON answer.
                    data = _json_or_error(_read_limited(response, 10**7))
                    piece, finish = _choice_text(data)
                    usage = data.get("usage") or {}
                    progress.first_at = time.monotonic()
                    progress.pieces = 1 if piece else 0
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
                                "The server reported an error in the middle of the answer: "
                                + detail
                            )
                            if not progress.pieces and _sounds_too_long(detail):
                                raise _TooLong(message, 400, data)
                            raise RemoteError(message)
                        chunk = _json_or_error(data)
                        if isinstance(chunk.get("usage"), dict):
                            usage = chunk["usage"]
                        piece, chunk_finish = _choice_text(chunk)
                        finish = chunk_finish or finish
                        if piece:
                            progress.first_at = progress.first_at or time.monotonic()
                            progress.pieces += 1
                            emit(piece)
                            progress.capped |= progress.pieces > progress.piece_cap
                        if scanner.stopped or progress.capped:
                            break  # leaving the block closes the stream
        except httpx.HTTPError as exc:
            if active.aborted:
                return None, usage
            mid_answer = progress.pieces > 0
            raise RemoteError(self._transport_message(exc, "answer", mid_answer)) from None
        if active.aborted:
            return None, usage
        if progress.capped:
            return CAPPED_REASON, usage
        if not (done or finish or scanner.stopped):
            raise _StreamCut(
                f"The connection to {self.endpoint.base_url} ended in the middle of the "
                "answer; the text so far is kept."
                if progress.pieces
                else f"The server at {self.endpoint.base_url} closed the stream without "
                "answering; it may have rejected the prompt (see the server's log)."
            )
        tail = scanner.finish()
        if tail:
            emit(tail)
        return ("stop" if scanner.stopped else finish), usage

    # --- messages for people --------------------------------------------------------------

    def _transport_message(
        self,
        exc: httpx.HTTPError,
        what: str,
        mid_answer: bool = False,
        waited: float | None = None,
    ) -> str:
        """``waited``: the read timeout the request really had (metadata: 15 s at most)."""
        endpoint = self.endpoint
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

    def _status_message(self, status: int, body: str, what: str) -> str:
        endpoint = self.endpoint
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
            model = f" or does not know the model '{self.model}'" if self.model else ""
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
            return (
                f"The server at {endpoint.base_url} rejected the request (HTTP {status}).{detail}"
            )
        if status == 503:
            return (
                f"The server at {endpoint.base_url} is busy or still loading its model "
                f"(HTTP 503); try again in a moment.{detail}"
            )
        if status >= 500:
            return f"The server at {endpoint.base_url} failed (HTTP {status}).{detail}"
        return f"The server at {endpoint.base_url} answered HTTP {status} for the {what}.{detail}"


# --- helpers -------------------------------------------------------------------------


def _messages(system: str, examples: list[Turn], history: list[Turn]) -> list[dict[str, str]]:
    """The chat messages: persona system text, examples, then the history."""
    head = [Turn("system", system)] if system else []
    return [{"role": t.role, "content": t.content} for t in [*head, *examples, *history]]


def _kind_from_models(entries: list[dict[str, Any]]) -> str:
    """Guess the server from its /models answer (each fills in different fields)."""
    owners = {str(m.get("owned_by", "")).lower() for m in entries}
    if "llamacpp" in owners or any(
        "meta" in m and "n_ctx_train" in str(m["meta"]) for m in entries
    ):
        return "llama.cpp"
    if "vllm" in owners or any("max_model_len" in m for m in entries):
        return "vllm"
    if owners & {"library", "ollama"}:
        return "ollama"
    if "me" in owners and any(m.get("permissions") == [] for m in entries):
        return "llama-cpp-python"
    return "openai"


def _window_from(
    props: dict[str, Any], entries: list[dict[str, Any]], model: str
) -> tuple[int, int]:
    """(context window, training context) as the server reports them; 0 = unknown."""
    n_ctx = 0
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict):
        n_ctx = _positive_int(settings.get("n_ctx"))
    n_ctx = n_ctx or _positive_int(props.get("n_ctx"))
    n_ctx_train = 0
    for entry in entries:
        if model and entry.get("id") != model and len(entries) > 1:
            continue
        meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
        n_ctx_train = n_ctx_train or _positive_int(meta.get("n_ctx_train"))
        n_ctx = n_ctx or _positive_int(entry.get("max_model_len"))
        n_ctx = n_ctx or _positive_int(meta.get("n_ctx"))  # llama-server's slot, lately
    return n_ctx, n_ctx_train


def _positive_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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


def _choice_text(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """The new text and finish reason in a completion or chat chunk."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", None
    choice = choices[0]
    text = choice.get("text")
    for holder in ("delta", "message"):
        part = choice.get(holder)
        if isinstance(part, dict) and isinstance(part.get("content"), str):
            text = part["content"]
    return (text if isinstance(text, str) else ""), choice.get("finish_reason")


def _read_limited(response: httpx.Response, limit: int = 65536) -> str:
    """At most ``limit`` bytes of a body, as text: error bodies can be huge pages."""
    data = b""
    with contextlib.suppress(httpx.HTTPError):
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    return data[:limit].decode("utf-8", "replace")


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
