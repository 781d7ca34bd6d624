"""Branches of a chat: edit, regenerate, switch and delete without ever cutting the tree.

A chat is a tree of messages; the branch on screen runs from a first message
to the chat's *leaf*. Editing a message (yours or an answer) or regenerating
an answer adds a sibling of it and moves the leaf there: the old branch stays
whole and one key away. Only an explicit delete removes messages:
:meth:`BranchActions.delete_branch` (a message and its replies) or
:meth:`BranchActions.delete_message` (one message; its replies stay).
:class:`~tui.core.chat_service.ChatService` is a :class:`BranchActions`.
"""

from __future__ import annotations

from typing import Any

from tui.core import chat_tree
from tui.core import store as st
from tui.core.sanitize import clean_text

BUSY = "This chat is still answering: wait, or press Esc to stop it."


class Busy(Exception):
    """The chat already has an answer being generated."""


def chosen_message(
    store: st.Store, conversation_id: int, message_id: int | None, role: str, wrong_role: str
) -> st.Message:
    """The message an action is for: ``message_id``, or the branch's last message.

    Raises KeyError for a message of another chat, ValueError(``wrong_role``)
    unless the message is a ``role`` one (or the branch is empty).
    """
    if message_id is None:
        last = store.last_messages(conversation_id, 1)
        message = last[0] if last else None
    else:
        message = store.get_message(message_id)
        if message.conversation_id != conversation_id:
            raise KeyError(f"no message {message_id} in chat {conversation_id}")
    if message is None or message.role != role:
        raise ValueError(wrong_role)
    return message


class BranchActions:
    """The branch operations of :class:`~tui.core.chat_service.ChatService` (a part of it)."""

    store: st.Store

    # Provided by ChatService.
    def job_for(self, conversation_id: int) -> Any: ...  # pragma: no cover

    def _answer(
        self,
        conversation_id: int,
        meta: dict[str, Any] | None = None,
        parent_id: int | None = st.AT_LEAF,
    ) -> tuple[st.Message, int]: ...  # pragma: no cover

    def _not_busy(self, conversation_id: int) -> None:
        if self.job_for(conversation_id):
            raise Busy(BUSY)

    # --- making branches -----------------------------------------------------------------

    def edit_message(self, message_id: int, text: str) -> st.Message:
        """A new version of a message (yours or an answer): a sibling, now on screen.

        The edited message and everything after it stay, on their own branch.
        An edited answer is kept as written (it is not sent to the model).
        """
        message = self.store.get_message(message_id)
        self._not_busy(message.conversation_id)
        text = clean_text(text).strip()
        meta: dict[str, Any] = {"edited_from": message.id}
        if message.role == "assistant":
            meta["edited"] = True
        return self.store.add_message(
            message.conversation_id,
            message.role,
            text,
            model=message.model if message.role == "assistant" else "",
            meta=meta,
            parent_id=message.parent_id,
        )

    def edit_and_resend(
        self, conversation_id: int, message_id: int, text: str
    ) -> tuple[st.Message, st.Message, int]:
        """Edit a message of yours into a new branch and answer it there.

        Returns (the new user message, the answer being generated, job id);
        the message as it was, and its replies, stay on their branch.
        """
        chosen_message(  # refuses another chat's message, or an answer
            self.store, conversation_id, message_id, "user",
            "Only your own messages are sent again; an answer is regenerated.",
        )  # fmt: skip
        user = self.edit_message(message_id, text)
        answer, job_id = self._answer(conversation_id)
        return user, answer, job_id

    def regenerate(
        self, conversation_id: int, message_id: int | None = None
    ) -> tuple[st.Message, int]:
        """Answer again: a new answer beside ``message_id`` (default: the branch's last answer).

        The earlier answer and its replies stay on their branch.
        """
        self._not_busy(conversation_id)
        wrong = (
            "There is no answer to regenerate."
            if message_id is None
            else "Only an answer can be regenerated; edit your message instead."
        )
        message = chosen_message(self.store, conversation_id, message_id, "assistant", wrong)
        if message.parent_id is None:  # a greeting: nothing was asked
            raise ValueError("There is no question before this answer to answer again.")
        return self._answer(conversation_id, parent_id=message.parent_id)

    # --- moving between branches -------------------------------------------------------------

    def switch_sibling(self, message_id: int, step: int, wrap: bool = False) -> st.Message:
        """Show the sibling ``step`` places from ``message_id`` (its previous or next version).

        The chat's branch follows: it now ends at that sibling's newest leaf.
        At either end it stays (or, with ``wrap``, goes round). Returns the
        sibling now shown (the same message if it has none there).
        """
        message = self.store.get_message(message_id)
        self._not_busy(message.conversation_id)
        siblings = self.store.siblings(message_id)
        place = next(i for i, m in enumerate(siblings) if m.id == message_id)
        target = place + step
        if wrap:
            target %= len(siblings)
        elif not 0 <= target < len(siblings):
            return message
        chosen = siblings[target]
        if chosen.id != message.id:
            self.store.set_leaf(message.conversation_id, self.store.newest_leaf(chosen.id))
        return chosen

    def cycle_version(self, message_id: int) -> st.Message:
        """The next version of a message (its next sibling, round to the first)."""
        return self.switch_sibling(message_id, 1, wrap=True)

    def show_branch(self, conversation_id: int, message_id: int) -> int:
        """Put message ``message_id`` on screen: the chat's branch becomes its newest one.

        For a search hit on another branch, or a leaf picked in the tree view.
        Returns the new leaf.
        """
        self._not_busy(conversation_id)
        leaf = self.store.newest_leaf(message_id)
        self.store.set_leaf(conversation_id, leaf)
        return leaf

    # --- deleting ---------------------------------------------------------------------------

    def delete_branch(self, message_id: int) -> int | None:
        """Delete a message and its replies (that branch); every other branch stays.

        An explicit delete (the user was asked). Returns the chat's leaf
        afterwards (None: the chat has no message left).
        """
        message = self.store.get_message(message_id)
        self._not_busy(message.conversation_id)
        return self.store.delete_branch(message_id)

    def delete_message(self, message_id: int) -> int | None:
        """Delete one message; its replies stay, after the message before it.

        An explicit delete (the user was asked). Returns the chat's leaf afterwards.
        """
        message = self.store.get_message(message_id)
        self._not_busy(message.conversation_id)
        return self.store.delete_message(message_id)

    # --- looking at the tree --------------------------------------------------------------------

    def branch_outline(self, conversation_id: int, ai_name: str = "Assistant") -> str:
        """The chat's branches as an outline (``llama-tui chats show N --tree``)."""
        current = self.store.branch_ids(conversation_id)
        return chat_tree.outline_text(self.store.tree(conversation_id), current, ai_name)
