"""Branches in the TUI (80×24, fake engine): one Pilot test per key.

←/→ (h/l) and a click on ``‹ ›`` switch versions, the rest of the chat follows;
v goes round the versions; b and Ctrl+T open the tree, Enter opens a branch; e
edits an answer into a new version; r regenerates an answer that is not the
last; d deletes a branch after asking; a search hit on another branch opens it.
"""

from __future__ import annotations

from pathlib import Path

from tests.uihelpers import SIZE, make_app, screen_text, type_text, wait_for
from tui.core import store as st
from tui.engine.fake import FakeEngine
from tui.ui.screens.branch_tree import BranchTreeScreen
from tui.ui.screens.confirm import ConfirmScreen
from tui.ui.screens.delete_message import DeleteMessageScreen
from tui.ui.widgets.chat_view import ChatView
from tui.ui.widgets.prompt_input import PromptInput


def forked_chat(store: st.Store) -> dict[str, st.Message]:
    """q1 → a1 → q2 → a2 (on screen), and a1's other version a1b → q2b → a2b."""
    conv = store.create_conversation("assistant", title="Forked")
    m: dict[str, st.Message] = {}
    for name in ("q1", "a1", "q2", "a2"):
        m[name] = store.add_message(conv.id, "user" if name[0] == "q" else "assistant", name)
    m["a1b"] = store.add_message(conv.id, "assistant", "a1b", parent_id=m["q1"].id)
    m["q2b"] = store.add_message(conv.id, "user", "q2b")
    m["a2b"] = store.add_message(conv.id, "assistant", "a2b")
    store.set_leaf(conv.id, m["a2"].id)
    return m


def shown(app) -> list[str]:
    return [msg.content for msg in app.query_one(ChatView).shown_messages]


async def select(pilot, app, message_id: int) -> ChatView:
    view = app.query_one(ChatView)
    view.focus()
    await pilot.pause()
    assert await view.select_message(message_id)
    await pilot.pause()
    return view


async def test_left_and_right_switch_versions_and_the_chat_follows(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    m = forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        assert "‹ 1/2 ›" in screen_text(app)
        view = await select(pilot, app, m["a1"].id)
        await pilot.press("right")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "q2b", "a2b"])
        assert "‹ 2/2 ›" in screen_text(app)
        assert view.selected is not None and view.selected.message.id == m["a1b"].id
        assert [x.content for x in app.store.messages(m["q1"].conversation_id)][-1] == "a2b"
        await pilot.press("right")  # the last version: stays, says so
        await pilot.pause()
        assert shown(app) == ["q1", "a1b", "q2b", "a2b"]
        await pilot.press("left")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await pilot.press("l")  # the vi keys too
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "q2b", "a2b"])
        await pilot.press("h")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        assert app.store.count_messages(m["q1"].conversation_id) == 7  # nothing lost


async def test_clicking_the_arrows_switches_versions(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    m = forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        box = app.query_one(ChatView).box(m["a1"].id)
        left, right = box.arrows()
        await pilot.click(f"#msg-{m['a1'].id} .who", offset=(right, 0))
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "q2b", "a2b"])
        await pilot.pause()
        box = app.query_one(ChatView).box(m["a1b"].id)
        await pilot.click(f"#msg-{m['a1b'].id} .who", offset=(box.arrows()[0], 0))
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await pilot.click(f"#msg-{m['a1'].id} .who", offset=(0, 0))  # the name: nothing
        await pilot.pause()
        assert shown(app) == ["q1", "a1", "q2", "a2"]


async def test_v_goes_round_the_versions(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    m = forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await select(pilot, app, m["a1"].id)
        await pilot.press("v")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "q2b", "a2b"])
        await pilot.press("v")  # from the last back to the first
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])


async def test_b_opens_the_tree_and_enter_opens_a_branch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    m = forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await select(pilot, app, m["a2"].id)
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, BranchTreeScreen))
        await pilot.pause()
        text = screen_text(app)
        assert "Branches of “Forked”" in text
        assert "● You: “q1” · 1 message" in text
        assert "● Assistant: “a1” · 3 messages" in text
        assert "○ Assistant: “a1b” · 3 messages" in text
        await pilot.press("down", "enter")  # the cursor starts on the branch on screen
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "q2b", "a2b"])
        assert not isinstance(app.screen, BranchTreeScreen)
        view = app.query_one(ChatView)
        assert view.selected is not None and view.selected.message.id == m["a1b"].id


async def test_ctrl_t_opens_the_tree_from_the_prompt_and_esc_closes_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        assert app.query_one(PromptInput).has_focus
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, BranchTreeScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, BranchTreeScreen))
        assert shown(app) == ["q1", "a1", "q2", "a2"]


async def test_e_on_an_answer_keeps_the_edit_as_a_new_version(tmp_path: Path) -> None:
    engine = FakeEngine()
    app = make_app(tmp_path, engine)
    m = forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await select(pilot, app, m["a2"].id)
        await pilot.press("e")
        prompt = app.query_one(PromptInput)
        await wait_for(pilot, lambda: prompt.has_focus and prompt.text == "a2")
        assert "Editing the answer" in str(prompt.border_title)
        await pilot.press("end")
        await type_text(pilot, " fixed")
        await pilot.press("enter")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2 fixed"])
        assert engine.jobs == []  # an edited answer is kept, not generated
        assert "‹ 2/2 ›" in screen_text(app) and "edited" in screen_text(app)
        versions = app.store.siblings(m["a2"].id)
        assert [v.content for v in versions] == ["a2", "a2 fixed"]


async def test_r_regenerates_an_answer_that_is_not_the_last(tmp_path: Path) -> None:
    app = make_app(tmp_path, FakeEngine(answer=lambda job: "a1 anew"))
    m = forked_chat(app.store)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await select(pilot, app, m["a1"].id)
        await pilot.press("r")
        conv_id = m["q1"].conversation_id
        await wait_for(
            pilot, lambda: [x.content for x in app.store.messages(conv_id)] == ["q1", "a1 anew"]
        )
        await wait_for(pilot, lambda: "‹ 3/3 ›" in screen_text(app))
        assert [x.content for x in app.engine.jobs[-1].history] == ["q1"]
        assert app.store.count_messages(conv_id) == 8  # both old branches whole
        await select(pilot, app, m["q1"].id)
        await pilot.press("r")  # on a question of yours: the answer after it, again
        await wait_for(pilot, lambda: app.store.count_messages(conv_id) == 9)
        await wait_for(pilot, lambda: "‹ 4/4 ›" in screen_text(app))


async def test_d_deletes_that_branch_or_only_the_message_after_asking(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    m = forked_chat(app.store)
    conv_id = m["q1"].conversation_id
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await select(pilot, app, m["a1"].id)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeleteMessageScreen))
        await pilot.pause()
        text = app.screen.question  # as asked (the screen wraps it at 80 columns)
        assert "this message and its replies (this branch)" in text
        assert "3 messages go" in text and "Its other version stays." in text
        assert "With its replies (b)" in screen_text(app)
        await pilot.press("n")  # keep
        await wait_for(pilot, lambda: not isinstance(app.screen, DeleteMessageScreen))
        assert app.store.count_messages(conv_id) == 7
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeleteMessageScreen))
        await pilot.press("b")  # with its replies: that branch
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "q2b", "a2b"])
        assert {x.content for x in app.store.tree(conv_id)} == {"q1", "a1b", "q2b", "a2b"}
        assert "‹" not in screen_text(app)  # one version left: no arrows

        await select(pilot, app, m["q2b"].id)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DeleteMessageScreen))
        await pilot.press("y")  # only this message: its reply moves up
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "a2b"])
        await select(pilot, app, m["a2b"].id)
        await pilot.press("d")  # no replies: a plain question
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Delete this message?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b"])


async def test_a_search_hit_on_another_branch_opens_that_branch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    chat = forked_chat(app.store)
    app.store.update_message(chat["q2b"].id, "where is the needle")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1", "q2", "a2"])
        await pilot.press("ctrl+f")
        await pilot.pause()
        await type_text(pilot, "needle")
        await wait_for(pilot, lambda: "1 result" in screen_text(app))
        assert "(other branch)" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: shown(app) == ["q1", "a1b", "where is the needle", "a2b"])
        view = app.query_one(ChatView)
        assert view.selected is not None and view.selected.message.id == chat["q2b"].id
        await pilot.press("ctrl+f")
        await pilot.pause()
        await type_text(pilot, "needle")
        await wait_for(pilot, lambda: "1 result" in screen_text(app))
        assert "(other branch)" not in screen_text(app)  # now it is the branch on screen
