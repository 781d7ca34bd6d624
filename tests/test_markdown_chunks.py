"""Where a streaming answer is cut into finished chunks (no UI)."""

from __future__ import annotations

import random
import re

from tui.ui.markdown_chunks import Chunk, MarkdownChunker


def sample_answer(seed: int) -> str:
    """A model-like Markdown answer: headings, paragraphs, lists, long and short code."""
    rng = random.Random(seed)
    parts = []
    for step in range(rng.randint(8, 20)):
        kind = rng.choice(["para", "list", "code", "numbered", "heading", "tilde"])
        if kind == "para":
            parts.append(f"Paragraph {step} says something about the code.\nIt wraps.\n")
        elif kind == "list":
            parts.append("- one\n- two\n\n  continued under two\n- three\n")
        elif kind == "numbered":
            parts.append("1. first\n\n2. second\n\n   more about the second\n")
        elif kind == "heading":
            parts.append(f"## Part {step}\n")
        else:
            fence = "```" if kind == "code" else "~~~~"
            body = "\n".join(f"x{i} = {i}" for i in range(rng.choice([2, 9, 30, 55])))
            parts.append(f"{fence}python\n{body}\n\n    indented\n{fence}\n")
    return "\n".join(parts)


def stream(chunker: MarkdownChunker, text: str, seed: int) -> None:
    """Feed ``text`` in random token-sized pieces, as the engine delivers it."""
    rng = random.Random(seed)
    end = 0
    while end < len(text):
        end = min(end + rng.randint(1, 12), len(text))
        chunker.feed(text[:end])


def pieces(chunks: list[Chunk]) -> str:
    """The answer text the chunks cover, without the fences added at cuts in code."""
    covered = []
    reopened = False
    for chunk in chunks:
        source = chunk.source
        if reopened:
            source = source.split("\n", 1)[1]
        if chunk.in_code:
            source = source[: source.rstrip("`~").rfind("\n") + 1]
        covered.append(source)
        reopened = chunk.in_code
    return "".join(covered)


def fence_lines(source: str) -> int:
    return sum(1 for line in source.split("\n") if line.lstrip().startswith(("```", "~~~")))


def test_chunks_and_tail_cover_the_text_exactly() -> None:
    for seed in range(40):
        text = sample_answer(seed)
        chunker = MarkdownChunker()
        stream(chunker, text, seed)
        assert chunker.chunks, "a long answer is cut at least once"
        assert pieces(chunker.chunks) == text[: chunker.done]
        tail = chunker.tail(text)
        reopened = chunker.chunks[-1].in_code
        assert (tail.split("\n", 1)[1] if reopened else tail) == text[chunker.done :]


def test_every_chunk_renders_on_its_own() -> None:
    """Code blocks are whole in every chunk: cut inside means closed, then re-opened."""
    for seed in range(40):
        chunker = MarkdownChunker()
        stream(chunker, sample_answer(seed), seed)
        for before, chunk in zip([None, *chunker.chunks], chunker.chunks, strict=False):
            assert fence_lines(chunk.source) % 2 == 0, chunk.source
            if before is not None and before.in_code:
                assert chunk.source.startswith(("```python\n", "~~~~python\n"))


def test_cuts_only_at_blank_lines_list_items_or_inside_long_code() -> None:
    for seed in range(40):
        text = sample_answer(seed)
        chunker = MarkdownChunker()
        stream(chunker, text, seed)
        for index, chunk in enumerate(chunker.chunks):
            cut = len(pieces(chunker.chunks[: index + 1]))
            if chunk.in_code:
                assert text[cut - 1] == "\n"
            elif chunk.joined:  # before a new item of a long list
                assert text[cut - 1] == "\n" and re.match(r"(?:[-*+]|\d+[.)]) ", text[cut:])
            else:
                assert text[cut - 2 : cut] == "\n\n"
                assert text[cut] not in " \t\n"


def test_a_long_code_block_is_cut_and_reopened_with_its_language() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(100))
    text = f"Intro.\n\n```python\n{code}\n```\n\nAfter.\n"
    chunker = MarkdownChunker(min_lines=8, max_code_lines=12)
    stream(chunker, text, 1)
    inside = [c for c in chunker.chunks if c.in_code]
    assert len(inside) >= 7
    for chunk in inside:
        assert chunk.source.rstrip().endswith("```")
        code = chunk.source.split("```python\n", 1)[1]
        assert len(code.splitlines()) <= 12 + 1  # the code and the closing fence
    # No empty block: the cut never falls just before the closing fence.
    assert all("```python\n```" not in c.source for c in chunker.chunks)


def test_the_tail_stays_short_however_long_the_answer() -> None:
    text = sample_answer(7) * 6
    chunker = MarkdownChunker()
    longest = 0
    end = 0
    while end < len(text):
        end = min(end + 5, len(text))
        chunker.feed(text[:end])
        longest = max(longest, chunker.tail(text[:end]).count("\n"))
    assert longest <= chunker.min_lines + chunker.max_code_lines + 4
    assert len(text.splitlines()) > 10 * longest


def test_token_by_token_cuts_where_the_whole_text_would() -> None:
    for seed in range(20):
        text = sample_answer(seed)
        whole = MarkdownChunker()
        whole.feed(text)
        streamed = MarkdownChunker()
        stream(streamed, text, seed)
        assert streamed.chunks == whole.chunks


def test_short_answers_are_all_tail() -> None:
    chunker = MarkdownChunker()
    text = "Hello!\n\nHow can I help?"
    assert chunker.feed(text) == []
    assert chunker.tail(text) == text


def fences(source: str) -> list[str]:
    """The code blocks markdown-it (Rich's parser) finds in ``source``, as their text."""
    from markdown_it import MarkdownIt

    return [t.content for t in MarkdownIt().parse(source) if t.type == "fence"]


def test_a_fence_after_a_list_marker_or_indented_is_closed_inside_the_item() -> None:
    code = "\n".join(f"   x{i} = {i}" for i in range(30))
    text = f"1. Install:\n   ```python\n{code}\n   ```\n2. Run it.\n\nDone here.\n" + "more\n" * 9
    for opener in ("1. Install:\n   ```python", "- ```python"):
        source = text.replace("1. Install:\n   ```python", opener)
        chunker = MarkdownChunker()
        stream(chunker, source, 3)
        assert any(c.in_code for c in chunker.chunks), opener
        pieces_ = [c.source for c in chunker.chunks] + [chunker.tail(source)]
        for piece in pieces_:
            blocks = fences(piece)
            assert all(block.strip() for block in blocks), piece  # no stray empty block
            assert not any("Done here." in block for block in blocks)  # prose stays prose


def test_inline_triple_backticks_do_not_open_a_block() -> None:
    text = "```x``` is inline code.\n\n" + "".join(f"Para {i}.\n\n" for i in range(20))
    chunker = MarkdownChunker()
    stream(chunker, text, 2)
    assert not any(c.in_code for c in chunker.chunks)
    assert all(c.source.count("```") in (0, 2) for c in chunker.chunks)


def test_windows_line_endings_never_cut_before_a_continuation() -> None:
    items = "".join(f"- item {i}\r\n\r\n\r\n  continuation {i}\r\n" for i in range(12))
    chunker = MarkdownChunker()
    stream(chunker, items, 4)
    for chunk in chunker.chunks:
        assert not chunk.source.lstrip("\r\n").startswith("  continuation")


def test_a_long_tight_list_is_cut_between_items() -> None:
    text = "".join(f"{i}. Item {i}\n   - detail {i}\n" for i in range(1, 60)) + "\nEnd.\n"
    chunker = MarkdownChunker()
    longest = 0
    for end in range(1, len(text) + 1, 5):
        chunker.feed(text[:end])
        longest = max(longest, chunker.tail(text[:end]).count("\n"))
    assert longest <= chunker.min_lines + 3
    assert all(c.joined for c in chunker.chunks[:-1])
    for chunk in chunker.chunks:  # every chunk starts at an item, numbered as in the list
        assert re.match(r"\d+\. Item \d+", chunk.source)
