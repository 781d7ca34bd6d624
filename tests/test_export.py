"""Export to Markdown and JSON; importing the JSON back is lossless."""

from __future__ import annotations

import json

import pytest

from tui.core import store as st
from tui.formats import chats as export


def sample_chat(store: st.Store) -> st.Conversation:
    conv = store.create_conversation("bob", "smol.gguf", {"temperature": 0.3})
    store.add_message(conv.id, "user", "Hello, Bob. 你好 [bold]x[/]")
    store.add_message(conv.id, "assistant", "Hello.\n\n```py\nprint(1)\n```", meta={"n_ctx": 512})
    store.add_message(conv.id, "user", "And then?")
    cut = store.add_message(conv.id, "assistant", "Half an", status=st.CANCELLED)
    store.update_conversation(conv.id, pinned=1, context_start_id=cut.id - 1)
    return store.get_conversation(conv.id)


def comparable(store: st.Store, conv: st.Conversation) -> dict:
    """The export of the whole tree, its message ids as places (an import makes new ids)."""
    data = export.to_json(store.get_conversation(conv.id), store.tree(conv.id))
    place = {m["id"]: i for i, m in enumerate(data["messages"])}
    for message in data["messages"]:
        message["id"], message["parent"] = place[message["id"]], place.get(message["parent"])
    return data


def test_json_round_trip_keeps_the_whole_tree(store: st.Store) -> None:
    conv = sample_chat(store)
    first, answer = store.messages(conv.id)[:2]
    store.add_message(conv.id, "assistant", "Another answer", parent_id=first.id)
    store.add_message(conv.id, "user", "on the new branch")
    store.add_message(conv.id, "user", "Hello again", parent_id=None)  # an edited first one
    store.set_leaf(conv.id, store.newest_leaf(answer.id))  # the first branch on screen
    conv = store.get_conversation(conv.id)
    copy = export.import_json(store, json.loads(export.dumps(conv, store.tree(conv.id))))
    assert comparable(store, copy) == comparable(store, conv)
    assert [m.content for m in store.messages(copy.id)] == [
        m.content for m in store.messages(conv.id)
    ]
    assert sorted(store.fork_positions(copy.id).values()) == sorted(
        store.fork_positions(conv.id).values()
    )
    assert len(store.tree(copy.id)) == 7


def test_a_version_1_export_with_kept_versions_imports_them_as_branches(store: st.Store) -> None:
    data = {
        "format": "llama-tui-chat",
        "version": 1,
        "conversation": {"title": "t"},
        "messages": [
            {"role": "user", "content": "joke?"},
            {"role": "assistant", "content": "joke 2",
             "meta": {"alternatives": [{"content": "joke 1", "status": "cancelled"}]}},
        ],
    }  # fmt: skip
    conv = export.import_json(store, data)
    shown = store.messages(conv.id)
    assert [m.content for m in shown] == ["joke?", "joke 2"]
    assert "alternatives" not in shown[1].meta
    versions = store.siblings(shown[1].id)
    assert [(m.content, m.status) for m in versions] == [
        ("joke 2", st.COMPLETE),
        ("joke 1", st.CANCELLED),
    ]


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([{"id": 1, "role": "user", "content": "a"}, {"id": 1, "role": "user", "content": "b"}],
         "no id of its own"),
        ([{"id": 1, "parent": 2, "role": "user", "content": "a"},
          {"id": 2, "role": "user", "content": "b"}], "parent must be"),
        ([{"id": 1, "parent": [1], "role": "user", "content": "a"}], "parent must be"),
        ([{"role": "user", "content": "a"}, {"id": 2, "role": "user", "content": "b"}],
         "no id of its own"),
    ],
)  # fmt: skip
def test_a_broken_tree_is_refused(store: st.Store, messages: list, reason: str) -> None:
    data = {"format": "llama-tui-chat", "version": 2, "conversation": {}, "messages": messages}
    with pytest.raises(export.ChatImportError, match=reason):
        export.import_json(store, data)
    assert store.list_conversations() == []


def test_markdown_of_all_branches_repeats_no_message(store: st.Store) -> None:
    conv = sample_chat(store)
    first = store.messages(conv.id)[0]
    store.add_message(conv.id, "assistant", "Another answer", parent_id=first.id)
    conv = store.get_conversation(conv.id)
    md = export.branches_to_markdown(conv, store.tree(conv.id), "Bob")
    on_screen = md.index("## Branch 1 of 2 (on screen)")  # the new answer's branch
    assert on_screen < md.index("Another answer") < md.index("## Branch 2 of 2")
    assert md.count("**You**:\n\nHello, Bob. 你好") == 1  # the shared question, once
    assert (
        "*The first 1 messages as in branch 1 (up to “Hello, Bob. 你好 [bold]x[/]”), then:*" in md
    )
    assert md.index("## Branch 2 of 2") < md.index("Hello.\n\n```py") < md.index("Half an")


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
