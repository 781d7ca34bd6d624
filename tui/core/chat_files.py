"""Chats as files: delete with an undo copy, restore, render and export.

A part of :class:`~tui.core.chat_service.ChatService` (it is a :class:`ChatFiles`),
kept apart because it is about whole chats, not their turns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tui.core import paths
from tui.core import store as st
from tui.core.personas import Persona


class ChatFormats(Protocol):
    """How chats become files and come back (the module :mod:`tui.formats.chats`).

    The service is handed it, so that the core never imports the layer above it.
    """

    def to_json(
        self, conversation: st.Conversation, messages: list[st.Message]
    ) -> dict[str, Any]: ...

    def dumps(self, conversation: st.Conversation, messages: list[st.Message]) -> str: ...

    def to_markdown(
        self, conversation: st.Conversation, messages: list[st.Message], ai_name: str
    ) -> str: ...

    def branches_to_markdown(
        self, conversation: st.Conversation, tree: list[st.Message], ai_name: str
    ) -> str: ...

    def import_json(self, store: st.Store, data: Any) -> st.Conversation: ...


EXPORT_FORMATS = ("md", "json")


class ChatFiles:
    """Whole chats in and out of the store (a part of ``ChatService``)."""

    store: st.Store
    formats: ChatFormats | None
    deleted: list[dict[str, Any]]

    # Provided by ChatService.
    def cancel(self, conversation_id: int | None = None) -> bool: ...  # pragma: no cover

    def persona_of(self, conversation: st.Conversation) -> Persona: ...  # pragma: no cover

    # --- chats --------------------------------------------------------------------------

    def delete_chat(self, conversation_id: int, keep_copy: bool = True) -> st.Conversation:
        """Stop the chat's answer and delete it; returns the chat as it was.

        With ``keep_copy`` (and formats), a copy stays in memory for
        :meth:`undo_delete` until this process ends. Raises KeyError if there
        is no such chat, StoreError if the database refuses.
        """
        conversation = self.store.get_conversation(conversation_id)
        copy = None
        if keep_copy and self.formats is not None:
            copy = self.formats.to_json(conversation, self.store.tree(conversation_id))
        self.cancel(conversation_id)
        self.store.delete_conversation(conversation_id)
        if copy is not None:
            self.deleted.append(copy)
        return conversation

    def undo_delete(self) -> st.Conversation | None:
        """Bring back the chat deleted last; None if there is none to bring back."""
        if not self.deleted or self.formats is None:
            return None
        copy = self.deleted.pop()
        try:
            return self.formats.import_json(self.store, copy)
        except BaseException:
            self.deleted.append(copy)  # not restored: it can be tried again
            raise

    def render_chat(self, conversation_id: int, fmt: str = "md", all_branches: bool = False) -> str:
        """The chat as Markdown (``md``) or as lossless JSON (``json``, importable).

        JSON always holds the whole tree (every branch, with the one on
        screen); Markdown the branch on screen, or with ``all_branches`` every
        branch, one after the other.
        """
        if self.formats is None:
            raise RuntimeError("this chat service was made without chat formats")
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown chat format {fmt!r}: use md or json")
        conversation = self.store.get_conversation(conversation_id)
        if fmt == "json":
            return self.formats.dumps(conversation, self.store.tree(conversation_id)) + "\n"
        ai_name = self.persona_of(conversation).ai_name
        if all_branches:
            return self.formats.branches_to_markdown(
                conversation, self.store.tree(conversation_id), ai_name
            )
        messages = self.store.messages(conversation_id)
        return self.formats.to_markdown(conversation, messages, ai_name)

    def export_chat(
        self, conversation_id: int, path: Path, fmt: str = "md", all_branches: bool = False
    ) -> Path:
        """Write the chat to ``path`` (``~`` expanded), readable by its owner alone (0600).

        Raises OSError if the file cannot be written, KeyError if there is no such chat.
        """
        path = path.expanduser()
        text = self.render_chat(conversation_id, fmt, all_branches)
        paths.write_private(path, text)  # chats are private
        return path
