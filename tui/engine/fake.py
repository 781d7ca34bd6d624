"""A fake engine for UI tests and demos: same interface, canned answers.

It streams the words of a scripted answer (by default an echo of the user's
message) from a thread, honours cancellation and reports the same events as
the real engine, so UI logic can be tested quickly without a model. A script
that returns ``(thinking, answer)`` plays a reasoning model: the thinking's
words stream first, as thinking, then the answer's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tui.core.engine_protocol import (
    CleanEvents,
    Engine,
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
from tui.core.models import display_name
from tui.core.reasoning import INLINE
from tui.core.turn_policy import ReplyFilter


def echo_answer(job: Generate) -> str:
    return f"You said: {job.history[-1].content}"


Script = Callable[[Generate], "str | tuple[str, str]"]
"""An answer, or (thinking, answer) for a reasoning model."""


def fake_prompt(job: Generate) -> str:
    """A ChatML-like rendering of the job, for the prompt view's tests."""
    turns = [("system", job.persona.system)] if job.persona.system else []
    turns += [(t.role, t.content) for t in job.history]
    text = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)
    return f"{text}<|im_start|>assistant\n{job.prefill}"


class FakeEngine(Engine):
    """Streams ``answer(job)`` word by word with ``delay`` seconds between words.

    With ``thought_gate``, a reasoning answer waits after its thinking until the
    gate is set: a test can look at the screen while the model "thinks".
    """

    def __init__(
        self,
        answer: Script = echo_answer,
        delay: float = 0.0,
        load_delay: float = 0.0,
        load_gate: threading.Event | None = None,
        thought_gate: threading.Event | None = None,
    ):
        self.answer = answer
        self.thought_gate = thought_gate
        self.delay = delay
        self.load_delay = load_delay
        self.load_gate = load_gate  # if given, loading waits until it is set
        self.load_was_cancelled = False
        self.loaded: str | None = None  # like the real engine: a new load drops the old model
        self._cancel_pending = False  # the next (or running) load is cancelled
        self._load_error = ""
        self.jobs: list[Generate] = []
        self.loads: list[LoadModel] = []
        self._cancelled: set[int] = set()
        self._on_event: EventCallback | None = None
        self._lock = threading.Lock()  # one job at a time, like the real model
        self._loaded = threading.Event()  # jobs wait for the model, like the real engine
        self._load_lock = threading.Lock()  # one load at a time, in order

    def start(self, on_event: EventCallback) -> None:
        self._on_event = CleanEvents(on_event)  # what it reports is data, made safe

    def load(self, request: LoadModel) -> None:
        self.loads.append(request)
        self._loaded.clear()
        threading.Thread(target=self._load, args=(request,), daemon=True).start()

    def _load(self, request: LoadModel) -> None:
        assert self._on_event is not None
        with self._load_lock:
            self.loaded = None
            self._on_event(ModelLoading(request.path, 0.0))
            time.sleep(self.load_delay)
            if self.load_gate is not None and not self._cancel_pending:
                self._on_event(ModelLoading(request.path, 0.5))
                self.load_gate.wait()
            if self._cancel_pending:
                self._cancel_pending = False
                self._load_error = "Loading the model was cancelled."
                self._on_event(ModelFailed(request.path, self._load_error))
                self._loaded.set()  # waiting jobs go on, and find no model
                return
            self.loaded, self._load_error = request.path, ""
            name = display_name(request.path)  # as the real engine names it
            info = ModelInfo(request.path, name, request.n_ctx, request.n_ctx, True)
            self._on_event(ModelReady(info, self.load_delay))
            self._loaded.set()

    def generate(self, job: Generate) -> None:
        self.jobs.append(job)
        threading.Thread(target=self._generate, args=(job,), daemon=True).start()

    def _generate(self, job: Generate) -> None:
        assert self._on_event is not None
        if self.loads:
            self._loaded.wait()
            if self.loaded is None:
                reason = f": {self._load_error}" if self._load_error else "."
                self._on_event(GenerationFailed(job.job_id, f"No model is loaded{reason}"))
                return
        with self._lock:
            n_ctx = int(job.sampling.get("n_ctx", 4096))
            prompt = fake_prompt(job)
            info = {
                "tokens": 10,
                "special": ["<|im_start|>", "<|im_end|>"],
                "seed": job.sampling.get("seed", 42),
                "sampling": dict(job.sampling),
                "dropped": 0,
                "source": "fake",
                "prefill": len(job.prefill),
            }
            self._on_event(GenerationStarted(job.job_id, 10, n_ctx, 0, "chat", 0, prompt, info))
            script = self.answer(job)
            if isinstance(script, tuple):  # (thinking, answer): a reasoning model
                self._reasoned(job, n_ctx, *script)
                return
            words = script.split(" ")
            reason, started = "stop", time.monotonic()
            # An answer that starts with <think>…</think> streams that part as thinking.
            reply = ReplyFilter([], "chat", INLINE)
            for index, word in enumerate(words):
                if job.job_id in self._cancelled:
                    reason = "cancelled"
                    break
                piece = word if index == 0 else " " + word
                for thinking, text in reply.feed(piece):
                    self._on_event(TokenText(job.job_id, text, thinking))
                time.sleep(self.delay)
            for thinking, text in reply.finish() if reason != "cancelled" else []:
                self._on_event(TokenText(job.job_id, text, thinking))
            seconds = time.monotonic() - started
            self._on_event(
                GenerationFinished(
                    job.job_id,
                    reply.text,
                    reason,
                    len(words),
                    seconds,
                    10,
                    n_ctx,
                    reasoning=reply.reasoning.strip(),
                )
            )

    def _reasoned(self, job: Generate, n_ctx: int, thought: str, answer: str) -> None:
        """Stream ``thought`` as thinking (then wait for ``thought_gate``), then ``answer``."""
        assert self._on_event is not None
        started = time.monotonic()
        reasoning, count, reason = self._stream(job.job_id, thought, True)
        stats: dict[str, float | int] = {}
        if thought:
            stats = {"thinking_tokens": count, "thinking_seconds": time.monotonic() - started}
            if self.thought_gate is not None and reason == "stop":
                self.thought_gate.wait()
        text, answered = "", 0
        if reason == "stop":
            text, answered, reason = self._stream(job.job_id, answer, False)
        self._on_event(
            GenerationFinished(
                job.job_id,
                text,
                reason,
                count + answered,
                time.monotonic() - started,
                10,
                n_ctx,
                stats,
                reasoning=reasoning,
            )
        )

    def _stream(self, job_id: int, script: str, thinking: bool) -> tuple[str, int, str]:
        """Send ``script`` word by word; (the text sent, words sent, "stop" or "cancelled")."""
        assert self._on_event is not None
        if not script:
            return "", 0, "stop"
        text, count = "", 0
        for index, word in enumerate(script.split(" ")):
            if job_id in self._cancelled:
                return text, count, "cancelled"
            piece = word if index == 0 else " " + word
            text += piece
            count += 1
            self._on_event(TokenText(job_id, piece, thinking))
            time.sleep(self.delay)
        return text, count, "stop"

    def cancel(self, job_id: int) -> None:
        self._cancelled.add(job_id)

    def cancel_load(self) -> None:
        self.load_was_cancelled = True
        self._cancel_pending = True
        if self.load_gate is not None:
            self.load_gate.set()

    def close(self) -> None:
        pass
