"""Compare: one question answered two ways, side by side, and either kept as the chat's branch.

The two answers are real answers from the start: sibling answers of the
question (see :mod:`tui.core.chat_branches`), saved as they stream, so
nothing is lost if the comparison is closed or the app quits. While they
are written, the chat's branch stays what it was; keeping one makes it the
branch (its leaf). With another model, the local engine answers in turn:
the first model, then the second is loaded, then the chat's own again at
its next turn; only one model is in memory at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tui.core import store as st
from tui.core.chat_branches import BUSY, Busy
from tui.core.chat_service import ChatService
from tui.core.compare_variants import Variant
from tui.core.models import display_name

SIDES = ("left", "right")
TEMPERATURES = (0.0, 0.7, 1.2)


def variants(
    service: ChatService, conversation: st.Conversation, models: list[str] | None = None
) -> list[Variant]:
    """The ways a chat's question can be answered: its own settings first."""
    out = [Variant("This chat's settings")]
    for persona in service.personas.sorted():
        if persona.id != conversation.persona:
            out.append(Variant(f"Persona: {persona.name}", persona=persona.id))
    current = service.model_of(conversation)
    for model in models or []:
        if model != current and Path(model).is_file():
            out.append(Variant(f"Model: {display_name(model)}", model=model))
    for temperature in TEMPERATURES:
        label = "greedy" if temperature == 0 else "more random" if temperature > 1 else "default"
        out.append(
            Variant(f"Temperature {temperature:g} ({label})", sampling={"temperature": temperature})
        )
    return out


@dataclass
class Side:
    """One answer of the comparison."""

    variant: Variant
    message_id: int
    job_id: int


class Comparison:
    """Two answers to the question ``question_id`` of a chat; one may be kept."""

    def __init__(self, service: ChatService, conversation_id: int, question_id: int):
        question = service.store.get_message(question_id)
        if question.conversation_id != conversation_id or question.role != "user":
            raise ValueError("Select a message of yours (or an answer to one) to compare answers.")
        self.service = service
        self.conversation_id = conversation_id
        self.question = question
        self.sides: dict[str, Side] = {}
        self.kept: int | None = None

    @property
    def store(self) -> st.Store:
        return self.service.store

    def run(self, left: Variant, right: Variant) -> None:
        """Ask both; the answers are saved as they stream. The branch on screen stays."""
        if self.running():
            raise Busy("The comparison is still answering: wait, or Esc stops it.")
        if self.service.job_for(self.conversation_id):
            raise Busy(BUSY)
        before = self.store.leaf_id(self.conversation_id)
        self.sides.clear()
        self.kept = None
        for name, variant in zip(SIDES, (left, right), strict=True):
            meta = {"compare": variant.meta()}
            answer, job_id = self.service._answer(
                self.conversation_id, meta, parent_id=self.question.id, variant=variant
            )
            self.sides[name] = Side(variant, answer.id, job_id)
        if before is not None:
            self.store.set_leaf(self.conversation_id, before)

    def running(self) -> bool:
        return any(side.job_id in self.service.jobs for side in self.sides.values())

    def text(self, name: str) -> str:
        """The side's answer so far (in memory while it streams, else as saved)."""
        side = self.sides.get(name)
        if side is None:
            return ""
        job = self.service.jobs.get(side.job_id)
        if job is not None:
            return job.text
        try:
            return self.store.get_message(side.message_id).content
        except KeyError:
            return ""

    def state(self, name: str) -> str:
        """A few words on the side: waiting, writing, done, stopped, failed."""
        side = self.sides.get(name)
        if side is None:
            return "not asked yet"
        job = self.service.jobs.get(side.job_id)
        if job is not None:
            return "writing…" if job.started is not None else "waiting for its turn…"
        try:
            message = self.store.get_message(side.message_id)
        except KeyError:
            return "deleted"
        if message.status == st.ERROR:
            return f"failed: {message.meta.get('error', '')}"
        reason = message.meta.get("finish_reason", message.status)
        tokens = message.meta.get("completion_tokens")
        return f"done ({reason}{f', {tokens} tokens' if tokens else ''})"

    def keep(self, name: str) -> int:
        """Make the side's answer the chat's branch; returns its message id."""
        side = self.sides.get(name)
        if side is None:
            raise ValueError("Run the comparison first (r).")
        if self.service.jobs.get(side.job_id) is not None:
            raise Busy("That answer is still being written: wait for it, or Esc stops both.")
        self.store.set_leaf(self.conversation_id, self.store.newest_leaf(side.message_id))
        self.kept = side.message_id
        return side.message_id

    def stop(self) -> bool:
        """Stop both answers (what they wrote stays)."""
        found = False
        for side in self.sides.values():
            if side.job_id in self.service.jobs:
                self.service.engine.cancel(side.job_id)
                found = True
        return found
