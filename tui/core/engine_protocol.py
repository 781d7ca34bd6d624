"""What the UI and the inference engines say to each other.

An engine owns one model. The UI (or the CLI) sends it :class:`LoadModel`
and :class:`Generate` jobs and receives events; it never blocks on the
engine and never touches the model itself. Every event is a small picklable
dataclass so that it can cross a process boundary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tui.core.prompt import PersonaPrompt, Turn
from tui.core.sampling import SPEC
from tui.core.sanitize import StreamCleaner, clean_data, clean_text

CANCEL_ALL = 2**62
"""A job id above every real one: ``Cancel(CANCEL_ALL)`` stops every job."""


@dataclass
class LoadModel:
    path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    n_gpu_layers: int = 0


@dataclass
class Generate:
    job_id: int
    persona: PersonaPrompt
    history: list[Turn]  # the chat so far, ending with the new user message
    sampling: dict[str, Any]
    chat_id: int | None = None  # keeps one chat's cached state from being used for another
    # The answer's start, already written (continue an answer, or a prefill): the
    # model goes on from exactly this text, in the same turn; events carry only
    # what comes after it.
    prefill: str = ""


@dataclass
class Cancel:
    job_id: int  # cancels this job and every earlier one


@dataclass
class CancelLoad:
    """Abandon the model load in progress (llama.cpp's progress callback says stop)."""


@dataclass
class ModelInfo:
    path: str
    name: str
    n_ctx: int  # the context actually allocated
    n_ctx_train: int
    has_chat_template: bool
    size_bytes: int = 0


# --- events ---------------------------------------------------------------------------


@dataclass
class ModelLoading:
    path: str
    progress: float  # 0..1


@dataclass
class ModelReady:
    info: ModelInfo
    seconds: float


@dataclass
class ModelFailed:
    path: str
    message: str  # for people: what is wrong and what to do
    log_tail: str = ""


@dataclass
class GenerationStarted:
    job_id: int
    prompt_tokens: int
    n_ctx: int
    start: int  # first history index inside the window
    mode: str
    cached_tokens: int = 0
    # The prompt as the model received it (special tokens written out), for people
    # debugging a persona or a template; "" where the engine cannot know it.
    prompt_text: str = ""
    # About that prompt: "special" (special-token strings in it), "seed", "sampling"
    # (the values used), "dropped" (history turns left out of the window), "cut"
    # (an earlier answer shortened), "source" (who rendered it), "prefill".
    prompt_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TokenText:
    job_id: int
    text: str
    thinking: bool = False  # a piece of the model's thinking, not of its answer


@dataclass
class GenerationFinished:
    job_id: int
    text: str  # the whole cleaned answer
    reason: str  # one of tui.core.turn_policy.FINISH_REASONS ("stop", "length", "context"…)
    completion_tokens: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    n_ctx: int = 0
    # Besides ttft, seed and mode: ``thinking_tokens`` (of completion_tokens, those
    # spent thinking) and ``thinking_seconds`` where the model thought.
    stats: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""  # the whole cleaned thinking (a reasoning model's), never in ``text``

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class GenerationFailed:
    job_id: int
    message: str  # for people
    text: str = ""  # whatever was generated before the failure
    reasoning: str = ""  # whatever was thought before the failure


EngineEvent = (
    ModelLoading
    | ModelReady
    | ModelFailed
    | GenerationStarted
    | TokenText
    | GenerationFinished
    | GenerationFailed
)
EventCallback = Callable[[EngineEvent], None]


class CleanEvents:
    """Wraps an :data:`EventCallback`: every string an engine reports is made safe first.

    The one place where what a model or a server says enters llama-tui
    (every engine's ``start`` wraps its callback in this): answer text,
    error messages, model names and ids. Escape sequences and control
    characters never get further, whichever screen or command line shows
    them. Answer pieces go through one :class:`StreamCleaner` per job, and
    thinking pieces through another of their own, so a sequence cut between
    two pieces of one stream is removed whole.
    """

    def __init__(self, on_event: EventCallback) -> None:
        self.on_event = on_event
        self._streams: dict[tuple[int, bool], StreamCleaner] = {}

    def __call__(self, event: EngineEvent) -> None:
        self.on_event(self.clean(event))

    def clean(self, event: EngineEvent) -> EngineEvent:
        if isinstance(event, TokenText):
            key = (event.job_id, event.thinking)
            stream = self._streams.setdefault(key, StreamCleaner())
            return TokenText(event.job_id, stream.feed(event.text), event.thinking)
        if isinstance(event, GenerationFinished | GenerationFailed):
            # their ``text`` and ``reasoning`` are whole, cleaned below
            self._streams.pop((event.job_id, False), None)
            self._streams.pop((event.job_id, True), None)
        if isinstance(event, ModelReady):
            info = dataclasses.replace(
                event.info, path=clean_text(event.info.path), name=clean_text(event.info.name)
            )
            return ModelReady(info, event.seconds)
        changes = {
            f.name: clean_data(getattr(event, f.name))
            for f in dataclasses.fields(event)
            if isinstance(getattr(event, f.name), str | dict)
        }
        return dataclasses.replace(event, **changes)


class Engine(Protocol):
    """The interface every backend offers (local llama.cpp, fake, remote)."""

    def start(self, on_event: EventCallback) -> None:
        """Begin; events are delivered to ``on_event`` from a background thread."""

    def load(self, request: LoadModel) -> None: ...

    def generate(self, job: Generate) -> None: ...

    def cancel(self, job_id: int) -> None:
        """Stop job ``job_id`` soon (between tokens); it ends with reason 'cancelled'."""

    def cancel_load(self) -> None:
        """Abandon the model load in progress, where the engine can (it ends in ModelFailed)."""

    def supported_settings(self) -> frozenset[str]:
        """The sampling settings this backend honours (a server may ignore some)."""
        return frozenset(SPEC)

    def can_prefill(self) -> bool:
        """Whether it can go on from an answer's text (``Generate.prefill``) in chat mode."""
        return True

    def kill(self) -> None:
        """End at once, without waiting (the app's last resort after a hang-up).

        By default there is nothing to end: an engine without a process of its
        own ends with the app's.
        """

    def close(self) -> None: ...
