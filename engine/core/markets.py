"""Exchange market rules: amount and price steps, minimum and maximum quantity and notional,
and the percent-price band.

Owns ``MarketRules``, the built-in defaults for the pairs we know (Binance spot), loading
rules from ccxt's ``load_markets()`` output or a JSON file of it, and the operations every
order boundary needs: flooring a quantity to the amount step without float drift
(``round_qty_down``), saying why an order would be refused (``check_order``, ``check_max``)
and the limit prices the exchange accepts around a reference price (``price_band``,
``check_limit_price``). The live client fills every field from the exchange's filters
(``engine.execution.binance_rules.rules_from_markets``); the built-in defaults have no maximum
and no band.
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
from typing import Any, Final

logger = logging.getLogger(__name__)

# ccxt precision modes (ccxt.DECIMAL_PLACES, ccxt.TICK_SIZE); copied so engine code has no ccxt import.
DECIMAL_PLACES: Final = 2
TICK_SIZE: Final = 4


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What the exchange accepts for one symbol, as it applies to the MARKET orders the core
    sends (entries and exits); 0 in an optional field means no such bound.

    Binance's filters (spot ``/api/v3/exchangeInfo``; USDT-M futures ``/fapi/v1/exchangeInfo``):

    - ``amount_step`` / ``min_qty`` / ``max_qty``: LOT_SIZE bounds every order's quantity
      (``quantity >= minQty``, ``<= maxQty``, a multiple of ``stepSize``); MARKET_LOT_SIZE bounds
      MARKET orders only, on top of LOT_SIZE. For a MARKET order the tighter of the two holds:
      the coarser step, the larger minimum, the smaller maximum.
    - ``price_step``: PRICE_FILTER ``tickSize``, for an order's ``price`` / ``stopPrice`` (a MARKET
      order has neither).
    - ``min_notional`` / ``max_notional``: NOTIONAL bounds ``price x quantity`` of every order
      with a price; for a MARKET order (no price; Binance uses the average price over
      ``avgPriceMins``, the last price when 0) only when ``applyMinToMarket`` /
      ``applyMaxToMarket`` say so, and these fields hold that MARKET view (0 when the flag is
      off). The older MIN_NOTIONAL (``applyToMarket``) and the futures MIN_NOTIONAL
      (``notional``) fill ``min_notional`` alike.
    - ``bid_up`` / ``bid_down`` / ``ask_up`` / ``ask_down``: PERCENT_PRICE_BY_SIDE bounds the
      ``price`` of an order that has one (LIMIT, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT, LIMIT_MAKER;
      never a MARKET order): a BUY within ``[ref x bid_down, ref x bid_up]``, a SELL within
      ``[ref x ask_down, ref x ask_up]``, ``ref`` the weighted average price over
      ``avgPriceMins`` (the last price when 0). Futures' PERCENT_PRICE (``multiplierUp`` /
      ``multiplierDown``, against the mark price) fills both sides. See ``price_band``.
    """

    amount_step: float  # quantity must be a multiple of this
    price_step: float  # price tick
    min_qty: float
    min_notional: float  # quote currency (USDT)
    max_qty: float = 0.0  # LOT_SIZE / MARKET_LOT_SIZE maxQty, the smaller; 0: none
    max_notional: float = 0.0  # NOTIONAL maxNotional when applyMaxToMarket; 0: none
    bid_up: float = 0.0  # PERCENT_PRICE_BY_SIDE multipliers; 0: no band on that side
    bid_down: float = 0.0
    ask_up: float = 0.0
    ask_down: float = 0.0


# Binance spot filters (LOT_SIZE stepSize, PRICE_FILTER tickSize, NOTIONAL minNotional).
DEFAULT_RULES: dict[str, MarketRules] = {
    "BTC/USDT": MarketRules(0.00001, 0.01, 0.00001, 5.0),
    "ETH/USDT": MarketRules(0.0001, 0.01, 0.0001, 5.0),
    "SOL/USDT": MarketRules(0.001, 0.01, 0.001, 5.0),
}
FALLBACK_RULES: Final = MarketRules(amount_step=1e-6, price_step=1e-8, min_qty=1e-6, min_notional=5.0)


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


_MAX_DIGITS: Final = 10**15  # a decimal of at most 15 significant digits is its double's repr
_MAX_QUOTIENT: Final = 1e15  # (a float: x / step beyond it is decided in Decimal)
# a float quotient this close (relative) to a whole number is decided in Decimal: 3,000 times
# the float quotient's worst error (3.4e-16: x's and step's reprs, the division's rounding)
_NEAR: Final = 1e-12
_STEPS: dict[float, tuple[int, int, float]] = {}  # step -> (m, k, 10**k): repr(step) == m x 10**-k
_NO_PARTS: Final = (0, -1, 1.0)  # a step no float arithmetic is exact for


def _step_parts(step: float) -> tuple[int, int, float]:
    """``step``'s decimal (its repr) as ``m x 10**-k``, with ``10**k`` as an exact float;
    ``k`` is -1 when no float arithmetic is exact for it (the Decimal path decides)."""
    if not math.isfinite(step):
        return _NO_PARTS  # (not kept: a NaN key is never found again)
    hit = _STEPS.get(step)
    if hit is None:
        _sign, digits, exp = _dec(step).as_tuple()
        k = -int(exp)
        m = int("".join(map(str, digits)))
        hit = _STEPS[step] = (m, k, float(10**k)) if 0 <= k <= 22 and m < _MAX_DIGITS else _NO_PARTS
    return hit


def _nearest(q: float) -> int:
    """A whole number nearest ``q`` (of a half, either one: both callers ask only whether ``q``
    is, or lies within a hair of, a whole number, and then it is that one). ``round`` is the
    builtin's call; this is compiled."""
    return math.floor(q + 0.5)


def _to_step(x: float, step: float, rounding: str) -> float:
    """``x`` floored (``ROUND_FLOOR``) or ceiled (``ROUND_CEILING``) to a multiple of ``step``,
    in the decimals of their reprs: ``float(to_integral(dec(x) / dec(step)) * dec(step))``.

    Fast path, the same result: the float quotient is within 3.4e-16 (relative) of the decimal
    one, so when it is not within ``_NEAR`` of a whole number its floor (or ceiling) is the
    decimal one's, and ``n x m / 10**k`` of exact floats is the correctly rounded value of the
    decimal product (one IEEE division); ``x`` a multiple already is itself. Anything else
    takes the Decimal path (tests/test_markets.py holds the two equal)."""
    if step <= 0 or not math.isfinite(x):
        return x
    m, k, scale = _step_parts(step)
    q = x / step
    if k >= 0 and abs(q) < _MAX_QUOTIENT and x != 0.0 and rounding in (ROUND_FLOOR, ROUND_CEILING):
        r = _nearest(q)
        if abs(q - r) > _NEAR * (1.0 + abs(q)):
            n = math.floor(q) if rounding == ROUND_FLOOR else math.ceil(q)
            if n != 0 and abs(n) * m < _MAX_DIGITS:  # (a zero keeps x's sign: the Decimal path)
                return (n * m) / scale
        elif _is_multiple(x, step):  # a multiple already: itself, as the Decimal path gives it
            return x
    return _to_step_exact(x, step, rounding)


def _to_step_exact(x: float, step: float, rounding: str) -> float:
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
    """``dec(x)`` is a whole multiple of ``dec(step)`` (their reprs' decimals).

    Fast path, the same answer: when ``dec(x) = n x step``, ``n`` is the float quotient
    rounded; and a decimal ``n x m x 10**-k`` of at most 15 significant digits is its
    double's repr, so it equals ``dec(x)`` exactly when its correctly rounded float is ``x``."""
    if step <= 0:
        return True
    m, k, scale = _step_parts(step)
    q = x / step
    if k >= 0 and abs(q) < _MAX_QUOTIENT:
        n = _nearest(q)
        if abs(n) * m < _MAX_DIGITS:
            return (n * m) / scale == x
    return _is_multiple_exact(x, step)


def _is_multiple_exact(x: float, step: float) -> bool:
    return (_dec(x) % _dec(step)) == 0


def check_max(qty: float, price: float, rules: MarketRules) -> str | None:
    """Why ``qty`` at about ``price`` is above the exchange's maximum quantity (LOT_SIZE /
    MARKET_LOT_SIZE maxQty) or notional (NOTIONAL maxNotional), or None."""
    if rules.max_qty > 0 and qty > rules.max_qty:
        return f"quantity {qty:.10g} above exchange maximum {rules.max_qty:.10g} (LOT_SIZE / MARKET_LOT_SIZE maxQty)"
    # exact decimals, as the exchange compares them (a float product may be an ulp above)
    if rules.max_notional > 0 and price > 0 and _dec(qty) * _dec(price) > _dec(rules.max_notional):
        notional = qty * price
        return f"notional ${notional:,.2f} above exchange maximum ${rules.max_notional:,.2f} (NOTIONAL maxNotional)"
    return None


def check_order(
    qty: float, price: float, rules: MarketRules, side: str | None = None, ref_price: float = 0.0
) -> str | None:
    """Why the exchange would refuse this order, or None when it is acceptable.

    ``price`` is what the notional is counted at: the current quote for a MARKET order (Binance
    counts it at its average price), the limit price for an order that has one. The
    percent-price band is checked only when ``side`` and ``ref_price`` are given, i.e. for an
    order with a limit price (``check_limit_price``); a MARKET order leaves them out."""
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
    too_big = check_max(qty, price, rules)
    if too_big is not None:
        return too_big
    if side is not None and ref_price > 0:
        return check_limit_price(price, side, ref_price, rules)
    return None


def _band(rules: MarketRules, side: str) -> tuple[float, float]:
    if str(side).lower() == "buy":
        return rules.bid_down, rules.bid_up
    if str(side).lower() == "sell":
        return rules.ask_down, rules.ask_up
    raise ValueError(f"side {side!r} must be buy or sell")


def price_band(rules: MarketRules, side: str, ref_price: float) -> tuple[float, float] | None:
    """The limit prices PERCENT_PRICE_BY_SIDE (futures: PERCENT_PRICE) accepts for a ``side``
    ("buy" / "sell") order around ``ref_price``: ``(ref x down, ref x up)``, or None when the
    symbol has no band on that side or there is no reference price.

    Binance's reference is the weighted average price over the filter's ``avgPriceMins`` (spot)
    or the mark price (futures); the caller passes its best estimate (the current quote). The
    band bounds an order's limit ``price`` only: a stop-limit SELL protecting a long must have
    its limit price within ``[ref x ask_down, ref x ask_up]``; a MARKET order has no price."""
    down, up = _band(rules, side)
    if not (up > 0 and math.isfinite(ref_price) and ref_price > 0):
        return None
    return ref_price * down, ref_price * up


def check_limit_price(price: float, side: str, ref_price: float, rules: MarketRules) -> str | None:
    """Why the exchange would refuse a ``side`` order with limit ``price`` given the reference
    price ``ref_price`` (outside the percent-price band, see ``price_band``), or None."""
    if not (math.isfinite(price) and price > 0):
        return f"limit price {price!r} must be a positive number"
    band = price_band(rules, side, ref_price)
    if band is None:
        return None
    lo, hi = band
    down, up = _band(rules, side)
    if lo <= price <= hi:
        return None
    where = "below" if price < lo else "above"
    return (f"{str(side).lower()} limit price {price:.10g} {where} the exchange's band "
            f"[{lo:.10g}, {hi:.10g}] (x{down:g}..x{up:g} of reference {ref_price:.10g}; PERCENT_PRICE_BY_SIDE)")


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
