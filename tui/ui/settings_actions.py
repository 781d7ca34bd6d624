"""The settings actions of the app: the sampling panel (F2), the model picker (F4) and the
personas (F3, and the persona of the current chat)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual import on
from textual.app import App

from tui.core import store as st
from tui.core.chat_service import ChatService
from tui.core.engine_protocol import Engine
from tui.core.models import display_name
from tui.core.personas import PersonaLibrary, save_persona
from tui.core.sampling import SPEC, Sampling
from tui.ui.screens.models import ModelPickerScreen
from tui.ui.screens.new_chat import NewChatScreen
from tui.ui.screens.personas import PersonasScreen
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.prompt_input import PromptInput
from tui.ui.widgets.sampling_panel import SamplingPanel
from tui.ui.widgets.status_line import StatusLine


class SettingsActions(App[None]):
    """Sampling, model and persona choices for :class:`~tui.ui.app.LlamaTUI` (a part of it)."""

    # Set up by LlamaTUI.__init__ (tui.ui.app); named here for the reader.
    store: st.Store
    engine: Engine
    service: ChatService
    personas: PersonaLibrary
    conversation_id: int | None
    default_persona: str
    personas_dir: Path | None
    model_dirs: list[str]
    model_path: Path | None
    model_problem: str
    _switch: tuple[str, int | None, str, str] | None

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
            defaults = self.service.persona_of(conversation).sampling_defaults()
            panel.show(self.service.sampling_of(conversation), defaults)
        panel.unsupported = frozenset(SPEC) - self.engine.supported_settings()

    @on(SamplingPanel.Changed)
    def sampling_changed(self, event: SamplingPanel.Changed) -> None:
        """Per-chat values, stored as overrides of the persona; the next reply uses them."""
        if self.conversation_id is None:
            self.conversation_id = self.service.new_conversation(self.default_persona).id
            self.refresh_chat_list()
        self.store.update_conversation(self.conversation_id, sampling=event.overrides)

    @on(SamplingPanel.SaveAsPersonaDefaults)
    def save_sampling_defaults(self, event: SamplingPanel.SaveAsPersonaDefaults) -> None:
        if self.conversation_id is None:
            persona = self.personas.get(self.default_persona)
        else:
            persona = self.service.persona_of(self.store.get_conversation(self.conversation_id))
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
            self._switch = (path, self.conversation_id, chat_model, self.service.model)
            self.service.load(path, self.service.window(*chats))
            self.query_one(StatusLine).model = display_name(path)

        extra = [str(self.model_path)] if self.model_path else []
        current = self.service.model
        if self.conversation_id is not None:
            current = self.service.model_of(self.store.get_conversation(self.conversation_id))
        self.push_screen(ModelPickerScreen(self.model_dirs, current, extra), chosen)

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
        self.service.personas = message.library
        if self.conversation_id is not None:
            conversation = self.store.get_conversation(self.conversation_id)
            self.query_one(StatusLine).persona = self.service.persona_of(conversation).name

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
