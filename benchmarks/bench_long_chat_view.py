"""Long chats in the view: open one and show its end, scroll it, stream into it.

In-process, through Textual's ``App.run_test(size=(80, 24))`` with the
FakeEngine (no model: this is about the UI). A database is made with chats
of 20, 200, 1,000 and 5,000 messages (generated text, Markdown answers with
lists and code blocks), and for each size, interleaved over repetitions:

- **open**: ``await app.open_conversation(id)`` and then until the frame
  shows the end of the chat (the last message's words on the screen and
  the view scrolled to the bottom). Target for 5,000 messages: <= 200 ms.
- **widgets / memory**: DOM nodes mounted (all, MessageBox, Markdown blocks)
  and the process RSS after opening; it should not grow with the messages.
- **scroll**: with the 5,000-message chat open and the view focused,
  PageUp until the top, then Up (select the previous message), Home and End:
  time from the key until the first frame that changes (p50 / p95; the
  scroll animation then runs to its end before the next key), and whether
  the first message of the chat can be reached.
- **stream**: UI CPU and wall time for a 300-word Markdown answer streamed
  at full speed (FakeEngine, no delay) into a new chat and into each size.

Usage::

    .venv/bin/python benchmarks/bench_long_chat_view.py           # 5 reps
    .venv/bin/python benchmarks/bench_long_chat_view.py --quick   # 2 reps, no 1,000 size
    .venv/bin/python benchmarks/bench_long_chat_view.py --profile open   # pyinstrument
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))  # if tui is not installed

import psutil  # noqa: E402
import sqlite_utils  # noqa: E402
from make_big_db import answer_text, link_as_trees, user_text  # noqa: E402
from ptyapp import machine, percentile, summary  # noqa: E402

from tui.core.personas import load_library  # noqa: E402
from tui.core.store import Store, title_from  # noqa: E402
from tui.engine.fake import FakeEngine  # noqa: E402
from tui.ui.app import LlamaTUI  # noqa: E402
from tui.ui.widgets.chat_view import ChatView, MessageBox  # noqa: E402
from tui.ui.widgets.prompt_input import PromptInput  # noqa: E402

SIZE = (80, 24)
STREAM_ANSWER = (
    "Here is how it works:\n\n"
    + "\n".join(f"- step {i}: keep the **context** small and the answer clear" for i in range(8))
    + "\n\n```python\n"
    + "\n".join(f"def step_{i}(x):\n    return x * {i}" for i in range(12))
    + "\n```\n\n"
    + " ".join(["That is all there is to it, really."] * 12)
)


def make_db(path: Path, sizes: list[int]) -> dict[int, int]:
    """Chats of the given sizes (oldest first); returns {size: conversation id}."""
    rng = random.Random(11)
    store = Store(path)
    ids: dict[int, int] = {}
    msg_rows = []
    stamp_n = 0
    for size in sizes:
        conv = store.create_conversation("assistant", "fake", title=f"Chat of {size}")
        ids[size] = conv.id
        for number in range(size):
            stamp_n += 1
            stamp = f"2024-01-01T00:00:00.{stamp_n:06d}+00:00"
            role = "user" if number % 2 == 0 else "assistant"
            meta = {"n_ctx": 4096, "prompt_tokens": 100, "completion_tokens": 50}
            msg_rows.append(
                {
                    "conversation_id": conv.id,
                    "role": role,
                    "content": (user_text(rng) if role == "user" else answer_text(rng))
                    + (f"\n\nEND-OF-CHAT-{size}" if number == size - 1 else ""),
                    "status": "complete",
                    "created_at": stamp,
                    "updated_at": stamp,
                    "model": "",
                    "meta": json.dumps(meta if role == "assistant" else {}),
                }
            )
        store.update_conversation(conv.id, title=title_from(f"Chat of {size} messages"))
    with store.conn:
        sqlite_utils.Database(store.conn)["messages"].insert_all(msg_rows, batch_size=1000)
        link_as_trees(store.conn, forks_every=50)
    store.close()
    return ids


def screen_text(app: LlamaTUI) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def until(condition, timeout: float = 10.0, step: float = 0.002) -> bool:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def at_end(view: ChatView) -> bool:
    return view.scroll_y >= view.max_scroll_y - 1


async def open_and_show(app: LlamaTUI, conv_id: int, tail: str) -> tuple[float, float]:
    """Seconds for open_conversation to return, and until the end is on screen."""
    view = app.query_one(ChatView)
    t0 = time.perf_counter()
    await app.open_conversation(conv_id)
    t1 = time.perf_counter()
    ok = await until(lambda: at_end(view) and tail in screen_text(app))
    t2 = time.perf_counter()
    if not ok:
        print(f"   warning: end of chat {conv_id} not seen on screen ({tail!r})")
    return t1 - t0, t2 - t0


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


async def scroll_keys(app: LlamaTUI, pilot, first_text: str) -> dict[str, list[float]]:
    view = app.query_one(ChatView)
    view.focus()
    await pilot.pause()
    times: dict[str, list[float]] = {"pageup": [], "home": [], "end": [], "up": []}
    for key, count in (("pageup", 400), ("end", 1), ("up", 30), ("end", 1), ("home", 1)):
        for _ in range(count):
            before = screen_text(app)
            t0 = time.perf_counter()
            app.simulate_key(key)  # as typed; pilot.press would also wait for the animation
            if key == "home":  # until the chat's first message is on screen
                changed = await until(lambda: first_text in screen_text(app), timeout=3)
            else:
                changed = await until(lambda b=before: screen_text(app) != b, timeout=3)
            if not changed:
                break  # nothing moved: the top (or bottom) is reached
            times[key].append(time.perf_counter() - t0)
            await app.animator.wait_until_complete()  # the scroll animation ends
            await pilot.pause()
    times["reached_top"] = [1.0 if first_text in screen_text(app) else 0.0]
    await pilot.press("end")
    return times


async def stream_into(app: LlamaTUI, pilot, conv_id: int | None) -> tuple[float, float, int]:
    """Stream STREAM_ANSWER (word by word, no delay); seconds, UI CPU seconds, tokens."""
    if conv_id is None:
        conv = app.service.new_conversation("assistant")
        conv_id = conv.id
    await app.open_conversation(conv_id)
    await pilot.pause()
    prompt = app.query_one(PromptInput)
    prompt.focus()
    prompt.insert("stream please")
    before = len(app.store.messages(conv_id))
    proc = psutil.Process()
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.perf_counter()
    await pilot.press("enter")

    def done() -> bool:
        msgs = app.store.messages(conv_id)
        return len(msgs) >= before + 2 and msgs[-1].status == "complete" and not app.service.jobs

    await until(done, timeout=120, step=0.01)
    await pilot.pause()
    seconds = time.perf_counter() - t0
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    return seconds, cpu, len(STREAM_ANSWER.split(" "))


def print_top(session, count: int = 45) -> None:
    """Inclusive and self time per function (recursion counted once) of a pyinstrument run."""
    inclusive: dict[str, float] = {}
    own: dict[str, float] = {}
    root = session.root_frame()
    total = root.time

    def visit(frame, seen: frozenset[str]) -> None:
        key = f"{frame.class_name + '.' if frame.class_name else ''}{frame.function} "
        key += f"({frame.file_path_short})"
        if key not in seen:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
        own[key] = own.get(key, 0.0) + frame.total_self_time
        for child in frame.children:
            visit(child, seen | {key})

    visit(root, frozenset())
    print(f"profile: {total:.3f}s wall; inclusive time")
    for key, value in sorted(inclusive.items(), key=lambda kv: -kv[1])[:count]:
        print(f"  {100 * value / total:5.1f}%  {key}")
    print("self time")
    for key, value in sorted(own.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {100 * value / total:5.1f}%  {key}")


def widget_counts(app: LlamaTUI) -> tuple[int, int, int]:
    nodes = list(app.screen.query("*"))
    boxes = sum(1 for n in nodes if isinstance(n, MessageBox))
    blocks = sum(1 for n in nodes if type(n).__name__.startswith("Markdown"))
    return len(nodes), boxes, blocks


async def run(args) -> None:
    sizes = [20, 200, 5000] if args.quick else [20, 200, 1000, 5000]
    reps = 2 if args.quick else args.reps
    home = Path(tempfile.mkdtemp(prefix="bench-longview-"))
    ids = make_db(home / "chats.db", sizes)
    store = Store(home / "chats.db")
    tails = {size: f"END-OF-CHAT-{size}" for size in sizes}
    firsts = {size: " ".join(store.messages(ids[size])[0].content.split()[:2]) for size in sizes}
    app = LlamaTUI(
        store=store,
        engine=FakeEngine(answer=lambda job: STREAM_ANSWER),
        personas=load_library(user_dir=home / "personas"),
        model_path=home / "fake.gguf",
    )
    print(f"bench_long_chat_view · {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if args.profile == "open":
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="disabled", interval=0.0005)
            profiler.start()
            await open_and_show(app, ids[sizes[-1]], tails[sizes[-1]])
            profiler.stop()
            print_top(profiler.last_session)
            return
        open_times: dict[int, list[float]] = {s: [] for s in sizes}
        frame_times: dict[int, list[float]] = {s: [] for s in sizes}
        widgets: dict[int, tuple[int, int, int]] = {}
        rss: dict[int, list[float]] = {s: [] for s in sizes}
        await open_and_show(app, ids[sizes[0]], tails[sizes[0]])  # warm-up
        await open_and_show(app, ids[sizes[-1]], tails[sizes[-1]])
        rss_start = rss_mb()
        for rep in range(reps):
            order = sizes if rep % 2 == 0 else list(reversed(sizes))
            for size in order:
                opened, shown = await open_and_show(app, ids[size], tails[size])
                open_times[size].append(opened)
                frame_times[size].append(shown)
                widgets[size] = widget_counts(app)
                rss[size].append(rss_mb())
                print(
                    f"rep {rep + 1} open {size:>5} msgs: returned {opened * 1000:7.1f} ms, "
                    f"end on screen {shown * 1000:7.1f} ms, nodes {widgets[size][0]}, "
                    f"RSS {rss[size][-1]:.0f} MiB",
                    flush=True,
                )
        print(f"-- open a chat and show its end ({reps} interleaved reps)")
        for size in sizes:
            print(f"   {size:>5} msgs  end on screen: {summary(frame_times[size], 'ms', 1000)}")
            print(f"   {size:>5} msgs  open returned: {summary(open_times[size], 'ms', 1000)}")
        big = sorted(frame_times[sizes[-1]])[len(frame_times[sizes[-1]]) // 2] * 1000
        verdict = "OK" if big <= 200 else "over target"
        print(f"   {sizes[-1]} messages: median {big:.0f} ms (target <= 200 ms: {verdict})")
        print("-- mounted DOM nodes after opening (all / MessageBox / Markdown*)")
        for size in sizes:
            nodes, boxes, blocks = widgets[size]
            print(
                f"   {size:>5} msgs: {nodes} nodes, {boxes} MessageBox, {blocks} Markdown widgets;"
                f" RSS median {sorted(rss[size])[len(rss[size]) // 2]:.0f} MiB"
            )
        print(f"   RSS at start of the reps {rss_start:.0f} MiB, at the end {rss_mb():.0f} MiB")

        await open_and_show(app, ids[sizes[-1]], tails[sizes[-1]])
        keys = await scroll_keys(app, pilot, firsts[sizes[-1]])
        print(f"-- scrolling the {sizes[-1]}-message chat (time per key until the frame changes)")
        for key in ("pageup", "up", "home", "end"):
            values = keys[key]
            if values:
                print(
                    f"   {key:<7} n={len(values):>3} p50 {percentile(values, 50) * 1000:6.1f} ms"
                    f"  p95 {percentile(values, 95) * 1000:6.1f} ms"
                    f"  max {max(values) * 1000:6.1f} ms"
                )
        reached = "yes" if keys["reached_top"][0] else "NO"
        print(f"   first message of the chat on screen after Home: {reached}")

        print("-- streaming a 300-word Markdown answer at full speed (FakeEngine, no delay)")
        stream: dict[str, list[tuple[float, float, int]]] = {}
        targets: list[tuple[str, int | None]] = [("new chat", None)]
        targets += [(f"{size} msgs", ids[size]) for size in sizes]
        for rep in range(reps):
            for label, conv_id in targets if rep % 2 == 0 else list(reversed(targets)):
                stream.setdefault(label, []).append(await stream_into(app, pilot, conv_id))
        for label, runs in stream.items():
            walls = [r[0] for r in runs]
            cpu_per_token = [r[1] / r[2] * 1000 for r in runs]
            print(
                f"   {label:<10} wall {summary(walls)}; UI CPU per token "
                f"{summary(cpu_per_token, 'ms')}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", choices=["open"], help="pyinstrument one open of the longest")
    parser.add_argument(
        "--max-mounted", type=int, help="try another chat_paging.MAX_MOUNTED (patched in-process)"
    )
    args = parser.parse_args()
    if args.max_mounted:
        import tui.ui.widgets.chat_paging as chat_paging

        chat_paging.MAX_MOUNTED = args.max_mounted
        print(f"(patched: chat_paging.MAX_MOUNTED = {args.max_mounted})")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
