"""Saved KV states on disk that outlive the engine (see :class:`.kv_states.StateCache`).

One file per saved chat state in one directory (0700, files 0600)::

    MAGIC | header length (u32 LE) | header (JSON) | tokens (int32 LE) | state bytes

The header says which model file and load parameters the state belongs to,
how many tokens and bytes follow and a CRC-32 of both. A state is used only
for the same model file (size, mtime and hashes of its head and tail, not its
name), the same window, GPU layers and llama.cpp build, and only after its
length and checksum were verified: a truncated, corrupt or foreign file is
removed, never loaded. Files are written under a temporary name and renamed,
so another process (a second app, a crash half-way) never sees half a file;
no fsync: a file that a power cut leaves with holes fails its checksum.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import stat
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tui.core import paths
from tui.core.processes import pid_exists

MAGIC = b"LTKVS01\n"
SUFFIX = ".kvs"
PART = ".part"
FORMAT = 1
_HEADER_MAX = 64 * 1024
_SAMPLE = 1 << 20  # bytes of the model file's head and tail that go into its identity
_STALE_PART_SECONDS = 3600.0  # a temp file this old is a crashed writer's, whatever its pid


class StateFileError(OSError):
    """A state file that must not be used (and is removed)."""


@dataclass(frozen=True)
class ModelKey:
    """What a saved state must have been made with to be loaded again."""

    model: str  # hash of the model file's identity
    path: str  # the file's path, to drop states of a file that has been replaced
    n_ctx: int  # the window the state was made in (its cells must fit it)
    n_gpu_layers: int  # offloading can change the cache's layout (flash attention)
    build: str  # llama-cpp-python's version: the state layout is llama.cpp's

    def matches(self, header: dict[str, Any]) -> bool:
        return (
            header.get("model") == self.model
            and header.get("n_ctx") == self.n_ctx
            and header.get("n_gpu_layers") == self.n_gpu_layers
            and header.get("build") == self.build
        )


def model_key(path: Path, n_ctx: int, n_gpu_layers: int, build: str) -> ModelKey:
    """The identity of the model file at ``path``: size, mtime, its first and last MiB.

    Not its name: a different file under the same name (a re-download, another
    quantisation) must never get this file's states.
    """
    info = path.stat()
    digest = hashlib.sha256(f"{FORMAT}|{info.st_size}|{info.st_mtime_ns}|".encode())
    with path.open("rb") as file:
        digest.update(file.read(_SAMPLE))
        if info.st_size > _SAMPLE:
            file.seek(max(info.st_size - _SAMPLE, _SAMPLE))
            digest.update(file.read(_SAMPLE))
    return ModelKey(digest.hexdigest()[:32], str(path.resolve()), n_ctx, n_gpu_layers, build)


@dataclass
class StateFile:
    """A state file's header, read and checked, and its tokens."""

    path: Path
    tokens: np.ndarray
    size: int  # bytes of llama.cpp state
    n_keep: int
    crc: int
    mtime: float
    prompt_len: int = 0  # see SavedState.prompt_len: kept so branches survive a restart


def prepare_dir(root: Path) -> Path:
    """Create ``root`` (0700) and check it is ours and private; raises OSError if not."""
    paths.ensure_private_dir(root)
    info = root.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{root} belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        root.chmod(0o700)  # ours: states hold chat text, keep them to ourselves
    return root


def checksum(tokens: np.ndarray, data: Any, size: int) -> int:
    crc = zlib.crc32(np.ascontiguousarray(tokens, dtype="<i4").tobytes())
    return zlib.crc32(memoryview(data).cast("B")[:size], crc)


def write_state(
    directory: Path,
    key: ModelKey,
    tokens: np.ndarray,
    data: Any,
    size: int,
    n_keep: int,
    prompt_len: int = 0,
) -> tuple[Path, int]:
    """Write one state atomically (temp file, then rename); returns its path and checksum."""
    crc = checksum(tokens, data, size)
    header = {
        "format": FORMAT,
        "model": key.model,
        "path": key.path,
        "n_ctx": key.n_ctx,
        "n_gpu_layers": key.n_gpu_layers,
        "build": key.build,
        "n_tokens": len(tokens),
        "size": size,
        "n_keep": n_keep,
        "prompt_len": prompt_len,
        "crc": crc,
    }
    blob = json.dumps(header).encode()
    name = f"{key.model[:12]}-{os.getpid()}-{time.time_ns():x}"
    part = directory / f"{name}{PART}"
    final = directory / f"{name}{SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(part, flags, 0o600), "wb") as file:
            file.write(MAGIC + struct.pack("<I", len(blob)) + blob)
            file.write(np.ascontiguousarray(tokens, dtype="<i4").tobytes())
            file.write(memoryview(data).cast("B")[:size])
        os.replace(part, final)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        raise
    return final, crc


def read_header(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """A state file's header and tokens; raises StateFileError if it is not whole and ours."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise StateFileError(f"{path}: {exc}") from exc
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise StateFileError(f"{path}: not a file of ours")
        head = file.read(len(MAGIC) + 4)
        if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
            raise StateFileError(f"{path}: not a saved state")
        (length,) = struct.unpack("<I", head[len(MAGIC) :])
        if length > _HEADER_MAX:
            raise StateFileError(f"{path}: header too long")
        try:
            header = json.loads(file.read(length))
            n_tokens, size = int(header["n_tokens"]), int(header["size"])
            int(header["crc"]), int(header["n_keep"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StateFileError(f"{path}: bad header ({exc})") from exc
        if not isinstance(header, dict) or n_tokens <= 0 or size <= 0:
            raise StateFileError(f"{path}: bad header")
        expected = len(MAGIC) + 4 + length + 4 * n_tokens + size
        if info.st_size != expected:
            raise StateFileError(f"{path}: {info.st_size} bytes, {expected} expected (truncated?)")
        raw = file.read(4 * n_tokens)
    tokens = np.frombuffer(raw, dtype="<i4").astype(np.intc)
    return header, tokens


def read_state(entry_path: Path, tokens: np.ndarray, size: int, crc: int) -> Any:
    """The state's bytes as a ctypes array, after checking length, tokens and checksum."""
    header, on_disk = read_header(entry_path)
    if int(header["size"]) != size or int(header["crc"]) != crc:
        raise StateFileError(f"{entry_path}: replaced since it was listed")
    if len(on_disk) != len(tokens) or not np.array_equal(on_disk, tokens):
        raise StateFileError(f"{entry_path}: its tokens changed")
    data = (ctypes.c_uint8 * size)()
    offset = entry_path.stat().st_size - size
    with open(entry_path, "rb") as file:
        file.seek(offset)
        if file.readinto(data) != size:  # type: ignore[arg-type]
            raise StateFileError(f"{entry_path}: shorter than its header says")
    if checksum(tokens, data, size) != crc:
        raise StateFileError(f"{entry_path}: checksum mismatch (corrupt)")
    with contextlib.suppress(OSError):
        os.utime(entry_path)  # most recently used, for every process's eviction
    return data


def prefetch(path: Path) -> None:
    """Ask the kernel to start reading ``path`` now (after a reboot it is not cached)."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no fadvise here
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def scan(directory: Path, key: ModelKey) -> list[StateFile]:
    """The states in ``directory`` usable with ``key``, oldest first.

    Files that are not whole saved states of ours are removed, as are those of
    an earlier model file at the same path (they can never match again);
    states of other models are left for when that model is loaded.
    """
    found: list[StateFile] = []
    for path in _listing(directory):
        try:
            header, tokens = read_header(path)
            mtime = path.stat().st_mtime
        except StateFileError:
            remove(path)
            continue
        except OSError:
            continue  # removed meanwhile by another process
        if key.matches(header):
            size, n_keep, crc = int(header["size"]), int(header["n_keep"]), int(header["crc"])
            prompt_len = header.get("prompt_len", 0)
            prompt_len = prompt_len if type(prompt_len) is int and prompt_len >= 0 else 0
            found.append(StateFile(path, tokens, size, n_keep, crc, mtime, prompt_len))
        elif header.get("path") == key.path and header.get("model") != key.model:
            remove(path)  # the model file at this path was replaced
    found.sort(key=lambda f: f.mtime)
    return found


def _listing(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if p.name.endswith(SUFFIX)]
    except OSError:
        return []


def enforce_budget(directory: Path, max_bytes: int, max_files: int) -> list[Path]:
    """Remove the least recently used states (of any model) beyond the budget."""
    files: list[tuple[float, int, Path]] = []
    for path in _listing(directory):
        try:
            info = path.lstat()
        except OSError:
            continue
        files.append((info.st_mtime, info.st_size, path))
    files.sort()
    total = sum(size for _, size, _ in files)
    removed = []
    while files and (total > max_bytes or len(files) > max_files):
        _, size, path = files.pop(0)
        remove(path)
        total -= size
        removed.append(path)
    return removed


def clean_stale(directory: Path) -> None:
    """Remove what dead processes left: temp files, and session directories (``<pid>/``)."""
    import shutil

    try:
        listing = list(directory.iterdir())
    except OSError:
        return
    now = time.time()
    for old in listing:
        name = old.name
        if name.isascii() and name.isdigit():
            if not pid_exists(int(name)):
                shutil.rmtree(old, ignore_errors=True)
        elif name.endswith(PART):
            parts = name.split("-")
            pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0
            with contextlib.suppress(OSError):
                if not pid_exists(pid) or now - old.lstat().st_mtime > _STALE_PART_SECONDS:
                    old.unlink()
