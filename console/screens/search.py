"""The search prompt of a log (``/`` in a focused log, or on the board for the decision log).

Owns ``SearchPrompt``: one line at the bottom of the screen, over the footer, the log still in
view above it. Each keystroke previews the search in the log (matches highlighted, the newest
selected) and the prompt says how many rows match; Enter keeps it, Escape puts the log back as
it was. The kill switch (``ctrl+k``, a priority binding) still works while it is open.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class Searchable(Protocol):
    def preview(self, text: str) -> int:
        """Show the search ``text``; the number of rows that match."""
        ...


class SearchPrompt(ModalScreen[str | None]):
    """``/`` then the text; Enter: search; Escape: cancel."""

    DEFAULT_CSS = """
    SearchPrompt {
        align: left bottom;
        background: transparent;
    }
    SearchPrompt > #search-bar {
        height: 1;
        width: 100%;
        background: $panel;
    }
    #search-bar > #search-slash {
        width: 2;
        color: $accent;
        text-style: bold;
    }
    #search-bar > #search-input {
        width: 1fr;
    }
    #search-bar > #search-count {
        width: auto;
        min-width: 12;
        color: $text-muted;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="search.cancel", tooltip="Cancel the search"),
    ]

    def __init__(self, target: Searchable, text: str = "") -> None:
        super().__init__()
        self.target = target
        self.initial = text

    def compose(self) -> ComposeResult:
        with Horizontal(id="search-bar"):
            yield Static("/", id="search-slash")
            yield Input(
                self.initial,
                placeholder="search (Enter: find · n/N next/previous · Escape: cancel)",
                compact=True,
                id="search-input",
            )
            yield Static("", id="search-count")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        count = self.query_one("#search-count", Static)
        if not event.value:
            count.update("")
            self.target.preview("")
            return
        n = self.target.preview(event.value)
        count.update(f"{n} match" + "es" * (n != 1) if n else "no match")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
