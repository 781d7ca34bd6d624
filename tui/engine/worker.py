"""The process that owns the llama.cpp model (see :mod:`tui.engine.local`).

:class:`ModelRunner` does the model work (load, build the prompt, generate,
stream) and reports through a ``send`` function, so it can also run in-process
for tests and benchmarks. :func:`main` is the child-process entry point.
"""

from __future__ import annotations

import codecs
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.engine.protocol import (
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
from tui.models import ModelFileError, check_model_file, display_name
from tui.prompt import (
    TRANSCRIPT,
    PromptBuilder,
    PromptFormat,
    PromptTooLong,
    TemplateError,
    clean_reply,
)
from tui.sampling import Sampling
from tui.stops import StopScanner

# Token attributes (llama.h) whose text is never part of an answer.
_HIDDEN_ATTRS = (1 << 3) | (1 << 4)  # CONTROL | USER_DEFINED markers like <start_of_image>
_SEND_INTERVAL = 0.0


class ModelRunner:
    """Owns one ``llama_cpp.Llama``; not thread-safe, by design: one owner."""

    def __init__(self, send: Callable[[Any], None], cancelled: Callable[[int], bool]):
        self.send = send
        self.cancelled = cancelled
        self.llm: Any = None
        self.request: LoadModel | None = None
        self.info: ModelInfo | None = None
        self.builder: PromptBuilder | None = None
        self._hidden: set[int] = set()
        self._eog: set[int] = set()

    # --- loading ------------------------------------------------------------------------

    def load(self, request: LoadModel) -> bool:
        """Load the model; reports ModelReady or ModelFailed, never raises."""
        path = Path(request.path)
        self.send(ModelLoading(request.path, 0.0))
        started = time.monotonic()
        try:
            check_model_file(path)
            import llama_cpp

            self.close()
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=request.n_ctx,
                n_threads=request.n_threads,
                n_gpu_layers=request.n_gpu_layers,
                verbose=True,  # our stderr is the log file: keep llama.cpp's reasons there
            )
            n_ctx_train = self.llm._model.n_ctx_train()
            if request.n_ctx > n_ctx_train > 0:
                # A context beyond the training length gives garbage: cap it.
                self.llm = None
                request = LoadModel(**{**request.__dict__, "n_ctx": n_ctx_train})
                self.llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=request.n_ctx,
                    n_threads=request.n_threads,
                    n_gpu_layers=request.n_gpu_layers,
                    verbose=True,
                )
        except ModelFileError as exc:
            self.send(ModelFailed(request.path, str(exc)))
            return False
        except Exception as exc:  # llama.cpp reports load failures as ValueError
            self.llm = None
            self.send(
                ModelFailed(
                    request.path,
                    f"llama.cpp could not load {path}: {exc}. "
                    "The file may be truncated or for an unsupported architecture.",
                )
            )
            return False
        self.request = request
        self._prepare_format()
        assert self.info is not None
        self.send(ModelReady(self.info, time.monotonic() - started))
        return True

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
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    # --- generating ---------------------------------------------------------------------

    def generate(self, job: Generate) -> None:
        """Run one job to the end; reports events, never raises."""
        text = ""
        try:
            text = self._generate(job)
        except Exception as exc:  # the worker must survive whatever one job does
            self.send(GenerationFailed(job.job_id, f"Generation failed: {exc}", text))

    def _ensure_context(self, n_ctx: int) -> None:
        """Reload with another context size when a chat asks for one."""
        assert self.request is not None and self.info is not None
        wanted = min(n_ctx, self.info.n_ctx_train or n_ctx)
        if wanted != self.info.n_ctx:
            request = LoadModel(**{**self.request.__dict__, "n_ctx": wanted})
            if not self.load(request):
                raise RuntimeError("could not reload the model with the new context size")

    def _generate(self, job: Generate) -> str:
        if self.llm is None or self.builder is None:
            self.send(GenerationFailed(job.job_id, "No model is loaded."))
            return ""
        sampling = Sampling.from_dict(job.sampling)
        self._ensure_context(sampling.n_ctx)
        n_ctx = self.llm.n_ctx()
        reserve = sampling.max_tokens if sampling.max_tokens > 0 else n_ctx // 4
        reserve = max(min(reserve, n_ctx // 2), 1)
        try:
            built = self.builder.build(job.persona, job.history, n_ctx - reserve, job.start)
        except (PromptTooLong, TemplateError) as exc:
            self.send(GenerationFailed(job.job_id, str(exc)))
            return ""
        prompt = built.tokens
        cached = _common_prefix(self.llm._input_ids[: self.llm.n_tokens], prompt)
        self.send(
            GenerationStarted(job.job_id, len(prompt), n_ctx, built.start, built.mode, cached)
        )

        seed = sampling.seed if sampling.seed >= 0 else random.randrange(2**31)
        self.llm.set_seed(seed)
        self.llm.last_n_tokens_size = (
            n_ctx if sampling.repeat_last_n < 0 else sampling.repeat_last_n
        )
        limit = n_ctx - len(prompt)
        if sampling.max_tokens > 0:
            limit = min(limit, sampling.max_tokens)
        scanner = StopScanner(built.stops)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        leading = built.mode == TRANSCRIPT  # drop the space after "Bob:"
        raw, count, reason = "", 0, "stop"
        started = time.monotonic()
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
        try:
            for token in tokens:
                if not first_token_at:
                    first_token_at = time.monotonic()
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
                        self.send(TokenText(job.job_id, out))
                    if scanner.stopped:
                        break
                if count >= limit:
                    reason = "context" if limit == n_ctx - len(prompt) else "length"
                    break
        finally:
            tokens.close()
        tail = scanner.finish() + decoder.decode(b"", final=True)
        if tail and reason != "cancelled":
            raw += tail
            self.send(TokenText(job.job_id, tail))
        ended = time.monotonic()
        answer = clean_reply(raw, job.persona, built.mode)
        self.send(
            GenerationFinished(
                job_id=job.job_id,
                text=answer,
                reason=reason,
                completion_tokens=count,
                seconds=ended - (first_token_at or started),
                prompt_tokens=len(prompt),
                n_ctx=n_ctx,
                stats={
                    "ttft": (first_token_at or ended) - started,
                    "cached_tokens": cached,
                    "seed": seed,
                    "mode": built.mode,
                    "start": built.start,
                },
            )
        )
        return answer


def _common_prefix(a: Any, b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    """Child-process entry point: ``python -m tui.engine.worker FD``.

    FD is our end of a socket pair. The parent has pointed our stdout and
    stderr at the engine log, so llama.cpp's chatter lands there. A reader
    thread takes commands off the socket: cancellations act at once, model
    work is queued for the main thread, which alone touches the model.
    """
    import queue
    import threading
    from multiprocessing.connection import Connection

    from tui.engine.protocol import Cancel

    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    print(f"--- llama-tui engine {os.getpid()} started {time.ctime()}", file=sys.stderr)
    work: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancelled_up_to = 0
    send_lock = threading.Lock()

    def send(event: Any) -> None:
        with send_lock:
            conn.send(event)

    def read_commands() -> None:
        nonlocal cancelled_up_to
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                command = None
            if isinstance(command, Cancel):
                cancelled_up_to = max(cancelled_up_to, command.job_id)
                continue
            work.put(command)
            if command is None:
                return

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    runner = ModelRunner(send, lambda job_id: job_id <= cancelled_up_to)
    while (command := work.get()) is not None:
        if isinstance(command, LoadModel):
            runner.load(command)
        elif isinstance(command, Generate):
            if runner.cancelled(command.job_id):
                send(GenerationFinished(command.job_id, "", "cancelled"))
            else:
                runner.generate(command)
    runner.close()


if __name__ == "__main__":
    main()
