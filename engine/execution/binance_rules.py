"""The order boundary from Binance's loaded markets (not built-in defaults).

Owns ``rules_from_markets``: ccxt ``load_markets()`` -> ``engine.core.markets.MarketRules`` per
symbol, for the MARKET orders the core sends. The core's risk pipeline sizes entries within them
(a size above a maximum is capped, one that fails a minimum is refused as a decision) and the
live client refuses an order above a maximum before sending it.

Read from each market's raw exchangeInfo filters (``market['info']['filters']``) when present:

- amount step: LOT_SIZE ``stepSize`` (MARKET_LOT_SIZE ``stepSize`` when it is coarser);
- min quantity: the larger of LOT_SIZE and MARKET_LOT_SIZE ``minQty``;
- max quantity: the smaller of LOT_SIZE and MARKET_LOT_SIZE ``maxQty`` (a MARKET order must
  pass both);
- price step: PRICE_FILTER ``tickSize``;
- min notional: NOTIONAL ``minNotional`` when ``applyMinToMarket`` (spot), MIN_NOTIONAL
  ``minNotional`` when ``applyToMarket`` (older spot), MIN_NOTIONAL ``notional`` (USDT-M futures);
  0 when the filter does not apply to market orders;
- max notional: NOTIONAL ``maxNotional`` when ``applyMaxToMarket``, else 0;
- percent-price band: PERCENT_PRICE_BY_SIDE ``bid/askMultiplierUp/Down`` (spot); futures'
  PERCENT_PRICE ``multiplierUp/Down`` fills both sides.

A market without filters falls back to ccxt's unified ``precision`` / ``limits``
(``engine.core.markets.load_rules``), with no maximum and no band.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.markets import TICK_SIZE, MarketRules, MarketRulesError, load_rules


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
    maxes = [v for v in (_f(lot.get("maxQty")), _f(mlot.get("maxQty"))) if v]
    nf = fl.get("NOTIONAL", {})
    max_notional = _f(nf.get("maxNotional")) if nf.get("applyMaxToMarket", False) else 0.0
    pp = fl.get("PERCENT_PRICE_BY_SIDE")
    if pp is not None:
        band = (_f(pp.get("bidMultiplierUp")), _f(pp.get("bidMultiplierDown")),
                _f(pp.get("askMultiplierUp")), _f(pp.get("askMultiplierDown")))  # fmt: skip
    elif "PERCENT_PRICE" in fl:
        p = fl["PERCENT_PRICE"]
        up, down = _f(p.get("multiplierUp")), _f(p.get("multiplierDown"))
        band = (up, down, up, down)
    else:
        band = (0.0, 0.0, 0.0, 0.0)
    return MarketRules(amount_step=step, price_step=tick, min_qty=min_qty, min_notional=min_notional,
                       max_qty=min(maxes) if maxes else 0.0, max_notional=max_notional,
                       bid_up=band[0], bid_down=band[1], ask_up=band[2], ask_down=band[3])  # fmt: skip


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
