"""The help screen (``?``): every key, generated from the live bindings, and the kill switch.

Owns ``HelpScreen`` and ``key_rows()``, which lists the bindings of the app and of each
screen with the key currently mapped to them (after any keymap), so help never drifts from
what the keys do, and the legend of the screens' abbreviations (``console.screens.legend``):
beside the keys from ``WIDE_COLUMNS``, below them in a narrower terminal. Escape, ``q`` or
``?`` close it; the kill switch still works from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.logfiles import files_help
from console.screens.legend import legend_table

KILL_SWITCH_TEXT = (
    "Kill switch: ctrl+k, then y in the confirm dialog (No is the default; any other key "
    "cancels). The engine halts new entries, cancels open orders, flattens every position and "
    "acknowledges. If it does not acknowledge within about a second, or has stopped beating, "
    "the console stops the engine and flattens from the stored positions itself. HALTED "
    "survives restarts until you re-arm with r."
)
WIDE_COLUMNS = 140  # the legend beside the keys from here, below them under it


def _display_key(app: App[object], binding: Binding) -> str:
    keymap = getattr(app, "_keymap", {}) or {}
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    if binding.key_display and keys == binding.key:
        return binding.key_display
    return ", ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))


def key_rows(
    app: App[object], sources: Iterable[tuple[str, list[Binding]]]
) -> list[tuple[str, str, str, str]]:
    """(where, key, description, binding id) for every binding with a description."""
    rows = []
    for where, bindings in sources:
        for b in bindings:
            if not b.description:
                continue
            rows.append((where, _display_key(app, b), b.tooltip or b.description, b.id or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "escape,q,question_mark", "close", "Close", id="help.close", tooltip="Close this help"
        ),
    ]

    def __init__(self, sources: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sources = sources

    def compose(self) -> ComposeResult:
        table = Table(title="multipar-console keys", expand=True, show_lines=False)
        table.add_column("Where", style="bold", no_wrap=True)
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Does")
        for where, key, desc, _ in key_rows(self.app, self.sources):
            table.add_row(where, key, desc)
        table.add_row("confirm", "y", "confirm; any other key (Enter, Escape, n…) cancels")
        table.add_row("everywhere", "ctrl+p", "command palette: every action by name")
        with VerticalScroll(id="help-dialog"):
            with Horizontal(id="help-columns"):
                yield Static(table, id="help-keys")
                yield Static(legend_table(), id="help-legend")
            yield Static(Text(KILL_SWITCH_TEXT), id="help-kill")
            yield Static(Text(files_help(getattr(self.app, "files", None))), id="help-logs")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE_COLUMNS, "-wide")

    def action_close(self) -> None:
        self.dismiss(None)
