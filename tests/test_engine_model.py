"""ModelRunner in-process (real SmolLM2): cancelling, limits, seeds, special tokens, KV states."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelReady,
    TokenText,
)
from tui.core.personas import load_library
from tui.core.prompt import PersonaPrompt, Turn

N_CTX = 512
GREEDY = {"n_ctx": N_CTX, "max_tokens": 16, "temperature": 0.0}


@dataclass
class Result:
    """The events of one job, sorted out."""

    started: GenerationStarted | None
    end: GenerationFinished | GenerationFailed
    pieces: list[str] = field(default_factory=list)

    @property
    def streamed(self) -> str:
        return "".join(self.pieces)

    @property
    def finished(self) -> GenerationFinished:
        assert isinstance(self.end, GenerationFinished), self.end
        return self.end


class Harness:
    """A ModelRunner whose cancel predicate a test can steer."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        from tui.engine.local.model import ModelRunner

        self.events: list[Any] = []
        self.cancel_if: Callable[[Any], bool] = lambda event: False
        self.cancel_after_calls: int | None = None  # cancelled from the (n+1)th question on
        self._calls = 0
        self._cancel = threading.Event()
        self.runner = ModelRunner(self._send, self._cancelled, verbose=False, **kwargs)
        assert self.runner.load(LoadModel(str(path), n_ctx=N_CTX))
        self._ids = iter(range(1, 10**6))

    def _send(self, event: Any) -> None:
        self.events.append(event)
        if self.cancel_if(event):
            self._cancel.set()

    def _cancelled(self, job_id: int) -> bool:
        self._calls += 1
        limit = self.cancel_after_calls
        return self._cancel.is_set() or (limit is not None and self._calls > limit)

    def run(self, persona: PersonaPrompt, history: list[Turn], sampling: dict[str, Any]) -> Result:
        self.events.clear()
        self._cancel.clear()
        self._calls = 0
        self.runner.generate(Generate(next(self._ids), persona, list(history), sampling))
        self.cancel_if = lambda event: False
        self.cancel_after_calls = None
        started = next((e for e in self.events if isinstance(e, GenerationStarted)), None)
        pieces = [e.text for e in self.events if isinstance(e, TokenText)]
        end = self.events[-1]
        assert isinstance(end, GenerationFinished | GenerationFailed), self.events
        return Result(started, end, pieces)


@pytest.fixture(scope="module")
def harness(model_path: Path) -> Iterator[Harness]:
    """One runner for the module (``model_path`` skips cleanly without SmolLM2)."""
    h = Harness(model_path)
    yield h
    h.runner.close()


@pytest.fixture(scope="module")
def personas() -> dict[str, PersonaPrompt]:
    library = load_library(user_dir=Path("/nonexistent-llama-tui-test-dir"))
    return {pid: PersonaPrompt.from_persona(p) for pid, p in library.personas.items()}


def kv_is_consistent(runner: Any) -> bool:
    """llama.cpp's cache holds exactly the positions the Python side thinks it does."""
    import llama_cpp

    last = llama_cpp.llama_memory_seq_pos_max(runner.llm._ctx.memory, 0)
    return last == runner.llm.n_tokens - 1


# --- cancelling ---------------------------------------------------------------------------


@pytest.mark.model
def test_cancel_mid_answer_leaves_a_consistent_state(harness: Harness, personas: Any) -> None:
    p = personas["assistant"]
    history = [Turn("user", "Write a long poem about the sea, with many verses.")]
    counter = iter(range(100))
    harness.cancel_if = lambda e: isinstance(e, TokenText) and next(counter) >= 2
    sampling = {**GREEDY, "max_tokens": 200}
    cancelled = harness.run(p, history, sampling)
    assert cancelled.finished.reason == "cancelled"
    assert 1 <= cancelled.finished.completion_tokens < 20
    assert cancelled.streamed.strip()
    assert kv_is_consistent(harness.runner)
    built = harness.runner.last_built
    assert list(harness.runner.llm.input_ids[: len(built.tokens)]) == built.tokens

    # The next job works and reuses what the cancelled one left in the cache.
    history += [Turn("assistant", cancelled.streamed), Turn("user", "Thanks. Now one line.")]
    after = harness.run(p, history, GREEDY)
    assert after.finished.reason in ("stop", "length")
    assert after.finished.text
    assert after.started is not None and after.started.cached_tokens >= len(built.tokens)
    assert kv_is_consistent(harness.runner)


@pytest.mark.model
def test_cancel_while_the_prompt_is_read(harness: Harness, personas: Any) -> None:
    """The abort callback stops llama.cpp mid-prompt; nothing is half-cached."""
    harness.runner.llm.reset()
    p = personas["bob"]
    long_message = " ".join(f"Note {i}: the harbour lights were green." for i in range(35))
    history = [Turn("user", long_message)]
    # The runner asks once before reading the prompt (not yet), then llama.cpp asks
    # through the abort callback while it reads: from then on, cancelled.
    harness.cancel_after_calls = 1
    cancelled = harness.run(p, history, GREEDY)
    assert cancelled.started is not None and cancelled.started.prompt_tokens > 300
    assert cancelled.finished.reason == "cancelled"
    assert cancelled.finished.completion_tokens == 0 and cancelled.pieces == []
    assert harness.runner.llm.n_tokens < cancelled.started.prompt_tokens  # stopped part-way
    assert kv_is_consistent(harness.runner)

    full = harness.run(p, history, GREEDY)
    assert full.finished.reason in ("stop", "length") and full.finished.text
    assert kv_is_consistent(harness.runner)


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.model
def test_message_longer_than_the_window_fails_clearly(harness: Harness, personas: Any) -> None:
    p = personas["assistant"]
    too_long = [Turn("user", "word " * 2000)]
    failed = harness.run(p, too_long, GREEDY)
    assert isinstance(failed.end, GenerationFailed)
    assert "This message needs" in failed.end.message and "n_ctx" in failed.end.message
    ok = harness.run(p, [Turn("user", "Say hello.")], GREEDY)
    assert ok.finished.reason in ("stop", "length") and ok.finished.text


@pytest.mark.model
def test_reply_reaching_the_window_end_ends_with_reason_context(
    harness: Harness, personas: Any
) -> None:
    p = PersonaPrompt(system="You are a helpful assistant.")
    notes = " ".join(f"Fact {i}: Rome had many roads and temples." for i in range(10))
    history = [
        Turn(
            "user",
            f"Here are my notes: {notes}\nNow write a long, detailed essay about the "
            "history of the Roman Empire, from its founding to its fall.",
        )
    ]
    sampling = {"n_ctx": 256, "max_tokens": -1, "temperature": 0.0}
    result = harness.run(p, history, sampling)
    # The chat's n_ctx is its budget inside the loaded window: no reload for it.
    assert not any(isinstance(e, ModelReady) for e in harness.events)
    assert harness.runner.llm.n_ctx() == N_CTX
    finished = result.finished
    assert finished.reason == "context"
    assert finished.n_ctx == 256
    assert finished.prompt_tokens + finished.completion_tokens == 256
    assert kv_is_consistent(harness.runner)
    # And the runner carries on.
    again = harness.run(p, [Turn("user", "Say hello.")], GREEDY)
    assert again.finished.n_ctx == N_CTX and again.finished.text


# --- seeds --------------------------------------------------------------------------------


@pytest.mark.model
def test_fixed_seed_repeats_and_random_seed_varies(harness: Harness, personas: Any) -> None:
    p = personas["assistant"]
    history = [Turn("user", "Invent a name for a new fruit and describe its taste.")]
    wild = {"n_ctx": N_CTX, "max_tokens": 12, "temperature": 2.0, "top_k": 0, "top_p": 1.0}
    wild["min_p"] = 0.0

    def fresh_run(seed: int) -> GenerationFinished:
        # The same cache state each time: logits computed in another batch split differ
        # in the last bits, which at temperature 2 over 49k tokens can change a draw.
        harness.runner.llm.reset()
        return harness.run(p, history, {**wild, "seed": seed}).finished

    fixed = [fresh_run(1234) for _ in range(2)]
    assert fixed[0].text == fixed[1].text
    assert fixed[0].stats["seed"] == fixed[1].stats["seed"] == 1234
    cached = [harness.run(p, history, {**wild, "seed": 99}).finished for _ in range(3)]
    assert cached[1].text == cached[2].text  # both read the prompt from the cache
    varied = [fresh_run(-1) for _ in range(3)]
    assert len({f.stats["seed"] for f in varied}) == 3
    assert len({f.text for f in varied}) > 1


# --- what is never shown ------------------------------------------------------------------


def scripted(harness: Harness, token_ids: list[int]) -> None:
    """Make llm.generate yield these tokens (as if sampled), for exact output tests."""

    def fake_generate(tokens: Any, **kwargs: Any) -> Iterator[int]:
        yield from token_ids

    harness.runner.llm.generate = fake_generate


def unscript(harness: Harness) -> None:
    del harness.runner.llm.generate


@pytest.mark.model
def test_special_tokens_are_never_shown(harness: Harness, personas: Any) -> None:
    runner = harness.runner
    llm = runner.llm
    words = lambda text: llm.tokenize(text.encode(), add_bos=False, special=False)  # noqa: E731
    im_start = llm.tokenize(b"<|im_start|>", add_bos=False, special=True)
    assert len(im_start) == 1 and im_start[0] in runner._hidden
    control = sorted(runner._hidden - runner._eog)[-1]
    eog = sorted(runner._eog)[0]
    ids = words("Hello") + im_start + words(" world") + [control] + words("!") + [eog]
    scripted(harness, ids + words(" never shown"))
    try:
        result = harness.run(personas["assistant"], [Turn("user", "hi")], GREEDY)
    finally:
        unscript(harness)
    assert result.streamed == "Hello world!"
    assert result.finished.text == "Hello world!"
    assert result.finished.reason == "stop"


@pytest.mark.model
def test_reverse_prompt_never_appears_in_a_transcript_answer(
    harness: Harness, personas: Any
) -> None:
    llm = harness.runner.llm
    bob = PersonaPrompt(**{**personas["bob"].__dict__, "mode": "transcript"})
    history = [Turn("user", "Hi Bob.")]
    eog = sorted(harness.runner._eog)[0]
    cases = {
        " Bob: Sure thing.\nUser: and now me": "Sure thing.",
        " Sure.\nUser": "Sure.",  # ends on a partial name, then the model stops
        " Fine User: ok": "Fine",
    }
    for script, answer in cases.items():
        scripted(harness, llm.tokenize(script.encode(), add_bos=False, special=False) + [eog])
        try:
            result = harness.run(bob, history, GREEDY)
        finally:
            unscript(harness)
        assert result.finished.text == answer
        assert "User" not in result.streamed
        assert result.finished.stats["mode"] == "transcript"
    # The real model, in transcript mode: whatever it writes, no reverse prompt.
    for question in ("What is the capital of France?", "Tell me a joke.", "Count to five."):
        real = harness.run(bob, [Turn("user", question)], {**GREEDY, "max_tokens": 40})
        text = real.finished.text
        assert "User:" not in text and "User:" not in real.streamed
        assert not text.endswith(("\nUser", "\nUse", "\nUs", "\nU"))


# --- KV states of several chats -----------------------------------------------------------

CHAT_A = [
    "Let us plan a garden. I have a small sunny yard.",
    "Which vegetables grow fast?",
    "How often should I water them?",
]
CHAT_B = ["Tell me about trains in Japan."]


def play(
    h: Harness, p: PersonaPrompt, messages: list[str], history: list[Turn], sampling: Any
) -> Result:
    """Send each message in turn, growing ``history``; return the last result."""
    result = None
    for message in messages:
        history.append(Turn("user", message))
        result = h.run(p, history, sampling)
        history.append(Turn("assistant", result.finished.text or "OK."))
    assert result is not None
    return result


@pytest.mark.model
@pytest.mark.parametrize("in_files", [False, True], ids=["ram", "files"])
def test_returning_to_a_chat_restores_its_kv_state(
    model_path: Path, personas: Any, tmp_path: Path, in_files: bool
) -> None:
    p = personas["assistant"]
    sampling = {**GREEDY, "max_tokens": 12}
    straight = Harness(model_path)
    state_dir = tmp_path / "kv-states" if in_files else None
    switching = Harness(model_path, state_dir=state_dir)
    try:
        a1: list[Turn] = []
        play(straight, p, CHAT_A[:2], a1, sampling)
        expected = play(straight, p, CHAT_A[2:], a1, sampling)

        a2: list[Turn] = []
        before = play(switching, p, CHAT_A[:2], a2, sampling)
        other = play(switching, p, CHAT_B, [], sampling)
        assert other.finished.stats["state_cache_entries"] >= 1  # chat A's state was kept
        if state_dir is not None:  # kept in a file, not in the engine's memory
            assert all(e.data is None for e in switching.runner.states.entries)
            assert list(state_dir.glob("*/*.state"))
        back = play(switching, p, CHAT_A[2:], a2, sampling)
    finally:
        straight.runner.close()
        switching.runner.close()
    if state_dir is not None:
        assert not list(state_dir.iterdir())  # closing removed the files
    stats = back.finished.stats
    assert stats["restored"] is True
    assert back.started is not None
    # All of chat A's previous prompt came back from the saved state, not re-read.
    assert back.started.cached_tokens >= before.started.prompt_tokens
    # A restored state is the same state: greedy decoding gives the same answer.
    assert back.finished.text == expected.finished.text


@pytest.mark.model
def test_state_cache_is_bounded(model_path: Path, personas: Any) -> None:
    p = personas["assistant"]
    sampling = {**GREEDY, "max_tokens": 4}
    one = Harness(model_path, state_cache_entries=1)
    none = Harness(model_path, state_cache_bytes=1)
    try:
        chats: dict[str, list[Turn]] = {"a": [], "b": [], "c": []}
        long_opening = " ".join(CHAT_A)  # enough tokens to be worth saving
        for name in ("a", "b", "c"):
            result = play(one, p, [f"Chat {name}: {long_opening}"], chats[name], sampling)
            assert result.finished.stats["state_cache_entries"] == (0 if name == "a" else 1)
        back = play(one, p, [CHAT_A[1]], chats["a"], sampling)
        assert back.finished.stats["restored"] is False  # "a" made way for "b"

        for name in ("a", "b"):
            result = play(none, p, [f"Chat {name}: {long_opening}"], [], sampling)
            assert result.finished.stats["state_cache_bytes"] == 0
            assert result.finished.stats["saved"] is False
    finally:
        one.runner.close()
        none.runner.close()


def test_no_model_loaded_fails_cleanly() -> None:
    from tui.engine.local.model import ModelRunner

    events: list[Any] = []
    runner = ModelRunner(events.append, lambda job_id: False, verbose=False)
    runner.generate(Generate(1, PersonaPrompt(system=""), [Turn("user", "hi")], {}))
    assert isinstance(events[-1], GenerationFailed)
    assert "No model is loaded" in events[-1].message


# --- the state cache on its own -----------------------------------------------------------


def saved(tokens: list[int], size: int = 10, n_keep: int = 2) -> Any:
    import numpy as np

    from tui.engine.local.kv_states import SavedState

    return SavedState(np.asarray(tokens, dtype=np.intc), None, size, n_keep)


def test_state_cache_picks_the_longest_prefix_and_evicts_oldest() -> None:
    import numpy as np

    from tui.engine.local.kv_states import StateCache

    cache = StateCache(max_entries=2, max_bytes=100)
    a, b = saved([1, 2, 3, 4, 5] + [10] * 20), saved([1, 2, 7, 8] + [20] * 20)
    assert cache.put(a) and cache.put(b)
    entry, n = cache.best(np.asarray([1, 2, 3, 4, 9], dtype=np.intc))
    assert entry is a and n == 4
    cache.touch(a)  # a is now the most recent: b goes first
    assert cache.put(saved([5, 6] + [30] * 20))
    assert a in cache.entries and b not in cache.entries and len(cache) == 2


def test_state_cache_replaces_older_states_of_the_same_chat() -> None:
    from tui.engine.local.kv_states import StateCache

    cache = StateCache(max_entries=4, max_bytes=100)
    persona = [1, 2]
    old = saved(persona + list(range(100, 140)))
    other_chat = saved(persona + list(range(500, 540)))
    cache.put(old)
    cache.put(other_chat)
    # The same chat one turn on, forked near the end (answer tokenized differently).
    newer = saved(persona + list(range(100, 135)) + [9, 9, 9] + list(range(200, 220)))
    cache.put(newer)
    assert old not in cache.entries
    assert other_chat in cache.entries and newer in cache.entries


def test_state_cache_respects_the_byte_cap() -> None:
    from tui.engine.local.kv_states import StateCache

    cache = StateCache(max_entries=10, max_bytes=25)
    assert not cache.put(saved([1, 2, 3], size=26))  # alone too big: not kept at all
    for start in (100, 200, 300):
        assert cache.put(saved([start + i for i in range(30)], size=10))
    assert cache.nbytes <= 25 and len(cache) == 2


def test_state_cache_in_files_round_trips_and_cleans_up(tmp_path: Path) -> None:
    import ctypes
    import os

    from tui.engine.local.kv_states import StateCache

    cache = StateCache(max_entries=2, max_bytes=1000, directory=tmp_path)
    stale = tmp_path / "999999999"  # no such process
    stale.mkdir()
    (stale / "0.state").write_bytes(b"old")

    def state(tokens: list[int], fill: int):
        entry = saved(tokens, size=100)
        entry.data = (ctypes.c_uint8 * 100)(*([fill] * 100))
        return entry

    a, b = state([1, 2, *range(10, 40)], 7), state([1, 2, *range(50, 80)], 8)
    assert cache.put(a) and cache.put(b)
    assert not stale.exists()  # a dead process's states are removed
    assert a.data is None and a.path is not None and a.path.stat().st_mode & 0o777 == 0o600
    assert bytes(cache.read(a)) == bytes([7] * 100)
    a_path = a.path
    c = state([1, 2, *range(90, 120)], 9)
    assert cache.put(c)  # over max_entries: a (the oldest) goes, with its file
    assert a not in cache.entries and not a_path.exists()
    assert bytes(cache.read(c)) == bytes([9] * 100)
    cache.close()
    assert not list(tmp_path.rglob("*.state"))
    assert not (tmp_path / str(os.getpid())).exists()


def test_state_cache_stays_in_ram_when_its_directory_is_unwritable(tmp_path: Path) -> None:
    import ctypes

    from tui.engine.local.kv_states import StateCache

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    cache = StateCache(max_entries=2, max_bytes=1000, directory=blocker / "kv")
    entry = saved([1, 2, 3], size=4)
    entry.data = (ctypes.c_uint8 * 4)(1, 2, 3, 4)
    assert cache.put(entry)
    assert entry.path is None and bytes(cache.read(entry)) == b"\x01\x02\x03\x04"


def test_load_reports_progress_and_can_be_cancelled(model_path: Path) -> None:
    """llama.cpp's progress callback: ModelLoading events, and a cancelled load."""
    from tui.core.engine_protocol import LoadModel, ModelFailed, ModelLoading, ModelReady
    from tui.engine.local.model import ModelRunner

    events: list = []
    runner = ModelRunner(events.append, lambda job_id: False, verbose=False)
    assert runner.load(LoadModel(str(model_path), n_ctx=512))
    progress = [e.progress for e in events if isinstance(e, ModelLoading)]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and len(progress) > 2
    assert progress == sorted(progress)
    assert isinstance(events[-1], ModelReady)

    events.clear()
    stopping = ModelRunner(events.append, lambda job_id: False, verbose=False,
                           load_cancelled=lambda: True)  # fmt: skip
    assert not stopping.load(LoadModel(str(model_path), n_ctx=512))
    assert isinstance(events[-1], ModelFailed) and "cancelled" in events[-1].message
    runner.close()
