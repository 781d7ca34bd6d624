"""One answer to "is the process with this pid still there?" (store and engine share it)."""

from __future__ import annotations

import os
import subprocess
import sys

from tui.core.processes import pid_exists


def test_our_process_and_a_running_child_exist() -> None:
    assert pid_exists(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_exists(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_exists(child.pid)  # reaped: gone (pids are not reused this fast)


def test_numbers_that_name_no_single_process() -> None:
    assert not pid_exists(0)  # the process group, not a process
    assert not pid_exists(-1)  # every process we may signal
    assert not pid_exists(2**70)  # "host:99999999999999999999999" in a message's meta


def test_the_store_and_the_engine_use_it() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in ("tui/core/store.py", "tui/engine/local/kv_states.py"):
        source = (root / path).read_text(encoding="utf-8")
        assert "pid_exists(" in source and "def _process_alive" not in source, path
