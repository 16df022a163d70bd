"""The feed's tick wire format (feed/wire.py): round trips, and every malformed case refused."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest

from feed.wire import (
    WIRE_VERSION,
    Tick,
    WireError,
    decode_map,
    decode_tick,
    encode_map,
    encode_tick,
)

TOPIC = b"BTC/USDT"


def _tick(**over: Any) -> Tick:
    fields: dict[str, Any] = dict(
        symbol="BTC/USDT", seq=7, ts_exchange=1_700_000_000_123, ts_recv=1_700_000_000_456_000_000,
        bid=60_000.5, ask=60_001.25, last=60_001.0, base_volume=12_345.5, quote_volume=7.4e8,
    )
    fields.update(over)
    return Tick(**fields)


def _valid_map() -> dict[str, Any]:
    return {"v": WIRE_VERSION, "s": "BTC/USDT", "q": 1, "te": 1_700_000_000_000, "tr": 1,
            "b": 100.0, "a": 100.5, "l": 100.25, "bv": 1.0, "qv": 100.0}


def _pack(m: Any) -> bytes:
    return msgpack.packb(m, use_bin_type=True)


class TestRoundTrip:
    """What the feed encodes, any consumer decodes to the same tick."""

    def test_tick_round_trip(self) -> None:
        tick = _tick()
        assert decode_tick(TOPIC, encode_tick(tick)) == tick

    def test_equal_bid_ask_and_zero_volume_are_valid(self) -> None:
        tick = _tick(bid=5.0, ask=5.0, last=5.0, base_volume=0.0, quote_volume=0.0)
        assert decode_tick(TOPIC, encode_tick(tick)) == tick

    def test_integer_prices_are_read_as_floats(self) -> None:
        m = _valid_map() | {"b": 100, "a": 101, "l": 100}
        tick = decode_tick(TOPIC, _pack(m))
        assert (tick.bid, tick.ask, tick.last) == (100.0, 101.0, 100.0)
        assert type(tick.bid) is float

    def test_missing_volumes_default_to_zero(self) -> None:
        m = _valid_map()
        del m["bv"], m["qv"]
        tick = decode_tick(TOPIC, _pack(m))
        assert (tick.base_volume, tick.quote_volume) == (0.0, 0.0)

    def test_the_encoding_is_the_documented_map(self) -> None:
        m = msgpack.unpackb(encode_tick(_tick()), raw=False)
        assert set(m) == {"v", "s", "q", "te", "tr", "b", "a", "l", "bv", "qv"}
        assert m["v"] == WIRE_VERSION and m["s"] == "BTC/USDT" and m["q"] == 7

    def test_mid(self) -> None:
        assert _tick(bid=10.0, ask=12.0).mid == 11.0

    def test_control_map_round_trip(self) -> None:
        m = {"kind": "feed", "seq": 3, "symbols": {"BTC/USDT": 1}, "last_error": None}
        assert decode_map(encode_map(m)) == {"v": WIRE_VERSION, **m}


GARBAGE = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\xc1", id="reserved-byte"),
    pytest.param(b"not msgpack at all", id="text"),
    pytest.param(b"\x92\x01", id="truncated-array"),
    pytest.param(b"\x85\xa1v\x01", id="truncated-map"),
]


def _mutated(**changes: Any) -> bytes:
    m = _valid_map()
    for key, value in changes.items():
        if value is KeyError:
            del m[key]
        else:
            m[key] = value
    return _pack(m)


MALFORMED = [
    pytest.param(_pack([1, 2, 3]), id="not-a-map"),
    pytest.param(_pack("BTC/USDT"), id="a-string"),
    pytest.param(_pack({1: 2}), id="integer-keys"),
    pytest.param(_mutated(v=2), id="future-version"),
    pytest.param(_mutated(v=0), id="version-zero"),
    pytest.param(_mutated(v="1"), id="version-as-text"),
    pytest.param(_mutated(v=KeyError), id="no-version"),
    pytest.param(_mutated(b=math.nan), id="nan-bid"),
    pytest.param(_mutated(a=math.nan), id="nan-ask"),
    pytest.param(_mutated(l=math.nan), id="nan-last"),
    pytest.param(_mutated(a=math.inf), id="infinite-ask"),
    pytest.param(_mutated(b=-100.0), id="negative-bid"),
    pytest.param(_mutated(l=-1.0), id="negative-last"),
    pytest.param(_mutated(b=0.0), id="zero-bid"),
    pytest.param(_mutated(l=0), id="zero-last"),
    pytest.param(_mutated(b=101.0, a=100.0), id="crossed-book"),
    pytest.param(_mutated(b="100.0"), id="bid-as-text"),
    pytest.param(_mutated(b=True), id="bid-as-bool"),
    pytest.param(_mutated(b=None), id="bid-null"),
    pytest.param(_mutated(b=KeyError), id="no-bid"),
    pytest.param(_mutated(q=1.5), id="seq-float"),
    pytest.param(_mutated(q=-1), id="seq-negative"),
    pytest.param(_mutated(q="1"), id="seq-text"),
    pytest.param(_mutated(te=KeyError), id="no-exchange-time"),
    pytest.param(_mutated(te=1.7e12), id="exchange-time-float"),
    pytest.param(_mutated(tr=-5), id="recv-time-negative"),
    pytest.param(_mutated(bv=-1.0), id="negative-volume"),
    pytest.param(_mutated(qv=math.nan), id="nan-quote-volume"),
    pytest.param(_mutated(bv="lots"), id="volume-as-text"),
    pytest.param(_mutated(s="ETH/USDT"), id="symbol-differs-from-topic"),
    pytest.param(_mutated(s=KeyError), id="no-symbol"),
    pytest.param(_mutated(s=b"BTC/USDT"), id="symbol-as-bytes"),
]


class TestMalformed:
    """Every malformed message raises WireError (the receiver counts and drops it), never crashes."""

    @pytest.mark.parametrize("payload", GARBAGE + MALFORMED)
    def test_decode_tick_refuses(self, payload: bytes) -> None:
        with pytest.raises(WireError):
            decode_tick(TOPIC, payload)

    def test_topic_mismatch(self) -> None:
        payload = encode_tick(_tick())
        with pytest.raises(WireError, match="topic"):
            decode_tick(b"ETH/USDT", payload)
        with pytest.raises(WireError):
            decode_tick(b"_hb", payload)

    def test_wire_error_is_a_value_error(self) -> None:
        assert issubclass(WireError, ValueError)

    @pytest.mark.parametrize(
        "payload",
        [*GARBAGE, pytest.param(_pack([1]), id="list"), pytest.param(_pack({"x": 1}), id="no-v"),
         pytest.param(_pack({"v": 99}), id="wrong-v")],
    )
    def test_decode_map_refuses(self, payload: bytes) -> None:
        with pytest.raises(WireError):
            decode_map(payload)
