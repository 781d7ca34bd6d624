"""Every real chat template llama.cpp ships renders here exactly as llama-server renders it.

Live: each template in llama.cpp's ``models/templates`` (found through
$LLAMA_TUI_TEMPLATES_DIR, else beside the ``llama-server`` binary's source
tree) is given to a real ``llama-server --jinja --chat-template-file`` (a few at
a time, each with a tiny window), and its ``/apply-template`` answer for every
case of ``tests/llama_templates.CASES`` must equal ``render_chat``'s text.
Skipped where llama-server or the templates are absent; the always-run
version of this check uses the recorded answers (test_chat_template.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.llama_templates import CASES, llama_server_binary, render_all, templates_dir
from tui.core.chat_template import TemplateError, render_chat

BINARY = llama_server_binary()
TEMPLATES_DIR = templates_dir()
TEMPLATES = sorted(TEMPLATES_DIR.glob("*.jinja")) if TEMPLATES_DIR and BINARY else []
WHY_SKIPPED = (
    "llama-server is not installed"
    if BINARY is None
    else "llama.cpp's models/templates not found (set LLAMA_TUI_TEMPLATES_DIR)"
)


@pytest.fixture(scope="session")
def llama_server_renderings(request: pytest.FixtureRequest, model_path: Path) -> dict[str, Any]:
    """llama-server's answers for the templates this run selected, rendered once."""
    assert BINARY is not None  # else no template is collected
    wanted = {
        item.callspec.params["template"]
        for item in request.session.items
        if hasattr(item, "callspec")
        and item.originalname == "test_template_renders_as_llama_server_does"
    }
    day = datetime.now().date()
    outputs = render_all(BINARY, model_path, sorted(wanted))
    if datetime.now().date() != day:
        pytest.skip("the date changed while llama-server rendered (templates print it)")
    return outputs


def _first_difference(ours: str, theirs: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
    at = min(len(ours), len(theirs)) if at is None else at
    return f"at {at}: ours {ours[at - 40 : at + 60]!r} / llama-server {theirs[at - 40 : at + 60]!r}"


@pytest.mark.model
@pytest.mark.parametrize(
    "template",
    TEMPLATES or [pytest.param(None, marks=pytest.mark.skip(reason=WHY_SKIPPED))],
    ids=lambda path: path.stem if isinstance(path, Path) else "none",
)
def test_template_renders_as_llama_server_does(
    template: Path, llama_server_renderings: dict[str, Any]
) -> None:
    expected = llama_server_renderings[template.name]
    source = template.read_text(encoding="utf-8")
    bos, eos = expected["bos_token"], expected["eos_token"]
    wrong = []
    for name, case in CASES.items():
        theirs = expected[name]
        try:
            ours = render_chat(source, case.turns, bos, eos, **case.ours)
        except TemplateError as exc:
            if not isinstance(theirs, dict):  # llama-server rendered it: so must we
                wrong.append(f"{name}: we failed ({exc}), llama-server did not")
            continue
        if isinstance(theirs, dict):
            wrong.append(f"{name}: llama-server refused ({theirs['error'][:200]}), we did not")
        elif ours != theirs:
            wrong.append(f"{name}: {_first_difference(ours, theirs)}")
    assert not wrong, f"{template.name} renders differently from llama-server:\n" + "\n".join(wrong)
