"""Fitting a long chat into the window: persona kept, oldest turns dropped in chunks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tui.core.personas import load_library
from tui.core.prompt import (
    CHAT,
    CUT_MARK,
    TRANSCRIPT,
    PersonaPrompt,
    PromptBuilder,
    PromptFormat,
    PromptTooLong,
    Turn,
)
from tui.core.turn_policy import answer_reserve, prompt_budget

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class WordTokenizer:
    """One token per whitespace-separated word, with stable ids; counts its calls."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.calls = 0

    def __call__(self, text: str) -> list[int]:
        self.calls += 1
        return [self.vocab.setdefault(word, len(self.vocab)) for word in text.split()]


def persona(system: str = "You are Bob , a kind helper .") -> PersonaPrompt:
    return PersonaPrompt(system=system, ai_name="Bob", user_name="User", mode="transcript")


def conversation(turns: int, words: int = 5) -> list[Turn]:
    """``turns`` exchanges of ``words`` words each, ending with a user message."""
    history: list[Turn] = []
    for i in range(turns):
        history.append(Turn("user", " ".join(f"q{i}w{j}" for j in range(words))))
        history.append(Turn("assistant", " ".join(f"a{i}w{j}" for j in range(words))))
    history.append(Turn("user", " ".join(f"q{turns}w{j}" for j in range(words))))
    return history


def builder(template: str | None = None) -> tuple[PromptBuilder, WordTokenizer]:
    tokenize = WordTokenizer()
    return PromptBuilder(PromptFormat(chat_template=template), tokenize), tokenize


# --- the arithmetic, with a one-token-per-word tokenizer --------------------------------


def test_nothing_is_dropped_while_it_fits() -> None:
    build, tokenize = builder()
    history = conversation(3)
    built = build.build(persona(), history, budget=1000)
    assert built.start == 0
    assert len(built.tokens) == len(built.text.split())
    # n_keep is the persona block: the system text's words.
    assert built.n_keep == len(persona().system.split())
    assert built.text.startswith(persona().system)


def test_overflow_drops_oldest_turns_down_to_half_the_room() -> None:
    build, tokenize = builder()
    p, history = persona(), conversation(30)
    budget = 200
    built = build.build(p, history, budget=budget)
    n_keep = built.n_keep
    target = n_keep + (budget - n_keep) // 2
    assert built.start > 0 and history[built.start].role == "user"
    assert len(built.tokens) <= target
    # Minimal: starting one user turn earlier would not have fitted the target.
    earlier = built.start - 2
    assert history[earlier].role == "user"
    assert len(tokenize(build.render(p, history[earlier:], TRANSCRIPT))) > target
    # The persona is still first, then whole turns from `start` on.
    assert built.text.startswith(p.system + "\n\nUser: " + history[built.start].content)
    assert built.text.endswith(f"User: {history[-1].content}\nBob:")


def test_consecutive_turns_share_a_prefix_until_the_next_chunk() -> None:
    """Simulate 200 turns, passing `start` on as the runner does."""
    build, _ = builder()
    p, budget, words = persona(), 300, 6
    history: list[Turn] = []
    start, previous_text, truncations = 0, "", 0
    for i in range(200):
        history.append(Turn("user", " ".join(f"q{i}w{j}" for j in range(words))))
        built = build.build(p, history, budget=budget, start=start)
        assert len(built.tokens) <= budget
        assert built.text.startswith(p.system + "\n\n")
        if built.start == start:
            # Same window start: the previous prompt is a prefix of this one (KV reuse).
            assert built.text.startswith(previous_text)
        else:
            truncations += 1
            assert built.start > start
        start, previous_text = built.start, built.text
        history.append(Turn("assistant", " ".join(f"a{i}w{j}" for j in range(words))))
    # Each chunk frees about half the room: few truncations, never one per turn.
    turn_tokens = 2 * (words + 1)  # "User:" / "Bob:" plus the words
    room = budget - built.n_keep
    assert 0 < truncations <= 200 // ((room // 2) // turn_tokens - 1) + 1
    assert truncations < 200 // 5


def test_chat_mode_keeps_the_system_block() -> None:
    build, _ = builder(CHATML)
    p = PersonaPrompt(system="Be brief .", mode="auto")
    built = build.build(p, conversation(40), budget=150)
    assert built.mode == CHAT
    assert built.start > 0
    assert built.text.startswith("<|im_start|>system\nBe brief .<|im_end|>\n<|im_start|>user\n")
    assert len(built.tokens) <= 150


def test_stale_or_odd_start_values_are_clamped() -> None:
    build, _ = builder()
    history = conversation(3)
    assert build.build(persona(), history, 1000, start=-5).start == 0
    # A start past the end (messages deleted since): the newest user turn.
    assert build.build(persona(), history, 1000, start=99).start == len(history) - 1
    # A start on an AI turn moves to the next user turn: windows begin with the user.
    assert build.build(persona(), history, 1000, start=1).start == 2


def test_a_message_longer_than_the_window_is_refused() -> None:
    build, _ = builder()
    history = [Turn("user", " ".join(["word"] * 500))]
    with pytest.raises(PromptTooLong, match="This message needs") as info:
        build.build(persona(), history, budget=100)
    assert info.value.needed > info.value.budget == 100


def test_a_persona_longer_than_the_window_is_named() -> None:
    build, _ = builder()
    long_persona = persona(" ".join(["rule"] * 300))
    with pytest.raises(PromptTooLong, match="persona's prompt alone"):
        build.build(long_persona, [Turn("user", "hi")], budget=100)


def test_search_uses_few_tokenizer_calls() -> None:
    """Remote engines tokenize over HTTP: the binary search keeps calls logarithmic."""
    build, tokenize = builder()
    build.build(persona(), conversation(500), budget=400)
    assert tokenize.calls <= 16


def test_an_ordinary_turn_costs_no_extra_tokenizer_call() -> None:
    """The whole prompt and the persona block: no probing of the chat's end."""
    build, tokenize = builder()
    history = conversation(60)
    built = build.build(persona(), history, budget=800)  # ~6 characters a token: fits
    assert built.start == 0
    assert tokenize.calls == 2


class CountingTokenizer(WordTokenizer):
    """Also remembers how many characters it was given, in all."""

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0

    def __call__(self, text: str) -> list[int]:
        self.chars += len(text)
        return super().__call__(text)


class SpyBuilder(PromptBuilder):
    """Counts how often the window was found from the end of the chat."""

    found_from_end = 0

    def _overflowing_suffix(self, *args: Any) -> tuple[int, list[int]] | None:
        found = super()._overflowing_suffix(*args)
        SpyBuilder.found_from_end += found is not None
        return found


class FullReadBuilder(PromptBuilder):
    """The builder as it was: always renders the whole history from ``start``."""

    def _overflowing_suffix(self, *args: Any) -> None:
        return None


def random_history(rng: random.Random, turns: int) -> list[Turn]:
    """Turns of very uneven length, some dense in tokens, some one long word."""
    history = []
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        kind = rng.random()
        if kind < 0.2:
            text = "x" * rng.randint(1, 400)  # one token, many characters
        elif kind < 0.4:
            text = " ".join("a" for _ in range(rng.randint(1, 200)))  # a token per 2 chars
        else:
            text = " ".join(f"w{rng.randint(0, 50)}" for _ in range(rng.randint(1, 60)))
        history.append(Turn(role, text))
    return history


@pytest.mark.parametrize("template", [None, CHATML])
def test_a_window_found_from_the_end_is_the_one_a_full_read_finds(template: str | None) -> None:
    rng = random.Random(7)
    SpyBuilder.found_from_end = 0
    for _case in range(300):
        history = random_history(rng, rng.choice([1, 3, 10, 40, 200, 600]) | 1)
        budget = rng.randint(60, 2000)
        start = rng.randint(0, len(history) - 1)
        tokenize = WordTokenizer()
        fmt = PromptFormat(chat_template=template)
        results = []
        for cls in (SpyBuilder, FullReadBuilder):
            try:
                results.append(cls(fmt, tokenize).build(persona(), history, budget, start))
            except PromptTooLong as exc:
                results.append(("too long", exc.needed, exc.budget))
        assert results[0] == results[1], (len(history), budget, start)
    assert SpyBuilder.found_from_end > 30  # the short cut was taken, not only the full read


def test_a_huge_chat_is_not_read_whole() -> None:
    """Thousands of messages and no stored window: only the end of the chat is tokenized."""
    read = {}
    for exchanges in (2500, 5000):
        history = conversation(exchanges, words=40)
        tokenize = CountingTokenizer()
        built = PromptBuilder(PromptFormat(chat_template=None), tokenize).build(
            persona(), history, budget=3000, start=0
        )
        read[exchanges] = tokenize.chars
        assert tokenize.chars < sum(len(turn.content) for turn in history) // 5
        assert 1300 < len(built.tokens) <= 1504  # down to half the room, as always
        assert built == FullReadBuilder(PromptFormat(chat_template=None), tokenize).build(
            persona(), history, budget=3000, start=0
        )
    assert read[5000] <= read[2500] * 1.1  # the work does not grow with the chat


# --- a greeting, the latest exchange, the answer's room (issue 12, items 12 and 13) -------

STRICT = (  # Mistral-style: the conversation must begin with the user and alternate
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% else %}{% if (m['role'] == 'user') != (loop.index0 % 2 == (1 if messages[0]['role'] == "
    "'system' else 0)) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant') }}{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.mark.parametrize("template", [None, CHATML])
def test_a_greeting_stays_in_the_window_while_it_fits(template: str | None) -> None:
    """A chat that begins with the persona's greeting: the model sees it (start 0)."""
    build, _ = builder(template)
    p = PersonaPrompt(system="You are Bob .", ai_name="Bob", mode="auto")
    history = [Turn("assistant", "Hello , I am Bob . Ask away ."), Turn("user", "Who are you ?")]
    built = build.build(p, history, budget=4096 - 1024)
    assert built.start == 0
    assert "Hello , I am Bob . Ask away ." in built.text
    assert built.turns == history


def test_a_strict_template_gets_the_greeting_in_the_system_text() -> None:
    build, _ = builder(STRICT)
    p = PersonaPrompt(
        system="You are Bob .",
        examples=[Turn("user", "Hi"), Turn("assistant", "Hello .")],
        ai_name="Bob",
    )
    history = [Turn("assistant", "Greetings , traveller ."), Turn("user", "Who are you ?")]
    built = build.build(p, history, budget=1000)
    assert built.start == 0
    system, rest = built.text.split("[user]", 1)
    assert "Greetings , traveller ." in system and "Greetings" not in rest


def test_the_answer_reserve_is_in_proportion_to_the_window() -> None:
    assert answer_reserve(512, 1024) == 128  # was 256: half of a small window
    assert answer_reserve(4096, 1024) == 1024
    assert answer_reserve(8192, 1024) == 1024
    assert answer_reserve(4096, 100) == 100
    assert answer_reserve(2048, -1) == 512  # "until the window is full": a quarter
    assert prompt_budget(512, 1024) == 384
    assert prompt_budget(512, 1024, margin=32) == 352


def test_the_latest_exchange_is_kept_when_it_fits() -> None:
    """Dropping down to half the room must not lose the answer the user just read."""
    build, _ = builder()
    history = [
        *conversation(10, words=10)[:-1],
        Turn("user", " ".join(f"q0w{j}" for j in range(20))),
        Turn("assistant", " ".join(f"a0w{j}" for j in range(220))),
        Turn("user", "Summarize that ."),
    ]
    budget = prompt_budget(512, 1024)
    target = len(persona().system.split()) + budget // 2
    built = build.build(persona(), history, budget=budget)
    assert len(built.tokens) > target  # past the usual half-room target, for this exchange
    assert built.start == len(history) - 3
    assert "a0w0 " in built.text and "a0w219" in built.text and len(built.tokens) <= budget


def test_an_over_long_last_answer_is_cut_not_dropped() -> None:
    """An answer that filled the window: its beginning and end stay, the middle goes."""
    build, _ = builder()
    history = [
        *conversation(2)[:-1],
        Turn("user", "Tell me a long story ."),
        Turn("assistant", " ".join(f"s{j}" for j in range(600))),
        Turn("user", "Summarize that ."),
    ]
    budget = prompt_budget(512, 1024)
    built = build.build(persona(), history, budget=budget)
    assert len(built.tokens) <= budget
    assert history[built.start].content == "Tell me a long story ."
    assert "s0 s1 s2" in built.text and "s597 s598 s599" in built.text
    assert CUT_MARK.strip() in built.text and "s300" not in built.text
    assert built.text.endswith("User: Summarize that .\nBob:")
    # The cut answer is most of what fits: not a token-thin stub.
    assert len(built.tokens) > budget - 20
    assert built.turns[1].role == "assistant" and CUT_MARK in built.turns[1].content


# --- the real model, in-process ---------------------------------------------------------


@pytest.fixture(scope="module")
def harness(model_path: Path) -> Iterator[Any]:
    """SmolLM2 at n_ctx 512, in-process (``model_path`` skips cleanly without it)."""
    from tui.core.engine_protocol import LoadModel
    from tui.engine.local.model import ModelRunner

    events: list[Any] = []
    runner = ModelRunner(events.append, lambda job_id: False, verbose=False)
    assert runner.load(LoadModel(str(model_path), n_ctx=512))
    yield runner, events
    runner.close()


TOPICS = ["cats", "the sea", "Paris", "music", "trees", "rain", "bread", "stars", "trains"]


@pytest.mark.model
def test_hundred_turns_at_n_ctx_512(harness: Any) -> None:
    from tui.core.engine_protocol import Generate, GenerationFinished, GenerationStarted

    runner, events = harness
    library = load_library(user_dir=Path("/nonexistent-llama-tui-test-dir"))
    p = PersonaPrompt.from_persona(library.get("assistant"))
    sampling = {"n_ctx": 512, "max_tokens": 6, "temperature": 0.0}
    reserve = sampling["max_tokens"]
    history: list[Turn] = []
    start, previous_prompt, rows = 0, 0, []
    for i in range(100):
        history.append(Turn("user", f"A fact about {TOPICS[i % 9]}? ({i})"))
        events.clear()
        # As the chat service does: the history begins where the last window began.
        runner.generate(Generate(i, p, list(history[start:]), sampling))
        started = next(e for e in events if isinstance(e, GenerationStarted))
        finished = events[-1]
        assert isinstance(finished, GenerationFinished), finished
        assert finished.reason in ("stop", "length")
        # Every prompt fits the window, with room for the reply.
        assert started.prompt_tokens <= 512 - reserve
        assert started.prompt_tokens + finished.completion_tokens <= 512
        # The persona block is first, in the prompt and in the KV cache.
        built = runner.last_built
        assert built.text.startswith(f"<|im_start|>system\n{p.system}<|im_end|>")
        assert list(runner.llm.input_ids[: built.n_keep]) == built.tokens[: built.n_keep]
        truncated = started.start != 0
        rows.append((truncated, started, finished))
        if i > 0 and not truncated:
            # The whole previous prompt is reused from the KV cache.
            assert started.cached_tokens >= previous_prompt
        history.append(Turn("assistant", finished.text or "OK."))
        start, previous_prompt = start + started.start, started.prompt_tokens
    truncations = [r for r in rows if r[0]]
    # Dropped in chunks: a handful of truncations, not one per turn.
    assert 3 <= len(truncations) <= 25
    for _, started, finished in truncations:
        # The kept turns were moved in the cache (context shift), not read again.
        assert finished.stats["shifted"] > 0
        assert started.cached_tokens > started.prompt_tokens // 2
        assert not finished.stats["restored"]


# --- the context shift: when the kept turns may be moved instead of read again -------------


def shift_planner() -> Any:
    """A ModelRunner without a model, for its shift arithmetic alone."""
    from tui.engine.local.model import ModelRunner

    runner = ModelRunner(lambda event: None, lambda job_id: False, verbose=False)
    runner._can_shift = lambda: True  # type: ignore[method-assign]
    return runner


def ids(*parts: range | list[int]) -> Any:
    import numpy as np

    return np.asarray([t for part in parts for t in part], dtype=np.intc)


PERSONA = range(1000, 1020)  # 20 tokens of persona block


def turns(first: int, last: int) -> list[int]:
    """Tokens of turns first..last, 10 distinct tokens each."""
    return [t for n in range(first, last + 1) for t in range(n * 10, n * 10 + 10)]


def test_shift_plan_for_a_trimmed_chat() -> None:
    runner = shift_planner()
    kv = ids(PERSONA, turns(1, 30))  # what the cache holds
    prompt = ids(PERSONA, turns(16, 30), range(5000, 5010))  # turns 1-15 dropped, one new
    drop, match = runner._shift_plan(kv, prompt, 20, 20, None)
    assert drop == 150  # turns 1-15, 10 tokens each
    assert match == 150  # turns 16-30 line up after the cut


def test_no_shift_on_a_phrase_that_merely_recurs() -> None:
    """Another chat whose message appears mid-way in the cached one: never moved across."""
    runner = shift_planner()
    kv = ids(PERSONA, turns(1, 30))
    prompt = ids(PERSONA, turns(12, 13), range(7000, 7050))  # 20 tokens that happen to match
    assert runner._shift_plan(kv, prompt, 20, 20, None) == (0, 0)
    # With chat ids the decision is certain either way.
    assert runner._shift_plan(kv, prompt, 20, 20, False) == (0, 0)
    assert runner._shift_plan(kv, prompt, 20, 20, True) == (110, 20)


def test_no_shift_without_the_persona_block_or_a_real_match() -> None:
    runner = shift_planner()
    kv = ids(PERSONA, turns(1, 30))
    other_persona = ids(range(1000, 1010), range(9000, 9010), turns(16, 30))
    assert runner._shift_plan(kv, other_persona, 10, 20, None) == (0, 0)  # persona changed
    short = ids(PERSONA, turns(20, 20), range(6000, 6010))  # only 10 tokens line up
    assert runner._shift_plan(kv, short, 20, 20, True) == (0, 0)


@pytest.mark.model
def test_local_engine_keeps_the_greeting_and_the_last_answer(harness: Any) -> None:
    """The local engine (SmolLM2, n_ctx 512, max_tokens 1024): what the model is shown.

    A greeting is in the window of a one-turn chat; after an answer that
    filled the window, "Summarize that" still comes with (most of) that answer.
    """
    from tui.core.engine_protocol import Generate, GenerationFinished, GenerationStarted

    runner, events = harness
    p = PersonaPrompt(system="You are Bob, a kind helper.", ai_name="Bob")
    sampling = {"n_ctx": 512, "max_tokens": 1024, "temperature": 0.0}
    greeting = [Turn("assistant", "Hello, I am Bob. Ask me anything!"), Turn("user", "Hi!")]
    events.clear()
    runner.generate(Generate(1, p, greeting, {**sampling, "max_tokens": 4}))
    started = next(e for e in events if isinstance(e, GenerationStarted))
    assert started.start == 0 and "Ask me anything!" in runner.last_built.text

    story = " ".join(f"The dragon flew over hill number {i}." for i in range(80))  # ~900 tokens
    history = [
        Turn("user", "Tell me a long story."),
        Turn("assistant", story),
        Turn("user", "Summarize that."),
    ]
    events.clear()
    runner.generate(Generate(2, p, history, {**sampling, "max_tokens": 1024}))
    started = next(e for e in events if isinstance(e, GenerationStarted))
    assert isinstance(events[-1], GenerationFinished), events[-1]
    built = runner.last_built
    assert started.start == 0  # the exchange is kept, its answer cut in the middle
    assert "hill number 0." in built.text and "hill number 79." in built.text
    assert 300 < started.prompt_tokens <= 512 - 128
