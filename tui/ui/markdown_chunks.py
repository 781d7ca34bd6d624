"""Cutting a growing Markdown answer into finished chunks and a short live tail.

Why: laying out and rendering the whole answer on every repaint costs time
in proportion to its length, so a long answer made typing lag. The streaming
view shows finished chunks as static renderings that never change again and
re-renders only the tail. This module decides where the cuts go; it knows
nothing of Textual.

A cut is made only where Markdown keeps its meaning across it: after a blank
line outside a code block but never before an indented line (a list item's
continuation), or before a new top-level list item (a long list). A code
block that grows past ``max_code_lines`` is cut too: the chunk gets a
closing fence and the tail re-opens it. The joins may look slightly
different from one rendering of the whole text, so the view renders the
whole answer again once it is finished.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A fence opens a code block: at the start of a line, maybe indented, maybe right
# after a list marker ("- ```python"), as models write them.
_FENCE = re.compile(r"^(\s*(?:(?:[-*+]|\d{1,9}[.)])\s+)?)(`{3,}|~{3,})(.*)$")
_CLOSER = re.compile(r"^\s*(`{3,}|~{3,})\s*$")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d{1,9}[.)])\s")  # a top-level list item


@dataclass(frozen=True)
class Chunk:
    """A finished piece of the answer: Markdown source that renders on its own."""

    source: str
    in_code: bool  # cut inside a code block: the next chunk continues it
    joined: bool = False  # no blank line after it (cut in code or inside a list)


@dataclass(frozen=True)
class _Fence:
    """An open code block: how to re-open it in the next chunk, and to close it."""

    reopen: str  # the opening line without its list marker or indent
    marker: str  # ``` or ~~~ (or longer)
    indent: str  # spaces that put the closing fence inside the list item


def _opens(line: str) -> _Fence | None:
    match = _FENCE.match(line)
    if match is None:
        return None
    prefix, marker, info = match.groups()
    if marker[0] == "`" and "`" in info:
        return None  # ```code``` on one line is inline code, not a block
    return _Fence(marker + info.rstrip("\r"), marker, " " * len(prefix))


def _closes(line: str, fence: _Fence) -> bool:
    match = _CLOSER.match(line)
    if match is None:
        return False
    marker = match.group(1)
    return marker[0] == fence.marker[0] and len(marker) >= len(fence.marker)


@dataclass
class MarkdownChunker:
    """Feed it the whole answer so far; it returns the chunks that are now finished.

    ``min_lines``: lines a chunk collects before it may be cut (few, larger
    chunks keep the number of widgets small). ``max_code_lines``: a code
    block longer than this is cut inside.
    """

    min_lines: int = 8
    max_code_lines: int = 12
    done: int = 0  # text[:done] is in finished chunks
    _fence: _Fence | None = None  # a code block open at ``done``
    chunks: list[Chunk] = field(default_factory=list)

    def feed(self, text: str) -> list[Chunk]:
        """Take the answer so far (always a continuation of the last call's)."""
        new: list[Chunk] = []
        while (chunk := self._cut(text)) is not None:
            new.append(chunk)
        self.chunks += new
        return new

    def tail(self, text: str) -> str:
        """The Markdown source of the part not yet in a finished chunk."""
        return self._reopen() + text[self.done :]

    def _reopen(self) -> str:
        return f"{self._fence.reopen}\n" if self._fence is not None else ""

    def _cut(self, text: str) -> Chunk | None:
        """The next finished chunk, if one can be cut yet (advances ``done``)."""
        fence = self._fence
        lines = text[self.done :].split("\n")
        complete = lines[:-1]  # the last piece has no newline yet: never cut into it
        position = self.done
        code_lines = 0
        for index, line in enumerate(complete):
            position += len(line) + 1
            counted = index + 1
            following = lines[index + 1]
            if fence is not None:
                if _closes(line, fence):
                    fence = None
                    continue
                code_lines += 1
                if (
                    code_lines >= self.max_code_lines
                    and index + 1 < len(complete)
                    and not _closes(following, fence)  # else: an empty block
                ):
                    return self._finish(text, position, fence)
                continue
            fence = _opens(line)
            if fence is not None:
                code_lines = 0
                continue
            if counted < self.min_lines or not following.strip():
                continue  # too short yet, or the next line is unknown or blank
            if not line.strip() and following[:1] not in (" ", "\t"):
                return self._finish(text, position, None)  # after a blank line
            in_list = _LIST_ITEM.match(line) or line[:1] in (" ", "\t")
            if in_list and line.strip() and _LIST_ITEM.match(following):
                return self._finish(text, position, None, joined=True)  # a long list
        return None

    def _finish(
        self, text: str, position: int, fence: _Fence | None, joined: bool = False
    ) -> Chunk:
        source = self._reopen() + text[self.done : position]
        if fence is not None:
            source += fence.indent + fence.marker
        self.done = position
        self._fence = fence
        return Chunk(source, in_code=fence is not None, joined=joined or fence is not None)
