"""The remote engine itself: one worker thread, one command at a time.

See :mod:`tui.engine.remote` for how a persona reaches the server.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Any

import httpx

from tui.core.endpoints import Endpoint
from tui.core.engine_protocol import (
    CANCEL_ALL,
    CleanEvents,
    Engine,
    EngineEvent,
    EventCallback,
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
from tui.core.prompt import (
    CHAT,
    TRANSCRIPT,
    BuiltPrompt,
    PromptBuilder,
    PromptFormat,
    PromptTooLong,
    TemplateError,
    Turn,
    fold_opening,
)
from tui.core.prompt_record import LOCAL, prompt_info
from tui.core.reasoning import INLINE, PLAIN
from tui.core.sampling import Sampling
from tui.core.turn_policy import (
    FINISH_CANCELLED,
    FINISH_CONTEXT,
    FINISH_LENGTH,
    ReplyFilter,
    answer_room,
    clean_reply,
    finish_reason,
    prompt_budget,
)
from tui.engine.remote.discovery import ServerDiscovery
from tui.engine.remote.messages import (
    RemoteError,
    _error_text,
    _json_or_none,
    _Refused,
    _sounds_too_long,
    _StreamCut,
    _TooLong,
    status_message,
    too_long_message,
)
from tui.engine.remote.prefill import can_prefill, chat_request, refusal
from tui.engine.remote.settings import (
    CHAT_MARGIN,
    COUNTING_TEMPLATE,
    reasoning_fields,
    sampling_fields,
    supported_settings,
)
from tui.engine.remote.slots import SlotFiles
from tui.engine.remote.stream import (
    ANSWER_CHAR_CAP,
    CHARS_PER_TOKEN,
    STREAM_BYTES_PER_TOKEN,
    _Active,
    _Progress,
    stream_answer,
)
from tui.engine.remote.thinking import (
    BUDGET_KINDS,
    HISTORY_REASONING,
    budget_request,
    chat_messages,
    thinking_stats,
)

# --- the engine ----------------------------------------------------------------------


class RemoteEngine(ServerDiscovery, Engine):
    """Talks to one :class:`Endpoint`; implements :class:`tui.core.engine_protocol.Engine`."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.kind = endpoint.kind  # "auto" until the server has been checked
        self.model = endpoint.model
        self.n_ctx = 0  # the server's window, once checked
        self.window_reported = False  # whether the server said it (else config or a guess)
        self.base = endpoint.base_url  # the OpenAI-compatible API, once checked (see _api_base)
        self.counter = "estimate"  # how tokens are counted: a server kind, or "estimate"
        self.info: ModelInfo | None = None
        self._load_error = ""
        self._on_event: EventCallback | None = None
        self._work: queue.SimpleQueue[LoadModel | Generate | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cancelled_up_to = -1
        self._active: _Active | None = None
        self._closed = False
        self._counts: dict[str, list[int]] = {}
        self.slots = SlotFiles(endpoint.root_url)  # llama-server's saved chat caches
        timeout = httpx.Timeout(endpoint.timeout, connect=endpoint.connect_timeout)
        # Short requests reuse connections; each answer gets its own, so that
        # cancelling can cut exactly that connection (see _Active).
        self._client = httpx.Client(timeout=timeout)
        self._stream_client = httpx.Client(
            timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0)
        )

    # --- Engine interface ---------------------------------------------------------------

    def start(self, on_event: EventCallback) -> None:
        self._on_event = CleanEvents(on_event)  # what it reports is data, made safe
        self._thread = threading.Thread(target=self._run, name="remote-engine", daemon=True)
        self._thread.start()

    def load(self, request: LoadModel) -> None:
        self._work.put(request)

    def generate(self, job: Generate) -> None:
        self._work.put(job)

    def cancel(self, job_id: int) -> None:
        """Cancel ``job_id`` and every earlier job; an answer in flight is cut now."""
        with self._lock:
            self._cancelled_up_to = max(self._cancelled_up_to, job_id)
            active = self._active
        if active is not None and active.job_id <= job_id:
            active.abort()

    def close(self) -> None:
        self._closed = True
        self.cancel(CANCEL_ALL)
        self._work.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=3)
        self._client.close()
        self._stream_client.close()

    def can_prefill(self) -> bool:
        """Whether this server can go on from an answer's text (chat mode; see prefill.py)."""
        return can_prefill(self.kind)

    def supported_settings(self) -> frozenset[str]:
        """What this endpoint's server acts on (OpenAI fields until it is checked)."""
        return supported_settings(self.kind)

    # --- the worker thread --------------------------------------------------------------

    def _run(self) -> None:
        while (command := self._work.get()) is not None:
            if isinstance(command, LoadModel):
                self._load(command)
            elif isinstance(command, Generate):
                if self._is_cancelled(command.job_id):
                    self._send(GenerationFinished(command.job_id, "", FINISH_CANCELLED))
                else:
                    self._generate(command)

    def _is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id <= self._cancelled_up_to

    def _send(self, event: EngineEvent) -> None:
        """Deliver an event, with the API key scrubbed from anything people read."""
        if self._closed or self._on_event is None:
            return
        if isinstance(event, ModelFailed):
            event.message, event.log_tail = (
                self._redact(event.message),
                self._redact(event.log_tail),
            )
        elif isinstance(event, GenerationFailed):
            event.message = self._redact(event.message)
        self._on_event(event)

    def _redact(self, text: str) -> str:
        key = self.endpoint.api_key()
        return text.replace(key, "[API key]") if key and text else text

    # --- checking the server ------------------------------------------------------------

    def _load(self, request: LoadModel) -> bool:
        """Check the server and model; reports ModelReady or ModelFailed, never raises."""
        where = request.path or self.endpoint.label
        self._send(ModelLoading(where, 0.0))
        started = time.monotonic()
        try:
            self.info = self._check_server()
            self.slots.check(self.kind, self.model, self.props, self._post_slots)
        except Exception as exc:  # RemoteError; anything else is a bug, but must not kill us
            self.info = None
            self._load_error = (
                str(exc)
                if isinstance(exc, RemoteError)
                else f"Checking {self.endpoint.base_url} failed: {exc!r}"
            )
            self._send(ModelFailed(where, self._load_error))
            return False
        self._send(ModelReady(self.info, time.monotonic() - started))
        return True

    def _post_slots(self, url: str, json: dict[str, Any]) -> httpx.Response:
        return self._client.post(url, json=json, headers=self._headers())

    # --- generating ---------------------------------------------------------------------

    def _generate(self, job: Generate) -> None:
        """Run one job to the end; reports events, never raises."""
        active = _Active(job.job_id)
        with self._lock:
            self._active = active
        if self._is_cancelled(job.job_id):
            active.abort()
        progress = _Progress()
        try:
            self._generate_job(job, active, progress)
        except RemoteError as exc:
            self._fail(job, active, progress, str(exc))
        except Exception as exc:  # the engine must survive whatever one job does
            self._fail(job, active, progress, f"Generation failed: {exc!r}")
        finally:
            with self._lock:
                self._active = None

    def _fail(self, job: Generate, active: _Active, progress: _Progress, why: str) -> None:
        thought = progress.reasoning.strip()
        if active.aborted:  # the failure is the cut we made ourselves
            self._send(
                GenerationFinished(
                    job.job_id, progress.text, FINISH_CANCELLED, progress.pieces, reasoning=thought
                )
            )
        else:
            self._send(GenerationFailed(job.job_id, why, progress.text, reasoning=thought))

    def _generate_job(self, job: Generate, active: _Active, progress: _Progress) -> None:
        """Answer ``job``; a prompt the server finds too long is trimmed and sent once more.

        The server's window can change under us (llama.cpp's server restarted
        with a smaller ``-c``) or never have been reported (llama-cpp-python):
        on a context error the window is learnt again (from the error, else
        from the server) and the history fitted into it, once.
        """
        if self.info is None and not self._load(LoadModel(self.endpoint.label)):
            raise RemoteError(self._load_error)
        if active.aborted:
            raise RemoteError("The answer was cancelled.")  # never shown: the job ends cancelled
        sampling = Sampling.from_dict(job.sampling)
        shrink = 0
        for attempt in (1, 2):
            try:
                self._attempt(job, active, progress, sampling, shrink)
                return
            except _TooLong as exc:
                if attempt == 2 or progress.pieces or active.aborted:
                    raise RemoteError(
                        too_long_message(self.endpoint, self.n_ctx, exc, attempt == 2)
                    ) from None
                relearnt = self._relearn_window(exc, sampling)
                if relearnt is None:
                    raise RemoteError(
                        too_long_message(self.endpoint, self.n_ctx, exc, False)
                    ) from None
                shrink = relearnt

    def _window_for(self, sampling: Sampling) -> int:
        return min(self.n_ctx, sampling.n_ctx) if self.n_ctx else sampling.n_ctx

    def _attempt(
        self, job: Generate, active: _Active, progress: _Progress, sampling: Sampling, shrink: int
    ) -> None:
        """Fit the history into the window, stream the answer, report it."""
        n_ctx = self._window_for(sampling)
        builder = PromptBuilder(
            PromptFormat(chat_template=COUNTING_TEMPLATE), self._counter_for_job()
        )
        # Served models are taken to have a chat template: chat mode unless forced.
        margin = CHAT_MARGIN if job.persona.mode != TRANSCRIPT else 0
        budget = prompt_budget(n_ctx, sampling.max_tokens, margin) - shrink
        prefill = job.prefill
        if prefill and job.persona.mode != TRANSCRIPT and not can_prefill(self.kind):
            raise RemoteError(refusal(self.kind, self.endpoint.label))
        try:
            built = builder.build(job.persona, job.history, budget, prefill=prefill)
        except PromptTooLong as exc:
            if n_ctx == self.n_ctx:  # a bigger n_ctx for the chat would not help
                raise RemoteError(f"{exc} The server's window is {n_ctx} tokens.") from None
            raise RemoteError(str(exc)) from None
        except TemplateError as exc:  # only our own counting template: a bug
            raise RemoteError(f"Could not count the prompt's tokens: {exc}") from None
        prompt_tokens = len(built.tokens)
        # Never ask for more than the window holds.
        space = answer_room(n_ctx, prompt_tokens, sampling.max_tokens, margin + shrink)
        limit = space.limit
        progress.char_cap = min(ANSWER_CHAR_CAP, max(limit, 1) * CHARS_PER_TOKEN)
        progress.piece_cap = 2 * max(limit, 1) + 16
        progress.byte_cap = max(limit, 1) * STREAM_BYTES_PER_TOKEN + 1024 * 1024
        stops = built.stops if self.kind != "openai" else built.stops[:4]
        payload: dict[str, Any] = {
            **sampling_fields(sampling, self.kind),
            "max_tokens": limit,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if built.mode == CHAT:
            payload.update(reasoning_fields(sampling, self.kind))
            if "reasoning_budget_tokens" not in payload and self.kind in BUDGET_KINDS:
                progress.budget = sampling.reasoning_budget  # ours to enforce
        if self.model:
            payload["model"] = self.model
        if stops:
            payload["stop"] = stops
        payload.update(self.slots.payload_fields())
        if built.mode == CHAT:
            url = f"{self.base}/chat/completions"
            payload["messages"] = self._messages(
                job.persona.system, job.persona.examples, built.turns
            )
            url, shown, source = chat_request(self, url, payload, prefill)  # continue: prefill.py
        else:
            url = f"{self.base}/completions"
            payload["prompt"] = shown = built.text
            source = LOCAL
        seed = sampling.seed if sampling.seed >= 0 else None
        info = prompt_info(built, len(job.history), seed, sampling, source)
        begun = GenerationStarted(job.job_id, prompt_tokens, n_ctx, built.start, built.mode)
        self._send(dataclasses.replace(begun, prompt_text=shown, prompt_info=info))

        started = time.monotonic()
        # The chat's cache from the server's slot file, if the slot may hold another chat.
        restored = self.slots.restore(self._post_slots, job.chat_id)
        try:
            result = self._stream(url, payload, job, active, built, progress)
        except _Refused as exc:
            opening = built.mode == CHAT and built.turns and built.turns[0].role == "assistant"
            if isinstance(exc, _TooLong) or not opening or exc.status in (401, 403, 404, 503):
                raise
            # A template that wants the user first: the greeting goes into the system text.
            persona, turns = fold_opening(job.persona, built.turns)
            payload["messages"] = self._messages(persona.system, persona.examples, turns)
            result = self._stream(url, payload, job, active, built, progress)
        except _StreamCut:
            if progress.pieces or active.aborted or self.window_reported:
                raise
            self._why_no_answer(url, payload)  # raises _TooLong when that was the reason
            raise
        if progress.over_budget and not active.aborted:
            result = self._answer_after_thinking(url, payload, job, active, built, progress)
        ended = time.monotonic()
        first = progress.first_at or ended
        finish, usage = result
        count = int(usage.get("completion_tokens") or progress.pieces)
        used = int(usage.get("prompt_tokens") or prompt_tokens)
        # Stopped well before the max_tokens asked for: the server's window is full. Without
        # usage, streamed pieces are counted, which can be a few short of the tokens.
        if usage.get("completion_tokens"):
            short = count < limit
        else:
            short = not self.window_reported and count + max(4, limit // 16) < limit
        reason = finish_reason(
            space,
            at_limit=finish == FINISH_LENGTH,
            cancelled=active.aborted,
            capped=progress.capped,
            window_full=short,
        )
        if reason == FINISH_CONTEXT and short and used + count < n_ctx:
            self._set_window(used + count)  # a server that never said its window
        answer = clean_reply(progress.text, job.persona, built.mode, bool(built.prefill))
        self._send(
            GenerationFinished(
                job_id=job.job_id,
                text=answer,
                reason=reason,
                completion_tokens=count,
                seconds=ended - first,
                prompt_tokens=used,
                n_ctx=n_ctx,
                stats={
                    "ttft": first - started,
                    "mode": built.mode,
                    "start": built.start,
                    "endpoint": self.endpoint.name,
                    "model": self.model,
                    **({"seed": sampling.seed} if sampling.seed >= 0 else {}),
                    **thinking_stats(progress, usage, ended),
                    **self.slots.stats(usage, restored),
                },
                reasoning=progress.reasoning.strip(),
            )
        )
        if not active.aborted:  # while the user reads: the slot holds this chat now
            self.slots.save(self._post_slots, job.chat_id, used + count)

    def _answer_after_thinking(
        self,
        url: str,
        payload: dict[str, Any],
        job: Generate,
        active: _Active,
        built: BuiltPrompt,
        progress: _Progress,
    ) -> tuple[str | None, dict[str, Any]]:
        """The thinking ran past its budget: close it and have the model answer (see
        :func:`budget_request`); the thinking so far is kept beside the answer."""
        again = budget_request(payload, progress, self.kind)
        progress.budget = -1
        progress.over_budget = False
        reply = ReplyFilter(built.stops, built.mode, INLINE)
        reply.splitter.thought = True  # stray thinking markup is never part of the answer
        return self._stream(url, again, job, active, built, progress, reply)

    def _messages(
        self, system: str, examples: list[Turn], history: list[Turn]
    ) -> list[dict[str, str]]:
        """The chat messages, with earlier answers' thinking where this server takes it."""
        return chat_messages(system, examples, history, HISTORY_REASONING.get(self.kind, ""))

    def _stream(
        self,
        url: str,
        payload: dict[str, Any],
        job: Generate,
        active: _Active,
        built: BuiltPrompt,
        progress: _Progress,
        reply: ReplyFilter | None = None,
    ) -> tuple[str | None, dict[str, Any]]:
        """Post ``payload`` and stream the answer; returns (finish_reason, usage).

        In chat mode, ``<think>`` at the start of the content is thinking too
        (a server that does not split it); a completion prompt is ours, and
        its answer plain text.
        """
        if reply is None:
            fmt = INLINE if built.mode == CHAT else PLAIN
            reply = ReplyFilter(built.stops, built.mode, fmt, continuing=bool(built.prefill))
        return stream_answer(
            self._stream_client,
            url,
            payload,
            headers=self._headers(streaming=True),
            active=active,
            progress=progress,
            reply=reply,
            on_text=lambda text, thinking: self._send(TokenText(job.job_id, text, thinking)),
            endpoint=self.endpoint,
            model=self.model,
        )

    # --- learning the window again ------------------------------------------------------

    def _why_no_answer(self, url: str, payload: dict[str, Any]) -> None:
        """Ask again without streaming, for one token, to read why a stream ended empty.

        llama-cpp-python's server starts the stream before it checks the
        prompt, then closes it without a word; asked without streaming, it
        answers the check's error (``Requested tokens (532) exceed context
        window of 512``) with a status. Raises :class:`_TooLong` if that is it.
        """
        probe = {k: v for k, v in payload.items() if k != "stream_options"}
        probe.update(stream=False, max_tokens=1)
        try:
            response = self._stream_client.post(url, json=probe, headers=self._headers())
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            body = response.text[:65536]
            message = status_message(
                self.endpoint, self.model, response.status_code, body, "answer"
            )
            detail = _error_text(_json_or_none(body) or body)
            if _sounds_too_long(detail):
                raise _TooLong(message, response.status_code, body)


# --- helpers -------------------------------------------------------------------------
