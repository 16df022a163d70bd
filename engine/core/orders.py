"""Orders and the answers an execution client gives about them.

Owns ``Order`` (one request to a venue, identified by its client order id), its status
machine, and the execution events a client answers with. The core journals an order *before*
it hands it to a client; from then on only events move it:

    NEW ──▶ ACCEPTED ──▶ PARTIALLY_FILLED ──▶ FILLED
     │          │                │
     ├──▶ REJECTED ◀─────────────┘ (rest refused)      CANCELLED from any open state
     └──▶ UNKNOWN  (the client failed after the order may have reached the venue:
                    the core looks it up by its client order id, never resends blind)

``NEW`` means "journaled, maybe sent": after a crash it is looked up like ``UNKNOWN``.

Two order types: ``market`` (entries and exits: filled now, at the touch) and ``stop`` (a
protective stop resting at the venue, ``trigger`` its stop price: the position's stop, placed
after the entry fill by ``ExecutionEngine.protect`` when the client rests stops).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from engine.core.models import Fill, Side

CLIENT_ID_PREFIX: Final = "mp-"
CLIENT_ID_MAX: Final = 36  # Binance's limit for newClientOrderId


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


TERMINAL: Final = frozenset({OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.CANCELLED})


def is_ours(client_order_id: object) -> bool:
    """Whether an order at the venue was placed by this program (every client order id of ours
    starts with ``CLIENT_ID_PREFIX``); orders placed by hand are never cancelled or counted."""
    return str(client_order_id or "").startswith(CLIENT_ID_PREFIX)


def client_order_id(key: str) -> str:
    """A client order id derived from a key: the same key always maps to the same id, so a
    restart that meets the same decision cannot place a second order. 23 characters of
    ``[a-z0-9-]``, inside Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``."""
    return CLIENT_ID_PREFIX + hashlib.sha1(key.encode()).hexdigest()[:20]


MARKET: Final = "market"
STOP: Final = "stop"


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class Order:
    """One order for one pair: a market order, or a resting protective stop (``order_type``
    ``stop``, sent when ``trigger`` is reached). Quantities are base units; ``avg_price`` is of
    the fills."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    reason: str  # "signal", "stop", "take_profit", "flatten", "kill", "kill-fallback", ...
    decision_key: str
    created_ts: int  # ms
    status: OrderStatus = OrderStatus.NEW
    filled_qty: float = 0.0
    avg_price: float = 0.0
    fees: float = 0.0
    updated_ts: int = 0
    message: str = ""  # why it was rejected or cancelled, or what is unknown
    stop_loss: float = 0.0  # an entry's protective levels, attached to the position on fill
    take_profit: float = 0.0
    order_type: str = MARKET  # MARKET | STOP
    trigger: float = 0.0  # a STOP order's stop price

    def __init__(
        self,
        client_order_id: str,
        symbol: str,
        side: Side,
        qty: float,
        reason: str,
        decision_key: str,
        created_ts: int,
        status: OrderStatus = OrderStatus.NEW,
        filled_qty: float = 0.0,
        avg_price: float = 0.0,
        fees: float = 0.0,
        updated_ts: int = 0,
        message: str = "",
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        order_type: str = MARKET,
        trigger: float = 0.0,
    ) -> None:
        self.client_order_id, self.symbol, self.side, self.qty = client_order_id, symbol, side, qty
        self.reason, self.decision_key, self.created_ts, self.status = reason, decision_key, created_ts, status
        self.filled_qty, self.avg_price, self.fees, self.updated_ts = filled_qty, avg_price, fees, updated_ts
        self.message, self.stop_loss, self.take_profit = message, stop_loss, take_profit
        self.order_type, self.trigger = order_type, trigger

    def copy(self) -> Order:
        """A copy with every field: ``dataclasses.replace(self)``, written out (the sink may keep
        it while the core mutates the order; tests/test_core_execution.py holds the two equal)."""
        return Order(
            self.client_order_id, self.symbol, self.side, self.qty, self.reason, self.decision_key,
            self.created_ts, self.status, self.filled_qty, self.avg_price, self.fees, self.updated_ts,
            self.message, self.stop_loss, self.take_profit, self.order_type, self.trigger,
        )  # fmt: skip

    @property
    def is_protective(self) -> bool:
        """A stop resting at the venue for an open position (not an entry, not an exit)."""
        return self.order_type == STOP

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    @property
    def remaining(self) -> float:
        return max(self.qty - self.filled_qty, 0.0)


# ---- what an execution client answers -------------------------------------------------------
# Facts, never changed once made; not ``frozen`` so that their ``__init__``, written out, is
# compiled (a frozen dataclass's runs as Python: see engine/core/events.py).


@dataclass(slots=True, init=False)
class OrderAccepted:
    client_order_id: str
    ts: int
    venue_order_id: str = ""

    def __init__(self, client_order_id: str, ts: int, venue_order_id: str = "") -> None:
        self.client_order_id, self.ts, self.venue_order_id = client_order_id, ts, venue_order_id


@dataclass(slots=True, init=False)
class OrderFilled:
    """One fill (possibly partial) of an order; ``fill.fill_id`` is unique at the venue."""

    client_order_id: str
    fill: Fill

    def __init__(self, client_order_id: str, fill: Fill) -> None:
        self.client_order_id, self.fill = client_order_id, fill


@dataclass(slots=True, init=False)
class OrderRejected:
    """The venue refused the order (or its rest). ``retryable``: a new order may succeed
    (a transient refusal); False when the same order can never pass (below the lot step)."""

    client_order_id: str
    ts: int
    reason: str
    retryable: bool = True

    def __init__(self, client_order_id: str, ts: int, reason: str, retryable: bool = True) -> None:
        self.client_order_id, self.ts, self.reason, self.retryable = client_order_id, ts, reason, retryable


@dataclass(slots=True, init=False)
class OrderCancelled:
    client_order_id: str
    ts: int
    reason: str = ""

    def __init__(self, client_order_id: str, ts: int, reason: str = "") -> None:
        self.client_order_id, self.ts, self.reason = client_order_id, ts, reason


@dataclass(slots=True, init=False)
class OrderNotFound:
    """The answer to a lookup: the venue never saw this client order id."""

    client_order_id: str
    ts: int

    def __init__(self, client_order_id: str, ts: int) -> None:
        self.client_order_id, self.ts = client_order_id, ts


ExecutionEvent = OrderAccepted | OrderFilled | OrderRejected | OrderCancelled | OrderNotFound


class OrderTransitionError(ValueError):
    """An event that does not fit the order's state (a fill on a rejected order, ...)."""


def apply_event(order: Order, event: ExecutionEvent) -> bool:
    """Move ``order`` by one event; True when its state changed. Duplicates change nothing."""
    st = order.status
    if isinstance(event, OrderAccepted):
        if st in (OrderStatus.NEW, OrderStatus.UNKNOWN):
            order.status = OrderStatus.ACCEPTED
            order.updated_ts = event.ts
            return True
        return False
    if isinstance(event, OrderFilled):
        f = event.fill
        if st in (OrderStatus.FILLED, OrderStatus.CANCELLED) and order.remaining <= 0.0:
            raise OrderTransitionError(f"{order.client_order_id}: fill {f.fill_id} on a {st} order")
        total = order.filled_qty + f.qty
        # the first fill's price as it is (q·p/q can be off by an ulp)
        order.avg_price = f.price if order.filled_qty == 0.0 else (order.avg_price * order.filled_qty + f.price * f.qty) / total
        order.filled_qty = total
        order.fees += f.fee
        # a rounding hair short of the requested quantity is a full fill
        full = total >= order.qty * (1.0 - 1e-9)
        order.status = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
        order.updated_ts = f.ts
        return True
    if isinstance(event, OrderRejected | OrderCancelled | OrderNotFound):
        if st in TERMINAL:
            return False
        if isinstance(event, OrderCancelled):
            order.status = OrderStatus.CANCELLED
            order.message = event.reason or "cancelled"
        elif isinstance(event, OrderRejected):
            order.status = OrderStatus.REJECTED
            order.message = event.reason
        else:
            order.status = OrderStatus.REJECTED
            order.message = "not found at the venue"
        order.updated_ts = event.ts
        return True
    raise OrderTransitionError(f"unknown execution event {event!r}")
