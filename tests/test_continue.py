"""Continue, answer and prefill: the prompt the model reads, and what is stored.

The prompt of a continued answer must be exactly what the chat template
renders for the whole conversation, cut where the answer's text ends: no
end-of-turn after it (which would start a new turn), no repeated text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.llama_templates import templates_dir
from tui.core.chat_template import TemplateError, render_chat
from tui.core.engine_protocol import Generate, GenerationFinished, GenerationStarted, TokenText
from tui.core.prompt import (
    CHAT,
    TRANSCRIPT,
    PersonaPrompt,
    PromptBuilder,
    PromptFormat,
    Turn,
    render_transcript,
    with_prefill,
)
from tui.core.reasoning import KNOWN_TAGS
from tui.core.turn_policy import ReplyFilter, clean_reply

# llama.cpp's real templates, where this machine has them ($LLAMA_TUI_TEMPLATES_DIR,
# or beside llama-server's source tree)
TEMPLATES = templates_dir() or Path(__file__).parent / "no-llama-templates"  # absent: skipped
# Templates that write an assistant message's text as it is (then close the turn):
# for these, the chat rendered with its answer starts with the continue prompt. The
# others (thinking templates that drop or add <think> blocks to a finished answer;
# Mistral Nemo, which moves the system text to the last user message) render a
# finished chat differently; the prompt is still the generation prompt the answer
# was written after, plus its text (test_prefill_prompt_is_the_generation_prompt…).
VERBATIM = [
    "Apertus-8B-Instruct",
    "ByteDance-Seed-OSS",
    "GigaChat3-10B-A1.8B",
    "GigaChat3.1-10B-A1.8B",
    "HuggingFaceTB-SmolLM3-3B",
    "Kimi-K2-Instruct",
    "LFM2-8B-A1B",
    "LFM2.5-8B-A1B",
    "LFM2.5-Instruct",
    "MiMo-VL",
    "MiniMax-M1",
    "Mistral-Small-3.2-24B-Instruct-2506",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
    "Qwen-Qwen2.5-7B-Instruct",
    "Qwen3-Coder",
    "Reka-Edge",
    "fireworks-ai-llama-3-firefunction-v2",
    "google-gemma-4-31B-it-interleaved",
    "google-gemma-4-31B-it",
    "ibm-granite-granite-3.3-2B-Instruct",
    "ibm-granite-granite-4.0",
    "ibm-granite-granite-4.1",
    "meetkai-functionary-medium-v3.1",
    "meta-llama-Llama-3.1-8B-Instruct",
    "meta-llama-Llama-3.2-3B-Instruct",
    "meta-llama-Llama-3.3-70B-Instruct",
    "microsoft-Phi-3.5-mini-instruct",
    "mistralai-Ministral-3-14B-Reasoning-2512",
    "moonshotai-Kimi-K2",
    "tencent-Hy3",
    "unsloth-Apriel-1.5",
    "unsloth-mistral-Devstral-Small-2507",
]
CLOSING = {
    "Qwen-Qwen2.5-7B-Instruct": "<|im_end|>",
    "meta-llama-Llama-3.1-8B-Instruct": "<|eot_id|>",
    "microsoft-Phi-3.5-mini-instruct": "<|end|>",
    "ibm-granite-granite-4.0": "<|end_of_text|>",
}
PERSONA = PersonaPrompt("You are terse.")
HISTORY = [Turn("user", "Name three rivers."), Turn("assistant", "Nile."), Turn("user", "More?")]
PREFILL = "The Amazon, the Danube and"


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def template(name: str) -> str:
    path = TEMPLATES / f"{name}.jinja"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return path.read_text()


@pytest.mark.parametrize("name", VERBATIM)
def test_prefill_prompt_is_the_template_cut_where_the_answer_ends(name: str) -> None:
    text = template(name)
    fmt = PromptFormat(text, bos_token="<s>", eos_token="</s>")
    built = PromptBuilder(fmt, chars).build(PERSONA, HISTORY, 100_000, prefill=PREFILL)
    head = [Turn("system", PERSONA.system)]
    whole = render_chat(text, [*head, *HISTORY, Turn("assistant", PREFILL)], "<s>", "</s>", False)
    assert built.mode == CHAT and built.prefill == PREFILL
    generation = render_chat(text, [*head, *HISTORY], "<s>", "</s>")
    assert built.text == with_prefill(generation, PREFILL, CHAT)
    # Token by token (one token per character here): the template's own rendering
    # of the whole chat, up to the end of the answer's text, and nothing else.
    assert built.tokens == chars(whole)[: len(built.tokens)]
    assert built.text.count(PREFILL) == 1  # no repeated text
    if name in CLOSING:  # rendering the partial answer as a message would close the turn
        assert whole[len(built.text) :].strip().startswith(CLOSING[name])


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in TEMPLATES.glob("*.jinja") if p.stem not in VERBATIM)
)
def test_prefill_prompt_is_the_generation_prompt_then_the_text(name: str) -> None:
    """The others: the generation prompt the answer was written after, then its text.

    A generation prompt that opens a thinking block gets it closed (empty) first:
    the text is the answer, not thinking.
    """
    text = template(name)
    builder = PromptBuilder(PromptFormat(text, "<s>", "</s>"), chars)
    try:
        plain = builder.build(PERSONA, HISTORY, 100_000)
    except TemplateError:
        pytest.skip(f"{name} does not render this chat (tools only, or no system role)")
    built = builder.build(PERSONA, HISTORY, 100_000, prefill=PREFILL)
    opened = [t for t in KNOWN_TAGS if plain.text.rstrip().endswith(t.open)]
    if opened:
        closing = f"\n\n{opened[0].close}\n\n"
        assert built.text == plain.text.rstrip() + closing + PREFILL
    else:
        assert built.text == plain.text + PREFILL
        assert built.tokens == plain.tokens + chars(PREFILL)


def test_a_generation_prompt_that_opens_thinking_is_closed_before_the_text() -> None:
    """Bielik's template opens <think> for the answer: the answer's text goes after it, closed."""
    built = PromptBuilder(PromptFormat(template("Bielik-11B-v3.0-Instruct")), chars).build(
        PERSONA, HISTORY, 100_000, prefill=PREFILL
    )
    assert built.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n" + PREFILL)


def test_prefill_in_transcript_mode_follows_the_name() -> None:
    bob = PersonaPrompt("A chat with Bob.", ai_name="Bob", mode=TRANSCRIPT)
    built = PromptBuilder(PromptFormat(), chars).build(bob, HISTORY, 10_000, prefill=PREFILL)
    assert built.mode == TRANSCRIPT
    assert built.text == render_transcript(bob, HISTORY, open_reply=True) + " " + PREFILL
    whole = render_transcript(bob, [*HISTORY, Turn("assistant", PREFILL)], open_reply=False)
    assert whole.startswith(built.text) and whole[len(built.text) :] == "\n"


def test_prefill_counts_against_the_budget() -> None:
    fmt = PromptFormat(template("Qwen-Qwen2.5-7B-Instruct"))
    builder = PromptBuilder(fmt, chars)
    plain = builder.build(PERSONA, HISTORY, 100_000)
    with_start = builder.build(PERSONA, HISTORY, 100_000, prefill=PREFILL)
    assert len(with_start.tokens) == len(plain.tokens) + len(PREFILL)
    assert plain.prefill == "" and not plain.text.endswith(PREFILL)


def test_text_after_a_prefill_keeps_its_leading_space_in_transcript_mode() -> None:
    reply = ReplyFilter(["\nUser:"], TRANSCRIPT, continuing=True)
    reply.feed(" the Rhine.")
    reply.finish()
    assert reply.text == " the Rhine."
    assert clean_reply(" the Rhine. ", PERSONA, TRANSCRIPT, continuing=True) == " the Rhine."
    fresh = ReplyFilter(["\nUser:"], TRANSCRIPT)
    fresh.feed(" Hello")
    fresh.finish()
    assert fresh.text == "Hello"  # a fresh answer still loses the space after Bob:


# --- the real model -----------------------------------------------------------------------


class Runner:
    """ModelRunner in-process (SmolLM2), one job at a time."""

    def __init__(self, path: Path) -> None:
        from tui.core.engine_protocol import LoadModel
        from tui.engine.local.model import ModelRunner

        self.events: list[Any] = []
        self.runner = ModelRunner(self.events.append, lambda job_id: False, verbose=False)
        assert self.runner.load(LoadModel(str(path), n_ctx=1024))
        self.next_id = 0

    def run(self, persona: PersonaPrompt, history: list[Turn], prefill: str = "", **sampling: Any):
        self.events.clear()
        self.next_id += 1
        values = {"n_ctx": 1024, "max_tokens": 12, "temperature": 0.0, "seed": 7, **sampling}
        self.runner.generate(Generate(self.next_id, persona, history, values, prefill=prefill))
        end = self.events[-1]
        assert isinstance(end, GenerationFinished), self.events
        started = next(e for e in self.events if isinstance(e, GenerationStarted))
        streamed = "".join(e.text for e in self.events if isinstance(e, TokenText))
        return started, streamed, end


@pytest.fixture(scope="module")
def runner(model_path: Path):
    made = Runner(model_path)
    yield made
    made.runner.close()


QUESTION = [Turn("user", "List the planets of the solar system, in order, with one fact each.")]


@pytest.mark.model
@pytest.mark.parametrize("mode", [CHAT, TRANSCRIPT])
def test_continue_goes_on_from_the_exact_text(runner: Runner, mode: str) -> None:
    """Greedy: an answer cut by max_tokens, then continued, reads as one uncut answer."""
    persona = PersonaPrompt("You are a helpful assistant.", mode=mode)
    _, _, whole = runner.run(persona, QUESTION, max_tokens=24)
    _, _, first = runner.run(persona, QUESTION, max_tokens=10)
    assert first.reason == "length" and whole.text.startswith(first.text)
    started, streamed, rest = runner.run(persona, QUESTION, prefill=first.text, max_tokens=14)
    assert started.prompt_text.endswith(first.text)  # the prompt ends with the answer so far
    assert streamed == rest.text.rstrip() or streamed.rstrip() == rest.text
    assert not rest.text.lstrip().startswith(first.text[:12])  # no repetition of the start
    # The same greedy tokens as the uncut answer: nothing repeated, nothing skipped.
    joined = first.text + rest.text
    assert whole.text.startswith(joined[: len(whole.text)].rstrip()), (first.text, rest.text)
    assert len(joined) > len(first.text)


@pytest.mark.model
def test_prompt_record_shows_the_rendered_prompt(runner: Runner) -> None:
    persona = PersonaPrompt("You are a helpful assistant.")
    started, _, end = runner.run(persona, QUESTION, max_tokens=2, seed=1234)
    info = started.prompt_info
    assert started.prompt_text.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert started.prompt_text.endswith("<|im_start|>assistant\n")
    assert {"<|im_start|>", "<|im_end|>"} <= set(info["special"])
    assert info["tokens"] == started.prompt_tokens == end.prompt_tokens
    assert info["seed"] == 1234 and info["sampling"]["max_tokens"] == 2
    assert info["dropped"] == 0 and info["source"] == "local"


@pytest.mark.model
def test_prefill_tokens_are_the_templates_tokens_of_the_whole_chat(runner: Runner) -> None:
    """With SmolLM2's own template and tokenizer: token by token, no end-of-turn after the text."""
    model = runner.runner
    fmt = model.builder.fmt
    start = "The planets, in order, are Mercury, Venus"
    built = model.builder.build(PERSONA, HISTORY, 4000, prefill=start)
    head = [Turn("system", PERSONA.system)]
    whole = render_chat(
        fmt.chat_template, [*head, *HISTORY, Turn("assistant", start)], fmt.bos_token,
        fmt.eos_token, add_generation_prompt=False,
    )  # fmt: skip
    whole_tokens = model._tokenize(whole)
    assert built.tokens == whole_tokens[: len(built.tokens)]
    assert (
        model.llm.detokenize(whole_tokens[len(built.tokens) :], special=True)
        .decode()
        .startswith("<|im_end|>")
    )
