"""Going on from an answer's start against a server (continue, prefill).

Which servers can, and how (the README's table says the same):

- **llama.cpp's llama-server**: its ``/apply-template`` renders the chat with
  the model's own template and generation prompt; the answer's start is
  appended to that text, which goes to the OpenAI-compatible
  ``/v1/completions`` as a raw prompt. The model reads exactly what it would
  read locally.
- **vLLM**: the answer's start is sent as a final assistant message with
  ``continue_final_message: true`` and ``add_generation_prompt: false``.
- **Ollama**: a final assistant message; Ollama's templates leave the last
  assistant message open, so the model goes on from it.
- **llama-cpp-python's server, OpenAI proper**: no way to go on from given
  text in chat mode (the API closes every message); :func:`can_prefill` says
  so, and the UI tells the user before anything is sent.

In transcript mode every server can: the prompt is plain text already.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tui.core.prompt import CHAT, with_prefill
from tui.core.prompt_record import SERVER_RENDERED, SERVER_TEMPLATE
from tui.engine.remote.messages import RemoteError

CAN_PREFILL = frozenset({"llama.cpp", "vllm", "ollama", "auto"})  # auto: checked at the job


def can_prefill(kind: str) -> bool:
    """Whether a server of ``kind`` can go on from an answer's start in chat mode."""
    return kind in CAN_PREFILL


def refusal(kind: str, label: str) -> str:
    """Why an answer cannot be continued on this server, for people."""
    return (
        f"{label} ({kind} server) cannot go on from an answer's text in chat mode: its API "
        "closes every message. llama.cpp's llama-server, vLLM and Ollama can; a persona in "
        "transcript mode works with any server."
    )


def prefill_request(
    kind: str,
    label: str,
    payload: dict[str, Any],
    messages: list[dict[str, str]],
    prefill: str,
    base: str,
    apply_template: Callable[[list[dict[str, str]]], str | None],
) -> tuple[str, str]:
    """Make ``payload`` go on from ``prefill`` in chat mode; returns (url, prompt as sent).

    ``messages`` are the chat's messages without the answer's start;
    ``apply_template`` asks llama-server to render them (None: it could not).
    Raises :class:`RemoteError` where the server has no way to do it.
    """
    if kind == "llama.cpp":
        rendered = apply_template(messages)
        if rendered is None:
            raise RemoteError(
                f"{label} did not render the chat template (/apply-template): this "
                "llama-server is too old to continue an answer; update it."
            )
        payload.pop("messages", None)
        payload["prompt"] = with_prefill(rendered, prefill, CHAT)
        return f"{base}/completions", payload["prompt"]
    if kind in ("vllm", "ollama"):
        payload["messages"] = [*messages, {"role": "assistant", "content": prefill}]
        if kind == "vllm":
            payload["continue_final_message"] = True
            payload["add_generation_prompt"] = False
        return f"{base}/chat/completions", messages_text(payload["messages"])
    raise RemoteError(refusal(kind, label))


def messages_text(messages: list[dict[str, str]]) -> str:
    """Chat messages as the prompt view shows them when the server renders the template."""
    return json.dumps(messages, indent=1, ensure_ascii=False)


def chat_request(
    engine: Any, url: str, payload: dict[str, Any], prefill: str
) -> tuple[str, str, str]:
    """The chat-mode request of ``engine`` (a RemoteEngine), going on from ``prefill`` if any.

    Returns (url, the prompt as the prompt view shows it, who rendered it).
    """
    shown = messages_text(payload["messages"])
    if not prefill:
        return url, shown, SERVER_RENDERED
    url, shown = prefill_request(
        engine.kind, engine.endpoint.label, payload, payload["messages"], prefill, engine.base,
        lambda messages: apply_template(engine, messages),
    )  # fmt: skip
    return url, shown, SERVER_TEMPLATE if "prompt" in payload else SERVER_RENDERED


def apply_template(engine: Any, messages: list[dict[str, str]]) -> str | None:
    """llama-server's rendering of ``messages`` with the generation prompt; None if it has none."""
    root = engine.endpoint.root_url
    data = engine._post_optional(f"{root}/apply-template", {"messages": messages})
    prompt = data.get("prompt")
    return prompt if isinstance(prompt, str) else None
