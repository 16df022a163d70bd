"""A venue trade as the book needs it: one ``Fill``, its fee in the quote currency.

Owns ``FeePrices`` (the last known price of each fee asset in the quote currency) and
``fill_from_trade`` (a ccxt trade -> ``Fill`` with a fill id unique at the venue,
``binance:<market id>:<trade id>``).

Fees are charged in the asset Binance chooses (``commissionAsset``); the book counts them in
the quote currency:

- quote asset (USDT): as they are;
- base asset (a buy's fee on a normal account): × the fill price;
- another asset (BNB with the discount on): × its last known price in the quote currency; when
  no price is known the fee is booked as 0, the log says so and ``unpriced`` counts it.

A buy whose fee is taken in the base asset receives less base than it bought: 0.01 BTC bought
with a 0.00001 BTC fee leaves 0.00999 BTC in the account. The ``Fill`` carries what the account
really received (``qty`` = 0.00999) and the fee's quote value (``fee`` = 0.00001 × price), so the
book's cash moves by exactly what the exchange charged (0.00999 × p + 0.00001 × p = 0.01 × p)
and its position is what the exchange holds: the exit sells 0.00999, not 0.01 (which Binance
would refuse as -2010 insufficient balance). The order therefore ends a hair short of its
quantity; the client closes it with ``OrderCancelled`` ("filled; ... kept as the fee") once the
venue says it is FILLED and every trade is booked (see ``live_orders``). A sell's fee is
charged in the quote asset; one charged in the base asset (not seen on Binance spot) keeps the
sold quantity and books the fee's quote value, with a warning.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.core.models import Fill, Side

log = logging.getLogger("engine.live")


def fill_id(market: Mapping[str, Any], trade_id: object) -> str:
    """``binance:<market id>:<trade id>`` (spot), ``binance-usdm:...`` (USDT-M: its own ids)."""
    venue = "binance-usdm" if market.get("linear") else "binance"
    return f"{venue}:{market.get('id') or ''}:{trade_id}"


@dataclass(slots=True)
class FeePrices:
    """Last prices of fee assets in the quote currency (``("BNB", "USDT") -> 580.0``)."""

    prices: dict[tuple[str, str], float] = field(default_factory=dict)
    unpriced: int = 0  # fees booked as 0 because their asset had no known price
    missing: set[tuple[str, str]] = field(default_factory=set)  # (asset, quote) to fetch a price for

    def set(self, asset: str, quote: str, price: float) -> None:
        if math.isfinite(price) and price > 0:
            self.prices[(asset, quote)] = price

    def get(self, asset: str, quote: str) -> float | None:
        return self.prices.get((asset, quote))


@dataclass(frozen=True, slots=True)
class TradeFill:
    fill: Fill
    gross: float  # the trade's quantity at the venue (counts toward the order's filled amount)
    fee_asset: str
    fee_amount: float
    note: str = ""  # a warning about the fee, for the log


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def fill_from_trade(
    trade: Mapping[str, Any],
    *,
    market: Mapping[str, Any],
    client_order_id: str,
    side: Side,
    reason: str,
    fee_prices: FeePrices,
    default_ts: int | None = None,
    symbol: str = "",
) -> TradeFill:
    """One ccxt trade (from a create response's ``trades``, ``watch_my_trades`` or
    ``fetch_order_trades``) as a ``Fill``. Raises ``ValueError`` on a trade without an id,
    a quantity or a price (it cannot be booked; the next poll fetches it again)."""
    tid = trade.get("id")
    gross = _num(trade.get("amount"))
    price = _num(trade.get("price"))
    if tid in (None, "", "-1", -1) or not (gross > 0 and price > 0):
        raise ValueError(f"trade without id, amount or price: id={tid!r} amount={gross!r} price={price!r}")
    base, quote = str(market.get("base") or ""), str(market.get("quote") or "")
    symbol = symbol or str(market.get("symbol") or "")  # the core's symbol (a futures market's is BTC/USDT:USDT)
    fee = trade.get("fee") or {}
    fee_asset = str(fee.get("currency") or "")
    fee_amount = max(_num(fee.get("cost")), 0.0)
    qty, fee_quote, note = gross, 0.0, ""
    if fee_amount == 0.0 or not fee_asset:
        fee_quote = 0.0
    elif fee_asset == quote:
        fee_quote = fee_amount
    elif fee_asset == base:
        fee_quote = fee_amount * price
        if side is Side.BUY:
            qty = gross - fee_amount  # the account received this much base
            if qty <= 0:
                raise ValueError(f"trade {tid}: fee {fee_amount!r} {fee_asset} not below the quantity {gross!r}")
        else:
            note = f"a sell's fee charged in {base} ({fee_amount:g}): booked at its {quote} value"
    else:
        p = fee_prices.get(fee_asset, quote)
        if p is None:
            fee_prices.unpriced += 1
            fee_prices.missing.add((fee_asset, quote))
            note = f"fee {fee_amount:g} {fee_asset} has no known {quote} price: booked as 0 {quote}"
        else:
            fee_quote = fee_amount * p
    ts = trade.get("timestamp")
    if not isinstance(ts, int) or ts <= 0:
        ts = default_ts if default_ts else int(time.time() * 1000)
    f = Fill(
        fill_id(market, tid), client_order_id, symbol,
        side, qty, price, fee_quote, ts, reason,
    )
    return TradeFill(f, gross, fee_asset, fee_amount, note)
