"""The Markdown wrapper that spares a streaming frame its second render."""

from __future__ import annotations

import io

from rich.console import Console
from rich.markdown import Markdown

from tui.ui.widgets.message_box import RenderedOnce

SOURCE = "# Title\n\nSome *text*.\n\n```python\nprint('hi')\n```\n"


class Counting(Markdown):
    renders = 0

    def __rich_console__(self, console, options):
        Counting.renders += 1
        yield from super().__rich_console__(console, options)


def render(renderable, width: int) -> str:
    console = Console(width=width, record=True, color_system="truecolor", file=io.StringIO())
    console.print(renderable)
    return console.export_text(styles=True)


def test_renders_like_the_markdown_it_wraps_and_once_per_width() -> None:
    inner = Counting(SOURCE, code_theme="monokai")
    once = RenderedOnce(inner)
    for width in (40, 40, 40, 60, 60):
        assert render(once, width) == render(Markdown(SOURCE, code_theme="monokai"), width)
    assert Counting.renders == 2  # 40 once, 60 once
