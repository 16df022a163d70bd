"""What the trading core tells its shell, after the journal has it.

Per-tick state (prices, indicator previews) is not an event: a shell reads it from the core
when it publishes (throttled), using ``TradingCore.take_dirty``. Events are the rarer facts a
shell forwards one by one: decisions, order updates, fills, mode changes and notices.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.models import Decision, Fill, PairMode, Position
from engine.core.orders import Order
from engine.core.reconcile_view import ReconcileReport


@dataclass(slots=True, frozen=True)
class DecisionMade:
    decision: Decision


@dataclass(slots=True, frozen=True)
class OrderUpdated:
    order: Order


@dataclass(slots=True, frozen=True)
class FillBooked:
    fill: Fill
    position: Position  # the pair's position after the fill (qty 0 when flat)


@dataclass(slots=True, frozen=True)
class ModesChanged:
    modes: dict[str, PairMode]
    reason: str


@dataclass(slots=True, frozen=True)
class Notice:
    """Something the operator should read: a kill, a re-arm, an exit the venue refused."""

    ts: int
    kind: str
    level: str  # info | warning | error
    message: str


@dataclass(slots=True, frozen=True)
class Reconciled:
    """A reconciliation with the exchange was applied, or the operator settled a pair of it
    (the report is the core's current one: a shell publishes it as it is now)."""

    report: ReconcileReport


CoreEvent = DecisionMade | OrderUpdated | FillBooked | ModesChanged | Notice | Reconciled
