"""Paper execution: fills an order at the touch plus slippage, with the taker fee.

Owns ``PaperBroker``. Buys fill at ``ask * (1 + slippage)`` rounded up to the price tick,
sells at ``bid * (1 - slippage)`` rounded down (always against us); the quantity is floored
to the amount step; ``fee = qty * price * taker_fee``. Precision is applied here, at the
order boundary, and nowhere else. The fill id derives from the client order id and a
repeated order id returns the first fill, so executing one decision twice books it once.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping

from engine.markets import MarketRules, round_price, round_qty_down, rules_for
from engine.models import Fill, Side

logger = logging.getLogger(__name__)

REMEMBERED_ORDERS = 10_000  # idempotency window; older order ids live in the store


class BrokerError(Exception):
    """An order the broker refuses; the message is one line naming the symbol and why."""


def fill_id_for(order_id: str) -> str:
    return f"{order_id}/F1"  # one order fills once (market order, paper)


class PaperBroker:
    """Simulated taker fills against the latest bid/ask."""

    def __init__(self, taker_fee: float, slippage_bps: float, rules: Mapping[str, MarketRules]) -> None:
        if not (0 <= taker_fee < 1) or not (0 <= slippage_bps < 10_000):
            raise ValueError(f"taker_fee {taker_fee!r} or slippage_bps {slippage_bps!r} out of range")
        self.taker_fee = taker_fee
        self.slippage = slippage_bps / 10_000.0
        self.rules = dict(rules)
        self._fills: OrderedDict[str, Fill] = OrderedDict()

    def fill_price(self, symbol: str, side: Side, bid: float, ask: float) -> float:
        rules = rules_for(symbol, self.rules)
        if side is Side.BUY:
            return round_price(ask * (1.0 + self.slippage), rules, up=True)
        return round_price(bid * (1.0 - self.slippage), rules, up=False)

    def execute(
        self,
        order_id: str,
        symbol: str,
        side: Side,
        qty: float,
        bid: float,
        ask: float,
        ts: int,
        reason: str = "signal",
    ) -> Fill:
        """Fill a market order now; the same ``order_id`` always returns the same fill."""
        done = self._fills.get(order_id)
        if done is not None:
            return done
        side = Side(side)
        if not (math.isfinite(bid) and math.isfinite(ask) and 0 < bid <= ask):
            raise BrokerError(f"{symbol}: cannot fill {order_id}: bid {bid!r} / ask {ask!r} are not a valid quote")
        rules = rules_for(symbol, self.rules)
        units = round_qty_down(qty, rules)
        if units <= 0:
            raise BrokerError(
                f"{symbol}: cannot fill {order_id}: quantity {qty!r} rounds to 0 at step {rules.amount_step:g}"
            )
        price = self.fill_price(symbol, side, bid, ask)
        if price <= 0:
            raise BrokerError(f"{symbol}: cannot fill {order_id}: price {price!r} after slippage")
        fill = Fill(
            fill_id=fill_id_for(order_id),
            order_id=order_id,
            symbol=symbol,
            side=side,
            qty=units,
            price=price,
            fee=units * price * self.taker_fee,
            ts=ts,
            reason=reason,
        )
        self._fills[order_id] = fill
        if len(self._fills) > REMEMBERED_ORDERS:
            self._fills.popitem(last=False)
        logger.info("%s - Filled %s %.8g @ %.8g (fee %.4f, %s)", symbol, side.value, units, price, fill.fee, reason)
        return fill
