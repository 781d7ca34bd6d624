"""Thinking split from the answer as it streams: every marker style, cut anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llama_templates import templates_dir
from tui.core.prompt import CHAT, TRANSCRIPT
from tui.core.reasoning import (
    HARMONY,
    INLINE,
    PLAIN,
    THINK,
    ReasoningFormat,
    ReasoningSplitter,
    Tags,
    detect_format,
    split_text,
    starts_inside,
)
from tui.core.turn_policy import ReplyFilter

# llama.cpp's real templates, where this machine has them ($LLAMA_TUI_TEMPLATES_DIR,
# or beside llama-server's source tree)
TEMPLATES = templates_dir() or Path(__file__).parent / "no-llama-templates"  # absent: skipped
QWEN3 = ReasoningFormat("tags", (THINK,), anywhere=True)
HARMONY_FMT = ReasoningFormat(HARMONY, (), anywhere=True)


def run(fmt: ReasoningFormat, pieces: list[str], inside: bool = False) -> tuple[str, str, list]:
    splitter = ReasoningSplitter(fmt, inside)
    out = []
    for piece in pieces:
        out += splitter.feed(piece)
    out += splitter.finish()
    thinking = "".join(t for k, t in out if k)
    answer = "".join(t for k, t in out if not k)
    return thinking, answer, out


def every_cut(text: str) -> list[list[str]]:
    """The text in two pieces at every position, and one character at a time."""
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


QWEN_OUT = "<think>\nThe user greets me. I greet back.\n</think>\n\nHello! How can I help?"


@pytest.mark.parametrize("pieces", every_cut(QWEN_OUT))
def test_think_tags_cut_anywhere(pieces: list[str]) -> None:
    thinking, answer, _ = run(QWEN3, pieces)
    assert thinking == "The user greets me. I greet back.\n"
    assert answer == "Hello! How can I help?"


R1_OUT = "Okay, 2+2 is 4.\n</think>\n\nThe answer is **4**."


@pytest.mark.parametrize("pieces", every_cut(R1_OUT))
def test_output_that_starts_inside_the_thinking(pieces: list[str]) -> None:
    """DeepSeek-R1's generation prompt opens <think>: the output has no opening tag."""
    thinking, answer, _ = run(QWEN3, pieces, inside=True)
    assert (thinking, answer) == ("Okay, 2+2 is 4.\n", "The answer is **4**.")


GPT_OSS_OUT = (
    "<|channel|>analysis<|message|>User says hi. Respond politely.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hi there!"
)


@pytest.mark.parametrize("pieces", every_cut(GPT_OSS_OUT))
def test_gpt_oss_channels_cut_anywhere(pieces: list[str]) -> None:
    thinking, answer, _ = run(HARMONY_FMT, pieces)
    assert (thinking, answer) == ("User says hi. Respond politely.", "Hi there!")


def test_gpt_oss_markers_as_whole_tokens_and_a_tool_header() -> None:
    pieces = ["<|channel|>", "analysis", "<|message|>", "Think", " more", "<|end|>", "<|start|>"]
    pieces += ["assistant", "<|channel|>", "commentary to=functions.x ", "<|constrain|>", "json"]
    pieces += ["<|message|>", "{}", "<|call|>"]
    thinking, answer, _ = run(HARMONY_FMT, pieces)
    assert thinking == "Think more{}" and answer == ""


def test_other_markers_from_their_templates() -> None:
    mistral = ReasoningFormat("tags", (Tags("[THINK]", "[/THINK]"),), anywhere=True)
    assert run(mistral, ["[THI", "NK]plan[/TH", "INK]Answer"])[:2] == ("plan", "Answer")
    gemma = ReasoningFormat("tags", (Tags("<|channel>thought", "<channel|>"),), anywhere=True)
    assert run(gemma, ["<|channel>thought\nhmm<channel|>Yes"])[:2] == ("hmm", "Yes")


def test_an_ordinary_model_keeps_a_think_tag_it_writes_mid_answer() -> None:
    text = "Use the <think> tag, then </think> to close it."
    assert run(INLINE, [text])[:2] == ("", text)
    # ... but one at the very start (after blank lines) is thinking.
    assert run(INLINE, ["\n\n<think>", "a plan</think>", "\n\nDone"])[:2] == ("a plan", "Done")


def test_a_reasoning_template_never_lets_markup_into_the_answer() -> None:
    thinking, answer, _ = run(
        QWEN3, ["<think>a</think>Part one. <think>b</think>Part two.</think>"]
    )
    assert (thinking, answer) == ("ab", "Part one. Part two.")


def test_a_close_tag_without_an_opening_one_makes_what_came_before_thinking() -> None:
    """A server's template opened <think> and the server does not split: the answer so far
    was thinking (the streamed pieces said answer; the final texts are right)."""
    assert split_text("I ponder.\n</think>\n\nResult.", INLINE) == ("I ponder.", "Result.")
    reply = ReplyFilter([], CHAT, INLINE)
    reply.feed("I pon")
    reply.feed("der.</th")
    reply.feed("ink>Result.")
    reply.finish()
    assert (reply.reasoning, reply.text) == ("I ponder.", "Result.")


def test_plain_text_passes_untouched() -> None:
    assert run(PLAIN, ["  Hello", " <think>x</think>"])[:2] == ("", "  Hello <think>x</think>")
    assert run(QWEN3, ["  Indented code"])[:2] == ("", "  Indented code")  # no thinking: as is
    assert run(QWEN3, ["   "])[:2] == ("", "   ")


def test_the_reply_filter_cuts_stops_in_the_answer_only() -> None:
    reply = ReplyFilter(["\nUser:"], TRANSCRIPT, QWEN3)
    shown = []
    for piece in ["<think>The\nUser: said hi", "</think>", " Hi!\nUs", "er: more"]:
        shown += reply.feed(piece)
    shown += reply.finish()
    assert reply.stopped
    assert (reply.reasoning, reply.text) == ("The\nUser: said hi", "Hi!")
    assert shown == [(True, "The\nUser: said hi"), (False, "Hi!")]


def test_thinking_known_from_the_server_is_not_searched_for_markers() -> None:
    reply = ReplyFilter([], CHAT, INLINE)
    assert reply.feed("about <think> tags", thinking=True) == [(True, "about <think> tags")]
    assert reply.feed("Fine.") == [(False, "Fine.")]


def test_closing_the_thinking_for_a_budget() -> None:
    reply = ReplyFilter([], CHAT, QWEN3)
    reply.feed("<think>long long thou")
    assert reply.thinking
    reply.close_thinking()
    assert not reply.thinking
    assert reply.feed(QWEN3.close_text + "Answer") == [(False, "Answer")]
    assert reply.reasoning == "long long thou" and reply.text == "Answer"


def test_detect_format_from_template_text() -> None:
    assert detect_format(None) == INLINE
    assert detect_format("{{ messages }}") == INLINE
    qwen = "{% if enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
    assert detect_format(qwen) == QWEN3
    assert detect_format("<|start|>assistant<|channel|>final<|message|>").kind == HARMONY
    seed = detect_format("<seed:think>{{ r }}</seed:think>")
    assert [t.open for t in seed.tags] == ["<seed:think>"]
    assert starts_inside(QWEN3, "<｜Assistant｜><think>\n")
    assert not starts_inside(QWEN3, "<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.skipif(not TEMPLATES.is_dir(), reason="llama.cpp's templates are not here")
def test_detect_format_on_llama_cpp_templates() -> None:
    def fmt(name: str) -> ReasoningFormat:
        return detect_format((TEMPLATES / f"{name}.jinja").read_text())

    assert fmt("Qwen-Qwen3-0.6B") == QWEN3
    assert fmt("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B") == QWEN3
    assert fmt("openai-gpt-oss-120b").kind == HARMONY
    assert fmt("mistralai-Ministral-3-14B-Reasoning-2512").tags[0].open == "[THINK]"
    assert fmt("ByteDance-Seed-OSS").tags[0].open == "<seed:think>"
    assert fmt("meta-llama-Llama-3.2-3B-Instruct") == INLINE


QWEN3_LIKE = (
    "{%- set ns = namespace(last=-1) -%}"
    "{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last = loop.index0 -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- for m in messages -%}<|im_start|>{{ m.role }}\n"
    "{%- if m.role == 'assistant' and m.reasoning_content is defined and m.reasoning_content"
    " and loop.index0 > ns.last -%}<think>\n{{ m.reasoning_content }}\n</think>\n\n"
    "{%- endif -%}{{ m.content }}<|im_end|>\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def test_thinking_the_template_drops_takes_no_room_in_the_window() -> None:
    """Truncation counts the rendered prompt: old turns' long thinking, dropped by the
    template, does not push the chat out of the window."""
    from tui.core.prompt import PersonaPrompt, PromptBuilder, PromptFormat, Turn

    def tokenize(text: str) -> list[int]:
        return [ord(c) for c in text]  # one token per character

    builder = PromptBuilder(PromptFormat(chat_template=QWEN3_LIKE), tokenize)
    history = []
    for i in range(4):
        history += [Turn("user", f"question {i}"), Turn("assistant", f"answer {i}", "x" * 5000)]
    history.append(Turn("user", "last question"))
    built = builder.build(PersonaPrompt(""), history, budget=600)
    assert built.start == 0  # nothing dropped: 20 000 characters of thinking take no room
    assert "xxxx" not in built.text and len(built.tokens) < 600
    # A continuation keeps the latest answer's thinking, and it counts.
    tail = [Turn("user", "q"), Turn("assistant", "a", "y" * 700)]
    with pytest.raises(Exception, match="needs"):
        builder.build(PersonaPrompt(""), tail, budget=600)
