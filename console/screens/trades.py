"""The trades screen (``T`` on the board): what happened, round trip by round trip.

Owns ``TradesScreen``: which fills the round trips come from, performance per pair and in
total, then every closed round trip (newest first: exit time, pair, side, entry, exit, hold,
PnL after fees, why it closed), built from the fills the console holds
(``console/roundtrips.py``) and rebuilt when a fill arrives or a position changes. ``s``
writes them to a CSV file under ``$XDG_DATA_HOME/multipar-console/exports`` and shows its path
here; up/down scroll; Escape goes back. A plain screen: the app's keys keep working.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.model import DIRTY_HEADER, ConsoleModel
from console.roundtrips import RoundTrips, exports_dir, performance, round_trips, write_csv
from console.screens.main import PALETTE_HINT_COLUMNS
from console.widgets.header import StatusHeader
from console.widgets.palette import DEFAULT_PALETTE, Palette
from console.widgets.trades_view import coverage_text, performance_table, trips_table
from engine.backtest.metrics import Figures


class TradesScreen(Screen[None]):
    """Closed round trips and their performance."""

    DEFAULT_CSS = """
    TradesScreen #trades-top {
        height: auto;
        padding: 0 1;
    }
    TradesScreen #trades-list {
        height: 1fr;
        padding: 0 1;
    }
    TradesScreen #trades-status {
        height: auto;
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "s",
            "export",
            "Save CSV",
            id="trades.export",
            tooltip="Write the round trips to a CSV file (its path is shown here)",
        ),
        Binding("escape", "back", "Back", id="trades.back", tooltip="Back to the board"),
    ]

    def __init__(
        self,
        model: ConsoleModel,
        mode: str,
        wall: Callable[[], float],
        export_dir: Path | None = None,
    ) -> None:
        super().__init__(classes="trades-screen")
        self.model = model
        self.wall = wall
        self.export_dir = export_dir  # None: exports_dir() of the environment at export time
        self.header = StatusHeader(model, mode, wall, id="trades-header")
        self.top = Static(id="trades-top")
        self.list = Static(id="trades-table")
        self.status = Static(id="trades-status")
        self.trips = RoundTrips()
        self._built: tuple[object, ...] | None = None
        self.exported: Path | None = None

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.top
        with VerticalScroll(id="trades-list"):
            yield self.list
        yield self.status
        yield Footer()

    @property
    def palette(self) -> Palette:
        return getattr(self.app, "palette", DEFAULT_PALETTE)

    def on_mount(self) -> None:
        self.rebuild()
        self.query_one("#trades-list").focus()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(Footer).show_command_palette = event.size.width >= PALETTE_HINT_COLUMNS
        self.rebuild(force=True)

    def positions(self) -> dict[str, float]:
        """Each pair's signed position now (the engine's)."""
        out = {}
        for sym, pv in self.model.pairs.items():
            pos = pv.state.position
            if pos is not None and pos.qty:
                out[sym] = abs(pos.qty) if pos.side == "long" else -abs(pos.qty)
        return out

    def rebuild(self, force: bool = False) -> None:
        """Round trips again when the fills or the positions changed (at most 500 fills)."""
        fills = self.model.fills
        positions = self.positions()
        key = (len(fills), fills[-1].fill_id if fills else "", tuple(sorted(positions.items())))
        if key == self._built and not force:
            return
        self._built = key
        self.trips = round_trips(fills, positions)
        pal, width = self.palette, self.size.width or 80
        pf = self.model.portfolio
        total, pairs = performance(self.trips.trades, self.model.symbols, pf.capital if pf else 0.0)
        self.top.update(self._top(total, pairs, pal, width))
        if self.trips.trades:
            self.list.update(trips_table(self.trips.trades, pal, width))
        else:
            self.list.update(Text("no closed round trip yet", pal.muted))
        if self.exported is None:
            self.status.update(Text("s saves them to a CSV file", pal.muted))

    def _top(self, total: Figures, pairs: list[Figures], pal: Palette, width: int) -> Group:
        return Group(
            coverage_text(self.trips, pal),
            performance_table(total, pairs, pal, width),
            Text("Round trips, newest first", pal.accent),
        )

    def repaint(self, dirty: set[str], charts: set[str] | None) -> None:
        if DIRTY_HEADER in dirty:
            self.header.refresh()
        self.rebuild()

    def action_export(self) -> None:
        pal = self.palette
        trades = self.trips.trades
        if not trades:
            self.notify("no closed round trip to export yet", severity="warning", markup=False)
            return
        directory = self.export_dir or exports_dir(os.environ)
        try:
            path = write_csv(trades, directory, self.wall())
        except OSError as exc:
            text = f"export failed: {exc}"
            self.status.update(Text(text, pal.error))
            self.notify(text, severity="error", markup=False)
            return
        self.exported = path
        n = len(trades)
        text = f"exported {n} round trip{'s' * (n != 1)} to {path}"
        self.status.update(Text(text, pal.up))
        self.model.add_event(text, "success")
        self.notify(text, markup=False, timeout=4)

    def action_back(self) -> None:
        self.dismiss(None)
