"""The user's settings file: ``<config dir>/config.toml``.

Every key is optional. Example::

    model = "~/models/mistral-7b-instruct.Q4_K_M.gguf"
    persona = "assistant"
    n_threads = 4
    n_gpu_layers = 0
    model_dirs = ["~/models"]
    theme = "textual-dark"
    endpoint = "gpu-box"          # talk to a server instead of loading a local model

    [endpoints.gpu-box]           # see tui/endpoints.py
    base_url = "http://gpu-box:8080/v1"
    api_key_env = "GPU_BOX_KEY"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tui import paths
from tui.endpoints import Endpoint, parse_endpoints


@dataclass
class Config:
    model: str = ""
    persona: str = "assistant"
    n_threads: int | None = None
    n_gpu_layers: int = 0
    model_dirs: list[str] = field(default_factory=list)
    theme: str = ""
    endpoint: str = ""  # an endpoint name or URL to use instead of a local model
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    path: Path | None = None
    problems: list[str] = field(default_factory=list)


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
    for key, kind in (
        ("model", str),
        ("persona", str),
        ("n_threads", int),
        ("n_gpu_layers", int),
        ("model_dirs", list),
        ("theme", str),
        ("endpoint", str),
    ):
        if key in data:
            if isinstance(data[key], kind) and not isinstance(data[key], bool):
                setattr(config, key, data[key])
            else:
                config.problems.append(f"{path}: '{key}' must be {kind.__name__}; ignored")
    if "endpoints" in data:
        config.endpoints, problems = parse_endpoints(data["endpoints"], str(path))
        config.problems.extend(problems)
    for key in data:
        if key not in Config.__dataclass_fields__ or key in ("path", "problems"):
            config.problems.append(f"{path}: unknown key '{key}' (ignored)")
    return config
