"""A pair whose ticks stop goes STALE in the engine's published state (entries blocked by the
data_fresh check) and recovers by itself when ticks return; the other pairs are unaffected."""

from __future__ import annotations

import time

import pytest
import zmq

from feed.wire import Tick, tick_frame
from tests.procs import ROOT, SYMBOLS, Subscriber, stack

pytestmark = pytest.mark.timeout(60)

PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}


def test_stalled_pair_goes_stale_and_recovers() -> None:
    config = (ROOT / "safe_list.yaml").read_text().replace("stale_after_s: 10", "stale_after_s: 1")
    assert "stale_after_s: 1 " in config
    with stack(config) as s:
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(s.feed_pub)
        sub = Subscriber(s.engine_pub, [b"pair"])
        s.start("engine", s.engine_cmd_line("--history", "0"))
        seq = dict.fromkeys(SYMBOLS, 0)

        def send(symbols: list[str]) -> None:
            te = int(time.time() * 1000)
            for sym in symbols:
                seq[sym] += 1
                p = PRICES[sym]
                pub.send(tick_frame(Tick(sym, seq[sym], te, time.time_ns(), p, p * 1.0001, p)))

        latest: dict[str, dict] = {}

        def pump(symbols: list[str], until, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                send(symbols)
                end = time.monotonic() + 0.1
                while time.monotonic() < end:
                    got = sub.recv(0.02)
                    if got:
                        latest[got[1]["symbol"]] = got[1]
                if until():
                    return
            raise AssertionError(f"condition not met; latest: {latest}")

        try:
            pump(SYMBOLS, lambda: all(latest.get(x, {}).get("stale") is False for x in SYMBOLS))
            t0 = time.monotonic()
            # BTC stops; ETH and SOL keep ticking.
            pump(["ETH/USDT", "SOL/USDT"], lambda: latest["BTC/USDT"]["stale"] is True)
            assert time.monotonic() - t0 >= 0.9
            assert latest["BTC/USDT"]["tick_age_ms"] >= 1000
            assert latest["ETH/USDT"]["stale"] is False and latest["SOL/USDT"]["stale"] is False
            # Data returns: BTC recovers on its own.
            pump(SYMBOLS, lambda: latest["BTC/USDT"]["stale"] is False)
            assert latest["BTC/USDT"]["tick_age_ms"] < 1000
        finally:
            sub.close()
            pub.close(0)
