"""The confirm dialog every dangerous command goes through (flatten, flatten all, kill,
re-arm, resume entries, quit with open positions); the caller re-checks the state when ``y``
answers it (console/actions.py ``_confirm``: "nothing to do" when it is gone).

Owns ``ConfirmScreen``: a modal that answers True only for ``y``. It defaults to No: Enter,
Escape, ``n`` and any other key cancel, so a stray keystroke can never confirm. Nothing in
it takes focus, so every key reaches ``on_key``; the buttons only serve the mouse.
"""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask one yes/no question; ``y`` confirms, anything else cancels."""

    def __init__(self, kind: str, title: str, body: str, *, danger: bool = False) -> None:
        super().__init__(classes="-danger" if danger else None)
        self.kind = kind  # "kill", "flatten", "flatten_all", "rearm", "resume_entries", "quit"
        self.title_text = title
        self.body = body
        self.answered = False

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static(Text(self.title_text), id="confirm-title")
            yield Static(Text(self.body), id="confirm-body")
            yield Static(Text("y = yes · any other key = no (default)"), id="confirm-hint")
            with Horizontal(id="confirm-buttons"):
                no = Button(" No ", id="confirm-no", variant="primary", compact=True)
                yes = Button(
                    " Yes (y) ",
                    id="confirm-yes",
                    variant="error" if "-danger" in self.classes else "default",
                    compact=True,
                )
                no.can_focus = False
                yes.can_focus = False
                yield no
                yield yes

    def answer(self, yes: bool) -> None:
        """Dismiss once; a second key arriving before the screen pops is ignored."""
        if self.answered:
            return
        self.answered = True
        self.dismiss(yes)

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        self.answer(event.key == "y")

    @on(Button.Pressed, "#confirm-yes")
    def _yes(self) -> None:
        self.answer(True)

    @on(Button.Pressed, "#confirm-no")
    def _no(self) -> None:
        self.answer(False)
