"""What a request to a server says: the sampling fields it knows, and token counts.

See :mod:`tui.engine.remote` for how a persona reaches a server.
"""

from __future__ import annotations

from typing import Any

from tui.core.sampling import REASONING_AUTO, REASONING_OFF, REASONING_ON, SPEC, Sampling

CHAT_MARGIN = 32  # tokens kept free for the server's real chat template

# Used only to *count* chat-mode tokens: the server renders its own template.
COUNTING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

OPENAI_SETTINGS = frozenset(
    {"temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed"}
)
# n_ctx is honoured here (the chat's window is capped at it), whatever the server.
_CLIENT_SIDE = frozenset({"n_ctx"})
_EXTENSIONS: dict[str, frozenset[str]] = {
    "llama.cpp": frozenset(
        {
            "top_k",
            "min_p",
            "typical_p",
            "repeat_penalty",
            "repeat_last_n",
            "mirostat_mode",
            "mirostat_tau",
            "mirostat_eta",
        }
    ),
    "llama-cpp-python": frozenset(
        {"top_k", "min_p", "repeat_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta"}
    ),
    "vllm": frozenset({"top_k", "min_p", "repeat_penalty"}),
}


# Reasoning: what each server can be told (see reasoning_fields).
_REASONING: dict[str, frozenset[str]] = {
    "llama.cpp": frozenset({"reasoning", "reasoning_effort", "reasoning_budget"}),
    "vllm": frozenset({"reasoning", "reasoning_effort", "reasoning_budget"}),
    "ollama": frozenset({"reasoning", "reasoning_effort", "reasoning_budget"}),
    "openai": frozenset({"reasoning_effort"}),
    "auto": frozenset({"reasoning_effort"}),
}
# Servers that continue a final assistant message given as a prefill
# (``continue_final_message``): a thinking budget closes the thinking and the
# model answers after it. Elsewhere the answer is asked for with thinking off.
PREFILL_KINDS = frozenset({"llama.cpp", "vllm"})


def supported_settings(kind: str) -> frozenset[str]:
    """The sampling settings a server of ``kind`` acts on; the UI greys out the rest.

    Plain OpenAI-style servers (and Ollama's OpenAI API) only know the
    OpenAI fields; llama.cpp's server knows nearly all of llama.cpp's.
    """
    known = OPENAI_SETTINGS | _CLIENT_SIDE | _EXTENSIONS.get(kind, frozenset())
    return known | _REASONING.get(kind, frozenset())


def reasoning_fields(sampling: Sampling, kind: str) -> dict[str, Any]:
    """The request fields that switch thinking on or off and set its effort and budget.

    ``reasoning`` "auto" sends nothing: the server and the model's template
    decide. llama.cpp's server and vLLM read ``chat_template_kwargs.enable_thinking``
    (Qwen3, DeepSeek V3.1, SmolLM3, GLM…); Ollama reads ``think`` (its own
    API) and ``reasoning_effort`` ("none" = off, its OpenAI API); OpenAI and
    gpt-oss read ``reasoning_effort``, which is sent when thinking is on or
    the effort was changed from its default. llama.cpp's server enforces a
    thinking budget itself (``reasoning_budget_tokens``) and is asked to split
    the thinking into ``reasoning_content`` whatever its ``--reasoning-format``.
    """
    known = _REASONING.get(kind, frozenset())
    fields: dict[str, Any] = {}
    mode, effort = sampling.reasoning, sampling.reasoning_effort
    effort_wanted = mode == REASONING_ON or effort != SPEC["reasoning_effort"][0]
    if kind in ("llama.cpp", "vllm"):
        if mode != REASONING_AUTO:
            fields["chat_template_kwargs"] = {"enable_thinking": mode == REASONING_ON}
        if effort_wanted and mode != REASONING_OFF:
            fields["reasoning_effort"] = effort
        if kind == "llama.cpp":
            fields["reasoning_format"] = "deepseek"
            if sampling.reasoning_budget >= 0:
                fields["reasoning_budget_tokens"] = sampling.reasoning_budget
    elif kind == "ollama":
        if mode == REASONING_OFF:
            fields["think"], fields["reasoning_effort"] = False, "none"
        else:
            if mode == REASONING_ON:
                fields["think"] = True
            if effort != SPEC["reasoning_effort"][0]:
                fields["reasoning_effort"] = effort
    elif "reasoning_effort" in known and effort_wanted and mode != REASONING_OFF:
        fields["reasoning_effort"] = effort
    return fields


def sampling_fields(sampling: Sampling, kind: str) -> dict[str, Any]:
    """The request fields for ``sampling`` on a server of ``kind`` (no max_tokens/stop).

    Only fields the server knows are sent: OpenAI itself rejects unknown ones.
    """
    fields: dict[str, Any] = {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
    }
    if sampling.seed >= 0:
        fields["seed"] = sampling.seed
    extra = _EXTENSIONS.get(kind, frozenset())
    if "top_k" in extra:
        # vLLM disables top-k with -1 (older versions reject 0).
        fields["top_k"] = -1 if kind == "vllm" and sampling.top_k <= 0 else sampling.top_k
    if "min_p" in extra:
        fields["min_p"] = sampling.min_p
    if "typical_p" in extra:
        fields["typical_p"] = sampling.typical_p
    if "repeat_penalty" in extra:
        name = "repetition_penalty" if kind == "vllm" else "repeat_penalty"
        fields[name] = sampling.repeat_penalty
    if "repeat_last_n" in extra:
        fields["repeat_last_n"] = sampling.repeat_last_n
    if "mirostat_mode" in extra:
        name = "mirostat" if kind == "llama.cpp" else "mirostat_mode"
        fields[name] = sampling.mirostat_mode
        fields["mirostat_tau"] = sampling.mirostat_tau
        fields["mirostat_eta"] = sampling.mirostat_eta
    return fields


def estimate_tokens(text: str) -> int:
    """A deliberately high guess of the token count, for servers that cannot count.

    One token per 3 bytes of UTF-8 (prose runs about 4 characters a token,
    CJK about one a character), plus one per digit (Llama tokenizers split
    numbers into digits), plus 8. Too high by about a third for English, so
    a request stays inside the window; a server that still refuses one is
    reported as "too long" with the advice to set the endpoint's n_ctx.
    """
    data = text.encode("utf-8")
    return (len(data) + 2) // 3 + sum(ch.isdigit() for ch in text) + 8
