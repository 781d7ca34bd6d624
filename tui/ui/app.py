"""The Textual application: a thin layer of widgets over the core.

Everything that matters (storage, personas, prompts, the model) lives in
plain modules; this file wires them to the screen. Engine events arrive on
a background thread and are re-posted as Textual messages, so all state
changes happen on the UI thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, OptionList

from tui.core import paths
from tui.core import store as st
from tui.core.chat_service import Busy, ChatRunner
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
from tui.core.personas import PersonaLibrary, save_persona
from tui.core.sampling import SPEC, Sampling
from tui.engine.batching import TokenBatcher, TokensReady
from tui.formats import chats as export
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.models import ModelPickerScreen
from tui.ui.screens.new_chat import NewChatScreen
from tui.ui.screens.personas import PersonasScreen
from tui.ui.screens.search import SearchScreen
from tui.ui.screens.text_prompt import TextPromptScreen
from tui.ui.terminal import STOPPING, TERMINAL_GONE
from tui.ui.terminal_input import TerminalDriver
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.keys_help import KeysHelp, find_keys_help
from tui.ui.widgets.prompt_input import PromptInput
from tui.ui.widgets.sampling_panel import SamplingPanel
from tui.ui.widgets.status_line import StatusLine

EXIT_DEADLINE = 1.5  # seconds from SIGHUP/SIGTERM to a forced exit (the engine killed)
PAINT_INTERVAL = 1 / 30  # seconds between repaints of a streaming answer
TIDY_DELAY = 1.0  # seconds of quiet before a full garbage collection (see _tidy_memory)
_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def _quote(message: st.Message, ai_name: str, width: int = 100) -> str:
    """Who wrote ``message`` and how it starts, on one line: what a dialog asks about."""
    text = " ".join(message.content.split())
    start = text if len(text) <= width else text[: width - 1] + "…"
    who = "You" if message.role == "user" else ai_name
    return f"{who}: “{start}”"


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
        Binding("ctrl+f", "search", "Search"),
        Binding("ctrl+r", "rename_chat", "Rename", show=False),
        Binding("alt+up,ctrl+pageup", "previous_chat", "Prev chat", show=False),
        Binding("alt+down,ctrl+pagedown", "next_chat", "Next chat", show=False),
        Binding("f2", "toggle_sampling", "Sampling"),
        Binding("f3", "personas", "Personas"),
        Binding("f4", "pick_model", "Model"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q,f10", "quit", "Quit", priority=True),
    ]
    SIDEBAR_LIMIT = 500  # older chats are one search away
    FIRST_SIDEBAR = 50  # listed for the first frame; the rest right after it

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
        personas_dir: Path | None = None,
        model_dirs: list[str] | None = None,
        endpoint: Endpoint | None = None,
        config_problems: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.config_problems = list(config_problems or [])  # shown once the screen is up
        self.personas_dir = personas_dir  # None: the user's config dir
        self.model_dirs = model_dirs or []
        self.store = store
        self.engine = engine
        self.personas = personas
        self.model_path = model_path
        self.default_persona = default_persona
        self.model_problem = model_problem
        self.endpoint = endpoint  # a remote server instead of a local model
        model_id = endpoint.label if endpoint else str(model_path or "")
        self.runner = ChatRunner(store, engine, personas, model_id, n_threads, n_gpu_layers)
        self.conversation_id: int | None = None
        self.model_ready = False
        self.show_archived = False
        self.editing_id: int | None = None  # user message being edited, if any
        self._fresh_chat: int | None = None  # made with Ctrl+N, dropped if left unused
        self._deleted: list[dict] = []  # exports of deleted chats, for undo
        self._code_block_index: dict[int, int] = {}
        self._last_error = ""
        self.batcher = TokenBatcher(lambda event: self.post_message(EngineMessage(event)))
        self._painted_at = 0.0  # when streamed text last reached the screen
        self._paint_timer: Timer | None = None
        self._tidy_timer: Timer | None = None
        self._engine_started = False
        # Set once the message box has the focus: keys typed before wait for it.
        self.input_ready = asyncio.Event()
        self._hung_up = False  # SIGHUP or SIGTERM came: saving and exiting
        self._old_handlers: dict[int, Any] = {}
        self._loaded_model = ""  # the model the engine has ready ("" while none is)
        # An F4 choice being loaded: (path, its chat, the chat's model before, runner's before).
        self._switch: tuple[str, int | None, str, str] | None = None
        self._cancelling_load = False

    def get_driver_class(self) -> type[Driver]:
        """In a real terminal: pastes whole, keys one at a time (tui.ui.terminal_input), and
        never hung by a terminal that is gone (tui.ui.terminal)."""
        driver = super().get_driver_class()
        return TerminalDriver if driver is LinuxDriver else driver

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """A notification, always as plain text, whatever the caller asks.

        Notifications carry text from outside (a server's error, a file's name,
        a chat's title); read as markup, ``[/x]`` crashed the app and
        ``[@click=...]`` ran an action of the sender's choosing.
        """
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_help_quit(self) -> None:
        """Ctrl+C: how to quit (Textual's own note is markup, which notify never takes)."""
        self.notify("Press Ctrl+Q (or F10) to quit.", title="Do you want to quit?")

    @property
    def has_backend(self) -> bool:
        """A local model file or a remote endpoint to talk to."""
        return self.model_path is not None or self.endpoint is not None

    # --- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ChatList(id="chats")
            with Vertical(id="chat-pane"):
                yield ChatView(id="chat")
                yield StatusLine(id="status")
                yield PromptInput(id="prompt", placeholder="ask something…")
            sampling = SamplingPanel(id="sampling")
            sampling.display = False
            yield sampling
        yield Footer()

    async def on_mount(self) -> None:
        self._install_signal_handlers()  # before the engine starts: it must not be left behind
        self.store.recover_interrupted()
        self.query_one(ChatView).live_text = self._live_text
        status = self.query_one(StatusLine)
        if not self.has_backend:
            status.state = "error: no model"
            self.notify(self.model_problem, title="No model", severity="error", timeout=30)
        else:
            status.model = self.endpoint.label if self.endpoint else display_name(self.runner.model)
            status.state = "connecting…" if self.endpoint else "loading model…"
        # The engine (a process that imports llama.cpp and loads the model) starts
        # after the first frame, so it does not compete with it for the CPU; the
        # chat list, short for that frame, is filled then too.
        self.call_after_refresh(self._start_engine)
        for problem in self.personas.problems:
            self.notify(str(problem), title="Persona file", severity="warning", timeout=15)
        for text in self.config_problems:
            self.notify(text, title="Config file", severity="warning", timeout=30, markup=False)
        newest = self.store.list_conversations(1)
        if newest:
            await self.open_conversation(newest[0].id)
        else:
            self.refresh_chat_list()
            await self.query_one(ChatView).show(0, [], self.personas.get(None).ai_name)
        self.query_one(PromptInput).focus()
        self.call_later(self.input_ready.set)  # after the focus (queued by focus())

    def use_theme(self, name: str, source: str) -> None:
        """The configured theme if Textual has one by that name; else a problem to show."""
        if name in self.available_themes:
            self.theme = name
            return
        known = ", ".join(sorted(self.available_themes))
        self.config_problems.append(
            f"{source}: theme = {json.dumps(name, ensure_ascii=False)} is not a theme; "
            f"using the default. Themes: {known}"
        )

    def _live_text(self, message_id: int) -> str | None:
        """The streamed text of the answer ``message_id``, if it is being generated."""
        job = next((j for j in self.runner.jobs.values() if j.message_id == message_id), None)
        return job.text if job is not None else None

    def _start_engine(self) -> None:
        if self._engine_started:
            return
        self._engine_started = True
        self.engine.start(self.batcher)
        if self.has_backend:
            chats = []
            model = self.runner.model
            if self.conversation_id is not None and self.endpoint is None:
                # The open chat's own model, not the default: its first answer needs no reload.
                conversation = self.store.get_conversation(self.conversation_id)
                model = self.runner.model_of(conversation)
                chats.append(conversation)
            self.runner.load(model, self.runner.window(*chats))
        self.refresh_chat_list()  # the first frame listed only the newest chats
        self._schedule_tidy()

    def _schedule_tidy(self) -> None:
        if self._tidy_timer is not None:
            self._tidy_timer.stop()
        self._tidy_timer = self.set_timer(TIDY_DELAY, self._tidy_memory)

    def _tidy_memory(self) -> None:
        """Collect garbage while nothing streams, then freeze what survives.

        Why: Python's full collection walks every live object (~100,000 here,
        35-85 ms on a 2-core VM). Left to run by itself it struck every second
        or two in the middle of a stream and stalled keystrokes. Frozen
        objects are skipped by later collections, which then take a few ms.
        An answer's start freezes the heap too (no collection: that is
        instant); unfreezing here lets the cycles frozen since then (a
        closed chat's widgets) be freed, so nothing leaks for long.
        """
        self._tidy_timer = None
        if self.runner.jobs:
            return  # streaming: the end of the answer schedules another
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _install_signal_handlers(self) -> None:
        """SIGHUP (the SSH connection dropped) and SIGTERM: save, then exit within seconds.

        Python-level handlers, not the event loop's: those run only when the
        loop gets control, and a UI thread blocked on a dead terminal never
        gave it back. The handler only schedules the save on the UI thread,
        and starts a deadline that ends the process (and the engine) even if
        something still blocks the orderly exit.
        """
        loop = asyncio.get_running_loop()

        def received(signum: int, _frame: object) -> None:
            STOPPING.set()  # output that would block is dropped from now on
            if signum == signal.SIGHUP:
                TERMINAL_GONE.set()  # nothing more is written to it
            if self._hung_up:
                return
            self._hung_up = True
            threading.Thread(target=self._exit_deadline, name="exit-deadline", daemon=True).start()
            loop.call_soon_threadsafe(self._on_hangup)

        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers
                self._old_handlers[sig] = signal.signal(sig, received)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_hangup(self) -> None:
        """Save every answer as interrupted, stop the engine, exit."""
        try:
            self.runner.flush_all(st.INTERRUPTED)
        finally:
            self.engine.close()  # the worker gets a moment, then is killed
            self.exit()

    def _exit_deadline(self) -> None:
        """The last resort after a hang-up: whatever still blocks, the process ends."""
        time.sleep(EXIT_DEADLINE)
        kill = getattr(self.engine, "kill", None)
        if kill is not None:
            kill()
        os._exit(0)  # what the chats hold was saved when the signal came

    # --- chats ------------------------------------------------------------------------

    def refresh_chat_list(self) -> None:
        limit = self.SIDEBAR_LIMIT if self._engine_started else self.FIRST_SIDEBAR
        chats = self.store.list_conversations(limit, archived=self.show_archived)
        chat_list = self.query_one(ChatList)
        chat_list.border_title = "Archived" if self.show_archived else "Chats"
        chat_list.show(chats, self.conversation_id)

    async def open_conversation(self, conversation_id: int) -> None:
        conversation = self.store.get_conversation(conversation_id)
        self._drop_unused_chat(keep=conversation_id)
        self.conversation_id = conversation_id
        persona = self.runner.persona_of(conversation)
        messages = self.store.messages(conversation_id)
        await self.query_one(ChatView).show(
            conversation_id, messages, persona.ai_name, conversation.context_start_id
        )
        damaged = sorted({p for m in (conversation, *messages) for p in m.problem.split(", ") if p})
        if damaged:
            self.notify(
                f"Chat {conversation_id} has stored values that cannot be used "
                f"({', '.join(damaged[:6])}): defaults stand in for them.",
                title="Damaged chat",
                severity="warning",
            )
        status = self.query_one(StatusLine)
        status.persona = persona.name
        if self.has_backend and self.endpoint is None:
            status.model = display_name(self.runner.model_of(conversation))
        last = next((m for m in reversed(messages) if m.meta.get("n_ctx")), None)
        if last:
            status.used = last.meta.get("prompt_tokens", 0) + last.meta.get("completion_tokens", 0)
            status.n_ctx = last.meta["n_ctx"]
        else:
            status.used, status.n_ctx = 0, 0
        # The speed of this chat's last answer; never another chat's.
        speed = last.meta.get("tokens_per_second") if last else None
        status.speed = float(speed) if isinstance(speed, int | float) else 0.0
        self.refresh_chat_list()
        self._show_sampling()
        self._schedule_tidy()

    def _drop_unused_chat(self, keep: int | None = None) -> None:
        """Delete the chat made with Ctrl+N if it is left without a message of yours.

        Why: every Ctrl+N left an empty "New chat" in the list, and they piled
        up. A chat you renamed or pinned is kept: you did something with it.
        """
        fresh = self._fresh_chat
        if fresh is None or fresh == keep:
            return
        self._fresh_chat = None
        try:
            conversation = self.store.get_conversation(fresh)
            renamed = conversation.title != "New chat"  # the store's name for no title
            if renamed or conversation.pinned or self.runner.job_for(fresh):
                return
            if any(m.role == "user" for m in self.store.messages(fresh)):
                return
            self.store.delete_conversation(fresh)
        except (KeyError, st.StoreError):
            return  # already deleted, or the database refuses: nothing to tidy
        if self.conversation_id == fresh:
            self.conversation_id = None

    def _start_new_chat(self, persona_id: str) -> None:
        """Make a chat with ``persona_id`` and open it; the last unused new chat goes."""
        conversation = self.runner.new_conversation(persona_id)
        self._drop_unused_chat(keep=conversation.id)
        self._fresh_chat = conversation.id
        self.run_worker(self.open_conversation(conversation.id), exclusive=True)

    def action_new_chat(self) -> None:
        if len(self.screen_stack) > 1:
            return  # not on top of another screen (e.g. the persona editor)

        def create(persona_id: str | None) -> None:
            if persona_id:
                self._start_new_chat(persona_id)
                self.query_one(PromptInput).focus()

        self.push_screen(NewChatScreen(self.personas.sorted(), self.default_persona), create)

    async def action_previous_chat(self) -> None:
        await self._step_chat(-1)

    async def action_next_chat(self) -> None:
        await self._step_chat(1)

    async def _step_chat(self, step: int) -> None:
        conversations = self.store.list_conversations(self.SIDEBAR_LIMIT, self.show_archived)
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
        if not self.has_backend:
            self.notify(self.model_problem, title="No model", severity="error")
            return
        if self.conversation_id is None:
            self.conversation_id = self.runner.new_conversation(self.default_persona).id
            await self.open_conversation(self.conversation_id)
        self._start_engine()  # normally done after the first frame already
        try:
            if self.editing_id is not None:
                self.runner.edit_and_resend(self.conversation_id, self.editing_id, event.text)
            else:
                user, answer, _job = self.runner.send(self.conversation_id, event.text)
        except Busy as exc:
            self.notify(str(exc), severity="warning")
            return
        except st.StoreError as exc:  # the text stays in the input: nothing is lost
            self.report_error(str(exc), "Not sent")
            return
        prompt.clear()
        view = self.query_one(ChatView)
        if self.editing_id is not None:
            self.editing_id = None
            prompt.border_title = None
            await self.open_conversation(self.conversation_id)
        else:
            await view.add(user)
            await view.add(answer)
        if not self.model_ready:
            self.notify(
                "The model is still loading; your message will be answered when it is ready."
            )
        self.refresh_chat_list()

    def action_stop(self) -> None:
        status = self.query_one(StatusLine)
        if self.conversation_id is not None and self.runner.cancel(self.conversation_id):
            status.state = "stopping…"
        elif status.state.startswith("loading model"):
            self.engine.cancel_load()  # e.g. a big model picked by mistake
            self._cancelling_load = True
            status.state = "cancelling load…"
        elif self.editing_id is not None:
            self.editing_id = None
            prompt = self.query_one(PromptInput)
            prompt.clear()
            prompt.border_title = None
            self.notify("Edit cancelled.")
        elif not self.query_one(PromptInput).has_focus:
            self.query_one(PromptInput).focus()

    # --- sampling panel -------------------------------------------------------------------

    def action_toggle_sampling(self) -> None:
        """F2: open the panel on the current chat (and focus it), or close it."""
        panel = self.query_one(SamplingPanel)
        if panel.display and panel.has_focus_within:
            self._close_sampling()
            return
        panel.display = True
        if self.size.width < 100:  # two side panels would leave too little chat
            self.query_one(ChatList).display = False
        self._show_sampling()
        panel.focus_setting()

    @on(SamplingPanel.CloseRequested)
    def _close_sampling(self) -> None:
        """Hide the panel (F2 again, or Esc in it); the message box gets the focus."""
        self.query_one(SamplingPanel).display = False
        self.query_one(ChatList).display = True
        self.query_one(PromptInput).focus()

    def _show_sampling(self) -> None:
        """Give the panel the current chat's values over its persona's defaults."""
        panel = self.query_one(SamplingPanel)
        if self.conversation_id is None:
            defaults = self.personas.get(self.default_persona).sampling_defaults()
            panel.show(defaults, defaults)
        else:
            conversation = self.store.get_conversation(self.conversation_id)
            defaults = self.runner.persona_of(conversation).sampling_defaults()
            panel.show(self.runner.sampling_of(conversation), defaults)
        panel.unsupported = frozenset(SPEC) - self.engine.supported_settings()

    @on(SamplingPanel.Changed)
    def sampling_changed(self, event: SamplingPanel.Changed) -> None:
        """Per-chat values, stored as overrides of the persona; the next reply uses them."""
        if self.conversation_id is None:
            self.conversation_id = self.runner.new_conversation(self.default_persona).id
            self.refresh_chat_list()
        self.store.update_conversation(self.conversation_id, sampling=event.overrides)

    @on(SamplingPanel.SaveAsPersonaDefaults)
    def save_sampling_defaults(self, event: SamplingPanel.SaveAsPersonaDefaults) -> None:
        if self.conversation_id is None:
            persona = self.personas.get(self.default_persona)
        else:
            persona = self.runner.persona_of(self.store.get_conversation(self.conversation_id))
        # Only what differs from llama.cpp's defaults; a bundled persona becomes a user copy.
        updated = dataclasses.replace(persona, sampling=event.values.diff(Sampling()))
        try:
            save_persona(updated, self.personas_dir)
        except OSError as exc:
            self.notify(str(exc), title="Could not save the persona", severity="error")
            return
        self.personas.personas[updated.id] = updated
        if self.conversation_id is not None:
            self.store.update_conversation(self.conversation_id, sampling={})
        self._show_sampling()
        self.notify(f"Saved as the defaults of {updated.name}.")

    # --- models ---------------------------------------------------------------------------

    def action_pick_model(self) -> None:
        """F4: choose the model of the current chat (and of new chats); it loads at once."""
        if len(self.screen_stack) > 1:
            return

        def chosen(path: str | None) -> None:
            if not path:
                return
            self.model_path = Path(path)
            self.model_problem = ""
            chat_model = ""
            chats = []
            if self.conversation_id is not None:
                conversation = self.store.get_conversation(self.conversation_id)
                chat_model = conversation.model
                self.store.update_conversation(self.conversation_id, model=path)
                chats.append(self.store.get_conversation(self.conversation_id))
            # Kept until the load ends: a cancelled or failed load puts these back.
            self._switch = (path, self.conversation_id, chat_model, self.runner.model)
            self.runner.load(path, self.runner.window(*chats))
            self.query_one(StatusLine).model = display_name(path)

        extra = [str(self.model_path)] if self.model_path else []
        current = self.runner.model
        if self.conversation_id is not None:
            current = self.runner.model_of(self.store.get_conversation(self.conversation_id))
        self.push_screen(ModelPickerScreen(self.model_dirs, current, extra), chosen)

    # --- personas -------------------------------------------------------------------------

    def action_personas(self) -> None:
        if isinstance(self.screen, PersonasScreen):
            return
        current = self.default_persona
        if self.conversation_id is not None:
            current = self.store.get_conversation(self.conversation_id).persona

        def chosen(persona_id: str | None) -> None:
            if persona_id:
                self._start_new_chat(persona_id)
            self.query_one(PromptInput).focus()

        self.push_screen(PersonasScreen(self.personas_dir, selected=current), chosen)

    @on(PersonasScreen.Changed)
    def personas_changed(self, message: PersonasScreen.Changed) -> None:
        """A persona was saved or deleted: the next reply uses the new version."""
        self.personas = message.library
        self.runner.personas = message.library
        if self.conversation_id is not None:
            conversation = self.store.get_conversation(self.conversation_id)
            self.query_one(StatusLine).persona = self.runner.persona_of(conversation).name

    def action_change_persona(self) -> None:
        """Give the current chat another persona; the next reply uses it."""
        if self.conversation_id is None:
            return
        chat_id = self.conversation_id

        async def change(persona_id: str | None) -> None:
            if persona_id:
                self.store.update_conversation(chat_id, persona=persona_id)
                await self.open_conversation(chat_id)
                self.notify(f"This chat now uses {self.personas.get(persona_id).name}.")

        current = self.store.get_conversation(chat_id).persona
        self.push_screen(NewChatScreen(self.personas.sorted(), current, "Persona for this chat…"),
                         change)  # fmt: skip

    # --- chat management ------------------------------------------------------------------

    def action_help(self) -> None:
        """F1: the keys of the focused area (llama-tui's own first), or close that list."""
        panel = find_keys_help(self.screen)
        if panel is not None:
            panel.remove()
        else:
            self.screen.mount(KeysHelp())

    def action_search(self) -> None:
        async def jump(result: tuple[int, int] | None) -> None:
            if result:
                chat, message = result
                await self.open_conversation(chat)
                if not await self.query_one(ChatView).select_message(message):
                    self.notify("That message is older than the ones shown.")

        self.push_screen(SearchScreen(self.store), jump)

    def action_rename_chat(self, conversation_id: int | None = None) -> None:
        chat_id = conversation_id or self.conversation_id
        if chat_id is None:
            return
        current = self.store.get_conversation(chat_id).title

        def rename(title: str | None) -> None:
            if title and title.strip():
                self.store.update_conversation(chat_id, title=" ".join(title.split()))
                self.refresh_chat_list()

        self.push_screen(TextPromptScreen("Rename chat", current), rename)

    def action_delete_chat(self, conversation_id: int | None = None) -> None:
        chat_id = conversation_id or self.conversation_id
        if chat_id is None:
            return
        conversation = self.store.get_conversation(chat_id)

        async def delete(yes: bool | None) -> None:
            if not yes:
                return
            self.runner.cancel(chat_id)
            self._deleted.append(export.to_json(conversation, self.store.messages(chat_id)))
            self.store.delete_conversation(chat_id)
            if self.conversation_id == chat_id:
                self.conversation_id = None
                remaining = self.store.list_conversations(1, self.show_archived)
                if remaining:
                    await self.open_conversation(remaining[0].id)
                else:
                    await self.query_one(ChatView).show(0, [], "Assistant")
            self.refresh_chat_list()
            self.notify("Chat deleted. Undo: u in the chat list, or Ctrl+P → Undo delete.")

        question = f"Delete the chat “{conversation.title}” and its messages?"
        self.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), delete)

    async def action_undo_delete(self) -> None:
        if not self._deleted:
            self.notify("Nothing to undo.")
            return
        restored = export.import_json(self.store, self._deleted.pop())
        await self.open_conversation(restored.id)
        self.notify(f"Restored “{restored.title}”.")

    def action_toggle_pin(self, conversation_id: int | None = None) -> None:
        chat_id = conversation_id or self.conversation_id
        if chat_id is not None:
            pinned = self.store.get_conversation(chat_id).pinned
            self.store.update_conversation(chat_id, pinned=int(not pinned))
            self.refresh_chat_list()

    async def action_toggle_archive(self, conversation_id: int | None = None) -> None:
        chat_id = conversation_id or self.conversation_id
        if chat_id is None:
            return
        archived = self.store.get_conversation(chat_id).archived
        self.store.update_conversation(chat_id, archived=int(not archived))
        self.notify("Chat archived." if not archived else "Chat back in the list.")
        self.refresh_chat_list()

    def action_show_archived(self) -> None:
        self.show_archived = not self.show_archived
        self.refresh_chat_list()

    def action_export_chat(self, fmt: str = "md") -> None:
        if self.conversation_id is None:
            return
        chat_id = self.conversation_id
        default = f"~/llama-tui-chat-{chat_id}.{fmt}"

        def write(target: str | None) -> None:
            if not target:
                return
            conversation = self.store.get_conversation(chat_id)
            messages = self.store.messages(chat_id)
            if fmt == "json":
                text = export.dumps(conversation, messages)
            else:
                text = export.to_markdown(
                    conversation, messages, self.runner.persona_of(conversation).ai_name
                )
            path = Path(target).expanduser()
            try:
                paths.write_private(path, text)  # chats are private
            except OSError as exc:
                self.notify(f"Cannot write {path}: {exc.strerror}", severity="error")
                return
            self.notify(f"Exported to {path}")

        self.push_screen(TextPromptScreen(f"Export this chat as {fmt.upper()} to", default), write)

    @on(ChatList.Action)
    async def chat_list_action(self, event: ChatList.Action) -> None:
        chat = event.conversation_id
        if event.action == "rename":
            self.action_rename_chat(chat)
        elif event.action == "delete":
            self.action_delete_chat(chat)
        elif event.action == "pin":
            self.action_toggle_pin(chat)
        elif event.action == "archive":
            await self.action_toggle_archive(chat)
        elif event.action == "undo":
            await self.action_undo_delete()

    @on(ChatView.Action)
    async def message_action(self, event: ChatView.Action) -> None:
        message = self.store.get_message(event.message_id)
        chat_id = message.conversation_id
        view = self.query_one(ChatView)
        if event.action == "copy":
            self.copy_to_clipboard(message.content)
            self.notify("Message copied to the clipboard.")
        elif event.action == "copy_code":
            blocks = _CODE_BLOCK.findall(message.content)
            if not blocks:
                self.notify("This message has no code block.")
                return
            index = self._code_block_index.get(message.id, -1) + 1
            index %= len(blocks)
            self._code_block_index[message.id] = index
            self.copy_to_clipboard(blocks[index])
            self.notify(f"Code block {index + 1} of {len(blocks)} copied (y again: next).")
        elif event.action == "edit":
            if message.role != "user":
                self.notify("Only your own messages can be edited; r regenerates an answer.")
                return
            prompt = self.query_one(PromptInput)
            prompt.load_text(message.content)
            prompt.border_title = "Editing: Enter resends from here · Esc cancels"
            self.editing_id = message.id
            prompt.focus()
        elif event.action == "regenerate":
            try:
                self.runner.regenerate(chat_id)
            except (Busy, ValueError) as exc:
                self.notify(str(exc), severity="warning")
                return
            await self.open_conversation(chat_id)
        elif event.action == "version":
            await view.update_message(self.runner.cycle_version(message.id))
        elif event.action == "delete":
            if (
                self.runner.job_for(chat_id)
                and self.runner.job_for(chat_id).message_id == message.id
            ):
                self.notify("Stop the answer first (Esc).", severity="warning")
                return

            async def delete(yes: bool | None) -> None:
                if yes:
                    self.store.delete_message(message.id)
                    await self.open_conversation(chat_id)

            question = f"Delete this message?\n\n{_quote(message, view.ai_name)}"
            self.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), delete)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action in the command palette (Ctrl+P)."""
        yield from super().get_system_commands(screen)
        commands = [
            ("New chat", "Start a chat with a persona", self.action_new_chat),
            ("Personas", "Browse, create, edit and delete personas (F3)", self.action_personas),
            ("Change persona of this chat", "The next reply uses it", self.action_change_persona),
            ("Sampling settings", "Sliders for this chat (F2)", self.action_toggle_sampling),
            ("Choose model", "GGUF files on this machine (F4)", self.action_pick_model),
            ("Search chats", "Full-text search across all chats", self.action_search),
            ("Rename chat", "Give the current chat a title", self.action_rename_chat),
            ("Delete chat", "Delete the current chat (undo possible)", self.action_delete_chat),
            ("Undo delete", "Bring back the last deleted chat", self.action_undo_delete),
            ("Pin / unpin chat", "Keep the current chat on top", self.action_toggle_pin),
            ("Archive / unarchive chat", "Hide the chat from the list",
             self.action_toggle_archive),
            ("Show archived / all chats", "Switch the list", self.action_show_archived),
            ("Export chat as Markdown", "Write the chat to a .md file",
             lambda: self.action_export_chat("md")),
            ("Export chat as JSON", "Lossless export (llama-tui chats import)",
             lambda: self.action_export_chat("json")),
            ("Stop answer", "Stop the answer being generated", self.action_stop),
            ("Previous chat", "Switch chat", self.action_previous_chat),
            ("Next chat", "Switch chat", self.action_next_chat),
        ]  # fmt: skip
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)

    # --- engine events ------------------------------------------------------------------

    def report_error(self, text: str, title: str = "Error") -> None:
        """Show an error once (a failing disk would otherwise report every token)."""
        if text != self._last_error:
            self._last_error = text
            self.notify(text, title=title, severity="error", timeout=20)

    async def _tokens_ready(self, job_id: int) -> None:
        """Show streamed text at most :data:`PAINT_INTERVAL` apart (one layout per frame)."""
        wait = self._painted_at + PAINT_INTERVAL - time.monotonic()
        if wait > 0:
            if self._paint_timer is None:
                self._paint_timer = self.set_timer(wait, lambda: self._paint(job_id))
            return
        await self._paint(job_id)

    async def _paint(self, job_id: int) -> None:
        self._paint_timer = None
        self._painted_at = time.monotonic()
        text = self.batcher.take(job_id)
        if text:
            await self.engine_event(EngineMessage(TokenText(job_id, text)))

    @on(EngineMessage)
    async def engine_event(self, message: EngineMessage) -> None:
        event = message.event
        if self._hung_up:
            return  # saved as interrupted: a late "cancelled" must not overwrite that
        if isinstance(event, TokensReady):
            await self._tokens_ready(event.job_id)
            return
        if isinstance(event, GenerationFinished | GenerationFailed):
            await self._paint(event.job_id)  # the last tokens first
        try:
            job = self.runner.handle(event)
        except st.StoreError as exc:
            self.report_error(str(exc), "Could not save")
            job = self.runner.jobs.get(getattr(event, "job_id", -1))
        status = self.query_one_optional(StatusLine)
        if status is None:
            return  # quitting: the widgets are gone (what the event carried is saved)
        if job is not None and job.gone:
            await self._answer_gone(job.conversation_id)
            return
        view = self.query_one(ChatView)
        shown = job is not None and job.conversation_id == self.conversation_id
        if isinstance(event, TokenText):
            box = view.box(job.message_id) if shown and job else None
            if box is not None:
                await box.append(event.text)
        elif isinstance(event, GenerationStarted):
            gc.freeze()  # collections during the stream skip the heap so far (_tidy_memory)
            status.state = "generating"
            if shown and job:
                status.used, status.n_ctx = event.prompt_tokens, event.n_ctx
                with contextlib.suppress(KeyError):  # deleted meanwhile: the next save says so
                    conversation = self.store.get_conversation(job.conversation_id)
                    await view.set_memory_start(conversation.context_start_id)
        elif isinstance(event, GenerationFinished | GenerationFailed):
            if shown and job is not None:
                await view.update_message(self.store.get_message(job.message_id))
            if isinstance(event, GenerationFinished):
                if shown:
                    status.speed = event.tokens_per_second
                    status.used = event.prompt_tokens + event.completion_tokens
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
            if self.runner.jobs or self.model_ready:  # else it still says why there is no model
                status.state = "generating" if self.runner.jobs else "ready"
            self.refresh_chat_list()
            self._schedule_tidy()
        elif isinstance(event, ModelLoading):
            self.model_ready = False
            status.state = "loading model…" + _progress_bar(event.progress)
        elif isinstance(event, ModelReady):
            self.model_ready = True
            self._loaded_model, self._switch, self._cancelling_load = event.info.path, None, False
            self._show_sampling()  # a server's accepted settings are known now
            status.model = event.info.name
            status.state = "generating" if self.runner.jobs else "ready"
        elif isinstance(event, ModelFailed):
            self._model_failed(event, status)

    def _model_failed(self, event: ModelFailed, status: StatusLine) -> None:
        """A load failed or was cancelled: the engine holds no model now; say so, or go back.

        Loading drops the model that was there, so after an F4 choice that did
        not load the previous model is loaded again and the chat keeps it.
        """
        self.model_ready = False
        cancelled, self._cancelling_load = self._cancelling_load, False
        previous, self._loaded_model = self._loaded_model, ""
        self.runner.unloaded = True
        switch, self._switch = self._switch, None
        if switch is not None and switch[0] == event.path:
            _path, chat, chat_model, runner_model = switch
            self.runner.model = runner_model
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
            self.runner.load(previous, self.runner.window(*chats))  # ready again in a moment
            status.model = display_name(previous)
            status.state = "loading model…"
            detail += f"\nBack to {display_name(previous)}."
        else:
            current = self.runner.model
            if self.conversation_id is not None:
                current = self.runner.model_of(self.store.get_conversation(self.conversation_id))
            if current and self.endpoint is None:
                status.model = display_name(current)
            status.state = "load cancelled: a message loads it" if cancelled else "error: model"
        severity = "warning" if cancelled else "error"
        self.notify(detail, title=title, severity=severity, timeout=30)

    async def _answer_gone(self, conversation_id: int) -> None:
        """A chat was deleted while it answered (here, or by another process): carry on."""
        status = self.query_one(StatusLine)
        status.state = "generating" if self.runner.jobs else "ready"
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

    def _fatal_error(self) -> None:
        """A crash report without local variables: they may hold an API key or chat text."""
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(
            Segments(self.console.render(traceback, self.console.options))
        )
        self._close_messages_no_wait()

    async def action_quit(self) -> None:
        self.runner.cancel()
        self.runner.flush_all(st.CANCELLED)
        self.exit()

    def on_unmount(self) -> None:
        self._restore_signal_handlers()
        self.runner.flush_all()
        self._drop_unused_chat()
        self.engine.close()
