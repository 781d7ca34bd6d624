"""The llama.cpp model of the local engine (run in its own process, see :mod:`.host`).

:class:`ModelRunner` does the model work (load, build the prompt, generate,
stream) and reports through a ``send`` function, so it can also run in-process
for tests and benchmarks. The KV-cache logic is in :mod:`.kv_states`; the
turn's budget, reply filter and finish reasons in :mod:`tui.core.turn_policy`.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    CHAT,
    BuiltPrompt,
    PromptBuilder,
    PromptFormat,
    PromptTooLong,
    TemplateError,
    thinking_options,
)
from tui.core.prompt_record import log_prompt, prompt_info
from tui.core.reasoning import PLAIN, ReasoningFormat, detect_format, starts_inside
from tui.core.sampling import Sampling
from tui.core.turn_policy import (
    FINISH_CANCELLED,
    ReplyFilter,
    answer_room,
    clean_reply,
    finish_reason,
    prompt_budget,
)
from tui.engine.local.kv_states import (
    STATE_CACHE_BYTES,
    STATE_CACHE_ENTRIES,
    LiveKV,
    StateCache,
)
from tui.engine.local.thinking import Thought
from tui.engine.local.window import available_memory, window_cap

# Token attributes (llama.h) whose text is never part of an answer.
_HIDDEN_ATTRS = (1 << 3) | (1 << 4)  # CONTROL | USER_DEFINED markers like <start_of_image>

SAVE_AFTER_TURN_TOKENS = 256  # chats this long are saved after each answer, while idle

_SEEDS = random.SystemRandom()  # not the global generator: nothing can have seeded it


class ModelRunner(LiveKV):
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
        keep_states: bool = False,
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
        # keep_states: states stay in state_dir across restarts (config kv_cache_mb > 0)
        self.states = StateCache(state_cache_entries, state_cache_bytes, state_dir, keep_states)
        self.last_built: BuiltPrompt | None = None  # for tests and benchmarks
        self._hidden: set[int] = set()
        self._eog: set[int] = set()
        self._abort_job: int | None = None
        self._abort_cb: Any = None  # keeps the ctypes callback alive
        self._reply: ReplyFilter | None = None  # the answer so far, for GenerationFailed
        self._live_keep = 0  # persona-block tokens of the chat in the live KV cache
        self._live_prompt = 0  # tokens of the prompt its last answer followed
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
        self._attach_states(request)
        assert self.info is not None
        self.send(ModelReady(self.info, time.monotonic() - started))
        return True

    def _attach_states(self, request: LoadModel) -> None:
        """Find the states kept for this model file and window (persistent cache only)."""
        if not self.states.persistent:
            return
        import llama_cpp

        from tui.engine.local.kv_files import model_key

        try:
            key = model_key(Path(request.path), self.llm.n_ctx(), request.n_gpu_layers,
                            str(llama_cpp.__version__))  # fmt: skip
        except OSError:
            key = None  # the file went away under us: nothing kept for it
        self.states.attach(key)

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
        # How this model marks its thinking, and which markers are tokens of their own
        # (often control tokens, whose text detokenizing would drop).
        self.reasoning_fmt: ReasoningFormat = detect_format(template)
        self._markers: dict[int, str] = {}
        for marker in self.reasoning_fmt.markers:
            ids = llm.tokenize(marker.encode("utf-8"), add_bos=False, special=True)
            if len(ids) == 1:
                self._markers[ids[0]] = marker
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

    def _tokenize_part(self, text: str) -> list[int]:
        """Tokens of text written into the answer (no BOS; markers as their tokens)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _model_text(self, token: int) -> str:
        """A token as the vocabulary writes it (``<|im_start|>``): the prompt view marks these."""
        return self.llm._model.token_get_text(token)

    def close(self) -> None:
        """Free the model; its saved KV states go too, but for those kept across restarts."""
        self.states.close()
        if self.llm is not None:
            self.llm.close()
            self.llm = None

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
            said = self._reply or ReplyFilter([], CHAT)
            self.send(
                GenerationFailed(
                    job.job_id,
                    f"Generation failed: {exc}",
                    said.text,
                    reasoning=said.reasoning.strip(),
                )
            )
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
        self._reply = None
        job_started = time.monotonic()
        if self.llm is None or self.builder is None:
            reason = f": {self.load_error}" if self.load_error else "."
            self.send(GenerationFailed(job.job_id, f"No model is loaded{reason}"))
            return
        sampling = Sampling.from_dict(job.sampling)
        self._ensure_window(sampling.n_ctx)
        n_ctx = min(sampling.n_ctx, self.llm.n_ctx())  # the chat's budget in the loaded window
        budget = prompt_budget(n_ctx, sampling.max_tokens)
        prefill = job.prefill
        thinking, effort = thinking_options(sampling.reasoning, sampling.reasoning_effort)
        if prefill:  # going on with the answer: no new thinking before it
            thinking, effort = False, None
        self.builder.fmt = dataclasses.replace(
            self.builder.fmt, thinking=thinking, reasoning_effort=effort
        )
        try:
            built = self.builder.build(job.persona, job.history, budget, prefill=prefill)
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
        self._live_keep, self._live_chat, self._live_prompt = built.n_keep, chat, len(prompt)
        seed = sampling.seed if sampling.seed >= 0 else _SEEDS.randrange(2**31)
        info = prompt_info(built, len(job.history), seed, sampling)
        special = self._hidden | self._eog | {self.llm.token_bos()}
        info["special"] = sorted({self._model_text(t) for t in set(prompt) & special})
        begun = GenerationStarted(job.job_id, len(prompt), n_ctx, built.start, built.mode)
        self.send(dataclasses.replace(begun, cached_tokens=kv["cached_tokens"],
                                      prompt_text=built.text, prompt_info=info))  # fmt: skip
        if self.verbose:  # in the child process, stderr is the engine log
            log_prompt(job.job_id, built.text, info)
        stats: dict[str, Any] = {**kv, "seed": seed, "mode": built.mode, "start": built.start}
        if self.cancelled(job.job_id):
            stats["ttft"] = time.monotonic() - job_started
            self.send(
                GenerationFinished(
                    job.job_id, "", FINISH_CANCELLED, 0, 0.0, len(prompt), n_ctx, stats
                )
            )
            return

        self.llm.set_seed(seed)
        self.llm.last_n_tokens_size = (
            n_ctx if sampling.repeat_last_n < 0 else sampling.repeat_last_n
        )
        space = answer_room(n_ctx, len(prompt), sampling.max_tokens)
        fmt = self.reasoning_fmt if built.mode == CHAT else PLAIN
        reply = ReplyFilter(
            built.stops, built.mode, fmt, starts_inside(fmt, built.text), continuing=bool(prefill)
        )
        self._reply = reply  # what was said so far, should generating fail
        thought = Thought(
            lambda text, thinking: self.send(TokenText(job.job_id, text, thinking)),
            reply,
            sampling.reasoning_budget,
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        count = 0
        cancelled = at_limit = False
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
        written: list[int] | None = None  # tokens we write into the answer (a budget's end)
        try:
            while True:
                try:
                    token = tokens.send(written)
                except StopIteration:
                    break
                count += len(written or ())
                written = None
                if not first_token_at:
                    first_token_at = time.monotonic()
                    self._set_abort(None)
                if self.cancelled(job.job_id):
                    cancelled = True
                    break
                if token in self._eog:
                    break
                count += 1
                marker = self._markers.get(token)
                if marker is not None or token not in self._hidden:
                    piece = marker or decoder.decode(self.llm.detokenize([token], special=False))
                    thought.show(piece)
                    if reply.stopped:
                        break
                if thought.over_budget() and count + 1 < space.limit:
                    written = self._tokenize_part(thought.close(self.reasoning_fmt.close_text))
                if count >= space.limit:
                    # max_tokens, or the window is full (nearly: the last token is never read).
                    at_limit = True
                    break
        except RuntimeError:
            # llama_decode returns 2 when our abort callback stopped the prompt.
            if first_token_at or not self.cancelled(job.job_id):
                raise
            cancelled = True
            self.llm._ctx.kv_cache_seq_rm(-1, self.llm.n_tokens, -1)
            self.llm._requires_eval = True
        finally:
            self._set_abort(None)
            tokens.close()
        reason = finish_reason(space, at_limit=at_limit, cancelled=cancelled)
        tail = decoder.decode(b"", final=True)
        if not cancelled:
            thought.show(tail, final=True)
        ended = time.monotonic()
        answer = clean_reply(reply.text, job.persona, built.mode, continuing=bool(prefill))
        stats["ttft"] = (first_token_at or ended) - job_started
        stats.update(thought.stats(ended))
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
                reasoning=reply.reasoning.strip(),
            )
        )
