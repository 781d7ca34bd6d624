"""F1: the keys that work where the focus is, the app's own first.

Textual's help panel lists the focused widget's bindings in class order,
so the message box showed thirty TextArea cursor keys before "Enter
Send". Here the list has three parts: the keys llama-tui gives the focused
area, the keys that work everywhere, then what Textual's widgets add.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import Static


def _own_actions(node: DOMNode) -> set[str]:
    """Actions bound by llama-tui's own classes of ``node`` (not Textual's bases)."""
    actions: set[str] = set()
    for cls in type(node).__mro__:
        if not cls.__module__.startswith("tui."):
            continue
        for binding in cls.__dict__.get("BINDINGS", []):
            actions.add(binding.action if isinstance(binding, Binding) else binding[1])
    return actions


class KeysHelp(Static):
    """A side panel: the active keys of the focused area, llama-tui's first."""

    DEFAULT_CSS = """
    KeysHelp {
        dock: right;
        width: 40;
        height: 1fr;
        border-left: vkey $foreground 30%;
        padding: 0 1;
        overflow-y: auto;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.screen, "focused", lambda _focused: self.refresh_keys())
        self.refresh_keys()

    def sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """(title, [(keys, description)]) for this area, everywhere, and the rest."""
        app: App[object] = self.app
        here: dict[str, list[str]] = {}
        everywhere: dict[str, list[str]] = {}
        rest: dict[str, list[str]] = {}
        descriptions: dict[str, str] = {}
        own: dict[int, set[str]] = {}
        for namespace, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not enabled or binding.system:
                continue
            if namespace is app:
                target = everywhere
            else:
                actions = own.setdefault(id(namespace), _own_actions(namespace))
                target = here if binding.action in actions else rest
            label = binding.description or binding.action.replace("_", " ")
            key = f"{id(namespace)}:{binding.action}"
            descriptions[key] = label
            target.setdefault(key, []).append(app.get_key_display(binding))
        return [
            (title, [(" ".join(dict.fromkeys(keys)), descriptions[k]) for k, keys in part.items()])
            for title, part in (
                (self._area_name(), here),
                ("Everywhere", everywhere),
                ("Also (text and list keys)", rest),
            )
            if part
        ]

    def _area_name(self) -> str:
        focused = self.screen.focused
        for node in focused.ancestors_with_self if focused else ():
            name = getattr(node, "HELP_AREA", "")
            if name:
                return str(name)
        return "Here"

    def refresh_keys(self) -> None:
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right", style="bold")
        table.add_column()
        for index, (title, rows) in enumerate(self.sections()):
            if index:
                table.add_row("", "")
            table.add_row("", Text(title, style="underline"))
            for keys, description in rows:
                table.add_row(Text(keys), Text(description))
        self.update(table)


def find_keys_help(screen: Widget | object) -> KeysHelp | None:
    """The panel on ``screen``, if it is open."""
    query = getattr(screen, "query", None)
    if query is None:
        return None
    found = query(KeysHelp)
    return found.first() if found else None
