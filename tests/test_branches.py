"""Chats as trees: the store keeps every branch, and no edit, regenerate or switch cuts one.

Store: parents, the current leaf, siblings, paths, newest leaves, deleting a
branch. Migration: linear chats and regenerate versions from every earlier
schema become trees without loss. Service: edit (a question or an answer),
edit and resend, regenerate any answer, switch siblings, delete a branch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlite_utils

from tests.test_runner import ManualEngine, finish
from tui.core import chat_service as rn
from tui.core import chat_tree, migrations
from tui.core import store as st
from tui.core.personas import load_library
from tui.formats import chats as chat_formats


@pytest.fixture
def service(store: st.Store) -> rn.ChatService:
    return rn.ChatService(store, ManualEngine(), load_library(), "m.gguf", formats=chat_formats)


def contents(messages: list[st.Message]) -> list[str]:
    return [m.content for m in messages]


def all_contents(store: st.Store, conv_id: int) -> set[str]:
    return {m.content for m in store.tree(conv_id)}


# --- the store ---------------------------------------------------------------------------


def test_messages_follow_their_parents_and_the_chat_remembers_its_leaf(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    q = store.add_message(conv.id, "user", "q")
    a1 = store.add_message(conv.id, "assistant", "a1")
    assert (q.parent_id, a1.parent_id) == (None, q.id)
    a2 = store.add_message(conv.id, "assistant", "a2", parent_id=q.id)  # a sibling of a1
    assert store.get_conversation(conv.id).leaf_id == a2.id
    assert contents(store.messages(conv.id)) == ["q", "a2"]
    follow = store.add_message(conv.id, "user", "more")  # follows the leaf (a2)
    assert follow.parent_id == a2.id
    assert contents(store.messages(conv.id)) == ["q", "a2", "more"]
    assert contents(store.children(q.id)) == ["a1", "a2"]
    assert contents(store.siblings(a1.id)) == ["a1", "a2"]
    assert store.fork_positions(conv.id) == {a1.id: (1, 2), a2.id: (2, 2)}
    assert store.newest_leaf(q.id) == follow.id
    assert store.newest_leaf(a1.id) == a1.id
    assert contents(store.path_to(a1.id)) == ["q", "a1"]
    store.set_leaf(conv.id, a1.id)
    assert contents(store.messages(conv.id)) == ["q", "a1"]
    assert contents(store.last_messages(conv.id, 1)) == ["a1"]
    assert store.count_messages(conv.id) == 4  # every branch
    assert len(store.tree(conv.id)) == 4


def test_a_window_start_on_another_branch_does_not_cut_this_one(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    ids = [store.add_message(conv.id, "user", f"m{i}").id for i in range(4)]
    other = store.add_message(conv.id, "user", "other", parent_id=ids[0])
    assert contents(store.messages(conv.id, ids[2])) == ["m0", "other"]
    assert contents(store.messages(conv.id, other.id)) == ["other"]
    store.set_leaf(conv.id, ids[3])
    assert contents(store.messages(conv.id, ids[2])) == ["m2", "m3"]
    assert contents(store.messages(conv.id, ids[1], before_id=ids[3])) == ["m1", "m2"]


def test_delete_branch_keeps_the_other_branches_and_moves_the_leaf(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    q = store.add_message(conv.id, "user", "q")
    a1 = store.add_message(conv.id, "assistant", "a1")
    store.add_message(conv.id, "user", "after a1")
    a2 = store.add_message(conv.id, "assistant", "a2", parent_id=q.id)
    a2_reply = store.add_message(conv.id, "user", "after a2")
    assert store.delete_branch(a2.id) == store.newest_leaf(a1.id)  # the sibling before
    assert contents(store.messages(conv.id)) == ["q", "a1", "after a1"]
    assert all_contents(store, conv.id) == {"q", "a1", "after a1"}
    with pytest.raises(KeyError):
        store.get_message(a2_reply.id)
    assert store.delete_branch(a1.id) == q.id  # no sibling left: the parent
    assert contents(store.messages(conv.id)) == ["q"]
    assert store.delete_branch(q.id) is None
    assert store.messages(conv.id) == []


def test_delete_message_keeps_its_replies_after_the_message_before(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    q = store.add_message(conv.id, "user", "q")
    a1 = store.add_message(conv.id, "assistant", "a1")
    after = store.add_message(conv.id, "user", "after a1")
    a2 = store.add_message(conv.id, "assistant", "a2", parent_id=q.id)
    store.set_leaf(conv.id, after.id)
    store.update_conversation(conv.id, context_start_id=a1.id)
    assert store.delete_message(a1.id) == after.id  # the branch on screen stays on screen
    assert contents(store.messages(conv.id)) == ["q", "after a1"]
    assert contents(store.children(q.id)) == ["after a1", "a2"]
    assert store.get_conversation(conv.id).context_start_id is None  # its start went
    assert store.delete_message(after.id) == a2.id  # a leaf: the next version is shown
    assert contents(store.messages(conv.id)) == ["q", "a2"]
    assert store.delete_message(q.id) == a2.id  # the first message: its reply comes first
    assert contents(store.messages(conv.id)) == ["a2"]
    assert store.get_message(a2.id).parent_id is None


def test_rows_without_parents_read_as_one_branch_and_are_linked_on_write(
    store: st.Store,
) -> None:
    """Rows another program wrote (no parent, no leaf) are one linear chat."""
    conv = store.create_conversation("bob")
    with store.conn:
        sqlite_utils.Database(store.conn)["messages"].insert_all(
            {"conversation_id": conv.id, "role": "user", "content": f"m{i}",
             "status": "complete", "created_at": "t", "updated_at": "t"}
            for i in range(3)
        )  # fmt: skip
    assert contents(store.messages(conv.id)) == ["m0", "m1", "m2"]
    assert contents(store.last_messages(conv.id, 2)) == ["m1", "m2"]
    store.add_message(conv.id, "assistant", "a")
    assert contents(store.messages(conv.id)) == ["m0", "m1", "m2", "a"]
    assert [m.parent_id is None for m in store.tree(conv.id)] == [True, False, False, False]


def test_a_long_branch_reads_without_recursion_limits(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    with store.transaction():
        for i in range(3000):
            store.add_message(conv.id, "user" if i % 2 else "assistant", f"m{i}")
    messages = store.messages(conv.id)
    assert len(messages) == 3000 and messages[-1].content == "m2999"
    assert len(store.last_messages(conv.id, 30)) == 30
    first = messages[0].id
    store.add_message(conv.id, "user", "fork", parent_id=first)
    assert contents(store.messages(conv.id)) == ["m0", "fork"]
    assert store.delete_branch(messages[1].id) == store.leaf_id(conv.id)
    assert store.count_messages(conv.id) == 2


def test_parents_that_loop_end_every_walk(store: st.Store) -> None:
    """A damaged database whose parents loop: reads and deletes end, nothing hangs."""
    conv = store.create_conversation("bob")
    ids = [store.add_message(conv.id, "user", f"m{i}").id for i in range(3)]
    store.conn.execute("update messages set parent_id = ? where id = ?", [ids[2], ids[0]])
    store.conn.commit()
    assert contents(store.messages(conv.id)) == ["m0", "m1", "m2"]
    assert contents(store.path_to(ids[1])) == ["m0", "m1"]
    assert store.newest_leaf(ids[0]) == ids[2]
    assert chat_tree.outline_text(store.tree(conv.id), set()) == ""  # no first message
    assert store.delete_branch(ids[1]) is not None
    assert contents(store.tree(conv.id)) == ["m0"]


# --- the migration -------------------------------------------------------------------------

TREE_MIGRATION = migrations.MIGRATIONS.index(migrations._m005_tree)


def _old_database(path: Path, version: int) -> None:
    """A database at schema ``version`` with a linear chat whose last answer has versions."""
    db = sqlite_utils.Database(st._open(path))
    with db.conn:
        for migration in migrations.MIGRATIONS[:version]:
            migration(db)
        db.execute(f"pragma user_version = {version}")
        db["conversations"].insert(
            {"id": 1, "title": "old", "persona": "bob", "created_at": "t", "updated_at": "t"}
        )
        versions = [
            {
                "content": "first joke",
                "status": "complete",
                "meta": {"version": 1},
                "reasoning": "a pun, then",
            },  # fmt: skip
            {"content": "second joke", "status": "cancelled", "meta": {"version": 2}},
            "damaged",  # not a version: kept in the meta as it was
        ]
        rows = [
            ("user", "tell a joke", {}),
            ("assistant", "third joke", {"alternatives": versions, "version": 3}),
            ("user", "another", {}),
            ("assistant", "an answer", {}),
        ]
        for role, content, meta in rows:
            db["messages"].insert(
                {"conversation_id": 1, "role": role, "content": content, "status": "complete",
                 "created_at": "t", "updated_at": "t", "meta": json.dumps(meta)}
            )  # fmt: skip
    db.close()


@pytest.mark.parametrize("old_version", range(1, TREE_MIGRATION + 1))
def test_linear_chats_and_versions_become_trees_without_loss(
    tmp_path: Path, old_version: int
) -> None:
    path = tmp_path / f"v{old_version}.db"
    _old_database(path, old_version)
    store = st.Store(path)
    assert migrations.version(store.conn) == migrations.SCHEMA_VERSION
    assert contents(store.messages(1)) == ["tell a joke", "third joke", "another", "an answer"]
    third = store.messages(1)[1]
    assert contents(store.siblings(third.id)) == ["third joke", "first joke", "second joke"]
    assert store.siblings(third.id)[1].reasoning == "a pun, then"  # its thinking kept
    second = store.siblings(third.id)[2]
    assert second.status == st.CANCELLED and second.meta == {"version": 2}
    raw = json.loads(
        store.conn.execute("select meta from messages where id = ?", [third.id]).fetchone()[0]
    )
    assert raw["alternatives"] == ["damaged"]  # not lost
    assert store.fork_positions(1)[third.id] == (1, 3)
    assert store.search("second joke")[0][0].id == second.id  # versions are searchable now
    store.update_message(third.id, "a fresh punchline")  # the index still follows edits
    assert store.search("punchline")[0][0].id == third.id
    assert store.search("third joke") == []
    store.close()


# --- the service ---------------------------------------------------------------------------


def _chat(service: rn.ChatService) -> tuple[int, list[st.Message]]:
    """A chat of two finished turns: q1 a1 q2 a2."""
    conv = service.new_conversation("assistant")
    for question in ("q1", "q2"):
        _u, _a, job_id = service.send(conv.id, question)
        finish(service, job_id, question.replace("q", "a"))
    return conv.id, service.store.messages(conv.id)


def test_edit_and_resend_makes_a_branch_and_keeps_the_old_one(service: rn.ChatService) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    user, answer, job_id = service.edit_and_resend(conv_id, q1.id, "q1 edited")
    assert user.parent_id is None and answer.parent_id == user.id
    assert [t.content for t in service.engine.jobs[-1].history] == ["q1 edited"]
    finish(service, job_id, "new a1")
    assert contents(service.store.messages(conv_id)) == ["q1 edited", "new a1"]
    assert all_contents(service.store, conv_id) == {"q1", "a1", "q2", "a2", "q1 edited", "new a1"}
    shown = service.switch_sibling(user.id, -1)  # back to the first version
    assert shown.id == q1.id
    assert contents(service.store.messages(conv_id)) == ["q1", "a1", "q2", "a2"]
    assert service.switch_sibling(q1.id, -1).id == q1.id  # the first: stays
    assert service.switch_sibling(q1.id, 1).id == user.id
    assert contents(service.store.messages(conv_id)) == ["q1 edited", "new a1"]


def test_edit_an_answer_keeps_the_original(service: rn.ChatService) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    edited = service.edit_message(a1.id, "a1, better")
    assert edited.role == "assistant" and edited.parent_id == q1.id
    assert edited.meta.get("edited") is True
    assert contents(service.store.messages(conv_id)) == ["q1", "a1, better"]
    _u, _a, job_id = service.send(conv_id, "q3")  # continues from the edited answer
    assert [t.content for t in service.engine.jobs[-1].history] == ["q1", "a1, better", "q3"]
    finish(service, job_id, "a3")
    service.switch_sibling(edited.id, -1)
    assert contents(service.store.messages(conv_id)) == ["q1", "a1", "q2", "a2"]


def test_regenerate_any_answer_makes_a_sibling(service: rn.ChatService) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    answer, job_id = service.regenerate(conv_id, a1.id)  # not the last answer
    assert answer.parent_id == q1.id
    assert [t.content for t in service.engine.jobs[-1].history] == ["q1"]
    finish(service, job_id, "a1 again")
    assert contents(service.store.messages(conv_id)) == ["q1", "a1 again"]
    again, job_id = service.regenerate(conv_id)  # the branch's last answer
    assert again.parent_id == q1.id
    finish(service, job_id, "a1 third")
    assert contents(service.store.siblings(a1.id)) == ["a1", "a1 again", "a1 third"]
    assert service.cycle_version(again.id).content == "a1"  # the last one wraps round
    assert service.cycle_version(a1.id).content == "a1 again"
    shown = service.switch_sibling(a1.id, 0)
    assert shown.id == a1.id
    service.switch_sibling(answer.id, -1)
    assert contents(service.store.messages(conv_id)) == ["q1", "a1", "q2", "a2"]  # whole


def test_regenerate_needs_an_answer_after_a_question(service: rn.ChatService) -> None:
    conv = service.store.create_conversation("assistant")
    greeting = service.store.add_message(conv.id, "assistant", "Hello!")  # answers nothing
    with pytest.raises(ValueError, match="no question"):
        service.regenerate(conv.id, greeting.id)
    user = service.store.add_message(conv.id, "user", "hi")
    with pytest.raises(ValueError, match="Only an answer"):
        service.regenerate(conv.id, user.id)


def test_nothing_changes_branches_while_the_chat_answers(service: rn.ChatService) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    service.send(conv_id, "q3")
    for action in (
        lambda: service.edit_message(a1.id, "x"),
        lambda: service.regenerate(conv_id, a1.id),
        lambda: service.switch_sibling(a1.id, 1),
        lambda: service.delete_branch(q2.id),
        lambda: service.delete_message(q2.id),
        lambda: service.show_branch(conv_id, a1.id),
    ):
        with pytest.raises(rn.Busy):
            action()
    assert service.store.count_messages(conv_id) == 6


def test_delete_branch_removes_only_that_branch(service: rn.ChatService) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    answer, job_id = service.regenerate(conv_id, a1.id)
    finish(service, job_id, "a1 again")
    assert service.delete_branch(a1.id) == answer.id  # a1, q2, a2 go; the new answer stays
    assert all_contents(service.store, conv_id) == {"q1", "a1 again"}
    assert service.store.fork_positions(conv_id) == {}


def test_show_branch_opens_the_newest_leaf_under_a_message(service: rn.ChatService) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    service.edit_and_resend(conv_id, q2.id, "q2 edited")
    service.jobs.clear()
    assert service.show_branch(conv_id, q2.id) == a2.id
    assert contents(service.store.messages(conv_id)) == ["q1", "a1", "q2", "a2"]


def test_no_user_action_calls_delete_messages_from() -> None:
    """Cutting a chat is gone from every user action: no module of the app calls it."""
    root = Path(__file__).resolve().parent.parent / "tui"
    callers = [
        p.relative_to(root)
        for p in root.rglob("*.py")
        if "delete_messages_from(" in p.read_text() and p.name != "store.py"
    ]
    assert callers == []


# --- the outline ------------------------------------------------------------------------------


def test_outline_shows_each_fork_once_and_marks_the_branch_on_screen(
    service: rn.ChatService,
) -> None:
    conv_id, (q1, a1, q2, a2) = _chat(service)
    answer, job_id = service.regenerate(conv_id, a2.id)
    finish(service, job_id, "a2 again and again with more words than the outline shows")
    text = service.branch_outline(conv_id)
    assert text.splitlines() == [
        "● You: “q1” · 3 messages",
        f"├─ ○ Assistant: “a2” · 1 message  [leaf {a2.id}]",
        "└─ ● Assistant: “a2 again and again with more words than …” · 1 message"
        f"  [leaf {answer.id}]",
    ]
    roots = chat_tree.branches(service.store.tree(conv_id))
    assert [b.newest_leaf() for b in roots] == [answer.id]


def test_a_deep_tree_builds_without_recursion(store: st.Store) -> None:
    conv = store.create_conversation("bob")
    with store.transaction():
        parent = None
        for i in range(1200):  # every turn forked: deeper than Python's recursion limit
            keep = store.add_message(conv.id, "user", f"q{i}", parent_id=parent)
            store.add_message(conv.id, "user", f"other {i}", parent_id=parent)
            parent = keep.id
    roots = chat_tree.branches(store.tree(conv.id))
    assert len(roots) == 2
    text = chat_tree.outline_text(store.tree(conv.id), set())
    assert len(text.splitlines()) == 2400
