"""Model discovery and GGUF header facts, without loading weights."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tui.core import models
from tui.core.gguf_info import GGUFError, read_gguf_info


def fake_gguf(path: Path, template: bool = True, ctx: int = 2048) -> Path:
    """A header-only GGUF file with a few keys (and a string array to skip)."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    kvs = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("general.name") + struct.pack("<I", 8) + string("Tiny Test"),
        string("general.file_type") + struct.pack("<I", 4) + struct.pack("<I", 15),
        string("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", ctx),
        string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3)
        + string("a") + string("bb") + string("ccc"),
    ]  # fmt: skip
    if template:
        kvs.append(string("tokenizer.chat_template") + struct.pack("<I", 8) + string("{{x}}"))
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header)
    return path


def test_header_facts(tmp_path: Path) -> None:
    info = read_gguf_info(fake_gguf(tmp_path / "tiny.Q4_K_M.gguf"))
    assert (info.name, info.architecture, info.quantization) == ("Tiny Test", "llama", "Q4_K_M")
    assert info.context_length == 2048 and info.has_chat_template
    assert not read_gguf_info(fake_gguf(tmp_path / "b.gguf", template=False)).has_chat_template


@pytest.mark.model
def test_smollm2_header(model_path: Path) -> None:
    info = read_gguf_info(model_path)
    assert info.quantization == "Q4_1" and info.context_length == 8192
    assert info.has_chat_template and info.size_label.endswith("MB")


@pytest.mark.parametrize("content", [b"", b"GGML" + b"\0" * 20, b"GGUF\x03\0\0\0" + b"\xff" * 8])
def test_bad_files_raise_gguf_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError):
        read_gguf_info(path)


def test_discovery_looks_everywhere_and_lists_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    mine = fake_gguf(tmp_path / "models" / "sub" / "mine.gguf")
    fake_gguf(tmp_path / "models" / "llava-mmproj.gguf")  # a projector, not a chat model
    blob = fake_gguf(home / ".cache/huggingface/hub/models--x--y/blobs/abc123")
    snapshot = home / ".cache/huggingface/hub/models--x--y/snapshots/1/y.Q8_0.gguf"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    lm = fake_gguf(home / ".lmstudio/models/pub/repo/lm.gguf")
    found = models.discover_models([str(tmp_path / "models")], extra=[mine])
    sources = {path.name: source for path, source in found}
    assert sources["mine.gguf"] == "--model"  # listed once, from the first source
    assert sources["y.Q8_0.gguf"] == "huggingface"
    assert sources[lm.name] == "lm-studio"
    assert "llava-mmproj.gguf" not in sources
    assert list(sources).count("mine.gguf") == 1
