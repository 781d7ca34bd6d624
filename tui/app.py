"""The Textual application: a thin layer of widgets over the core.

Everything that matters (storage, personas, prompts, the model) lives in
plain modules; this file wires them to the screen. Engine events arrive on
a background thread and are re-posted as Textual messages, so all state
changes happen on the UI thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, OptionList

from tui import store as st
from tui.engine.protocol import (
    Engine,
    EngineEvent,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelFailed,
    ModelLoading,
    ModelReady,
    TokenText,
)
from tui.models import display_name
from tui.personas import PersonaLibrary
from tui.runner import Busy, ChatRunner
from tui.screens.new_chat import NewChatScreen
from tui.widgets.chat_list import ChatList
from tui.widgets.chat_view import ChatView
from tui.widgets.prompt_input import PromptInput
from tui.widgets.status_line import StatusLine


@dataclass
class EngineMessage(Message):
    """An engine event, delivered on the UI thread."""

    event: EngineEvent


class LlamaTUI(App[None]):
    TITLE = "llama-tui"
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #chat-pane { width: 1fr; }
    """

    BINDINGS = [
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("escape", "stop", "Stop"),
        Binding("alt+up,ctrl+pageup", "previous_chat", "Prev chat", show=False),
        Binding("alt+down,ctrl+pagedown", "next_chat", "Next chat", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        store: st.Store,
        engine: Engine,
        personas: PersonaLibrary,
        model_path: Path | None,
        default_persona: str = "assistant",
        model_problem: str = "",
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        super().__init__()
        self.store = store
        self.engine = engine
        self.personas = personas
        self.model_path = model_path
        self.default_persona = default_persona
        self.model_problem = model_problem
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.runner = ChatRunner(store, engine, personas, str(model_path or ""))
        self.conversation_id: int | None = None
        self.model_ready = False

    # --- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ChatList(id="chats")
            with Vertical(id="chat-pane"):
                yield ChatView(id="chat")
                yield StatusLine(id="status")
                yield PromptInput(id="prompt")
        yield Footer()

    async def on_mount(self) -> None:
        self.store.recover_interrupted()
        self.engine.start(lambda event: self.post_message(EngineMessage(event)))
        status = self.query_one(StatusLine)
        if self.model_path is None:
            status.state = "error: no model"
            self.notify(self.model_problem, title="No model", severity="error", timeout=30)
        else:
            status.model = display_name(self.model_path)
            status.state = "loading model…"
            persona = self.personas.get(self.default_persona)
            self.engine.load(
                LoadModel(
                    str(self.model_path),
                    n_ctx=persona.sampling_defaults().n_ctx,
                    n_threads=self.n_threads,
                    n_gpu_layers=self.n_gpu_layers,
                )
            )
        for problem in self.personas.problems:
            self.notify(str(problem), title="Persona file", severity="warning", timeout=15)
        conversations = self.store.list_conversations()
        if conversations:
            await self.open_conversation(conversations[0].id)
        else:
            self.refresh_chat_list()
            await self.query_one(ChatView).show(0, [], self.personas.get(None).ai_name)
        self.query_one(PromptInput).focus()
        self._install_signal_handlers()

    def _install_signal_handlers(self) -> None:
        """SIGHUP (the SSH connection dropped) and SIGTERM: save, then exit cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_hangup)

    def _on_hangup(self) -> None:
        self.runner.flush_all(st.INTERRUPTED)
        self.exit()

    # --- chats ------------------------------------------------------------------------

    def refresh_chat_list(self) -> None:
        self.query_one(ChatList).show(self.store.list_conversations(), self.conversation_id)

    async def open_conversation(self, conversation_id: int) -> None:
        conversation = self.store.get_conversation(conversation_id)
        self.conversation_id = conversation_id
        persona = self.runner.persona_of(conversation)
        messages = self.store.messages(conversation_id)
        await self.query_one(ChatView).show(
            conversation_id, messages, persona.ai_name, conversation.context_start_id
        )
        status = self.query_one(StatusLine)
        status.persona = persona.name
        last = next((m for m in reversed(messages) if m.meta.get("n_ctx")), None)
        if last:
            status.used = last.meta.get("prompt_tokens", 0) + last.meta.get("completion_tokens", 0)
            status.n_ctx = last.meta["n_ctx"]
        else:
            status.used, status.n_ctx = 0, 0
        self.refresh_chat_list()
        # Keep the partial answer of a running job streaming into view.
        job = self.runner.job_for(conversation_id)
        if job is not None:
            box = self.query_one(ChatView).box(job.message_id)
            if box is not None:
                await box.append(job.text[len(box.message.content) :])

    def action_new_chat(self) -> None:
        def create(persona_id: str | None) -> None:
            if persona_id:
                conversation = self.runner.new_conversation(persona_id)
                self.run_worker(self.open_conversation(conversation.id), exclusive=True)
                self.query_one(PromptInput).focus()

        self.push_screen(NewChatScreen(self.personas.sorted(), self.default_persona), create)

    async def action_previous_chat(self) -> None:
        await self._step_chat(-1)

    async def action_next_chat(self) -> None:
        await self._step_chat(1)

    async def _step_chat(self, step: int) -> None:
        conversations = self.store.list_conversations()
        ids = [c.id for c in conversations]
        if not ids:
            return
        index = ids.index(self.conversation_id) if self.conversation_id in ids else -step
        await self.open_conversation(ids[(index + step) % len(ids)])

    @on(OptionList.OptionSelected, "#chats")
    async def chat_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and int(event.option.id) != self.conversation_id:
            await self.open_conversation(int(event.option.id))
        self.query_one(PromptInput).focus()

    # --- sending and stopping ---------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def send(self, event: PromptInput.Submitted) -> None:
        prompt = self.query_one(PromptInput)
        if self.model_path is None:
            self.notify(self.model_problem, title="No model", severity="error")
            return
        if self.conversation_id is None:
            self.conversation_id = self.runner.new_conversation(self.default_persona).id
            await self.open_conversation(self.conversation_id)
        try:
            user, answer, _job = self.runner.send(self.conversation_id, event.text)
        except Busy as exc:
            self.notify(str(exc), severity="warning")
            return
        prompt.clear()
        view = self.query_one(ChatView)
        await view.add(user)
        await view.add(answer)
        if not self.model_ready:
            self.notify(
                "The model is still loading; your message will be answered when it is ready."
            )
        self.refresh_chat_list()

    def action_stop(self) -> None:
        if self.conversation_id is not None and self.runner.cancel(self.conversation_id):
            self.query_one(StatusLine).state = "stopping…"

    # --- engine events ------------------------------------------------------------------

    @on(EngineMessage)
    async def engine_event(self, message: EngineMessage) -> None:
        event = message.event
        status = self.query_one(StatusLine)
        job = self.runner.handle(event)
        view = self.query_one(ChatView)
        shown = job is not None and job.conversation_id == self.conversation_id
        if isinstance(event, TokenText):
            box = view.box(job.message_id) if shown and job else None
            if box is not None:
                await box.append(event.text)
                if view.max_scroll_y - view.scroll_y < 4:
                    view.scroll_end(animate=False)
        elif isinstance(event, GenerationStarted):
            status.state = "generating"
            if shown and job:
                status.used, status.n_ctx = event.prompt_tokens, event.n_ctx
                conversation = self.store.get_conversation(job.conversation_id)
                await view.set_memory_start(
                    self.store.messages(job.conversation_id), conversation.context_start_id
                )
        elif isinstance(event, GenerationFinished | GenerationFailed):
            if job is not None:
                final = self.store.get_message(job.message_id)
                box = view.box(job.message_id) if shown else None
                if box is not None:
                    await box.finish(final)
            if isinstance(event, GenerationFinished):
                status.speed = event.tokens_per_second
                if shown:
                    status.used = event.prompt_tokens + event.completion_tokens
                if event.reason == "context":
                    self.notify("The answer reached the context limit.", severity="warning")
            else:
                self.notify(event.message, title="Generation failed", severity="error")
            status.state = "generating" if self.runner.jobs else "ready"
            self.refresh_chat_list()
        elif isinstance(event, ModelLoading):
            self.model_ready = False
            status.state = "loading model…"
        elif isinstance(event, ModelReady):
            self.model_ready = True
            status.model = event.info.name
            status.state = "generating" if self.runner.jobs else "ready"
        elif isinstance(event, ModelFailed):
            self.model_ready = False
            status.state = "error: model"
            detail = f"{event.message}\n{event.log_tail}" if event.log_tail else event.message
            self.notify(detail, title="Model failed", severity="error", timeout=30)

    async def action_quit(self) -> None:
        self.runner.cancel()
        self.runner.flush_all(st.CANCELLED)
        self.exit()

    def on_unmount(self) -> None:
        self.runner.flush_all()
        self.engine.close()
