"""A position the exchange cannot close (a remainder below the lot step: dust) never takes the
engine down and never blocks it: no order is sent for it, no stop fires on it, ticks keep
flowing, it stays in the book, and the kill switch halts everything with nothing to close."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.procs import Commander, Subscriber, stack
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(60)


def test_dust_sends_nothing_blocks_nothing_and_the_engine_keeps_running() -> None:
    with stack() as s:
        # 0.000001 BTC is below Binance's 0.00001 step; its stop sits above the market: hit at once.
        seed_open_position(s.db, qty=0.000001)
        with sqlite3.connect(s.db) as db:
            db.execute("UPDATE positions SET stop_loss = 1e9")
        s.start("feed", s.feed_cmd())
        sub = Subscriber(s.engine_pub, [b"pair"])
        s.start("engine", s.engine_cmd_line())
        try:
            ticks: list[int] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(set(ticks)) < 5:
                got = sub.recv(0.2)
                if got and got[1]["symbol"] == "BTC/USDT":
                    ticks.append(got[1]["ticks"])
            assert len(set(ticks)) >= 5, s.log("engine")  # handling ticks, stop level crossed
            assert s.procs["engine"].poll() is None
            log = s.log("engine")
            assert "stop hit" not in log and "not filled" not in log  # dust: no stop, no order
            cmd = Commander(s.engine_cmd)
            ack = cmd.send("kill")
            cmd.close()
            assert ack["ok"] is True, ack["message"]
            assert set(ack["modes"].values()) == {"HALTED"}
            with sqlite3.connect(s.db) as db:  # kept in the book: it is the account's
                (qty,) = db.execute("SELECT qty FROM positions WHERE symbol = 'BTC/USDT'").fetchone()
            assert qty == 0.000001
        finally:
            sub.close()
        assert s.stop("engine") == 0
