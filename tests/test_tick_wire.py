"""The tick on the wire, version 3 (issue 16): one frame ``symbol NUL array``, read by the engine
node straight into the core's tick path; a previous feed's version-2 ticks (two frames) are still
read, and anything else is counted and dropped. In process: a real EngineNode on a real SQLite
file, fed through a real PUB socket where the framing matters, else by ``on_message``."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.node.service import Endpoints, EngineNode
from feed.wire import Tick, encode_tick_v2, tick_frame
from tests.core_harness import FakeClock

BTC, ETH = "BTC/USDT", "ETH/USDT"


class _NoHistory:
    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        return []


def _cfg() -> SafeList:
    pair = {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {BTC: pair, ETH: pair},
    })


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[EngineNode, FakeClock]]:
    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    clock = FakeClock()
    n = EngineNode(_cfg(), tmp_path / "book.sqlite", ends, clock=clock, history=_NoHistory(), context=ctx)
    try:
        yield n, clock
    finally:
        n.close()
        ctx.term()


def _joined(n: EngineNode, clock: FakeClock, pub: zmq.Socket) -> int:
    """Past the slow joiner: ETH ticks until the node has one; the sequence number used."""
    deadline = time.monotonic() + 10
    seq = 0
    while n.ticks_total == 0:
        assert time.monotonic() < deadline, "the node never received a tick"
        seq += 1
        clock.advance(10)
        pub.send(tick_frame(Tick(ETH, seq, clock.ms, 0, 100.0, 100.5, 100.25)))
        time.sleep(0.02)
        n._drain_ticks()
    return seq


@pytest.fixture
def pub(node: tuple[EngineNode, FakeClock]) -> Iterator[zmq.Socket]:
    n, _ = node
    sock = n.ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(n.endpoints.feed_pub)
    n.sub.connect(n.endpoints.feed_pub)  # what EngineNode.bind does, without the node's own sockets
    try:
        yield sock
    finally:
        sock.close(0)


def test_old_format_ticks_still_decode_beside_new_ones(node: tuple[EngineNode, FakeClock], pub: zmq.Socket) -> None:
    """A feed of the previous release (version 2: two frames) and a new one (version 3: one
    frame) on one pair, through the socket: every tick is used, in order, with one sequence, and
    the quote is the last one's."""
    n, clock = node
    _joined(n, clock, pub)
    before = n.ticks_total
    for seq in range(1, 9):
        clock.advance(500)
        bid = 60_000.0 + seq
        tick = Tick(BTC, seq, clock.ms, 0, bid, bid + 1.0, bid + 0.5, 10.0 * seq, 1e6)
        if seq % 2:
            pub.send_multipart([BTC.encode(), encode_tick_v2(tick)])
        else:
            pub.send(tick_frame(tick))
    time.sleep(0.1)
    n._drain_ticks()
    ps = n.core.pairs[BTC]
    st = n.stats[BTC]
    assert (n.ticks_total - before, n.bad_total, st.gaps, st.bad, st.expected_seq) == (8, 0, 0, 0, 9)
    assert (ps.bid, ps.ask, ps.last, ps.ticks) == (60_008.0, 60_009.0, 60_008.5, 8)


def test_framing_a_misframed_message_is_one_bad_message(node: tuple[EngineNode, FakeClock], pub: zmq.Socket) -> None:
    """Two frames are [topic, payload] (checked: three is one bad message); a lone frame with no
    NUL is no message; a tick frame is a whole message, so a frame sent after it is one more
    message (here a bad one) and the tick itself is used."""
    n, clock = node
    seq = _joined(n, clock, pub)
    clock.advance(500)
    good = Tick(ETH, seq + 1, clock.ms, 0, 101.0, 101.5, 101.25)
    pub.send_multipart([ETH.encode(), encode_tick_v2(good), b"extra"])  # three frames: one bad
    pub.send(b"ETH/USDT")  # a lone topic: one bad
    pub.send_multipart([tick_frame(good), b"ETH/USDT"])  # a tick frame, then a lone topic frame
    time.sleep(0.1)
    n._drain_ticks()
    assert n.bad_total == 2 + 1 and n.core.pairs[ETH].bid == 101.0 and n.stats[ETH].expected_seq == seq + 2


def test_a_bad_array_is_counted_and_dropped_and_the_next_good_tick_is_used(
    node: tuple[EngineNode, FakeClock],
) -> None:
    n, clock = node
    clock.advance(500)
    good = [2, 1, clock.ms, 0, 100.0, 100.5, 100.25, 1.0, 1.0]
    bad_arrays = [
        good[:5],  # too short
        [4, *good[1:]],  # a version this engine does not know
        [1, *good[1:]],
        [2, 1, clock.ms, 0, math.nan, 100.5, 100.25, 1.0, 1.0],
        [2, 1, clock.ms, 0, 101.0, 100.5, 100.25, 1.0, 1.0],  # crossed
        [2, "1", clock.ms, 0, 100.0, 100.5, 100.25, 1.0, 1.0],
        [2, 1, clock.ms, 0, 100.0, 100.5, 100.25, -1.0, 1.0],
    ]
    for arr in bad_arrays:
        n.on_message(ETH.encode(), msgpack.packb(arr))
    n.on_message(ETH.encode(), b"\xc1garbage")
    assert (n.bad_total, n.stats[ETH].bad, n.ticks_total) == (len(bad_arrays) + 1, len(bad_arrays) + 1, 0)
    n.on_message(ETH.encode(), msgpack.packb(good))
    assert n.ticks_total == 1 and n.core.pairs[ETH].bid == 100.0
    # an integer price is a legal (named-check) value in the array as in the map
    clock.advance(500)
    n.on_message(ETH.encode(), msgpack.packb([2, 2, clock.ms, 0, 100, 101, 100, 0, 0]))
    assert n.ticks_total == 2 and n.core.pairs[ETH].ask == 101.0 and type(n.core.pairs[ETH].ask) is float
