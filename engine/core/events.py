"""What the trading core tells its shell, after the journal has it.

Per-tick state (prices, indicator previews) is not an event: a shell reads it from the core
when it publishes (throttled), using ``TradingCore.take_dirty``. Events are the rarer facts a
shell forwards one by one: decisions, order updates, fills, mode changes and notices.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.models import Decision, Fill, PairMode, Position
from engine.core.orders import Order


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


CoreEvent = DecisionMade | OrderUpdated | FillBooked | ModesChanged | Notice
