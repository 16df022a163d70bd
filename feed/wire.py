"""Tick wire format owned by the feed: what travels on the feed's PUB socket.

A tick (version 3) is ONE ZeroMQ frame: the symbol, a NUL byte, then a positional msgpack array
``[3, q, te, tr, b, a, l, bv, qv]`` (``b"BTC/USDT\0" + array``): the one message sent thousands
of times a second, so one frame to receive instead of two, and the SUB socket still filters on
the symbol (the frame starts with it). The engine decodes it straight into its tick path
(``tick_fields``, no object per tick). Control maps (heartbeat, status, history) stay two-frame
``[topic, msgpack(map)]`` with reserved topics (``_hb``, ``_status``: no symbol starts with
``_``). A version-2 tick (the same array with ``v`` 2, as two frames ``[symbol, array]``) is
still read, for one version. All of it can be read by a test or another language without this
code (``message_parts`` splits either framing). See docs/wire.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

WIRE_VERSION = 1

# Range of every tick field (docs/wire.md). Anything outside is a WireError, so a hostile or
# corrupt message is counted and dropped here instead of overflowing in a consumer later
# (SQLite INTEGER and numpy int64 hold < 2**63). Upper bounds are exclusive.
SEQ_LIMIT = 2**63  # q: 0 <= q < 2**63, a signed 64-bit integer
TE_LIMIT = 7_258_118_400_000  # te: 0 <= te < 2200-01-01T00:00Z in ms (also < 2**53: exact as float)
TR_LIMIT = 2**63  # tr: 0 <= tr < 2**63 ns (time.time_ns() reaches it in 2262)
PRICE_LIMIT = 1e12  # b, a, l: finite, 0 < price < 1e12
VOLUME_LIMIT = 1e18  # bv, qv: finite, 0 <= volume < 1e18

TOPIC_HEARTBEAT = b"_hb"
HEARTBEAT_INTERVAL_S = 1.0  # the feed beats this often; engine/wire/liveness.py derives from it
TOPIC_STATUS = b"_status"
RESERVED_PREFIX = b"_"

# Feed connection states published on TOPIC_STATUS.
STATUS_CONNECTED = "connected"
STATUS_RECONNECTING = "reconnecting"
STATUS_STALE = "stale"
STATUS_STOPPED = "stopped"


class WireError(ValueError):
    """A message that cannot be decoded into a valid value; the receiver counts and drops it."""


@dataclass(slots=True)
class Tick:
    """One normalised ticker update for one symbol."""

    symbol: str
    seq: int  # per-topic sequence number, starts at 1, +1 per message on that topic
    ts_exchange: int  # exchange event time, ms since epoch
    ts_recv: int  # feed receive time, ns since epoch (time.time_ns())
    bid: float
    ask: float
    last: float
    base_volume: float = 0.0  # rolling 24h base volume as the exchange reports it
    quote_volume: float = 0.0

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) * 0.5


_packer = msgpack.Packer(use_bin_type=True)
_pack = _packer.pack
_unpackb = msgpack.unpackb

# The tick, version 3: one frame, ``symbol NUL array`` (docs/wire.md); the array by position.
TICK_VERSION = 3
TICK_SEP = b"\0"  # ends the symbol in a tick frame (no symbol holds a NUL)
TICK_KEYS = ("v", "q", "te", "tr", "b", "a", "l", "bv", "qv")  # names of the positions, for errors
TICK_LEN = len(TICK_KEYS)
# Version 2 (the same array with ``v`` 2, sent as two frames ``[symbol, array]``) is still read,
# for one version: a feed of the previous release still feeds a new engine. It goes with 4.
TICK_VERSION_PREVIOUS = 2
TICK_VERSIONS_DECODED = (TICK_VERSION, TICK_VERSION_PREVIOUS)


def encode_tick_fields(
    seq: int, ts_exchange: int, ts_recv: int, bid: float, ask: float, last: float,
    base_volume: float = 0.0, quote_volume: float = 0.0,
) -> bytes:
    """A tick's array, version 3: ``[3, q, te, tr, b, a, l, bv, qv]`` (the feed's hot path: no
    object). The frame on the wire is the topic, ``TICK_SEP``, then this."""
    return _pack([TICK_VERSION, seq, ts_exchange, ts_recv, bid, ask, last, base_volume, quote_volume])


def encode_tick(tick: Tick) -> bytes:
    """A ``Tick``'s array in the current version (3)."""
    return _pack([TICK_VERSION, tick.seq, tick.ts_exchange, tick.ts_recv, tick.bid, tick.ask, tick.last,
                  tick.base_volume, tick.quote_volume])  # fmt: skip


def tick_frame(tick: Tick) -> bytes:
    """A ``Tick`` as the one frame the feed sends: ``symbol NUL array``."""
    return tick.symbol.encode() + TICK_SEP + encode_tick(tick)


def encode_tick_v2(tick: Tick) -> bytes:
    """A ``Tick``'s array as the previous version sends it (``v`` 2; the second of two frames
    ``[symbol, array]``): what a feed of the previous release sends."""
    return _pack([TICK_VERSION_PREVIOUS, tick.seq, tick.ts_exchange, tick.ts_recv, tick.bid, tick.ask,
                  tick.last, tick.base_volume, tick.quote_volume])  # fmt: skip


def message_parts(frames: list[bytes]) -> tuple[bytes, bytes]:
    """``(topic, payload)`` of one message off the feed's socket, either framing: a tick frame
    (``symbol NUL array``) or two frames ``[topic, payload]`` (a control map, a version-2 tick).
    Raises WireError on any other shape."""
    if len(frames) == 1:
        topic, sep, payload = frames[0].partition(TICK_SEP)
        if sep:
            return topic, payload
        raise WireError(f"a lone frame {frames[0][:40]!r} that is no tick (no NUL after a symbol)")
    if len(frames) == 2:
        return frames[0], frames[1]
    raise WireError(f"{len(frames)} frames: a message is one tick frame or [topic, payload]")


def _price(m: dict[Any, Any], key: str) -> float:
    x = m.get(key)
    if type(x) is int:
        x = float(x)
    if type(x) is not float or not 0.0 < x < PRICE_LIMIT:  # NaN fails every comparison
        raise WireError(f"field {key!r}: expected a finite number 0 < x < {PRICE_LIMIT:g}, got {x!r}")
    return x


def _volume(m: dict[Any, Any], key: str) -> float:
    x = m.get(key, 0.0)
    if type(x) is int:
        x = float(x)
    if type(x) is not float or not 0.0 <= x < VOLUME_LIMIT:
        raise WireError(
            f"field {key!r}: expected a finite number 0 <= x < {VOLUME_LIMIT:g}, got {x!r}"
        )
    return x


def _int(m: dict[Any, Any], key: str, limit: int) -> int:
    x = m.get(key)
    if type(x) is not int or not 0 <= x < limit:  # type(True) is bool: refused
        raise WireError(f"field {key!r}: expected an integer 0 <= x < {limit}, got {x!r}")
    return x


def _checked(m: dict[Any, Any], version: int) -> list[Any]:
    """The named checks (any number types, a field missing): the fields as version 2 lays them
    out, or a WireError naming the field."""
    bid = _price(m, "b")
    ask = _price(m, "a")
    if bid > ask:
        raise WireError(f"fields 'b', 'a': crossed book, bid {bid} > ask {ask}")
    return [
        version, _int(m, "q", SEQ_LIMIT), _int(m, "te", TE_LIMIT), _int(m, "tr", TR_LIMIT), bid, ask,
        _price(m, "l"), _volume(m, "bv"), _volume(m, "qv"),
    ]  # fmt: skip


def tick_fields(topic: bytes, payload: bytes) -> list[Any]:
    """Decode and validate one tick's array into ``[v, q, te, tr, b, a, l, bv, qv]`` (ints and
    floats, every field in range, the version it came in first); raise WireError on anything
    malformed.

    The engine's tick path: no object per tick. An array as the feed sends it (floats, ints, all
    in range) passes one expression; anything else goes through the checks that name the field.
    Version 3 and version 2 arrays are read (the layout is the same; the framing, which differs,
    is the caller's: ``message_parts``). The version-1 map is no longer read."""
    try:
        m = _unpackb(payload)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError(f"undecodable payload: {type(exc).__name__}") from None
    if type(m) is list:
        if len(m) != TICK_LEN:
            raise WireError(f"tick array: expected {TICK_LEN} items [v, q, te, tr, b, a, l, bv, qv], got {len(m)}")
        v, q, te, tr, b, a, last, bv, qv = m
        if type(v) is not int or (v != TICK_VERSION and v != TICK_VERSION_PREVIOUS):  # an int: not 3.0, not True
            raise WireError(f"field 'v': unsupported tick version {v!r} (this engine reads {TICK_VERSION} and 2)")
        # Fast path for the well-formed tick the feed always sends (NaN fails every comparison).
        if (
            type(b) is float and type(a) is float and type(last) is float
            and type(bv) is float and type(qv) is float
            and type(q) is int and type(te) is int and type(tr) is int
            and 0.0 < b <= a < PRICE_LIMIT and 0.0 < last < PRICE_LIMIT
            and 0.0 <= bv < VOLUME_LIMIT and 0.0 <= qv < VOLUME_LIMIT
            and 0 <= q < SEQ_LIMIT and 0 <= te < TE_LIMIT and 0 <= tr < TR_LIMIT
        ):  # fmt: skip
            return m
        return _checked(dict(zip(TICK_KEYS, m, strict=True)), v)
    if type(m) is dict:
        raise WireError(
            f"a tick map (version {m.get('v')!r}): maps are no longer read (tick version {TICK_VERSION} is an array); upgrade the feed"
        )
    raise WireError("payload is not a tick array")


def decode_tick(topic: bytes, payload: bytes) -> Tick:
    """Decode and validate one tick (a version 3 or 2 array) as a ``Tick``; raise WireError on
    anything malformed, or a topic that is no symbol."""
    if topic[:1] == RESERVED_PREFIX or not topic:
        raise WireError(f"topic {topic[:40]!r} is not a symbol")
    _, q, te, tr, b, a, last, bv, qv = tick_fields(topic, payload)
    try:
        symbol = topic.decode()
    except UnicodeDecodeError:
        raise WireError(f"topic {topic[:40]!r} is not a symbol") from None
    return Tick(symbol, q, te, tr, b, a, last, bv, qv)


def encode_map(m: dict[str, Any]) -> bytes:
    """Encode a control map (heartbeat, status, history reply); adds the wire version."""
    return _packer.pack({"v": WIRE_VERSION, **m})


def decode_map(payload: bytes) -> dict[str, Any]:
    """Decode a control map; raise WireError if it is not a versioned map."""
    try:
        m = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:
        raise WireError(f"undecodable payload: {type(exc).__name__}") from None
    if type(m) is not dict:
        raise WireError("payload is not a map")
    v = m.get("v")
    if type(v) is not int or v != WIRE_VERSION:  # an int: not 1.0, not True
        raise WireError(f"field 'v': unsupported wire version {v!r}")
    return m
