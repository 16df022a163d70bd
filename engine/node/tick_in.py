"""The engine's tick intake: the feed socket drained, each message decoded into the core.

Owns what ``EngineNode`` does with a message from the feed: framing, the topic looked up, the
tick decoded straight into ``TradingCore.on_tick`` (no object per tick, docs/wire.md), per-topic
sequence numbers (a jump forward is lost messages, back a restarted feed) and the feed's status.
Malformed input is counted and dropped, never raised.

Framing (tick version 3): a tick is one frame, ``symbol NUL array``, received as plain bytes
(0.3 µs, against 1.2 µs for the two ``zmq.Frame`` objects a two-frame message took to see its
frame count). A frame with no NUL is a topic whose payload follows: a control map (``_status``)
or a version-2 tick of a feed of the previous release; that message is read with its frame
count checked (``RCVMORE``), so a misframed one is one bad message. A tick frame is a message of
its own: frames a hostile sender appends to it arrive as further messages, each counted and
dropped unless it is one.

``drain_ticks`` is the hot path (50,000 ticks a second is ~5 µs a tick all-in, issue 16): a
well-formed tick of a known pair is handled inline, with the node's attributes held in locals,
and anything else goes to ``on_message``, which counts and explains it. Both do the same
bookkeeping. This module is compiled with the core (``engine/compiled.py``): ``well_formed_tick``
returns a tick's fields unboxed and ``TradingCore.on_tick`` is called directly, no float boxed
on the way (0.4 µs a tick less than the same loop interpreted, docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgpack
import zmq

from engine.core.trader import PairState, TradingCore
from feed.wire import (
    PRICE_LIMIT,
    SEQ_LIMIT,
    TE_LIMIT,
    TICK_LEN,
    TICK_SEP,
    TICK_VERSION,
    TICK_VERSION_PREVIOUS,
    TOPIC_STATUS,
    TR_LIMIT,
    VOLUME_LIMIT,
    WireError,
    decode_map,
    tick_fields,
)

if TYPE_CHECKING:
    from engine.node.service import EngineNode

log = logging.getLogger("engine")

DRAIN_BATCH: Final = 1000  # messages read per loop turn, so commands are never starved
LATENCY_RING_MASK: Final = 4095  # the last 4096 tick latencies feed the heartbeat's p50/p99
_NOBLOCK: Final = int(zmq.NOBLOCK)
_RCVMORE: Final = int(zmq.RCVMORE)
_unpackb: Final = msgpack.unpackb


@dataclass(slots=True)
class TopicStats:
    """Transport facts of one pair's tick topic, kept by the node (here, compiled with the tick
    path, which reads and writes ``expected_seq`` on every tick; the publisher keeps its
    roll-call and view fields on it too)."""

    expected_seq: int = 0  # next seq we expect; 0 = none seen yet
    gaps: int = 0  # messages missed according to sequence numbers
    bad: int = 0  # malformed messages dropped
    last_publish: float = -1e9  # the roll-call's (``pair``) last message; spread over a second at start
    rollcall_sig: tuple[Any, ...] = ()  # mode, position, exit, decision as the roll-call last sent them
    last_view: float = -1e9  # the ``view:`` topic's last message
    closes_sent_at: float = -1e9  # the closes ride on ``view:`` (and in a snapshot)
    closes_sent_for: int = -1  # open time of the newest closed candle last sent


def tick_prefixes(symbols: Iterable[str]) -> set[bytes]:
    """What the engine's SUB subscribes to for ticks: the first byte of each symbol it trades.

    libzmq matches every message against the subscriptions' prefix tree; against a thousand
    symbols that walk costs about 0.2 µs a message (docs/performance.md), against a few one-byte
    prefixes next to nothing. No symbol starts with the reserved ``_`` (feed/wire.py), so the
    feed's heartbeats stay out (a replay's ``ZMQ_XPUB_NODROP`` would hold them behind an engine
    that is behind, docs/wire.md); ``_status`` is subscribed on its own. A tick of a pair the
    engine does not trade that shares a first byte is counted (``unknown_symbols``, and as bad
    unless a reload removed that pair: ``EngineNode.left_topics``) and dropped."""
    return {s.encode()[:1] for s in symbols}


def read_message(sub: zmq.Socket[Any], first: bytes) -> tuple[bytes, bytes] | None:
    """The message whose first frame was ``first``: ``(topic, payload)``, or None when it is
    misframed (the caller counts it once; every frame of it has been read)."""
    topic, sep, payload = first.partition(TICK_SEP)
    if sep:
        return topic, payload  # a tick frame: the whole message
    if not sub.get(_RCVMORE):
        return None  # a lone frame that is no tick
    payload = sub.recv()  # the rest of a multipart message is already here
    if sub.get(_RCVMORE):
        while True:
            sub.recv()
            if not sub.get(_RCVMORE):
                return None
    return topic, payload


def drain_ticks(node: EngineNode) -> None:
    """Every message waiting on the feed socket, up to ``DRAIN_BATCH``."""
    sub = node.sub
    by_topic: dict[bytes, tuple[PairState, TopicStats]] = node._by_topic
    core: TradingCore = node.core
    time_ns = time.time_ns
    recv = sub.recv  # bound once, not looked up on pyzmq's socket every tick
    lat: list[int] = node._lat
    lat_i: int = node._lat_i
    handled = 0
    try:
        for _ in range(DRAIN_BATCH):
            try:
                data: bytes = recv(_NOBLOCK)
            except zmq.Again:
                return
            # ``data.partition(TICK_SEP)``, on mypyc's bytes primitives: a method call on bytes
            # is a generic Python call (0.1 µs a tick), the scan of a symbol's few bytes is not
            n = len(data)
            at = 0
            while at < n and data[at] != 0:
                at += 1
            sep = at < n
            tb = data[:at]
            pb = data[at + 1 :] if sep else b""
            entry = by_topic.get(tb) if sep else None
            if entry is None:  # the feed's status, a version-2 tick, or no pair of ours
                msg = read_message(sub, data) if not sep else (tb, pb)
                if msg is None:
                    node.bad_total += 1
                else:
                    on_message(node, msg[0], msg[1])
                continue
            ps, st = entry
            try:
                seq, te, tr, bid, ask, last, bv = tick_values(tb, pb)
            except WireError:
                st.bad += 1
                node.bad_total += 1
                continue
            quarantined = ps.band.quarantined
            if not core.on_tick(ps, te, bid, ask, last, bv):
                refused(node, ps, st, seq, quarantined)
                continue
            exp: int = st.expected_seq
            if exp and seq != exp:
                sequence(ps, st, seq)  # a gap, or a restarted feed
            else:
                st.expected_seq = seq + 1
            handled += 1
            # Feed publish -> decision done, on one host's clock: what bench/ reports as latency.
            lat[lat_i & LATENCY_RING_MASK] = time_ns() - tr
            lat_i += 1
    finally:
        node.ticks_total += handled
        node._lat_i = lat_i


_NOT_WELL_FORMED: Final = (False, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)
# feed.wire's limits as compiled constants (a module attribute of another module is a lookup)
_PRICE_LIMIT: Final[float] = PRICE_LIMIT
_VOLUME_LIMIT: Final[float] = VOLUME_LIMIT
_TE_LIMIT: Final[int] = TE_LIMIT
_SEQ_BITS: Final = SEQ_LIMIT.bit_length() - 1  # SEQ_LIMIT is 2**_SEQ_BITS
_TR_BITS: Final = TR_LIMIT.bit_length() - 1
assert 1 << _SEQ_BITS == SEQ_LIMIT and 1 << _TR_BITS == TR_LIMIT  # powers of two (feed/wire.py)
_V: Final[int] = TICK_VERSION
_V_PREVIOUS: Final[int] = TICK_VERSION_PREVIOUS


def well_formed_tick(payload: bytes) -> tuple[bool, int, int, int, float, float, float, float]:
    """``(True, q, te, tr, b, a, l, bv)`` for a tick array exactly as the feed sends it (floats
    and ints, every field in range, tick version 3 or 2), else ``(False, ...)``: the caller then
    hands the payload to ``feed.wire.tick_fields``, which converts what it can and names what is
    wrong. Compiled, the fields come back unboxed, straight into ``TradingCore.on_tick``: this is
    ``tick_fields``' fast path written out again (``tests/test_tick_wire.py`` holds the two equal:
    what this accepts, ``tick_fields`` returns the same)."""
    try:
        m = _unpackb(payload)
    except Exception:  # msgpack raises several unrelated types on garbage
        return _NOT_WELL_FORMED
    if type(m) is not list or len(m) != TICK_LEN:
        return _NOT_WELL_FORMED
    v, q, te, tr, b, a, last, bv, qv = m
    if not (
        type(v) is int and type(q) is int and type(te) is int and type(tr) is int
        and type(b) is float and type(a) is float and type(last) is float
        and type(bv) is float and type(qv) is float
    ):  # fmt: skip
        return _NOT_WELL_FORMED
    # unboxed from here (NaN fails every comparison)
    iv: int = v
    iq: int = q
    ite: int = te
    itr: int = tr
    fb: float = b
    fa: float = a
    fl: float = last
    fbv: float = bv
    fqv: float = qv
    if (
        iv in (_V, _V_PREVIOUS)
        and 0.0 < fb <= fa < _PRICE_LIMIT and 0.0 < fl < _PRICE_LIMIT
        and 0.0 <= fbv < _VOLUME_LIMIT and 0.0 <= fqv < _VOLUME_LIMIT
        # ``q < 2**63`` as ``q >> 63 == 0`` (q not negative): 2**63 is beyond mypyc's short
        # ints, so a comparison with it is a boxed one (0.1 µs a tick for q and tr)
        and iq >= 0 and iq >> _SEQ_BITS == 0 and 0 <= ite < _TE_LIMIT and itr >= 0 and itr >> _TR_BITS == 0
    ):  # fmt: skip
        return True, iq, ite, itr, fb, fa, fl, fbv
    return _NOT_WELL_FORMED


def tick_values(topic: bytes, payload: bytes) -> tuple[int, int, int, float, float, float, float]:
    """``(q, te, tr, b, a, l, bv)`` of one tick array: the fast path (``well_formed_tick``), else
    ``feed.wire.tick_fields``' named checks; raises WireError on anything malformed."""
    ok, q, te, tr, b, a, last, bv = well_formed_tick(payload)
    if ok:
        return q, te, tr, b, a, last, bv
    _, q, te, tr, b, a, last, bv, _ = tick_fields(topic, payload)
    return q, te, tr, b, a, last, bv


def on_message(node: EngineNode, topic: bytes, payload: bytes) -> None:
    """One message from the feed, two frames already checked. Malformed input is counted and
    dropped, never raised."""
    entry = node._by_topic.get(topic)
    if entry is None:
        if topic == TOPIC_STATUS:
            try:
                status = decode_map(payload)
            except WireError:
                node.bad_total += 1
                return
            node.feed_state = str(status.get("state", "unknown"))[:64]
            node.feed_finished = status.get("finished") is True
            last_seq = status.get("last_seq")
            if type(last_seq) is dict:
                count_lost_tail(node, last_seq)
            return
        node.unknown_symbols += 1
        if topic not in node.left_topics:  # a pair a reload removed is no bad data
            node.bad_total += 1
        return
    ps, st = entry
    try:  # straight into the core's tick path: no object per tick (docs/wire.md, tick v3)
        seq, te, tr, bid, ask, last, bv = tick_values(topic, payload)
    except WireError:
        st.bad += 1
        node.bad_total += 1
        return
    quarantined = ps.band.quarantined
    if not node.core.on_tick(ps, te, bid, ask, last, bv):
        refused(node, ps, st, seq, quarantined)
        return
    sequence(ps, st, seq)
    node.ticks_total += 1
    i = node._lat_i
    node._lat[i & LATENCY_RING_MASK] = time.time_ns() - tr
    node._lat_i = i + 1


def refused(node: EngineNode, ps: PairState, st: TopicStats, seq: int, quarantined: int) -> None:
    """A decoded tick the core refused: implausible or quarantined (counted by the core too).
    ``quarantined``: the band's count of quarantined ticks before this one."""
    node.bad_total += 1
    if ps.band.quarantined != quarantined:
        # a price quarantined came in a sound frame: its sequence number counts (no false gap)
        sequence(ps, st, seq)
    # else stamped far ahead: its sequence number is not believed either (a corrupt frame's may be any)


def sequence(ps: PairState, st: TopicStats, seq: int) -> None:
    """Sequence numbers of decoded ticks: a jump forward is lost messages; back, a restarted feed."""
    exp = st.expected_seq
    if exp and seq != exp:
        if seq > exp:
            st.gaps += seq - exp
        else:
            log.info("%s - feed sequence restarted (%d after %d)", ps.symbol, seq, exp - 1)
    st.expected_seq = seq + 1


def count_lost_tail(node: EngineNode, last_seq: dict[Any, Any]) -> None:
    """The feed's status names each topic's last sequence number: ticks published and not
    received are lost, even when the loss is the tail (no later tick shows the jump). Ticks go
    before the status on the same socket, so none of those is still on its way."""
    for sym in node.core.pairs:
        _ps, st = node._by_topic[sym.encode()]
        q = last_seq.get(sym)
        if type(q) is not int or not 0 <= q < 2**63:
            continue
        exp = st.expected_seq
        if exp == 0:  # no tick yet: those were published before we joined
            st.expected_seq = q + 1 if q > 0 else 0
        elif q >= exp:
            st.gaps += q - exp + 1
            st.expected_seq = q + 1
        elif q < exp - 1:  # the feed restarted
            st.expected_seq = q + 1 if q > 0 else 0
