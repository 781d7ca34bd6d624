"""Few bytes on the wire: what is written is only what changed, and the screen still
ends up exactly right; streaming paints wait for a slow terminal and for keys.

Behaviour, not timing: the screens are compared cell by cell (pyte plays the
terminal), paints are counted.
"""

from __future__ import annotations

import io
import os
import random
import threading
import time
from pathlib import Path

import pyte
import pytest
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual._compositor import ChopsUpdate
from textual.strip import Strip

from tests.uihelpers import SIZE, make_app, type_text, wait_for
from tui.core import store as st
from tui.engine.fake import FakeEngine
from tui.ui import wire
from tui.ui.terminal import SafeWriterThread, output_backlog
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.message_box import StreamingAnswer
from tui.ui.wire import DiffedChops, Painted, render

COLS, ROWS = 40, 6
STYLES = [
    Style(color="red", bgcolor="grey11"),
    Style(color="white", bgcolor="grey11", bold=True),
    Style(bgcolor="grey11"),
    Style(color="green", underline=True),
    None,
]
TEXTS = ["abc", "hello ", "   ", "x", "日本", "é", "wörd", "—", "é\u0301"]  # wide, combining


def _console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, color_system="256", width=COLS)


def _strip(rng: random.Random, width: int) -> Strip:
    segments: list[Segment] = []
    used = 0
    while used < width:
        text = rng.choice(TEXTS)
        segment = Segment(text, rng.choice(STYLES))
        if used + segment.cell_length > width:
            segment = Segment(" " * (width - used), rng.choice(STYLES))
        segments.append(segment)
        used += segment.cell_length
    return Strip(segments, width)


def _update(rng: random.Random, previous: list[dict[int, Strip]] | None) -> ChopsUpdate:
    """Chops for every line: cut at random places (the layout changes now and then), each
    chop kept as it was, changed a little at its end, or new."""
    chops: list[dict[int, Strip]] = []
    ends: list[list[int]] = []
    for y in range(ROWS):
        before = previous[y] if previous else None
        if before is not None and rng.random() < 0.8:
            cuts = sorted(before)
        else:
            cuts = sorted({0, *rng.sample(range(1, COLS), rng.randint(0, 3))})
        line: dict[int, Strip] = {}
        bounds = [*cuts, COLS]
        for x, end in zip(bounds, bounds[1:], strict=False):
            old = before.get(x) if before else None
            if old is not None and old.cell_length == end - x and rng.random() < 0.6:
                line[x] = old if rng.random() < 0.5 else Strip(list(old), end - x)
            elif old is not None and old.cell_length == end - x and rng.random() < 0.7:
                keep = rng.randint(0, end - x)  # a line that grew: same start
                line[x] = Strip.join([old.crop(0, keep), _strip(rng, end - x - keep)])
            else:
                line[x] = _strip(rng, end - x)
        chops.append(line)
        ends.append(bounds[1:])
    spans = []
    for y in range(ROWS):
        x1 = rng.randint(0, COLS // 2)
        spans.append((y, x1, rng.randint(x1 + 1, COLS)))
    return ChopsUpdate(chops, spans, ends)


def _screen() -> tuple[pyte.Screen, pyte.ByteStream]:
    screen = pyte.Screen(COLS, ROWS)
    return screen, pyte.ByteStream(screen)


def test_only_what_changed_is_written_and_the_screen_is_the_same() -> None:
    """Hundreds of random partial updates (pieces kept, grown, replaced, re-cut, wide
    and combining characters): written diffed or whole, the terminal shows the same
    cells in the same colours, and the diffed writing is smaller."""
    rng = random.Random(17)
    console = _console()
    whole_screen, whole_stream = _screen()
    diffed_screen, diffed_stream = _screen()
    painted: Painted = {}
    whole_bytes = diffed_bytes = 0
    previous = None
    for _ in range(300):
        update = _update(rng, previous)
        previous = update.chops  # type: ignore[assignment]
        whole = update.render_segments(console).encode()
        diffed = DiffedChops(update, painted).render_segments(console).encode()
        whole_stream.feed(whole)
        diffed_stream.feed(diffed)
        whole_bytes += len(whole)
        diffed_bytes += len(diffed)
        assert diffed_screen.buffer == whole_screen.buffer
    assert diffed_bytes < whole_bytes * 0.9


def test_an_unchanged_update_writes_nothing_and_a_grown_line_only_its_new_cells() -> None:
    console = _console()
    painted: Painted = {}
    style = Style(color="white", bgcolor="grey11")
    line = Strip([Segment("Hello", style), Segment(" " * 35, style)], COLS)
    first = ChopsUpdate([{0: line}], [(0, 0, COLS)], [[COLS]])
    assert "Hello" in DiffedChops(first, painted).render_segments(console)
    again = DiffedChops(first, painted)
    assert again.render_segments(console) == ""
    assert again.skipped == 1
    grown = Strip([Segment("Hello world", style), Segment(" " * 29, style)], COLS)
    out = DiffedChops(ChopsUpdate([{0: grown}], [(0, 0, COLS)], [[COLS]]), painted)
    text = out.render_segments(console)
    # The space after "Hello" was there already, in the same colours: from "w" on.
    assert text.startswith("\x1b[1;7H") and "world" in text and "Hello" not in text


def test_colours_are_written_once_per_run_of_the_same_colours() -> None:
    console = _console()
    style = Style(color="red", bgcolor="grey11")
    strip = Strip([Segment(word, style) for word in ("def", " ", "f", "(", ")")], 7)
    ours, textuals = render(strip, console), strip.render(console)
    assert ours.count("\x1b[") == 2  # the colours, and the reset at the end
    screen_a, stream_a = _screen()
    screen_b, stream_b = _screen()
    stream_a.feed(ours.encode())
    stream_b.feed(textuals.encode())
    assert screen_a.buffer == screen_b.buffer


def test_the_writer_counts_what_the_terminal_has_not_taken(tmp_path: Path) -> None:
    """A terminal that stops reading (a slow link) shows as a backlog, gone once it reads."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, True)
    file = os.fdopen(write_end, "w", encoding="utf-8")
    writer = SafeWriterThread(file)
    writer.start()
    try:
        chunk = "x" * 65536
        for _ in range(4):  # more than a pipe holds: the writer blocks
            writer.write(chunk)
        assert writer.backlog > 0

        class Driver:
            _writer_thread = writer

        assert output_backlog(Driver()) == writer.backlog
        drained = threading.Event()

        def drain() -> None:
            total = 0
            while total < 4 * 65536:
                total += len(os.read(read_end, 1 << 16))
            drained.set()

        threading.Thread(target=drain, daemon=True).start()
        assert drained.wait(10)
        for _ in range(200):
            if writer.backlog == 0:
                break
            threading.Event().wait(0.01)
        assert writer.backlog == 0
    finally:
        writer.stop()
        file.close()
        os.close(read_end)


MARKDOWN = (
    "\n".join(
        f"## Part {i}\n\nSome text for part {i}, long enough to wrap on a narrow pane.\n\n"
        f"- item {i}\n- another\n\n```python\nprint({i})\n```\n"
        for i in range(12)
    )
    + "\nLAST-LINE"
)


async def _send(pilot, app) -> None:  # noqa: ANN001
    await wait_for(pilot, lambda: app.model_ready)
    await type_text(pilot, "hi")
    await pilot.press("enter")


async def test_a_held_answer_is_not_repainted_then_catches_up_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the terminal has not taken the last frames, the answer is not re-rendered
    (its text is still saved as it streams); when the link drains it catches up at once."""
    backlog = {"value": 10_000}
    monkeypatch.setattr(wire, "output_backlog", lambda driver: backlog["value"])
    engine = FakeEngine(answer=lambda job: MARKDOWN, delay=0.01)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await _send(pilot, app)
        await wait_for(pilot, lambda: bool(app.query(StreamingAnswer)))
        streaming = app.query_one(StreamingAnswer)
        await wait_for(pilot, lambda: streaming.held > 5)
        assert streaming.renders == 0
        assert len(streaming.text) > 20  # the text came (to the service too): only not shown
        saved = app.store.last_messages(app.conversation_id, 1)[-1]  # type: ignore[arg-type]
        assert saved.role == "assistant"
        waiting = len(streaming.text)
        backlog["value"] = 0
        await wait_for(pilot, lambda: streaming.renders > 0 or not streaming.is_attached)
        if streaming.is_attached:  # what waited is shown
            assert streaming.shown >= waiting
        await wait_for(pilot, lambda: "generating" not in str(app.query_one("StatusLine").render()))
        await pilot.pause()
        box = app.query_one(ChatView).box(saved.id)
        assert box is not None and box.message.status == st.COMPLETE
        assert box.message.content == MARKDOWN


async def test_a_key_being_handled_goes_before_the_answer_repaint(tmp_path: Path) -> None:
    """While a key is being handled, streamed text waits (it is not lost) and shows after."""
    engine = FakeEngine(answer=lambda job: MARKDOWN, delay=0.01)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        await _send(pilot, app)
        await wait_for(pilot, lambda: bool(app.query(StreamingAnswer)))
        streaming = app.query_one(StreamingAnswer)
        app.input_pending = 1
        renders = streaming.renders
        await wait_for(pilot, lambda: streaming.held > 3)
        assert streaming.renders == renders
        app.input_pending = 0
        await wait_for(pilot, lambda: streaming.renders > renders or not streaming.is_attached)


async def test_a_following_view_scrolls_in_half_pages_and_shows_the_end(tmp_path: Path) -> None:
    """The pane follows a long answer by half a pane at a time (not a row per line), the
    newest text always in view, and the whole answer's end on screen once it is done."""
    engine = FakeEngine(answer=lambda job: MARKDOWN, delay=0.01)
    app = make_app(tmp_path, engine)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(ChatView)
        await _send(pilot, app)
        await wait_for(pilot, lambda: bool(app.query(StreamingAnswer)))
        steps: list[float] = []
        last = view.scroll_y
        while app.query(StreamingAnswer):
            streaming = app.query(StreamingAnswer).first()
            if view.scroll_y != last:
                steps.append(view.scroll_y - last)
                last = view.scroll_y
            tail = streaming.query_one_optional(".tail")
            if tail is not None and tail.region.height:  # the newest text is on screen
                pane = view.scrollable_content_region
                assert tail.region.y < pane.bottom
            await pilot.pause(0.005)
        pane_rows = view.scrollable_content_region.height
        forward = [s for s in steps if s > 0]
        assert len(forward) >= 2
        # Half a pane at a time, never a row (the first step: as far as the chat overflows).
        assert min(forward[1:]) >= pane_rows // 2 - 1
        await wait_for(pilot, lambda: "LAST-LINE" in _visible(app))


def _visible(app) -> str:  # noqa: ANN001
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def _settled(term, timeout: float = 30) -> None:  # noqa: ANN001
    """Wait until the screen's text has stayed the same for a while (the prompt's
    cursor blinks on: writes never stop)."""
    deadline = time.monotonic() + timeout
    last, same = term.lines(), 0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = term.lines()
        same = same + 1 if now == last else 0
        last = now
        if same >= 4:
            return
    raise AssertionError("the screen kept changing")


def _resize(term, cols: int, rows: int) -> None:  # noqa: ANN001
    with term._lock:
        term.screen.resize(rows, cols)
        term.child.setwinsize(rows, cols)


def test_a_burst_ends_with_exactly_the_screen_a_full_repaint_draws(isolated_dirs: Path) -> None:
    """A fast server's burst, through a real pty: the screen that the diffed writing leaves
    is the very screen a full repaint draws, and it shows the end of the answer."""
    from benchmarks.ptyapp import Term
    from tests.remote_servers import JsonReply, ScriptedServer, StreamReply, chat_chunk, sse
    from tests.test_escapes import _env, _llama_tui

    events = [chat_chunk(f"{piece} ") for piece in MARKDOWN.split(" ")]
    events += [chat_chunk(finish="stop"), sse("[DONE]")]
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = JsonReply({"data": [{"id": "m"}]})
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(events, delay=0.0005)
    term = Term(_llama_tui(), ["--endpoint", server.base_url], env=_env(isolated_dirs))
    try:
        term.wait_for("ready", timeout=60)
        term.send("hi")
        term.wait_for("hi", timeout=10)
        term.send("\r")
        term.wait_for("LAST-LINE", timeout=60)
        term.wait_for(lambda t: "generating" not in t.text(), timeout=60)
        _settled(term)
        diffed = term.lines()
        _resize(term, 100, 24)
        term.wait_for(lambda t: len(t.lines()[0]) == 100 and "ready" in t.text(), timeout=20)
        _settled(term)
        _resize(term, 80, 24)  # a full repaint at the first size
        _settled(term)
        assert term.lines() == diffed
        assert "LAST-LINE" in "\n".join(diffed)
    finally:
        term.close()
        server.close()
