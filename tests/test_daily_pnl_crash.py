"""The day's PnL survives a crash: the real feed and engine (tests/procs.py), a book holding a
BTC long, the engine flattens it (a day with a realised loss and fees), then SIGKILL and a
restart on the same book. The engine's published ``portfolio`` after the restart has the same
daily PnL, the same total PnL and the same trading day as before the kill (before schema 6 the
restarted engine took the equity at its start as the day's: the day's PnL read 0), and new
entries stopped before the crash stay stopped."""

from __future__ import annotations

import signal
import sqlite3
import time
from typing import Any

import pytest

from tests.procs import Commander, Subscriber, stack
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(60)

SAFE_LIST = """
version: 1
portfolio:
  capital_usd: 10000
  max_total_exposure: 0.5
  correlation_groups: []
  stale_after_s: 3
engine:
  timeframe: 1s
  history_candles: 30
pairs:
  BTC/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 1500}
  ETH/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 1500}
"""


def _portfolio_of(sub: Subscriber, pid: int, pred: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    """The first ``portfolio`` message of engine ``pid`` (after its heartbeat) that ``pred`` accepts."""
    sub.wait_for(lambda t, m: t == b"_hb" and m["pid"] == pid, timeout_s=timeout_s)
    _, m = sub.wait_for(lambda t, m: t == b"portfolio" and pred(m), timeout_s=timeout_s)
    return m


def test_the_days_pnl_is_the_same_after_the_engine_is_sigkilled_and_restarted() -> None:
    with stack(SAFE_LIST) as s:
        seed_open_position(s.db, "BTC/USDT", 0.01, 60_000.0)
        s.start("feed", s.feed_cmd(rate=20.0, seed=3, symbols=["BTC/USDT", "ETH/USDT"]))
        sub = Subscriber(s.engine_pub, [b"portfolio", b"_hb"])
        try:
            pid = s.start("engine", s.engine_cmd_line()).pid
            _portfolio_of(sub, pid, lambda m: m["day_start_ts"] > 0 and m["positions"] == 1)
            cmd = Commander(s.engine_cmd)
            assert cmd.send("stop_entries")["ok"]  # nothing opens: the book stays flat
            ack = cmd.send("flatten", "BTC/USDT")
            assert ack["ok"] and "flattened" in ack["message"], ack
            cmd.close()
            before = _portfolio_of(sub, pid, lambda m: m["positions"] == 0 and m["entries_stopped"])
            with sqlite3.connect(s.db) as c:
                day_row = c.execute("SELECT start_ts, equity FROM trading_day").fetchone()
            assert day_row[0] == before["day_start_ts"]
            assert before["daily_pnl"] == pytest.approx(before["equity"] - day_row[1])
            assert before["daily_pnl"] != 0.0 and before["total_pnl"] != 0.0  # a fee was paid at least

            s.stop("engine", signal.SIGKILL)
            time.sleep(0.5)
            pid = s.start("engine", s.engine_cmd_line()).pid
            after = _portfolio_of(sub, pid, lambda m: m["day_start_ts"] > 0)
        finally:
            sub.close()
        if after["day_start_ts"] != before["day_start_ts"]:
            pytest.skip("the UTC day changed during the test: a new day starts at 0 by design")
        assert after["positions"] == 0 and after["entries_stopped"] and after["entries_reason"] == "operator"
        assert after["daily_pnl"] == before["daily_pnl"], (before, after)
        assert after["total_pnl"] == before["total_pnl"] and after["equity"] == before["equity"]
        assert "trading day since" in s.log("engine")
