"""llama.cpp's real chat templates, and what llama-server renders from them (for tests).

The cases here are rendered two ways: by llama-tui's ``render_chat`` and by a
real ``llama-server --jinja --chat-template-file T`` through its
``/apply-template`` endpoint. ``test_template_parity.py`` compares them live
where the binary and llama.cpp's ``models/templates`` exist;
``tests/data/templates/`` holds a few of those templates (llama.cpp is MIT)
with llama-server's answers recorded, for the tests that always run. Refresh
the recording with::

    python -m tests.llama_templates record
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tui.core.prompt import Turn

FIXTURES = Path(__file__).parent / "data" / "templates"
RECORDED = FIXTURES / "llama_server.json"

SYSTEM = Turn("system", "You are a helpful assistant.")
HELLO = Turn("user", "Hello!")
ANSWER = Turn("assistant", "Hi! How can I help?")
QUESTION = Turn("user", "What is 2+2?")


@dataclass(frozen=True)
class Case:
    """One conversation with one setting, as llama-tui and llama-server take it."""

    turns: tuple[Turn, ...]
    ours: dict[str, Any] = field(default_factory=dict)  # render_chat keywords
    theirs: dict[str, Any] = field(default_factory=dict)  # extra /apply-template fields


FOUR_TURNS = (SYSTEM, HELLO, ANSWER, QUESTION)
CASES: dict[str, Case] = {
    "default": Case(FOUR_TURNS),
    "thinking_off": Case(
        FOUR_TURNS, {"thinking": False}, {"chat_template_kwargs": {"enable_thinking": False}}
    ),
    "thinking_on": Case(
        FOUR_TURNS, {"thinking": True}, {"chat_template_kwargs": {"enable_thinking": True}}
    ),
    "effort_low": Case(FOUR_TURNS, {"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
    "effort_high": Case(FOUR_TURNS, {"reasoning_effort": "high"}, {"reasoning_effort": "high"}),
    "reasoning": Case(
        (SYSTEM, HELLO, Turn("assistant", ANSWER.content, "The user greets me."), QUESTION)
    ),
    "reasoning_dropped": Case(
        (SYSTEM, HELLO, Turn("assistant", ANSWER.content, "The user greets me."), QUESTION),
        {"preserve_reasoning": False},
        {"chat_template_kwargs": {"preserve_reasoning": False}},
    ),
    "no_system": Case((HELLO, ANSWER, QUESTION)),
    "whitespace": Case(
        (
            Turn("system", "  Be brief. \n"),
            Turn("user", "\n Héllo 日本 {{ 7*7 }} <b>&amp;\t"),
            Turn("assistant", " Hi!\n\n"),
            Turn("user", "again  "),
        )
    ),
    "greeting": Case((SYSTEM, Turn("assistant", "Welcome, I am Bob."), HELLO)),
}


def request_body(case: Case) -> dict[str, Any]:
    """The OpenAI-style request llama-server renders for ``case``."""
    messages = []
    for turn in case.turns:
        message = {"role": turn.role, "content": turn.content}
        if turn.reasoning:
            message["reasoning_content"] = turn.reasoning
        messages.append(message)
    return {"messages": messages, **case.theirs}


def llama_server_binary() -> Path | None:
    found = shutil.which("llama-server") or "/usr/local/bin/llama-server"
    path = Path(found)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def templates_dir() -> Path | None:
    """llama.cpp's ``models/templates``: $LLAMA_TUI_TEMPLATES_DIR, else beside llama-server.

    A llama-server built from source lives in ``<llama.cpp>/build/bin/``.
    """
    configured = os.environ.get("LLAMA_TUI_TEMPLATES_DIR")
    if configured:
        path = Path(configured)
        return path if path.is_dir() else None
    binary = llama_server_binary()
    if binary is None:
        return None
    path = binary.resolve().parents[2] / "models" / "templates"
    return path if path.is_dir() and any(path.glob("*.jinja")) else None


@functools.cache
def quick_start_flags(binary: Path) -> tuple[str, ...]:
    """Flags that make this llama-server start sooner, where it knows them.

    Skipping the memory fitting pass and the weight repacking takes a third
    off each start; older builds lack the flags.
    """
    try:
        helped = subprocess.run(
            [str(binary), "--help"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    flags: list[str] = []
    if "--fit " in helped or "-fit," in helped:
        flags += ["--fit", "off"]
    if "--no-repack" in helped:
        flags.append("--no-repack")
    return tuple(flags)


class LlamaServer:
    """One llama-server on a free loopback port, with a tiny window and no warm-up."""

    def __init__(self, binary: Path, model: Path, template: Path):
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        command = [str(binary), "--jinja", "--chat-template-file", str(template)]
        command += ["-m", str(model), "-c", "256", "-np", "1", "-t", "1", "--no-warmup"]
        command += ["--host", "127.0.0.1", "--port", "0", *quick_start_flags(binary)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self, timeout: float = 60.0) -> str:
        """llama-server says where it listens (port 0: the system picked one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.seek(0)
            text = self.log.read().decode("utf-8", "replace")
            marker = "listening on http://"
            if marker in text:
                return "http://" + text.split(marker, 1)[1].split()[0]
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited: {text[-2000:]}")
            time.sleep(0.02)
        raise RuntimeError("llama-server did not start")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return {"error": exc.read().decode("utf-8", "replace")[:500]}

    def props(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/props", timeout=60) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()


def render_with_llama_server(binary: Path, model: Path, template: Path) -> dict[str, Any]:
    """Every case of :data:`CASES` as llama-server renders it (an error as {"error": …})."""
    server = LlamaServer(binary, model, template)
    try:
        props = server.props()
        out: dict[str, Any] = {
            "bos_token": props.get("bos_token", ""),
            "eos_token": props.get("eos_token", ""),
            "build": props.get("build_info", ""),
        }
        for name, case in CASES.items():
            answer = server.post("/apply-template", request_body(case))
            out[name] = answer.get("prompt", answer) if "error" not in answer else answer
        return out
    finally:
        server.close()


def render_all(binary: Path, model: Path, templates: Iterable[Path]) -> dict[str, Any]:
    """Render many templates, a few servers at a time (each starts in a fraction of a second)."""
    templates = list(templates)
    workers = max(1, min(4, os.cpu_count() or 1, len(templates)))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(
            lambda t: (t.name, render_with_llama_server(binary, model, t)), templates
        )
        return dict(results)


def record() -> None:
    """Write llama-server's renderings of the vendored templates to :data:`RECORDED`."""
    from tui.core.models import default_model_path

    binary, model = llama_server_binary(), default_model_path()
    if binary is None or model is None:
        sys.exit("needs llama-server and the SmolLM2 model")
    day = datetime.now().strftime("%Y-%m-%d")
    outputs = render_all(binary, model, sorted(FIXTURES.glob("*.jinja")))
    if datetime.now().strftime("%Y-%m-%d") != day:
        sys.exit("the date changed while recording: run it again")
    first = next(iter(outputs.values()))
    recorded = {
        "llama_server_build": first["build"],
        "date": day,
        "bos_token": first["bos_token"],
        "eos_token": first["eos_token"],
        "outputs": {
            name: {case: got[case] for case in CASES} for name, got in sorted(outputs.items())
        },
    }
    RECORDED.write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n")
    print(f"recorded {len(outputs)} templates into {RECORDED}")


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    record()
