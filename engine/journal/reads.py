"""What a book tells its readers: recent decisions (as the wire's ``DecisionMsg``), fills,
orders, the equity curve and operator events, newest or oldest first as each says.

Owns ``BookReads``, the read-only half of ``Store`` (a mixin: it needs the store's ``_read``).
A console attaching to a running engine, a report or a test reads the book through these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engine.core.models import Fill, Side
from engine.core.orders import Order
from engine.wire.schema import DecisionMsg, SignalMsg


class BookReads:
    # the Store's: one query on its connection, every sqlite error as a one-line StoreError
    _read: Callable[..., list[tuple[Any, ...]]]
    _orders: Callable[..., list[Order]]

    def recent_decisions(self, symbol: str | None = None, limit: int = 50) -> list[DecisionMsg]:
        """Newest first, as the ``decision`` wire message a console receives live."""
        if limit <= 0:
            return []
        cols = (
            "id, key, symbol, ts, action, approved, qty, price, signal_type, confidence, entry, "
            "stop_loss, take_profit, reasoning, signal_ts, checks_json"
        )
        if symbol is None:
            rows = self._read(
                "recent_decisions",
                f"SELECT {cols} FROM decisions ORDER BY ts DESC, id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._read(
                "recent_decisions",
                f"SELECT {cols} FROM decisions WHERE symbol = ? ORDER BY ts DESC, id DESC LIMIT ?",
                (symbol, limit),
            )
        return [
            DecisionMsg(
                key=key, symbol=sym, ts=ts, action=action, approved=bool(approved), qty=qty, price=price,
                signal=SignalMsg(stype, conf, entry, sl, tp, reasoning, sts),
                checks=[(n, bool(ok), r) for n, ok, r in json.loads(checks_json)],
                id=did,
            )
            for (did, key, sym, ts, action, approved, qty, price, stype, conf, entry, sl, tp, reasoning, sts,
                 checks_json) in rows
        ]

    def fills(self, symbol: str | None = None) -> list[Fill]:
        """Oldest first (insertion order), so replaying them rebuilds the account."""
        cols = "fill_id, order_id, symbol, side, qty, price, fee, ts, reason"
        if symbol is None:
            rows = self._read("fills", f"SELECT {cols} FROM fills ORDER BY rowid")
        else:
            rows = self._read(
                "fills", f"SELECT {cols} FROM fills WHERE symbol = ? ORDER BY rowid", (symbol,)
            )
        return [
            Fill(f, o, s, Side(side), q, p, fee, ts, r) for f, o, s, side, q, p, fee, ts, r in rows
        ]

    def recent_fills(self, limit: int = 200) -> list[Fill]:
        """The latest ``limit`` fills, oldest first (insertion order), as ``fills()`` says them."""
        if limit <= 0:
            return []
        rows = self._read(
            "recent_fills",
            "SELECT fill_id, order_id, symbol, side, qty, price, fee, ts, reason FROM fills "
            "ORDER BY rowid DESC LIMIT ?",
            (limit,),
        )
        return [
            Fill(f, o, s, Side(side), q, p, fee, ts, r) for f, o, s, side, q, p, fee, ts, r in reversed(rows)
        ]

    def orders(self) -> list[Order]:
        """Every order, oldest first."""
        return self._orders("orders")

    def equity_curve(self, since_ts: int = 0) -> list[dict[str, Any]]:
        """Equity points with ts >= since_ts, oldest first."""
        rows = self._read(
            "equity_curve",
            "SELECT ts, equity, cash, exposure, realised, unrealised, fees FROM equity "
            "WHERE ts >= ? ORDER BY ts, id",
            (int(since_ts),),
        )
        keys = ("ts", "equity", "cash", "exposure", "realised", "unrealised", "fees")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        if limit <= 0:
            return []
        rows = self._read(
            "recent_events",
            "SELECT ts, kind, message FROM events ORDER BY ts DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [{"ts": ts, "kind": k, "message": m} for ts, k, m in rows]

    def latest_reconciliation(self) -> tuple[int, dict[str, Any]] | None:
        """The newest reconciliation report (id, its dict), or None when the book has none."""
        rows = self._read("latest_reconciliation", "SELECT id, report FROM reconciliations ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        return int(rows[0][0]), json.loads(rows[0][1])

    def order(self, client_order_id: str) -> Order | None:
        """One order of the book by its client order id (any status)."""
        found = self._orders("order", "WHERE order_id = ?", (client_order_id,))
        return found[0] if found else None

    def last_fill_ts(self) -> dict[str, int]:
        """Each pair's newest fill time (ms): where a reconciliation asks the exchange from."""
        return {s: int(ts) for s, ts in self._read("last_fill_ts", "SELECT symbol, MAX(ts) FROM fills GROUP BY symbol")}
