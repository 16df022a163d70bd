"""Tick wire format owned by the feed: what travels on the feed's PUB socket.

Every message is a two-frame ZeroMQ multipart ``[topic, msgpack(map)]``. Market data uses
the symbol as topic (``b"BTC/USDT"``); reserved topics start with ``_`` (no symbol does).
Maps are plain, versioned msgpack so a test or another language can read them without
this code. See docs/wire.md.
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


def encode_tick(tick: Tick) -> bytes:
    return _packer.pack(
        {
            "v": WIRE_VERSION,
            "s": tick.symbol,
            "q": tick.seq,
            "te": tick.ts_exchange,
            "tr": tick.ts_recv,
            "b": tick.bid,
            "a": tick.ask,
            "l": tick.last,
            "bv": tick.base_volume,
            "qv": tick.quote_volume,
        }
    )


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


def decode_tick(topic: bytes, payload: bytes) -> Tick:
    """Decode and validate one tick; raise WireError on anything malformed."""
    try:
        m = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError(f"undecodable payload: {type(exc).__name__}") from None
    if type(m) is not dict:
        raise WireError("payload is not a map")
    v = m.get("v")
    if type(v) is not int or v != WIRE_VERSION:  # an int: not 1.0, not True (type(True) is bool)
        raise WireError(f"field 'v': unsupported wire version {v!r}")
    symbol = m.get("s")
    if type(symbol) is not str or topic != symbol.encode():
        raise WireError(f"field 's': symbol {symbol!r} does not match topic {topic!r}")
    # Fast path for the well-formed message the feed always sends (floats, ints, every field in
    # range; NaN fails every comparison); anything else goes through the checks that name the
    # field. Same bounds as the slow path below.
    b, a, last = m.get("b"), m.get("a"), m.get("l")
    bv, qv = m.get("bv", 0.0), m.get("qv", 0.0)
    q, te, tr = m.get("q"), m.get("te"), m.get("tr")
    if (
        type(b) is float and type(a) is float and type(last) is float
        and type(bv) is float and type(qv) is float
        and type(q) is int and type(te) is int and type(tr) is int
        and 0.0 < b <= a < PRICE_LIMIT and 0.0 < last < PRICE_LIMIT
        and 0.0 <= bv < VOLUME_LIMIT and 0.0 <= qv < VOLUME_LIMIT
        and 0 <= q < SEQ_LIMIT and 0 <= te < TE_LIMIT and 0 <= tr < TR_LIMIT
    ):  # fmt: skip
        return Tick(symbol, q, te, tr, b, a, last, bv, qv)
    bid = _price(m, "b")
    ask = _price(m, "a")
    if bid > ask:
        raise WireError(f"fields 'b', 'a': crossed book, bid {bid} > ask {ask}")
    return Tick(
        symbol=symbol,
        seq=_int(m, "q", SEQ_LIMIT),
        ts_exchange=_int(m, "te", TE_LIMIT),
        ts_recv=_int(m, "tr", TR_LIMIT),
        bid=bid,
        ask=ask,
        last=_price(m, "l"),
        base_volume=_volume(m, "bv"),
        quote_volume=_volume(m, "qv"),
    )


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
