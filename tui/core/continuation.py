"""Continue an answer, answer an unanswered message, start an answer with given text.

Three ways to get an answer that :meth:`ChatService.send` and
``regenerate`` do not cover, on the same service (its jobs, its store):

- :func:`continue_answer`: the model goes on from the exact text of an
  answer that was stopped, cut by ``max_tokens`` or interrupted, in the same
  turn, and what it writes is appended to the same message;
- :func:`answer_unanswered`: a chat that ends with the user's message (the
  answer failed, was deleted, or was never asked for) gets its answer;
- :func:`prefill_answer`: the user writes how the answer begins, the model
  goes on from there.

All three send a :class:`~tui.core.engine_protocol.Generate` whose
``prefill`` is the text already written (see ``PromptBuilder.build``).
"""

from __future__ import annotations

from tui.core import store as st
from tui.core.chat_branches import chosen_message
from tui.core.chat_service import ChatService, without_notes
from tui.core.sanitize import clean_text

CANNOT_PREFILL = (
    "This server cannot go on from an answer's text in chat mode (its API closes every "
    "message). llama.cpp's llama-server, vLLM and Ollama can; so can any server with a "
    "persona in transcript mode."
)


def continue_answer(service: ChatService, conversation_id: int, message_id: int) -> int:
    """Let the model go on from the answer ``message_id``; returns the job id.

    The new text is appended to the same message; its earlier text is never
    sent as a new turn. An answer that already has replies is not changed
    under them: its text goes into a new version beside it (a branch), which
    is continued instead.
    """
    service._not_busy(conversation_id)
    message = service.store.get_message(message_id)
    if message.conversation_id != conversation_id or message.role != "assistant":
        raise ValueError("Only an answer can be continued.")
    text = without_notes(message.content)
    if not text.strip():
        raise ValueError("This answer is empty: r answers the question again.")
    if service.store.children(message.id):
        meta = {"continued_from": message.id, "writer": st.writer_id()}
        message = service.store.add_message(
            conversation_id, "assistant", text, st.PARTIAL, message.model, meta,
            parent_id=message.parent_id,
        )  # fmt: skip
    else:
        service.store.set_leaf(conversation_id, message.id)
    conversation = service.store.get_conversation(conversation_id)
    meta = {k: v for k, v in message.meta.items() if k in ("continued_from", "edited_from")}
    meta["continued"] = int(message.meta.get("continued", 0) or 0) + 1
    meta["writer"] = st.writer_id()
    service.store.update_message(message.id, text, st.PARTIAL)
    return service._queue(conversation, message, meta, text)


def answer_unanswered(
    service: ChatService, conversation_id: int, message_id: int | None = None
) -> tuple[st.Message, int]:
    """Answer a message of yours that has no answer (default: the branch's last message).

    The answer goes under it, beside whatever else follows it.
    """
    service._not_busy(conversation_id)
    wrong = (
        "The last message already has an answer: r answers it again."
        if message_id is None
        else "Only a message of yours can be answered."
    )
    message = chosen_message(service.store, conversation_id, message_id, "user", wrong)
    return service._answer(conversation_id, parent_id=message.id)


def prefill_answer(
    service: ChatService, conversation_id: int, start: str
) -> tuple[st.Message, int]:
    """Answer the branch's last question, the answer beginning with ``start``.

    If that question has an answer already, the new one is a new version
    beside it (as regenerate makes one); the old one stays.
    """
    service._not_busy(conversation_id)
    start = clean_text(start)
    if not start.strip():
        raise ValueError("Write how the answer begins.")
    last = service.store.last_messages(conversation_id, 1)
    if not last:
        raise ValueError("There is no message to answer.")
    message = last[0]
    if message.role == "assistant":
        if message.parent_id is None:
            raise ValueError("There is no question before this answer to answer again.")
        return service._answer(conversation_id, parent_id=message.parent_id, prefill=start)
    return service._answer(conversation_id, parent_id=message.id, prefill=start)
