"""Answer actions of the app: continue an answer, start one with given text, see its prompt.

``g`` goes on from the selected answer's exact text, ``f`` asks how the
answer should begin and lets the model go on from there, ``p`` opens the
prompt the model read for the selected answer. The work is done by
:mod:`tui.core.continuation` and :mod:`tui.core.store_prompts`; this module
asks and shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App

from tui.core import continuation
from tui.core import store as st
from tui.core.chat_service import Busy, ChatService
from tui.core.compare import Comparison, variants
from tui.core.endpoints import Endpoint
from tui.core.engine_protocol import Engine
from tui.core.models import discover_models
from tui.core.personas import Persona
from tui.core.prompt import TRANSCRIPT
from tui.core.store_prompts import load_prompt
from tui.ui.screens.compare import CompareScreen
from tui.ui.screens.prompt_view import PromptViewScreen
from tui.ui.screens.text_prompt import TextPromptScreen
from tui.ui.widgets.chat_view import ChatView

ANSWER_ACTIONS = ("continue", "prefill", "prompt", "compare")


class AnswerActions(App[None]):
    """A part of :class:`~tui.ui.app.LlamaTUI` (see tui/ui/chat_actions.py for its kin)."""

    store: st.Store
    engine: Engine
    service: ChatService
    conversation_id: int | None
    endpoint: Endpoint | None
    model_path: Path | None
    model_dirs: list[str]

    if TYPE_CHECKING:  # ChatActions (tui/ui/chat_actions.py) has it

        async def open_conversation(
            self, conversation_id: int, around: int | None = None
        ) -> None: ...

    async def answer_action(self, action: str, message: st.Message) -> None:
        if action == "prompt":
            self.show_prompt(message)
            return
        if action == "compare":
            self.compare(message)
            return
        chat_id = message.conversation_id
        persona = self.service.persona_of(self.store.get_conversation(chat_id))
        if not self._can_prefill(persona):
            self.notify(continuation.CANNOT_PREFILL, severity="warning", timeout=12)
            return
        if action == "continue":
            if message.role != "assistant":
                self.notify("Select an answer to continue (g); f starts one with your words.")
                return
            if self._start(lambda: continuation.continue_answer(self.service, chat_id, message.id)):
                await self.open_conversation(chat_id)
        elif action == "prefill":

            async def begin(text: str | None) -> None:
                start = lambda: continuation.prefill_answer(self.service, chat_id, text or "")  # noqa: E731
                if text and text.strip() and self._start(start):
                    await self.open_conversation(chat_id)

            self.push_screen(TextPromptScreen("Start the answer with (the model goes on):"), begin)

    def _can_prefill(self, persona: Persona) -> bool:
        """Transcript mode works everywhere; chat mode needs a server that can (prefill.py)."""
        check = getattr(self.engine, "can_prefill", None)
        return persona.mode == TRANSCRIPT or check is None or bool(check())

    def _start(self, start: Callable[[], object]) -> bool:
        """Run ``start()``; say why not if it refuses. True if a job was queued."""
        try:
            start()
        except (Busy, ValueError) as exc:
            self.notify(str(exc), severity="warning")
            return False
        return True

    def show_prompt(self, message: st.Message) -> None:
        """Open the prompt the model read for ``message`` (an answer)."""
        if message.role != "assistant":
            self.notify("Select an answer: p shows the prompt the model read for it.")
            return
        record = load_prompt(self.store, message.id)
        left_out = 0
        start = record.info.get("window_start_id") if record is not None else None
        if isinstance(start, int):
            left_out = sum(
                1
                for m in self.store.messages(message.conversation_id, before_id=start)
                if m.role in ("user", "assistant") and m.content.strip()
            )
        persona = self.service.persona_of(self.store.get_conversation(message.conversation_id))
        self.push_screen(PromptViewScreen(record, left_out, f"{persona.ai_name}'s answer"))

    def compare(self, message: st.Message) -> None:
        """x: answer the selected question (or the selected answer's) two ways, side by side."""
        chat_id = message.conversation_id
        question = message
        if message.role == "assistant" and message.parent_id is not None:
            question = self.store.get_message(message.parent_id)
        try:
            comparison = Comparison(self.service, chat_id, question.id)
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        conversation = self.store.get_conversation(chat_id)
        models = [] if self.endpoint is not None else self._compare_models()
        choices = variants(self.service, conversation, models)
        ai_name = self.service.persona_of(conversation).ai_name

        async def closed(kept: int | None) -> None:
            if self.conversation_id != chat_id:
                return
            await self.open_conversation(chat_id, around=kept)
            if kept is not None:
                await self.query_one(ChatView).select_message(kept)

        self.push_screen(CompareScreen(comparison, choices, ai_name), closed)

    def _compare_models(self) -> list[str]:
        """The model files the model picker offers (F4), for a comparison across models."""
        extra = [str(self.model_path)] if self.model_path else []
        return [str(path) for path, _source in discover_models(self.model_dirs, extra)]
