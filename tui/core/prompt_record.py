"""The exact prompt of one answer: what it holds, and how it is logged.

An engine describes the prompt it sends when a job starts
(``GenerationStarted.prompt_text`` and ``prompt_info``); the chat service
stores it beside the answer (``Store.save_prompt``) and the TUI shows it
(the prompt view), so that a user can see what the model really read: the
rendered template with its special tokens, what the window left out, and
the sampling values and seed. The engine log gets the same, per job.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any, TextIO

from tui.core.engine_protocol import GenerationStarted
from tui.core.prompt import CUT_MARK, BuiltPrompt
from tui.core.sampling import Sampling
from tui.core.sanitize import clean_text

LOCAL, SERVER_RENDERED, SERVER_TEMPLATE = "local", "server", "server-template"
SOURCES = {
    LOCAL: "rendered by llama-tui with the model's own template, tokenized by llama.cpp",
    SERVER_RENDERED: (
        "the server renders its chat template itself: these are the messages it was sent "
        "(token count: the server's, or an estimate)"
    ),
    SERVER_TEMPLATE: "rendered by the server's /apply-template, sent to its completion endpoint",
}


def prompt_info(built: BuiltPrompt, history_turns: int, seed: int | None, sampling: Sampling,
                source: str = LOCAL) -> dict[str, Any]:  # fmt: skip
    """What a prompt record says besides the text (see ``GenerationStarted.prompt_info``)."""
    return {
        "tokens": len(built.tokens),
        "mode": built.mode,
        "dropped": built.start,  # turns of the history sent that stayed outside the window
        "history": history_turns,
        "cut": sum(1 for turn in built.turns if CUT_MARK in turn.content),
        "seed": seed,
        "sampling": sampling.to_dict(),
        "prefill": len(built.prefill),
        "source": source,
        "special": [],
    }


def log_prompt(job_id: int, text: str, info: dict[str, Any], out: TextIO | None = None) -> None:
    """Write one job's prompt record to the engine log (stderr in the engine process).

    Cleaned like everything else shown: a log read with ``cat`` must not be
    able to move the cursor or set a clipboard.
    """
    stream = out or sys.stderr
    facts = {k: v for k, v in info.items() if k != "special"}
    stream.write(
        f"--- job {job_id} prompt {time.strftime('%H:%M:%S')} {json.dumps(facts, sort_keys=True)}\n"
        f"{clean_text(text)}\n--- end of job {job_id} prompt\n"
    )
    stream.flush()


def record_prompt(
    store: Any, message_id: int, history_ids: list[int], event: GenerationStarted
) -> None:
    """Keep the prompt an engine reported for the answer ``message_id``.

    ``window_start_id``: the message the window began with (the prompt view
    counts the messages above it as left out). Never fails the turn: the
    record is for debugging, the answer is what matters.
    """
    from tui.core.store_errors import StoreError
    from tui.core.store_prompts import save_prompt

    if not event.prompt_text and not event.prompt_info:
        return
    info = dict(event.prompt_info)
    if 0 <= event.start < len(history_ids):
        info["window_start_id"] = history_ids[event.start]
    info.setdefault("tokens", event.prompt_tokens)
    info["n_ctx"] = event.n_ctx
    info["cached_tokens"] = event.cached_tokens
    with contextlib.suppress(StoreError):
        save_prompt(store, message_id, event.prompt_text, info)
