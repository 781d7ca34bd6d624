"""The user's settings file: ``<config dir>/config.toml``.

Every key is optional. Example::

    model = "~/models/mistral-7b-instruct.Q4_K_M.gguf"
    persona = "assistant"
    n_threads = 4
    n_gpu_layers = 0
    model_dirs = ["~/models"]
    theme = "textual-dark"
    thinking = "collapsed"        # a reasoning model's thinking: collapsed, expanded, hidden
    endpoint = "gpu-box"          # talk to a server instead of loading a local model
    kv_cache_mb = 2048            # disk for chat states kept across restarts (0: none)

    [endpoints.gpu-box]           # see tui/endpoints.py
    base_url = "http://gpu-box:8080/v1"
    api_key_env = "GPU_BOX_KEY"
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core import paths
from tui.core.endpoints import Endpoint, parse_endpoints

DEFAULT_KV_CACHE_MB = 2048  # a few long chats of a 7B model (~0.5 GB each at 4k tokens)

THINKING_MODES = ("collapsed", "expanded", "hidden")
"""How the TUI shows a reasoning model's thinking: folded to one line, open, or not at all."""


@dataclass
class Config:
    model: str = ""
    persona: str = "assistant"
    n_threads: int | None = None
    n_gpu_layers: int = 0
    model_dirs: list[str] = field(default_factory=list)
    theme: str = ""
    thinking: str = "collapsed"  # one of THINKING_MODES
    endpoint: str = ""  # an endpoint name or URL to use instead of a local model
    kv_cache_mb: int = DEFAULT_KV_CACHE_MB  # chat KV states kept on disk across restarts; 0: off
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    path: Path | None = None
    problems: list[str] = field(default_factory=list)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_count(low: int) -> Callable[[Any], bool]:
    """A whole number (not a bool, which TOML keeps apart but Python does not) >= ``low``."""
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_list_of_text(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# key: (check, what it must be, for the message). ``theme`` is checked by the app too:
# only Textual knows its themes, and the core does not import Textual.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (_is_text, "a file path in quotes"),
    "persona": (_is_text, "a persona id in quotes"),
    "n_threads": (_is_count(1), "a whole number of at least 1 (e.g. n_threads = 8)"),
    "n_gpu_layers": (_is_count(-1), "a whole number (-1 for all layers, 0 for none)"),
    "model_dirs": (_is_list_of_text, 'a list of folders (e.g. model_dirs = ["~/models"])'),
    "theme": (_is_text, "a theme name in quotes"),
    "thinking": (
        lambda value: value in THINKING_MODES,
        'one of "collapsed", "expanded" or "hidden" (how thinking is shown)',
    ),
    "endpoint": (_is_text, "an endpoint name or URL in quotes"),
    "kv_cache_mb": (_is_count(0), "a whole number of MiB (0 keeps no chat states on disk)"),
}


def _shown(value: Any) -> str:
    """A value as it would look in the file, cut short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:  # JSON quotes strings as TOML does and escapes control characters
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def config_path() -> Path:
    return paths.config_dir() / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """Read the config file; a missing file is fine, a broken one is reported."""
    path = path or config_path()
    config = Config(path=path)
    if not path.is_file():
        return config
    unsafe = paths.others_can_write(path.parent) or paths.others_can_write(path)
    if unsafe:
        config.problems.append(
            f"{path}: not read, because {unsafe}: another user could have written it. "
            f"Check the file, then run: chmod 700 {path.parent}; chmod 600 {path}"
        )
        return config
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        config.problems.append(f"{path}: {exc} (using the defaults)")
        return config
    for key, (check, wanted) in _CHECKS.items():
        if key not in data:
            continue
        value = data[key]
        if check(value):
            setattr(config, key, value)
        else:
            config.problems.append(
                f"{path}: {key} = {_shown(value)} is not {wanted}; ignored (using the default)"
            )
    if "endpoints" in data:
        config.endpoints, problems = parse_endpoints(data["endpoints"], str(path))
        config.problems.extend(problems)
    for key in data:
        if key not in Config.__dataclass_fields__ or key in ("path", "problems"):
            config.problems.append(f"{path}: unknown key '{key}'; ignored")
    return config
