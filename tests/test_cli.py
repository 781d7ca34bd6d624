"""The console script and the packaging of the bundled personas."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tui import __version__

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "llama-tui"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def needs_script() -> None:
    if not SCRIPT.exists():
        pytest.skip("llama-tui is not installed in this environment")


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"llama-tui {__version__}"
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--model", "--db", "--persona", "LLAMA_TUI_DATA_DIR"):
        assert flag in result.stdout


def test_personas_list_shows_bundled_ones() -> None:
    result = run("personas", "list")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"assistant", "bob", "chatllama"} <= set(names)


def test_paths_follow_the_environment(isolated_dirs: Path) -> None:
    out = run("paths").stdout
    assert str(isolated_dirs / "data" / "chats.db") in out
    assert str(isolated_dirs / "config" / "config.toml") in out
    assert str(isolated_dirs / "cache") in out


def test_chats_list_on_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    result = run("--db", str(bad), "chats", "list")
    assert result.returncode == 1
    assert "not a usable llama-tui database" in result.stderr
    assert "Traceback" not in result.stderr


def test_wheel_ships_the_bundled_personas(tmp_path: Path) -> None:
    """A plain (non-editable) install gets the personas inside the package."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("llama_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for persona in ("assistant", "bob", "chatllama"):
        assert f"tui/_bundled_personas/{persona}.toml" in names
    assert "tui/ui/app.py" in names and "tui/engine/local/host.py" in names
    assert "tui/ui/app.tcss" in names  # the app's stylesheet: without it every dialog is bare


@pytest.mark.model
def test_ask_streams_stores_and_exports(tmp_path: Path) -> None:
    db = str(tmp_path / "chats.db")
    result = run("--db", db, "ask", "Say hello.")
    assert result.returncode == 0, result.stderr
    answer = result.stdout.strip()
    assert answer
    assert "llama_" not in result.stdout + result.stderr  # llama.cpp chatter stays in the log
    listed = run("--db", db, "chats", "list").stdout
    assert "Say hello." in listed
    chat_id = listed.split()[0]
    md = run("--db", db, "chats", "show", chat_id).stdout
    assert "**You**:\n\nSay hello." in md and answer in md
    exported = tmp_path / "chat.json"
    assert (
        run("--db", db, "chats", "export", chat_id, "-f", "json", "-o", str(exported)).returncode
        == 0
    )
    imported = run("--db", db, "chats", "import", str(exported))
    assert imported.returncode == 0 and "imported as chat" in imported.stdout
    assert run("--db", db, "chats", "delete", chat_id).returncode == 0
    assert run("--db", db, "chats", "show", chat_id).returncode == 1


def test_ask_without_a_usable_model_fails_clearly(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "c.db"), "ask", "hi", "--model", str(tmp_path / "x.gguf"))
    assert result.returncode == 1
    assert "Model file not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.model
def test_ask_with_a_broken_model_stores_the_reason_and_keeps_the_chat_model(
    tmp_path: Path, model_path: Path
) -> None:
    from tui.core.store import Store

    broken = tmp_path / "broken.gguf"
    with model_path.open("rb") as src:
        broken.write_bytes(src.read(200_000))  # a GGUF header, then nothing
    db = tmp_path / "c.db"
    result = run("--db", str(db), "ask", "hi", "--model", str(broken))
    assert result.returncode == 1
    assert "could not load" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("could not load") == 1  # said once, not once per event
    store = Store(db)
    try:
        (chat,) = store.list_conversations(10)
        answer = store.messages(chat.id)[-1]
        assert answer.role == "assistant" and answer.status == "error"
        assert "could not load" in answer.meta["error"]  # the real reason, not just "no model"
        assert store.get_conversation(chat.id).model == ""  # the broken file is not kept
    finally:
        store.close()


def test_chats_show_tree_and_all_branches(tmp_path: Path) -> None:
    """`chats show N --tree` prints the outline; --all-branches prints every branch."""
    from tui.core.store import Store

    db = tmp_path / "chats.db"
    store = Store(db)
    conv = store.create_conversation("assistant", title="Forked")
    question = store.add_message(conv.id, "user", "what is a fork")
    store.add_message(conv.id, "assistant", "a first answer")
    second = store.add_message(conv.id, "assistant", "a second answer", parent_id=question.id)
    store.add_message(conv.id, "user", "\x1b[31mthanks")  # cleaned: data, never escapes
    store.close()
    tree = run("--db", str(db), "chats", "show", str(conv.id), "--tree")
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines()[1:] == [
        "● You: “what is a fork” · 1 message",
        f"├─ ○ Assistant: “a first answer” · 1 message  [leaf {second.id - 1}]",
        f"└─ ● Assistant: “a second answer” · 2 messages  [leaf {second.id + 1}]",
    ]
    assert "\x1b" not in tree.stdout
    shown = run("--db", str(db), "chats", "show", str(conv.id)).stdout
    assert "a second answer" in shown and "a first answer" not in shown
    every = run("--db", str(db), "chats", "show", str(conv.id), "--all-branches").stdout
    assert "## Branch 1 of 2 (on screen)" in every and "a first answer" in every
    out = tmp_path / "all.md"
    args = ("chats", "export", str(conv.id), "--all-branches", "-o", str(out))
    assert run("--db", str(db), *args).returncode == 0
    assert "## Branch 2 of 2" in out.read_text()
    exported = tmp_path / "chat.json"
    args = ("chats", "export", str(conv.id), "-f", "json", "-o", str(exported))
    assert run("--db", str(db), *args).returncode == 0
    imported = run("--db", str(db), "chats", "import", str(exported))
    assert imported.returncode == 0, imported.stderr
    copy_id = imported.stdout.split()[3].rstrip(":")
    again = run("--db", str(db), "chats", "show", copy_id, "--tree").stdout
    assert again.splitlines()[1:][0] == tree.stdout.splitlines()[1:][0]
    assert len(again.splitlines()) == len(tree.stdout.splitlines())
