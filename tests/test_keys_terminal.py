"""Keys and pastes as a real terminal sends them: raw bytes written to a pty.

Over SSH and tmux several keys often arrive in one read, a paste may carry
escape sequences and line ends, and what is typed before the first frame
is waiting in the tty. Each test writes the bytes in ONE ``os.write`` to the
installed ``llama-tui`` and asserts on what they did: the screen (pyte) and
the database.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_e2e import Terminal
from tui.core.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.model]

HOME, END, UP, DOWN, LEFT, RIGHT = b"\x1b[H", b"\x1b[F", b"\x1b[A", b"\x1b[B", b"\x1b[D", b"\x1b[C"
PAGE_DOWN, SHIFT_TAB, F2 = b"\x1b[6~", b"\x1b[Z", b"\x1bOQ"
PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"


@pytest.fixture
def env(isolated_dirs: Path) -> dict[str, str]:
    environment = dict(os.environ)  # PYTHONPATH too: the child imports this checkout
    environment.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
    return environment


@pytest.fixture
def db(isolated_dirs: Path) -> Path:
    return isolated_dirs / "data" / "chats.db"


@pytest.fixture
def term(env: dict[str, str]) -> Iterator[Terminal]:
    terminal = Terminal([], env)
    try:
        terminal.wait_for("ready", timeout=90)
        yield terminal
    finally:
        terminal.child.close(force=True)


def burst(term: Terminal, data: bytes) -> None:
    """Several keys in one write, as SSH delivers them."""
    assert os.write(term.child.child_fd, data) == len(data)


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def wait_until(term: Terminal, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Pump the screen until ``check()`` is truthy; fail naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        term.pump(0.1)
        result = check()
        if result:
            return result
    raise AssertionError(f"{what} never happened; last: {check()!r}; screen:\n{term.text()}")


def user_messages(db: Path) -> list[str]:
    """The user's messages so far; none while the app is still creating the database."""
    try:
        found = rows(db, "select content from messages where role='user' order by id")
    except sqlite3.OperationalError:  # the file is there, its tables not yet
        return []
    return [r[0] for r in found]


PLACEHOLDER = "ask something…"  # what an empty message box shows


def prompt_box(term: Terminal) -> str:
    """The text inside the message box (bordered, at column 24 above the footer)."""
    lines = term.screen.display
    top = max(i for i, line in enumerate(lines) if line[24] == "╭")
    bottom = next(i for i in range(top + 1, len(lines)) if lines[i][24] == "╰")
    text = "\n".join(line[26:-1].rstrip() for line in lines[top + 1 : bottom]).strip(" ")
    return "" if text == PLACEHOLDER else text


def box_lines(term: Terminal) -> list[str]:
    """The rows inside the message box, by its left border (a notification may cover
    the right part): a stray empty line shows as one row more."""
    lines = term.screen.display
    top = max(i for i, line in enumerate(lines) if line[24] == "╭")
    bottom = next(i for i in range(top + 1, len(lines)) if lines[i][24] == "╰")
    rows = [line[26:-1].rstrip() for line in lines[top + 1 : bottom]]
    return ["" if row.startswith(PLACEHOLDER) else row[:10].rstrip() for row in rows]


# --- 1. bracketed paste ---------------------------------------------------------------------


def test_paste_with_escape_sequences_arrives_whole_in_order_and_clean(
    term: Terminal, db: Path
) -> None:
    burst(term, PASTE_START + b"AAA\x1b[31mBBB\x1b[0m CCC" + PASTE_END + b"Z")
    wait_until(term, lambda: "Z" in prompt_box(term), "the key after the paste")
    assert prompt_box(term) == "AAABBB CCCZ"
    assert "^[" not in term.text()
    burst(term, b"\r")
    wait_until(term, lambda: user_messages(db), "the message being sent")
    assert user_messages(db) == ["AAABBB CCCZ"]


def test_paste_with_line_ends_never_sends_and_keeps_every_line(term: Terminal, db: Path) -> None:
    paste = b"one\r\ntwo\x1b[1m2\x1b[0m\rthree\nfour\x1b]0;title\x07\tend"
    burst(term, PASTE_START + paste + PASTE_END + b"Z")
    wait_until(term, lambda: "endZ" in prompt_box(term), "the key after the paste")
    assert not rows(db, "select id from messages") if db.exists() else True  # nothing sent
    assert prompt_box(term).splitlines()[0] == "one"
    burst(term, b"\r")
    wait_until(term, lambda: user_messages(db), "the message being sent")
    assert user_messages(db) == ["one\ntwo2\nthree\nfour\tendZ"]


def test_paste_split_over_reads_and_invalid_utf8(term: Terminal, db: Path) -> None:
    """The end marker may come in a later read; bytes that are not UTF-8 do not crash."""
    burst(term, PASTE_START + b"first \xff\xfe half\x1b[3")
    term.pump(0.3)
    burst(term, b"1m second\r\nhalf" + PASTE_END[:3])
    term.pump(0.3)
    burst(term, PASTE_END[3:] + b"!\r")
    wait_until(term, lambda: user_messages(db), "the message being sent")
    assert user_messages(db) == ["first \ufffd\ufffd half second\nhalf!"]


# --- 2. new line keys --------------------------------------------------------------------------


def test_alt_enter_and_ctrl_j_insert_a_new_line_and_never_send(term: Terminal, db: Path) -> None:
    burst(term, b"one\x1b\rtwo\nthree")  # Alt+Enter is ESC CR; Ctrl+J is LF
    wait_until(term, lambda: "three" in prompt_box(term), "the last word")
    assert prompt_box(term).splitlines() == ["one", "two", "three"]
    assert not (db.exists() and rows(db, "select id from messages"))
    burst(term, b"\r")
    wait_until(term, lambda: user_messages(db), "the message being sent")
    assert user_messages(db) == ["one\ntwo\nthree"]


# --- 3. bursts -----------------------------------------------------------------------------------


def sampling(db: Path) -> dict[str, Any]:
    import json

    found = rows(db, "select sampling from conversations order by id desc limit 1")
    return json.loads(found[0][0]) if found else {}


def test_burst_in_the_sampling_panel_applies_every_key_to_the_row_it_reaches(
    term: Terminal, db: Path
) -> None:
    burst(term, F2)
    term.wait_for("temperature", timeout=30)
    burst(term, HOME + DOWN + RIGHT + RIGHT + DOWN + PAGE_DOWN)
    expected = {"temperature": 0.0, "top_k": 42, "top_p": 0.85}
    wait_until(term, lambda: db.exists() and sampling(db) == expected, "the three edits")
    # Six Down then End in one burst: from top_p six rows down (frequency_penalty) to
    # its maximum; six Up then End: back on top_p, to its maximum.
    burst(term, DOWN * 6 + END)
    expected["frequency_penalty"] = 2.0
    wait_until(term, lambda: sampling(db) == expected, "End six rows further down")
    burst(term, UP * 6 + END)
    expected["top_p"] = 1.0
    wait_until(term, lambda: sampling(db) == expected, "End six rows back up")


def test_left_enter_in_one_burst_chooses_delete_in_the_dialog(
    env: dict[str, str], db: Path
) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    chat = store.create_conversation("assistant", title="Keep me")
    store.add_message(chat.id, "user", "first question")
    store.add_message(chat.id, "assistant", "an answer to delete")
    store.close()
    term = Terminal([], env)
    try:
        term.wait_for("an answer to delete", timeout=60)
        burst(term, SHIFT_TAB + b"d")  # the chat view (newest message selected), delete
        term.wait_for("Delete this message?", timeout=30)
        burst(term, LEFT + b"\r")
        gone = "select content from messages"
        wait_until(term, lambda: rows(db, gone) == [("first question",)], "the deletion")
    finally:
        term.child.close(force=True)


# --- 5. type-ahead ----------------------------------------------------------------------------


def test_keys_typed_before_the_first_frame_reach_the_input(env: dict[str, str], db: Path) -> None:
    term = Terminal([], env)
    try:
        burst(term, b"typed early\r")  # before anything is drawn: the tty holds it
        wait_until(term, lambda: db.exists() and user_messages(db), "the early message")
        assert user_messages(db) == ["typed early"]
        term.wait_for("typed early", timeout=30)
        wait_until(term, lambda: box_lines(term) == [""], "an empty one-line message box")
    finally:
        term.child.close(force=True)


def test_keys_typed_before_the_first_frame_without_enter_wait_in_the_box(
    env: dict[str, str],
) -> None:
    term = Terminal([], env)
    try:
        burst(term, b"half a thought")
        term.wait_for("ready", timeout=90)
        wait_until(term, lambda: prompt_box(term) == "half a thought", "the early text")
    finally:
        term.child.close(force=True)


# --- 4. one key, one meaning; F1 ------------------------------------------------------------


def seeded_terminal(env: dict[str, str], db: Path, chats: int = 2) -> Terminal:
    """llama-tui on a database with ``chats`` chats (the newest is opened)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    for number in range(1, chats + 1):
        chat = store.create_conversation("assistant", title=f"Chat number {number}")
        store.add_message(chat.id, "user", f"question in chat {number}")
        store.add_message(chat.id, "assistant", f"answer in chat {number}")
    store.close()
    term = Terminal([], env)
    term.wait_for(f"answer in chat {chats}", timeout=60)
    return term


def test_f2_in_the_chat_list_opens_the_sampling_panel(env: dict[str, str], db: Path) -> None:
    term = seeded_terminal(env, db)
    try:
        burst(term, SHIFT_TAB + SHIFT_TAB + F2)  # message box -> chat -> chat list; F2
        term.wait_for("temperature", timeout=30)
        assert "Rename chat" not in term.text()
        burst(term, F2)  # closes it again
        wait_until(term, lambda: "temperature" not in term.text(), "the panel closing")
        assert "Rename chat" not in term.text()
    finally:
        term.child.close(force=True)


def test_ctrl_pgup_switches_chat_from_every_area(env: dict[str, str], db: Path) -> None:
    """Ctrl+PgUp/PgDn switch chats wherever the focus is (Textual's scrolling widgets also
    bind them, to sideways paging)."""
    term = seeded_terminal(env, db)
    try:
        for focus_move in (b"", SHIFT_TAB, SHIFT_TAB):
            burst(term, focus_move + b"\x1b[6;5~")  # Ctrl+PgDn: the next (older) chat
            term.wait_for("answer in chat 1", timeout=30)
            burst(term, b"\x1b[5;5~")  # Ctrl+PgUp: back
            term.wait_for("answer in chat 2", timeout=30)
    finally:
        term.child.close(force=True)


def test_f1_lists_the_keys_of_the_focused_area_first(term: Terminal) -> None:
    burst(term, b"\x1bOP")  # F1 with the message box focused
    term.wait_for("Message box", timeout=30)
    screen = term.text()
    lines = screen.splitlines()

    def row(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    assert row("Message box") < row("Send") < row("Everywhere") < row("Sampling")
    assert row("New line") < row("Everywhere")
    assert "Cursor left" not in screen or row("Cursor left") > row("Everywhere")
    burst(term, b"\x1bOP")
    wait_until(term, lambda: "Everywhere" not in term.text(), "the list closing")


def test_a_dialog_opened_and_answered_in_one_burst(env: dict[str, str], db: Path) -> None:
    """Focus move, the key that opens the dialog, and the keys for the dialog: one write."""
    term = seeded_terminal(env, db, chats=1)
    try:
        burst(term, SHIFT_TAB + b"d" + LEFT + b"\r")
        gone = "select content from messages"
        wait_until(term, lambda: rows(db, gone) == [("question in chat 1",)], "the deletion")
    finally:
        term.child.close(force=True)


# --- 6. branches ------------------------------------------------------------------------------


def test_edit_makes_a_branch_and_left_switches_back(env: dict[str, str], db: Path) -> None:
    """e on an answer, a change, Enter: a second version (‹ 2/2 ›); ← shows the first again,
    → the edit; nothing is deleted on the way."""
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    chat = store.create_conversation("assistant", title="Branches")
    store.add_message(chat.id, "user", "name a colour")
    store.add_message(chat.id, "assistant", "the first answer")
    store.close()
    term = Terminal([], env)
    try:
        term.wait_for("the first answer", timeout=60)
        burst(term, SHIFT_TAB + b"e")  # the chat view (newest message selected), edit it
        wait_until(term, lambda: prompt_box(term) == "the first answer", "the answer to edit")
        burst(term, END + b" was blue\r")
        term.wait_for("‹ 2/2 ›", timeout=30)
        answers = "select content from messages where role='assistant' order by id"
        assert rows(db, answers) == [("the first answer",), ("the first answer was blue",)]
        assert "the first answer was blue" in term.text()
        burst(term, SHIFT_TAB + LEFT)  # the chat view, the edited answer selected; back
        term.wait_for("‹ 1/2 ›", timeout=30)
        assert "was blue" not in term.text() and "the first answer" in term.text()
        burst(term, RIGHT)
        term.wait_for("‹ 2/2 ›", timeout=30)
        assert "the first answer was blue" in term.text()
        assert len(rows(db, "select id from messages")) == 3
    finally:
        term.child.close(force=True)
