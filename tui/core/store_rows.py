"""Rows of the chat database as the app sees them, and the checks on stored values.

What a database holds (written by an older version, another program, an imported
file) is data: a damaged value gives way to a default or is left out, never a crash,
and text is cleaned of escape sequences where it enters (:mod:`tui.core.store`
reads every row through :func:`conversation` and :func:`message`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tui.core.sanitize import clean_data

# Message status values.
PARTIAL = "partial"  # being generated; saved as it streams
COMPLETE = "complete"
CANCELLED = "cancelled"  # stopped by the user; the text so far is kept
ERROR = "error"
INTERRUPTED = "interrupted"  # the process died while it was being generated
STATUSES = (PARTIAL, COMPLETE, CANCELLED, ERROR, INTERRUPTED)


@dataclass
class Conversation:
    id: int
    title: str
    persona: str
    model: str
    sampling: dict[str, Any]
    created_at: str
    updated_at: str
    context_start_id: int | None = None
    pinned: bool = False
    archived: bool = False
    problem: str = ""  # stored values that could not be used (defaults stand in)
    leaf_id: int | None = None  # the last message of the branch on screen (None: linear)


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str  # "user" or "assistant"
    content: str
    status: str = COMPLETE
    created_at: str = ""
    updated_at: str = ""
    model: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # stored values that could not be used (left out)
    reasoning: str = ""  # a reasoning model's thinking before ``content`` (never inside it)
    parent_id: int | None = None  # the message it answers or follows (None: a first one)


# Rows are read through these two: what a database holds (written by an older
# version, another program, an imported file) is data for the screen, so its
# text (titles, messages, meta such as an error) is cleaned of escape sequences
# here, where it enters.


def _json_field(
    row: dict[str, Any], name: str, clean: Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]
) -> tuple[dict[str, Any], list[str]]:
    """A JSON object column, its unusable values left out, and the names of what was."""
    value, problem = _json_object(row[name], name)
    value, bad = clean(value)
    return value, [p for p in (problem, *(f"{name}.{key}" for key in bad)) if p]


def conversation(row: dict[str, Any]) -> Conversation:
    """A chat from its row; damaged stored values give way to defaults, never a crash."""
    sampling, problems = _json_field(row, "sampling", clean_sampling)
    title = row["title"]
    if not isinstance(title, str):
        title, problems = str(title), [*problems, "title"]
    return Conversation(
        id=row["id"],
        title=clean_data(title or "New chat"),
        persona=str(row["persona"]),
        model=str(row["model"] or ""),
        sampling=sampling,
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"]),
        context_start_id=_int_or_none(row.get("context_start_id")),
        pinned=bool(row.get("pinned")),
        archived=bool(row.get("archived")),
        problem=", ".join(problems),
        leaf_id=_int_or_none(row.get("leaf_id")),
    )


def message(row: dict[str, Any]) -> Message:
    """A message from its row; damaged meta values are left out, never a crash."""
    meta, problems = _json_field(row, "meta", clean_meta)
    content = row["content"]
    if not isinstance(content, str):
        content, problems = "" if content is None else str(content), [*problems, "content"]
    reasoning = row.get("reasoning", "")
    if not isinstance(reasoning, str):
        reasoning = "" if reasoning is None else str(reasoning)
        problems = [*problems, "reasoning"]
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=str(row["role"]),
        content=clean_data(content),
        status=row["status"] if row["status"] in STATUSES else COMPLETE,
        created_at=str(row["created_at"]),
        updated_at=str(row["updated_at"] or ""),
        model=str(row["model"] or ""),
        meta=clean_data(meta),
        problem=", ".join(problems),
        reasoning=clean_data(reasoning),
        parent_id=_int_or_none(row.get("parent_id")),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_object(text: Any, name: str) -> tuple[dict[str, Any], str]:
    """A stored JSON object, or ({}, name) when it is not one (bad JSON, a list, NaN…)."""
    if not text:
        return {}, ""
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return {}, name
    return (value, "") if isinstance(value, dict) else ({}, name)


# meta keys the app reads, and the types they must have
_META_TYPES: dict[str, tuple[type, ...]] = {
    "prompt_tokens": (int,),
    "completion_tokens": (int,),
    "thinking_tokens": (int,),  # of completion_tokens, those spent thinking
    "thinking_seconds": (int, float),  # how long the model thought before answering
    "n_ctx": (int,),
    "tokens_per_second": (int, float),
    "ttft": (int, float),
    "seed": (int,),
    "start": (int,),
    "finish_reason": (str,),
    "error": (str,),
    "writer": (str,),
    "mode": (str,),
    "model": (str,),
    "endpoint": (str,),
}


def meta_problems(meta: dict[str, Any], depth: int = 0) -> list[str]:
    """The keys of ``meta`` whose values have the wrong type (what the app cannot use)."""
    bad = []
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        wrong = isinstance(value, bool) or not isinstance(value, types)
        if wrong or (isinstance(value, float) and not math.isfinite(value)):
            bad.append(key)
    if "alternatives" in meta and not _valid_versions(meta["alternatives"], depth):
        bad.append("alternatives")
    return bad


def _valid_versions(versions: Any, depth: int) -> bool:
    if not isinstance(versions, list) or depth > 1:
        return False
    for version in versions:
        if not isinstance(version, dict) or not isinstance(version.get("content"), str):
            return False
        if not isinstance(version.get("reasoning", ""), str):
            return False
        if version.get("status", COMPLETE) not in STATUSES:
            return False
        meta = version.get("meta", {})
        if not isinstance(meta, dict) or meta_problems(meta, depth + 1):
            return False
    return True


def clean_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``meta`` without its badly typed values, and the keys that were left out."""
    bad = meta_problems(meta)
    return {k: v for k, v in meta.items() if k not in bad}, bad


def clean_sampling(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A chat's sampling settings without the unusable ones (and those keys).

    A number setting must be a finite number, a word setting (``reasoning``)
    one of its words.
    """
    from tui.core.sampling import SPEC, coerce, is_choice

    good, bad = {}, []
    for key, value in values.items():
        try:
            if key in SPEC and value is not None:
                coerce(key, value)  # raises for what is not a number (NaN, "abc", [])
                if not is_choice(key) and not math.isfinite(float(value)):
                    raise ValueError(key)
            good[key] = value
        except (ValueError, OverflowError):
            bad.append(key)
    return good, bad
