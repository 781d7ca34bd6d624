"""A chat's messages as a tree of branches: what the tree view and `chats show --tree` show.

A *branch* here is a run of messages without a fork: it starts at a first
message or where a message has several replies (an edit, a regenerate), and
ends at the next fork or at a leaf. An outline of branches stays short however
long the chat: a thousand turns without a fork are one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tui.core.store_rows import Message

FIRST_WORDS = 8


@dataclass
class Branch:
    """Messages ``messages[0]`` … ``messages[-1]`` in a row, and the branches after the last."""

    messages: list[Message]
    children: list[Branch] = field(default_factory=list, repr=False)

    @property
    def first(self) -> Message:
        return self.messages[0]

    @property
    def last(self) -> Message:
        return self.messages[-1]

    def newest_leaf(self) -> int:
        """The id of the newest message at the end of any branch from here."""
        newest, todo = self.last.id, list(self.children)
        while todo:
            branch = todo.pop()
            newest = max(newest, branch.last.id)
            todo.extend(branch.children)
        return newest


def branches(tree: list[Message]) -> list[Branch]:
    """The branches of a chat's messages (every message, parents before children).

    Built without recursion: a long chat where every answer was regenerated
    forks at every turn, thousands deep.
    """
    children: dict[int | None, list[Message]] = {}
    known = {m.id for m in tree}
    for message in tree:
        parent = message.parent_id if message.parent_id in known else None
        children.setdefault(parent, []).append(message)

    def run_from(start: Message) -> Branch:
        run = [start]
        while len(children.get(run[-1].id, [])) == 1:
            run.append(children[run[-1].id][0])
        return Branch(run)

    roots = [run_from(root) for root in children.get(None, [])]
    todo = list(roots)
    while todo:
        branch = todo.pop()
        branch.children = [run_from(child) for child in children.get(branch.last.id, [])]
        todo.extend(branch.children)
    return roots


def first_words(message: Message, count: int = FIRST_WORDS) -> str:
    """The first words of a message on one line (what a branch is known by)."""
    words = message.content.split()
    text = " ".join(words[:count])
    return (text + " …" if len(words) > count else text) or "(empty)"


def label(branch: Branch, ai_name: str = "Assistant") -> str:
    """``You: “first words …” · 3 messages``: one branch, as the outline shows it."""
    who = "You" if branch.first.role == "user" else ai_name
    count = len(branch.messages)
    noun = "message" if count == 1 else "messages"
    return f"{who}: “{first_words(branch.first)}” · {count} {noun}"


def outline_text(tree: list[Message], current: set[int], ai_name: str = "Assistant") -> str:
    """The outline as plain text lines with tree lines (``chats show N --tree``)."""
    lines: list[str] = []
    roots = branches(tree)
    # (branch, the prefix of its line, is it the last of its siblings, is it a first message)
    stack = [(b, "", i == len(roots) - 1, True) for i, b in enumerate(roots)][::-1]
    while stack:
        branch, prefix, last, top = stack.pop()
        mark = "● " if branch.last.id in current else "○ "
        leaf = "" if branch.children else f"  [leaf {branch.last.id}]"
        joint = "" if top else ("└─ " if last else "├─ ")
        lines.append(prefix + joint + mark + label(branch, ai_name) + leaf)
        below = prefix if top else prefix + ("   " if last else "│  ")
        kids = branch.children
        for i in range(len(kids) - 1, -1, -1):
            stack.append((kids[i], below, i == len(kids) - 1, False))
    return "\n".join(lines)
