"""Compare: two answers to one question, stored as sibling answers; keeping one sets the leaf."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_continue_service import finish
from tests.test_runner import ManualEngine
from tui.core import chat_service as rn
from tui.core import store as st
from tui.core.compare import Comparison, variants
from tui.core.compare_variants import Variant
from tui.core.personas import load_library


class LoadingEngine(ManualEngine):
    """Records loads and jobs in the order the engine would run them."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def load(self, request) -> None:
        self.order.append(f"load {Path(request.path).name}")

    def generate(self, job) -> None:
        super().generate(job)
        self.order.append(f"job {job.job_id}")


@pytest.fixture
def service(tmp_path: Path) -> rn.ChatService:
    store = st.Store(tmp_path / "chats.db")
    model = tmp_path / "one.gguf"
    model.write_bytes(b"GGUF")
    made = rn.ChatService(store, LoadingEngine(), load_library(), str(model))
    yield made
    store.close()


def asked(service: rn.ChatService) -> tuple[int, int, int]:
    chat = service.new_conversation("assistant")
    user, answer, job_id = service.send(chat.id, "Why is the sky blue?")
    finish(service, job_id, ["Rayleigh scattering."])
    return chat.id, user.id, answer.id


def test_two_answers_become_siblings_and_the_branch_stays(service: rn.ChatService) -> None:
    chat, question, first = asked(service)
    comparison = Comparison(service, chat, question)
    left = Variant("greedy", sampling={"temperature": 0.0})
    right = Variant("Bob", persona="bob")
    comparison.run(left, right)
    left_job, right_job = service.engine.jobs[-2:]
    assert left_job.sampling["temperature"] == 0.0
    assert left_job.persona.ai_name == "Assistant"
    assert right_job.persona.ai_name == "Bob" and right_job.sampling["n_ctx"] == 512
    assert [t.content for t in right_job.history] == ["Why is the sky blue?"]
    assert comparison.running() and comparison.state("left") == "waiting for its turn…"
    with pytest.raises(rn.Busy):
        service.send(chat, "another question")  # the chat is answering
    # Both stream into sibling answers of the question; the branch on screen stays.
    finish(service, left_job.job_id, ["Light", " scatters."])
    finish(service, right_job.job_id, ["Because", " of air."])
    assert [m.content for m in service.store.messages(chat)][-1] == "Rayleigh scattering."
    answers = service.store.children(question)
    assert [m.content for m in answers] == [
        "Rayleigh scattering.",
        "Light scatters.",
        "Because of air.",
    ]
    assert answers[2].meta["compare"] == {"label": "Bob", "persona": "bob"}
    assert comparison.text("left") == "Light scatters."
    assert comparison.state("right").startswith("done (stop")
    kept = comparison.keep("right")
    assert service.store.leaf_id(chat) == kept == answers[2].id
    assert service.store.get_message(first).content == "Rayleigh scattering."  # nothing lost


def test_another_model_answers_in_its_turn(service: rn.ChatService, tmp_path: Path) -> None:
    other = tmp_path / "two.gguf"
    other.write_bytes(b"GGUF")
    chat, question, _ = asked(service)
    conversation = service.store.get_conversation(chat)
    choices = variants(service, conversation, [service.model, str(other)])
    assert choices[0].label == "This chat's settings"
    model_variant = next(v for v in choices if v.model == str(other))
    engine = service.engine
    engine.order.clear()
    Comparison(service, chat, question).run(choices[0], model_variant)
    left_job, right_job = engine.jobs[-2:]
    # One model at a time: the chat's model answers, then the other is loaded and answers.
    assert engine.order == [f"job {left_job.job_id}", "load two.gguf", f"job {right_job.job_id}"]
    assert service.store.children(question)[-1].model == str(other)
    finish(service, left_job.job_id, ["a"])
    finish(service, right_job.job_id, ["b"])
    engine.order.clear()
    service.send(chat, "and now?")  # the chat's own model comes back for its next turn
    assert engine.order[0] == "load one.gguf"


def test_keep_waits_for_the_answer_and_stop_keeps_what_was_written(
    service: rn.ChatService,
) -> None:
    chat, question, _ = asked(service)
    comparison = Comparison(service, chat, question)
    with pytest.raises(ValueError, match="Run the comparison"):
        comparison.keep("left")
    comparison.run(Variant("a"), Variant("b", sampling={"temperature": 1.2}))
    left_job, right_job = service.engine.jobs[-2:]
    with pytest.raises(rn.Busy):
        comparison.keep("left")
    service.handle(rn.TokenText(left_job.job_id, "half an"))
    assert comparison.stop()
    assert set(service.engine.cancelled) >= {left_job.job_id, right_job.job_id}
    service.handle(rn.GenerationFinished(left_job.job_id, "", "cancelled"))
    service.handle(rn.GenerationFinished(right_job.job_id, "", "cancelled"))
    assert comparison.text("left") == "half an"
    assert comparison.keep("left") == service.store.leaf_id(chat)


def test_only_a_question_can_be_compared(service: rn.ChatService) -> None:
    chat, _, answer = asked(service)
    with pytest.raises(ValueError, match="message of yours"):
        Comparison(service, chat, answer)
