"""Continue, answer and prefill in the chat service; the prompt record in the store."""

from __future__ import annotations

import pytest

from tests.test_runner import ManualEngine
from tui.core import chat_service as rn
from tui.core import continuation
from tui.core import store as st
from tui.core.engine_protocol import GenerationFinished, GenerationStarted, TokenText
from tui.core.personas import load_library
from tui.core.store_prompts import load_prompt, save_prompt


@pytest.fixture
def service(store: st.Store) -> rn.ChatService:
    return rn.ChatService(store, ManualEngine(), load_library(), "model.gguf")


def finish(service: rn.ChatService, job_id: int, pieces: list[str], reason: str = "stop") -> None:
    service.handle(GenerationStarted(job_id, 10, 4096, 0, "chat"))
    for piece in pieces:
        service.handle(TokenText(job_id, piece))
    service.handle(GenerationFinished(job_id, "".join(pieces), reason, len(pieces)))


def test_continue_appends_to_the_same_answer(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, job_id = service.send(chat.id, "Name the planets.")
    finish(service, job_id, ["Mercury,", " Venus"], reason="length")
    job_id = continuation.continue_answer(service, chat.id, answer.id)
    job = service.engine.jobs[-1]
    assert job.prefill == "Mercury, Venus"
    assert [t.role for t in job.history] == ["user"]  # no new turn, the answer is not history
    # Saved as it streams: the text so far is there before the first new token.
    assert service.store.get_message(answer.id).content == "Mercury, Venus"
    assert service.store.get_message(answer.id).status == st.PARTIAL
    finish(service, job_id, [",", " Earth."])
    saved = service.store.get_message(answer.id)
    assert saved.content == "Mercury, Venus, Earth." and saved.status == st.COMPLETE
    assert saved.meta["continued"] == 1
    assert [m.id for m in service.store.messages(chat.id)][-1] == answer.id  # no new message


def test_continue_after_the_context_note_drops_the_note(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, job_id = service.send(chat.id, "Go on forever.")
    finish(service, job_id, ["On and on"], reason="context")
    assert service.store.get_message(answer.id).content.endswith(rn.CONTEXT_LIMIT_NOTE)
    continuation.continue_answer(service, chat.id, answer.id)
    assert service.engine.jobs[-1].prefill == "On and on"


def test_a_cancelled_continue_keeps_both_parts(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, job_id = service.send(chat.id, "Hi")
    finish(service, job_id, ["Hello"], reason="cancelled")
    job_id = continuation.continue_answer(service, chat.id, answer.id)
    service.handle(TokenText(job_id, " there"))
    service.handle(GenerationFinished(job_id, "", "cancelled"))
    assert service.store.get_message(answer.id).content == "Hello there"


def test_an_answer_with_replies_is_continued_as_a_new_version(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    user, answer, job_id = service.send(chat.id, "One")
    finish(service, job_id, ["First"], reason="length")
    _, _, job_id = service.send(chat.id, "Two")
    finish(service, job_id, ["Second"])
    job_id = continuation.continue_answer(service, chat.id, answer.id)
    finish(service, job_id, [" and more"])
    # The old answer and its replies stay on their branch; the continued one is beside it.
    assert service.store.get_message(answer.id).content == "First"
    siblings = service.store.siblings(answer.id)
    assert [m.content for m in siblings] == ["First", "First and more"]
    assert [m.content for m in service.store.messages(chat.id)] == ["One", "First and more"]
    assert len(service.store.children(answer.id)) == 1
    with pytest.raises(ValueError, match="Only an answer"):
        continuation.continue_answer(service, chat.id, user.id)


def test_a_user_message_without_answer_is_answered(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, job_id = service.send(chat.id, "Hello?")
    finish(service, job_id, ["Hi"])
    service.store.delete_branch(answer.id)
    with pytest.raises(ValueError, match="no answer to regenerate"):
        service.regenerate(chat.id)  # what the user got before
    new, job_id = continuation.answer_unanswered(service, chat.id)
    assert new.role == "assistant" and service.engine.jobs[-1].history[-1].content == "Hello?"
    finish(service, job_id, ["Hi", " again"])
    assert service.store.get_message(new.id).content == "Hi again"
    with pytest.raises(ValueError, match="already has an answer"):
        continuation.answer_unanswered(service, chat.id)


def test_prefill_starts_the_answer(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    service.store.add_message(chat.id, "user", "Write a haiku.")
    answer, job_id = continuation.prefill_answer(service, chat.id, "Autumn moon")
    assert service.engine.jobs[-1].prefill == "Autumn moon"
    assert service.store.get_message(answer.id).content == "Autumn moon"
    finish(service, job_id, [" rises", " slowly"])
    assert service.store.get_message(answer.id).content == "Autumn moon rises slowly"
    # Again on an answered question: a new version beside the old one, which stays.
    again, job_id = continuation.prefill_answer(service, chat.id, "Cold\x1b[2J rain")
    assert service.engine.jobs[-1].prefill == "Cold rain"  # cleaned: data, not sequences
    finish(service, job_id, [" falls"])
    assert service.store.get_message(again.id).content == "Cold rain falls"
    versions = [m.content for m in service.store.siblings(again.id)]
    assert versions == ["Autumn moon rises slowly", "Cold rain falls"]


def test_busy_chat_refuses(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, _ = service.send(chat.id, "Hi")
    with pytest.raises(rn.Busy):
        continuation.continue_answer(service, chat.id, answer.id)
    with pytest.raises(rn.Busy):
        continuation.prefill_answer(service, chat.id, "x")


def test_the_prompt_is_stored_with_the_answer_and_goes_with_it(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, job_id = service.send(chat.id, "Hi")
    info = {"tokens": 12, "seed": 99, "sampling": {"temperature": 0.5}, "dropped": 0}
    service.handle(
        GenerationStarted(
            job_id, 12, 4096, 0, "chat", 3, "<|im_start|>user\nHi\x1b]52;c;x\x07", info
        )
    )
    record = load_prompt(service.store, answer.id)
    assert record is not None
    assert record.text == "<|im_start|>user\nHi"  # escape sequences never come back
    assert record.info["seed"] == 99 and record.info["cached_tokens"] == 3
    assert record.info["window_start_id"] == service.store.messages(chat.id)[-2].id
    # The chat's messages are read without it; it goes when its answer goes.
    service.handle(GenerationFinished(job_id, "Hello", "stop"))
    service.store.delete_branch(answer.id)
    assert load_prompt(service.store, answer.id) is None
    # A prompt survives a restart (another connection reads it).
    _, other, job_id = service.send(chat.id, "Again")
    save_prompt(service.store, other.id, "text", {"tokens": 1})
    reopened = st.Store(service.store.path)
    assert load_prompt(reopened, other.id).text == "text"
    reopened.close()


def test_an_engine_without_a_prompt_records_nothing(service: rn.ChatService) -> None:
    chat = service.new_conversation("assistant")
    _, answer, job_id = service.send(chat.id, "Hi")
    service.handle(GenerationStarted(job_id, 12, 4096, 0, "chat"))
    assert load_prompt(service.store, answer.id) is None


def test_the_prompt_view_says_what_was_left_out_and_the_log_has_the_job() -> None:
    import io

    from tui.core.prompt_record import log_prompt
    from tui.core.store_prompts import PromptRecord
    from tui.ui.screens.prompt_view import facts

    info = {"tokens": 900, "n_ctx": 1024, "cached_tokens": 850, "cut": 1, "seed": 5,
            "sampling": {"temperature": 0.7, "top_k": 40}, "mode": "chat", "source": "local",
            "prefill": 12}  # fmt: skip
    lines = facts(PromptRecord(1, "text", info), left_out=6)
    assert lines[0] == "900 tokens of a 1024-token window (850 reused from the cache)"
    assert "6 earlier messages left out" in lines[1] and "1 earlier answer shortened" in lines[1]
    assert "temperature=0.7" in lines[2] and "seed=5" in lines[2]
    assert "12 characters" in lines[3]
    out = io.StringIO()
    log_prompt(42, "<|im_start|>user\nhi\x1b[2J", info, out)
    logged = out.getvalue()
    assert logged.startswith("--- job 42 prompt ") and '"seed": 5' in logged
    assert "<|im_start|>user\nhi\n--- end of job 42 prompt" in logged and "\x1b" not in logged
