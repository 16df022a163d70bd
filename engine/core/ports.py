"""The trading core's ports: the small typed interfaces through which it meets the world.

The core (``engine.core``) imports no socket, database, terminal or wall clock. Each shell
(the engine process, a backtest, the gymnasium environment, the kill fallback) hands it:

- a ``Clock`` (engine/core/clock.py, a class to subclass): time for records (ms since epoch)
  and a monotonic time for ages;
- an ``ExecutionClient``: takes journaled orders, answers with ``ExecutionEvent``s through the
  listener the core binds (paper: within the same call; live: later, from the venue);
- a ``Journal``: durable record of decisions, orders, fills, positions, modes and events,
  written *before* anything is published or sent;
- an ``EventSink``: what happened, for the shell to publish;
- a ``HistorySource``: closed candles to warm a pair's indicators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.core.candles import Candle
from engine.core.clock import (
    Clock as Clock,  # the port is a compiled base class: the core calls it natively
)
from engine.core.events import CoreEvent
from engine.core.models import Decision, Fill, PairMode, Position
from engine.core.orders import ExecutionEvent, Order


class ExecutionClient(Protocol):
    # True when the venue keeps a protective stop for an open position (live): the core then
    # places one after each entry fill and cancels it before any other exit (``protect``)
    rests_stops: bool

    def bind(self, listener: Callable[[ExecutionEvent], None]) -> None:
        """Where to deliver every event about every order (called once, by the core)."""
        ...

    def submit(self, order: Order, bid: float, ask: float) -> None:
        """Send a journaled order. ``bid``/``ask`` are the core's latest quote (a paper client
        fills against them; a live client may ignore them). Raising means the outcome is
        unknown: the order may or may not have reached the venue."""
        ...

    def lookup(self, order: Order) -> None:
        """Ask the venue about an order whose outcome is unknown; answer with events
        (``OrderNotFound`` when the venue never saw it)."""
        ...

    def cancel(self, order: Order) -> None:
        """Ask the venue to cancel a resting order; answer with ``OrderCancelled``, or with
        what it became (a fill that came first) when it is no longer open."""
        ...


class Journal(Protocol):
    def record_decision(self, decision: Decision, order: Order | None = None) -> bool:
        """Store a decision (and the order it creates, in the same transaction).
        False, storing nothing, when the decision's key is already stored."""
        ...

    def record_order(self, order: Order) -> bool:
        """Store a new order before it is sent; False when its client order id exists."""
        ...

    def update_order(self, order: Order) -> None:
        """Store an order's new status (accepted, rejected, cancelled, unknown)."""
        ...

    def record_fill(self, fill: Fill, order: Order, position: Position, account: Mapping[str, float]) -> bool:
        """Store one fill with the order, position and account after it, atomically.
        False, storing nothing, when the fill id is already stored."""
        ...

    def has_fill(self, fill_id: str) -> bool: ...

    def set_modes(self, modes: Mapping[str, PairMode], reason: str, ts: int) -> None: ...

    def record_event(self, ts: int, kind: str, message: str) -> None: ...

    def record_equity(
        self, ts: int, equity: float, cash: float, exposure: float, realised: float, unrealised: float, fees: float
    ) -> None: ...

    def load_account(self) -> dict[str, float] | None: ...

    def init_account(self, capital: float, ts: int) -> None: ...

    def load_positions(self) -> dict[str, Position]: ...

    def load_modes(self) -> dict[str, PairMode]: ...

    def modes_before_halt(self) -> dict[str, PairMode]:
        """Each HALTED pair's mode before its halt (``set_modes`` keeps it): what re-arm restores."""
        ...

    def set_entries(self, stopped: bool, reason: str, ts: int) -> None:
        """Stop or resume new entries on every pair (the operator's; kept across restarts)."""
        ...

    def load_entries(self) -> tuple[bool, str, int] | None: ...

    def record_day_start(self, start_ts: int, equity: float, ts: int) -> None:
        """The trading day's start and the equity at its first mark (the day's PnL survives a crash)."""
        ...

    def load_day_start(self) -> tuple[int, float] | None: ...

    def open_orders(self) -> list[Order]: ...

    def order(self, client_order_id: str) -> Order | None: ...

    def record_position(self, position: Position) -> None:
        """Store a position as it is now (a reconciliation adopting the exchange's entry)."""
        ...

    def last_fill_ts(self) -> dict[str, int]: ...

    def record_reconciliation(self, report: Mapping[str, Any], rid: int | None = None) -> int: ...

    def latest_reconciliation(self) -> tuple[int, dict[str, Any]] | None: ...


class EventSink(Protocol):
    def emit(self, event: CoreEvent) -> None:
        """Called after the journal has the fact; must not raise (a shell publishes it)."""
        ...


class HistorySource(Protocol):
    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        """Closed candles, oldest first; raise ``HistoryUnavailable`` when there are none."""
        ...


class JournalError(Exception):
    """The journal cannot record a fact. Fatal for the shell: the core never trades on a
    state its journal does not hold (a restarted engine reloads the book and looks up every
    open order)."""


class HistoryUnavailable(Exception):
    """No history for a pair right now (the pair warms up live instead)."""


class NullSink:
    """An event sink that drops everything (backtests that only read the journal)."""

    def emit(self, event: CoreEvent) -> None:
        return None
