"""A lost tail is counted: the feed's status names each topic's last sequence number.

A stand-in feed (a real PUB socket) publishes ten BTC ticks, then a status saying the last BTC
tick was number 15: the five the engine never received (the tail: no later tick would ever
show the jump) are counted as gaps, in the engine's heartbeat, and a status that only repeats
what arrived counts nothing.
"""

from __future__ import annotations

import time

import pytest
import zmq

from engine.wire import commands as engine_wire
from engine.wire.schema import HeartbeatMsg
from feed.wire import TOPIC_STATUS, Tick, encode_map, tick_frame
from tests.procs import stack

pytestmark = pytest.mark.timeout(60)


def test_the_tail_the_feed_published_and_the_engine_never_got_is_a_gap() -> None:
    with stack() as s:
        ctx = zmq.Context()
        pub = ctx.socket(zmq.PUB)
        pub.bind(s.feed_pub)
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, engine_wire.TOPIC_HEARTBEAT)
        sub.connect(s.engine_pub)
        try:
            s.start("engine", s.engine_cmd_line("--history", "0"))

            def beat(pred, timeout: float = 20.0) -> HeartbeatMsg:  # type: ignore[no-untyped-def]
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    if sub.poll(200):
                        hb = HeartbeatMsg.from_wire(engine_wire.unpack(sub.recv_multipart()[1]))
                        if pred(hb):
                            return hb
                raise AssertionError("no such heartbeat")

            beat(lambda hb: hb.phase == "running")
            now = int(time.time() * 1000)
            for q in range(1, 11):  # the engine connected long before it said "running"
                tick = Tick("BTC/USDT", q, now + q, time.time_ns(), 60_000.0, 60_001.0, 60_000.5, 10.0, 6e5)
                pub.send(tick_frame(tick))
            assert beat(lambda hb: hb.ticks >= 10).counters.get("gaps", 0) == 0
            status = {"state": "stale", "finished": True, "last_seq": {"BTC/USDT": 15}, "seq": 1}
            pub.send_multipart([TOPIC_STATUS, encode_map(status)])
            hb = beat(lambda hb: hb.counters.get("gaps", 0) > 0)
            assert hb.counters["gaps"] == 5
            status = {"state": "stale", "finished": True, "last_seq": {"BTC/USDT": 15}, "seq": 2}
            pub.send_multipart([TOPIC_STATUS, encode_map(status)])
            time.sleep(1.2)
            assert beat(lambda hb: True).counters["gaps"] == 5  # the same news counts once
        finally:
            ctx.destroy(linger=0)
