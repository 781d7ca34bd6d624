"""The chat service: chats and their turns, between the store and an engine, without any UI.

The TUI and the command line both use :class:`ChatService`: it creates,
deletes (with an undo copy), restores and exports chats, and runs their
turns. It guarantees the "nothing is lost" rules: the user's message is
committed before generation starts, the answer is saved as it streams (at
most every :data:`FLUSH_INTERVAL` seconds, so a crash loses at most that
much), and a cancelled or failed answer keeps the text it had.

All methods must be called from one thread (the UI thread); engine events
reach it through :meth:`handle`, which says what changed, so that a screen
never reads back what the service has just written.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tui.core import store as st
from tui.core.chat_branches import BUSY, BranchActions, Busy
from tui.core.chat_files import ChatFiles, ChatFormats
from tui.core.compare_variants import Variant
from tui.core.engine_protocol import (
    Engine,
    EngineEvent,
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    TokenText,
)
from tui.core.personas import Persona, PersonaLibrary
from tui.core.prompt import PersonaPrompt, Turn
from tui.core.prompt_record import record_prompt
from tui.core.sampling import Sampling
from tui.core.sanitize import clean_text

FLUSH_INTERVAL = 0.2  # seconds between saves of a streaming answer
CONTEXT_LIMIT_NOTE = "\n\n[reached the context limit]"
CAPPED_NOTE = "\n\n[cut off: the server sent more than the answer's token limit allows]"


def without_notes(text: str) -> str:
    """An answer's own text: the notes llama-tui added at its end taken off."""
    return text.removesuffix(CONTEXT_LIMIT_NOTE).removesuffix(CAPPED_NOTE)


@dataclass
class ActiveJob:
    """A generation in flight and the message it streams into."""

    job_id: int
    conversation_id: int
    message_id: int
    history_ids: list[int]
    answer: st.Message  # the answer as opened; what it became is in :class:`Change`
    context_start_id: int | None = None  # where the chat's remembered window starts
    text: str = ""
    reasoning: str = ""  # the thinking so far (a reasoning model's), saved like ``text``
    thinking_since: float | None = None  # monotonic time of the first thinking piece
    thinking_until: float | None = None  # ... and of the first answer piece after it
    flushed_at: float = field(default_factory=time.monotonic)
    dirty: bool = False
    started: GenerationStarted | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # kept, e.g. earlier versions
    prefill: str = ""  # the answer's start the model goes on from (continue, prefill)
    gone: bool = False  # its chat was deleted while it streamed: stopped, nothing to save


@dataclass
class Change:
    """What one engine event changed, as :meth:`ChatService.handle` applied it.

    The message that changed is ``job.message_id`` (:attr:`message_id`). A
    streamed piece grows either the answer (``text``) or the thinking
    (``thinking``), never both; ``message`` is set once the job ended, with
    both parts as saved.
    """

    job: ActiveJob
    text: str = ""  # the (cleaned) text it added to the answer
    message: st.Message | None = None  # the answer as saved, once the job ended
    thinking: str = ""  # the (cleaned) text it added to the thinking

    @property
    def message_id(self) -> int:
        """The answer this change is about."""
        return self.job.message_id


class ChatService(ChatFiles, BranchActions):
    """Chats and their turns; deleting and exporting chats are in :class:`ChatFiles`,
    the branch operations in :class:`BranchActions`."""

    def __init__(
        self,
        store: st.Store,
        engine: Engine,
        personas: PersonaLibrary,
        model: str,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        formats: ChatFormats | None = None,
    ):
        self.store = store
        self.engine = engine
        self.personas = personas
        self.formats = formats  # None: no export, and deleting keeps no undo copy
        self.deleted: list[dict[str, Any]] = []  # copies of the chats deleted, newest last
        self.model = model  # the model new chats get, and the one loaded last
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.jobs: dict[int, ActiveJob] = {}
        self.unloaded = False  # the last load failed or was cancelled: the engine has no model
        self._ids = itertools.count(int(time.time() * 1000) % 10**9)

    # --- settings ---------------------------------------------------------------------

    def persona_of(self, conversation: st.Conversation) -> Persona:
        return self.personas.get(conversation.persona)

    def sampling_of(self, conversation: st.Conversation) -> Sampling:
        """The chat's own values over its persona's defaults."""
        base = self.persona_of(conversation).sampling_defaults()
        return Sampling.from_dict(conversation.sampling, base)

    def new_conversation(self, persona_id: str) -> st.Conversation:
        """Create a chat; a persona's greeting becomes its first AI message."""
        persona = self.personas.get(persona_id)
        conversation = self.store.create_conversation(persona.id, self.model)
        if persona.greeting:
            self.store.add_message(conversation.id, "assistant", persona.fill(persona.greeting))
        return conversation

    def window(self, *conversations: st.Conversation) -> int:
        """The context window to load: the largest any persona or these chats wants.

        A chat's ``n_ctx`` is its prompt budget inside the loaded window, so
        one load serves chats of every size and switching between them never
        reloads the model (the engine caps the window at the model's training
        context and at memory).
        """
        wanted = [p.sampling_defaults().n_ctx for p in self.personas.personas.values()]
        wanted += [self.sampling_of(c).n_ctx for c in conversations]
        return max(wanted, default=Sampling().n_ctx)

    def load(self, model: str, n_ctx: int | None = None) -> None:
        """Ask the engine for ``model``; jobs sent afterwards wait for it."""
        self.model = model
        self.unloaded = False
        window = n_ctx if n_ctx is not None else self.window()
        self.engine.load(LoadModel(model, window, self.n_threads, self.n_gpu_layers))

    def model_of(self, conversation: st.Conversation) -> str:
        """The model that answers this chat: its own file if it still exists, else the current."""
        wanted = conversation.model
        return wanted if wanted and Path(wanted).is_file() else self.model

    def _model_for(self, conversation: st.Conversation, model: str | None = None) -> None:
        """Each chat keeps its model: load it first if another one (or none) is loaded.

        ``model``: another model for this one answer (compare), loaded in its turn.
        """
        wanted = model or self.model_of(conversation)
        if (wanted != self.model or self.unloaded) and Path(wanted).is_file():
            self.load(wanted, self.window(conversation))

    # --- turns --------------------------------------------------------------------------

    def job_for(self, conversation_id: int) -> ActiveJob | None:
        return next((j for j in self.jobs.values() if j.conversation_id == conversation_id), None)

    def send(self, conversation_id: int, text: str) -> tuple[st.Message, st.Message, int]:
        """Commit the user's message, open the answer, and queue the job.

        Returns (user message, answer message, job id). Raises :class:`Busy`
        if this chat is still answering.
        """
        if self.job_for(conversation_id):
            raise Busy(BUSY)
        text = clean_text(text).strip()
        user = self.store.add_message(conversation_id, "user", text)
        answer, job_id = self._answer(conversation_id)
        return user, answer, job_id

    def _answer(
        self,
        conversation_id: int,
        meta: dict[str, Any] | None = None,
        parent_id: int | None = st.AT_LEAF,
        prefill: str = "",
        variant: Variant | None = None,
    ) -> tuple[st.Message, int]:
        """Open an answer (committed; empty, or ``prefill``) and queue the job that fills it.

        The answer follows ``parent_id`` (default: the end of the branch on
        screen) and becomes the chat's leaf; the model sees that branch.
        """
        conversation = self.store.get_conversation(conversation_id)
        # First: the answer names the model that writes it.
        self._model_for(conversation, variant.model if variant else None)
        meta = {**(meta or {}), "writer": st.writer_id()}
        answer = self.store.add_message(
            conversation_id,
            "assistant",
            prefill,
            status=st.PARTIAL,
            model=self.model,
            meta=meta,
            parent_id=parent_id,
        )
        return answer, self._queue(conversation, answer, meta, prefill, variant)

    def _queue(
        self,
        conversation: st.Conversation,
        answer: st.Message,
        meta: dict[str, Any],
        prefill: str,
        variant: Variant | None = None,
    ) -> int:
        """Queue the job that writes ``answer`` (going on from ``prefill``); its id.

        ``variant``: another persona, model or sampling for this answer alone (compare).
        """
        self._model_for(conversation, variant.model if variant else None)
        persona = self.persona_of(conversation)
        sampling = self.sampling_of(conversation)
        if variant is not None:
            persona = self.personas.get(variant.persona) if variant.persona else persona
            base = persona.sampling_defaults() if variant.persona else sampling
            sampling = Sampling.from_dict({**conversation.sampling, **variant.sampling}, base)
        conversation_id = conversation.id
        history, ids = self.history(conversation, upto=answer.id)
        job_id = next(self._ids)
        start = conversation.context_start_id
        self.jobs[job_id] = ActiveJob(
            job_id, conversation_id, answer.id, ids, answer, start, text=prefill, meta=meta,
            prefill=prefill,
        )  # fmt: skip
        job = Generate(
            job_id=job_id,
            # Placeholders ({{time}}) take the chat's start time, as the seed's script
            # filled them once: the prompt then stays byte-identical and the cache holds.
            persona=PersonaPrompt.from_persona(persona, _started(conversation)),
            history=history,
            sampling=sampling.to_dict(),
            chat_id=conversation_id,
            prefill=prefill,
        )
        self.engine.generate(job)
        return job_id

    def history(self, conversation: st.Conversation, upto: int) -> tuple[list[Turn], list[int]]:
        """The turns the model may see, before message ``upto``, and their message ids.

        From the remembered window's start (``context_start_id``) on: the
        window only ever moves forward, and a chat of thousands of messages
        would otherwise be read and sent to the engine whole on every turn.
        Empty answers and error notes are left out; consecutive turns of the
        same role (after a failed answer) are merged, since many chat
        templates insist that roles alternate. An answer's thinking travels
        beside it (``Turn.reasoning``): the engine passes it the way the
        model's template or the server reads it, never inside the content.
        """
        turns: list[Turn] = []
        ids: list[int] = []
        since = conversation.context_start_id or 0
        for message in self.store.messages(conversation.id, since, before_id=upto):
            if message.role not in ("user", "assistant") or not message.content.strip():
                continue
            content = without_notes(message.content)
            reasoning = message.reasoning.strip() if message.role == "assistant" else ""
            if turns and turns[-1].role == message.role:
                before = turns[-1]
                thought = "\n\n".join(r for r in (before.reasoning, reasoning) if r)
                turns[-1] = Turn(message.role, before.content + "\n\n" + content, thought)
                continue
            turns.append(Turn(message.role, content, reasoning))
            ids.append(message.id)
        return turns, ids

    def cancel(self, conversation_id: int | None = None) -> bool:
        """Stop the answer of ``conversation_id`` (or every answer)."""
        found = False
        for job in list(self.jobs.values()):
            if conversation_id is None or job.conversation_id == conversation_id:
                self.engine.cancel(job.job_id)
                found = True
        return found

    # --- engine events ------------------------------------------------------------------

    def handle(self, event: EngineEvent) -> Change | None:
        """Apply an engine event to the store; says what changed (None: no job of ours).

        A store error propagates (the job stays, its text in memory for a retry).
        """
        job = self.jobs.get(getattr(event, "job_id", -1))
        if job is None:
            return None
        if isinstance(event, TokenText):
            change = self.add_text(event.job_id, event.text, event.thinking)
            self.save_due(job)
            return change
        change = Change(job)
        if isinstance(event, GenerationStarted):
            job.started = event
            record_prompt(self.store, job.message_id, job.history_ids, event)
            if 0 <= event.start < len(job.history_ids):
                start = job.history_ids[event.start]
                if self.store.update_conversation(job.conversation_id, context_start_id=start):
                    job.context_start_id = start
                else:
                    self._gone(job)
        elif isinstance(event, GenerationFinished):
            change.message = self._finish(job, event)
        elif isinstance(event, GenerationFailed):
            text = job.text or clean_text(event.text)
            meta = {**job.meta, "error": event.message, **_thinking_meta(job, {})}
            del self.jobs[job.job_id]
            job.text = text
            job.reasoning = job.reasoning or clean_text(event.reasoning)
            change.message = self._save_end(job, st.ERROR, meta)
        return change

    def add_text(self, job_id: int, text: str, thinking: bool = False) -> Change | None:
        """Append streamed text to the answer (or, ``thinking``, to the thinking) of ``job_id``.

        In memory; :meth:`save_due` saves it.
        """
        job = self.jobs.get(job_id)
        if job is None:
            return None
        text = clean_text(text)
        if not text:
            return Change(job)
        job.dirty = True
        if thinking:
            if job.thinking_since is None:
                job.thinking_since = time.monotonic()
            job.reasoning += text
            return Change(job, thinking=text)
        if job.thinking_since is not None and job.thinking_until is None:
            job.thinking_until = time.monotonic()
        job.text += text
        return Change(job, text=text)

    def save_due(self, job: ActiveJob) -> None:
        """Save the streamed text if :data:`FLUSH_INTERVAL` passed since the last save."""
        if time.monotonic() - job.flushed_at >= FLUSH_INTERVAL:
            self.flush(job)

    def _gone(self, job: ActiveJob) -> None:
        """The chat of ``job`` was deleted while it streamed: stop the job, forget it."""
        job.gone = True
        self.jobs.pop(job.job_id, None)
        self.engine.cancel(job.job_id)

    def flush(self, job: ActiveJob) -> None:
        """Save the streamed text; on a write error the text stays in memory for a retry."""
        job.flushed_at = time.monotonic()
        if job.dirty:
            reasoning = job.reasoning or None  # a plain answer never writes the column
            if not self.store.update_message(job.message_id, job.text, reasoning=reasoning):
                self._gone(job)
            job.dirty = False

    def _finish(self, job: ActiveJob, event: GenerationFinished) -> st.Message | None:
        status = st.CANCELLED if event.reason == "cancelled" else st.COMPLETE
        text = job.text if event.reason == "cancelled" else job.prefill + clean_text(event.text)
        if event.reason != "cancelled" and event.reasoning:
            job.reasoning = clean_text(event.reasoning)
        if event.reason == "context":
            text += CONTEXT_LIMIT_NOTE
        elif event.reason == "capped":
            text += CAPPED_NOTE
        job.text = text
        meta: dict[str, Any] = {
            **job.meta,
            "finish_reason": event.reason,
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "n_ctx": event.n_ctx,
            "tokens_per_second": round(event.tokens_per_second, 2),
            **{k: v for k, v in event.stats.items() if k in ("ttft", "seed", "mode")},
            **_thinking_meta(job, event.stats),
        }
        del self.jobs[job.job_id]
        return self._save_end(job, status, meta)

    def _save_end(self, job: ActiveJob, status: str, meta: dict[str, Any]) -> st.Message | None:
        """Save the ended answer; returns it as saved (None: its chat was deleted meanwhile)."""
        reasoning = job.reasoning or None
        if not self.store.update_message(job.message_id, job.text, status, meta, reasoning):
            job.gone = True
            return None
        return dataclasses.replace(
            job.answer,
            content=job.text,
            reasoning=job.reasoning,
            status=status,
            meta=meta,
            updated_at=st.now(),
        )

    def flush_all(self, status: str | None = None) -> list[str]:
        """Save every streaming answer now (on quit, SIGHUP, SIGTERM); returns errors."""
        errors = []
        for job in list(self.jobs.values()):
            try:
                reasoning = job.reasoning or None
                self.store.update_message(job.message_id, job.text, status, reasoning=reasoning)
                job.dirty = False
            except st.StoreError as exc:
                errors.append(str(exc))
        return errors


def _thinking_meta(job: ActiveJob, stats: dict[str, Any]) -> dict[str, Any]:
    """``thinking_tokens`` and ``thinking_seconds`` for an answer that thought.

    The engine's own figures where it has them; else the seconds between the
    first thinking piece and the first answer piece as they reached us.
    """
    meta: dict[str, Any] = {}
    tokens = stats.get("thinking_tokens")
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
        meta["thinking_tokens"] = tokens
    seconds = stats.get("thinking_seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        meta["thinking_seconds"] = round(float(seconds), 2)
    elif job.thinking_since is not None:
        until = job.thinking_until if job.thinking_until is not None else time.monotonic()
        meta["thinking_seconds"] = round(until - job.thinking_since, 2)
    if not job.reasoning and "thinking_tokens" not in meta:
        meta.pop("thinking_seconds", None)
    return meta


def _started(conversation: st.Conversation) -> datetime:
    """When the chat began, in local time."""
    try:
        return datetime.fromisoformat(conversation.created_at).astimezone()
    except ValueError:
        return datetime.now()
