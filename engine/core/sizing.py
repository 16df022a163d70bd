"""Entry sizing: the risk pipeline's ``sizing`` check (engine/core/risk.py runs it seventh).

Owns ``size_entry`` and ``Sizing`` (what it found, for the decision). Units =
risk_per_trade_usd / (ATR x atr_multiplier), capped by the pair's max_position_size_usd (what
is already held counts), by cash for spot (with fee and slippage headroom), by leverage x equity
for futures and by the exchange's maximum quantity and notional for one MARKET order; floored
to the exchange's step, then checked against its minimums. The reason names the cap that set
the size, with its figures (written for that cap only: a format per cap was most of the check).
"""

from __future__ import annotations

import math
from typing import Final

from engine.core.config import PairConfig, PortfolioConfig
from engine.core.markets import MarketRules, check_max, check_order, round_qty_down
from engine.core.models import CheckResult

_CAP_RISK: Final = 0
_CAP_POSITION: Final = 1
_CAP_LEVERAGE: Final = 2
_CAP_CASH: Final = 3
_CAP_MAX_QTY: Final = 4
_CAP_MAX_NOTIONAL: Final = 5


class Sizing:
    """What the sizing check found, for the decision: units, the price sized at, the binding rule."""

    def __init__(self) -> None:
        self.qty = 0.0
        self.price = 0.0
        self.rule = ""  # risk | max_position | leverage | cash | exchange_max


def size_entry(
    pc: PortfolioConfig,
    rules: MarketRules,
    pair: PairConfig,
    price: float,
    atr: float | None,
    held: float,
    equity_now: float | None,
    cash_now: float | None,
    out: Sizing,
) -> CheckResult:
    """The ``sizing`` check of an entry at ``price`` on a pair holding ``held`` units (same
    direction); ``equity_now`` None: the configured capital; ``cash_now`` None: no cash cap."""
    name = "sizing"
    out.price = price if math.isfinite(price) and price > 0 else 0.0
    if out.price <= 0:
        return CheckResult(name, False, "no price to size against")
    if atr is None or not math.isfinite(atr) or atr <= 0:
        return CheckResult(name, False, "insufficient data for ATR: cannot size")
    k = pc.atr_multiplier
    by_risk = pc.risk_per_trade_usd / (atr * k)
    # every cap as (units, which); the reason is written for the one that binds
    caps: list[tuple[float, int]] = [(by_risk, _CAP_RISK)]
    held_notional = abs(held) * price  # same direction: entries only add to a position
    room = pair.max_position_size_usd - held_notional
    if room <= 0:
        return CheckResult(
            name, False, f"position ${held_notional:.2f} already at max size ${pair.max_position_size_usd:.2f}"
        )
    caps.append((room / price, _CAP_POSITION))
    equity = equity_now if equity_now is not None else pc.capital_usd
    cash = cash_now if cash_now is not None else 0.0
    if pair.market == "futures":
        lev_room = pair.leverage * equity - held_notional
        caps.append((max(lev_room, 0.0) / price, _CAP_LEVERAGE))
    elif cash_now is not None:
        # fee and slippage headroom so the buy never overdraws cash
        per_unit = price * (1.0 + pc.taker_fee + pc.slippage_bps / 10_000.0)
        caps.append((max(cash, 0.0) / per_unit, _CAP_CASH))
    # the exchange's maximum for one order caps the size like the others: a trader expects a
    # big signal to trade the most the exchange takes, not nothing. Counted at the entry's
    # price (its executable quote), as the live client counts it when it sends the order;
    # Binance counts a MARKET order's notional at its recent average price.
    if rules.max_qty > 0:
        caps.append((rules.max_qty, _CAP_MAX_QTY))
    if rules.max_notional > 0:
        caps.append((rules.max_notional / price, _CAP_MAX_NOTIONAL))
    units, which = caps[0]
    for cap in caps:  # the first of the smallest, as ``min`` picks it
        if cap[0] < units:
            units, which = cap
    if which == _CAP_RISK:
        rule, bound = "risk", f"risk ${pc.risk_per_trade_usd:g}/(ATR {atr:.6g}×{k:g})"
    elif which == _CAP_POSITION:
        rule, bound = "max_position", f"max size ${pair.max_position_size_usd:.2f}"
    elif which == _CAP_LEVERAGE:
        rule, bound = "leverage", f"leverage {pair.leverage}×equity ${equity:.2f}"
    elif which == _CAP_CASH:
        rule, bound = "cash", f"cash ${cash:.2f}"
    elif which == _CAP_MAX_QTY:
        rule, bound = "exchange_max", f"exchange max {rules.max_qty:.10g} units (LOT_SIZE / MARKET_LOT_SIZE maxQty)"
    else:
        rule, bound = "exchange_max", f"exchange max notional ${rules.max_notional:,.2f} (NOTIONAL maxNotional)"
    out.rule = rule
    qty = round_qty_down(units, rules)
    if rule == "exchange_max" and qty > 0 and check_max(qty, price, rules) is not None:
        qty = round_qty_down(qty - rules.amount_step, rules)  # the quotient rounded up in float
    problem = check_order(qty, price, rules) if qty > 0 else f"quantity rounds to 0 at step {rules.amount_step:g}"
    notional = qty * price
    if problem is not None:
        return CheckResult(name, False, f"size {qty:.10g} units (${notional:.2f}) set by {bound}: {problem}")
    out.qty = qty
    return CheckResult(name, True, f"{qty:.10g} units (${notional:.2f}) set by {bound}")
