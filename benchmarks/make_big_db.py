"""Make a big llama-tui chat database for the benchmarks.

Default: 10,000 chats and 200,000 messages, among them one long chat of
5,000 messages (not the newest one, so a plain start opens a normal chat).
The schema comes from :class:`tui.core.store.Store` itself (all migrations, FTS
triggers included); rows are bulk-inserted with sqlite-utils in one
transaction. Text is generated deterministically (fixed seed): user
questions, answers in Markdown with lists and code blocks now and then.

A sidecar ``<db>.json`` records the parameters; an existing database made
with the same parameters and at the current schema version is reused
(``--force`` rebuilds).

Usage::

    .venv/bin/python benchmarks/make_big_db.py                   # /tmp/llama-tui-bench/big.db
    .venv/bin/python benchmarks/make_big_db.py --quick           # 1,000 chats, 20,000 messages
    .venv/bin/python benchmarks/make_big_db.py --db X.db --chats 500 --messages 9000
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # if tui is not installed

import sqlite_utils  # noqa: E402

from tui.core.migrations import SCHEMA_VERSION, link_linear_chats  # noqa: E402
from tui.core.store import Store, title_from  # noqa: E402

DEFAULT_DB = Path("/tmp/llama-tui-bench/big.db")
LONG_TITLE = "Long chat"
_WORD_TEXT = (
    "the model answer question python list function value memory token context chat "
    "terminal window screen error file database speed thread process string number loop "
    "class method example simple quick clear local server network key input output "
    "because when which while about every other first last small large fast slow good "
    "make take give show find keep read write open close start stop run test build"
)
WORDS = tuple(_WORD_TEXT.split())


def sentence(rng: random.Random, low: int = 6, high: int = 18) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + rng.choice(".?.!.")


def user_text(rng: random.Random) -> str:
    return " ".join(sentence(rng, 4, 14) for _ in range(rng.randint(1, 3)))


def answer_text(rng: random.Random) -> str:
    parts = [" ".join(sentence(rng) for _ in range(rng.randint(2, 5)))]
    roll = rng.random()
    if roll < 0.3:
        body = "\n".join(
            f"    {rng.choice(WORDS)} = {rng.choice(WORDS)}({rng.randint(0, 99)})"
            for _ in range(rng.randint(2, 8))
        )
        parts.append(f"```python\ndef {rng.choice(WORDS)}():\n{body}\n```")
    elif roll < 0.55:
        parts.append("\n".join(f"- {sentence(rng, 3, 9)}" for _ in range(rng.randint(2, 6))))
    if rng.random() < 0.5:
        parts.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 4))))
    return "\n\n".join(parts)


def message_counts(rng: random.Random, chats: int, messages: int, long_chat: int) -> list[int]:
    """Messages per chat (index 0 is the long chat), summing to ``messages``."""
    rest = messages - long_chat
    others = chats - 1
    counts = [max(2, min(38, int(rng.gauss(rest / others, 8)))) for _ in range(others)]
    diff = rest - sum(counts)
    index = 0
    while diff:
        step = 1 if diff > 0 else -1
        if 1 <= counts[index] + step <= 60:
            counts[index] += step
            diff -= step
        index = (index + 1) % others
    return [long_chat, *counts]


def build(path: Path, chats: int, messages: int, long_chat: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".json"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    store = Store(path)  # the real schema, all migrations applied
    db = sqlite_utils.Database(store.conn)  # bulk inserts: a benchmark fixture, not the app
    counts = message_counts(rng, chats, messages, long_chat)
    # Chat order by recency: the long chat sits second-newest.
    order = list(range(1, chats))
    order.insert(len(order) - 1, 0)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    clock = start
    conv_rows, msg_rows = [], []
    msg_id = 0
    for position, index in enumerate(order):
        conv_id = position + 1
        count = counts[index]
        first_user = ""
        created = clock
        for number in range(count):
            clock += timedelta(seconds=rng.randint(5, 90))
            role = "user" if number % 2 == 0 else "assistant"
            content = user_text(rng) if role == "user" else answer_text(rng)
            first_user = first_user or (content if role == "user" else "")
            meta = (
                {
                    "finish_reason": "stop",
                    "prompt_tokens": rng.randint(40, 2000),
                    "completion_tokens": rng.randint(20, 400),
                    "n_ctx": 4096,
                    "tokens_per_second": 50.0,
                }
                if role == "assistant"
                else {}
            )
            stamp = clock.isoformat(timespec="microseconds")
            msg_id += 1
            msg_rows.append(
                {
                    "id": msg_id,
                    "conversation_id": conv_id,
                    "role": role,
                    "content": content,
                    "status": "complete",
                    "created_at": stamp,
                    "updated_at": stamp,
                    "model": "SmolLM2-135M-Instruct.Q4_1.gguf" if role == "assistant" else "",
                    "meta": json.dumps(meta),
                }
            )
        title = f"{LONG_TITLE} ({count} messages)" if index == 0 else title_from(first_user)
        conv_rows.append(
            {
                "id": conv_id,
                "title": title,
                "persona": "assistant",
                "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
                "sampling": "{}",
                "created_at": created.isoformat(timespec="microseconds"),
                "updated_at": clock.isoformat(timespec="microseconds"),
            }
        )
    with db.conn:
        db["conversations"].insert_all(conv_rows, batch_size=1000)
        db["messages"].insert_all(msg_rows, batch_size=1000)
        link_as_trees(db.conn, forks_every=50)
    db.execute("pragma wal_checkpoint(truncate)")
    db.execute("analyze")
    store.close()
    long_id = order.index(0) + 1
    info = {"chats": chats, "messages": messages, "long_chat": long_chat, "long_chat_id": long_id}
    Path(str(path) + ".json").write_text(json.dumps(info), "utf-8")


def link_as_trees(conn: sqlite3.Connection, forks_every: int = 0) -> None:
    """Make the bulk-inserted linear chats trees, as the app keeps them (schema 5 on).

    Each message becomes the child of the one before it and each chat's last
    message its leaf; with ``forks_every``, every that-many-th answer gets a
    second version beside it (an older regenerate), off the branch on screen.
    A database of a llama-tui without trees (no ``parent_id``) is left linear.
    """
    columns = {row[1] for row in conn.execute("pragma table_info(messages)")}
    if "parent_id" not in columns:
        return
    link_linear_chats(conn)
    if forks_every:
        conn.execute(
            "insert into messages (conversation_id, parent_id, role, content, status,"
            " created_at, updated_at, model, meta)"
            " select conversation_id, parent_id, role, 'an older version: ' || content, status,"
            " created_at, updated_at, model, meta from messages"
            " where role = 'assistant' and id % ? = 0",
            [forks_every],
        )


def _schema(path: Path) -> int:
    """The database's schema version (a newer llama-tui may have migrated it)."""
    with sqlite3.connect(path) as conn:
        return conn.execute("pragma user_version").fetchone()[0]


def ensure_big_db(
    path: Path = DEFAULT_DB,
    chats: int = 10_000,
    messages: int = 200_000,
    long_chat: int = 5_000,
    force: bool = False,
    quiet: bool = False,
) -> dict:
    """The database at ``path`` with these parameters, built if needed; returns its info."""
    sidecar = Path(str(path) + ".json")
    wanted = {"chats": chats, "messages": messages, "long_chat": long_chat}
    if not force and path.exists() and sidecar.exists():
        info = json.loads(sidecar.read_text("utf-8"))
        if all(info.get(k) == v for k, v in wanted.items()) and _schema(path) == SCHEMA_VERSION:
            return info
    started = time.monotonic()
    if not quiet:
        print(f"building {path}: {chats} chats, {messages} messages ...", flush=True)
    build(path, chats, messages, long_chat)
    if not quiet:
        size = path.stat().st_size / 2**20
        print(f"built in {time.monotonic() - started:.1f}s, {size:.0f} MiB", flush=True)
    return json.loads(sidecar.read_text("utf-8"))


def benchmark_db(quick: bool = False) -> Path:
    """The big database the benchmarks use (built if needed); ``quick``: 1,000 chats."""
    if quick:
        path = DEFAULT_DB.with_name("big-quick.db")
        ensure_big_db(path, 1_000, 20_000, 500)
        return path
    ensure_big_db(DEFAULT_DB)
    return DEFAULT_DB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--long-chat", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="1,000 chats, 20,000 messages")
    parser.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = parser.parse_args()
    if args.quick:
        args.chats, args.messages = 1_000, 20_000
        if args.db == DEFAULT_DB:
            args.db = DEFAULT_DB.with_name("big-quick.db")
    info = ensure_big_db(args.db, args.chats, args.messages, args.long_chat, args.force)
    print(f"{args.db}: {json.dumps(info)}")


if __name__ == "__main__":
    main()
