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
from tui.core.chat_service import CAPPED_NOTE, CONTEXT_LIMIT_NOTE, Busy, ChatService
from tui.core.sanitize import clean_text

CANNOT_PREFILL = (
    "This server cannot go on from an answer's text in chat mode (its API closes every "
    "message). llama.cpp's llama-server, vLLM and Ollama can; so can any server with a "
    "persona in transcript mode."
)
_BUSY = "This chat is still answering: wait, or press Esc to stop it."


def _check(service: ChatService, conversation_id: int) -> None:
    if service.job_for(conversation_id):
        raise Busy(_BUSY)


def _without_notes(text: str) -> str:
    """The answer's own text: the notes llama-tui added at its end taken off."""
    return text.removesuffix(CONTEXT_LIMIT_NOTE).removesuffix(CAPPED_NOTE)


def continue_answer(service: ChatService, conversation_id: int, message_id: int) -> int:
    """Let the model go on from the answer ``message_id``; returns the job id.

    Only the chat's last message can be continued (what follows an answer
    was written to it as it stands). The new text is appended to the same
    message; its earlier text is never sent as a new turn.
    """
    _check(service, conversation_id)
    message = service.store.get_message(message_id)
    if message.conversation_id != conversation_id or message.role != "assistant":
        raise ValueError("Only an answer can be continued.")
    last = service.store.last_messages(conversation_id, 1)
    if not last or last[0].id != message_id:
        raise ValueError("Only the last answer of the chat can be continued.")
    text = _without_notes(message.content)
    if not text.strip():
        raise ValueError("This answer is empty: r answers the message again.")
    conversation = service.store.get_conversation(conversation_id)
    keep = ("alternatives", "version")
    meta = {k: v for k, v in message.meta.items() if k in keep}
    meta["continued"] = int(message.meta.get("continued", 0) or 0) + 1
    meta["writer"] = st.writer_id()
    service.store.update_message(message_id, text, st.PARTIAL)
    return service._queue(conversation, message, meta, text)


def answer_unanswered(service: ChatService, conversation_id: int) -> tuple[st.Message, int]:
    """Answer the chat's last message, a user's message left without an answer."""
    _check(service, conversation_id)
    last = service.store.last_messages(conversation_id, 1)
    if not last or last[0].role != "user":
        raise ValueError("The last message already has an answer: r answers it again.")
    return service._answer(conversation_id)


def prefill_answer(
    service: ChatService, conversation_id: int, start: str
) -> tuple[st.Message, int]:
    """Answer the chat's last user message, the answer beginning with ``start``.

    If that message has an answer already, it is kept as an earlier version,
    as ``regenerate`` keeps it.
    """
    _check(service, conversation_id)
    start = clean_text(start)
    if not start.strip():
        raise ValueError("Write how the answer begins.")
    last = service.store.last_messages(conversation_id, 1)
    if not last:
        raise ValueError("There is no message to answer.")
    if last[0].role == "assistant":
        return service.regenerate(conversation_id, prefill=start)
    return service._answer(conversation_id, prefill=start)
