"""The tick on the wire, version 3 (issue 16): one frame ``symbol NUL array``, read by the engine
node straight into the core's tick path; a previous feed's version-2 ticks (two frames) are still
read, and anything else is counted and dropped. In process: a real EngineNode on a real SQLite
file, fed through a real PUB socket where the framing matters, else by ``on_message``."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.node.reload_run import LEAVE_AFTER_S
from engine.node.service import Endpoints, EngineNode
from engine.node.tick_in import tick_prefixes, well_formed_tick
from feed.wire import TOPIC_HEARTBEAT, Tick, WireError, encode_tick_v2, tick_fields, tick_frame
from tests.core_harness import FakeClock

BTC, ETH, EOS = "BTC/USDT", "ETH/USDT", "EOS/USDT"  # EOS: never sent but by one test


class _NoHistory:
    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        return []


def _cfg() -> SafeList:
    pair = {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {BTC: pair, ETH: pair, EOS: pair},
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


def _leaves(n: EngineNode, sym: str) -> None:
    """``sym`` leaves as a reload's removed pair does once flat: marked leaving, flat for longer
    than ``LEAVE_AFTER_S``, then the node's own sweep (core, topics, SUB, the feed told)."""
    n.core.leaving[sym] = n.core.pairs[sym].mode
    n._reload._flat_since[sym] = time.monotonic() - LEAVE_AFTER_S - 1.0
    n._reload.sweep()
    assert sym not in n.core.pairs


def test_the_sub_holds_one_byte_per_first_letter_and_lets_in_only_ticks_that_share_one(
    node: tuple[EngineNode, FakeClock], pub: zmq.Socket
) -> None:
    """The engine subscribes to its symbols' first bytes (a thousand full symbols cost libzmq's
    prefix walk 0.2 µs a message) and ``_status``: a tick of a pair it does not trade sharing a
    first byte arrives and is counted as an unknown symbol, and as bad unless a reload removed
    the pair; one sharing none, and the feed's heartbeat, never reach it. When a pair leaves, the
    prefixes follow the pairs still traded."""
    n, clock = node
    assert n._tick_prefixes == tick_prefixes([BTC, ETH, EOS]) == {b"B", b"E"}
    seq = _joined(n, clock, pub)
    before, bad = n.ticks_total, n.bad_total

    def settle() -> None:
        time.sleep(0.1)
        n._drain_ticks()

    clock.advance(500)
    pub.send(tick_frame(Tick("BNB/USDT", 1, clock.ms, 0, 600.0, 600.5, 600.25)))  # shares "B"
    pub.send(tick_frame(Tick("XRP/USDT", 1, clock.ms, 0, 0.5, 0.51, 0.505)))  # shares nothing
    pub.send_multipart([TOPIC_HEARTBEAT, b"\x80"])  # the feed's heartbeat: reserved, not ours
    pub.send(tick_frame(Tick(ETH, seq + 1, clock.ms, 0, 101.0, 101.5, 101.25)))
    settle()
    assert (n.ticks_total - before, n.unknown_symbols, n.bad_total - bad) == (1, 1, 1)
    assert n.core.pairs[ETH].bid == 101.0

    # EOS leaves; ETH keeps "E" subscribed, so EOS's late ticks still come: unknown, not bad
    _leaves(n, EOS)
    assert n._tick_prefixes == {b"B", b"E"} and EOS.encode() in n.left_topics
    pub.send(tick_frame(Tick(EOS, 9, clock.ms, 0, 0.7, 0.71, 0.705)))
    settle()
    assert (n.ticks_total - before, n.unknown_symbols, n.bad_total - bad) == (1, 2, 1)

    # BTC leaves and no pair still traded starts with "B": its ticks stop at the socket (had one
    # come, it would count as an unknown symbol)
    _leaves(n, BTC)
    assert n._tick_prefixes == {b"E"}
    clock.advance(500)
    pub.send(tick_frame(Tick(BTC, 1, clock.ms, 0, 60_000.0, 60_001.0, 60_000.5)))
    pub.send(tick_frame(Tick(ETH, seq + 2, clock.ms, 0, 102.0, 102.5, 102.25)))
    settle()
    assert (n.ticks_total - before, n.unknown_symbols, n.bad_total - bad) == (2, 2, 1)
    assert n.core.pairs[ETH].bid == 102.0


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


def test_the_socket_s_bad_arrays_are_counted_and_dropped_and_an_integer_price_is_used(
    node: tuple[EngineNode, FakeClock], pub: zmq.Socket
) -> None:
    """The hot path (``drain_ticks``) on tick frames: what its fast path refuses goes through the
    named checks, so a bad array is one bad message and an integer price is converted and used."""
    n, clock = node
    seq = _joined(n, clock, pub)
    clock.advance(500)
    good = [3, seq + 1, clock.ms, 0, 100.0, 100.5, 100.25, 1.0, 1.0]
    bad_arrays = [
        good[:5],
        [4, *good[1:]],
        [True, *good[1:]],
        [3, seq + 1, clock.ms, 0, math.nan, 100.5, 100.25, 1.0, 1.0],
        [3, seq + 1, clock.ms, 0, 101.0, 100.5, 100.25, 1.0, 1.0],  # crossed
        [3, seq + 1, clock.ms, 0, 100.0, 100.5, 100.25, 1.0, math.inf],
    ]
    before_bad, before_ticks = n.bad_total, n.ticks_total
    for arr in bad_arrays:
        pub.send(ETH.encode() + b"\0" + msgpack.packb(arr))
    pub.send(ETH.encode() + b"\0\xc1garbage")
    pub.send(ETH.encode() + b"\0" + msgpack.packb([3, seq + 1, clock.ms, 0, 100, 102, 101, 0, 0]))
    time.sleep(0.1)
    n._drain_ticks()
    ps = n.core.pairs[ETH]
    assert (n.bad_total - before_bad, n.ticks_total - before_ticks) == (len(bad_arrays) + 1, 1)
    assert (ps.bid, ps.ask, ps.last) == (100.0, 102.0, 101.0) and type(ps.ask) is float
    assert n.stats[ETH].expected_seq == seq + 2


_FIELD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, 2, 3, 4, 0.0, -0.0, 1e12, 1e18, 2**63 - 1, 2**63, True, None, "1"]),
)
_NEAR = st.tuples(  # arrays near the limits: every field the right type, some out of range
    st.sampled_from([2, 3]), st.integers(0, 2**63), st.integers(0, 2**43), st.integers(0, 2**63),
    *[st.floats(0, 2e12)] * 3, *[st.floats(0, 2e18)] * 2,
).map(list)


@settings(max_examples=1500, deadline=None)
@given(
    arr=st.one_of(st.lists(_FIELD, min_size=8, max_size=10), _NEAR))
def test_the_fast_path_accepts_what_the_named_checks_return_unchanged_and_nothing_else(arr: list[Any]) -> None:
    """``well_formed_tick`` (compiled: the intake's fast path) is ``tick_fields``' fast path
    written out again. What it accepts, ``tick_fields`` returns field for field, types included;
    what ``tick_fields`` returns exactly as it came (no integer price converted), it accepts."""
    payload = msgpack.packb(arr)
    ok, *fields = well_formed_tick(payload)
    try:
        named = tick_fields(b"X", payload)
    except WireError:
        named = None
    if ok:
        assert named is not None
        assert [(type(x), x) for x in fields] == [(type(x), x) for x in named[1:8]]
    raw = msgpack.unpackb(payload)
    if named is not None and [(type(x), x) for x in named] == [(type(x), x) for x in raw]:
        assert ok


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=80))
def test_the_fast_path_refuses_garbage_without_raising(payload: bytes) -> None:
    ok, *_ = well_formed_tick(payload)
    if ok:
        assert tick_fields(b"X", payload)[0] in (2, 3)
