"""What the app does with one message: copy, edit, regenerate, show another version, delete;
and the tree view of the chat's branches.

A chat is a tree (see :mod:`tui.core.chat_branches`): editing or regenerating
adds a version beside the message, ←/→ (or a click on ``‹ ›``) shows another
version and the rest of the chat follows it, and only an explicit delete
removes a message (with its replies: that branch).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from textual import on

from tui.core import continuation
from tui.core import store as st
from tui.core.chat_service import Busy, ChatService
from tui.ui.answer_actions import ANSWER_ACTIONS, AnswerActions
from tui.ui.screens.branch_tree import BranchTreeScreen, Pick
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.delete_message import BRANCH, DeleteMessageScreen
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.prompt_input import PromptInput

_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)

EDIT_QUESTION = "Editing your message: Enter sends it as a new branch · Esc cancels"
EDIT_ANSWER = "Editing the answer: Enter keeps it as a new version · Esc cancels"


def _quote(message: st.Message, ai_name: str, width: int = 100) -> str:
    """Who wrote ``message`` and how it starts, on one line: what a dialog asks about."""
    text = " ".join(message.content.split())
    start = text if len(text) <= width else text[: width - 1] + "…"
    who = "You" if message.role == "user" else ai_name
    return f"{who}: “{start}”"


class MessageActions(AnswerActions):
    """Message and branch actions for :class:`~tui.ui.app.LlamaTUI` (a part of it)."""

    # Set up by LlamaTUI.__init__ (tui.ui.app); named here for the reader.
    store: st.Store
    service: ChatService
    conversation_id: int | None
    editing_id: int | None
    _code_block_index: dict[int, int]

    if TYPE_CHECKING:  # ChatActions (tui/ui/chat_actions.py) has it

        async def open_conversation(
            self, conversation_id: int, around: int | None = None
        ) -> None: ...

    @on(ChatView.Action)
    async def message_action(self, event: ChatView.Action) -> None:
        try:
            message = self.store.get_message(event.message_id)
        except KeyError:
            return  # deleted meanwhile (another llama-tui, the command line)
        chat_id = message.conversation_id
        view = self.query_one(ChatView)
        try:
            await self._act(event.action, message, chat_id, view)
        except (Busy, ValueError) as exc:
            self.notify(str(exc), severity="warning")
        except st.StoreError as exc:
            self.notify(str(exc), title="Not saved", severity="error")

    async def _act(self, action: str, message: st.Message, chat_id: int, view: ChatView) -> None:
        if action == "copy":
            self.copy_to_clipboard(message.content)
            self.notify("Message copied to the clipboard.")
        elif action == "copy_thinking":
            if not message.reasoning:
                self.notify("This message has no thinking (c copies the message).")
                return
            self.copy_to_clipboard(message.reasoning)
            self.notify("Thinking copied to the clipboard.")
        elif action == "copy_code":
            self._copy_code(message)
        elif action == "edit":
            prompt = self.query_one(PromptInput)
            prompt.load_text(message.content)
            prompt.border_title = EDIT_QUESTION if message.role == "user" else EDIT_ANSWER
            self.editing_id = message.id
            prompt.focus()
        elif action == "regenerate":
            target = message if message.role == "assistant" else self._answer_after(message, view)
            if target is None:  # a question left without an answer: answer it
                continuation.answer_unanswered(self.service, chat_id, message.id)
                await self.open_conversation(chat_id)
                return
            self.service.regenerate(chat_id, target.id)
            await self.open_conversation(chat_id)
        elif action in ("previous_sibling", "next_sibling", "version"):
            await self._show_version(action, message, chat_id)
        elif action == "delete":
            self._ask_delete(message, chat_id, view.ai_name)
        elif action in ANSWER_ACTIONS:  # continue, prefill, prompt: tui/ui/answer_actions.py
            await self.answer_action(action, message)

    def _copy_code(self, message: st.Message) -> None:
        blocks = _CODE_BLOCK.findall(message.content)
        if not blocks:
            self.notify("This message has no code block.")
            return
        index = (self._code_block_index.get(message.id, -1) + 1) % len(blocks)
        self._code_block_index[message.id] = index
        self.copy_to_clipboard(blocks[index])
        self.notify(f"Code block {index + 1} of {len(blocks)} copied (y again: next).")

    @staticmethod
    def _answer_after(message: st.Message, view: ChatView) -> st.Message | None:
        """The answer that follows a question of yours on the branch on screen."""
        shown = view.shown_messages
        index = next((i for i, m in enumerate(shown) if m.id == message.id), None)
        if index is None or index + 1 >= len(shown) or shown[index + 1].role != "assistant":
            return None
        return shown[index + 1]

    async def _show_version(self, action: str, message: st.Message, chat_id: int) -> None:
        """←/→/v (or a click on ``‹ ›``): show another version; the chat follows it."""
        if len(self.store.siblings(message.id)) < 2:
            self.notify("This message has one version: edit it (e) or regenerate (r) for more.")
            return
        if action == "version":
            shown = self.service.cycle_version(message.id)
        else:
            step = -1 if action == "previous_sibling" else 1
            shown = self.service.switch_sibling(message.id, step)
        if shown.id == message.id:
            which = "first" if action == "previous_sibling" else "last"
            self.notify(f"This is the {which} version.")
            return
        await self.open_branch(chat_id, shown.id)

    async def open_branch(self, chat_id: int, select_id: int) -> None:
        """Show the chat's (new) branch with message ``select_id`` selected."""
        await self.open_conversation(chat_id, around=select_id)
        await self.query_one(ChatView).select_message(select_id)

    def _ask_delete(self, message: st.Message, chat_id: int, ai_name: str) -> None:
        """d: delete this message, asking first; with replies, only it or its whole branch."""
        if self.service.job_for(chat_id) is not None:
            self.notify("Stop the answer first (Esc).", severity="warning")
            return
        replies = len(self.store.subtree_ids(message.id)) - 1
        others = len(self.store.siblings(message.id)) - 1
        stay = ""
        if others:
            stay = (
                "Its other version stays." if others == 1 else f"Its {others} other versions stay."
            )

        async def delete(choice: str | bool | None) -> None:
            if not choice:
                return
            try:
                if choice == BRANCH:
                    self.service.delete_branch(message.id)
                else:
                    self.service.delete_message(message.id)
            except (Busy, KeyError) as exc:
                self.notify(str(exc), severity="warning")
                return
            except st.StoreError as exc:
                self.notify(str(exc), title="Not deleted", severity="error")
                return
            await self.open_conversation(chat_id)

        quote = _quote(message, ai_name)
        if not replies:
            question = "\n\n".join(p for p in ("Delete this message?", quote, stay) if p)
            self.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), delete)
            return
        noun = "reply" if replies == 1 else "replies"
        question = "\n\n".join(
            p
            for p in (
                "Delete this message, or this message and its replies (this branch)?",
                quote,
                f"Only this (y): its {replies} {noun} stay, after the message before it.\n"
                f"With its replies (b): {replies + 1} messages go.",
                stay,
            )
            if p
        )
        self.push_screen(DeleteMessageScreen(question), delete)

    async def finish_edit(self, text: str) -> bool:
        """Enter while editing: a new version of the message (a question is answered).

        Returns False when nothing was done (the text stays in the box).
        """
        editing = self.editing_id
        if editing is None:
            return False
        message = self.store.get_message(editing)
        chat_id = message.conversation_id  # even if another chat was opened meanwhile
        if message.role == "user":
            self.service.edit_and_resend(chat_id, editing, text)
        else:
            self.service.edit_message(editing, text)
        self.editing_id = None
        self.query_one(PromptInput).border_title = None
        await self.open_conversation(chat_id)
        return True

    def action_branch_tree(self) -> None:
        """Ctrl+T (b in the chat): the chat's branches as a tree; Enter opens one."""
        chat_id = self.conversation_id
        if chat_id is None or len(self.screen_stack) > 1:
            return
        conversation = self.store.get_conversation(chat_id)
        tree = self.store.tree(chat_id)
        if not tree:
            self.notify("This chat has no messages yet.")
            return
        current = self.store.branch_ids(chat_id)
        ai_name = self.service.persona_of(conversation).ai_name

        async def opened(pick: Pick | None) -> None:
            if pick is None or self.conversation_id != chat_id:
                return
            first, leaf = pick
            try:
                self.service.show_branch(chat_id, leaf)
            except (Busy, KeyError) as exc:
                self.notify(str(exc), severity="warning")
                return
            await self.open_branch(chat_id, first)

        screen = BranchTreeScreen(conversation.title, tree, current, ai_name)
        self.push_screen(screen, opened)
