"""CandleBuilder in engine.core.candles: boundaries, gap candles, late ticks, seeding,
flush_until, and OHLCV against a pandas resample of the same ticks."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.candles import Candle, CandleBuilder

TF = 60
MS = TF * 1000
T0 = 1_700_000_040_000  # a 1-minute boundary (multiple of 60_000)


def _c(ts: int, o: float, h: float, lo: float, c: float, v: float = 0.0, n: int = 1) -> Candle:
    return Candle(ts, o, h, lo, c, v, n)


# ------------------------------------------------------------ boundaries


def test_ohlcv_within_one_interval_and_boundary() -> None:
    b = CandleBuilder(TF)
    assert b.forming is None and b.on_tick(T0 + 5, 100.0, 1.0) == ()
    assert b.on_tick(T0 + 10_000, 103.0, 0.5) == ()
    assert b.on_tick(T0 + 20_000, 98.0, 0.25) == ()
    assert b.on_tick(T0 + MS - 1, 101.0) == ()  # last ms still belongs to this candle
    assert b.forming == _c(T0, 100.0, 103.0, 98.0, 101.0, 1.75, 4)
    out = b.on_tick(T0 + MS, 102.0, 2.0)  # exactly on the boundary: next candle
    assert out == (_c(T0, 100.0, 103.0, 98.0, 101.0, 1.75, 4),)
    assert tuple(b.closed) == out
    assert b.forming == _c(T0 + MS, 102.0, 102.0, 102.0, 102.0, 2.0, 1)
    assert b.gap_candles == 0 and b.late_ticks == 0


def test_first_tick_aligns_open_time() -> None:
    b = CandleBuilder(300)
    b.on_tick(T0 + 123_456, 1.0)
    assert b.forming is not None
    assert b.forming.ts % 300_000 == 0 and b.forming.ts <= T0 + 123_456 < b.forming.ts + 300_000
    assert b.bucket(T0 + 123_456) == b.forming.ts
    assert b.timeframe_ms == 300_000


# ------------------------------------------------------------------ gaps


def test_skipped_intervals_become_flat_gap_candles() -> None:
    b = CandleBuilder(TF)
    b.on_tick(T0, 100.0, 1.0)
    b.on_tick(T0 + 1000, 104.0, 1.0)
    out = b.on_tick(T0 + 5 * MS + 10, 90.0, 3.0)
    assert out[0] == _c(T0, 100.0, 104.0, 100.0, 104.0, 2.0, 2)
    assert out[1:] == tuple(Candle(T0 + i * MS, 104.0, 104.0, 104.0, 104.0, 0.0, 0) for i in range(1, 5))
    assert b.gap_candles == 4
    # The new candle opens at the tick's price, not at the gap's.
    assert b.forming == _c(T0 + 5 * MS, 90.0, 90.0, 90.0, 90.0, 3.0, 1)
    assert [c.ts for c in b.closed] == [T0 + i * MS for i in range(5)]


def test_gap_candles_are_capped_to_the_most_recent() -> None:
    b = CandleBuilder(TF, max_gap_candles=3)
    b.on_tick(T0, 100.0)
    out = b.on_tick(T0 + 11 * MS, 101.0)  # 10 missing intervals
    assert [c.ts for c in out] == [T0, T0 + 8 * MS, T0 + 9 * MS, T0 + 10 * MS]
    assert b.skipped_intervals == 7 and b.gap_candles == 3


def test_history_is_bounded() -> None:
    b = CandleBuilder(TF, history=5)
    for i in range(20):
        b.on_tick(T0 + i * MS, 100.0 + i)
    assert len(b.closed) == 5
    assert [c.close for c in b.closed] == [114.0, 115.0, 116.0, 117.0, 118.0]
    assert b.last_closed is not None and b.last_closed.close == 118.0


# ------------------------------------------------------- late / bad ticks


def test_late_ticks_ignored_and_counted() -> None:
    b = CandleBuilder(TF)
    b.on_tick(T0 + 10, 100.0)
    b.on_tick(T0 + MS + 10, 101.0)
    forming = dataclasses.replace(b.forming)  # a copy
    assert b.on_tick(T0 + 50_000, 500.0, 9.0) == ()  # belongs to the closed candle
    assert b.on_tick(T0 - 1, 500.0) == ()
    assert b.late_ticks == 2
    assert b.forming == forming
    assert b.closed[-1].high == 100.0


def test_out_of_order_tick_inside_interval_does_not_move_close() -> None:
    b = CandleBuilder(TF)
    b.on_tick(T0 + 30_000, 100.0, 1.0)
    b.on_tick(T0 + 10_000, 120.0, 1.0)  # same interval, but older than the last tick
    assert b.forming == _c(T0, 100.0, 120.0, 100.0, 100.0, 2.0, 2)
    assert b.late_ticks == 0


@pytest.mark.parametrize(
    ("price", "vol"),
    [(math.nan, 0.0), (math.inf, 0.0), (0.0, 0.0), (-1.0, 0.0), (1.0, -1.0), (1.0, math.nan)],
)
def test_bad_ticks_ignored(price: float, vol: float) -> None:
    b = CandleBuilder(TF)
    b.on_tick(T0, 100.0)
    assert b.on_tick(T0 + 1, price, vol) == ()
    assert b.bad_ticks == 1
    assert b.forming == _c(T0, 100.0, 100.0, 100.0, 100.0, 0.0, 1)


def test_bad_constructor_args() -> None:
    with pytest.raises(ValueError):
        CandleBuilder(0)
    with pytest.raises(ValueError):
        CandleBuilder(60, history=0)
    with pytest.raises(ValueError):
        CandleBuilder(60, max_gap_candles=-1)


# ------------------------------------------------------ vs pandas resample


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ohlcv_matches_pandas_resample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000
    # Mostly sub-second spacing with occasional multi-minute silences.
    dt = rng.exponential(800.0, n).astype(np.int64)
    silent = rng.random(n) < 0.003
    dt[silent] += rng.integers(MS, 6 * MS, size=int(silent.sum()))
    ts = T0 + 17 + np.cumsum(dt)
    price = 60000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, n)))
    vol = rng.exponential(0.05, n)

    b = CandleBuilder(TF, history=10_000)
    emitted: list[Candle] = []
    for t, p, v in zip(ts.tolist(), price.tolist(), vol.tolist(), strict=True):
        emitted.extend(b.on_tick(t, p, v))
    last_bucket = int(ts[-1]) - int(ts[-1]) % MS
    emitted.extend(b.flush_until(last_bucket + MS))
    assert b.forming is None

    df = pd.DataFrame({"ts": pd.to_datetime(ts, unit="ms"), "price": price, "vol": vol})
    ref = df.resample(f"{TF}s", on="ts").agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("vol", "sum"),
        ticks=("price", "count"),
    )
    # Empty intervals: pandas gives NaN, we give a flat candle at the previous close.
    prev_close = ref["close"].ffill().shift(1)
    empty = ref["ticks"] == 0
    assert empty.any()  # the gaps above really happened
    for col in ("open", "high", "low", "close"):
        ref.loc[empty, col] = prev_close[empty]

    assert len(emitted) == len(ref)
    assert [c.ts for c in emitted] == ref.index.as_unit("ms").asi8.tolist()
    for c, row in zip(emitted, ref.itertuples(), strict=True):
        assert (c.open, c.high, c.low, c.close) == (row.open, row.high, row.low, row.close)
        assert c.ticks == row.ticks
        assert math.isclose(c.volume, row.volume, rel_tol=1e-12, abs_tol=1e-15)


# --------------------------------------------------------------- seeding


def test_seed_then_continue() -> None:
    b = CandleBuilder(TF)
    hist = [_c(T0 + i * MS, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 1.0, 5) for i in range(6)]
    messy = [
        hist[0],
        hist[1],
        hist[1],  # duplicate
        hist[0],  # out of order
        _c(T0 + 2 * MS + 7, 1.0, 1.0, 1.0, 1.0),  # misaligned
        hist[2],
        hist[4],  # hist[3] missing: filled flat
        hist[5],
    ]
    loaded = b.seed(messy)
    assert b.seed_dropped == 3
    assert [c.ts for c in b.closed] == [T0 + i * MS for i in range(6)]
    assert loaded == list(b.closed)
    assert b.closed[3] == Candle(T0 + 3 * MS, 12.5, 12.5, 12.5, 12.5, 0.0, 0)
    assert b.closes() == [10.5, 11.5, 12.5, 12.5, 14.5, 15.5]

    assert b.on_tick(T0 + 5 * MS + 1, 99.0) == ()  # interval already closed in history
    assert b.late_ticks == 1 and b.forming is None
    out = b.on_tick(T0 + 8 * MS + 1, 20.0)  # two missing intervals after history
    assert out == tuple(Candle(T0 + i * MS, 15.5, 15.5, 15.5, 15.5, 0.0, 0) for i in (6, 7))
    assert b.forming is not None and b.forming.ts == T0 + 8 * MS
    assert b.closes(3, include_forming=True) == [15.5, 15.5, 20.0]
    assert b.closes(0) == []

    # Seeding more history only appends strictly newer, already-closed candles.
    assert b.seed([_c(T0 + 8 * MS, 1, 1, 1, 1), _c(T0 + 2 * MS, 1, 1, 1, 1)]) == []
    assert b.seed_dropped == 5


def test_seed_returns_everything_even_beyond_history() -> None:
    # Indicators must warm on all history, not just what `closed` keeps for sparklines.
    b = CandleBuilder(TF, history=10)
    hist = [_c(T0 + i * MS, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i) for i in range(500) if i != 250]
    loaded = b.seed(hist)
    assert len(loaded) == 500 and loaded[250].ticks == 0 and loaded[250].close == loaded[249].close
    assert list(b.closed) == loaded[-10:]
    assert b.gap_candles == 1


def test_seed_without_gap_fill() -> None:
    b = CandleBuilder(TF)
    assert len(b.seed([_c(T0, 1, 1, 1, 1), _c(T0 + 3 * MS, 2, 2, 2, 2)], fill_gaps=False)) == 2
    assert b.seed_dropped == 0
    assert [c.ts for c in b.closed] == [T0, T0 + 3 * MS]


# ----------------------------------------------------------- flush_until


def test_flush_until() -> None:
    b = CandleBuilder(TF)
    assert b.flush_until(T0) == ()  # nothing at all yet
    b.on_tick(T0 + 100, 50.0, 1.0)
    assert b.flush_until(T0 + MS - 1) == ()  # interval not over yet
    out = b.flush_until(T0 + MS)
    assert out == (_c(T0, 50.0, 50.0, 50.0, 50.0, 1.0, 1),) and b.forming is None
    assert b.flush_until(T0 + MS + 30_000) == ()  # current interval still open
    out = b.flush_until(T0 + 4 * MS + 5)
    assert out == tuple(Candle(T0 + i * MS, 50.0, 50.0, 50.0, 50.0, 0.0, 0) for i in (1, 2, 3))
    assert b.on_tick(T0 + 3 * MS + 59_000, 51.0) == ()  # that interval was flushed: late
    assert b.late_ticks == 1
    assert b.on_tick(T0 + 4 * MS + 10, 52.0) == ()  # the still-open interval is fine
    assert b.forming is not None and b.forming.ts == T0 + 4 * MS
    out = b.flush_until(T0 + 7 * MS)
    assert [c.ts for c in out] == [T0 + i * MS for i in (4, 5, 6)]
    assert [c.ts for c in b.closed] == [T0 + i * MS for i in range(7)]


# ------------------------------------------------------------ hypothesis

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("tick"),
            st.integers(-3 * MS, 5 * MS),
            st.floats(0.01, 1e6),
            st.floats(0.0, 10.0),
        ),
        st.tuples(st.just("flush"), st.integers(-MS, 4 * MS), st.just(0.0), st.just(0.0)),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps=ops, tf=st.sampled_from([1, 60, 300]), history=st.integers(1, 50))
def test_candles_never_out_of_order_or_overlapping(
    steps: list[tuple[str, int, float, float]], tf: int, history: int
) -> None:
    tf_ms = tf * 1000
    b = CandleBuilder(tf, history=history)
    now = T0
    emitted: list[Candle] = []
    for kind, dt, price, vol in steps:
        now += dt
        if kind == "tick":
            emitted.extend(b.on_tick(now, price, vol))
        else:
            emitted.extend(b.flush_until(now))
        cur = [*emitted, b.forming] if b.forming is not None else emitted
        for c in cur:
            assert c.ts % tf_ms == 0
            assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
            assert c.volume >= 0.0 and c.ticks >= 0
        # Strictly increasing and contiguous (no overlap, no hole: gaps are filled).
        assert all(b2.ts - a.ts == tf_ms for a, b2 in itertools.pairwise(cur))
        assert list(b.closed) == emitted[-history:]
