"""The local engine with a reasoning model's template: SmolLM2 copied with a Qwen3-style and
a DeepSeek-R1-style chat template in its GGUF metadata, and scripted token streams (the tiny
model would not think): thinking split from the answer, counted, budgeted; the next turn's
prompt is exactly what the template renders, token by token.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from tui.core.engine_protocol import Generate, GenerationFinished, LoadModel, TokenText
from tui.core.prompt import PersonaPrompt, Turn

# Qwen3's way (abridged from its tokenizer_config): earlier answers lose their thinking, an
# answer after the last user message keeps it, and enable_thinking=false writes an empty block.
QWEN3 = (
    "{%- set last_user = namespace(i=-1) -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'user' -%}{%- set last_user.i = loop.index0 -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{%- if m.reasoning_content is defined and m.reasoning_content"
    " and loop.index0 > last_user.i -%}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + m.reasoning_content + '\\n</think>\\n\\n' -}}"
    "{{- m.content + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>assistant\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)

# DeepSeek-R1's way: the generation prompt opens the thinking itself.
R1 = """{%- for message in messages -%}
{%- if message.role == 'assistant' -%}
{{- '<|im_start|>assistant\\n' + message.content + '<|im_end|>\\n' -}}
{%- else -%}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}"""

SAMPLING = {"n_ctx": 512, "max_tokens": 48, "temperature": 0.0}
PERSONA = PersonaPrompt("You are helpful.")


def with_template(source: Path, target: Path, template: str) -> Path:
    """A copy of ``source`` whose GGUF metadata holds ``template`` (with the gguf package)."""
    template_file = target.with_suffix(".jinja")
    template_file.write_text(template)
    command = [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--force"]
    command += ["--chat-template-file", str(template_file), str(source), str(target)]
    subprocess.run(command, check=True, capture_output=True)
    return target


class Runner:
    """A ModelRunner in-process, its events kept."""

    def __init__(self, path: Path) -> None:
        from tui.engine.local.model import ModelRunner

        self.events: list[Any] = []
        self.runner = ModelRunner(self.events.append, lambda job_id: False, verbose=False)
        assert self.runner.load(LoadModel(str(path), n_ctx=512))
        self.llm = self.runner.llm
        self.sent: list[list[int]] = []  # tokens written into the answer (a budget's end)
        self._ids = iter(range(1, 10**6))

    def tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def script(self, texts: list[str], after_close: list[str] | None = None) -> None:
        """Make llm.generate yield the tokens of ``texts``; once tokens are written into
        it (a budget closed the thinking), those of ``after_close``."""
        runner = self

        def fake_generate(tokens: Any, **kwargs: Any) -> Iterator[int]:
            queue = [t for text in texts for t in runner.tokens(text)]
            while queue:
                sent = yield queue.pop(0)
                if sent is not None:
                    runner.sent.append(list(sent))
                    queue = [t for text in after_close or [] for t in runner.tokens(text)]

        self.llm.generate = fake_generate

    def run(self, history: list[Turn], **sampling: Any) -> GenerationFinished:
        self.events.clear()
        job = Generate(next(self._ids), PERSONA, history, {**SAMPLING, **sampling})
        self.runner.generate(job)
        end = self.events[-1]
        assert isinstance(end, GenerationFinished), self.events
        return end

    def pieces(self, thinking: bool) -> str:
        return "".join(
            e.text for e in self.events if isinstance(e, TokenText) and e.thinking is thinking
        )


@pytest.fixture(scope="module")
def qwen3(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    path = with_template(model_path, tmp_path_factory.mktemp("gguf") / "qwen3ish.gguf", QWEN3)
    runner = Runner(path)
    yield runner
    runner.runner.close()


@pytest.fixture(scope="module")
def r1(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    path = with_template(model_path, tmp_path_factory.mktemp("gguf") / "r1ish.gguf", R1)
    runner = Runner(path)
    yield runner
    runner.runner.close()


@pytest.mark.model
def test_think_tags_from_the_template_are_split_and_counted(qwen3: Runner) -> None:
    qwen3.script(["<think>\nThe user", " says hi.\n</think>", "\n\nHello", " there!<|im_end|>"])
    try:
        end = qwen3.run([Turn("user", "hi")])
    finally:
        del qwen3.llm.generate
    assert qwen3.pieces(thinking=True) == "The user says hi.\n"
    assert qwen3.pieces(thinking=False) == "Hello there!" == end.text
    assert end.reasoning == "The user says hi."
    thinking = len(qwen3.tokens("<think>\nThe user says hi.\n</think>"))
    assert abs(end.stats["thinking_tokens"] - thinking) <= 2  # markers' token edges
    assert end.completion_tokens > end.stats["thinking_tokens"]  # tokens/s counts both
    assert end.stats["thinking_seconds"] >= 0


@pytest.mark.model
def test_a_prompt_that_opens_the_thinking(r1: Runner) -> None:
    r1.script(["Okay, a greeting.", "\n</think>\n\n", "Hi!", "<|im_end|>"])
    try:
        end = r1.run([Turn("user", "hi")])
    finally:
        del r1.llm.generate
    assert r1.runner.last_built.text.endswith("<think>\n")
    assert (end.reasoning, end.text) == ("Okay, a greeting.", "Hi!")
    assert r1.pieces(thinking=False) == "Hi!"


@pytest.mark.model
def test_the_next_turns_prompt_is_what_the_template_renders(qwen3: Runner) -> None:
    """Earlier thinking goes to the template as reasoning_content (Qwen3 drops it for earlier
    turns): never pasted into the content. Compared token by token with Jinja's own rendering."""
    history = [
        Turn("user", "What is 2+2?"),
        Turn("assistant", "4", reasoning="two plus two makes four"),
        Turn("user", "And 3+3?"),
    ]
    qwen3.script(["6<|im_end|>"])
    try:
        qwen3.run(history)
    finally:
        del qwen3.llm.generate
    built = qwen3.runner.last_built
    messages = [{"role": "system", "content": PERSONA.system}]
    for turn in history:
        message = {"role": turn.role, "content": turn.content}
        if turn.reasoning:
            message["reasoning_content"] = turn.reasoning
        messages.append(message)
    expected = (
        jinja2.Environment()
        .from_string(QWEN3)
        .render(messages=messages, add_generation_prompt=True, enable_thinking=True)
    )
    assert built.text == expected
    assert built.tokens == qwen3.llm.tokenize(expected.encode(), add_bos=True, special=True)
    assert "two plus two" not in built.text and "<think>" not in built.text


@pytest.mark.model
def test_the_latest_answers_thinking_reaches_a_template_that_keeps_it(qwen3: Runner) -> None:
    """A continuation after an answer (no user turn after it): the template keeps the thinking."""
    history = [Turn("user", "Hi"), Turn("assistant", "Hello", reasoning="be kind")]
    qwen3.script(["!<|im_end|>"])
    try:
        qwen3.run(history)
    finally:
        del qwen3.llm.generate
    assert "<think>\nbe kind\n</think>\n\nHello" in qwen3.runner.last_built.text


@pytest.mark.model
def test_reasoning_off_reaches_the_template(qwen3: Runner) -> None:
    qwen3.script(["Hi<|im_end|>"])
    try:
        qwen3.run([Turn("user", "hi")], reasoning="off")
    finally:
        del qwen3.llm.generate
    assert qwen3.runner.last_built.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.model
def test_a_thinking_budget_closes_the_thinking_and_the_model_answers(qwen3: Runner) -> None:
    qwen3.sent.clear()
    endless = ["<think>\n"] + [" and so on"] * 200
    qwen3.script(endless, after_close=["The", " answer.", "<|im_end|>"])
    try:
        end = qwen3.run([Turn("user", "think long")], reasoning_budget=8)
    finally:
        del qwen3.llm.generate
    assert qwen3.sent == [qwen3.tokens("</think>\n\n")]  # written in, as llama.cpp does
    assert end.text == "The answer." and end.reason == "stop"
    assert end.reasoning.startswith("and so on") and end.stats["thinking_tokens"] == 8
    assert "</think>" not in end.text
