"""Export to Markdown and JSON; importing the JSON back is lossless."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.core import store as st
from tui.formats import chats as export


@pytest.fixture
def store(tmp_path: Path) -> st.Store:
    s = st.Store(tmp_path / "chats.db")
    yield s
    s.close()


def sample_chat(store: st.Store) -> st.Conversation:
    conv = store.create_conversation("bob", "smol.gguf", {"temperature": 0.3})
    store.add_message(conv.id, "user", "Hello, Bob. 你好 [bold]x[/]")
    store.add_message(conv.id, "assistant", "Hello.\n\n```py\nprint(1)\n```", meta={"n_ctx": 512})
    store.add_message(conv.id, "user", "And then?")
    cut = store.add_message(conv.id, "assistant", "Half an", status=st.CANCELLED)
    store.update_conversation(conv.id, pinned=1, context_start_id=cut.id - 1)
    return store.get_conversation(conv.id)


def comparable(store: st.Store, conv: st.Conversation) -> dict:
    data = export.to_json(conv, store.messages(conv.id))
    return data


def test_json_round_trip_is_lossless(store: st.Store) -> None:
    conv = sample_chat(store)
    text = export.dumps(conv, store.messages(conv.id))
    copy = export.import_json(store, json.loads(text))
    assert copy.id != conv.id
    assert comparable(store, copy) == comparable(store, conv)
    assert copy.context_start_id == store.messages(copy.id)[2].id


def test_markdown_export_reads_like_a_transcript(store: st.Store) -> None:
    conv = sample_chat(store)
    md = export.to_markdown(conv, store.messages(conv.id), "Bob")
    assert md.startswith("# Hello, Bob.")
    assert "**You**:\n\nHello, Bob. 你好 [bold]x[/]" in md
    assert "**Bob**:\n\nHello.\n\n```py\nprint(1)\n```" in md
    assert "**Bob** (cancelled):\n\nHalf an" in md


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"hello": 1}, "not a llama-tui chat export"),
        ({"format": "llama-tui-chat", "version": 99}, "not supported"),
        ({"format": "llama-tui-chat", "version": 1, "conversation": {}, "messages": [{}]},
         "no valid role"),
        ({"format": "llama-tui-chat", "version": 1, "conversation": {},
          "messages": [{"role": "user", "content": 5}]}, "no text content"),
    ],
)  # fmt: skip
def test_bad_imports_are_refused_before_writing(store: st.Store, data: dict, reason: str) -> None:
    with pytest.raises(export.ChatImportError, match=reason):
        export.import_json(store, data)
    assert store.list_conversations() == []


def test_imported_escape_sequences_are_neutralised(store: st.Store) -> None:
    data = {
        "format": "llama-tui-chat",
        "version": 1,
        "conversation": {"title": "t"},
        "messages": [{"role": "assistant", "content": "a\x1b]52;c;ZXZpbA==\x07b\x1b[2Jc"}],
    }
    conv = export.import_json(store, data)
    assert store.messages(conv.id)[0].content == "abc"
