"""The process that owns the llama.cpp model (see :mod:`tui.engine.local.client`).

:class:`ModelRunner` does the model work (load, build the prompt, generate,
stream) and reports through a ``send`` function, so it can also run in-process
for tests and benchmarks. :func:`main` is the child-process entry point.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import itertools
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tui.core import paths
from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelFailed,
    ModelInfo,
    ModelLoading,
    ModelReady,
    TokenText,
)
from tui.core.models import ModelFileError, check_model_file, display_name
from tui.core.prompt import (
    TRANSCRIPT,
    BuiltPrompt,
    PromptBuilder,
    PromptFormat,
    PromptTooLong,
    TemplateError,
    clean_reply,
    prompt_budget,
)
from tui.core.sampling import Sampling
from tui.core.stops import StopScanner

# Token attributes (llama.h) whose text is never part of an answer.
_HIDDEN_ATTRS = (1 << 3) | (1 << 4)  # CONTROL | USER_DEFINED markers like <start_of_image>

# KV-cache bookkeeping (see ModelRunner._prepare_kv).
STATE_CACHE_ENTRIES = 4  # saved chat states (the live chat's own copy included)
STATE_CACHE_BYTES = 512 << 20  # and never more than this much disk (or RAM) for them
SAVE_AFTER_TURN_TOKENS = 256  # chats this long are saved after each answer, while idle
_SAME_CHAT_MARGIN = 16  # tokens past the persona block shared => the same chat
_SAVE_MIN_LOST = 32  # a live KV state is saved only if at least this much would be lost
_SHIFT_MIN_MATCH = 16  # tokens that must line up before a context shift is trusted
_RESTORE_MARGIN = 8  # a saved state must save at least this many tokens over the live one

_SEEDS = random.SystemRandom()  # not the global generator: nothing can have seeded it


@dataclass(eq=False)  # compared by identity: equality of token arrays is ambiguous
class SavedState:
    """One chat's KV cache, copied out of llama.cpp, and the tokens it holds."""

    tokens: np.ndarray  # np.intc, the tokens evaluated into this state
    data: Any  # ctypes uint8 array from llama_state_get_data; None once in a file
    size: int
    n_keep: int = 0  # the persona block: sharing more than this means the same chat
    chat: Any = None  # the chat id, when jobs carry one
    path: Path | None = None  # the file holding ``data``, when the cache has a directory


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
    """

    def __init__(
        self,
        max_entries: int = STATE_CACHE_ENTRIES,
        max_bytes: int = STATE_CACHE_BYTES,
        directory: Path | None = None,
    ):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: list[SavedState] = []  # oldest first
        self.root = directory
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
        """Remove every state and this process's directory."""
        self.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def read(self, entry: SavedState) -> Any:
        """The state's bytes as a ctypes array (read from its file if it has one)."""
        if entry.data is not None:
            return entry.data
        assert entry.path is not None
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
            if name.isascii() and name.isdigit() and not _process_alive(int(name)):
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
            n = _prefix_len(entry.tokens, prompt)
            if n > longest:
                found, longest = entry, n
        return found, longest

    def holds(self, tokens: np.ndarray) -> bool:
        """True if an entry already holds exactly these tokens."""
        return any(_same(e.tokens, tokens) for e in self.entries)

    def touch(self, entry: SavedState) -> None:
        """Mark ``entry`` as just used."""
        if entry in self.entries:
            self.entries.remove(entry)
            self.entries.append(entry)

    def put(self, entry: SavedState) -> bool:
        """Add ``entry``; older states of the same chat go.

        An older state is of the same chat if the two share more than their
        persona block: the chat's first exchange at least. (Not only exact
        prefixes: a sampled answer is often tokenized differently when it
        comes back as history, so the new state forks from the old one.)
        """
        if entry.size > self.max_bytes or self.max_entries <= 0:
            return False
        for old in list(self.entries):
            same_chat = _is_prefix(old.tokens, entry.tokens) or (
                _prefix_len(old.tokens, entry.tokens)
                > min(old.n_keep, entry.n_keep) + _SAME_CHAT_MARGIN
            )
            if same_chat:
                self.discard(old)
        self._spill(entry)
        self.entries.append(entry)
        while len(self.entries) > self.max_entries or self.nbytes > self.max_bytes:
            self.discard(self.entries[0])
        return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process: alive
    except (OSError, OverflowError):  # no such process (or no such pid at all)
        return False
    return True


def _prefix_len(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the common prefix of two token arrays (vectorised)."""
    m = min(len(a), len(b))
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.array_equal(a, b))


def _is_prefix(a: np.ndarray, b: np.ndarray) -> bool:
    """True if token array ``a`` is a prefix of ``b`` (or equal to it)."""
    return len(a) <= len(b) and bool(np.array_equal(a, b[: len(a)]))


class ModelRunner:
    """Owns one ``llama_cpp.Llama``; not thread-safe, by design: one owner.

    Besides generating, it manages the KV cache so that long chats stay
    cheap: consecutive turns reuse the cached prefix; when the history is
    trimmed, the kept tokens are moved in the cache (llama.cpp's context
    shift) instead of being read again; and the states of recently left
    chats are kept in a :class:`StateCache` and restored on return.
    """

    def __init__(
        self,
        send: Callable[[Any], None],
        cancelled: Callable[[int], bool],
        *,
        state_cache_entries: int = STATE_CACHE_ENTRIES,
        state_cache_bytes: int = STATE_CACHE_BYTES,
        state_dir: Path | None = None,
        verbose: bool = True,
        load_cancelled: Callable[[], bool] = lambda: False,
    ):
        self.send = send
        self.cancelled = cancelled
        self.load_cancelled = load_cancelled  # checked by llama.cpp's progress callback
        self.verbose = verbose  # llama.cpp's chatter to stderr (the engine log)
        self.llm: Any = None
        self.request: LoadModel | None = None
        self.info: ModelInfo | None = None
        self.builder: PromptBuilder | None = None
        self.states = StateCache(state_cache_entries, state_cache_bytes, state_dir)
        self.last_built: BuiltPrompt | None = None  # for tests and benchmarks
        self._hidden: set[int] = set()
        self._eog: set[int] = set()
        self._abort_job: int | None = None
        self._abort_cb: Any = None  # keeps the ctypes callback alive
        self._partial = ""  # the answer so far, for GenerationFailed
        self._live_keep = 0  # persona-block tokens of the chat in the live KV cache
        self._live_chat: Any = None  # its chat id, when jobs carry one
        self.load_error = ""  # why the last load failed: a job without a model says so

    # --- loading ------------------------------------------------------------------------

    def load(self, request: LoadModel) -> bool:
        """Load the model; reports ModelReady or ModelFailed, never raises."""
        path = Path(request.path)
        if self._holds(request):
            # The same file with a window as large: a chat's n_ctx is its prompt budget
            # inside the loaded window, so switching chats never reloads the model.
            assert self.info is not None
            self.send(ModelReady(self.info, 0.0))
            return True
        self.send(ModelLoading(request.path, 0.0))
        started = time.monotonic()
        try:
            check_model_file(path)
            import llama_cpp

            from tui.core.gguf_info import GGUFError, read_gguf_info

            with contextlib.suppress(GGUFError):  # cap before loading, not after
                header = read_gguf_info(path)
                n_ctx = window_cap(request.n_ctx, header.context_length,
                                   header.kv_bytes_per_token, available_memory())  # fmt: skip
                if n_ctx != request.n_ctx:
                    request = LoadModel(**{**request.__dict__, "n_ctx": n_ctx})
            self.close()
            self.llm = self._new_llama(llama_cpp, request)
            n_ctx_train = self.llm._model.n_ctx_train()
            if request.n_ctx > n_ctx_train > 0:
                # A context beyond the training length gives garbage: cap it.
                self.close()
                request = LoadModel(**{**request.__dict__, "n_ctx": n_ctx_train})
                self.llm = self._new_llama(llama_cpp, request)
        except ModelFileError as exc:
            return self._load_failed(request.path, str(exc))
        except Exception as exc:  # llama.cpp reports load failures as ValueError
            self.llm = None
            if self.load_cancelled():
                return self._load_failed(request.path, "Loading the model was cancelled.")
            return self._load_failed(
                request.path,
                f"llama.cpp could not load {path}: {exc}. "
                "The file may be truncated or for an unsupported architecture.",
            )
        self.load_error = ""
        self.request = request
        self._prepare_format()
        assert self.info is not None
        self.send(ModelReady(self.info, time.monotonic() - started))
        return True

    def _holds(self, request: LoadModel) -> bool:
        """True if the loaded model is ``request``'s file with at least its window."""
        loaded = self.request
        return (
            self.llm is not None
            and self.info is not None
            and loaded is not None
            and loaded.path == request.path
            and loaded.n_threads == request.n_threads
            and loaded.n_gpu_layers == request.n_gpu_layers
            and self.info.n_ctx >= min(request.n_ctx, self.info.n_ctx_train or request.n_ctx)
        )

    def _load_failed(self, path: str, message: str) -> bool:
        """Report a failed load and keep its reason for the jobs that find no model."""
        self.load_error = message
        self.send(ModelFailed(path, message))
        return False

    def _new_llama(self, llama_cpp: Any, request: LoadModel) -> Any:
        """``Llama(...)`` with llama.cpp's progress callback: progress events, and cancel.

        llama-cpp-python has no parameter for the callback, so the model
        parameters it asks llama.cpp for are given one for this call only.
        """
        reported = [0.0]

        def on_progress(progress: float, _user_data: Any) -> bool:
            if progress - reported[0] >= 0.05 or progress >= 1.0:
                reported[0] = progress
                self.send(ModelLoading(request.path, min(progress, 1.0)))
            return not self.load_cancelled()

        callback = llama_cpp.llama_progress_callback(on_progress)
        default_params = llama_cpp.llama_cpp.llama_model_default_params

        def params_with_progress() -> Any:
            params = default_params()
            params.progress_callback = callback
            return params

        llama_cpp.llama_cpp.llama_model_default_params = params_with_progress
        try:
            return llama_cpp.Llama(
                model_path=request.path,
                n_ctx=request.n_ctx,
                n_threads=request.n_threads,
                n_gpu_layers=request.n_gpu_layers,
                verbose=self.verbose,  # in the child, stderr is the log file: keep the reasons
            )
        finally:
            llama_cpp.llama_cpp.llama_model_default_params = default_params

    def _prepare_format(self) -> None:
        llm = self.llm
        model = llm._model
        template = llm.metadata.get("tokenizer.chat_template") or None
        bos, eos = llm.token_bos(), llm.token_eos()
        fmt = PromptFormat(
            chat_template=template,
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
        )
        self.builder = PromptBuilder(fmt, self._tokenize)
        import llama_cpp

        vocab = range(model.n_vocab())
        self._hidden = {tok for tok in vocab if model.token_get_attr(tok) & _HIDDEN_ATTRS}
        self._eog = {tok for tok in vocab if llama_cpp.llama_vocab_is_eog(model.vocab, tok)}
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        path = Path(self.llm.model_path)
        self.info = ModelInfo(
            path=str(path),
            name=display_name(path),
            n_ctx=llm.n_ctx(),
            n_ctx_train=model.n_ctx_train(),
            has_chat_template=template is not None,
            size_bytes=path.stat().st_size,
        )

    def _tokenize(self, text: str) -> list[int]:
        """Tokens as the model sees them; BOS only if the text does not bring it."""
        assert self.builder is not None
        bos = self.builder.fmt.bos_token
        add_bos = not (bos and text.startswith(bos))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def close(self) -> None:
        """Free the model; saved KV states belong to it and go too (files included)."""
        self.states.close()
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    # --- the KV cache -------------------------------------------------------------------

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
        live = _prefix_len(kv, p)
        same_chat = None if chat is None or self._live_chat is None else chat == self._live_chat
        drop, match = self._shift_plan(kv, p, live, n_keep, same_chat)
        entry, entry_gain = self.states.best(p)
        if same_chat is None:
            other_chat = live <= n_keep + _SAME_CHAT_MARGIN and not match
        else:
            other_chat = not same_chat
        restored, shifted, saved = False, 0, False
        if entry is not None and entry_gain > live + match + _RESTORE_MARGIN:
            if other_chat and n - live >= _SAVE_MIN_LOST:
                saved = self._save_live()
            restored = self._restore(entry)
            if restored:
                kv = llm.input_ids[: llm.n_tokens]
                live = _prefix_len(kv, p)
                same_chat = None if chat is None or entry.chat is None else chat == entry.chat
                drop, match = self._shift_plan(kv, p, live, n_keep, same_chat)
                if match:
                    shifted = self._shift(live, drop)
        elif match:
            shifted = self._shift(live, drop)
        elif other_chat and n - live >= _SAVE_MIN_LOST:
            saved = self._save_live()
        cached = min(_prefix_len(llm.input_ids[: llm.n_tokens], p), max(len(p) - 1, 0))
        return {
            "cached_tokens": cached,
            "restored": restored,
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
            match = _prefix_len(kv[live + drop :], rest)
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
        state = SavedState(tokens, data, written, self._live_keep, self._live_chat)
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
        self.states.touch(entry)
        return True

    def _should_abort(self, _data: Any) -> bool:
        """llama.cpp asks this during prompt evaluation: stop if the job was cancelled."""
        try:
            return self._abort_job is not None and bool(self.cancelled(self._abort_job))
        except Exception:
            return False

    def _set_abort(self, job_id: int | None) -> None:
        """Let llama.cpp abandon a prompt evaluation when ``job_id`` is cancelled.

        Only while the prompt is read: the callback runs for every graph node,
        which is noise next to a prompt batch but a few percent of each token.
        """
        import llama_cpp

        self._abort_job = job_id
        callback = self._abort_cb if job_id is not None else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self.llm._ctx.ctx, callback, None)

    # --- generating ---------------------------------------------------------------------

    def generate(self, job: Generate) -> None:
        """Run one job to the end; reports events, never raises."""
        try:
            self._generate(job)
        except Exception as exc:  # the worker must survive whatever one job does
            self._recover()
            self.send(GenerationFailed(job.job_id, f"Generation failed: {exc}", self._partial))
            return
        self._save_after_turn()

    def _save_after_turn(self) -> None:
        """Save a long chat's state now, while the user reads the answer.

        Then switching to another chat costs no copy: only restoring one
        when the user comes back. Short chats are cheap to read again and
        are saved only if another chat is about to overwrite them.
        """
        try:
            if self.llm is not None and self.llm.n_tokens >= SAVE_AFTER_TURN_TOKENS:
                self._save_live()
        except Exception:  # an optimisation: never worth failing a turn for
            pass

    def _recover(self) -> None:
        """After a failure mid-decode the KV cache is suspect: start it afresh."""
        try:
            if self.llm is not None:
                self._set_abort(None)
                self.llm.reset()
        except Exception:
            pass

    def _ensure_window(self, n_ctx: int) -> None:
        """Grow the loaded window when a chat wants more than it holds; never shrink it.

        The window is loaded once at the largest any chat wants (the UI asks for
        that); this covers a chat whose n_ctx was raised since.
        """
        assert self.request is not None
        request = LoadModel(**{**self.request.__dict__, "n_ctx": n_ctx})
        if not self._holds(request) and not self.load(request):
            raise RuntimeError("could not reload the model with the larger context size")

    def _generate(self, job: Generate) -> None:
        self._partial = ""
        job_started = time.monotonic()
        if self.llm is None or self.builder is None:
            reason = f": {self.load_error}" if self.load_error else "."
            self.send(GenerationFailed(job.job_id, f"No model is loaded{reason}"))
            return
        sampling = Sampling.from_dict(job.sampling)
        self._ensure_window(sampling.n_ctx)
        n_ctx = min(sampling.n_ctx, self.llm.n_ctx())  # the chat's budget in the loaded window
        budget = prompt_budget(n_ctx, sampling.max_tokens)
        try:
            built = self.builder.build(job.persona, job.history, budget, job.start)
        except (PromptTooLong, TemplateError) as exc:
            self.send(GenerationFailed(job.job_id, str(exc)))
            return
        self.last_built = built
        prompt = built.tokens
        chat = getattr(job, "chat_id", None)  # optional: lets shifts stay within one chat
        try:
            kv = self._prepare_kv(prompt, built.n_keep, chat)
        except Exception:  # an optimisation: on any trouble, read the prompt afresh
            self.llm.reset()
            kv = {"cached_tokens": 0, "restored": False, "shifted": 0, "saved": False}
        self._live_keep, self._live_chat = built.n_keep, chat
        self.send(
            GenerationStarted(
                job.job_id, len(prompt), n_ctx, built.start, built.mode, kv["cached_tokens"]
            )
        )
        seed = sampling.seed if sampling.seed >= 0 else _SEEDS.randrange(2**31)
        stats: dict[str, Any] = {**kv, "seed": seed, "mode": built.mode, "start": built.start}
        if self.cancelled(job.job_id):
            stats["ttft"] = time.monotonic() - job_started
            self.send(
                GenerationFinished(job.job_id, "", "cancelled", 0, 0.0, len(prompt), n_ctx, stats)
            )
            return

        self.llm.set_seed(seed)
        self.llm.last_n_tokens_size = (
            n_ctx if sampling.repeat_last_n < 0 else sampling.repeat_last_n
        )
        room = n_ctx - len(prompt)
        limit = min(room, sampling.max_tokens) if sampling.max_tokens > 0 else room
        scanner = StopScanner(built.stops)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        leading = built.mode == TRANSCRIPT  # drop the space after "Bob:"
        raw, count, reason = "", 0, "stop"
        first_token_at = 0.0

        tokens = self.llm.generate(
            prompt,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            typical_p=sampling.typical_p,
            temp=sampling.temperature,
            repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            mirostat_mode=sampling.mirostat_mode,
            mirostat_tau=sampling.mirostat_tau,
            mirostat_eta=sampling.mirostat_eta,
        )
        if not kv["shifted"]:
            # Not after a shift: llama.cpp applies it at the start of this decode, and
            # an abort half-way through would leave the cache half-rotated.
            self._set_abort(job.job_id)
        try:
            for token in tokens:
                if not first_token_at:
                    first_token_at = time.monotonic()
                    self._set_abort(None)
                if self.cancelled(job.job_id):
                    reason = "cancelled"
                    break
                if token in self._eog:
                    break
                count += 1
                if token not in self._hidden:
                    piece = decoder.decode(self.llm.detokenize([token], special=False))
                    out = scanner.feed(piece)
                    if leading and out:
                        out = out.lstrip(" ")
                        leading = not out
                    if out:
                        raw += out
                        self._partial = raw
                        self.send(TokenText(job.job_id, out))
                    if scanner.stopped:
                        break
                if count >= limit:
                    # The window is full (or nearly: the last token is never evaluated).
                    reason = "context" if limit == room else "length"
                    break
        except RuntimeError:
            # llama_decode returns 2 when our abort callback stopped the prompt.
            if first_token_at or not self.cancelled(job.job_id):
                raise
            reason = "cancelled"
            self.llm._ctx.kv_cache_seq_rm(-1, self.llm.n_tokens, -1)
            self.llm._requires_eval = True
        finally:
            self._set_abort(None)
            tokens.close()
        tail = scanner.finish() + decoder.decode(b"", final=True)
        if tail and reason != "cancelled":
            raw += tail
            self.send(TokenText(job.job_id, tail))
        ended = time.monotonic()
        answer = clean_reply(raw, job.persona, built.mode)
        stats["ttft"] = (first_token_at or ended) - job_started
        self.send(
            GenerationFinished(
                job_id=job.job_id,
                text=answer,
                reason=reason,
                completion_tokens=count,
                seconds=ended - (first_token_at or ended),
                prompt_tokens=len(prompt),
                n_ctx=n_ctx,
                stats=stats,
            )
        )


MEMORY_SHARE_FOR_KV = 0.5  # a window's KV cache may fill at most this share of free memory


def window_cap(wanted: int, n_ctx_train: int, kv_bytes_per_token: int, available: int) -> int:
    """The window to load: ``wanted``, capped at the training context and at memory.

    A context beyond the training length gives garbage; one whose KV cache
    would not fit in memory when full ends the process later, mid-chat.
    Unknown figures (0) cap nothing; the result is never under 512 tokens.
    """
    n_ctx = wanted
    if n_ctx_train > 0:
        n_ctx = min(n_ctx, n_ctx_train)
    if kv_bytes_per_token > 0 and available > 0:
        fits = int(available * MEMORY_SHARE_FOR_KV) // kv_bytes_per_token
        n_ctx = min(n_ctx, max(fits // 256 * 256, 512))
    return n_ctx


def available_memory() -> int:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), 0 if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _state_cache_bytes(value: str | None) -> int:
    """Room for saved chat states: ``LLAMA_TUI_STATE_CACHE_MB`` (0 turns it off)."""
    try:
        return max(int(value), 0) << 20 if value else STATE_CACHE_BYTES
    except ValueError:
        return STATE_CACHE_BYTES


def main(argv: list[str] | None = None) -> None:
    """Child-process entry point: ``python -m tui.engine.local.host FD``.

    FD is our end of a socket pair. The parent has pointed our stdout and
    stderr at the engine log, so llama.cpp's chatter lands there. A reader
    thread takes commands off the socket: cancellations act at once, model
    work is queued for the main thread, which alone touches the model.
    """
    import queue
    import threading
    from multiprocessing.connection import Connection

    from tui.core.engine_protocol import CANCEL_ALL, Cancel, CancelLoad

    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    print(f"--- llama-tui engine {os.getpid()} started {time.ctime()}", file=sys.stderr)
    work: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancelled_up_to = 0
    # Loads are counted like jobs: CancelLoad cancels every load received so far, so
    # a LoadModel that follows it at once cannot clear the cancel of the one running.
    loads_received = 0
    loads_cancelled_up_to = 0
    running_load = 0  # the number of the LoadModel the main thread is running (0: none)
    send_lock = threading.Lock()

    def send(event: Any) -> None:
        with send_lock:
            conn.send(event)

    def read_commands() -> None:
        nonlocal cancelled_up_to, loads_received, loads_cancelled_up_to
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                command = None
            if isinstance(command, Cancel):
                cancelled_up_to = max(cancelled_up_to, command.job_id)
                continue
            if isinstance(command, CancelLoad):
                loads_cancelled_up_to = loads_received
                continue
            if isinstance(command, LoadModel):
                loads_received += 1
                command = (loads_received, command)
            work.put(command)
            if command is None:  # the UI quit or died: stop the running answer and load too
                cancelled_up_to = CANCEL_ALL
                loads_cancelled_up_to = CANCEL_ALL
                return

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    runner = ModelRunner(
        send,
        lambda job_id: job_id <= cancelled_up_to,
        load_cancelled=lambda: 0 < running_load <= loads_cancelled_up_to,
        state_cache_bytes=_state_cache_bytes(os.environ.get("LLAMA_TUI_STATE_CACHE_MB")),
        state_dir=paths.cache_dir() / "kv-states",
    )
    while (command := work.get()) is not None:
        if isinstance(command, tuple):  # (number, LoadModel)
            running_load, request = command
            runner.load(request)
            running_load = 0
        elif isinstance(command, Generate):
            if runner.cancelled(command.job_id):
                send(GenerationFinished(command.job_id, "", "cancelled"))
            else:
                runner.generate(command)
    runner.close()


if __name__ == "__main__":
    main()
