"""Named remote endpoints: OpenAI-compatible servers (llama.cpp, vLLM, Ollama…).

They live in the config file as tables::

    [endpoints.gpu-box]
    base_url = "http://gpu-box:8080/v1"
    model = "llama-3-8b"          # optional: the server's first model otherwise
    api_key_env = "GPU_BOX_KEY"   # optional: the key is read from this variable
    n_ctx = 8192                  # optional: the window, when the server does not say
    kind = "auto"                 # optional: llama.cpp, llama-cpp-python, vllm, ollama, openai
    timeout = 120                 # optional: seconds to wait for the server's next byte

An array of tables with a ``name`` key (``[[endpoints]]``) works too.

The API key itself is never in the config, in an :class:`Endpoint`, in a log
or in a message: only the *name* of the environment variable is kept, and
:meth:`Endpoint.api_key` reads it when a request is made. That way a key
rotated in the environment takes effect without a restart, and the config
file can be shared or committed without leaking it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KINDS = ("auto", "llama.cpp", "llama-cpp-python", "vllm", "ollama", "openai")
DEFAULT_TIMEOUT = 120.0  # prompt processing of a long chat on a slow box can take a while
DEFAULT_CONNECT_TIMEOUT = 5.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server and the model to use on it."""

    name: str
    base_url: str  # up to and including /v1, no trailing slash
    model: str = ""  # "" = the first model the server lists
    api_key_env: str = ""  # name of the environment variable holding the key
    kind: str = "auto"
    n_ctx: int = 0  # 0 = ask the server, else tui.engine.remote.DEFAULT_N_CTX
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @property
    def root_url(self) -> str:
        """The server root, where llama.cpp keeps /props and /tokenize."""
        return self.base_url.removesuffix("/v1")

    @property
    def label(self) -> str:
        """How the UI names this model: ``endpoint:model``."""
        return f"{self.name}:{self.model}" if self.model else self.name

    def api_key(self) -> str | None:
        """The key, read from the environment now (never stored)."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


class EndpointError(ValueError):
    """An endpoint definition or name that cannot be used; the message says why."""


def normalize_base_url(url: str) -> str:
    """Check an http(s) URL and drop the trailing slash; raises EndpointError."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointError(
            f"base_url must be an http:// or https:// address such as "
            f"http://localhost:8080/v1, not {url!r}"
        )
    if parts.query or parts.fragment:
        raise EndpointError(f"base_url must not have a query or fragment: {url!r}")
    return url.rstrip("/")


def endpoint_from_table(name: str, table: dict[str, Any]) -> Endpoint:
    """Build one endpoint from its config table; raises EndpointError."""
    if not _ENDPOINT_NAME.match(name):
        raise EndpointError(f"endpoint name {name!r} may only use letters, digits, '-', '_', '.'")
    if "api_key" in table:
        # Do not echo the value: it is probably a real key.
        raise EndpointError(
            f"endpoint {name!r}: api_key is not read from the config file; put the key "
            "in an environment variable and name that variable in api_key_env"
        )
    unknown = sorted(set(table) - set(Endpoint.__dataclass_fields__) - {"name"})
    if unknown:
        raise EndpointError(f"endpoint {name!r}: unknown key(s) {', '.join(unknown)}")
    base_url = table.get("base_url")
    if not isinstance(base_url, str):
        raise EndpointError(f'endpoint {name!r} needs base_url = "http://host:port/v1"')
    values: dict[str, Any] = {"name": name, "base_url": normalize_base_url(base_url)}
    for key in ("model", "api_key_env", "kind"):
        if key in table:
            if not isinstance(table[key], str):
                raise EndpointError(f"endpoint {name!r}: {key} must be a string")
            values[key] = table[key].strip()
    if values.get("api_key_env") and not _ENV_NAME.match(values["api_key_env"]):
        raise EndpointError(
            f"endpoint {name!r}: api_key_env must be the name of an environment variable "
            "(letters, digits and _), not the key itself"
        )
    if values.get("kind", "auto") not in KINDS:
        raise EndpointError(f"endpoint {name!r}: kind must be one of {', '.join(KINDS)}")
    if "n_ctx" in table:
        n_ctx = table["n_ctx"]
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 0:
            raise EndpointError(f"endpoint {name!r}: n_ctx must be a whole number of tokens")
        values["n_ctx"] = n_ctx
    for key in ("timeout", "connect_timeout"):
        if key in table:
            seconds = table[key]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise EndpointError(f"endpoint {name!r}: {key} must be a number of seconds > 0")
            values[key] = float(seconds)
    return Endpoint(**values)


def parse_endpoints(value: Any, source: str = "config") -> tuple[dict[str, Endpoint], list[str]]:
    """The endpoints of the config's ``endpoints`` value, and problems for people.

    A broken endpoint is reported and skipped; the others still work.
    """
    endpoints: dict[str, Endpoint] = {}
    problems: list[str] = []
    if value is None:
        return endpoints, problems
    tables: list[tuple[str, Any]]
    if isinstance(value, dict):
        tables = list(value.items())
    elif isinstance(value, list):
        tables = []
        for index, table in enumerate(value):
            name = table.get("name") if isinstance(table, dict) else None
            if not isinstance(name, str) or not name:
                problems.append(f"{source}: endpoints entry {index + 1} needs a name; ignored")
                continue
            tables.append((name, {k: v for k, v in table.items() if k != "name"}))
    else:
        problems.append(f"{source}: 'endpoints' must be tables like [endpoints.NAME]; ignored")
        return endpoints, problems
    for name, table in tables:
        if not isinstance(table, dict):
            problems.append(f"{source}: endpoints.{name} must be a table; ignored")
            continue
        if name in endpoints:
            problems.append(f"{source}: endpoint {name!r} is defined twice; the first is used")
            continue
        try:
            endpoints[name] = endpoint_from_table(name, table)
        except EndpointError as exc:
            problems.append(f"{source}: {exc}; ignored")
    return endpoints, problems


def resolve_endpoint(spec: str, endpoints: dict[str, Endpoint]) -> Endpoint:
    """``--endpoint`` value: a configured name, or a URL (``http://host:8080/v1``).

    A bare URL uses the server's first model and no API key; anything more
    needs a config table, so that keys stay in environment variables.
    """
    if spec in endpoints:
        return endpoints[spec]
    if "://" in spec:
        base_url = normalize_base_url(spec)
        host = urlsplit(base_url).netloc
        return Endpoint(name=host, base_url=base_url)
    known = ", ".join(sorted(endpoints)) or "none are configured"
    raise EndpointError(
        f"Unknown endpoint {spec!r} (configured: {known}). Add [endpoints.{spec}] with "
        "base_url to the config file, or pass a URL such as http://localhost:8080/v1."
    )


def is_configured(endpoint: Endpoint) -> bool:
    """False for an endpoint made from a bare ``--endpoint URL`` (named after its host)."""
    return endpoint.name != urlsplit(endpoint.base_url).netloc


def table_header(name: str) -> str:
    """``[endpoints.NAME]`` as TOML reads it back (a name with a dot is quoted)."""
    bare = re.fullmatch(r"[A-Za-z0-9_-]+", name)
    return f"[endpoints.{name}]" if bare else f'[endpoints."{name}"]'


def config_advice(endpoint: Endpoint, key: str, value: Any = None) -> str:
    """How to set ``key`` for this endpoint, as config the app will accept.

    An endpoint given as a URL has no table yet, and its host name (with
    ``:port``) cannot be one: the advice then names a new table with a valid
    name, its base_url, and how to use it.
    """
    setting = f"{key} = {_toml_value(value)}" if value is not None else key
    if is_configured(endpoint):
        return f"set {setting} in {table_header(endpoint.name)} of the config file"
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", endpoint.name).strip("-") or "server"
    return (
        f'add {table_header(name)} with base_url = "{endpoint.base_url}" and {setting} '
        f"to the config file, then start with --endpoint {name}"
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)
