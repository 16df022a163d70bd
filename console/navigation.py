"""Where the operator's keys lead: the pair detail, a decision's detail, the trades screen, the
help screen (the keys of every screen on the stack) and the command palette's entries.

Owns ``NavigationActions``, a base of the app (``console/actions.py``'s ``OperatorActions``
adds the commands that change trading; the palette offers both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from console.kill_progress import KillProgress
from console.model import ConsoleModel, PairView
from console.screens.decision import DecisionScreen
from console.screens.detail import PairDetailScreen
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from console.screens.reconcile import ReconcileScreen
from console.screens.trades import TradesScreen
from engine.wire.schema import DecisionMsg


class NavigationActions(App[None]):
    # set by MultiparApp (and its other bases)
    model: ConsoleModel
    wall: Callable[[], float]
    selected_symbol: str | None
    selected_view: PairView | None
    progress: KillProgress | None
    backend: Any
    select_symbol: Callable[[str], None]
    log_sources: Callable[[], list[tuple[str, Any]]]
    action_pause_toggle: Callable[[], None]
    action_reduce: Callable[[], None]
    action_flatten: Callable[[], None]
    action_flatten_all: Callable[[], None]
    action_kill: Callable[[], None]
    action_rearm: Callable[[], None]
    action_show_reconcile: Callable[[], None]
    action_show_logs: Callable[[], None]
    show_progress: Callable[[], None]
    send_command: Callable[..., Any]

    def action_open_detail(self) -> None:
        pv = self.selected_view
        if pv is not None:
            self.push_screen(PairDetailScreen(self.model, pv.symbol, self.backend.mode, self.wall))

    def open_decision(self, decision: DecisionMsg, symbol: str | None = None) -> None:
        """A decision's detail, browsing the log it came from (``symbol``: one pair's)."""
        self.push_screen(DecisionScreen(self.model, decision, symbol, self.backend.mode, self.wall))

    def action_show_trades(self) -> None:
        self.push_screen(TradesScreen(self.model, self.backend.mode, self.wall))

    def action_help(self) -> None:
        sources: list[tuple[str, list[Binding]]] = [
            ("board", _bindings(MainScreen.BINDINGS)),
            ("everywhere", _bindings(self.BINDINGS)),
            ("detail", _bindings(PairDetailScreen.BINDINGS)),
            ("help", _bindings(HelpScreen.BINDINGS)),
        ]
        if any(isinstance(s, ReconcileScreen) for s in self.screen_stack):  # its keys too
            sources.insert(2, ("reconcile", _bindings(ReconcileScreen.BINDINGS)))
        for name, cls in (("trades", TradesScreen), ("decision", DecisionScreen)):
            if any(isinstance(s, cls) for s in self.screen_stack):
                sources.insert(2, (name, _bindings(cls.BINDINGS)))
        sources[-1:-1] = [(w, _bindings(b)) for w, b in self.log_sources()]  # logs, log files
        self.push_screen(HelpScreen(sources))

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        sym = self.selected_symbol or "the selected pair"
        yield SystemCommand(
            f"Pause or resume {sym}", "p: no new entries while paused", self.action_pause_toggle
        )
        yield SystemCommand(f"Reduce-only {sym}", "exits only until resumed", self.action_reduce)
        yield SystemCommand(
            f"Flatten {sym}", "f: close the position at market (confirm)", self.action_flatten
        )
        yield SystemCommand(
            "Flatten all positions", "F: close every position (confirm)", self.action_flatten_all
        )
        yield SystemCommand(
            "KILL switch", "ctrl+k: halt and flatten everything (confirm with y)", self.action_kill
        )
        yield SystemCommand("Re-arm after a halt", "r: leave HALTED (confirm)", self.action_rearm)
        if self.progress is not None:
            yield SystemCommand(
                "Show the kill progress",
                "the last kill's or flatten-all's progress, pair by pair",
                self.show_progress,
            )
        yield SystemCommand(
            "Ping the engine",
            "round-trip a command and show its ack time",
            partial(self.send_command, "ping"),
        )
        yield SystemCommand(
            f"Open {sym} detail", "Enter: chart and decisions of the pair", self.action_open_detail
        )
        yield SystemCommand(
            "Trades: round trips and performance",
            "T: closed round trips, win rate, PnL after fees; s saves a CSV",
            self.action_show_trades,
        )
        yield SystemCommand(
            "Reconciliation with the exchange",
            "R: the book beside the exchange per pair, and your choices",
            self.action_show_reconcile,
        )
        yield SystemCommand(
            "Log files", "L: the daemon's, feed's, engine's logs, followed live", self.action_show_logs
        )
        yield SystemCommand(
            "Help: every key", "?: the key list and the kill switch rules", self.action_help
        )
        for s in self.model.symbols:
            yield SystemCommand(
                f"Select {s}",
                "move the selection to this pair",
                partial(self.select_symbol, s),
                discover=False,
            )




def _bindings(bindings: Iterable[Any]) -> list[Binding]:
    """Bindings as declared (multi-key ones kept whole, so help shows "↑, k" on one row)."""
    return [b for b in bindings if isinstance(b, Binding)]
