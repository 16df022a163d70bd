"""Tick wire format owned by the feed: what travels on the feed's PUB socket.

Every message is a two-frame ZeroMQ multipart ``[topic, msgpack(map)]``. Market data uses
the symbol as topic (``b"BTC/USDT"``); reserved topics start with ``_`` (no symbol does).
Maps are plain, versioned msgpack so a test or another language can read them without
this code. See docs/wire.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack

WIRE_VERSION = 1
_INF = math.inf

TOPIC_HEARTBEAT = b"_hb"
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
    if type(x) is not float or not math.isfinite(x) or x <= 0.0:
        raise WireError(f"field {key!r}: expected a positive finite number, got {x!r}")
    return x


def _volume(m: dict[Any, Any], key: str) -> float:
    x = m.get(key, 0.0)
    if type(x) is int:
        x = float(x)
    if type(x) is not float or not math.isfinite(x) or x < 0.0:
        raise WireError(f"field {key!r}: expected a non-negative finite number, got {x!r}")
    return x


def _int(m: dict[Any, Any], key: str) -> int:
    x = m.get(key)
    if type(x) is not int or x < 0:
        raise WireError(f"field {key!r}: expected a non-negative integer, got {x!r}")
    return x


def decode_tick(topic: bytes, payload: bytes) -> Tick:
    """Decode and validate one tick; raise WireError on anything malformed."""
    try:
        m = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError(f"undecodable payload: {type(exc).__name__}") from None
    if type(m) is not dict:
        raise WireError("payload is not a map")
    if m.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported wire version {m.get('v')!r}")
    symbol = m.get("s")
    if type(symbol) is not str or topic != symbol.encode():
        raise WireError(f"symbol {symbol!r} does not match topic {topic!r}")
    # Fast path for the well-formed message the feed always sends (floats, ints, no NaN: every
    # comparison with NaN is False); anything else goes through the checks that name the field.
    b, a, last = m.get("b"), m.get("a"), m.get("l")
    bv, qv = m.get("bv", 0.0), m.get("qv", 0.0)
    q, te, tr = m.get("q"), m.get("te"), m.get("tr")
    if (
        type(b) is float and type(a) is float and type(last) is float
        and type(bv) is float and type(qv) is float
        and type(q) is int and type(te) is int and type(tr) is int
        and 0.0 < b <= a < _INF and 0.0 < last < _INF and 0.0 <= bv < _INF and 0.0 <= qv < _INF
        and q >= 0 and te >= 0 and tr >= 0
    ):  # fmt: skip
        return Tick(symbol, q, te, tr, b, a, last, bv, qv)
    bid = _price(m, "b")
    ask = _price(m, "a")
    if bid > ask:
        raise WireError(f"crossed book: bid {bid} > ask {ask}")
    return Tick(
        symbol=symbol,
        seq=_int(m, "q"),
        ts_exchange=_int(m, "te"),
        ts_recv=_int(m, "tr"),
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
    if type(m) is not dict or m.get("v") != WIRE_VERSION:
        raise WireError("not a versioned map")
    return m
