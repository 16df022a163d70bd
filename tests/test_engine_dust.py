"""A position the exchange cannot close (a remainder below the lot step) never takes the
engine down: the stop that cannot be filled is recorded, refused at the order boundary, and
ticks keep flowing; the kill switch still halts everything and says what it could not close."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.procs import Commander, Subscriber, stack
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(60)


def test_unfillable_stop_is_refused_and_the_engine_keeps_running() -> None:
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
            assert len(set(ticks)) >= 5, s.log("engine")  # still handling ticks after the stop hit
            assert s.procs["engine"].poll() is None
            log = s.log("engine")
            assert "stop hit" in log and "not filled" in log and "rounds to 0" in log
            assert log.count("not filled") == 1  # refused once, not once per tick
            cmd = Commander(s.engine_cmd)
            ack = cmd.send("kill")
            cmd.close()
            assert ack["ok"] is False and "could not flatten BTC/USDT" in ack["message"]
            assert set(ack["modes"].values()) == {"HALTED"}
        finally:
            sub.close()
        assert s.stop("engine") == 0
