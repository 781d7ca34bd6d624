"""Pick a persona for a new chat."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tui.core.personas import Persona
from tui.ui.screens.modal import Modal


class NewChatScreen(Modal[str | None]):
    """A list of personas; Enter starts a chat with the highlighted one."""

    def __init__(
        self, personas: list[Persona], default: str, title: str = "New chat with…"
    ) -> None:
        super().__init__()
        self.personas = personas
        self.default = default
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            options = []
            for persona in self.personas:
                line = Text(persona.name, style="bold")
                if persona.description:
                    line.append(f"  {persona.description}", style="dim")
                if not persona.bundled:
                    line.append("  (yours)", style="italic")
                options.append(Option(line, id=persona.id))
            yield OptionList(*options, markup=False)
            yield Label("Enter: start · Esc: cancel", classes="hint")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        for index, persona in enumerate(self.personas):
            if persona.id == self.default:
                option_list.highlighted = index
        option_list.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
