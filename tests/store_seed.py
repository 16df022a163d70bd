"""Put an open position into a store file before the engine starts (the engine recovers it).

Used by the kill-switch tests: flattening is only proven when there is something to flatten.
"""

from __future__ import annotations

import time
from pathlib import Path

from engine.models import (
    CheckResult,
    Decision,
    Fill,
    Position,
    Side,
    Signal,
    SignalType,
    client_order_id,
)
from engine.store import Store


def seed_open_position(
    db: Path, symbol: str = "BTC/USDT", qty: float = 0.004, price: float = 60_000.0
) -> None:
    """An open long with stops far away, so it stays open until a kill closes it."""
    ts = int(time.time() * 1000) - 60_000
    key = f"{symbol}|seed|{ts}"
    fee = qty * price * 0.001
    signal = Signal(symbol, SignalType.BUY, 0.9, price, 1.0, 1e9, "seeded by a test", ts)
    decision = Decision(
        key, symbol, ts, "open_long", signal, [CheckResult("seed", True)], True, qty, price
    )
    fill = Fill("f-seed", client_order_id(key), symbol, Side.BUY, qty, price, fee, ts, "signal")
    pos = Position(symbol, qty, price, 1.0, 1e9, 0.0, fee, ts)
    account = {"cash": 10_000.0 - qty * price - fee, "realised": 0.0, "fees": fee}
    with Store(db) as st:
        st.init_account(10_000.0, ts)
        st.record_decision(decision)
        st.record_execution(fill, pos, account, key)
