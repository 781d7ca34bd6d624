"""Chats out of and into the database: Markdown to read, JSON to round-trip.

The JSON export holds every stored field and the whole tree of the chat
(each message's ``id`` and ``parent``, and which branch is on screen), so
exporting and importing again gives the same chat (new ids, the same
everything else); a reasoning model's thinking is its own field
(``reasoning``), never part of the answer. The Markdown export holds the
branch on screen (or every branch), the thinking in a collapsible
``<details><summary>Thinking</summary>`` block before the answer, and
:func:`from_markdown` reads such an export (of one branch) back. Secrets
never enter the database, so they cannot leak through an export.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from tui.core import store as st
from tui.core.sanitize import clean_text

FORMAT = "llama-tui-chat"
FORMAT_VERSION = 2  # 2: messages have ids and parents (a tree); 1 is read as one branch


class ChatImportError(Exception):
    """A file that is not a llama-tui chat export (the message says why)."""


def _heading(conversation: st.Conversation) -> list[str]:
    return [
        f"# {clean_text(conversation.title)}",
        "",
        f"*Persona: {conversation.persona} · model: {conversation.model or 'default'} · "
        f"started {conversation.created_at[:16].replace('T', ' ')} UTC*",
    ]


def _turns(messages: list[st.Message], ai_name: str) -> list[str]:
    lines: list[str] = []
    for message in messages:
        who = "You" if message.role == "user" else ai_name
        note = "" if message.status == st.COMPLETE else f" ({message.status})"
        lines += ["", f"**{who}**{note}:", ""]
        if message.reasoning:
            thinking = clean_text(message.reasoning).replace(DETAILS_END, DETAILS_END_ESCAPED)
            lines += [DETAILS_START, "", thinking, "", DETAILS_END, ""]
        lines.append(clean_text(message.content))
    return lines


def to_markdown(conversation: st.Conversation, messages: list[st.Message], ai_name: str) -> str:
    """A readable transcript. Text is cleaned of escape sequences for terminals."""
    return "\n".join(_heading(conversation) + _turns(messages, ai_name)) + "\n"


def branches_to_markdown(
    conversation: st.Conversation, tree: list[st.Message], ai_name: str
) -> str:
    """Every branch of a chat: the one on screen first, then each other one from its fork.

    A branch repeats nothing: it starts where it leaves an earlier one, and
    says after which message of which branch.
    """
    by_id = {m.id: m for m in tree}
    has_children = {m.parent_id for m in tree}
    leaves = [m.id for m in tree if m.id not in has_children]
    current = conversation.leaf_id if conversation.leaf_id in by_id else None
    if current is None and leaves:
        current = leaves[-1]
    leaves.sort(key=lambda leaf: (leaf != current, leaf))
    lines = _heading(conversation)
    printed: list[list[int]] = []
    for number, leaf in enumerate(leaves, 1):
        path = _path(by_id, leaf)
        shared, source = 0, 0
        for index, earlier in enumerate(printed, 1):
            common = next(
                (i for i, (a, b) in enumerate(zip(path, earlier, strict=False)) if a != b),
                min(len(path), len(earlier)),
            )
            if common > shared:
                shared, source = common, index
        title = f"{number} of {len(leaves)}" + (" (on screen)" if leaf == current else "")
        lines += ["", "---", "", BRANCH_HEADING + title]
        if shared:
            fork = " ".join(by_id[path[shared - 1]].content.split()[:8])
            lines += [
                "",
                f"*The first {shared} messages as in branch {source} (up to “{fork}”), then:*",
            ]
        lines += _turns([by_id[i] for i in path[shared:]], ai_name)
        printed.append(path)
    return "\n".join(lines) + "\n"


def _path(by_id: dict[int, st.Message], leaf: int) -> list[int]:
    """The ids from a first message down to ``leaf``."""
    path = [leaf]
    while (parent := by_id[path[-1]].parent_id) in by_id and parent not in path:
        path.append(parent)
    return path[::-1]


BRANCH_HEADING = "## Branch "  # an export of every branch (not read back: JSON is)
DETAILS_START = "<details><summary>Thinking</summary>"
DETAILS_END = "</details>"
DETAILS_END_ESCAPED = "&lt;/details>"  # inside the thinking, so that it cannot end the block


def to_json(conversation: st.Conversation, messages: list[st.Message]) -> dict[str, Any]:
    """The chat as an export: ``messages`` is its tree (or one branch), parents first."""
    ids = {m.id for m in messages}
    leaf = next((i for i, m in enumerate(messages) if m.id == conversation.leaf_id), None)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "conversation": {
            "title": conversation.title,
            "persona": conversation.persona,
            "model": conversation.model,
            "sampling": conversation.sampling,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "pinned": conversation.pinned,
            "archived": conversation.archived,
            "context_start_index": next(
                (i for i, m in enumerate(messages) if m.id == conversation.context_start_id),
                None,
            ),
            "leaf_index": leaf,
        },
        "messages": [
            {
                "id": m.id,
                "parent": m.parent_id if m.parent_id in ids else None,
                "role": m.role,
                "content": m.content,
                "reasoning": m.reasoning,
                "status": m.status,
                "created_at": m.created_at,
                "updated_at": m.updated_at,
                "model": m.model,
                "meta": m.meta,
            }
            for m in messages
        ],
    }


def dumps(conversation: st.Conversation, messages: list[st.Message]) -> str:
    return json.dumps(to_json(conversation, messages), ensure_ascii=False, indent=2)


def import_json(store: st.Store, data: Any) -> st.Conversation:
    """Create a chat from an export; validates before writing anything."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ChatImportError('not a llama-tui chat export (missing "format": "llama-tui-chat")')
    if not isinstance(data.get("version"), int) or data["version"] > FORMAT_VERSION:
        raise ChatImportError(f"export version {data.get('version')!r} is not supported")
    conv, messages = data.get("conversation"), data.get("messages")
    if not isinstance(conv, dict) or not isinstance(messages, list):
        raise ChatImportError("the export has no conversation or no message list")
    _check_conversation(conv)
    for number, message in enumerate(messages, 1):
        _check_message(message, f"message {number}")
    parents = _parents(messages)

    chat = {
        "title": str(conv.get("title", "")),
        "persona": str(conv.get("persona", "assistant")),
        "model": str(conv.get("model", "")),
        "sampling": conv.get("sampling") or {},
        "created_at": str(conv.get("created_at") or st.now()),
        "updated_at": str(conv.get("updated_at") or st.now()),
        "pinned": int(bool(conv.get("pinned"))),
        "archived": int(bool(conv.get("archived"))),
    }
    rows = [
        {
            "role": message["role"],
            "content": clean_text(message["content"]),
            "reasoning": clean_text(message.get("reasoning") or ""),
            "status": message.get("status", st.COMPLETE),
            "created_at": str(message.get("created_at") or st.now()),
            "updated_at": str(message.get("updated_at") or st.now()),
            "model": str(message.get("model", "")),
            "meta": message.get("meta") or {},
        }
        for message in messages
    ]
    leaf = conv.get("leaf_index")
    if parents is None:  # one branch; versions kept by a regenerate become sibling answers
        parents = [i - 1 if i else None for i in range(len(rows))]
        leaf = len(rows) - 1 if rows else None
        for index in range(len(rows)):
            versions = rows[index]["meta"].get("alternatives")
            if not isinstance(versions, list):
                continue
            rows[index]["meta"] = {
                k: v for k, v in rows[index]["meta"].items() if k != "alternatives"
            }
            for version in versions:  # checked by _check_message: content and status usable
                thinking = version.get("reasoning")
                rows.append({**rows[index], "content": clean_text(version["content"]),
                             "reasoning": clean_text(thinking if isinstance(thinking, str) else ""),
                             "status": version.get("status", st.COMPLETE),
                             "meta": version.get("meta") or {}})  # fmt: skip
                parents.append(parents[index])
    return store.import_chat(chat, rows, conv.get("context_start_index"), parents, leaf)


def _parents(messages: list[dict[str, Any]]) -> list[int | None] | None:
    """Each message's parent as an index into ``messages`` (None: one linear branch).

    An export of version 1 has no ids: its messages follow one another.
    """
    if not any("id" in m or "parent" in m for m in messages):
        return None
    index: dict[int, int] = {}
    parents: list[int | None] = []
    for number, message in enumerate(messages, 1):
        msg_id, parent = message.get("id"), message.get("parent")
        if isinstance(msg_id, bool) or not isinstance(msg_id, int) or msg_id in index:
            raise ChatImportError(f"message {number} has no id of its own (a whole number)")
        if parent is not None and (not isinstance(parent, int) or parent not in index):
            raise ChatImportError(
                f"message {number}: its parent must be the id of a message before it"
            )
        parents.append(None if parent is None else index[parent])
        index[msg_id] = number - 1
    return parents


MAX_DEPTH = 32  # nesting of meta values: an export never comes near it


def _check_conversation(conv: dict[str, Any]) -> None:
    """Every field the app reads must have its type: reject the file, naming the field."""
    for name in ("title", "persona", "model", "created_at", "updated_at"):
        if conv.get(name) is not None and not isinstance(conv[name], str):
            raise ChatImportError(f"conversation.{name} must be text")
    for name in ("pinned", "archived"):
        if conv.get(name) is not None and not isinstance(conv[name], bool | int):
            raise ChatImportError(f"conversation.{name} must be true or false")
    for name in ("context_start_index", "leaf_index"):
        value = conv.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ChatImportError(f"conversation.{name} must be a whole number")
    sampling = conv.get("sampling")
    if sampling is None:
        return
    if not isinstance(sampling, dict):
        raise ChatImportError("conversation.sampling must be an object of settings")
    _good, bad = st.clean_sampling(sampling)
    if bad:
        raise ChatImportError(f"conversation.sampling.{bad[0]} must be a number")
    _check_depth(sampling, "conversation.sampling")


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise ChatImportError(f"{where} has no valid role")
    if not isinstance(message.get("content"), str):
        raise ChatImportError(f"{where} has no text content")
    if message.get("reasoning") is not None and not isinstance(message["reasoning"], str):
        raise ChatImportError(f"{where}: reasoning must be text")
    if message.get("status", st.COMPLETE) not in st.STATUSES:
        raise ChatImportError(f"{where} has an unknown status")
    for name in ("created_at", "updated_at", "model"):
        if message.get(name) is not None and not isinstance(message[name], str):
            raise ChatImportError(f"{where}: {name} must be text")
    meta = message.get("meta")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise ChatImportError(f"{where}: meta must be an object")
    bad = st.meta_problems(meta)
    if bad:
        raise ChatImportError(f"{where}: meta.{bad[0]} has the wrong type")
    _check_depth(meta, f"{where}: meta")


def _check_depth(value: Any, where: str, depth: int = 0) -> None:
    """Refuse deeply nested values: they cost memory and recursion for nothing."""
    if depth > MAX_DEPTH:
        raise ChatImportError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ChatImportError(f"{where} holds a number that is not finite (NaN or infinity)")
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    )
    for child in children:
        _check_depth(child, where, depth + 1)


def loads(text: str) -> Any:
    """Parse an export's JSON; a nesting bomb is a :class:`ChatImportError`, not a crash."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ChatImportError("the file is nested too deeply to be a chat export") from None
    except json.JSONDecodeError as exc:
        raise ChatImportError(f"not valid JSON ({exc})") from None


_SPEAKER = re.compile(r"^\*\*(?P<who>[^*\n]+)\*\*(?: \((?P<status>[a-z]+)\))?:$")
_HEADER = re.compile(r"^\*Persona: (?P<persona>.*) · model: (?P<model>.*) · started .*\*$")


def import_markdown(store: st.Store, text: str) -> st.Conversation:
    """Create a chat from a Markdown export of llama-tui (:func:`to_markdown`).

    The speakers' lines (``**You**:``, ``**Bob** (cancelled):``) separate the
    messages; a ``<details><summary>Thinking</summary>`` block at the start of
    an answer is its thinking. A message whose own text holds such a line
    cannot be told apart from two messages: the JSON export is the lossless one.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].startswith("# "):
        raise ChatImportError("not a llama-tui Markdown export (no '# title' line)")
    title = lines[0][2:].strip()
    header = next((_HEADER.match(line) for line in lines[1:4] if _HEADER.match(line)), None)
    persona = header["persona"] if header else "assistant"
    model = header["model"] if header and header["model"] != "default" else ""
    if any(line.startswith(BRANCH_HEADING) for line in lines):
        raise ChatImportError(
            "this Markdown holds every branch of a chat (--all-branches): import its JSON "
            "export, or a Markdown export of one branch"
        )
    starts = [i for i, line in enumerate(lines) if _SPEAKER.match(line) and not lines[i - 1]]
    if not starts:
        raise ChatImportError("the Markdown export holds no messages ('**You**:' lines)")
    messages = []
    for number, start in enumerate(starts):
        end = starts[number + 1] - 1 if number + 1 < len(starts) else len(lines)
        match = _SPEAKER.match(lines[start])
        assert match is not None
        body = lines[start + 2 : end] if start + 1 < len(lines) else []
        reasoning = ""
        if body and body[0] == DETAILS_START and DETAILS_END in body:
            close = body.index(DETAILS_END)
            reasoning = "\n".join(body[1:close]).strip("\n")
            reasoning = reasoning.replace(DETAILS_END_ESCAPED, DETAILS_END)
            body = body[close + 2 :]
        content = "\n".join(body).rstrip("\n") if number + 1 == len(starts) else "\n".join(body)
        status = match["status"] if match["status"] in st.STATUSES else st.COMPLETE
        messages.append(
            {
                "role": "user" if match["who"] == "You" else "assistant",
                "content": content,
                "reasoning": reasoning,
                "status": status,
            }
        )
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "conversation": {"title": title, "persona": persona, "model": model},
        "messages": messages,
    }
    return import_json(store, data)
