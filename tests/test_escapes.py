"""Text from outside is data: never escape sequences, never markup (issue 13, items 1-3).

The hostile text comes from where it really comes from: a scripted
OpenAI-compatible server (answers, model ids, error bodies), persona files,
an imported chat, GGUF headers and file names. The app runs in a real
pseudo-terminal and every byte it writes is kept; the tests assert that no
hostile sequence is among them. Textual itself writes control sequences to
draw, so the assertions look for the hostile payloads: each carries a marker
(``PWN…``) that only a leaked sequence could put on the wire.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote_servers import JsonReply, ScriptedServer, StreamReply, chat_chunk, sse
from tests.uihelpers import make_app, screen_text, type_text, wait_for
from tui.core.engine_protocol import GenerationFailed, ModelInfo, ModelReady, TokenText
from tui.core.sanitize import clean_text

_switch = sys.getswitchinterval()
from benchmarks.ptyapp import CTRL_Q, Term, app_env  # noqa: E402

sys.setswitchinterval(_switch)  # ptyapp tunes it for benchmarks; tests keep the default

# Every kind of sequence the red team sent, each with a payload marker.
ESCAPES = {
    "osc52 clipboard": "\x1b]52;c;UFdOQ0xJUA==\x07",  # base64 of PWNCLIP
    "osc2 title": "\x1b]2;PWNTITLE\x07",
    "osc0 title (ST)": "\x1b]0;PWNICON\x1b\\",
    "osc8 link": "\x1b]8;;http://PWNLINK.example/\x1b\\link\x1b]8;;\x1b\\",
    "dcs": "\x1bP+qPWNDCS\x1b\\",
    "apc": "\x1b_PWNAPC\x1b\\",
    "c1 osc": "\x9d2;PWNC1TITLE\x9c",
    "c1 dcs": "\x90PWNC1DCS\x9c",
    "clear screen": "\x1b[2J",
    "da query": "\x1b[c",
    "dsr query": "\x1b[6n",
    "c1 csi": "\x9b6n",
    "colour": "\x1b[31m",
    "charset": "\x1b(0",
}
# What must never be on the wire: the payload markers, the introducers, the queries.
FORBIDDEN = [
    b"PWN",
    b"UFdOQ0xJUA",
    b"\x1b]52",
    b"\x1bP+q",
    b"\x1b_",
    b"\xc2\x9b",  # the C1 controls, as UTF-8
    b"\xc2\x9d",
    b"\xc2\x90",
    b"\xc2\x9c",
    b"<\x1b[2J",  # content's own clear screen (marked by the "<" before it)
    b"<\x1b[c",
    b"<\x1b[6n",
    b"<\x1b(0",
]


def assert_clean(data: bytes, where: str) -> None:
    for needle in FORBIDDEN:
        at = data.find(needle)
        assert at < 0, (
            f"{needle!r} reached the terminal ({where}): {data[max(at - 40, 0) :][:120]!r}"
        )


# --- the cleaner --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESCAPES)
def test_every_kind_is_removed_whole_however_the_stream_cuts_it(kind: str) -> None:
    """Split anywhere (ESC at the end of one piece, the rest in the next), same result."""
    from tui.core.sanitize import StreamCleaner

    text = f"a<{ESCAPES[kind]}>b\r\nc"
    whole = clean_text(text)
    assert whole == ("a<link>b\nc" if kind == "osc8 link" else "a<>b\nc")
    for cut in range(len(text) + 1):
        for cut2 in range(cut, len(text) + 1):
            cleaner = StreamCleaner()
            pieces = [text[:cut], text[cut:cut2], text[cut2:]]
            assert "".join(cleaner.feed(p) for p in pieces) + cleaner.finish() == whole, (
                cut,
                cut2,
            )


def test_a_stream_one_character_at_a_time() -> None:
    from tui.core.sanitize import StreamCleaner

    text = "x".join(ESCAPES.values()) + "\x1b]52;c;never-ended"
    cleaner = StreamCleaner()
    out = "".join(cleaner.feed(char) for char in text) + cleaner.finish()
    assert out == clean_text(text)
    assert not any(ord(c) < 32 and c not in "\n\t" or 0x7F <= ord(c) <= 0x9F for c in out)
    assert "PWN" not in out and "UFdO" not in out


def test_engine_events_are_cleaned_at_the_engine_boundary() -> None:
    from tui.core.engine_protocol import CleanEvents

    seen: list = []
    clean = CleanEvents(seen.append)
    clean(TokenText(1, "ok\x1b"))
    clean(TokenText(1, "]52;c;UFdOQ0xJUA==\x07 fine"))
    clean(GenerationFailed(1, "server: \x1b]2;PWN\x07 \x9b6n bad"))
    info = ModelInfo("x\x1b[2J", "name\x1b]2;PWN\x07", 1, 1, True)
    clean(ModelReady(info, 0.1))
    assert [e.text for e in seen[:2]] == ["ok", " fine"]
    assert seen[2].message == "server:   bad"
    assert seen[3].info.name == "name" and seen[3].info.path == "x"


# --- the TUI in a pty, against a hostile server -------------------------------------------


def _llama_tui() -> str:
    candidate = Path(sys.executable).parent / "llama-tui"
    if not candidate.exists():
        pytest.skip("the llama-tui command is not installed")
    return str(candidate)


def _env(home: Path) -> dict[str, str]:
    env = app_env(home)
    root = str(Path(__file__).resolve().parent.parent)  # this checkout's tui package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _stream_reply() -> StreamReply:
    events = [chat_chunk("Hello ")]
    for number, sequence in enumerate(ESCAPES.values()):
        events.append(chat_chunk(f"{number}<{sequence}>"))
    events += [
        chat_chunk("cut<\x1b"),  # a sequence cut between two chunks
        chat_chunk("]2;PWNSPLIT\x07>"),
        chat_chunk("c1cut<\x9d"),
        chat_chunk("0;PWNSPLITC1\x07>"),
        chat_chunk(" THE-END"),
        chat_chunk(finish="stop"),
        sse("[DONE]"),
    ]
    return StreamReply(events)


def _quit(term: Term) -> None:
    term.send(CTRL_Q)
    assert term.closed.wait(20), "the app did not quit"


@contextlib.contextmanager
def _watched(term: Term, where: str, *servers: ScriptedServer) -> Iterator[Term]:
    """Close everything, then check every byte the app wrote (even if the test failed:
    a leaked sequence is the first thing to report)."""
    try:
        yield term
    finally:
        term.close(quit_keys=None)
        for server in servers:
            server.close()
        assert_clean(b"".join(data for _, data in term.chunks), where)


def test_a_hostile_answer_reaches_the_screen_as_text_only(isolated_dirs: Path) -> None:
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "plain-model"}]})
    server.routes[("POST", "/v1/chat/completions")] = _stream_reply()
    term = Term(_llama_tui(), ["--endpoint", server.base_url], env=_env(isolated_dirs))
    with _watched(term, "streamed answer", server):
        term.wait_for("ready", timeout=60)
        term.send("hi")
        term.wait_for("hi", timeout=10)
        term.send("\r")
        term.wait_for("THE-END", timeout=60)
        screen = term.text()
        assert term.child.isalive()
        _quit(term)
    assert "0<>1<>2<>" in screen and "<>13<>cut<>" in screen  # all text, no sequence


def _persona(config: Path) -> None:
    personas = config / "personas"
    personas.mkdir(parents=True, exist_ok=True)
    (personas / "evil.toml").write_text(
        'name = "Evil\\u001b]2;PWNPERSONA\\u0007 [/bogus]"\n'
        'description = "d\\u009b6n [@click=app.quit]"\n'
        'system = "You are evil."\n'
        '"[/bogus]" = 1\n'
        '"[@click=app.quit]x\\u001b]2;PWNKEY\\u0007" = 2\n',
        "utf-8",
    )


def _chat_export(path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "format": "llama-tui-chat",
                "version": 1,
                "conversation": {
                    "title": "Imported\x1b]2;PWNCHATTITLE\x07 [/bogus] chat",
                    "persona": "evil",
                },
                "messages": [
                    {"role": "user", "content": "q\x1b]52;c;UFdOQ0xJUA==\x07 [/bogus]"},
                    {
                        "role": "assistant",
                        "content": "a\x1b[c<\x1b[6n",
                        "status": "error",
                        "meta": {"error": "E\x1b]2;PWNMETAERROR\x07\x9b6n [/bogus]"},
                    },
                ],
            }
        ),
        "utf-8",
    )


def _gguf(path: Path, name: str) -> Path:
    """A GGUF header with ``general.name`` (enough for the picker and `models`)."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    path.write_bytes(header + string("general.name") + struct.pack("<I", 8) + string(name))
    return path


def _hostile_model_dir(home: Path) -> Path:
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    _gguf(models / "file\x1b]2;PWNFILENAME\x07\x9b6n.gguf", "Gguf\x1b]2;PWNGGUFNAME\x07 [/bogus]")
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(f"model_dirs = [{json.dumps(str(models))}]\n", "utf-8")
    return models


def _cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_llama_tui(), *args],
        env=_env(home),
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=120,
    )


def _server_with_hostile_fields() -> ScriptedServer:
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = JsonReply(
        {"data": [{"id": "Model\x1b]2;PWNMODELID\x07\x9d0;PWNC1\x9c [b]M"}]}
    )
    server.routes[("POST", "/v1/chat/completions")] = JsonReply(
        {"error": {"message": "Err\x1b]52;c;UFdOQ0xJUA==\x07 body\x9b6n"}},
        500,
    )
    return server


def test_names_titles_and_errors_from_outside_reach_the_screen_as_text_only(
    isolated_dirs: Path,
) -> None:
    """Model id, server error body, persona name, imported title and meta.error, GGUF
    name and file name: all drawn in the TUI, none writes a sequence."""
    _persona(isolated_dirs / "config")
    _hostile_model_dir(isolated_dirs)
    export = isolated_dirs / "chat.json"
    _chat_export(export)
    assert _cli(isolated_dirs, "chats", "import", str(export)).returncode == 0
    server = _server_with_hostile_fields()
    env = dict(_env(isolated_dirs), COLUMNS="160", LINES="40")
    term = Term(_llama_tui(), ["--endpoint", server.base_url], env=env, cols=160, rows=40)
    with _watched(term, "names, titles and errors", server):
        term.wait_for("ready", timeout=60)
        screen = term.text()
        assert "Model [b]M @" in screen  # the model id, in the status line
        assert "Evil [/bogus]" in screen  # the persona of the imported chat
        assert "Imported [/bogus]" in screen  # its title, in the chat list
        assert "E [/bogus]" in screen  # its error note
        term.send("again")
        term.wait_for("again", timeout=10)
        term.send("\r")
        term.wait_for("Generation failed", timeout=30)
        term.wait_for("Err body", timeout=10)
        term.send("\x1bOS")  # F4: the model picker
        term.wait_for("Gguf [/bogus]", timeout=30)
        assert "file.gguf" in term.text()  # the file name, cleaned
        term.send("\x1b")
        time.sleep(0.5)
        assert term.child.isalive()
        _quit(term)


def test_a_hostile_model_file_name_in_the_status_line(isolated_dirs: Path) -> None:
    models = _hostile_model_dir(isolated_dirs)
    (path,) = models.glob("*.gguf")
    term = Term(_llama_tui(), ["--model", str(path)], env=_env(isolated_dirs))
    with _watched(term, "model file name"):
        term.wait_for("error: model", timeout=60)  # the load failed: its message names the file
        assert "file" in term.text()  # the status line: the file name, cleaned
        assert term.child.isalive()
        _quit(term)


def test_a_server_error_with_markup_is_text_not_an_action(isolated_dirs: Path) -> None:
    """``[/bogus]`` in a server's error crashed the app; ``[@click=app.screenshot(…)]``
    became a link whose click wrote a file of the server's choosing. Both are text now
    (the click itself: test_server_errors_with_markup_are_shown_literally)."""
    target = isolated_dirs / "pwned"
    target.mkdir(parents=True)
    click = f"[@click=app.screenshot('owned.svg','{target}')]CLICKME[/]"
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m"}]})
    replies = iter(["E1 [/bogus] still here", f"E2 {click}"])
    server.routes[("POST", "/v1/chat/completions")] = lambda body: JsonReply(
        {"error": {"message": next(replies)}}, 500
    )
    env = dict(_env(isolated_dirs), COLUMNS="160", LINES="40")
    term = Term(_llama_tui(), ["--endpoint", server.base_url], env=env, cols=160, rows=40)
    with _watched(term, "markup", server):
        term.wait_for("ready", timeout=60)
        term.send("one")
        term.wait_for("one", timeout=10)
        term.send("\r")
        term.wait_for("still here", timeout=30)
        assert "E1 [/bogus] still here" in term.text()
        term.send("two")
        term.wait_for("two", timeout=10)
        term.send("\r")
        term.wait_for("CLICKME", timeout=30)
        assert "[@click=app.screenshot" in term.text()  # text: no link to click
        time.sleep(0.5)
        assert term.child.isalive(), "the app died"
        _quit(term)


# --- the command line -----------------------------------------------------------------------


def test_the_command_line_prints_outside_text_without_sequences(isolated_dirs: Path) -> None:
    """`ask` (answer and error), `chats import/list/show`, `models`, `personas list`."""
    _persona(isolated_dirs / "config")
    _hostile_model_dir(isolated_dirs)
    export = isolated_dirs / "chat.json"
    _chat_export(export)
    outputs = [_cli(isolated_dirs, "chats", "import", str(export))]
    outputs.append(_cli(isolated_dirs, "chats", "list"))
    outputs.append(_cli(isolated_dirs, "chats", "show", "1"))
    outputs.append(_cli(isolated_dirs, "models"))
    outputs.append(_cli(isolated_dirs, "personas", "list"))
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m"}]})
    server.routes[("POST", "/v1/chat/completions")] = _stream_reply()
    try:
        outputs.append(_cli(isolated_dirs, "ask", "--endpoint", server.base_url, "hi"))
    finally:
        server.close()
    hostile = _server_with_hostile_fields()
    try:
        outputs.append(_cli(isolated_dirs, "ask", "--endpoint", hostile.base_url, "hi"))
    finally:
        hostile.close()
    for result in outputs:
        where = " ".join(map(str, result.args[1:3]))
        for stream in (result.stdout, result.stderr):
            assert_clean(stream, where)
            assert b"\x1b" not in stream, f"{where}: {stream[:300]!r}"
    assert b"THE-END" in outputs[-2].stdout
    assert b"Err body" in outputs[-1].stderr and outputs[-1].returncode == 1
    assert b"Imported [/bogus] chat" in outputs[1].stdout
    assert b"Gguf [/bogus]" in outputs[3].stdout


# --- markup: outside text is never read as Textual markup ----------------------------------

HOSTILE_MARKUP = "[/bogus] [@click=app.quit]Q[/]"
CLICK_MARKUP = "[@click=app.quit]CLICKME[/]"


async def test_a_persona_file_with_markup_keys_does_not_crash_the_start(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "odd.toml").write_text(f'name = "Odd"\n"{HOSTILE_MARKUP}" = 1\n', "utf-8")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        # The markup is on screen as text. The whole warning is read from the toast's
        # message: where its lines break depends on the length of the file's path.
        await wait_for(pilot, lambda: "[@click=app.quit]Q[/]" in screen_text(app))
        messages = [notification.message for notification in app._notifications]
        assert any(f"unknown key '{HOSTILE_MARKUP}'" in message for message in messages)
    assert app.return_code in (None, 0) and app._exception is None


async def test_a_markup_title_survives_delete_and_undo(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await type_text(pilot, "[/code] x")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation_id is not None)
        await wait_for(pilot, lambda: not app.service.jobs)
        app.action_delete_chat()
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.store.list_conversations())
        await app.action_undo_delete()
        await wait_for(pilot, lambda: "Restored “[/code] x”" in screen_text(app))
    assert app._exception is None


async def test_a_persona_named_with_markup_can_be_chosen(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "n.toml").write_text('name = "N[/bogus]"\n', "utf-8")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await type_text(pilot, "hello")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.service.jobs and app.conversation_id is not None)
        app.action_change_persona()
        await pilot.pause()
        from textual.widgets import OptionList

        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = ids.index("n")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "now uses N[/bogus]" in screen_text(app))
    assert app._exception is None


@pytest.mark.parametrize("kind", ["generation", "model"])
async def test_server_errors_with_markup_are_shown_literally(tmp_path: Path, kind: str) -> None:
    """A click on the notification must not run the action its text names; a stray
    closing tag must not crash the app."""
    from tui.core.engine_protocol import ModelFailed
    from tui.ui.app import EngineMessage

    def event(message: str) -> GenerationFailed | ModelFailed:
        return GenerationFailed(1, message) if kind == "generation" else ModelFailed("p", message)

    app = make_app(tmp_path)
    quits: list[bool] = []
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.pause()
        app.action_quit = lambda: quits.append(True)  # type: ignore[method-assign]
        app.post_message(EngineMessage(event(f"E {CLICK_MARKUP}")))
        await wait_for(pilot, lambda: "CLICKME" in screen_text(app))
        assert CLICK_MARKUP in screen_text(app)
        row, line = next(
            (n, t) for n, t in enumerate(screen_text(app).splitlines()) if "CLICKME" in t
        )
        await pilot.click(offset=(line.index("CLICKME") + 2, row))
        await pilot.pause(0.3)
        assert not quits, "the click ran the action named in the server's text"
        app.post_message(EngineMessage(event(f"E {HOSTILE_MARKUP}")))
        await wait_for(pilot, lambda: HOSTILE_MARKUP in screen_text(app))
    assert app._exception is None
