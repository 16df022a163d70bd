"""10,000 malformed or hostile tick messages into the real engine process: it stays up,
counts every one, and trades on none."""

from __future__ import annotations

import math
import random
import sqlite3
import time

import msgpack
import pytest
import zmq

from feed.wire import Tick, tick_frame
from tests.procs import Commander, Subscriber, stack

pytestmark = pytest.mark.timeout(90)


def _valid(symbol: str, seq: int, price: float, te: int) -> bytes:
    """A well-formed tick as the feed sends it: one frame, ``symbol NUL array`` (version 3)."""
    return tick_frame(Tick(symbol, seq, te, time.time_ns(), price * 0.9999, price * 1.0001, price, 10.0, 1e6))


def _fuzz_cases(rng: random.Random, te: int) -> list[list[bytes]]:
    def tick_map(**over: object) -> bytes:
        m = {"v": 1, "s": "BTC/USDT", "q": 5, "te": te, "tr": 1, "b": 100.0, "a": 100.1, "l": 100.0, "bv": 1.0, "qv": 1.0}
        m.update(over)
        return msgpack.packb(m)

    def tick_array(**over: object) -> bytes:
        m = {"v": 3, "q": 5, "te": te, "tr": 1, "b": 100.0, "a": 100.1, "l": 100.0, "bv": 1.0, "qv": 1.0}
        m.update(over)
        return msgpack.packb(list(m.values()))

    def frame(topic: bytes, payload: bytes) -> list[bytes]:  # a version-3 tick frame
        return [topic + b"\0" + payload]

    makers = [
        # version 3: one frame, symbol NUL array
        lambda: frame(b"BTC/USDT", rng.randbytes(rng.randint(0, 64))),  # garbage bytes
        lambda: frame(b"BTC/USDT", msgpack.packb([1, 2, 3])),  # too short
        lambda: frame(b"BTC/USDT", tick_array(b=math.nan)),
        lambda: frame(b"BTC/USDT", tick_array(a=math.inf)),
        lambda: frame(b"ETH/USDT", tick_array(l=-5.0)),
        lambda: frame(b"ETH/USDT", tick_array(b=0.0)),
        lambda: frame(b"SOL/USDT", tick_array(b="100")),  # wrong type
        lambda: frame(b"SOL/USDT", tick_array(q="7")),
        lambda: frame(b"BTC/USDT", tick_array(v=4)),  # unknown version
        lambda: frame(b"BTC/USDT", tick_array(v=3.0)),  # a float version
        lambda: frame(b"BTC/USDT", tick_array(b=101.0, a=100.0)),  # crossed book
        lambda: frame(b"BTC/USDTX", tick_array()),  # unknown symbol sharing a prefix
        lambda: frame(b"BTC/USDT", tick_array(te=te + 10**12)),  # absurd timestamp jump
        lambda: frame(b"BTC/USDT", tick_array(te=te + 5 * 3600 * 1000)),  # one tick 5 hours ahead
        lambda: frame(b"BTC/USDT", tick_array(q=2**64 - 1)),  # a sequence number beyond int64
        lambda: frame(b"BTC/USDT", tick_map()),  # the version-1 map: no longer read
        lambda: [b"BTC/USDT"],  # a lone frame that is no tick (no NUL)
        # two frames [topic, payload]: a version-2 tick, checked the same, frame count exact
        lambda: [b"BTC/USDT", tick_array(v=2, b=math.nan)],
        lambda: [b"ETH/USDT", tick_array(v=2, l=-5.0)],
        lambda: [b"BTC/USDT", tick_array(v=2, te=te + 5 * 3600 * 1000)],  # one tick 5 hours ahead
        lambda: [b"BTC/USDT", msgpack.packb([2, 5, te, 1, 100.0, 100.1, 100.0, 1.0])],  # one short
        lambda: [b"BTC/USDT", tick_map(s="ETH/USDT")],  # a map, and a mismatched one
        lambda: [b"BTC/USDTX", tick_array(v=2)],  # unknown symbol sharing a prefix
        lambda: [b"BTC/USDT\xff", b"\x01"],  # undecodable topic
        lambda: [b"BTC/USDT", b"x", b"extra"],  # wrong frame count
    ]
    return [rng.choice(makers)() for _ in range(10_000)]


def test_engine_survives_10000_fuzzed_messages_and_trades_on_none() -> None:
    with stack() as s:
        ctx = zmq.Context.instance()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 0)  # deliver every case: the test counts them all
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(s.feed_pub)
        sub = Subscriber(s.engine_pub)
        s.start("engine", s.engine_cmd_line("--history", "0"))
        try:
            te = int(time.time() * 1000)
            # Past the slow-joiner window: send valid ticks until the engine reports one.
            seq = 0
            deadline = time.monotonic() + 20
            seen = False
            while not seen and time.monotonic() < deadline:
                seq += 1
                pub.send(_valid("BTC/USDT", seq, 60_000.0, te))
                got = sub.recv(0.1)
                seen = bool(got and got[0] == b"pair" and got[1]["symbol"] == "BTC/USDT" and got[1]["ticks"] > 0)
            assert seen, s.log("engine")

            rng = random.Random(1234)
            cases = _fuzz_cases(rng, te)
            for frames in cases:
                pub.send_multipart(frames)
            # Sequence jumps on otherwise valid ticks are counted as gaps, not dropped.
            seq += 100
            pub.send(_valid("BTC/USDT", seq, 60_000.0, te))

            def drained(t: bytes, m: dict) -> bool:
                return t == b"_hb" and m["bad"] >= len(cases)

            _, hb = sub.wait_for(drained, timeout_s=30)
            assert hb["bad"] == len(cases)
            assert hb["decisions"] == 0
            _, pair = sub.wait_for(lambda t, m: t == b"pair" and m["symbol"] == "BTC/USDT" and m["gaps"] >= 99)
            assert pair["gaps"] == 99 and pair["last"] == 60_000.0

            cmd = Commander(s.engine_cmd)
            assert cmd.send("ping")["ok"]
            cmd.close()
            assert s.procs["engine"].poll() is None
        finally:
            sub.close()
            pub.close(0)
        assert s.stop("engine") == 0
        with sqlite3.connect(s.db) as db:
            assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0
            assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
