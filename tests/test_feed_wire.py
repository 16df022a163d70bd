"""The feed's tick wire format (feed/wire.py): round trips, and every malformed case refused.

Ticks are version 3 since issue 16: one frame ``symbol NUL array``. The version-2 array (sent as
two frames) is still decoded; the version-1 map no longer is. The hostile cases below are written
as field maps and sent as arrays (``_pack_tick``)."""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feed.wire import (
    PRICE_LIMIT,
    SEQ_LIMIT,
    TE_LIMIT,
    TICK_KEYS,
    TICK_SEP,
    TICK_VERSION,
    TICK_VERSION_PREVIOUS,
    TR_LIMIT,
    VOLUME_LIMIT,
    WIRE_VERSION,
    Tick,
    WireError,
    decode_map,
    decode_tick,
    encode_map,
    encode_tick,
    encode_tick_fields,
    encode_tick_v2,
    message_parts,
    tick_fields,
    tick_frame,
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
    """A valid tick's fields by name (``_pack_tick`` lays them out as the array)."""
    return {"v": TICK_VERSION, "q": 1, "te": 1_700_000_000_000, "tr": 1,
            "b": 100.0, "a": 100.5, "l": 100.25, "bv": 1.0, "qv": 100.0}


def _pack(m: Any) -> bytes:
    return msgpack.packb(m, use_bin_type=True)


def _pack_tick(m: dict[str, Any]) -> bytes:
    """The fields as a tick array, in position order; a field deleted is a position missing."""
    return _pack([m[k] for k in TICK_KEYS if k in m])


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
        tick = decode_tick(TOPIC, _pack_tick(m))
        assert (tick.bid, tick.ask, tick.last) == (100.0, 101.0, 100.0)
        assert type(tick.bid) is float

    def test_the_encoding_is_the_documented_frame(self) -> None:
        t = _tick()
        m = msgpack.unpackb(encode_tick(t), raw=False)
        assert m == [3, 7, t.ts_exchange, t.ts_recv, t.bid, t.ask, t.last, t.base_volume, t.quote_volume]
        assert TICK_VERSION == 3 and TICK_KEYS == ("v", "q", "te", "tr", "b", "a", "l", "bv", "qv")
        assert encode_tick_fields(7, t.ts_exchange, t.ts_recv, t.bid, t.ask, t.last, t.base_volume,
                                  t.quote_volume) == encode_tick(t)  # fmt: skip
        frame = tick_frame(t)
        assert frame == b"BTC/USDT" + TICK_SEP + encode_tick(t) and TICK_SEP == b"\x00"
        assert len(frame) == 8 + 1 + len(encode_tick(t))  # one frame instead of two
        assert message_parts([frame]) == (TOPIC, encode_tick(t))
        assert decode_tick(*message_parts([frame])) == t

    def test_the_previous_version_still_decodes(self) -> None:
        """A feed of the previous release (the version-2 array, two frames) still feeds this engine."""
        payload = encode_tick_v2(_tick())
        assert msgpack.unpackb(payload)[0] == TICK_VERSION_PREVIOUS == 2
        assert message_parts([TOPIC, payload]) == (TOPIC, payload)
        assert decode_tick(TOPIC, payload) == _tick()
        assert tick_fields(TOPIC, payload)[1:] == tick_fields(TOPIC, encode_tick(_tick()))[1:]

    def test_the_version_1_map_is_no_longer_read(self) -> None:
        m = {"v": 1, "s": "BTC/USDT"} | {k: v for k, v in _valid_map().items() if k != "v"}
        with pytest.raises(WireError, match=r"maps are no longer read.*upgrade the feed"):
            decode_tick(TOPIC, _pack(m))

    @pytest.mark.parametrize(
        "frames",
        [[b"BTC/USDT"], [b""], [b"a", b"b", b"c"], []],
        ids=["lone-topic", "empty-frame", "three-frames", "none"],
    )
    def test_message_parts_refuses_other_framings(self, frames: list[bytes]) -> None:
        with pytest.raises(WireError):
            message_parts(frames)

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


def _array(**changes: Any) -> bytes:
    """A valid version-3 tick array with some positions (by name) replaced."""
    m = dict(zip(TICK_KEYS, msgpack.unpackb(encode_tick(_tick()), raw=False), strict=True))
    m.update(changes)
    return _pack(list(m.values()))


ARRAY_MALFORMED = [
    pytest.param(_pack([2, 1, 2, 3]), id="too-short"),
    pytest.param(_pack([*msgpack.unpackb(encode_tick(_tick())), 0.0]), id="too-long"),
    pytest.param(_pack([]), id="empty"),
    pytest.param(_array(v=1), id="array-version-1"),
    pytest.param(_array(v=4), id="future-version"),
    pytest.param(_array(v=3.0), id="version-float"),
    pytest.param(_array(v=True), id="version-bool"),
    pytest.param(_array(b=math.nan), id="nan-bid"),
    pytest.param(_array(a=math.inf), id="infinite-ask"),
    pytest.param(_array(l=-1.0), id="negative-last"),
    pytest.param(_array(b=60_002.0), id="crossed-book"),
    pytest.param(_array(b="1"), id="bid-as-text"),
    pytest.param(_array(b=None), id="bid-null"),
    pytest.param(_array(q=-1), id="seq-negative"),
    pytest.param(_array(q=True), id="seq-bool"),
    pytest.param(_array(te=TE_LIMIT), id="exchange-time-2200"),
    pytest.param(_array(tr=1.7e18), id="recv-time-float"),
    pytest.param(_array(bv=-1.0), id="negative-volume"),
    pytest.param(_array(qv=math.nan), id="nan-quote-volume"),
    pytest.param(_pack([2, [1], 2, 3, 4.0, 5.0, 4.5, 0.0, 0.0]), id="nested"),
]


def _mutated(**changes: Any) -> bytes:
    m = _valid_map()
    for key, value in changes.items():
        if value is KeyError:
            del m[key]
        else:
            m[key] = value
    return _pack_tick(m)


MALFORMED = [
    pytest.param(_pack([1, 2, 3]), id="short-array"),
    pytest.param(_pack("BTC/USDT"), id="a-string"),
    pytest.param(_pack({1: 2}), id="integer-keys"),
    pytest.param(_pack(_valid_map()), id="a-map"),
    pytest.param(_mutated(v=4), id="future-version"),
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
    pytest.param(_mutated(qv=KeyError), id="no-quote-volume"),
]


class TestMalformed:
    """Every malformed message raises WireError (the receiver counts and drops it), never crashes."""

    @pytest.mark.parametrize("payload", GARBAGE + MALFORMED)
    def test_decode_tick_refuses(self, payload: bytes) -> None:
        with pytest.raises(WireError):
            decode_tick(TOPIC, payload)

    def test_the_topic_is_the_symbol(self) -> None:
        with pytest.raises(WireError, match="not a symbol"):
            decode_tick(b"_hb", encode_tick(_tick()))
        assert decode_tick(b"ETH/USDT", encode_tick(_tick())).symbol == "ETH/USDT"  # no symbol inside

    @pytest.mark.parametrize("payload", ARRAY_MALFORMED)
    def test_decode_tick_refuses_a_bad_array(self, payload: bytes) -> None:
        with pytest.raises(WireError):
            decode_tick(TOPIC, payload)
        with pytest.raises(WireError):
            tick_fields(TOPIC, payload)

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


# ------------------------------------------------------------------ ranges (hostile input)

YEAR_2000_MS = 946_684_800_000
MAX_PRICE = math.nextafter(PRICE_LIMIT, 0.0)  # the largest price accepted
MAX_VOLUME = math.nextafter(VOLUME_LIMIT, 0.0)


def test_the_documented_bounds() -> None:
    """docs/wire.md states these numbers; a change here is a wire-format change."""
    assert SEQ_LIMIT == 2**63 and TR_LIMIT == 2**63  # fit a signed 64-bit integer (SQLite, int64)
    assert TE_LIMIT == 7_258_118_400_000 < 2**53  # 2200-01-01T00:00Z in ms; exact as a float
    assert (PRICE_LIMIT, VOLUME_LIMIT) == (1e12, 1e18)


# (field, hostile value, the nearest legal value). Each hostile value is refused with a WireError
# naming the field; the legal neighbour, alone in an otherwise valid map, decodes to itself.
# msgpack cannot carry an integer >= 2**64 at all (unpacking fails: "undecodable payload").
HOSTILE = [
    pytest.param("q", SEQ_LIMIT, SEQ_LIMIT - 1, id="seq-2**63"),
    pytest.param("q", 2**64 - 1, SEQ_LIMIT - 1, id="seq-2**64-1"),
    pytest.param("q", -1, 0, id="seq-minus-1"),
    pytest.param("q", -(2**63), 0, id="seq-int64-min"),
    pytest.param("q", True, 1, id="seq-bool"),
    pytest.param("q", float(SEQ_LIMIT - 1), SEQ_LIMIT - 1, id="seq-float"),
    pytest.param("te", TE_LIMIT, TE_LIMIT - 1, id="exchange-time-year-2200"),
    pytest.param("te", 2**53, TE_LIMIT - 1, id="exchange-time-2**53"),
    pytest.param("te", SEQ_LIMIT, TE_LIMIT - 1, id="exchange-time-2**63"),
    pytest.param("te", 2**64 - 1, TE_LIMIT - 1, id="exchange-time-2**64-1"),
    pytest.param("te", -1, 0, id="exchange-time-negative"),
    pytest.param("te", True, 1, id="exchange-time-bool"),
    pytest.param("tr", TR_LIMIT, TR_LIMIT - 1, id="recv-time-2**63"),
    pytest.param("tr", 2**64 - 1, TR_LIMIT - 1, id="recv-time-2**64-1"),
    pytest.param("tr", -1, 0, id="recv-time-negative"),
    pytest.param("tr", 1.7e18, 1_700_000_000_000_000_000, id="recv-time-float"),
    pytest.param("v", 3.0, 3, id="version-float"),
    pytest.param("v", True, 3, id="version-bool"),
    pytest.param("v", 2**64 - 1, 3, id="version-huge"),
    pytest.param("b", 1e300, 100.0, id="bid-1e300"),
    pytest.param("l", 1e300, MAX_PRICE, id="last-1e300"),
    pytest.param("l", PRICE_LIMIT, MAX_PRICE, id="last-at-cap"),
    pytest.param("l", 2**64 - 1, 10**11, id="last-huge-int"),
    pytest.param("l", -math.inf, 100.25, id="last-minus-inf"),
    pytest.param("l", -5e-324, 5e-324, id="last-negative-subnormal"),
    pytest.param("bv", math.nan, 0.0, id="volume-nan"),
    pytest.param("bv", math.inf, MAX_VOLUME, id="volume-inf"),
    pytest.param("bv", VOLUME_LIMIT, MAX_VOLUME, id="volume-at-cap"),
    pytest.param("qv", 1e300, MAX_VOLUME, id="quote-volume-1e300"),
    pytest.param("qv", 2**64 - 1, 10**17, id="quote-volume-huge-int"),
    pytest.param("qv", -1e-300, 0.0, id="quote-volume-negative"),
    pytest.param("bv", False, 0.0, id="volume-bool"),
]


def _slow_path(m: dict[str, Any], field: str) -> dict[str, Any]:
    """The same map with an integer volume that is not `field`: decode takes the named checks."""
    other = "bv" if field == "qv" else "qv"
    return m | {other: int(m[other])}


def _decoded_value(tick: Tick, field: str) -> Any:
    attr = {"q": "seq", "te": "ts_exchange", "tr": "ts_recv", "b": "bid", "a": "ask",
            "l": "last", "bv": "base_volume", "qv": "quote_volume"}
    return TICK_VERSION if field == "v" else getattr(tick, attr[field])


class TestRanges:
    """Hostile values are refused with the field named; the nearest legal value still decodes."""

    @pytest.mark.parametrize("slow", [False, True], ids=["as-sent", "named-checks"])
    @pytest.mark.parametrize(("field", "bad", "good"), HOSTILE)
    def test_hostile_value_refused_and_legal_neighbour_decodes(
        self, field: str, bad: Any, good: Any, slow: bool
    ) -> None:
        m = _valid_map() | {"a": MAX_PRICE}  # room for any legal bid or last
        if slow:
            m = _slow_path(m, field)
        with pytest.raises(WireError, match=re.escape(f"'{field}'")):
            decode_tick(TOPIC, _pack_tick(m | {field: bad}))
        tick = decode_tick(TOPIC, _pack_tick(m | {field: good}))
        assert _decoded_value(tick, field) == good

    def test_a_tick_at_every_upper_bound_round_trips(self) -> None:
        tick = _tick(seq=SEQ_LIMIT - 1, ts_exchange=TE_LIMIT - 1, ts_recv=TR_LIMIT - 1,
                     bid=MAX_PRICE, ask=MAX_PRICE, last=MAX_PRICE,
                     base_volume=MAX_VOLUME, quote_volume=MAX_VOLUME)
        assert decode_tick(TOPIC, encode_tick(tick)) == tick
        m = dict(zip(TICK_KEYS, msgpack.unpackb(encode_tick(tick)), strict=True)) | {"bv": 0}  # the named checks too
        assert decode_tick(TOPIC, _pack_tick(m)) == _tick(
            seq=SEQ_LIMIT - 1, ts_exchange=TE_LIMIT - 1, ts_recv=TR_LIMIT - 1, bid=MAX_PRICE,
            ask=MAX_PRICE, last=MAX_PRICE, base_volume=0.0, quote_volume=MAX_VOLUME)

    def test_a_tick_at_every_lower_bound_round_trips(self) -> None:
        tiny = 5e-324  # the smallest positive float is a legal (if silly) price
        tick = _tick(seq=0, ts_exchange=0, ts_recv=0, bid=tiny, ask=tiny, last=tiny,
                     base_volume=0.0, quote_volume=0.0)
        assert decode_tick(TOPIC, encode_tick(tick)) == tick

    def test_present_day_times_are_far_inside_the_bounds(self) -> None:
        te, tr = 1_700_000_000_000, 1_700_000_000_000_000_000  # Nov 2023
        assert YEAR_2000_MS < te < TE_LIMIT and 0 < tr < TR_LIMIT
        assert decode_tick(TOPIC, encode_tick(_tick(ts_exchange=te, ts_recv=tr))).ts_recv == tr

    def test_crossed_book_names_both_fields(self) -> None:
        with pytest.raises(WireError, match="'b', 'a'"):
            decode_tick(TOPIC, _mutated(b=101.0, a=100.0))

    def test_unknown_keys_of_a_control_map_are_ignored(self) -> None:
        """Forward compatible: a newer feed may add keys to its control maps (a tick's array has
        no room for them: a new field is a new version)."""
        assert decode_map(encode_map({"new_field": 2**64 - 1}))["new_field"] == 2**64 - 1

    @pytest.mark.parametrize("v", [1.0, True, 2**64 - 1, -1, None, "1", [1]], ids=repr)
    def test_decode_map_wants_the_integer_version(self, v: Any) -> None:
        with pytest.raises(WireError, match="'v'"):
            decode_map(_pack({"v": v, "kind": "feed"}))
        assert decode_map(_pack({"v": 1, "kind": "feed"})) == {"v": 1, "kind": "feed"}


# ------------------------------------------------------------------------------ hypothesis

_prices = st.floats(min_value=0.0, max_value=MAX_PRICE, exclude_min=True)
_volumes = st.floats(min_value=0.0, max_value=MAX_VOLUME)


@st.composite
def _valid_ticks(draw: st.DrawFn) -> Tick:
    bid, ask = sorted((draw(_prices), draw(_prices)))
    return Tick(
        symbol="BTC/USDT", seq=draw(st.integers(0, SEQ_LIMIT - 1)),
        ts_exchange=draw(st.integers(0, TE_LIMIT - 1)), ts_recv=draw(st.integers(0, TR_LIMIT - 1)),
        bid=bid, ask=ask, last=draw(_prices),
        base_volume=draw(_volumes), quote_volume=draw(_volumes),
    )


@settings(max_examples=300, deadline=None)
@given(tick=_valid_ticks())
def test_property_every_valid_tick_round_trips(tick: Tick) -> None:
    assert decode_tick(TOPIC, encode_tick(tick)) == tick


# Values that sit on or just past a bound, and anything else msgpack can carry.
_EDGES = [0, 1, -1, SEQ_LIMIT - 1, SEQ_LIMIT, 2**64 - 1, -(2**63), TE_LIMIT - 1, TE_LIMIT, 2**53,
          0.0, -0.0, 5e-324, 1.0, MAX_PRICE, PRICE_LIMIT, MAX_VOLUME, VOLUME_LIMIT, 1e300,
          math.inf, -math.inf, math.nan, True, False, None, "", "BTC/USDT", b"BTC/USDT"]
_scalars = st.one_of(
    st.sampled_from(_EDGES), st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
    st.floats(), st.text(max_size=8), st.binary(max_size=8),
)
_anything = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
_KEYS = ["v", "s", "q", "te", "tr", "b", "a", "l", "bv", "qv"]


@st.composite
def _hostile_maps(draw: st.DrawFn) -> dict[str, Any]:
    """A valid tick's fields (and the old map's ``s``) as a map, some deleted, some replaced by
    edge values or junk, some added: a map is never a tick now, whatever it holds."""
    t = draw(_valid_ticks())
    m = dict(zip(TICK_KEYS, msgpack.unpackb(encode_tick(t)), strict=True)) | {"s": t.symbol}
    for key in draw(st.lists(st.sampled_from(_KEYS), max_size=4)):
        m.pop(key, None)
    m.update(draw(st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=3), _anything,
                                  max_size=5)))
    return m


def _assert_in_bounds(tick: Tick) -> None:
    assert type(tick.symbol) is str and tick.symbol.encode() == TOPIC
    for x, limit in ((tick.seq, SEQ_LIMIT), (tick.ts_exchange, TE_LIMIT), (tick.ts_recv, TR_LIMIT)):
        assert type(x) is int and 0 <= x < limit
    for x in (tick.bid, tick.ask, tick.last):
        assert type(x) is float and 0.0 < x < PRICE_LIMIT
    for x in (tick.base_volume, tick.quote_volume):
        assert type(x) is float and 0.0 <= x < VOLUME_LIMIT
    assert tick.bid <= tick.ask


@settings(max_examples=1000, deadline=None)
@given(m=_hostile_maps() | st.dictionaries(st.text(max_size=3), _anything, max_size=12))
@example(m=_valid_map() | {"q": SEQ_LIMIT})
@example(m=_valid_map() | {"v": 1.0})
@example(m=_valid_map() | {"v": 1})
def test_property_any_map_is_refused_as_a_tick_and_decodes_in_bounds_as_a_control_map(m: dict[str, Any]) -> None:
    payload = _pack(m)
    with pytest.raises(WireError):
        decode_tick(TOPIC, payload)  # counted and dropped by the receiver
    try:
        decoded = decode_map(payload)
    except WireError:
        pass
    else:
        assert type(decoded["v"]) is int and decoded["v"] == WIRE_VERSION


@settings(max_examples=500, deadline=None)
@given(items=st.lists(_anything, min_size=9, max_size=9), valid=_valid_ticks(), keep=st.integers(0, 8))
def test_property_any_array_decodes_in_bounds_or_raises_wire_error(items: list[Any], valid: Tick, keep: int) -> None:
    """A version-3 array with junk at some positions (a valid tick's values at the others)."""
    good = msgpack.unpackb(encode_tick(valid))
    arr = [*good[:keep], *items[keep:]]
    try:
        tick = decode_tick(TOPIC, _pack(arr))
    except WireError:
        pass
    else:
        _assert_in_bounds(tick)


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=64))
def test_property_any_bytes_decode_or_raise_wire_error(payload: bytes) -> None:
    for decode in (lambda: decode_tick(TOPIC, payload), lambda: decode_map(payload)):
        with contextlib.suppress(WireError):
            decode()
