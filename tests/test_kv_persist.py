"""KV states kept on disk across restarts: the safety rules, and the restart hit (SmolLM2)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tui.core.prompt import PersonaPrompt, Turn
from tui.engine.local import kv_files
from tui.engine.local.kv_files import ModelKey, model_key
from tui.engine.local.kv_states import SavedState, StateCache

KEY = ModelKey("a" * 32, "/models/m.gguf", 512, 0, "0.3.36")


def state(tokens: list[int], fill: int, size: int = 100, chat: Any = None) -> SavedState:
    entry = SavedState(np.asarray(tokens, dtype=np.intc), None, size, 2, chat)
    entry.data = (ctypes.c_uint8 * size)(*([fill] * size))
    return entry


def kept(directory: Path, key: ModelKey = KEY, **kwargs: Any) -> StateCache:
    """A persistent cache attached to ``key``, as the engine makes one after a load."""
    cache = StateCache(
        max_entries=kwargs.pop("max_entries", 64),
        max_bytes=kwargs.pop("max_bytes", 10_000),
        directory=directory,
        persistent=True,
    )
    cache.attach(key)
    return cache


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.kvs"))


def chat_tokens(start: int) -> list[int]:
    return [1, 2, *range(start, start + 30)]


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# --- the file cache on its own ------------------------------------------------------------


def test_states_survive_a_restart_and_read_back_whole(tmp_path: Path) -> None:
    first = kept(tmp_path)
    a = state(chat_tokens(10), 7, chat=5)
    assert first.put(a) and a.data is None and a.path is not None
    first.close()  # the engine exits: the file stays
    assert files(tmp_path) == [a.path]

    second = kept(tmp_path)  # a new engine, the same model file and window
    assert len(second) == 1
    entry = second.entries[0]
    assert np.array_equal(entry.tokens, a.tokens) and entry.n_keep == 2
    assert entry.chat is None  # ids are per database: after a restart, tokens decide
    prompt = np.asarray([*chat_tokens(10), 99, 98], dtype=np.intc)
    best, n = second.best(prompt)
    assert best is entry and n == len(a.tokens)
    assert bytes(second.read(entry)) == bytes([7] * 100)


def test_a_branch_marker_survives_a_restart(tmp_path: Path) -> None:
    """Where a state's last answer began (``prompt_len``) is kept in its file, so that
    two branches of one chat stay two states after a restart, as they were before."""
    first = kept(tmp_path)
    a = state(chat_tokens(10), 7)
    a.prompt_len = 25
    assert first.put(a)
    first.close()
    second = kept(tmp_path)
    assert [entry.prompt_len for entry in second.entries] == [25]


def test_the_size_budget_evicts_the_least_recently_used(tmp_path: Path) -> None:
    budget = 3 * 1500  # a file is the state (1000 bytes) + its header and tokens
    cache = kept(tmp_path, max_bytes=budget)
    a, b, c = (state(chat_tokens(s), s % 250, size=1000) for s in (100, 200, 300))
    for entry, when in ((a, 1000), (b, 2000), (c, 3000)):
        assert cache.put(entry)
        os.utime(entry.path, (when, when))  # distinct, ordered use times
    assert len(files(tmp_path)) == 3
    cache.close()

    again = kept(tmp_path, max_bytes=budget)  # after a restart, a is used again
    used = next(e for e in again.entries if e.tokens[2] == 100)
    assert bytes(again.read(used)) == bytes([100] * 1000)  # reading marks it as used
    d = state(chat_tokens(400), 4, size=1000)
    assert again.put(d)
    left = {int(kv_files.read_header(p)[1][2]) for p in files(tmp_path)}
    assert left == {100, 300, 400}  # b, the least recently used, went
    assert sum(p.stat().st_size for p in files(tmp_path)) <= budget
    assert all(e.path is None or e.path.exists() for e in again.entries)


def test_the_budget_covers_every_model_and_process(tmp_path: Path) -> None:
    other = ModelKey("b" * 32, "/models/other.gguf", 512, 0, "0.3.36")
    theirs = kept(tmp_path, other, max_bytes=3000)
    assert theirs.put(state(chat_tokens(10), 1, size=1000))
    mine = kept(tmp_path, max_bytes=3000)
    assert len(mine) == 0  # another model's state is never offered
    assert mine.put(
        state(
            chat_tokens(
                40,
            ),
            2,
            size=1000,
        )
    )
    assert mine.put(state(chat_tokens(80), 3, size=1000))
    assert sum(p.stat().st_size for p in files(tmp_path)) <= 3000
    assert len(files(tmp_path)) == 2


def test_a_state_larger_than_the_budget_is_not_kept(tmp_path: Path) -> None:
    cache = kept(tmp_path, max_bytes=50)
    assert not cache.put(state(chat_tokens(10), 1, size=100))
    assert not files(tmp_path)


def test_a_corrupt_state_is_refused_and_removed(tmp_path: Path) -> None:
    cache = kept(tmp_path)
    a = state(chat_tokens(10), 7)
    cache.put(a)
    cache.close()
    assert a.path is not None
    with open(a.path, "r+b") as file:  # one bit flipped in the KV data
        file.seek(-10, os.SEEK_END)
        byte = file.read(1)
        file.seek(-10, os.SEEK_END)
        file.write(bytes([byte[0] ^ 1]))
    again = kept(tmp_path)
    entry = again.entries[0]  # the header is fine: listed
    with pytest.raises(OSError, match="checksum"):
        again.read(entry)
    again.discard(entry)  # what the engine does with a state it cannot use
    assert not files(tmp_path)


def test_a_truncated_or_foreign_file_is_ignored_and_removed(tmp_path: Path) -> None:
    cache = kept(tmp_path)
    a, b = state(chat_tokens(10), 7), state(chat_tokens(50), 8)
    cache.put(a)
    cache.put(b)
    cache.close()
    assert a.path is not None and b.path is not None
    with open(a.path, "r+b") as file:
        file.truncate(a.path.stat().st_size - 1)  # a crash half-way, or a full disk
    (tmp_path / "junk.kvs").write_bytes(b"not a state at all")
    (tmp_path / "empty.kvs").write_bytes(b"")
    header = kv_files.MAGIC + (10**6).to_bytes(4, "little")
    (tmp_path / "huge-header.kvs").write_bytes(header)
    os.symlink(b.path, tmp_path / "link.kvs")  # never followed
    again = kept(tmp_path)
    assert [bytes(again.read(e)) for e in again.entries] == [bytes([8] * 100)]
    assert files(tmp_path) == [b.path]


def test_a_half_written_file_is_never_listed_and_a_dead_writers_is_removed(
    tmp_path: Path,
) -> None:
    dead = tmp_path / f"{'a' * 12}-999999999-1{kv_files.PART}"
    dead.write_bytes(b"half a state")
    live = tmp_path / f"{'a' * 12}-{os.getpid()}-2{kv_files.PART}"
    live.write_bytes(b"being written by a live process")
    cache = kept(tmp_path)
    assert len(cache) == 0
    assert not dead.exists() and live.exists()


def test_a_different_model_file_with_the_same_name_never_matches(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    gguf = models / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 100)
    first_key = model_key(gguf, 512, 0, "0.3.36")
    states = tmp_path / "kv"
    cache = kept(states, first_key)
    cache.put(state(chat_tokens(10), 7))
    cache.close()
    assert model_key(gguf, 512, 0, "0.3.36") == first_key  # same file: same key
    assert len(kept(states, first_key)) == 1

    # Another file under the same name, even the same size and the same head.
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns))
    replaced = b"GGUF" + bytes(range(256)) * 99 + bytes(255 - i for i in range(256))
    gguf.write_bytes(replaced)
    new_key = model_key(gguf, 512, 0, "0.3.36")
    assert new_key.model != first_key.model and new_key.path == first_key.path
    cache = kept(states, new_key)
    assert len(cache) == 0
    assert not files(states)  # the old file's states can never match again: removed

    # The same file in another window, or another build of llama.cpp: not offered, kept.
    cache.put(state(chat_tokens(10), 7))
    cache.close()
    for key in (
        ModelKey(new_key.model, new_key.path, 1024, 0, new_key.build),
        ModelKey(new_key.model, new_key.path, 512, 99, new_key.build),
        ModelKey(new_key.model, new_key.path, 512, 0, "9.9.9"),
    ):
        assert len(kept(states, key)) == 0
    assert len(files(states)) == 1


def test_files_are_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path) -> None:
    loose = tmp_path / "kv"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with umask(0o000):
        cache = kept(loose)
        entry = state(chat_tokens(10), 7)
        assert cache.put(entry) and entry.path is not None
        fresh = tmp_path / "a" / "b" / "kv"
        other = kept(fresh)
        assert other.put(state(chat_tokens(10), 7))
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    for level in (tmp_path / "a", tmp_path / "a" / "b", fresh):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files(fresh))


def test_two_instances_share_the_directory_without_harm(tmp_path: Path) -> None:
    one, two = kept(tmp_path), kept(tmp_path)
    a, b = state(chat_tokens(10), 1, chat=1), state(chat_tokens(50), 2, chat=2)
    assert one.put(a) and two.put(b)
    assert a.path != b.path
    # One removes a state the other had listed: the other's read fails cleanly.
    three = kept(tmp_path)
    listed = {int(e.tokens[2]): e for e in three.entries}
    one.discard(a)
    with pytest.raises(OSError):
        three.read(listed[10])
    assert bytes(three.read(listed[50])) == bytes([2] * 100)


def test_an_unusable_directory_keeps_states_in_ram(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = kept(blocker / "kv", max_bytes=10**12)
    assert cache.max_bytes <= 512 << 20  # the RAM cap, not the disk budget
    entry = state(chat_tokens(10), 3)
    assert cache.put(entry) and entry.path is None
    assert bytes(cache.read(entry)) == bytes([3] * 100)


# --- the setting --------------------------------------------------------------------------


def test_kv_cache_mb_in_config_and_environment(tmp_path: Path) -> None:
    from tui.core.config import DEFAULT_KV_CACHE_MB, load_config
    from tui.engine.local.host import kv_cache_mb, make_runner

    path = tmp_path / "config.toml"
    path.write_text("kv_cache_mb = 0\n")
    assert load_config(path).kv_cache_mb == 0
    path.write_text("kv_cache_mb = -5\n")
    config = load_config(path)
    assert config.kv_cache_mb == DEFAULT_KV_CACHE_MB and "kv_cache_mb" in config.problems[0]
    assert kv_cache_mb(None, None) == DEFAULT_KV_CACHE_MB
    assert kv_cache_mb("0", None) == 0 and kv_cache_mb("100", None) == 100
    assert kv_cache_mb("100", "7") == 7 and kv_cache_mb("100", "x") == 100

    off = make_runner(print, lambda job: False, lambda: False, 0)
    assert not off.states.persistent  # 0: states of this session only, removed at exit
    on = make_runner(print, lambda job: False, lambda: False, 100)
    assert on.states.persistent and on.states.max_bytes == 100 << 20


def test_paths_command_names_the_kv_cache(capsys: pytest.CaptureFixture[str]) -> None:
    from tui import cli
    from tui.core import paths

    assert cli.main(["paths"]) == 0
    assert f"kv cache: {paths.kv_states_dir()}" in capsys.readouterr().out


# --- the restart, with the real model -----------------------------------------------------


def persistent_harness(model_path: Path, directory: Path) -> Any:
    from tests.test_engine_model import Harness

    return Harness(
        model_path, state_dir=directory, keep_states=True,
        state_cache_entries=64, state_cache_bytes=1 << 30,
    )  # fmt: skip


OPENING = "Summarise this story in one line: " + "The cat sat on the warm mat by the door. " * 30
FOLLOW_UP = "Now give it a title."


@pytest.mark.model
def test_the_first_turn_after_a_restart_restores_the_chat(model_path: Path, tmp_path: Path) -> None:
    from tests.test_engine_model import GREEDY, Harness

    persona = PersonaPrompt(system="You are a helpful assistant.")
    sampling = {**GREEDY, "max_tokens": 8}
    directory = tmp_path / "kv-states"

    # Without the disk cache: the same engine answers both turns (the reference).
    plain = Harness(model_path)
    try:
        history = [Turn("user", OPENING)]
        first = plain.run(persona, history, sampling)
        history += [Turn("assistant", first.finished.text), Turn("user", FOLLOW_UP)]
        expected = plain.run(persona, history, sampling)
    finally:
        plain.runner.close()

    before = persistent_harness(model_path, directory)
    try:
        again = before.run(persona, [Turn("user", OPENING)], sampling)
        assert again.finished.text == first.finished.text
    finally:
        before.runner.close()  # the app quits
    assert len(files(directory)) == 1  # the chat's state outlived the engine

    after = persistent_harness(model_path, directory)  # the app starts again
    try:
        assert len(after.runner.states) == 1
        turn = after.run(persona, history, sampling)
    finally:
        after.runner.close()
    assert turn.finished.stats["restored"] is True
    assert turn.started is not None and first.started is not None
    # The whole first prompt came back from disk, not read again.
    assert turn.started.cached_tokens >= first.started.prompt_tokens
    assert turn.finished.text == expected.finished.text  # greedy: the same answer

    # A corrupt state is not used: the turn reads the chat afresh and answers the same.
    (path,) = files(directory)
    with open(path, "r+b") as file:
        file.seek(-1000, os.SEEK_END)
        file.write(b"\xff" * 16)
    damaged = persistent_harness(model_path, directory)
    try:
        turn = damaged.run(persona, history, sampling)
    finally:
        damaged.runner.close()
    assert turn.finished.stats["restored"] is False
    assert turn.started is not None and turn.started.cached_tokens == 0
    assert turn.finished.text == expected.finished.text
    assert path not in files(directory)  # removed


def test_a_full_disk_keeps_new_states_in_ram_and_the_kept_files_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = kept(tmp_path)
    a = state(chat_tokens(10), 1)
    assert cache.put(a) and a.path is not None

    def full(*args: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kv_files, "write_state", full)
    b = state(chat_tokens(50), 2)
    assert cache.put(b) and b.path is None and b.data is not None  # in RAM
    assert not list(tmp_path.glob("*.part"))
    cache.close()
    assert files(tmp_path) == [a.path]  # what was kept stays for the next start
