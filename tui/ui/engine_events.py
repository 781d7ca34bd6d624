"""How the app follows its engine: events arrive on a background thread and are re-posted
as Textual messages, so every state change happens on the UI thread.

Streamed text takes a short way: the engine's tokens are merged by a
:class:`~tui.engine.batching.TokenBatcher`, which posts one :class:`TokensReady`;
the paint (at most every :data:`PAINT_INTERVAL`) takes the merged text, hands it to
the chat service and shows what the service says it added. Every other event goes
through :meth:`ChatService.handle <tui.core.chat_service.ChatService.handle>`,
whose answer (the job, and the saved message when a job ended) is what is shown:
nothing is read back from the database.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from time import thread_time

from textual import on
from textual.app import App
from textual.message import Message
from textual.timer import Timer

from tui.core import store as st
from tui.core.chat_service import ActiveJob, Change, ChatService
from tui.core.endpoints import Endpoint
from tui.core.engine_protocol import (
    Engine,
    EngineEvent,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    ModelFailed,
    ModelLoading,
    ModelReady,
    TokenText,
)
from tui.core.models import display_name
from tui.core.personas import PersonaLibrary
from tui.engine.batching import TokenBatcher, TokensReady
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.status_line import StatusLine

PAINT_INTERVAL = 1 / 30  # seconds between repaints of a streaming answer
PAINT_CPU_SHARE = 1 / 6  # of the UI thread's time, at most, painting a streaming answer


def paint_gap(wall: float, cpu: float) -> float:
    """Seconds from one paint of a streaming answer to the next, after one that took
    ``wall`` seconds (its frame included) and ``cpu`` seconds of the UI thread.

    At most :data:`PAINT_INTERVAL` apart; a paint that took long (a busy machine)
    waits as long again; one that used much CPU (a fast server's big batches of
    Markdown) waits until painting is :data:`PAINT_CPU_SHARE` of the thread's time.
    """
    return max(PAINT_INTERVAL, 2 * wall, cpu / PAINT_CPU_SHARE)


def _progress_bar(progress: float, width: int = 8) -> str:
    """`` ▰▰▰▱▱▱▱▱ 40% (Esc cancels)`` for the status line; nothing before any progress."""
    if progress <= 0:
        return ""
    filled = round(progress * width)
    return f" {'▰' * filled}{'▱' * (width - filled)} {progress:.0%} (Esc cancels)"


@dataclass
class EngineMessage(Message):
    """An engine event, delivered on the UI thread."""

    event: EngineEvent | TokensReady


class EngineEvents(App[None]):
    """The engine-event handling of :class:`~tui.ui.app.LlamaTUI` (a part of it)."""

    # Set up by LlamaTUI.__init__ (tui.ui.app); named here for the reader.
    store: st.Store
    engine: Engine
    service: ChatService
    personas: PersonaLibrary
    conversation_id: int | None
    batcher: TokenBatcher
    endpoint: Endpoint | None
    model_ready: bool
    show_archived: bool
    _hung_up: bool
    _last_error: str
    _painted_at: float
    _paint_cost: float
    _paint_cpu: float
    _paint_timer: Timer | None
    _loaded_model: str
    _switch: tuple[str, int | None, str, str] | None
    _cancelling_load: bool
    _stream_began: dict[int, float]  # job id -> when its first text was shown

    def report_error(self, text: str, title: str = "Error") -> None:
        """Show an error once (a failing disk would otherwise report every token)."""
        if text != self._last_error:
            self._last_error = text
            self.notify(text, title=title, severity="error", timeout=20)

    async def _tokens_ready(self, job_id: int) -> None:
        """Show streamed text at most :data:`PAINT_INTERVAL` apart (one layout per frame),
        and at most half the time busy painting: a paint that took long (a fast server's
        big batches, a busy machine) waits as long again before the next one, so typing
        and the engine keep their share of the CPU. A paint's own CPU time counts
        too: at most :data:`PAINT_CPU_SHARE` of the UI thread goes to painting, so a
        2,000 tokens/s server does not take a whole core to show (issue 17)."""
        gap = paint_gap(self._paint_cost, self._paint_cpu)
        wait = self._painted_at + gap - time.monotonic()
        if wait > 0:
            if self._paint_timer is None:
                self._paint_timer = self.set_timer(wait, lambda: self._paint(job_id))
            return
        await self._paint(job_id)

    async def _paint(self, job_id: int) -> None:
        """Hand the text streamed since the last paint to the service, and show what it added."""
        self._paint_timer = None
        self._painted_at = started = time.monotonic()
        cpu_started = thread_time()
        text, thinking = self.batcher.take(job_id)
        if thinking and not self._hung_up:  # thinking first: it comes before the answer
            await self._add_text(job_id, thinking, thinking=True)
        if text and not self._hung_up:
            await self._add_text(job_id, text)
        if (text or thinking) and not self._hung_up:
            self.call_after_refresh(self._paint_done, started, cpu_started)

    def _paint_done(self, started: float, cpu_started: float) -> None:
        """The frame of a paint is on its way: how long the paint took, frame included,
        and the UI thread's CPU time in that while."""
        self._paint_cost = time.monotonic() - started
        self._paint_cpu = thread_time() - cpu_started

    async def _add_text(self, job_id: int, text: str, thinking: bool = False) -> None:
        """Streamed text: to the service (which saves it in time), then to the screen.

        A reasoning model's thinking is saved beside the answer, never in it.
        """
        change = self.service.add_text(job_id, text, thinking)
        if change is None:
            return
        try:
            self.service.save_due(change.job)
        except st.StoreError as exc:  # the text stays in memory: the next save retries
            self.report_error(str(exc), "Could not save")
        if self.query_one_optional(StatusLine) is None:
            return  # quitting: the widgets are gone (the text is saved on the way out)
        if change.job.gone:
            await self._answer_gone(change.job.conversation_id)
        elif change.job.conversation_id == self.conversation_id:
            thinking_pieces, answer_pieces = self._live_counts(change.job)
            box = self.query_one(ChatView).box(change.job.message_id)
            if box is not None and change.thinking:
                await box.append_thinking(change.thinking, thinking_pieces or None)
            elif box is not None and change.text:
                await box.append(change.text)

    def _live_counts(self, job: ActiveJob) -> tuple[int, int]:
        """The status line while an answer streams: thinking or answering, tokens, speed.

        Tokens are the pieces streamed so far (one token each from llama.cpp and
        from the servers' streams); the engine's exact count replaces them at the end.
        """
        status = self.query_one(StatusLine)
        thinking, answer = self.batcher.counts(job.job_id)
        if not thinking and not answer:
            return 0, 0  # the job has just ended: its exact figures are on the way
        now = time.monotonic()
        began = self._stream_began.setdefault(job.job_id, now)
        status.state = "thinking" if job.reasoning and not job.text else "generating"
        status.thinking_tokens, status.answer_tokens = thinking, answer
        if now - began >= 0.5:  # else the first few tokens give a wild figure
            status.speed = (thinking + answer) / (now - began)
        return thinking, answer

    @on(EngineMessage)
    async def engine_event(self, message: EngineMessage) -> None:
        event = message.event
        if self._hung_up:
            return  # saved as interrupted: a late "cancelled" must not overwrite that
        if isinstance(event, TokensReady):
            await self._tokens_ready(event.job_id)
            return
        if isinstance(event, TokenText):  # not through a batcher (the app's own merges them)
            await self._add_text(event.job_id, event.text, event.thinking)
            return
        if isinstance(event, GenerationFinished | GenerationFailed):
            await self._paint(event.job_id)  # the last tokens first
        try:
            change = self.service.handle(event)
        except st.StoreError as exc:
            self.report_error(str(exc), "Could not save")
            job = self.service.jobs.get(getattr(event, "job_id", -1))
            change = Change(job) if job is not None else None
        status = self.query_one_optional(StatusLine)
        if status is None:
            return  # quitting: the widgets are gone (what the event carried is saved)
        if change is not None and change.job.gone:
            await self._answer_gone(change.job.conversation_id)
            return
        shown = change is not None and change.job.conversation_id == self.conversation_id
        if isinstance(event, GenerationStarted):
            gc.freeze()  # collections during the stream skip the heap so far (_tidy_memory)
            status.state = "generating"
            if shown and change is not None:
                status.used, status.n_ctx = event.prompt_tokens, event.n_ctx
                status.thinking_tokens = status.answer_tokens = 0
                status.speed = 0.0  # the last answer's: this one's comes as it streams
                await self.query_one(ChatView).set_memory_start(change.job.context_start_id)
        elif isinstance(event, GenerationFinished | GenerationFailed):
            await self._job_ended(event, change if shown else None, status)
        elif isinstance(event, ModelLoading):
            self.model_ready = False
            status.state = "loading model…" + _progress_bar(event.progress)
        elif isinstance(event, ModelReady):
            self.model_ready = True
            self._loaded_model, self._switch, self._cancelling_load = event.info.path, None, False
            self._show_sampling()  # a server's accepted settings are known now
            status.model = event.info.name
            status.state = "generating" if self.service.jobs else "ready"
        elif isinstance(event, ModelFailed):
            self._model_failed(event, status)

    async def _job_ended(
        self,
        event: GenerationFinished | GenerationFailed,
        shown: Change | None,
        status: StatusLine,
    ) -> None:
        """An answer ended: show it as saved (``shown``: it is in the open chat), and why."""
        if shown is not None and shown.message is not None:
            # After the frame that shows the last tokens: the final rendering of a
            # long answer takes a while, and the end of the answer must not wait for it.
            self.call_after_refresh(self.query_one(ChatView).update_message, shown.message)
        self._stream_began.pop(event.job_id, None)
        if isinstance(event, GenerationFinished):
            if shown is not None:
                status.speed = event.tokens_per_second
                status.used = event.prompt_tokens + event.completion_tokens
                thinking = event.stats.get("thinking_tokens", 0)
                thinking = thinking if isinstance(thinking, int) else 0
                if not thinking and event.reasoning.strip():  # an engine that does not count
                    thinking = status.thinking_tokens
                status.thinking_tokens = thinking
                status.answer_tokens = max(event.completion_tokens - thinking, 0)
            if event.reason == "context":
                self.notify("The answer reached the context limit.", severity="warning")
            elif event.reason == "capped":
                self.notify(
                    "The server sent more than the answer's token limit allows: "
                    "the text that came is kept, the rest was not read.",
                    severity="warning",
                )
        else:
            self.notify(event.message, title="Generation failed", severity="error")
        if self.service.jobs or self.model_ready:  # else it still says why there is no model
            status.state = "generating" if self.service.jobs else "ready"
        self.refresh_chat_list()
        self._schedule_tidy()

    def _model_failed(self, event: ModelFailed, status: StatusLine) -> None:
        """A load failed or was cancelled: the engine holds no model now; say so, or go back.

        Loading drops the model that was there, so after an F4 choice that did
        not load the previous model is loaded again and the chat keeps it.
        """
        self.model_ready = False
        cancelled, self._cancelling_load = self._cancelling_load, False
        previous, self._loaded_model = self._loaded_model, ""
        self.service.unloaded = True
        switch, self._switch = self._switch, None
        if switch is not None and switch[0] == event.path:
            _path, chat, chat_model, runner_model = switch
            self.service.model = runner_model
            if chat is not None:
                try:
                    self.store.update_conversation(chat, model=chat_model)
                except st.StoreError as exc:
                    self.report_error(str(exc), "Could not save")
        detail = f"{event.message}\n{event.log_tail}" if event.log_tail else event.message
        title = "Model load cancelled" if cancelled else "Model failed"
        if previous and previous != event.path and self.endpoint is None:
            chats = []
            if self.conversation_id is not None:
                chats.append(self.store.get_conversation(self.conversation_id))
            self.service.load(previous, self.service.window(*chats))  # ready again in a moment
            status.model = display_name(previous)
            status.state = "loading model…"
            detail += f"\nBack to {display_name(previous)}."
        else:
            current = self.service.model
            if self.conversation_id is not None:
                current = self.service.model_of(self.store.get_conversation(self.conversation_id))
            if current and self.endpoint is None:
                status.model = display_name(current)
            status.state = "load cancelled: a message loads it" if cancelled else "error: model"
        severity = "warning" if cancelled else "error"
        self.notify(detail, title=title, severity=severity, timeout=30)

    async def _answer_gone(self, conversation_id: int) -> None:
        """A chat was deleted while it answered (here, or by another process): carry on."""
        status = self.query_one(StatusLine)
        status.state = "generating" if self.service.jobs else "ready"
        if conversation_id == self.conversation_id:
            self.notify(
                "This chat was deleted while it answered (by another llama-tui or "
                "`llama-tui chats delete`): the answer was stopped.",
                severity="warning",
            )
            self.conversation_id = None
            remaining = self.store.list_conversations(1, self.show_archived)
            if remaining:
                await self.open_conversation(remaining[0].id)
            else:
                await self.query_one(ChatView).show(0, [], self.personas.get(None).ai_name)
        self.refresh_chat_list()
