"""Paper execution: market orders filled at the touch plus slippage, with the taker fee.

Owns ``PaperExecutionClient``, the first ``ExecutionClient`` of the trading core. Buys fill at
``ask * (1 + slippage)`` rounded up to the price tick, sells at ``bid * (1 - slippage)`` rounded
down (always against us); the quantity is floored to the amount step; ``fee = qty * price *
taker_fee``. Precision is applied here, at the order boundary. It answers within ``submit``
(the same loop turn): ``OrderAccepted`` then ``OrderFilled``, or ``OrderRejected`` (not
retryable when the quantity rounds to 0 at the lot step). The fill id derives from the client
order id, and it remembers what it filled, so a repeated or looked-up order answers with the
same fill: the journal books it once.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

from engine.core.markets import MarketRules, round_price, round_qty_down, rules_for
from engine.core.models import Fill, Side
from engine.core.orders import (
    ExecutionEvent,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderNotFound,
    OrderRejected,
)
from engine.core.ports import Clock

log = logging.getLogger(__name__)

REMEMBERED_ORDERS: Final = 10_000  # what the "venue" remembers; older ids live in the journal


class PaperRejection(Exception):
    """An order the paper venue refuses; one line naming the symbol and why."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def fill_id_for(order_id: str) -> str:
    return f"{order_id}/F1"  # a paper market order fills once, whole


class PaperExecutionClient:
    """Simulated taker fills against the core's latest bid/ask. Nothing rests at this venue:
    the core watches stops on its own ticks (``rests_stops`` False)."""

    rests_stops = False

    def __init__(self, taker_fee: float, slippage_bps: float, rules: Mapping[str, MarketRules], clock: Clock) -> None:
        if not (0 <= taker_fee < 1) or not (0 <= slippage_bps < 10_000):
            raise ValueError(f"taker_fee {taker_fee!r} or slippage_bps {slippage_bps!r} out of range")
        self.taker_fee = taker_fee
        self.slippage = slippage_bps / 10_000.0
        self.rules = dict(rules)
        self.clock = clock
        self._fills: OrderedDict[str, Fill] = OrderedDict()
        self._listener: Callable[[ExecutionEvent], None] | None = None

    # ---- the ExecutionClient port -------------------------------------------------------

    def bind(self, listener: Callable[[ExecutionEvent], None]) -> None:
        self._listener = listener

    def submit(self, order: Order, bid: float, ask: float) -> None:
        emit = self._emit
        ts = self.clock.time_ms()
        try:
            fill = self.fill(order.client_order_id, order.symbol, order.side, order.qty, bid, ask, ts, order.reason)
        except PaperRejection as exc:
            emit(OrderRejected(order.client_order_id, ts, str(exc), exc.retryable))
            return
        emit(OrderAccepted(order.client_order_id, ts))
        emit(OrderFilled(order.client_order_id, fill))

    def lookup(self, order: Order) -> None:
        fill = self._fills.get(order.client_order_id)
        ts = self.clock.time_ms()
        if fill is None:
            self._emit(OrderNotFound(order.client_order_id, ts))
            return
        self._emit(OrderAccepted(order.client_order_id, ts))
        self._emit(OrderFilled(order.client_order_id, fill))

    def cancel(self, order: Order) -> None:
        """Nothing rests here: what was filled says so, anything else is cancelled."""
        if order.client_order_id in self._fills:
            self.lookup(order)
            return
        self._emit(OrderCancelled(order.client_order_id, self.clock.time_ms(), "cancelled"))

    def _emit(self, event: ExecutionEvent) -> None:
        if self._listener is None:
            raise RuntimeError("PaperExecutionClient.submit before bind()")
        self._listener(event)

    # ---- the fill rules -----------------------------------------------------------------

    def fill_price(self, symbol: str, side: Side, bid: float, ask: float) -> float:
        rules = rules_for(symbol, self.rules)
        if side is Side.BUY:
            return round_price(ask * (1.0 + self.slippage), rules, up=True)
        return round_price(bid * (1.0 - self.slippage), rules, up=False)

    def fill(
        self, order_id: str, symbol: str, side: Side, qty: float, bid: float, ask: float, ts: int, reason: str = "signal"
    ) -> Fill:
        """Fill a market order now; the same ``order_id`` always returns the same fill."""
        done = self._fills.get(order_id)
        if done is not None:
            return done
        side = side if isinstance(side, Side) else Side(side)  # (the enum's call is Python)
        if not (math.isfinite(bid) and math.isfinite(ask) and 0 < bid <= ask):
            raise PaperRejection(f"{symbol}: cannot fill {order_id}: bid {bid!r} / ask {ask!r} are not a valid quote", True)
        rules = rules_for(symbol, self.rules)
        units = round_qty_down(qty, rules)
        if units <= 0:
            raise PaperRejection(
                f"{symbol}: cannot fill {order_id}: quantity {qty!r} rounds to 0 at step {rules.amount_step:g}", False
            )
        price = self.fill_price(symbol, side, bid, ask)
        if price <= 0:
            raise PaperRejection(f"{symbol}: cannot fill {order_id}: price {price!r} after slippage", True)
        fill = Fill(fill_id_for(order_id), order_id, symbol, side, units, price, units * price * self.taker_fee, ts, reason)
        self._fills[order_id] = fill
        if len(self._fills) > REMEMBERED_ORDERS:
            self._fills.popitem(last=False)
        return fill
