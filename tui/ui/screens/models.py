"""Pick a GGUF model: every file found on this machine, with facts from its header."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tui.core.gguf_info import GGUFError, read_gguf_info
from tui.core.models import discover_models
from tui.core.sanitize import clean_text
from tui.ui.screens.modal import Modal


class ModelPickerScreen(Modal[str | None]):
    """Dismisses with the chosen model's path, or None."""

    def __init__(self, model_dirs: list[str], current: str, extra: list[str]) -> None:
        super().__init__()
        self.model_dirs = model_dirs
        self.current = current
        self.extra = extra

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Model for this chat (looking for GGUF files…)", id="title")
            yield OptionList(markup=False)
            yield Label("Enter: load · Esc: cancel · more places: model_dirs in config.toml",
                        classes="hint")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.scan()

    @work(thread=True, exclusive=True)
    def scan(self) -> None:
        """Find files and read their headers off the UI thread."""
        options = []
        for path, source in discover_models(self.model_dirs, extra=[*self.extra, self.current]):
            options.append(_option(path, source, str(path) == self.current))
        self.app.call_from_thread(self._show, options)

    def _show(self, options: list[Option]) -> None:
        option_list = self.query_one(OptionList)
        option_list.set_options(options)
        self.query_one("#title", Label).update(f"Model for this chat ({len(options)} found)")
        for index, option in enumerate(options):
            if option.id == self.current:
                option_list.highlighted = index

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def _option(path: Path, source: str, current: bool) -> Option:
    line = Text("● " if current else "  ")
    try:
        info = read_gguf_info(path)
    except GGUFError as exc:
        line.append(f"{clean_text(path.name)}  ", style="bold")
        line.append(clean_text(f"unreadable: {exc}"), style="red")
        return Option(line, id=str(path), disabled=True)
    line.append(info.name[:40], style="bold")
    template = "chat template" if info.has_chat_template else "no template: transcript"
    line.append(
        f"  {info.quantization} · {info.size_label} · ctx {info.context_length} · "
        f"{template} · {source}",
        style="dim",
    )
    line.append(f"\n    {clean_text(str(path))}", style="dim italic")
    return Option(line, id=str(path))
