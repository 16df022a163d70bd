"""The journal's rows: the SQL of the facts a trade writes, and the checked rows it binds.

Owns the statements and row builders ``Store`` (engine/journal/store.py) writes one fact at a
time and ``BacktestBook`` (engine/backtest/book.py) writes in bulk, so both books bind the very
same rows: a decision's, an order's (and its update), a fill's with the position and account
after it. The checks here are the ones the engine makes before it writes (a value not finite, a
side that is not buy or sell): each raises ``StoreError`` naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from engine.core.models import Decision, Fill, Position, Side
from engine.core.orders import Order, OrderStatus
from engine.journal.schema import StoreError


def finite(what: str, x: float) -> float:
    if type(x) is float and x - x == 0.0:  # a finite float (inf - inf and NaN are NaN): as is
        return x
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise StoreError(f"{what} must be a finite number, got {x!r}")
    return float(x)


def side_value(x: Side | str) -> str:
    if isinstance(x, Side):  # a member: its text (``Side(x)`` and ``.value`` run the enum's Python)
        return str(x)  # (a StrEnum's str is its value)
    try:
        return Side(x).value
    except ValueError:
        raise StoreError(f"side must be 'buy' or 'sell', got {x!r}") from None


ORDER_COLS = (
    "order_id, symbol, side, qty, reason, decision_key, ts, status, filled_qty, avg_price, "
    "fees, updated_ts, message, stop_loss, take_profit, order_type, trigger_price"
)

INSERT_DECISION = (
    "INSERT INTO decisions (key, symbol, ts, action, approved, qty, price, signal_type, "
    "confidence, entry, stop_loss, take_profit, reasoning, signal_ts, checks_json) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
INSERT_ORDER = (
    f"INSERT INTO orders ({ORDER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (order_id) DO NOTHING"
)
UPDATE_ORDER = (
    "UPDATE orders SET status = ?, filled_qty = ?, avg_price = ?, fees = ?, updated_ts = ?, "
    "message = ? WHERE order_id = ?"
)
INSERT_FILL = (
    "INSERT INTO fills (fill_id, order_id, symbol, side, qty, price, fee, ts, reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fill_id) DO NOTHING"
)
UPSERT_POSITION = (
    "INSERT INTO positions (symbol, qty, entry, stop_loss, take_profit, realised, "
    "fees, opened_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (symbol) DO UPDATE SET qty = excluded.qty, entry = excluded.entry, "
    "stop_loss = excluded.stop_loss, take_profit = excluded.take_profit, "
    "realised = excluded.realised, fees = excluded.fees, "
    "opened_ts = excluded.opened_ts, updated_ts = excluded.updated_ts"
)
UPDATE_ACCOUNT = "UPDATE account SET cash = ?, realised = ?, fees = ?, updated_ts = ? WHERE id = 1"


def checks_text(checks: list[list[Any]]) -> str:
    """A decision's checks as JSON text (``[[name, ok, reason], ...]``, compact, UTF-8):
    orjson, a fourteenth of ``json.dumps``'s time, which was most of a decision's row; the
    standard encoder (which escapes) for a text orjson refuses (a lone surrogate)."""
    try:
        return orjson.dumps(checks).decode()
    except orjson.JSONEncodeError:
        return json.dumps(checks, separators=(",", ":"))


def decision_row(d: Decision) -> tuple[Any, ...]:
    """The decisions table's row for ``d`` (``INSERT_DECISION``'s parameters)."""
    s = d.signal
    checks = checks_text([[c.name, bool(c.ok), c.reason] for c in d.checks])
    return (
        d.key, d.symbol, int(d.ts), d.action, int(bool(d.approved)), d.qty, d.price,
        str(s.type), s.confidence, s.entry, s.stop_loss, s.take_profit, s.reasoning,
        int(s.ts), checks,
    )  # fmt: skip


def status_value(x: OrderStatus | str) -> str:
    """The status's stored text (``OrderStatus(x).value``; a member as is)."""
    return str(x) if isinstance(x, OrderStatus) else OrderStatus(x).value  # (see side_value)


def order_row(o: Order) -> tuple[Any, ...]:
    """The orders table's new row for ``o`` (``INSERT_ORDER``'s parameters), checked."""
    return (
        o.client_order_id, o.symbol, side_value(o.side), finite("order qty", o.qty), o.reason, o.decision_key,
        int(o.created_ts), status_value(o.status), o.filled_qty, o.avg_price, o.fees,
        int(o.updated_ts or o.created_ts), o.message, finite("stop_loss", o.stop_loss),
        finite("take_profit", o.take_profit), o.order_type, finite("trigger", o.trigger),
    )  # fmt: skip


def order_update(o: Order) -> tuple[Any, ...]:
    """``UPDATE_ORDER``'s parameters: the order's new status, fill and message."""
    return (status_value(o.status), o.filled_qty, o.avg_price, o.fees, int(o.updated_ts), o.message[:1000],
            o.client_order_id)  # fmt: skip


def fill_facts(
    fill: Fill, order: Order, position: Position, account: Mapping[str, float]
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...] | None, tuple[Any, ...]]:
    """A fill's rows, checked: the fill (``INSERT_FILL``), its order's update
    (``UPDATE_ORDER``), the position after it (``UPSERT_POSITION``; None when flat) and
    the account after it (``UPDATE_ACCOUNT``)."""
    side = side_value(fill.side)
    qty = finite("fill qty", fill.qty)
    price = finite("fill price", fill.price)
    fee = finite("fill fee", fill.fee)
    if qty <= 0 or price <= 0:
        raise StoreError(f"fill {fill.fill_id}: qty and price must be > 0, got {qty!r} @ {price!r}")
    if position.symbol != fill.symbol or order.client_order_id != fill.order_id:
        raise StoreError(f"fill {fill.fill_id}: position or order does not belong to it")
    try:
        cash = finite("account cash", account["cash"])
        realised = finite("account realised", account["realised"])
        fees = finite("account fees", account["fees"])
    except KeyError as exc:
        raise StoreError(f"account map has no {exc.args[0]!r} (needs cash, realised, fees)") from None
    # each field by name (a ``getattr`` and an f-string per field were more than half of a fill's rows)
    pos_qty = finite("position qty", position.qty)
    entry = finite("position entry", position.entry)
    stop_loss = finite("position stop_loss", position.stop_loss)
    take_profit = finite("position take_profit", position.take_profit)
    pos_realised = finite("position realised", position.realised)
    pos_fees = finite("position fees", position.fees)
    ts = int(fill.ts)
    pos_row = None if position.qty == 0.0 else (
        fill.symbol, pos_qty, entry, stop_loss, take_profit, pos_realised, pos_fees, int(position.opened_ts), ts
    )  # fmt: skip
    return (
        (fill.fill_id, fill.order_id, fill.symbol, side, qty, price, fee, ts, fill.reason),
        order_update(order),
        pos_row,
        (cash, realised, fees, ts),
    )
