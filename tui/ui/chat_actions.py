"""The chat actions of the app: open, create, switch, rename, pin, archive, delete (and
undo), export and search chats (one message's actions: tui/ui/message_actions.py).

What changes a chat is done by the :class:`~tui.core.chat_service.ChatService`
(shared with the command line); this module asks the questions and shows the result.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import App
from textual.widgets import OptionList

from tui.core import store as st
from tui.core.chat_service import Busy, ChatService
from tui.core.engine_protocol import Engine
from tui.core.models import display_name
from tui.core.personas import PersonaLibrary
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.new_chat import NewChatScreen
from tui.ui.screens.search import SearchScreen
from tui.ui.screens.text_prompt import TextPromptScreen
from tui.ui.widgets.chat_list import ChatList
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.prompt_input import PromptInput
from tui.ui.widgets.status_line import StatusLine


class ChatActions(App[None]):
    """Chat management for :class:`~tui.ui.app.LlamaTUI` (a part of it, not an app alone)."""

    SIDEBAR_LIMIT = 500  # older chats are one search away
    FIRST_SIDEBAR = 50  # listed for the first frame; the rest right after it

    # Set up by LlamaTUI.__init__ (tui.ui.app); named here for the reader.
    store: st.Store
    engine: Engine
    service: ChatService
    personas: PersonaLibrary
    conversation_id: int | None
    show_archived: bool
    editing_id: int | None
    _fresh_chat: int | None
    _code_block_index: dict[int, int]
    _engine_started: bool

    def refresh_chat_list(self) -> None:
        limit = self.SIDEBAR_LIMIT if self._engine_started else self.FIRST_SIDEBAR
        chats = self.store.list_conversations(limit, archived=self.show_archived)
        chat_list = self.query_one(ChatList)
        chat_list.border_title = "Archived" if self.show_archived else "Chats"
        chat_list.show(chats, self.conversation_id)

    async def open_conversation(self, conversation_id: int, around: int | None = None) -> None:
        """Show a chat's current branch: the newest page, or the page ``around`` a message."""
        conversation = self.store.get_conversation(conversation_id)
        self._drop_unused_chat(keep=conversation_id)
        self.conversation_id = conversation_id
        persona = self.service.persona_of(conversation)
        messages = self.store.messages(conversation_id)
        start = conversation.context_start_id
        if start is not None and not any(m.id == start for m in messages):
            start = None  # the model's window was on another branch
        await self.query_one(ChatView).show(
            conversation_id,
            messages,
            persona.ai_name,
            start,
            around=around,
            forks=self.store.fork_positions(conversation_id),
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
            status.model = display_name(self.service.model_of(conversation))
        last = next((m for m in reversed(messages) if m.meta.get("n_ctx")), None)
        if last:
            status.used = last.meta.get("prompt_tokens", 0) + last.meta.get("completion_tokens", 0)
            status.n_ctx = last.meta["n_ctx"]
        else:
            status.used, status.n_ctx = 0, 0
        # The speed of this chat's last answer; never another chat's.
        speed = last.meta.get("tokens_per_second") if last else None
        status.speed = float(speed) if isinstance(speed, int | float) else 0.0
        thinking = last.meta.get("thinking_tokens", 0) if last else 0
        answered = last.meta.get("completion_tokens", 0) if last else 0
        status.thinking_tokens = thinking if isinstance(thinking, int) else 0
        status.answer_tokens = max(answered - status.thinking_tokens, 0)
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
            if renamed or conversation.pinned or self.service.job_for(fresh):
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
        conversation = self.service.new_conversation(persona_id)
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

    def action_search(self) -> None:
        screen = SearchScreen(self.store)

        async def jump(result: tuple[int, int] | None) -> None:
            if not result:
                return
            chat, message = result
            try:
                on_screen = message in self.store.branch_ids(chat)
                if not on_screen:  # a hit on another branch: open that branch
                    self.service.show_branch(chat, message)
            except KeyError:
                self.notify("That message was deleted meanwhile.")
                return
            except Busy as exc:
                self.notify(f"That message is on another branch. {exc}", severity="warning")
                return
            await self.open_conversation(chat, around=message)
            view = self.query_one(ChatView)
            if not await view.select_message(message):
                self.notify("That message is older than the ones shown.")
            elif screen.opened_in_thinking:  # found in its thinking: show it open
                await view.open_thinking(message)

        self.push_screen(screen, jump)

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
            try:
                self.service.delete_chat(chat_id)  # stops its answer, keeps an undo copy
            except KeyError:
                pass  # deleted meanwhile (e.g. by `llama-tui chats delete`): gone either way
            except st.StoreError as exc:
                self.notify(str(exc), title="Not deleted", severity="error")
                return
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
        try:
            restored = self.service.undo_delete()
        except st.StoreError as exc:
            self.notify(str(exc), title="Not restored", severity="error")
            return
        if restored is None:
            self.notify("Nothing to undo.")
            return
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

    def action_export_chat(self, fmt: str = "md", all_branches: bool = False) -> None:
        """Export the chat: JSON holds every branch; Markdown the one on screen, or all."""
        if self.conversation_id is None:
            return
        chat_id = self.conversation_id
        default = f"~/llama-tui-chat-{chat_id}{'-all' if all_branches else ''}.{fmt}"

        def write(target: str | None) -> None:
            if not target:
                return
            path = Path(target).expanduser()
            try:
                self.service.export_chat(chat_id, path, fmt, all_branches)  # yours alone
            except OSError as exc:
                self.notify(f"Cannot write {path}: {exc.strerror}", severity="error")
                return
            self.notify(f"Exported to {path}")

        what = "every branch of this chat" if all_branches else "this chat"
        self.push_screen(TextPromptScreen(f"Export {what} as {fmt.upper()} to", default), write)

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
