"""Saved KV states and the live KV cache of the local engine's model.

:class:`StateCache` keeps the KV states of recently used chats (in files
when it can, kept across restarts when asked: see :mod:`.kv_files`) and
finds the one sharing the longest prefix with a prompt;
:class:`LiveKV` is the part of :class:`tui.engine.local.model.ModelRunner`
that makes the live cache share as long a prefix with a new prompt as it
can (reuse, context shift, restore), saving a chat's state before another
chat overwrites it.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tui.core import paths
from tui.core.processes import pid_exists
from tui.engine.local import kv_files
from tui.engine.local.kv_files import ModelKey

STATE_CACHE_ENTRIES = 4  # saved chat states (the live chat's own copy included)
STATE_CACHE_BYTES = 512 << 20  # and never more than this much disk (or RAM) for them
PERSISTENT_ENTRIES = 64  # chats whose states are kept across restarts, within the byte budget
_SAME_CHAT_MARGIN = 16  # tokens past the persona block shared => the same chat
_SAVE_MIN_LOST = 32  # a live KV state is saved only if at least this much would be lost
_SHIFT_MIN_MATCH = 16  # tokens that must line up before a context shift is trusted
_RESTORE_MARGIN = 8  # a saved state must save at least this many tokens over the live one


@dataclass(eq=False)  # compared by identity: equality of token arrays is ambiguous
class SavedState:
    """One chat's KV cache, copied out of llama.cpp, and the tokens it holds."""

    tokens: np.ndarray  # np.intc, the tokens evaluated into this state
    data: Any  # ctypes uint8 array from llama_state_get_data; None once in a file
    size: int
    n_keep: int = 0  # the persona block: sharing more than this means the same chat
    chat: Any = None  # the chat id, when jobs carry one
    path: Path | None = None  # the file holding ``data``, when the cache has a directory
    # Tokens of the prompt its last answer followed (0: unknown). A newer state that
    # parts from this one before it is another branch of the chat, not its next turn.
    prompt_len: int = 0
    crc: int | None = None  # a file kept across restarts: its checksum (see kv_files)


class StateCache:
    """KV states of recently left chats, least recently used out first.

    Bounded by a number of entries and by bytes. Keyed by tokens: the entry
    sharing the longest prefix with a prompt is the one to restore, as in
    llama-cpp-python's ``LlamaRAMCache``, but without its copy of the
    ``scores`` array (n_batch x n_vocab floats, 100 MB for SmolLM2), which
    nothing here needs.

    With a ``directory`` the states live in files there (one subdirectory
    per engine process, removed by :meth:`close`; those of dead processes
    are removed when the next one first saves a state), so they cost the engine no
    resident memory: a 4,000-token SmolLM2 chat is ~90 MB, and the kernel
    can drop the files' pages under memory pressure. Reading one back takes
    tens of milliseconds where reading the chat again takes seconds. If the
    directory cannot be written, states stay in RAM.

    ``persistent``: the files are kept when the engine exits, directly in
    ``directory``, for the model given to :meth:`attach` (its file identity
    and load parameters are in each file), so that the first turn after a
    restart restores the chat instead of reading it again. ``max_bytes`` is
    then the budget of the whole directory (every model's states, every
    process's): the least recently used files go first.
    """

    def __init__(
        self,
        max_entries: int = STATE_CACHE_ENTRIES,
        max_bytes: int = STATE_CACHE_BYTES,
        directory: Path | None = None,
        persistent: bool = False,
    ):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: list[SavedState] = []  # oldest first
        self.root = directory
        self.persistent = persistent
        self.key: ModelKey | None = None  # the loaded model's, in persistent mode
        self._dir: Path | None = None  # this process's subdirectory, made on first use
        self._names = itertools.count()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def nbytes(self) -> int:
        return sum(e.size for e in self.entries)

    def clear(self) -> None:
        for entry in self.entries:
            self._forget(entry)
        self.entries.clear()

    def close(self) -> None:
        """Remove every state and this process's directory; kept files stay, forgotten here."""
        if self.persistent:  # kept files stay for the next engine: only our list goes
            self.entries = [e for e in self.entries if e.crc is None]
        self.clear()
        self.key = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def _keeps_files(self) -> bool:
        return self.persistent and self.key is not None and self.root is not None

    def attach(self, key: ModelKey | None) -> None:
        """Work for the model ``key`` names: list the states kept for it (persistent mode).

        Only headers and tokens are read (a few kB per state). Files that are
        not whole states of ours are removed on the way (see kv_files.scan).
        """
        self.close()
        if not self.persistent or key is None or self.root is None:
            return
        try:
            directory = kv_files.prepare_dir(self.root)
            kv_files.clean_stale(directory)
            found = kv_files.scan(directory, key)
        except OSError as exc:
            self._to_ram(exc)
            return
        self.key = key
        for f in found[-self.max_entries :] if self.max_entries > 0 else []:
            # No chat id: ids are per database (``--db``), so one from an earlier run could
            # name another chat, and a context shift trusts it. Tokens decide instead.
            self.entries.append(
                SavedState(
                    f.tokens,
                    None,
                    f.size,
                    f.n_keep,
                    path=f.path,
                    prompt_len=f.prompt_len,
                    crc=f.crc,
                )  # fmt: skip
            )
        if self.entries:  # the chat open when the app quit is the likeliest to come back
            kv_files.prefetch(self.entries[-1].path)  # type: ignore[arg-type]

    def _to_ram(self, exc: OSError) -> None:
        """The directory cannot be used: states stay in RAM, within the RAM cap."""
        print(f"saved KV states stay in RAM: {exc}", file=sys.stderr)
        self.root, self.key = None, None
        self.max_bytes = min(self.max_bytes, STATE_CACHE_BYTES)
        self.max_entries = min(self.max_entries, STATE_CACHE_ENTRIES)

    def read(self, entry: SavedState) -> Any:
        """The state's bytes as a ctypes array (read from its file if it has one).

        A kept file is checked whole (length, tokens, checksum) before use:
        raises OSError if it is not what was saved.
        """
        if entry.data is not None:
            return entry.data
        assert entry.path is not None
        if entry.crc is not None:
            return kv_files.read_state(entry.path, entry.tokens, entry.size, entry.crc)
        data = (ctypes.c_uint8 * entry.size)()
        with open(entry.path, "rb") as file:
            if file.readinto(data) != entry.size:  # type: ignore[arg-type]
                raise OSError(f"{entry.path}: shorter than the saved state")
        return data

    def discard(self, entry: SavedState) -> None:
        """Drop ``entry`` (e.g. a state llama.cpp refused to load)."""
        if entry in self.entries:
            self.entries.remove(entry)
        self._forget(entry)

    def _forget(self, entry: SavedState) -> None:
        if entry.path is not None:
            with contextlib.suppress(OSError):  # a cache file we cannot remove is no failure
                entry.path.unlink(missing_ok=True)
            entry.path = None

    def _spill(self, entry: SavedState) -> None:
        """Move ``entry``'s bytes from RAM to a file (left in RAM if that fails)."""
        if self.root is None or entry.data is None:
            return
        if self._keeps_files:
            assert self.key is not None
            try:
                entry.path, entry.crc = kv_files.write_state(
                    self.root,
                    self.key,
                    entry.tokens,
                    entry.data,
                    entry.size,
                    entry.n_keep,
                    entry.prompt_len,
                )
            except OSError as exc:  # e.g. a full disk
                self._to_ram(exc)
                return
            entry.data = None
            return
        path: Path | None = None
        try:
            if self._dir is None:
                self._dir = self._make_dir(self.root)
            path = self._dir / f"{next(self._names)}.state"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(path, flags, 0o600), "wb") as file:
                file.write(memoryview(entry.data)[: entry.size])
        except OSError as exc:  # e.g. a full disk: this and later states stay in RAM
            print(f"saved KV states stay in RAM: {exc}", file=sys.stderr)
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            self.root = None
            return
        entry.path, entry.data = path, None

    @staticmethod
    def _make_dir(root: Path) -> Path:
        """This process's (empty) directory under ``root``, after removing dead processes' ones."""
        paths.ensure_private_dir(root)
        if root.stat().st_uid != os.getuid():
            raise PermissionError(f"{root} belongs to another user")
        for old in root.iterdir():
            name = old.name
            if name.isascii() and name.isdigit() and not pid_exists(int(name)):
                shutil.rmtree(old, ignore_errors=True)
        mine = root / str(os.getpid())
        shutil.rmtree(mine, ignore_errors=True)  # a crashed process that had our pid
        mine.mkdir()
        mine.chmod(0o700)  # whatever the umask
        return mine

    def best(self, prompt: np.ndarray) -> tuple[SavedState | None, int]:
        """The entry sharing the longest prefix with ``prompt``, and that length."""
        found, longest = None, 0
        for entry in self.entries:
            n = prefix_len(entry.tokens, prompt)
            if n > longest:
                found, longest = entry, n
        return found, longest

    def holds(self, tokens: np.ndarray) -> bool:
        """True if an entry already holds exactly these tokens."""
        return any(same_tokens(e.tokens, tokens) for e in self.entries)

    def touch(self, entry: SavedState) -> None:
        """Mark ``entry`` as just used."""
        if entry in self.entries:
            self.entries.remove(entry)
            self.entries.append(entry)

    def put(self, entry: SavedState) -> bool:
        """Add ``entry``; older states it carries on from go.

        An older state is superseded if the two share more than their persona
        block (the chat's first exchange at least) and part, if at all, only
        in the older state's last answer. (Not only exact prefixes: a sampled
        answer is often tokenized differently when it comes back as history,
        so the new state forks from the old one there.) One that parts before
        its last answer is another branch of the chat (an edit, a regenerated
        answer further up): it stays, so that switching back to that branch
        restores it instead of reading everything after the fork again.
        """
        if entry.size > self.max_bytes or self.max_entries <= 0:
            return False
        self._spill(entry)  # first: a crash after it leaves the new state, not none
        for old in list(self.entries):
            shared = prefix_len(old.tokens, entry.tokens)
            same_chat = is_prefix(old.tokens, entry.tokens) or (
                shared > min(old.n_keep, entry.n_keep) + _SAME_CHAT_MARGIN
                and shared >= old.prompt_len
            )
            if same_chat:
                self.discard(old)
        self.entries.append(entry)
        while len(self.entries) > self.max_entries or self.nbytes > self.max_bytes:
            self.discard(self.entries[0])
        if self._keeps_files and self.root is not None:
            # The budget covers the directory: other models' and other processes' states.
            gone = set(kv_files.enforce_budget(self.root, self.max_bytes, PERSISTENT_ENTRIES))
            for old in [e for e in self.entries if e.path in gone]:
                self.entries.remove(old)
                old.path = None
        return entry in self.entries


def prefix_len(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two token arrays (vectorised)."""
    m = min(len(a), len(b))
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def same_tokens(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.array_equal(a, b))


def is_prefix(a: np.ndarray, b: np.ndarray) -> bool:
    """True if token array ``a`` is a prefix of ``b`` (or equal to it)."""
    return len(a) <= len(b) and bool(np.array_equal(a, b[: len(a)]))


class LiveKV:
    """The live KV cache's bookkeeping, a base of ``ModelRunner``.

    Expects ``self.llm`` (the ``llama_cpp.Llama``), ``self.states`` (a
    :class:`StateCache`) and ``self._live_keep``/``self._live_chat`` (the
    persona-block length and chat id of what the live cache holds).
    """

    llm: Any
    states: StateCache
    _live_keep: int
    _live_chat: Any
    _live_prompt: int  # tokens of the prompt the live cache's last answer followed

    def _prepare_kv(self, prompt: list[int], n_keep: int, chat: Any = None) -> dict[str, Any]:
        """Make the live KV cache share as long a prefix with ``prompt`` as we can.

        Three sources, the best one wins: the live cache as it is (the same
        chat, one turn on); the live cache with the dropped turns cut out and
        the rest moved down (a context shift: after the history was trimmed,
        the kept turns need no re-reading); a saved state of another chat
        (the user came back to it). Before the live state is overwritten by
        another chat's prompt, it is saved for when the user returns.

        ``chat`` identifies the conversation when the caller says (a
        ``chat_id`` on the job); a context shift is then only ever done
        within one chat. Prefix reuse and restored states are safe across
        chats (a prefix never saw what came after it); shifted tokens did see
        the dropped ones, so without an id a shift needs strong evidence that
        the cache holds this very chat.
        """
        llm = self.llm
        p = np.asarray(prompt, dtype=np.intc)
        n = llm.n_tokens
        kv = llm.input_ids[:n]
        live = prefix_len(kv, p)
        same_chat = None if chat is None or self._live_chat is None else chat == self._live_chat
        drop, match = self._shift_plan(kv, p, live, n_keep, same_chat)
        entry, entry_gain = self.states.best(p)
        if same_chat is None:
            other_chat = live <= n_keep + _SAME_CHAT_MARGIN and not match
        else:
            other_chat = not same_chat
        restored, shifted, saved, restore_seconds = False, 0, False, 0.0
        if entry is not None and entry_gain > live + match + _RESTORE_MARGIN:
            if other_chat and n - live >= _SAVE_MIN_LOST:
                saved = self._save_live()
            began = time.perf_counter()
            restored = self._restore(entry)
            restore_seconds = time.perf_counter() - began
            if restored:
                kv = llm.input_ids[: llm.n_tokens]
                live = prefix_len(kv, p)
                same_chat = None if chat is None or entry.chat is None else chat == entry.chat
                drop, match = self._shift_plan(kv, p, live, n_keep, same_chat)
                if match:
                    shifted = self._shift(live, drop)
        elif match:
            shifted = self._shift(live, drop)
        elif other_chat and n - live >= _SAVE_MIN_LOST:
            saved = self._save_live()
        cached = min(prefix_len(llm.input_ids[: llm.n_tokens], p), max(len(p) - 1, 0))
        return {
            "cached_tokens": cached,
            "restored": restored,
            "restore_seconds": restore_seconds,  # reading, checking and loading the state
            "shifted": shifted,
            "saved": saved,
            "state_cache_entries": len(self.states),
            "state_cache_bytes": self.states.nbytes,
        }

    def _can_shift(self) -> bool:
        import llama_cpp

        try:
            return bool(llama_cpp.llama_memory_can_shift(self.llm._ctx.memory))
        except Exception:  # older bindings, or a model kind without positions
            return False

    def _shift_plan(
        self, kv: np.ndarray, p: np.ndarray, live: int, n_keep: int, same_chat: bool | None
    ) -> tuple[int, int]:
        """Where the new prompt goes on in the live cache after a cut.

        Returns ``(drop, match)``: dropping ``kv[live:live + drop]`` makes the
        next ``match`` cached tokens line up with ``p[live:]``; (0, 0) if no
        cut is worth it or safe. The persona block must be intact, and the
        lined-up part must be the bulk of what the cut keeps (the kept turns
        of a trimmed chat), not a phrase that happens to recur.
        """
        if same_chat is False or live < n_keep or live >= len(p) or live + 1 >= len(kv):
            return 0, 0
        if not self._can_shift():
            return 0, 0
        rest = p[live:]
        candidates = np.flatnonzero(kv[live + 1 :] == rest[0]) + 1
        best_drop, best_match = 0, 0
        for drop in candidates:
            match = prefix_len(kv[live + drop :], rest)
            if match > best_match:
                best_drop, best_match = int(drop), match
        if best_match < _SHIFT_MIN_MATCH:
            return 0, 0
        if same_chat is None and 2 * best_match < len(kv) - live - best_drop:
            return 0, 0
        return best_drop, best_match

    def _shift(self, keep: int, drop: int) -> int:
        """llama.cpp's context shift: cut ``drop`` tokens after ``keep``, move the rest."""
        llm = self.llm
        n = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, keep, keep + drop)
        llm._ctx.kv_cache_seq_shift(0, keep + drop, -1, -drop)
        llm.input_ids[keep : n - drop] = llm.input_ids[keep + drop : n].copy()
        llm.n_tokens = n - drop
        llm._requires_eval = True
        return drop

    def _save_live(self) -> bool:
        """Copy the live KV state into the state cache (unless already there)."""
        import llama_cpp

        llm = self.llm
        tokens = llm.input_ids[: llm.n_tokens].copy()
        if len(tokens) == 0 or self.states.holds(tokens):
            return False
        size = int(llama_cpp.llama_state_get_size(llm._ctx.ctx))
        if size > self.states.max_bytes:
            return False
        data = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_get_data(llm._ctx.ctx, data, size))
        state = SavedState(tokens, data, written, self._live_keep, self._live_chat,
                           prompt_len=min(self._live_prompt, len(tokens)))  # fmt: skip
        return self.states.put(state)

    def _restore(self, entry: SavedState) -> bool:
        """Load a saved state into the live KV cache."""
        import llama_cpp

        llm = self.llm
        try:
            data = self.states.read(entry)
        except OSError as exc:  # the cache directory was cleaned under us
            print(f"saved KV state unreadable: {exc}", file=sys.stderr)
            self.states.discard(entry)
            return False
        if llama_cpp.llama_state_set_data(llm._ctx.ctx, data, entry.size) != entry.size:
            self.states.discard(entry)
            llm.reset()
            return False
        n = len(entry.tokens)
        llm.input_ids[:n] = entry.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # the restored logits are not a live decode's
        self._live_keep, self._live_chat = entry.n_keep, entry.chat
        self._live_prompt = entry.prompt_len
        self.states.touch(entry)
        return True
