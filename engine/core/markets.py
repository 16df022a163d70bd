"""Exchange market rules: amount and price steps, minimum quantity and minimum notional.

Owns ``MarketRules``, the built-in defaults for the pairs we know (Binance spot), loading
rules from ccxt's ``load_markets()`` output or a JSON file of it, and the two operations
every order boundary needs: flooring a quantity to the amount step without float drift
(``round_qty_down``) and saying why an order would be refused (``check_order``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# ccxt precision modes (ccxt.DECIMAL_PLACES, ccxt.TICK_SIZE); copied so engine code has no ccxt import.
DECIMAL_PLACES = 2
TICK_SIZE = 4


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What the exchange accepts for one symbol."""

    amount_step: float  # quantity must be a multiple of this
    price_step: float  # price tick
    min_qty: float
    min_notional: float  # quote currency (USDT)


# Binance spot filters (LOT_SIZE stepSize, PRICE_FILTER tickSize, NOTIONAL minNotional).
DEFAULT_RULES: dict[str, MarketRules] = {
    "BTC/USDT": MarketRules(0.00001, 0.01, 0.00001, 5.0),
    "ETH/USDT": MarketRules(0.0001, 0.01, 0.0001, 5.0),
    "SOL/USDT": MarketRules(0.001, 0.01, 0.001, 5.0),
}
FALLBACK_RULES = MarketRules(amount_step=1e-6, price_step=1e-8, min_qty=1e-6, min_notional=5.0)


class MarketRulesError(ValueError):
    """A markets file or map that cannot be turned into rules."""


def rules_for(symbol: str, rules: Mapping[str, MarketRules] | None = None) -> MarketRules:
    """Rules for one symbol: the loaded ones, else the built-in default, else the fallback."""
    if rules is not None and symbol in rules:
        return rules[symbol]
    return DEFAULT_RULES.get(symbol, FALLBACK_RULES)


def default_rules(symbol: str) -> MarketRules:
    """Built-in rules of one symbol (Binance spot for the pairs we know, else the fallback)."""
    return DEFAULT_RULES.get(symbol, FALLBACK_RULES)


def _dec(x: float) -> Decimal:
    # repr is the shortest string that round-trips, so 0.1 stays 0.1 and not 0.1000000000000000055
    return Decimal(repr(float(x)))


def _to_step(x: float, step: float, rounding: str) -> float:
    if step <= 0 or not math.isfinite(x):
        return x
    s = _dec(step)
    try:
        n = (_dec(x) / s).to_integral_value(rounding=rounding)
    except InvalidOperation:
        return x
    return float(n * s)


def round_qty_down(qty: float, rules: MarketRules) -> float:
    """Floor ``qty`` to a multiple of the amount step, exactly (0.3 / 0.1 is 3 steps, not 2)."""
    if qty <= 0:
        return 0.0
    return _to_step(qty, rules.amount_step, ROUND_FLOOR)


def round_price(price: float, rules: MarketRules, up: bool) -> float:
    """Round a price to the tick, up (a buy pays more) or down (a sell receives less)."""
    return _to_step(price, rules.price_step, ROUND_CEILING if up else ROUND_FLOOR)


def _is_multiple(x: float, step: float) -> bool:
    if step <= 0:
        return True
    return (_dec(x) % _dec(step)) == 0


def check_order(qty: float, price: float, rules: MarketRules) -> str | None:
    """Why the exchange would refuse this order, or None when it is acceptable."""
    if not (math.isfinite(qty) and qty > 0):
        return f"quantity {qty!r} must be a positive number"
    if not (math.isfinite(price) and price > 0):
        return f"price {price!r} must be a positive number"
    if qty < rules.min_qty:
        return f"quantity {qty:.8g} below exchange minimum {rules.min_qty:.8g}"
    if not _is_multiple(qty, rules.amount_step):
        return f"quantity {qty:.10g} is not a multiple of the amount step {rules.amount_step:.8g}"
    notional = qty * price
    if notional < rules.min_notional:
        return f"notional ${notional:.2f} below exchange minimum ${rules.min_notional:.2f}"
    return None


def _step(value: Any, mode: int) -> float | None:
    if value is None:
        return None
    v = float(value)
    if mode == DECIMAL_PLACES:
        return 10.0 ** (-int(v))
    return v


def _one_market(symbol: str, m: Mapping[str, Any], mode: int) -> MarketRules:
    base = rules_for(symbol)
    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    amount_step = _step(precision.get("amount"), mode) or base.amount_step
    price_step = _step(precision.get("price"), mode) or base.price_step
    min_qty = (limits.get("amount") or {}).get("min")
    min_notional = (limits.get("cost") or {}).get("min")
    rules = MarketRules(
        amount_step=amount_step,
        price_step=price_step,
        min_qty=float(min_qty) if min_qty is not None else amount_step,
        min_notional=float(min_notional) if min_notional is not None else base.min_notional,
    )
    for name in ("amount_step", "price_step"):
        value = getattr(rules, name)
        if not (math.isfinite(value) and value > 0):
            raise MarketRulesError(f"markets: {symbol}: {name} {value!r} must be a positive number")
    return rules


def load_rules(
    markets: Mapping[str, Any] | str | os.PathLike[str],
    precision_mode: int = TICK_SIZE,
    symbols: Iterable[str] | None = None,
) -> dict[str, MarketRules]:
    """Rules from ccxt ``load_markets()`` (a dict keyed by symbol) or a JSON file holding one.

    ``precision_mode`` is ccxt's ``exchange.precisionMode``: Binance reports steps
    (TICK_SIZE); DECIMAL_PLACES exchanges report digits. ``symbols`` limits the result.
    """
    if isinstance(markets, str | os.PathLike):
        path = Path(markets)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MarketRulesError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise MarketRulesError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise MarketRulesError(f"{path}: expected a JSON object keyed by symbol")
        markets = data
    wanted = set(symbols) if symbols is not None else None
    out: dict[str, MarketRules] = {}
    for symbol, m in markets.items():
        if wanted is not None and symbol not in wanted:
            continue
        if not isinstance(m, Mapping):
            raise MarketRulesError(f"markets: {symbol}: expected an object, got {type(m).__name__}")
        try:
            out[symbol] = _one_market(symbol, m, precision_mode)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MarketRulesError):
                raise
            raise MarketRulesError(f"markets: {symbol}: {exc}") from None
    return out
