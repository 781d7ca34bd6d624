"""The process that owns the llama.cpp model (see :mod:`tui.engine.local.client`).

:func:`main` is the child-process entry point; the model work is done by
:class:`tui.engine.local.model.ModelRunner` (looked up here at run time, so a
test can put a scripted runner in its place).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tui.core import paths
from tui.core.config import DEFAULT_KV_CACHE_MB
from tui.core.engine_protocol import Generate, GenerationFinished, LoadModel
from tui.core.turn_policy import FINISH_CANCELLED
from tui.engine.local.kv_states import PERSISTENT_ENTRIES
from tui.engine.local.model import ModelRunner


def kv_cache_mb(configured: str | None, env: str | None) -> int:
    """The disk budget of KV states kept across restarts, in MiB (0: none kept).

    ``LLAMA_TUI_STATE_CACHE_MB`` wins over the config's ``kv_cache_mb``
    (passed on our command line), which wins over the default.
    """
    for value in (env, configured):
        try:
            if value:
                return max(int(value), 0)
        except ValueError:
            continue
    return DEFAULT_KV_CACHE_MB


def make_runner(send: Any, cancelled: Any, load_cancelled: Any, budget_mb: int) -> ModelRunner:
    """A runner whose chat states stay on disk across restarts, unless the budget is 0.

    With 0, states are still kept for this session (files removed at exit).
    """
    directory = paths.kv_states_dir()
    if budget_mb <= 0:
        return ModelRunner(send, cancelled, load_cancelled=load_cancelled, state_dir=directory)
    return ModelRunner(
        send,
        cancelled,
        load_cancelled=load_cancelled,
        state_cache_entries=PERSISTENT_ENTRIES,
        state_cache_bytes=budget_mb << 20,
        state_dir=directory,
        keep_states=True,
    )


def main(argv: list[str] | None = None) -> None:
    """Child-process entry point: ``python -m tui.engine.local.host FD [KV_CACHE_MB]``.

    FD is our end of a socket pair; KV_CACHE_MB the config's ``kv_cache_mb``.
    The parent has pointed our stdout and stderr at the engine log, so
    llama.cpp's chatter lands there. A reader thread takes commands off the
    socket: cancellations act at once, model work is queued for the main
    thread, which alone touches the model.
    """
    import queue
    import threading
    from multiprocessing.connection import Connection

    from tui.core.engine_protocol import CANCEL_ALL, Cancel, CancelLoad

    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    print(f"--- llama-tui engine {os.getpid()} started {time.ctime()}", file=sys.stderr)
    work: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancelled_up_to = 0
    # Loads are counted like jobs: CancelLoad cancels every load received so far, so
    # a LoadModel that follows it at once cannot clear the cancel of the one running.
    loads_received = 0
    loads_cancelled_up_to = 0
    running_load = 0  # the number of the LoadModel the main thread is running (0: none)
    send_lock = threading.Lock()

    def send(event: Any) -> None:
        with send_lock:
            conn.send(event)

    def read_commands() -> None:
        nonlocal cancelled_up_to, loads_received, loads_cancelled_up_to
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                command = None
            if isinstance(command, Cancel):
                cancelled_up_to = max(cancelled_up_to, command.job_id)
                continue
            if isinstance(command, CancelLoad):
                loads_cancelled_up_to = loads_received
                continue
            if isinstance(command, LoadModel):
                loads_received += 1
                command = (loads_received, command)
            work.put(command)
            if command is None:  # the UI quit or died: stop the running answer and load too
                cancelled_up_to = CANCEL_ALL
                loads_cancelled_up_to = CANCEL_ALL
                return

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    runner = make_runner(
        send,
        lambda job_id: job_id <= cancelled_up_to,
        lambda: 0 < running_load <= loads_cancelled_up_to,
        kv_cache_mb(argv[1] if len(argv) > 1 else None, os.environ.get("LLAMA_TUI_STATE_CACHE_MB")),
    )
    while (command := work.get()) is not None:
        if isinstance(command, tuple):  # (number, LoadModel)
            running_load, request = command
            runner.load(request)
            running_load = 0
        elif isinstance(command, Generate):
            if runner.cancelled(command.job_id):
                send(GenerationFinished(command.job_id, "", FINISH_CANCELLED))
            else:
                runner.generate(command)
    runner.close()


if __name__ == "__main__":
    main()
