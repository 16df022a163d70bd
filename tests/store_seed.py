"""Put an open position into a book before the engine starts (the engine recovers it).

Used by the kill-switch tests and benchmarks: flattening is only proven when there is
something to flatten. Writes through the journal's own API (decision with its order, then the
fill with the position and account after it), as the engine would have.
"""

from __future__ import annotations

import time
from pathlib import Path

from engine.core.models import CheckResult, Decision, Fill, Position, Side, Signal, SignalType
from engine.core.orders import Order, OrderStatus, client_order_id
from engine.journal.store import Store

CAPITAL = 10_000.0


def seed_open_position(
    db: Path,
    symbol: str = "BTC/USDT",
    qty: float = 0.004,
    price: float = 60_000.0,
    *,
    stop: float = 1.0,
    target: float = 1e9,
) -> None:
    """An open long with stops far away (by default), so it stays open until a kill closes it."""
    ts = int(time.time() * 1000) - 60_000
    key = f"{symbol}|seed|{ts}"
    fee = qty * price * 0.001
    signal = Signal(symbol, SignalType.BUY, 0.9, price, stop, target, "seeded by a test", ts)
    decision = Decision(key, symbol, ts, "open_long", signal, [CheckResult("seed", True)], True, qty, price)
    cid = client_order_id(key)
    order = Order(cid, symbol, Side.BUY, qty, "signal", key, ts, updated_ts=ts, stop_loss=stop, take_profit=target)
    fill = Fill(f"{cid}/F1", cid, symbol, Side.BUY, qty, price, fee, ts, "signal")
    pos = Position(symbol, qty, price, stop, target, 0.0, fee, ts)
    with Store(db) as st:
        st.init_account(CAPITAL, ts)
        acct = st.load_account() or {"cash": CAPITAL, "realised": 0.0, "fees": 0.0}
        account = {"cash": acct["cash"] - qty * price - fee, "realised": acct["realised"], "fees": acct["fees"] + fee}
        st.record_decision(decision, order)
        order.status, order.filled_qty, order.avg_price, order.fees = OrderStatus.FILLED, qty, price, fee
        st.record_fill(fill, order, pos, account)


def seed_history(db: Path, symbol: str = "ETH/USDT", n: int = 2) -> list[str]:
    """``n`` rejected decisions and one operator event in the book, through its API; returns the
    decisions' keys, oldest first (a console attaching must show them)."""
    ts = int(time.time() * 1000) - 30_000
    keys = []
    with Store(db) as st:
        st.init_account(CAPITAL, ts)
        for i in range(n):
            key = f"{symbol}|seed-rejected|{ts + i}"
            signal = Signal(symbol, SignalType.BUY, 0.2, 2_000.0, 1_900.0, 2_200.0, "seeded, too weak", ts + i)
            checks = [CheckResult("confidence", False, "confidence 0.20 < 0.60")]
            st.record_decision(Decision(key, symbol, ts + i, "open_long", signal, checks, False))
            keys.append(key)
        st.record_event(ts + n, "rearm", "re-armed 3 pair(s) (seeded)")
    return keys
