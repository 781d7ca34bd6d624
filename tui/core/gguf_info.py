"""Facts about a GGUF file read from its header, without loading the weights.

Only the key/value header is read; big arrays (the tokenizer's vocabulary)
are skipped over, so this takes milliseconds even for a 70B model. The
format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tui.core.sanitize import clean_line

# GGUF value types -> struct format (None: variable length)
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9

# general.file_type -> the quantisation name users know (llama.cpp's llama_ftype)
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip


class GGUFError(Exception):
    """Not a GGUF file, or a damaged one."""


@dataclass
class GGUFInfo:
    path: Path
    size_bytes: int
    name: str
    architecture: str
    quantization: str
    context_length: int
    has_chat_template: bool
    metadata: dict[str, Any]

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token of context costs (f16 K and V), 0 if unknown.

        Lets the engine cap a window at what memory allows before it loads.
        """
        arch, meta = self.architecture, self.metadata
        try:
            layers = int(meta[f"{arch}.block_count"])
            embd = int(meta[f"{arch}.embedding_length"])
            heads = int(meta[f"{arch}.attention.head_count"])
            kv_heads = int(meta.get(f"{arch}.attention.head_count_kv") or heads)
        except (KeyError, TypeError, ValueError):
            return 0
        if heads <= 0:
            return 0
        return 2 * 2 * layers * (embd // heads) * kv_heads

    @property
    def size_label(self) -> str:
        size = float(self.size_bytes)
        for unit in ("B", "KB", "MB", "GB", "TB"):
            if size < 1024 or unit == "TB":
                return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
            size /= 1024
        return ""


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read the header of ``path``; raises :class:`GGUFError` for bad files."""
    try:
        with path.open("rb") as handle:
            metadata = _read_header(handle)
        size = path.stat().st_size
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror}") from exc
    except (struct.error, UnicodeDecodeError, MemoryError) as exc:
        raise GGUFError(f"{path} is damaged (header unreadable: {exc})") from exc
    arch = str(metadata.get("general.architecture", ""))
    file_type = metadata.get("general.file_type")
    return GGUFInfo(
        path=path,
        size_bytes=size,
        name=clean_line(str(metadata.get("general.name") or path.stem)),  # shown in lists
        architecture=arch,
        quantization=FILE_TYPES.get(file_type, str(file_type or "?")),
        context_length=int(metadata.get(f"{arch}.context_length", 0) or 0),
        has_chat_template=bool(metadata.get("tokenizer.chat_template")),
        metadata=metadata,
    )


def _read_header(handle: BinaryIO) -> dict[str, Any]:
    if handle.read(4) != b"GGUF":
        raise GGUFError("not a GGUF file")
    (version,) = struct.unpack("<I", handle.read(4))
    if version < 2:
        raise GGUFError(f"GGUF version {version} is too old")
    _tensor_count, kv_count = struct.unpack("<QQ", handle.read(16))
    if kv_count > 100_000:
        raise GGUFError("implausible header (damaged file?)")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _read_string(handle)
        (value_type,) = struct.unpack("<I", handle.read(4))
        metadata[key] = _read_value(handle, value_type, key)
    return metadata


def _read_string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", handle.read(8))
    if length > 64 * 1024 * 1024:
        raise GGUFError("implausible string length (damaged file?)")
    data = handle.read(length)
    if len(data) != length:
        raise GGUFError("file ends inside the header (truncated?)")
    return data.decode("utf-8")


def _read_value(handle: BinaryIO, value_type: int, key: str) -> Any:
    if value_type in _SCALARS:
        fmt = "<" + _SCALARS[value_type]
        return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]
    if value_type == _STRING:
        return _read_string(handle)
    if value_type == _ARRAY:
        item_type, count = struct.unpack("<IQ", handle.read(12))
        if item_type in _SCALARS:
            handle.seek(count * struct.calcsize("<" + _SCALARS[item_type]), 1)
        elif item_type == _STRING:
            for _ in range(count):
                (length,) = struct.unpack("<Q", handle.read(8))
                handle.seek(length, 1)
        else:
            for _ in range(count):
                _read_value(handle, item_type, key)
        return None  # arrays are skipped: never needed for the picker
    raise GGUFError(f"unknown value type {value_type} for {key}")
