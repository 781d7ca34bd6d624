"""Shared by the wire benchmarks: a scripted server streaming a Markdown answer at a set
pace, and llama-tui versions (this tree, a baseline revision) to run in a pty.

This is a helper module, not a benchmark (see bench_wire_bytes.py, bench_slow_link.py,
bench_server_pace.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.remote_servers import (  # noqa: E402
    Handler,
    JsonReply,
    Reply,
    ScriptedServer,
    chat_chunk,
    sse,
)

END = "ZZEND"  # the last word of the answer: on screen = the whole answer is


def markdown_answer(tokens: int = 600) -> str:
    """A deterministic Markdown answer of about ``tokens`` tokens: headings, lists, code."""
    parts: list[str] = []
    section = 0
    while True:
        section += 1
        parts.append(f"## Step {section}: shaping the data\n")
        parts.append(
            "Here is what this step does and why it matters. We read the input once, "
            "keep what we need and **drop** the rest, so that later steps stay *fast*.\n"
        )
        parts.append(
            "- read the rows\n- keep the `valid` ones\n- sort them by date\n"
            "  - newest first\n- write the result\n"
        )
        parts.append(
            "```python\n"
            f"def step_{section}(rows: list[dict]) -> list[dict]:\n"
            '    """Keep the valid rows, newest first."""\n'
            '    kept = [row for row in rows if row.get("valid")]\n'
            '    kept.sort(key=lambda row: row["date"], reverse=True)\n'
            "    return kept\n"
            "```\n"
        )
        parts.append(
            f"1. Call `step_{section}` with your rows.\n2. Check the count.\n"
            "3. Move on to the next step.\n"
        )
        text = "\n".join(parts)
        if len(split_tokens(text)) >= tokens:
            break
    return text + f"\nThat is all. {END}\n"


_TOKEN = re.compile(r"\s*[^\s]{1,4}|\s+")


def split_tokens(text: str) -> list[str]:
    """Pieces of about 4 characters, as a tokenizer would send them."""
    return _TOKEN.findall(text)


@dataclass
class PacedReply(Reply):
    """An OpenAI chat stream of ``tokens`` at ``rate`` tokens/s (one SSE event each)."""

    tokens: list[str]
    rate: float
    sent: list[float] = field(default_factory=list)  # monotonic send time of each token

    def respond(self, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def put(event: bytes) -> None:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            handler.wfile.flush()

        self.sent.clear()
        put(sse({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}))
        start = time.monotonic()
        for index, token in enumerate(self.tokens):
            due = start + index / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            put(chat_chunk(token))
            self.sent.append(time.monotonic())
        put(chat_chunk(finish="stop"))
        put(sse("[DONE]"))
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


def paced_server(reply: PacedReply) -> ScriptedServer:
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "bench-model"}]})
    server.routes[("POST", "/v1/chat/completions")] = reply
    return server


def launcher(tree: Path, directory: Path, name: str) -> Path:
    """A script that runs llama-tui from ``tree`` (its ``tui`` first on the path)."""
    script = directory / f"llama-tui-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"os.chdir({str(tree)!r})  # the engine child runs python -m tui.engine.local.host\n"
        f"os.environ['PYTHONPATH'] = {str(tree)!r}\n"
        f"sys.path.insert(0, {str(tree)!r})\n"
        "from tui.cli import main\n"
        "sys.exit(main())\n",
        "utf-8",
    )
    script.chmod(0o755)
    return script


def default_baseline() -> str:
    """The code before this branch's changes: where it left main."""
    out = subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "main"


@contextlib.contextmanager
def versions(baseline: str | None) -> Iterator[dict[str, Path]]:
    """{"base": launcher of ``baseline`` (a git worktree), "new": launcher of this tree}."""
    directory = Path(tempfile.mkdtemp(prefix="wire-versions-"))
    found: dict[str, Path] = {}
    worktree = directory / "base"
    made = False
    try:
        if baseline:
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-q", str(worktree), baseline],
                cwd=ROOT, check=True,
            )  # fmt: skip
            made = True
            found["base"] = launcher(worktree, directory, "base")
        found["new"] = launcher(ROOT, directory, "new")
        yield found
    finally:
        if made:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT)


def rev_name(rev: str) -> str:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%h %s", rev], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip()[:70]


class CpuClock:
    """CPU seconds (user + system) of a process and its children, sampled on demand."""

    def __init__(self, pid: int):
        import psutil

        self.proc = psutil.Process(pid)

    def seconds(self) -> float:
        times = self.proc.cpu_times()
        total = times.user + times.system
        with contextlib.suppress(Exception):
            for child in self.proc.children(recursive=True):
                t = child.cpu_times()
                total += t.user + t.system
        return total


def wait_until(predicate, timeout: float, step: float = 0.01) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


_ = (os, threading)
