"""The order boundary from Binance's loaded markets (not built-in defaults).

Owns ``rules_from_markets`` (ccxt ``load_markets()`` -> ``engine.core.markets.MarketRules`` per
symbol, for the MARKET orders the core sends) and ``MarketLimits`` (what ``MarketRules`` cannot
hold: maximum quantity and notional, and PERCENT_PRICE_BY_SIDE), with ``check_limits``.

Read from each market's raw exchangeInfo filters (``market['info']['filters']``) when present:

- amount step: LOT_SIZE ``stepSize`` (MARKET_LOT_SIZE ``stepSize`` when it is coarser);
- min quantity: the larger of LOT_SIZE and MARKET_LOT_SIZE ``minQty``;
- price step: PRICE_FILTER ``tickSize``;
- min notional: NOTIONAL ``minNotional`` when ``applyMinToMarket`` (spot), MIN_NOTIONAL
  ``minNotional`` when ``applyToMarket`` (older spot), MIN_NOTIONAL ``notional`` (USDT-M futures);
  0 when the filter does not apply to market orders.

A market without filters falls back to ccxt's unified ``precision`` / ``limits``
(``engine.core.markets.load_rules``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.markets import TICK_SIZE, MarketRules, MarketRulesError, load_rules


@dataclass(frozen=True, slots=True)
class MarketLimits:
    """Exchange bounds ``MarketRules`` has no field for (0 = none)."""

    max_qty: float = 0.0  # LOT_SIZE / MARKET_LOT_SIZE maxQty, the smaller
    max_notional: float = 0.0  # NOTIONAL maxNotional when applyMaxToMarket
    # PERCENT_PRICE_BY_SIDE: a BUY's limit price within [avg*bid_down, avg*bid_up], a SELL's
    # within [avg*ask_down, avg*ask_up], avg over ``avg_price_mins`` (0 = no filter). Futures'
    # PERCENT_PRICE (multiplierUp/Down) fills both sides.
    bid_up: float = 0.0
    bid_down: float = 0.0
    ask_up: float = 0.0
    ask_down: float = 0.0
    avg_price_mins: int = 0

    def price_band(self, side: str, avg_price: float) -> tuple[float, float] | None:
        """The limit prices PERCENT_PRICE_BY_SIDE accepts for ``side`` around ``avg_price``."""
        up, down = (self.bid_up, self.bid_down) if side == "buy" else (self.ask_up, self.ask_down)
        if not (up > 0 and avg_price > 0):
            return None
        return avg_price * down, avg_price * up


def _f(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


def _filters(market: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    info = market.get("info") or {}
    out: dict[str, Mapping[str, Any]] = {}
    for flt in info.get("filters") or () if isinstance(info, Mapping) else ():
        if isinstance(flt, Mapping) and "filterType" in flt:
            out[str(flt["filterType"])] = flt
    return out


def _rules(symbol: str, fl: Mapping[str, Mapping[str, Any]], unified: MarketRules) -> MarketRules:
    lot, mlot = fl.get("LOT_SIZE", {}), fl.get("MARKET_LOT_SIZE", {})
    step = _f(lot.get("stepSize")) or unified.amount_step
    mstep = _f(mlot.get("stepSize"))
    if mstep > step:
        step = mstep
    min_qty = max(_f(lot.get("minQty")), _f(mlot.get("minQty"))) or unified.min_qty
    tick = _f(fl.get("PRICE_FILTER", {}).get("tickSize")) or unified.price_step
    min_notional = unified.min_notional
    if "NOTIONAL" in fl:
        n = fl["NOTIONAL"]
        min_notional = _f(n.get("minNotional")) if n.get("applyMinToMarket", True) else 0.0
    elif "MIN_NOTIONAL" in fl:
        n = fl["MIN_NOTIONAL"]
        value = n.get("minNotional", n.get("notional"))
        min_notional = _f(value) if n.get("applyToMarket", True) else 0.0
    if not (step > 0 and tick > 0):
        raise MarketRulesError(f"markets: {symbol}: no usable LOT_SIZE stepSize or PRICE_FILTER tickSize")
    return MarketRules(amount_step=step, price_step=tick, min_qty=min_qty, min_notional=min_notional)


def rules_from_markets(
    markets: Mapping[str, Mapping[str, Any]], symbols: Iterable[str] | None = None, precision_mode: int = TICK_SIZE
) -> dict[str, MarketRules]:
    """``MarketRules`` for each (wanted) symbol of ccxt's loaded ``markets``."""
    wanted = list(symbols) if symbols is not None else list(markets)
    missing = [s for s in wanted if s not in markets]
    if missing:
        raise MarketRulesError(f"markets: {', '.join(missing)} not listed by the exchange")
    unified = load_rules({s: markets[s] for s in wanted}, precision_mode)
    return {s: _rules(s, _filters(markets[s]), unified[s]) for s in wanted}


def limits_from_markets(
    markets: Mapping[str, Mapping[str, Any]], symbols: Iterable[str] | None = None
) -> dict[str, MarketLimits]:
    out: dict[str, MarketLimits] = {}
    for s in symbols if symbols is not None else markets:
        fl = _filters(markets[s])
        maxes = [v for v in (_f(fl.get("LOT_SIZE", {}).get("maxQty")), _f(fl.get("MARKET_LOT_SIZE", {}).get("maxQty"))) if v]
        n = fl.get("NOTIONAL", {})
        max_notional = _f(n.get("maxNotional")) if n.get("applyMaxToMarket", False) else 0.0
        pp = fl.get("PERCENT_PRICE_BY_SIDE")
        if pp is not None:
            band = (_f(pp.get("bidMultiplierUp")), _f(pp.get("bidMultiplierDown")),
                    _f(pp.get("askMultiplierUp")), _f(pp.get("askMultiplierDown")))  # fmt: skip
            mins = int(_f(pp.get("avgPriceMins")))
        elif "PERCENT_PRICE" in fl:
            p = fl["PERCENT_PRICE"]
            up, down = _f(p.get("multiplierUp")), _f(p.get("multiplierDown"))
            band, mins = (up, down, up, down), int(_f(p.get("avgPriceMins")))
        else:
            band, mins = (0.0, 0.0, 0.0, 0.0), 0
        out[s] = MarketLimits(min(maxes) if maxes else 0.0, max_notional, *band, avg_price_mins=mins)
    return out


def check_limits(qty: float, price: float, limits: MarketLimits | None) -> str | None:
    """Why a MARKET order of ``qty`` at about ``price`` breaks a bound ``MarketRules`` cannot
    express (maximum quantity or notional), or None."""
    if limits is None:
        return None
    if limits.max_qty and qty > limits.max_qty:
        return f"quantity {qty:.8g} above the exchange maximum {limits.max_qty:.8g} for a market order"
    if limits.max_notional and price > 0 and qty * price > limits.max_notional:
        return f"notional ${qty * price:,.2f} above the exchange maximum ${limits.max_notional:,.2f}"
    return None
