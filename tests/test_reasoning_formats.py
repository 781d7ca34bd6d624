"""Thinking in exports, imports and the command line: its own JSON field, a collapsible
Markdown block before the answer, both read back; `ask --think` keeps stdout the answer's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.remote_servers import (
    ScriptedServer,
    StreamReply,
    llama_cpp_models,
    llama_cpp_props,
    sse,
)
from tui import cli
from tui.core import store as st
from tui.formats import chats as export


def thinking_chat(store: st.Store) -> st.Conversation:
    conv = store.create_conversation("bob", "m.gguf", {"reasoning": "on"}, title="Sums")
    store.add_message(conv.id, "user", "What is 2+2?")
    store.add_message(
        conv.id,
        "assistant",
        "It is **4**.\n\nSure.",
        meta={"thinking_tokens": 12, "thinking_seconds": 1.5},
        reasoning="Two plus two.\n\nA </details> tag inside, too.",
    )
    store.add_message(conv.id, "user", "And 3+3?")
    store.add_message(conv.id, "assistant", "", status=st.CANCELLED, reasoning="Three and")
    return store.get_conversation(conv.id)


def parts(store: st.Store, conv_id: int) -> list[tuple[str, str, str, str]]:
    return [(m.role, m.content, m.reasoning, m.status) for m in store.messages(conv_id)]


def test_json_keeps_thinking_as_its_own_field_and_round_trips(store: st.Store) -> None:
    conv = thinking_chat(store)
    data = json.loads(export.dumps(conv, store.messages(conv.id)))
    answer = data["messages"][1]
    assert answer["reasoning"].startswith("Two plus two.") and "Two" not in answer["content"]
    assert answer["meta"]["thinking_tokens"] == 12
    copy = export.import_json(store, data)
    assert parts(store, copy.id) == parts(store, conv.id)
    assert copy.sampling == {"reasoning": "on"}


def test_json_import_cleans_and_checks_the_thinking(store: st.Store) -> None:
    data = {"format": "llama-tui-chat", "version": 1, "conversation": {}}
    data["messages"] = [{"role": "assistant", "content": "a", "reasoning": "x\x1b]52;c;QQ==\x07y"}]
    copy = export.import_json(store, data)
    assert store.messages(copy.id)[0].reasoning == "xy"
    data["messages"] = [{"role": "assistant", "content": "a", "reasoning": 5}]
    with pytest.raises(export.ChatImportError, match="reasoning must be text"):
        export.import_json(store, data)


def test_markdown_puts_thinking_in_a_collapsible_block_before_the_answer(store: st.Store) -> None:
    conv = thinking_chat(store)
    md = export.to_markdown(conv, store.messages(conv.id), "Bob")
    block = (
        "**Bob**:\n\n<details><summary>Thinking</summary>\n\nTwo plus two.\n\n"
        "A &lt;/details> tag inside, too.\n\n</details>\n\nIt is **4**.\n\nSure."
    )
    assert block in md
    assert "**Bob** (cancelled):\n\n<details><summary>Thinking</summary>\n\nThree and\n\n" in md
    assert "**You**:\n\nWhat is 2+2?" in md


def test_markdown_export_reads_back(store: st.Store) -> None:
    conv = thinking_chat(store)
    md = export.to_markdown(conv, store.messages(conv.id), "Bob")
    copy = export.import_markdown(store, md)
    assert parts(store, copy.id) == parts(store, conv.id)
    assert (copy.title, copy.persona, copy.model) == ("Sums", "bob", "m.gguf")
    with pytest.raises(export.ChatImportError):
        export.import_markdown(store, "just some notes\n")


def test_cli_exports_and_imports_markdown_with_thinking(tmp_path: Path, capsys) -> None:
    db = tmp_path / "cli.db"
    store = st.Store(db)
    conv = thinking_chat(store)
    store.close()
    out = tmp_path / "chat.md"
    assert cli.main(["--db", str(db), "chats", "export", str(conv.id), "-o", str(out)]) == 0
    assert cli.main(["--db", str(db), "chats", "import", str(out)]) == 0
    assert "imported as chat" in capsys.readouterr().out
    store = st.Store(db)
    first, second = store.list_conversations()[::-1]
    assert parts(store, second.id) == parts(store, first.id)
    store.close()


def test_cli_ask_streams_the_answer_to_stdout_and_thinking_to_stderr(
    tmp_path: Path, capsys
) -> None:
    server = ScriptedServer()
    server.routes[("GET", "/v1/models")] = llama_cpp_models()
    server.routes[("GET", "/props")] = llama_cpp_props(4096)
    events = [
        sse({"choices": [{"index": 0, "delta": {"reasoning_content": "Hmm, a greeting."}}]}),
        sse({"choices": [{"index": 0, "delta": {"content": "Hello!"}}]}),
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        sse("[DONE]"),
    ]
    server.routes[("POST", "/v1/chat/completions")] = StreamReply(events)
    db = tmp_path / "ask.db"
    argv = ["--db", str(db), "ask", "--endpoint", server.base_url, "--think"]
    try:
        status = cli.main([*argv, "--reasoning", "on", "--reasoning-budget", "256", "Hi"])
    finally:
        server.close()
    assert status == 0
    captured = capsys.readouterr()
    assert captured.out == "Hello!\n"
    assert captured.err.startswith("Hmm, a greeting.\n\n")
    body = server.posts("/v1/chat/completions")[0].body
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["reasoning_budget_tokens"] == 256
    store = st.Store(db)
    (conv,) = store.list_conversations()
    answer = store.messages(conv.id)[-1]
    assert (answer.content, answer.reasoning) == ("Hello!", "Hmm, a greeting.")
    assert conv.sampling == {"reasoning": "on", "reasoning_budget": 256}
    store.close()
