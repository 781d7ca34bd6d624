"""Learning what a server is: its API base, kind, model, window and token counter.

From ``/v1/models`` and ``/models``, llama.cpp's ``/props``, Ollama's
``/api/show`` and ``/api/ps``, and the tokenize endpoints of the servers
that have one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import httpx

from tui.core.endpoints import Endpoint, config_advice
from tui.core.engine_protocol import ModelInfo
from tui.core.models import display_name
from tui.core.sampling import Sampling
from tui.engine.remote.messages import (
    RemoteError,
    _positive_int,
    _TooLong,
    _window_in_error,
    status_message,
    transport_message,
)
from tui.engine.remote.settings import CHAT_MARGIN, estimate_tokens

DEFAULT_N_CTX = 4096  # when neither the server nor the endpoint config says
# Ollama's window when neither the model (num_ctx) nor the running server says: its
# long-standing default; a larger OLLAMA_CONTEXT_LENGTH is invisible to clients.
OLLAMA_DEFAULT_N_CTX = 2048
# Servers that answer with their one model whatever name a request gives.
_ONE_MODEL_KINDS = ("llama.cpp", "llama-cpp-python")
METADATA_TIMEOUT = 15.0  # seconds, for /models, /props and /tokenize


class ServerDiscovery:
    """The part of :class:`~tui.engine.remote.engine.RemoteEngine` that asks the server.

    Fills in ``base``, ``kind``, ``model``, ``n_ctx``, ``window_reported``
    and ``counter`` on the engine, whose client and headers it uses.
    """

    endpoint: Endpoint
    base: str
    kind: str
    model: str
    n_ctx: int
    window_reported: bool
    counter: str
    _client: httpx.Client
    _counts: dict[str, list[int]]
    props: dict[str, Any] = {}  # llama.cpp's /props, as last read
    info: ModelInfo | None

    # Provided by RemoteEngine: the window a chat's prompt may fill.
    def _window_for(self, sampling: Sampling) -> int: ...  # pragma: no cover

    def _headers(self, streaming: bool = False) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if streaming else "application/json"}
        key = self.endpoint.api_key()  # read now: never kept on this object
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _check_server(self) -> ModelInfo:
        endpoint = self.endpoint
        self.base, listing = self._api_base()
        entries = [m for m in listing.get("data") or [] if isinstance(m, dict)]
        ids = [str(m.get("id")) for m in entries if m.get("id")]
        kind = endpoint.kind
        props: dict[str, Any] = {}
        if kind in ("auto", "llama.cpp"):
            props = self._get_optional(f"{endpoint.root_url}/props")
            self.props = props  # the model file and build, for the slot files' names
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
            raise RemoteError(
                transport_message(self.endpoint, exc, what, waited=timeout.read)
            ) from None
        if response.status_code != 200:
            raise RemoteError(
                status_message(self.endpoint, self.model, response.status_code, response.text, what)
            )
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

    def _set_window(self, window: int) -> None:
        """Use ``window`` from now on (within the endpoint's own n_ctx, if it has one)."""
        self.n_ctx = min(window, self.endpoint.n_ctx) if self.endpoint.n_ctx else window
        if self.info is not None:
            self.info.n_ctx = self.n_ctx


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
