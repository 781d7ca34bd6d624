"""Cutting a growing Markdown answer into finished chunks and a short live tail.

Why: laying out and rendering the whole answer on every repaint costs time
in proportion to its length, so a long answer made typing lag. The streaming
view shows finished chunks as static renderings that never change again and
re-renders only the tail. This module decides where the cuts go; it knows
nothing of Textual.

A cut is made only where Markdown cannot change meaning across it: after a
blank line outside a code block, and never before an indented line (a list
item's continuation). A code block that grows past ``max_code_lines`` is cut
too: the chunk gets a closing fence and the tail re-opens it. The joins may
look slightly different from one rendering of the whole text, so the view
renders the whole answer again once it is finished.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _closes(line: str, opener: str) -> bool:
    """True if ``line`` closes a code block opened by fence marker ``opener``."""
    match = _FENCE.match(line)
    if match is None or line[match.end() :].strip():
        return False
    marker = match.group(1)
    return marker[0] == opener[0] and len(marker) >= len(opener)


@dataclass(frozen=True)
class Chunk:
    """A finished piece of the answer: Markdown source that renders on its own."""

    source: str
    in_code: bool  # cut inside a code block: the next chunk continues it


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
    _fence_line: str | None = None  # the opening line of a code block open at ``done``
    _fence_marker: str = ""
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
        return f"{self._fence_line}\n" if self._fence_line is not None else ""

    def _cut(self, text: str) -> Chunk | None:
        """The next finished chunk, if one can be cut yet (advances ``done``)."""
        start = self.done
        fence_line, marker = self._fence_line, self._fence_marker
        lines = text[start:].split("\n")
        complete = lines[:-1]  # the last piece has no newline yet: never cut into it
        position = start
        code_lines = 0
        for index, line in enumerate(complete):
            position += len(line) + 1
            counted = index + 1
            if fence_line is not None:
                if _closes(line, marker):
                    fence_line, marker = None, ""
                    continue
                code_lines += 1
                if (
                    code_lines >= self.max_code_lines
                    and index + 1 < len(complete)
                    and not _closes(complete[index + 1], marker)  # else: an empty block
                ):
                    return self._finish(text, position, fence_line, marker, inside=True)
                continue
            match = _FENCE.match(line)
            if match is not None:
                fence_line, marker, code_lines = line, match.group(1), 0
                continue
            following = lines[index + 1]
            if (
                counted >= self.min_lines
                and not line.strip()
                and following[:1] not in ("", " ", "\t")
            ):
                return self._finish(text, position, None, "", inside=False)
        return None

    def _finish(
        self, text: str, position: int, fence_line: str | None, marker: str, inside: bool
    ) -> Chunk:
        source = self._reopen() + text[self.done : position]
        if inside:
            source += marker
        self.done = position
        self._fence_line, self._fence_marker = (fence_line, marker) if inside else (None, "")
        return Chunk(source, inside)
