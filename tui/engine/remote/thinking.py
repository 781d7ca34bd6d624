"""A reasoning model's thinking on a server: the history's earlier thinking, the
thinking figures of an answer, and the request that closes a thinking past its budget.

See :func:`tui.engine.remote.settings.reasoning_fields` for what switches it on or off.
"""

from __future__ import annotations

from typing import Any

from tui.core.prompt import Turn
from tui.core.sampling import REASONING_OFF, Sampling
from tui.engine.remote.settings import PREFILL_KINDS, reasoning_fields
from tui.engine.remote.stream import _Progress

# Where each server takes an earlier answer's thinking (its template then decides
# whether to keep it). DeepSeek's API refuses it (400), OpenAI has no such field:
# elsewhere it is not sent. Never pasted into the content as <think>.
HISTORY_REASONING = {"llama.cpp": "reasoning_content", "vllm": "reasoning_content"}
HISTORY_REASONING["ollama"] = "reasoning"
BUDGET_KINDS = frozenset({"vllm", "ollama"})  # thinking budgets enforced by us
THINKING_REQUEST = frozenset({"chat_template_kwargs", "reasoning_effort", "think"})


def chat_messages(
    system: str, examples: list[Turn], history: list[Turn], reasoning_field: str = ""
) -> list[dict[str, str]]:
    """The chat messages: persona system text, examples, then the history.

    ``reasoning_field``: the name under which an answer's thinking is sent
    ("" = not sent).
    """
    head = [Turn("system", system)] if system else []
    out = []
    for turn in [*head, *examples, *history]:
        message = {"role": turn.role, "content": turn.content}
        if reasoning_field and turn.role == "assistant" and turn.reasoning:
            message[reasoning_field] = turn.reasoning
        out.append(message)
    return out


def thinking_stats(progress: _Progress, usage: dict[str, Any], ended: float) -> dict[str, Any]:
    """``thinking_tokens`` (the server's count where it gives one) and ``thinking_seconds``."""
    if not progress.reasoning:
        return {}
    details = usage.get("completion_tokens_details")
    counted = details.get("reasoning_tokens") if isinstance(details, dict) else None
    tokens = counted if isinstance(counted, int) and counted > 0 else progress.thinking_pieces
    until = progress.answer_at or ended
    return {"thinking_tokens": tokens, "thinking_seconds": max(until - progress.first_at, 0.0)}


def budget_request(payload: dict[str, Any], progress: _Progress, kind: str) -> dict[str, Any]:
    """The request that makes the model answer after its thinking ran past the budget.

    A server that continues a prefilled answer (vLLM) gets the thinking so
    far, closed, as the start of the answer; others (Ollama) are asked again
    with thinking off (the model does not see the thinking so far).
    """
    again = {k: v for k, v in payload.items() if k not in THINKING_REQUEST}
    again["max_tokens"] = max(int(payload.get("max_tokens", 1)) - progress.pieces, 1)
    thought = progress.reasoning.strip()
    if kind in PREFILL_KINDS:
        prefill = {"role": "assistant", "content": f"<think>\n{thought}\n</think>\n\n"}
        again["messages"] = [*payload["messages"], prefill]
        again.update(continue_final_message=True, add_generation_prompt=False)
    else:
        off = Sampling(reasoning=REASONING_OFF)
        again.update(reasoning_fields(off, kind))
    return again
