"""The search prompt of a log (``/`` in a focused log, or on the board for the decision log).

Owns ``SearchPrompt``: one line at the bottom of the screen, over the footer, the log still in
view above it. Each keystroke previews the search in the log (matches highlighted, the newest
selected) and the prompt says how many rows match; Enter keeps it, Escape puts the log back as
it was. The kill switch (``ctrl+k``, a priority binding) still works while it is open.

Keys typed before the input has focus (``/pause`` typed fast, or pasted over SSH, arrives
before the prompt is composed) are the search's: they never reach the board's keys (``p`` would
pause a pair, ``q`` detach), they go into the input in order. Keys typed after Enter or Escape
but routed to the prompt before it closed (Textual routes a key when it arrives) are the log's:
they are posted again, in order, to whatever has the keys once the prompt is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class Searchable(Protocol):
    def preview(self, text: str) -> int:
        """Show the search ``text``; the number of rows that match."""
        ...


class _SearchInput(Input):
    closed = False  # the prompt answered: later keys are not the search's
    answer: Callable[[str | None], None] | None = None

    async def _on_key(self, event: events.Key) -> None:
        if self.closed:
            _hand_back(self, event)
            return
        if event.key in ("enter", "escape") and self.answer is not None:
            # answered here, in this key's turn: keys queued behind it are not the input's
            event.stop()
            event.prevent_default()
            self.answer(self.value if event.key == "enter" else None)
            return
        await super()._on_key(event)
        if not event._stop_propagation:  # it bubbles on to the prompt: the input's own key
            if len(_SEEN_BY_INPUT) > 64:  # never seen again (a binding stopped it): forget
                _SEEN_BY_INPUT.clear()
            _SEEN_BY_INPUT.add(id(event))


_SEEN_BY_INPUT: set[int] = set()  # ids of keys the input had (cleared as the prompt sees them)


def _hand_back(node: Input | ModalScreen[str | None], event: events.Key) -> None:
    event.stop()
    event.prevent_default()
    node.app.post_message(events.Key(event.key, event.character))


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
    # No auto focus: the input takes the keys in on_mount, once what was typed before is in it
    # (keys sent to an input not mounted yet were lost: measured in tests/test_tmux_logs.py).
    AUTO_FOCUS = ""

    def __init__(self, target: Searchable, text: str = "") -> None:
        super().__init__()
        self.target = target
        self.initial = text
        self._pending = ""  # typed before the input was mounted
        self.closed = False
        self.input = _SearchInput(
            text,
            placeholder="search (Enter: find · n/N next/previous · Escape: cancel)",
            compact=True,
            id="search-input",
        )
        self.input.answer = self.close

    def compose(self) -> ComposeResult:
        with Horizontal(id="search-bar"):
            yield Static("/", id="search-slash")
            yield self.input
            yield Static("", id="search-count")

    def on_mount(self) -> None:
        if self._pending:
            self.input.insert_text_at_cursor(self._pending)
            self._pending = ""
        self.set_focus(self.input)  # at once: the next key is the input's

    def close(self, value: str | None) -> None:
        """Answer once; keys still on their way to the prompt go back to the log."""
        if self.closed:
            return
        self.closed = self.input.closed = True
        self.dismiss(value)

    def on_key(self, event: events.Key) -> None:
        """A key that reached the screen: bubbling from the input (its own: its bindings run),
        or sent here before the input had the keys (routed when it arrived)."""
        if id(event) in _SEEN_BY_INPUT:
            _SEEN_BY_INPUT.discard(id(event))
            return
        if self.closed:
            _hand_back(self, event)
            return
        if event.key == "escape":
            return  # the cancel binding
        event.stop()
        event.prevent_default()  # never the board's keys
        if event.key == "enter":
            self.close(self.input.value + self._pending)
        elif event.key == "backspace":
            if self._pending:
                self._pending = self._pending[:-1]
            elif self.input.is_mounted:
                self.input.action_delete_left()
        elif event.is_printable and event.character:
            if self.input.is_mounted:
                self.input.insert_text_at_cursor(event.character)
            else:
                self._pending += event.character

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
        self.close(event.value)

    def action_cancel(self) -> None:
        self.close(None)
