"""The tree of a chat: every fork as an outline; Enter opens the branch under the cursor.

Each line is a branch (a run of messages without a fork) known by its first
words; the branch on screen is marked ``●`` and has the cursor at first.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Tree
from textual.widgets.tree import TreeNode

from tui.core import chat_tree
from tui.core.store import Message
from tui.ui.screens.modal import Modal

# What a node holds: (the branch's first message, the newest leaf under it).
Pick = tuple[int, int]


class BranchTreeScreen(Modal[Pick | None]):
    """Dismisses with (first message, leaf) of the chosen branch, or None (Esc)."""

    def __init__(self, title: str, tree: list[Message], current: set[int], ai_name: str) -> None:
        super().__init__()
        self.chat_title = title
        self.messages = tree
        self.current = current  # the ids of the branch on screen
        self.ai_name = ai_name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Branches of “{self.chat_title}”"), id="tree-title")
            tree: Tree[Pick] = Tree(Text("Chat"), id="branches")
            tree.show_root = False
            tree.auto_expand = False
            yield tree
            yield Label("↑/↓ move · Enter: open this branch · Space: fold · Esc: close",
                        classes="hint")  # fmt: skip

    def on_mount(self) -> None:
        tree = self.query_one(Tree)
        roots = chat_tree.branches(self.messages)
        here: TreeNode[Pick] | None = None
        stack: list[tuple[TreeNode[Pick], chat_tree.Branch]] = [
            (tree.root, b) for b in reversed(roots)
        ]
        while stack:  # depth first, without recursion (a fork at every turn is deep)
            parent, branch = stack.pop()
            on_screen = branch.last.id in self.current
            line = Text("● " if on_screen else "○ ", style="bold" if on_screen else "")
            line.append(chat_tree.label(branch, self.ai_name))
            data = (branch.first.id, branch.newest_leaf())
            if branch.children:
                node = parent.add(line, data=data, expand=True)
            else:
                node = parent.add_leaf(line, data=data)
            if on_screen:
                here = node
            stack.extend((node, child) for child in reversed(branch.children))
        tree.focus()
        if here is not None:  # once the lines exist: the branch on screen has the cursor
            self.call_after_refresh(tree.move_cursor, here)

    @on(Tree.NodeSelected, "#branches")
    def chosen(self, event: Tree.NodeSelected[Pick]) -> None:
        event.stop()
        if event.node.data is not None:
            self.dismiss(event.node.data)
