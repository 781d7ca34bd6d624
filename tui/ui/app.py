"""The Textual application: a thin layer of widgets over the core.

Everything that matters (storage, personas, prompts, the model, the chats and
their turns in :class:`~tui.core.chat_service.ChatService`) lives in plain
modules; this file wires them to the screen. Engine events arrive on a
background thread and are re-posted as Textual messages, so all state changes
happen on the UI thread (see tui/ui/engine_events.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from tui.core import store as st
from tui.core.chat_service import Busy, ChatService
from tui.core.endpoints import Endpoint
from tui.core.engine_protocol import Engine
from tui.core.models import display_name
from tui.core.personas import PersonaLibrary
from tui.engine.batching import TokenBatcher
from tui.formats import chats as chat_formats
from tui.ui.chat_actions import ChatActions
from tui.ui.engine_events import EngineEvents, EngineMessage
from tui.ui.lifecycle import Lifecycle
from tui.ui.message_actions import MessageActions
from tui.ui.settings_actions import SettingsActions
from tui.ui.terminal_input import TerminalDriver
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.keys_help import KeysHelp, find_keys_help
from tui.ui.widgets.prompt_input import PromptInput
from tui.ui.widgets.sampling_panel import SamplingPanel
from tui.ui.widgets.status_line import StatusLine
from tui.ui.wire import LineDiffDisplay


class LlamaTUI(
    ChatActions, MessageActions, SettingsActions, EngineEvents, Lifecycle, LineDiffDisplay
):
    """The app: the layout, start-up, sending and stopping; the rest is in its parts.

    Its parts, one module each under tui/ui/: chat_actions (chats), message_actions
    (one message, its versions, the tree of branches), settings_actions (sampling
    panel, model, personas), engine_events (what the engine reports) and lifecycle
    (quit, hang-up, crash, memory).
    """

    TITLE = "llama-tui"
    CSS_PATH = "app.tcss"  # every screen's style; reusable widgets keep their DEFAULT_CSS

    BINDINGS = [
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+f", "search", "Search"),
        Binding("ctrl+r", "rename_chat", "Rename", show=False),
        Binding("ctrl+t", "branch_tree", "Branches", show=False),
        Binding("alt+up,ctrl+pageup", "previous_chat", "Prev chat", show=False),
        Binding("alt+down,ctrl+pagedown", "next_chat", "Next chat", show=False),
        Binding("f2", "toggle_sampling", "Sampling"),
        Binding("f3", "personas", "Personas"),
        Binding("f4", "pick_model", "Model"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q,f10", "quit", "Quit", priority=True),
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
        personas_dir: Path | None = None,
        model_dirs: list[str] | None = None,
        endpoint: Endpoint | None = None,
        config_problems: list[str] | None = None,
        thinking: str = "collapsed",
    ) -> None:
        super().__init__()
        self.thinking_mode = thinking  # how thinking is shown at start (config's ``thinking``)
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
        self.service = ChatService(
            store, engine, personas, model_id, n_threads, n_gpu_layers, formats=chat_formats
        )
        self.conversation_id: int | None = None
        self.model_ready = False
        self.show_archived = False
        self.editing_id: int | None = None  # the message being edited, if any
        self._fresh_chat: int | None = None  # made with Ctrl+N, dropped if left unused
        self._code_block_index: dict[int, int] = {}
        self._last_error = ""
        self.batcher = TokenBatcher(lambda event: self.post_message(EngineMessage(event)))
        self._painted_at = 0.0  # when streamed text last reached the screen
        self._paint_cost = 0.0  # seconds the last paint took, its frame included
        self._paint_cpu = 0.0  # the UI thread's CPU seconds in that paint
        self._stream_began: dict[int, float] = {}  # job id -> when its first text was shown
        self._paint_timer: Timer | None = None
        self._tidy_timer: Timer | None = None
        self._engine_started = False
        # Set once the message box has the focus: keys typed before wait for it.
        self.input_ready = asyncio.Event()
        self._hung_up = False  # SIGHUP or SIGTERM came: saving and exiting
        self.input_pending = 0  # keys being handled (tui.ui.terminal_input.deliver)
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
        view = self.query_one(ChatView)
        view.live_text = self._live_text
        view.thinking.set_mode(self.thinking_mode)
        status = self.query_one(StatusLine)
        if not self.has_backend:
            status.state = "error: no model"
            self.notify(self.model_problem, title="No model", severity="error", timeout=30)
        else:
            status.model = (
                self.endpoint.label if self.endpoint else display_name(self.service.model)
            )
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

    def _live_text(self, message_id: int) -> tuple[str, str] | None:
        """The streamed answer and thinking of ``message_id``, if it is being generated."""
        job = next((j for j in self.service.jobs.values() if j.message_id == message_id), None)
        return (job.text, job.reasoning) if job is not None else None

    def _start_engine(self) -> None:
        if self._engine_started:
            return
        self._engine_started = True
        self.engine.start(self.batcher)
        if self.has_backend:
            chats = []
            model = self.service.model
            if self.conversation_id is not None and self.endpoint is None:
                # The open chat's own model, not the default: its first answer needs no reload.
                conversation = self.store.get_conversation(self.conversation_id)
                model = self.service.model_of(conversation)
                chats.append(conversation)
            self.service.load(model, self.service.window(*chats))
        self.refresh_chat_list()  # the first frame listed only the newest chats
        self._schedule_tidy()

    # --- sending and stopping ---------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def send(self, event: PromptInput.Submitted) -> None:
        prompt = self.query_one(PromptInput)
        if not self.has_backend:
            self.notify(self.model_problem, title="No model", severity="error")
            return
        if self.conversation_id is None:
            self.conversation_id = self.service.new_conversation(self.default_persona).id
            await self.open_conversation(self.conversation_id)
        self._start_engine()  # normally done after the first frame already
        try:
            if self.editing_id is not None:
                edited = await self.finish_edit(event.text)
            else:
                edited = False
                user, answer, _job = self.service.send(self.conversation_id, event.text)
        except (Busy, ValueError) as exc:
            self.notify(str(exc), severity="warning")
            return
        except KeyError:  # the message being edited was deleted meanwhile
            self.editing_id = None
            prompt.border_title = None
            self.notify("That message was deleted meanwhile; your text is still here.")
            return
        except st.StoreError as exc:  # the text stays in the input: nothing is lost
            self.report_error(str(exc), "Not sent")
            return
        prompt.clear()
        view = self.query_one(ChatView)
        if not edited:
            await view.add(user)
            await view.add(answer)
        if not self.model_ready:
            self.notify(
                "The model is still loading; your message will be answered when it is ready."
            )
        self.refresh_chat_list()

    def action_stop(self) -> None:
        status = self.query_one(StatusLine)
        if self.conversation_id is not None and self.service.cancel(self.conversation_id):
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

    async def action_thinking_mode(self) -> None:
        """Switch how thinking is shown (the palette's way to ``T`` in the chat)."""
        await self.query_one(ChatView).action_thinking_mode()

    @on(ChatView.ThinkingModeChanged)
    def thinking_mode_changed(self, event: ChatView.ThinkingModeChanged) -> None:
        self.thinking_mode = event.mode
        shown = {
            "collapsed": "folded to one line (t or a click opens one)",
            "expanded": "shown open",
            "hidden": "hidden",
        }[event.mode]
        self.notify(
            f'Thinking {shown}. To start this way, set thinking = "{event.mode}" in config.toml.'
        )

    def action_help(self) -> None:
        """F1: the keys of the focused area (llama-tui's own first), or close that list."""
        panel = find_keys_help(self.screen)
        if panel is not None:
            panel.remove()
        else:
            self.screen.mount(KeysHelp())

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
            ("Export chat as Markdown", "Write the branch on screen to a .md file",
             lambda: self.action_export_chat("md")),
            ("Export all branches as Markdown", "Every branch of the chat, to a .md file",
             lambda: self.action_export_chat("md", all_branches=True)),
            ("Branches of this chat", "The tree of edits and regenerations (Ctrl+T)",
             self.action_branch_tree),
            ("Export chat as JSON", "Lossless, every branch (llama-tui chats import)",
             lambda: self.action_export_chat("json")),
            ("Thinking: folded / open / hidden",
             "How a reasoning model's thinking is shown (T in the chat)",
             self.action_thinking_mode),
            ("Stop answer", "Stop the answer being generated", self.action_stop),
            ("Previous chat", "Switch chat", self.action_previous_chat),
            ("Next chat", "Switch chat", self.action_next_chat),
        ]  # fmt: skip
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
