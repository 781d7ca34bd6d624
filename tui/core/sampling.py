"""Sampling settings: what the sliders edit and what the engine receives.

Defaults and ranges follow llama.cpp's ``common.h`` (see the README's table).
A chat stores its settings as JSON; a persona supplies defaults; anything
missing falls back to the values here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric setting, and the slider step."""

    low: float
    high: float
    step: float
    integer: bool = False
    help: str = ""


@dataclass(frozen=True)
class Choice:
    """The allowed values of a setting that is one of a few words (reasoning on/off)."""

    options: tuple[str, ...]
    help: str = ""


REASONING_AUTO, REASONING_ON, REASONING_OFF = "auto", "on", "off"
EFFORTS = ("low", "medium", "high")

# name -> (default, range or choice). Order is the order shown in the sampling panel.
SPEC: dict[str, tuple[float | int | str, Range | Choice]] = {
    "temperature": (0.8, Range(0.0, 2.0, 0.05, help="0 = always the most likely token")),
    "top_k": (40, Range(0, 200, 1, True, "0 = off")),
    "top_p": (0.95, Range(0.0, 1.0, 0.01, help="1 = off")),
    "min_p": (0.05, Range(0.0, 1.0, 0.01, help="0 = off")),
    "typical_p": (1.0, Range(0.0, 1.0, 0.01, help="1 = off")),
    "repeat_penalty": (1.0, Range(1.0, 1.5, 0.01, help="1 = off")),
    "repeat_last_n": (64, Range(0, 4096, 16, True, "tokens the repeat penalty looks back on")),
    "presence_penalty": (0.0, Range(0.0, 2.0, 0.05)),
    "frequency_penalty": (0.0, Range(0.0, 2.0, 0.05)),
    "mirostat_mode": (0, Range(0, 2, 1, True, "0 off, 1 or 2: replaces top-k/top-p/temp")),
    "mirostat_tau": (5.0, Range(0.0, 10.0, 0.1)),
    "mirostat_eta": (0.1, Range(0.0, 1.0, 0.01)),
    "max_tokens": (1024, Range(-1, 8192, 16, True, "-1 = until the model stops")),
    "n_ctx": (4096, Range(256, 131072, 256, True, "capped at the model's training context")),
    "seed": (-1, Range(-1, 2**31 - 1, 1, True, "-1 = a fresh random seed each reply")),
    # Reasoning models (Qwen3, DeepSeek-R1, gpt-oss…): see tui/core/reasoning.py.
    "reasoning": (
        REASONING_AUTO,
        Choice(
            (REASONING_AUTO, REASONING_ON, REASONING_OFF),
            "thinking: auto = as the model's template or server defaults",
        ),
    ),
    "reasoning_effort": ("medium", Choice(EFFORTS, "how long to think (gpt-oss, OpenAI-style)")),
    "reasoning_budget": (
        -1,
        Range(-1, 32768, 64, True, "thinking tokens before the model must answer; -1 = no limit"),
    ),
}


def is_choice(key: str) -> bool:
    """True for the settings that are words (a :class:`Choice`), not numbers."""
    return isinstance(SPEC[key][1], Choice)


NUMERIC = tuple(name for name, (_default, rng) in SPEC.items() if isinstance(rng, Range))
"""The settings that are numbers (sliders), in SPEC order."""


@dataclass(frozen=True)
class Sampling:
    """One complete set of sampling settings (immutable; use ``replace``).

    The defaults are :data:`SPEC`'s: written once, there.
    """

    temperature: float = SPEC["temperature"][0]
    top_k: int = SPEC["top_k"][0]
    top_p: float = SPEC["top_p"][0]
    min_p: float = SPEC["min_p"][0]
    typical_p: float = SPEC["typical_p"][0]
    repeat_penalty: float = SPEC["repeat_penalty"][0]
    repeat_last_n: int = SPEC["repeat_last_n"][0]
    presence_penalty: float = SPEC["presence_penalty"][0]
    frequency_penalty: float = SPEC["frequency_penalty"][0]
    mirostat_mode: int = SPEC["mirostat_mode"][0]
    mirostat_tau: float = SPEC["mirostat_tau"][0]
    mirostat_eta: float = SPEC["mirostat_eta"][0]
    max_tokens: int = SPEC["max_tokens"][0]
    n_ctx: int = SPEC["n_ctx"][0]
    seed: int = SPEC["seed"][0]
    reasoning: str = SPEC["reasoning"][0]
    reasoning_effort: str = SPEC["reasoning_effort"][0]
    reasoning_budget: int = SPEC["reasoning_budget"][0]

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, base: Sampling | None = None) -> Sampling:
        """Build settings from a (possibly partial) dict over ``base``.

        Values are coerced to the field's type and clamped to its range, so a
        bad value in a file or an old database never reaches llama.cpp.
        Unknown keys are ignored here; callers that care report them.
        """
        merged = asdict(base or cls())
        for key, value in (values or {}).items():
            if key in SPEC and value is not None:
                merged[key] = coerce(key, value)
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def diff(self, other: Sampling) -> dict[str, Any]:
        """The settings of ``self`` that differ from ``other``."""
        mine, theirs = asdict(self), asdict(other)
        return {k: v for k, v in mine.items() if theirs[k] != v}


def coerce(key: str, value: Any) -> float | int | str:
    """Convert ``value`` to the type of setting ``key`` and clamp it to its range.

    Raises ValueError for values that are not numbers at all (or, for a
    :class:`Choice`, not one of its words; ``true``/``false`` mean on/off).
    """
    _default, rng = SPEC[key]
    if isinstance(rng, Choice):
        return _choose(key, value, rng)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{key} must be a number, not {value!r}")
    number = float(value)
    if number != number:  # NaN
        raise ValueError(f"{key} must be a number, not NaN")
    number = min(max(number, rng.low), rng.high)
    return int(round(number)) if rng.integer else round(number, 6)


def _choose(key: str, value: Any, choice: Choice) -> str:
    if isinstance(value, bool):
        value = REASONING_ON if value else REASONING_OFF
    word = value.strip().lower() if isinstance(value, str) else None
    word = {"true": REASONING_ON, "false": REASONING_OFF}.get(word or "", word)
    if word not in choice.options:
        raise ValueError(f"{key} must be one of {', '.join(choice.options)}, not {value!r}")
    return word


def out_of_range(key: str, value: Any) -> bool:
    """True if ``value`` is a number outside the allowed range of ``key``."""
    _default, rng = SPEC[key]
    if isinstance(rng, Choice):
        return False  # a word is either one of the choices (coerce says which) or refused
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not rng.low <= number <= rng.high


FIELD_NAMES = tuple(f.name for f in fields(Sampling))
