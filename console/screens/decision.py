"""A decision's detail (Enter on a decision log line): the signal, its reason and every check.

Owns ``DecisionScreen``. It shows one ``DecisionMsg`` (``console/widgets/decision_view.py``)
and browses the log it was opened from (every pair's decisions, or one pair's on its detail
screen): left/right step to the older/newer one, up/down scroll a long one. A plain screen,
so the app's keys (kill switch, pause, flatten, help) keep working; Escape goes back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.model import DIRTY_HEADER, ConsoleModel
from console.screens.main import PALETTE_HINT_COLUMNS
from console.widgets.decision_view import decision_renderable
from console.widgets.header import StatusHeader
from console.widgets.palette import DEFAULT_PALETTE
from engine.wire.schema import DecisionMsg


class DecisionScreen(Screen[None]):
    """One decision, and its neighbours in the log it was opened from."""

    DEFAULT_CSS = """
    DecisionScreen #decision-body {
        height: 1fr;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "left,h",
            "step(-1)",
            "Older",
            key_display="←",
            id="decision.older",
            tooltip="The previous (older) decision of the same log",
        ),
        Binding(
            "right,l",
            "step(1)",
            "Newer",
            key_display="→",
            id="decision.newer",
            tooltip="The next (newer) decision of the same log",
        ),
        Binding("escape", "back", "Back", id="decision.back", tooltip="Back to the log"),
    ]

    def __init__(
        self,
        model: ConsoleModel,
        decision: DecisionMsg,
        symbol: str | None,
        mode: str,
        wall: Callable[[], float],
    ) -> None:
        super().__init__(classes="decision-screen")
        self.model = model
        self.decision = decision
        self.symbol = symbol  # the log's pair; None: every pair's
        self.header = StatusHeader(model, mode, wall, id="decision-header")
        self.body = Static(id="decision-text")

    def compose(self) -> ComposeResult:
        yield self.header
        with VerticalScroll(id="decision-body"):
            yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.decision)
        self.query_one("#decision-body").focus()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(Footer).show_command_palette = event.size.width >= PALETTE_HINT_COLUMNS

    def rows(self) -> list[DecisionMsg]:
        """The log this screen browses, oldest first (bounded by the model's 500)."""
        return [d for d in self.model.decisions if self.symbol is None or d.symbol == self.symbol]

    def position(self, rows: list[DecisionMsg]) -> int:
        for i in range(len(rows) - 1, -1, -1):
            if rows[i] is self.decision:
                return i
        return -1  # dropped off the bounded log

    def show(self, decision: DecisionMsg) -> None:
        self.decision = decision
        rows = self.rows()
        i = self.position(rows)
        where = f"{i + 1}/{len(rows)}" if i >= 0 else "(no longer in the log)"
        palette = getattr(self.app, "palette", DEFAULT_PALETTE)
        self.body.update(decision_renderable(decision, palette, where))

    def action_step(self, step: int) -> None:
        rows = self.rows()
        i = self.position(rows)
        j = len(rows) - 1 if i < 0 else i + step
        if not 0 <= j < len(rows):
            self.notify(
                "no older decision kept" if step < 0 else "this is the newest decision",
                severity="warning",
                markup=False,
                timeout=2,
            )
            return
        self.show(rows[j])
        self.query_one("#decision-body", VerticalScroll).scroll_home(animate=False)

    def repaint(self, dirty: set[str], charts: set[str] | None) -> None:
        if DIRTY_HEADER in dirty:
            self.header.refresh()

    def action_back(self) -> None:
        self.dismiss(None)
