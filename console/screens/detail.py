"""A pair's detail screen (Enter on a pane): chart of closes, full stats and its decisions.

Owns ``PairDetailScreen``. It is a plain (non-modal) screen, so the app's keys keep working
here for this pair (pause, flatten, kill, help); Escape returns to the board. The app's
repaint timer calls ``repaint()`` like the main screen's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from console.model import DIRTY_HEADER, DIRTY_LOG, ConsoleModel
from console.screens.fit import fit_footer
from console.screens.main import MEDIUM_COLUMNS, PALETTE_HINT_COLUMNS
from console.widgets.chart import CloseChart
from console.widgets.header import StatusHeader
from console.widgets.logs import DETAIL_LOG_BINDINGS, DecisionLog
from console.widgets.pair_pane import PairQuote, PairStats


class PairDetailScreen(Screen[None]):
    """One pair in depth; below 120 columns the stats sit above the decisions."""

    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"),
        (MEDIUM_COLUMNS, "-medium"),
    ]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="detail.back", tooltip="Back to the board"),
        *DETAIL_LOG_BINDINGS,  # d, /: its decision log (console/widgets/logs.py)
    ]

    def __init__(
        self, model: ConsoleModel, symbol: str, mode: str, wall: Callable[[], float]
    ) -> None:
        super().__init__(classes="detail-screen")
        self.model = model
        self.symbol = symbol
        self.header = StatusHeader(model, mode, wall, id="detail-header")
        self.quote = PairQuote(model, symbol, id="detail-quote")
        self.chart = CloseChart(model, symbol, id="detail-chart")
        self.chart.border_title = f"{symbol} · candles from closes"
        self.stats = PairStats(model, symbol, id="detail-stats")
        self.decisions = DecisionLog(model, symbol, id="detail-decisions")

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.quote
        yield self.chart
        with Horizontal(id="detail-bottom"):
            yield self.stats
            yield self.decisions
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(Footer).show_command_palette = event.size.width >= PALETTE_HINT_COLUMNS
        fit_footer(self, event.size.width)  # compact keys below 80 columns

    def repaint(self, dirty: set[str], charts: set[str] | None) -> None:
        if DIRTY_HEADER in dirty:
            self.header.refresh()
        if self.symbol in dirty:
            self.quote.refresh()
            self.stats.refresh()
        if DIRTY_LOG in dirty:
            self.decisions.refresh()
        if charts is not None and self.symbol in charts:
            self.chart.refresh()

    def action_back(self) -> None:
        self.dismiss(None)
