"""What the trading core tells its shell, after the journal has it.

Per-tick state (prices, indicator previews) is not an event: a shell reads it from the core
when it publishes (throttled), using ``TradingCore.take_dirty``. Events are the rarer facts a
shell forwards one by one: decisions, order updates, fills, mode changes and notices.

An event is a fact handed over: nothing changes one after it is made. The classes are not
``frozen`` for speed alone: a frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__`` and runs as Python even compiled (4.8 k instructions for three fields;
a trade makes several); these are written out, so they compile.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.models import Decision, Fill, PairMode, Position
from engine.core.orders import Order
from engine.core.reconcile_view import ReconcileReport


@dataclass(slots=True, init=False)  # __init__ written out: compiled (module docstring)
class DecisionMade:
    decision: Decision

    def __init__(self, decision: Decision) -> None:
        self.decision = decision


@dataclass(slots=True, init=False)
class OrderUpdated:
    order: Order

    def __init__(self, order: Order) -> None:
        self.order = order


@dataclass(slots=True, init=False)
class FillBooked:
    fill: Fill
    position: Position  # the pair's position after the fill (qty 0 when flat)

    def __init__(self, fill: Fill, position: Position) -> None:
        self.fill, self.position = fill, position


@dataclass(slots=True, init=False)
class ModesChanged:
    modes: dict[str, PairMode]
    reason: str

    def __init__(self, modes: dict[str, PairMode], reason: str) -> None:
        self.modes, self.reason = modes, reason


@dataclass(slots=True, init=False)
class Notice:
    """Something the operator should read: a kill, a re-arm, an exit the venue refused."""

    ts: int
    kind: str
    level: str  # info | warning | error
    message: str

    def __init__(self, ts: int, kind: str, level: str, message: str) -> None:
        self.ts, self.kind, self.level, self.message = ts, kind, level, message


@dataclass(slots=True, init=False)
class Reconciled:
    """A reconciliation with the exchange was applied, or the operator settled a pair of it
    (the report is the core's current one: a shell publishes it as it is now)."""

    report: ReconcileReport

    def __init__(self, report: ReconcileReport) -> None:
        self.report = report


CoreEvent = DecisionMade | OrderUpdated | FillBooked | ModesChanged | Notice | Reconciled
