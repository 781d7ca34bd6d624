"""The local engine process, with the real SmolLM2 model."""

from __future__ import annotations

import os
import queue
import signal
import time
from pathlib import Path

import pytest

from tui.core.engine_protocol import (
    Generate,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    LoadModel,
    ModelFailed,
    ModelReady,
    TokenText,
)
from tui.core.prompt import PersonaPrompt, Turn
from tui.engine.local.client import LocalEngine

pytestmark = pytest.mark.model
TIMEOUT = 60


class Recorder:
    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()

    def __call__(self, event) -> None:
        self.events.put(event)

    def until(self, kind: type | tuple[type, ...]):
        """Events up to and including the first of ``kind``."""
        seen = []
        while True:
            event = self.events.get(timeout=TIMEOUT)
            seen.append(event)
            if isinstance(event, kind):
                return seen


@pytest.fixture
def engine(tmp_path: Path):
    engine = LocalEngine(tmp_path / "engine.log")
    recorder = Recorder()
    engine.start(recorder)
    yield engine, recorder
    engine.close()


def job(job_id: int, text: str, **sampling) -> Generate:
    persona = PersonaPrompt("You are a helpful assistant.")
    return Generate(job_id, persona, [Turn("user", text)], {"n_ctx": 1024, **sampling})


def test_streams_tokens_and_finishes(engine, model_path: Path) -> None:
    eng, rec = engine
    eng.load(LoadModel(str(model_path), n_ctx=1024))
    ready = rec.until((ModelReady, ModelFailed))[-1]
    assert isinstance(ready, ModelReady), ready
    assert ready.info.has_chat_template and ready.info.n_ctx == 1024
    eng.generate(job(1, "Name three colours.", max_tokens=40, seed=7, temperature=0))
    events = rec.until((GenerationFinished, GenerationFailed))
    started = [e for e in events if isinstance(e, GenerationStarted)]
    tokens = [e.text for e in events if isinstance(e, TokenText)]
    finished = events[-1]
    assert isinstance(finished, GenerationFinished)
    assert started and started[0].mode == "chat" and started[0].prompt_tokens > 10
    assert len(tokens) >= 3  # streamed piece by piece, not in one block
    assert "".join(tokens).strip() == finished.text
    assert finished.text and "<|im_end|>" not in finished.text
    assert 0 < finished.completion_tokens <= 40


def test_cancel_stops_promptly_and_engine_stays_usable(engine, model_path: Path) -> None:
    eng, rec = engine
    eng.load(LoadModel(str(model_path), n_ctx=1024))
    rec.until((ModelReady, ModelFailed))
    eng.generate(job(1, "Write a very long story about a dragon.", max_tokens=400))
    rec.until(TokenText)
    eng.cancel(1)
    finished = rec.until((GenerationFinished, GenerationFailed))[-1]
    assert isinstance(finished, GenerationFinished) and finished.reason == "cancelled"
    assert finished.completion_tokens < 400
    eng.generate(job(2, "Say hello.", max_tokens=8))
    again = rec.until((GenerationFinished, GenerationFailed))[-1]
    assert isinstance(again, GenerationFinished) and again.reason in ("stop", "length")


def test_missing_and_non_gguf_files_fail_clearly(engine, tmp_path: Path) -> None:
    eng, rec = engine
    eng.load(LoadModel(str(tmp_path / "nope.gguf")))
    failed = rec.until((ModelReady, ModelFailed))[-1]
    assert isinstance(failed, ModelFailed) and "not found" in failed.message
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("hello")
    eng.load(LoadModel(str(text_file)))
    failed = rec.until((ModelReady, ModelFailed))[-1]
    assert isinstance(failed, ModelFailed) and "not a GGUF model file" in failed.message


def test_truncated_gguf_fails_without_killing_the_caller(
    engine, model_path: Path, tmp_path: Path
) -> None:
    eng, rec = engine
    broken = tmp_path / "truncated.gguf"
    with model_path.open("rb") as src:
        broken.write_bytes(src.read(200_000))
    eng.load(LoadModel(str(broken)))
    failed = rec.until((ModelReady, ModelFailed))[-1]
    assert isinstance(failed, ModelFailed)
    assert "could not load" in failed.message
    assert failed.log_tail  # llama.cpp's own reason, from the log
    eng.load(LoadModel(str(model_path), n_ctx=512))  # and the next load works
    assert isinstance(rec.until((ModelReady, ModelFailed))[-1], ModelReady)


def test_worker_crash_is_reported_and_recovered(engine, model_path: Path) -> None:
    eng, rec = engine
    eng.load(LoadModel(str(model_path), n_ctx=512))
    rec.until((ModelReady, ModelFailed))
    os.kill(eng._proc.pid, signal.SIGKILL)
    crashed = rec.until(ModelFailed)[-1]
    assert "stopped unexpectedly" in crashed.message
    eng.generate(job(3, "Say hi.", max_tokens=5, n_ctx=512))  # respawns and reloads
    events = rec.until((GenerationFinished, GenerationFailed))
    assert any(isinstance(e, ModelReady) for e in events)
    assert isinstance(events[-1], GenerationFinished)


def test_llama_cpp_output_goes_to_the_log(engine, model_path: Path, tmp_path: Path) -> None:
    eng, rec = engine
    eng.load(LoadModel(str(model_path), n_ctx=512))
    rec.until((ModelReady, ModelFailed))
    log = (tmp_path / "engine.log").read_text()
    assert "llama" in log  # llama.cpp's load messages are there, not on our terminal
    assert oct((tmp_path / "engine.log").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("kv_cache_mb", [None, 0], ids=["kept", "off"])
def test_a_long_chat_state_is_saved_to_the_cache_dir_and_kept_across_restarts(
    model_path: Path, isolated_dirs: Path, tmp_path: Path, kv_cache_mb: int | None
) -> None:
    """States go to $LLAMA_TUI_CACHE_DIR, not the engine's memory; kept unless kv_cache_mb = 0.

    Kept: the next engine (the app started again) restores the chat instead of
    reading it again. Off: they are removed when the engine exits, as before.
    """
    states = isolated_dirs / "cache" / "kv-states"
    pattern = "*.kvs" if kv_cache_mb is None else "*/*.state"
    long_question = "Summarise this: " + "the cat sat on the mat. " * 60  # > 256 tokens
    first_prompt = 0
    answer = ""
    for run in (1, 2):
        eng = LocalEngine(tmp_path / "engine.log", kv_cache_mb)
        rec = Recorder()
        eng.start(rec)
        try:
            eng.load(LoadModel(str(model_path), n_ctx=1024))
            assert isinstance(rec.until((ModelReady, ModelFailed))[-1], ModelReady)
            history = [Turn("user", long_question)]
            if run == 2:
                history += [Turn("assistant", answer), Turn("user", "Thanks.")]
            persona = PersonaPrompt("You are a helpful assistant.")
            sampling = {"n_ctx": 1024, "max_tokens": 8, "seed": 1, "temperature": 0}
            eng.generate(Generate(run, persona, history, sampling, chat_id=1))
            events = rec.until((GenerationFinished, GenerationFailed))
            assert isinstance(events[-1], GenerationFinished), events[-1]
            started = next(e for e in events if isinstance(e, GenerationStarted))
            if run == 2:
                break
            first_prompt, answer = started.prompt_tokens, events[-1].text
            # The state is written after the answer is reported: wait until it is there
            # whole (a kept one appears by rename; a session one is written in place).
            for _ in range(600):
                files = list(states.glob(pattern))
                if files and files[0].stat().st_size > 1_000_000:
                    break
                time.sleep(0.05)
            assert files and files[0].stat().st_size > 1_000_000
            assert files[0].stat().st_mode & 0o777 == 0o600
            assert states.stat().st_mode & 0o777 == 0o700
        finally:
            eng.close()
        if kv_cache_mb == 0:
            assert not list(states.glob(pattern))  # removed when the engine exits
        else:
            assert list(states.glob(pattern)) == files  # kept for the next start
    if kv_cache_mb == 0:
        assert started.cached_tokens == 0  # the restarted engine read it all again
    else:
        assert started.cached_tokens >= first_prompt  # restored from the kept state


def test_a_dead_worker_fails_every_outstanding_job_not_only_the_last(engine) -> None:
    eng, rec = engine
    pid = eng._proc.pid
    os.kill(pid, signal.SIGSTOP)  # it can run none of the jobs below before it dies
    for job_id in (11, 12, 13):
        eng.generate(job(job_id, "Say hi."))
    os.kill(pid, signal.SIGKILL)
    failed = set()
    while len(failed) < 3:
        event = rec.events.get(timeout=TIMEOUT)
        if isinstance(event, GenerationFailed):
            assert "stopped unexpectedly" in event.message
            failed.add(event.job_id)
    assert failed == {11, 12, 13}


def test_cancel_with_no_worker_ends_the_job_here(engine) -> None:
    eng, rec = engine
    os.kill(eng._proc.pid, signal.SIGKILL)
    rec.until(ModelFailed)  # the death is noticed and reported
    eng._outstanding.append(21)  # a job the dead worker never answered
    eng.cancel(21)
    ended = rec.until(GenerationFinished)[-1]
    assert ended.job_id == 21 and ended.reason == "cancelled"


def test_a_cancel_is_not_lost_to_the_next_load(engine, model_path: Path) -> None:
    """LoadModel, CancelLoad, LoadModel at once: the first load is cancelled, the second runs."""
    eng, rec = engine
    eng.load(LoadModel(str(model_path), n_ctx=512))
    eng.cancel_load()
    eng.load(LoadModel(str(model_path), n_ctx=1024))
    first = rec.until((ModelReady, ModelFailed))[-1]
    assert isinstance(first, ModelFailed) and "cancelled" in first.message
    second = rec.until((ModelReady, ModelFailed))[-1]
    assert isinstance(second, ModelReady) and second.info.n_ctx == 1024
