"""Chat templates render as llama-server renders them: each rule, without a server.

The templates under tests/data/templates are llama.cpp's own; the expected
texts were recorded from a real llama-server (see tests/llama_templates.py),
and test_template_parity.py checks all 70 of llama.cpp's templates live.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache

import pytest

from tests.llama_templates import ANSWER, CASES, FIXTURES, FOUR_TURNS, HELLO, QUESTION, RECORDED
from tui.core.chat_template import TemplateError, render_chat
from tui.core.prompt import PersonaPrompt, PromptBuilder, PromptFormat, Turn

RECORDING = json.loads(RECORDED.read_text(encoding="utf-8"))
RECORDED_DAY = datetime.strptime(RECORDING["date"], "%Y-%m-%d").replace(hour=12)
BOS, EOS = RECORDING["bos_token"], RECORDING["eos_token"]
MAY_6 = datetime(2024, 5, 6, 7, 8)


@cache
def template(name: str) -> str:
    return (FIXTURES / f"{name}.jinja").read_text(encoding="utf-8")


def render(name: str, turns: tuple[Turn, ...] = FOUR_TURNS, **settings: object) -> str:
    settings.setdefault("now", RECORDED_DAY)
    return render_chat(template(name), turns, BOS, EOS, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(RECORDING["outputs"]))
def test_vendored_templates_render_as_recorded_from_llama_server(name: str) -> None:
    """Every case, every setting, byte for byte what llama-server answered."""
    recorded = RECORDING["outputs"][name]
    source = template(name.removesuffix(".jinja"))
    for case_name, case in CASES.items():
        theirs = recorded[case_name]
        if isinstance(theirs, dict):  # llama-server refused this conversation
            with pytest.raises(TemplateError):
                render_chat(source, case.turns, BOS, EOS, now=RECORDED_DAY, **case.ours)
            continue
        ours = render_chat(source, case.turns, BOS, EOS, now=RECORDED_DAY, **case.ours)
        assert ours == theirs, f"{name} / {case_name}"


# Thinking: on by default where the template can switch it, as llama-server does.


def test_thinking_templates_leave_think_open_by_default() -> None:
    assert render("Qwen-QwQ-32B").endswith("<|im_start|>assistant\n<think>\n")
    assert render("Qwen-QwQ-32B", thinking=False).endswith("<think>\n</think>")
    assert render("Qwen-QwQ-32B", thinking=True) == render("Qwen-QwQ-32B")


def test_gemma4_asks_for_thinking_in_the_system_turn_by_default() -> None:
    assert "<|turn>system\n<|think|>\nYou are a helpful assistant." in render(
        "google-gemma-4-31B-it"
    )
    assert "<|think|>" not in render("google-gemma-4-31B-it", thinking=False)


def test_a_template_that_only_rewords_an_instruction_is_not_a_thinking_template() -> None:
    """Apertus words "Deliberation" on or off; llama.cpp does not see thinking tags: off."""
    assert "Deliberation: disabled" in render("Apertus-8B-Instruct")
    assert "Deliberation: enabled" in render("Apertus-8B-Instruct", thinking=True)


def test_reasoning_effort_reaches_the_template() -> None:
    assert "Reasoning: medium" in render("openai-gpt-oss-120b")  # the template's default
    assert "Reasoning: low" in render("openai-gpt-oss-120b", reasoning_effort="low")
    assert "Reasoning: high" in render("openai-gpt-oss-120b", reasoning_effort="high")


def test_reasoning_effort_none_turns_thinking_off() -> None:
    assert render("Qwen-QwQ-32B", reasoning_effort="none") == render("Qwen-QwQ-32B", thinking=False)


def test_deepseek_v4_past_answers_carry_an_empty_thought_while_thinking() -> None:
    text = render("deepseek-ai-DeepSeek-V4")
    assert "<｜Assistant｜><think></think>Hi! How can I help?" in text
    assert text.endswith("<｜User｜>What is 2+2?<｜Assistant｜><think>")
    off = render("deepseek-ai-DeepSeek-V4", thinking=False)
    assert "<｜Assistant｜></think>Hi! How can I help?" in off and off.endswith("</think>")


# Reasoning of earlier answers: passed as reasoning_content, the way templates read it.


def test_an_answers_reasoning_reaches_the_template_as_reasoning_content() -> None:
    turns = (HELLO, Turn("assistant", ANSWER.content, "They greet me."), QUESTION)
    kept = render("deepseek-ai-DeepSeek-V4", turns)
    assert "<｜Assistant｜><think>They greet me.</think>Hi! How can I help?" in kept
    dropped = render("deepseek-ai-DeepSeek-V4", turns, preserve_reasoning=False)
    assert "They greet me." not in dropped


def test_templates_reading_message_thinking_get_the_reasoning_there() -> None:
    """LFM2.5 reads ``message.thinking`` (llama.cpp copies reasoning_content there)."""
    turns = (HELLO, Turn("assistant", ANSWER.content, "They greet me."), QUESTION)
    assert "<think>They greet me.</think>Hi! How can I help?" in render("LFM2.5-8B-A1B", turns)


def test_mistral_reasoning_templates_get_content_blocks() -> None:
    turns = (HELLO, Turn("assistant", ANSWER.content, "They greet me."), QUESTION)
    text = render("mistralai-Ministral-3-14B-Reasoning-2512", turns)
    assert "[INST]Hello![/INST][THINK]They greet me.[/THINK]Hi! How can I help?" in text


# Dates: today, as llama.cpp provides it.


def test_llama_3_prints_the_given_date_not_the_templates_fallback() -> None:
    text = render("meta-llama-Llama-3.1-8B-Instruct", now=MAY_6)
    assert "Today Date: 06 May 2024\n" in text and "26 Jul 2024" not in text


def test_the_date_defaults_to_today() -> None:
    before = datetime.now().strftime("%d %b %Y")
    text = render_chat(template("meta-llama-Llama-3.1-8B-Instruct"), list(FOUR_TURNS))
    after = datetime.now().strftime("%d %b %Y")
    assert f"Today Date: {before}\n" in text or f"Today Date: {after}\n" in text


def test_strftime_now_and_datetime_use_the_given_time() -> None:
    text = render_chat("{{ strftime_now('%Y-%m-%d %H:%M') }}|{{ datetime }}", [HELLO], now=MAY_6)
    assert text == "2024-05-06 07:08|May 06 2024"


# Tool-use templates: tools are left undefined, as llama-server leaves them.


def test_tool_use_templates_render_without_tools() -> None:
    hermes = render("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use")
    assert "<tools>  </tools>" in hermes and hermes.endswith("<|im_start|>assistant\n")
    firefunction = render("fireworks-ai-llama-3-firefunction-v2", now=MAY_6)
    assert "Available functions as JSON spec:\n\nToday is May 06 2024." in firefunction


def test_text_joined_with_none_or_undefined_is_the_text() -> None:
    """llama.cpp's Jinja treats none and undefined as "" when joined to text."""
    text = render_chat(
        "{{ 'a' + nothing }}|{{ none + 'b' }}|{% set x = none %}{{ 'c' ~ x ~ nothing }}|{{ none }}",
        [HELLO],
    )
    assert text == "a|b|c|"


def test_tools_are_undefined_not_none() -> None:
    text = render_chat(
        "{% if tools is not none %}N{% endif %}{% if tools is defined %}D{% endif %}"
        "{% if tools %}T{% endif %}{% for t in tools %}x{% endfor %}",
        [HELLO],
    )
    assert text == "N"  # as llama-server renders it


# The system role: folded into the first user turn where the template ignores it.


def test_gemma2_gets_the_system_message_in_the_first_user_turn() -> None:
    text = render("google-gemma-2-2b-it")
    assert text.startswith(
        f"{BOS}<start_of_turn>user\nYou are a helpful assistant.\nHello!<end_of_turn>\n"
    )


def test_a_persona_works_with_gemma2() -> None:
    builder = PromptBuilder(PromptFormat(template("google-gemma-2-2b-it"), BOS, EOS), str.split)
    persona = PersonaPrompt("Answer in French.")
    text = builder.render(persona, [Turn("user", "Hi")], "chat")
    assert "<start_of_turn>user\nAnswer in French.\nHi<end_of_turn>" in text


def test_a_persona_without_system_text_works_with_gemma2() -> None:
    """Gemma 2 reads ``messages[0]``: the persona block alone (no system text, no
    examples) cannot be rendered, but a prompt with the user's message can."""
    builder = PromptBuilder(PromptFormat(template("google-gemma-2-2b-it"), BOS, EOS), str.split)
    built = builder.build(PersonaPrompt(""), [Turn("user", "Hi there")], 4096)
    assert built.text.endswith("<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n")
    assert built.n_keep == 0


def test_a_template_that_reads_the_system_message_keeps_it() -> None:
    text = render_chat(
        "{% for m in messages %}[{{ m.role }}:{{ m['content'] }}]{% endfor %}", list(FOUR_TURNS)
    )
    assert text.startswith("[system:You are a helpful assistant.][user:Hello!]")


def test_stepfun_messages_are_trimmed_as_llama_cpp_trims_them() -> None:
    turns = (Turn("system", " S \n"), Turn("user", "\n hi \t"))
    assert "<|im_start|>user\nhi<|im_end|>" in render("StepFun3.5-Flash", turns)


def test_probing_a_template_does_not_swallow_the_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A template that loops when probed still fails within the limit, with a clear error."""
    import tui.core.chat_template as chat_template

    monkeypatch.setattr(chat_template, "RENDER_SECONDS", 0.3)
    endless = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="did not finish"):
        render_chat(endless + "{{ enable_thinking }}", [HELLO])
