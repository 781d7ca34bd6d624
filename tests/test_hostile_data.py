"""Hostile data (issue 13, items 4-6 and 10): imports, deleted chats, foreign databases.

Data the app accepts must never break it later; a chat deleted while it
streams stops its answer and nothing else; another program's SQLite file is
refused untouched; every CLI failure is one line and a non-zero status.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_runner import ManualEngine
from tests.uihelpers import SIZE, make_app, screen_text, wait_for
from tui.core import chat_service as rn
from tui.core import store as st
from tui.core.personas import load_library
from tui.engine.fake import FakeEngine
from tui.formats import chats as export

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    """``python -m tui ARGS`` with this checkout's package (and the isolated dirs)."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        input=stdin,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def an_export(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": "llama-tui-chat",
        "version": 1,
        "conversation": {"title": "hi", "persona": "assistant", "sampling": {"temperature": 0.5}},
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi!", "meta": {"prompt_tokens": 3}},
        ],
    }
    for path, value in changes.items():
        *parents, last = path.split(".")
        holder: Any = data
        for part in parents:
            holder = holder[int(part)] if part.isdigit() else holder[part]
        holder[int(last) if last.isdigit() else last] = value
    return data


# --- item 4: imports are validated; bad stored values degrade ------------------------

BAD_IMPORTS = [
    ("conversation.sampling", [1, 2], "conversation.sampling"),
    ("conversation.sampling", "hot", "conversation.sampling"),
    ("conversation.sampling", float("nan"), "conversation.sampling"),
    ("conversation.sampling", {"temperature": "warm"}, "sampling.temperature"),
    ("conversation.sampling", {"top_k": float("inf")}, "sampling.top_k"),
    ("conversation.title", {"a": 1}, "conversation.title"),
    ("messages.1.meta", [1], "meta"),
    ("messages.1.meta", {"prompt_tokens": "12"}, "meta.prompt_tokens"),
    ("messages.1.meta", {"alternatives": "x"}, "meta.alternatives"),
    ("messages.1.meta", {"alternatives": [{"content": 5}]}, "meta.alternatives"),
]


@pytest.mark.parametrize(("path", "value", "named"), BAD_IMPORTS)
def test_import_rejects_wrong_types_naming_the_field(
    tmp_path: Path, path: str, value: Any, named: str
) -> None:
    db = tmp_path / "chats.db"
    source = tmp_path / "chat.json"
    source.write_text(json.dumps(an_export(**{path: value})))
    result = cli("--db", str(db), "chats", "import", str(source))
    assert_one_line_failure(result)
    assert named in result.stderr
    assert "imported" not in result.stdout
    assert cli("--db", str(db), "chats", "list").stdout == ""  # nothing was written


def test_a_valid_import_still_works(tmp_path: Path) -> None:
    db = tmp_path / "chats.db"
    source = tmp_path / "chat.json"
    source.write_text(json.dumps(an_export()))
    result = cli("--db", str(db), "chats", "import", str(source))
    assert result.returncode == 0, result.stderr
    assert "imported as chat 1: hi" in result.stdout


def test_a_nesting_bomb_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    source = tmp_path / "bomb.json"
    source.write_text("[" * 200_000 + "]" * 200_000)
    result = cli("--db", str(tmp_path / "chats.db"), "chats", "import", str(source))
    assert_one_line_failure(result)
    assert "nested too deeply" in result.stderr


def damage(db: Path, conv_sql: str, msg_sql: str) -> None:
    """Write bad values straight into the database, as an old import could have."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(conv_sql)
        conn.execute(msg_sql)
    conn.close()


BAD_ROWS = [
    ("update conversations set sampling = '[1]'", "update messages set meta = '[]'"),
    ("update conversations set sampling = 'NaN'", "update messages set meta = '{'"),
    (
        """update conversations set sampling = '{"temperature": "warm", "top_k": []}'""",
        """update messages set meta = '{"prompt_tokens": "12", "n_ctx": "x",
           "completion_tokens": 1, "alternatives": "x"}'""",
    ),
]


@pytest.mark.parametrize(("conv_sql", "msg_sql"), BAD_ROWS)
async def test_a_chat_with_bad_stored_values_opens_with_a_warning(
    tmp_path: Path, conv_sql: str, msg_sql: str
) -> None:
    store = st.Store(tmp_path / "chats.db")
    conv = store.create_conversation("assistant", sampling={"temperature": 0.5})
    store.add_message(conv.id, "user", "question")
    store.add_message(conv.id, "assistant", "answer", meta={"n_ctx": 100})
    store.close()
    damage(tmp_path / "chats.db", conv_sql, msg_sql)

    app = make_app(tmp_path, FakeEngine())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "answer" in screen_text(app))
        await wait_for(pilot, lambda: any(n.title == "Damaged chat" for n in app._notifications))
        assert app.conversation_id == conv.id
        # the chat still works: its settings are the persona's defaults
        runner = app.service
        assert runner.sampling_of(app.store.get_conversation(conv.id)).temperature >= 0


def test_cycling_versions_with_bad_alternatives_does_not_crash(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "chats.db")
    runner = rn.ChatService(store, ManualEngine(), load_library(), "m.gguf")
    conv = store.create_conversation("assistant")
    store.add_message(conv.id, "user", "q")
    answer = store.add_message(conv.id, "assistant", "a")
    for bad in ("x", [1], [{"content": 1}], [{"content": "b", "meta": "m"}]):
        conn = sqlite3.connect(store.path)
        with conn:
            conn.execute(
                "update messages set meta = ? where id = ?",
                [json.dumps({"alternatives": bad}), answer.id],
            )
        conn.close()
        assert runner.cycle_version(answer.id).content == "a"
        assert runner.regenerate(conv.id)  # the bad versions are left out, not a crash
        runner.jobs.clear()
        answer = store.add_message(conv.id, "assistant", "a")


def test_export_then_import_of_a_damaged_chat_round_trips(tmp_path: Path) -> None:
    store = st.Store(tmp_path / "chats.db")
    conv = store.create_conversation("assistant")
    store.add_message(conv.id, "user", "q")
    damage(tmp_path / "chats.db", "update conversations set sampling = '[1]'", "select 1")
    conv = store.get_conversation(conv.id)
    assert conv.problem == "sampling" and conv.sampling == {}
    copy = export.import_json(store, json.loads(export.dumps(conv, store.messages(conv.id))))
    assert copy.sampling == {} and copy.problem == ""


# --- item 5: a chat deleted while it streams ------------------------------------------


def test_runner_stops_the_job_of_a_chat_deleted_elsewhere(tmp_path: Path) -> None:
    from tui.core.engine_protocol import GenerationFinished, GenerationStarted, TokenText

    store = st.Store(tmp_path / "chats.db")
    engine = ManualEngine()
    runner = rn.ChatService(store, engine, load_library(), "m.gguf")
    conv = runner.new_conversation("assistant")
    _user, _answer, job_id = runner.send(conv.id, "hello")
    runner.handle(GenerationStarted(job_id, 5, 100, 0, "chat"))
    other = st.Store(store.path)  # `llama-tui chats delete` in another process
    other.delete_conversation(conv.id)
    runner.handle(TokenText(job_id, "some text"))
    job = runner.jobs[job_id]
    job.flushed_at = 0  # the next piece is saved
    gone = runner.handle(TokenText(job_id, " more"))
    assert gone is not None and gone.job.gone
    assert job_id not in runner.jobs and engine.cancelled == [job_id]
    assert runner.handle(GenerationFinished(job_id, "x", "cancelled")) is None


async def test_deleting_a_streaming_chat_keeps_the_app(tmp_path: Path) -> None:
    """Its own Delete, and `chats delete` from another process, while an answer streams."""
    words = " ".join(f"w{i}" for i in range(400))
    app = make_app(tmp_path, FakeEngine(answer=lambda job: words, delay=0.01))
    async with app.run_test(size=SIZE) as pilot:
        for round_ in ("own", "other"):
            app.query_one("PromptInput").insert(f"go {round_}")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "w5" in screen_text(app), timeout=30)
            chat = app.conversation_id
            if round_ == "own":
                app.action_delete_chat(chat)
                await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
                await pilot.press("y")  # Delete
            else:
                other = st.Store(app.store.path)
                other.delete_conversation(chat)
                other.close()
                await wait_for(
                    pilot,
                    lambda: any("was deleted" in str(n.message) for n in app._notifications),
                    timeout=30,
                )
            await wait_for(pilot, lambda: not app.service.jobs, timeout=30)
            assert app.is_running and app.conversation_id != chat
            with pytest.raises(KeyError):
                app.store.get_conversation(chat)
        # and the app still answers
        app.query_one("PromptInput").insert("still here")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "w399" in screen_text(app), timeout=60)


# --- item 6: another program's database -------------------------------------------------


def foreign_db(path: Path, table: str) -> bytes:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"create table {table} (id integer primary key, name text)")
        conn.execute(f"insert into {table} (name) values ('alice')")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("table", ["users", "messages"])
def test_another_programs_database_is_refused_untouched(tmp_path: Path, table: str) -> None:
    db = tmp_path / "other.db"
    before = foreign_db(db, table)
    for args in (["chats", "list"], ["ask", "hi"]):
        result = cli("--db", str(db), *args)
        assert_one_line_failure(result)
        assert "not a llama-tui chat database" in result.stderr
        assert "left untouched" in result.stderr
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no backup
    with pytest.raises(st.StoreError):
        st.Store(db)
    assert db.read_bytes() == before


def test_an_empty_file_and_our_own_database_are_accepted(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    st.Store(empty).close()
    st.Store(empty).close()  # and again, now that it is ours


# --- item 8: persona files that never end, templates that never finish ------------------


def test_fifo_and_dev_zero_personas_do_not_hang(isolated_dirs: Path) -> None:
    personas = isolated_dirs / "config" / "personas"
    personas.mkdir(parents=True)
    os.mkfifo(personas / "fifo.toml")
    (personas / "zero.toml").symlink_to("/dev/zero")
    (personas / "huge.toml").write_text('name = "Huge"\nsystem = """' + "x" * 2_000_000 + '"""\n')
    (personas / "fine.toml").write_text('name = "Fine"\nsystem = "You are fine."\n')
    result = cli("personas", "list")  # hung for ever before (the test's timeout is 60 s)
    assert result.returncode == 0, result.stderr
    assert "fine" in result.stdout and "assistant" in result.stdout
    for name in ("fifo.toml", "zero.toml"):
        assert f"{name}" in result.stderr and "not a regular file" in result.stderr
    assert "huge.toml" in result.stderr and "larger than" in result.stderr


ENDLESS = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}{{ messages[0].content }}"
)
HUGE = "{% for i in range(100000) %}{{ messages[0].content }}{% endfor %}"
REPEAT = "{{ 'x' * 100000000 }}"  # 100 MB


@pytest.mark.parametrize(
    ("template", "said"),
    [(ENDLESS, "did not finish"), (HUGE, "more than"), (REPEAT, "too long")],
)
def test_a_chat_template_is_bounded_in_time_and_size(template: str, said: str) -> None:
    """Rendered as the engine does, on a process's main thread; the test waits 60 s at most."""
    script = (
        "import sys\n"
        "from tui.core import prompt\n"
        "prompt.RENDER_SECONDS = 1.0\n"
        "try:\n"
        "    prompt.render_chat(sys.argv[1], [prompt.Turn('user', 'y' * 1000)])\n"
        "except prompt.TemplateError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, template],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert said in result.stdout, (result.stdout[:300], result.stderr[-500:])


# --- item 10: honest messages and exit codes --------------------------------------------

PY = f"PYTHONPATH={ROOT} {sys.executable} -m tui"


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as root of a private mount namespace (for a full or read-only disk)."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -rm (user and mount namespaces) is not available here")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )


def test_a_full_disk_says_so(tmp_path: Path) -> None:
    d = tmp_path / "small"
    d.mkdir()
    result = in_namespace(
        f"mount -t tmpfs -o size=512k tmpfs {d} || exit 99\n"
        f"{PY} --db {d}/chats.db chats list || exit 98\n"
        f"dd if=/dev/zero of={d}/fill bs=4k 2>/dev/null\n"
        f"{PY} --db {d}/chats.db chats list; echo rc=$? >&2\n"
        f"{PY} --db {d}/new.db chats list; echo rc=$? >&2\n"
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr
    for line, rc in zip(lines[0::2], lines[1::2], strict=True):
        assert "is full" in line and "Free some space" in line, line
        assert "Move it aside" not in line and rc == "rc=1"


def test_a_read_only_disk_says_so(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    result = in_namespace(
        f"mount -t tmpfs -o size=4m tmpfs {d} || exit 99\n"
        f"{PY} --db {d}/chats.db chats list || exit 98\n"
        f"mount -o remount,ro {d} || exit 97\n"
        f"{PY} --db {d}/chats.db ask --endpoint http://127.0.0.1:9/v1 hi; echo rc=$? >&2\n"
        f"{PY} --db {d}/new.db chats list; echo rc=$? >&2\n"
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, result.stderr
    for line, rc in zip(lines[0::2], lines[1::2], strict=True):
        assert "read-only" in line and "Move it aside" not in line, line
        assert rc == "rc=1"


def test_an_immutable_directory_says_so(tmp_path: Path) -> None:
    d = tmp_path / "immutable"
    d.mkdir()
    if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        result = cli("--db", str(d / "chats.db"), "chats", "list")
    finally:
        subprocess.run(["chattr", "-i", str(d)], check=True)
    assert_one_line_failure(result)
    assert "not writable" in result.stderr and "Move it aside" not in result.stderr


def test_a_page_corrupted_database_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "chats.db"
    store = st.Store(db)
    for n in range(40):
        conv = store.create_conversation("assistant", title=f"chat {n}")
        store.add_message(conv.id, "user", "words " * 400)
    store.conn.execute("pragma wal_checkpoint(truncate)")
    store.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(2 * page, len(data), page):  # every page but the first
        data[start : start + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))
    for args in (
        ["chats", "list"],
        ["chats", "show", "3"],
        ["ask", "--endpoint", "http://127.0.0.1:9/v1", "hi"],
    ):
        result = cli("--db", str(db), *args)
        assert_one_line_failure(result)
        assert "malformed" in result.stderr or "not a database" in result.stderr


def test_a_failed_migration_is_one_line(tmp_path: Path) -> None:
    """A version-1 database that already has a `pinned` column: migration 2 fails."""
    db = tmp_path / "chats.db"
    store = st.Store(tmp_path / "model.db")
    store.close()
    conn = sqlite3.connect(tmp_path / "model.db")
    conn.execute("vacuum into ?", [str(db)])
    conn.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("drop table messages_fts")
        conn.execute("pragma user_version = 1")
    conn.close()
    result = cli("--db", str(db), "chats", "list")
    assert_one_line_failure(result)
    assert "Could not update" in result.stderr and "bak-v1" in result.stderr


def test_a_crash_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tui import cli as cli_module
    from tui.ui.app import LlamaTUI

    async def crash(self) -> None:  # noqa: ANN001
        raise RuntimeError("boom")

    real_run = LlamaTUI.run
    monkeypatch.setattr(LlamaTUI, "on_mount", crash)
    monkeypatch.setattr(LlamaTUI, "run", lambda self: real_run(self, headless=True))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr(cli_module, "choose_backend", lambda *a: (model, None, ""))
    assert cli_module.main(["--db", str(tmp_path / "chats.db")]) == 1


# --- item 9: huge messages are shown in part -------------------------------------------


async def test_a_huge_message_is_shown_in_part(tmp_path: Path) -> None:
    """A 2 MB answer and a 1 MB message of yours: the start is shown, the rest offered."""
    store = st.Store(tmp_path / "chats.db")
    conv = store.create_conversation("assistant")
    mine = "".join(f"line {i} of mine\n" for i in range(70_000))
    answer = "# Big\n\n" + "".join(f"paragraph {i} of the answer.\n\n" for i in range(80_000))
    store.add_message(conv.id, "user", mine)
    store.add_message(conv.id, "assistant", answer)
    store.close()
    app = make_app(tmp_path, FakeEngine())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.query(".hidden-note")) == 2, timeout=30)
        bodies = list(app.query("Static.body"))
        assert len(bodies) == 2
        for widget in bodies:  # laid out: a few hundred lines, not 150,000
            assert widget.virtual_size.height < 5_000, widget.virtual_size
        notes = [str(n.render()) for n in app.query(".hidden-note")]
        assert all("more characters not shown" in n and "press c" in n for n in notes)
    full = st.Store(tmp_path / "chats.db").messages(conv.id)
    assert [m.content for m in full] == [mine, answer]  # the store keeps every character
