"""Incremental indicators in engine.core.indicators against TA-Lib, pandas and numpy.

Every indicator is checked at every index: None exactly where TA-Lib gives NaN,
and equal to 1e-9 relative elsewhere. preview() must equal update() bit for bit
and leave the state untouched.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.core.indicators import (
    ATR,
    EMA,
    RSI,
    SMA,
    BollingerBands,
    RollingCorrelation,
    RollingMax,
    RollingMin,
    bollinger_position,
)

REL = 1e-9

# ------------------------------------------------------------------ series


def _walk(seed: int, n: int = 1000, start: float = 60000.0, vol: float = 0.002) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


def _trend(n: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.linspace(100.0, 250.0, n) + rng.normal(0.0, 0.3, n)


def _flat(n: int = 1000) -> np.ndarray:
    return np.full(n, 100.1)


def _gap(n: int = 1000) -> np.ndarray:
    x = _walk(11, n, start=3000.0, vol=0.001)
    x[n // 2 :] *= 0.7  # a 30% gap down mid-series
    return x


def _flat_then_move(n: int = 1000) -> np.ndarray:
    x = _walk(5, n, start=1.2345, vol=0.003)
    x[100:300] = x[100]  # long flat stretch inside a moving series
    return x


SERIES: dict[str, Callable[[], np.ndarray]] = {
    "walk_btc_1": lambda: _walk(1),
    "walk_btc_2": lambda: _walk(2),
    "walk_alt": lambda: _walk(3, start=0.5, vol=0.01),
    "walk_shib": lambda: _walk(4, start=1.2e-5, vol=0.005),
    "trend": _trend,
    "flat": _flat,
    "gap": _gap,
    "flat_then_move": _flat_then_move,
}


def _ohlc(close: np.ndarray, seed: int = 99) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    opens = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.001, close.size)) * close
    high = np.maximum(opens, close) + spread
    low = np.minimum(opens, close) - spread * rng.uniform(0.0, 1.0, close.size)
    return high, low, close


def _assert_series(ours: Sequence[float | None], ref: np.ndarray, abs_tol: float) -> None:
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        if math.isnan(b):
            assert a is None, f"index {i}: expected None (TA-Lib NaN), got {a}"
        else:
            assert a is not None, f"index {i}: got None, TA-Lib {b}"
            assert math.isclose(a, b, rel_tol=REL, abs_tol=abs_tol), f"index {i}: {a} != {b}"


def _price_tol(x: np.ndarray) -> float:
    # 1e-12 absolute is meaningless for a 1e-5 coin; scale it with the price.
    return 1e-12 * float(np.median(np.abs(x)))


# ------------------------------------------------------------- vs TA-Lib


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("period", [2, 5, 20, 50])
def test_sma_matches_talib(name: str, period: int) -> None:
    x = SERIES[name]()
    ind = SMA(period)
    ours = [ind.update(float(v)) for v in x]
    _assert_series(ours, talib.SMA(x, period), _price_tol(x))
    assert ind.ready and ind.value == ours[-1]


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("period", [2, 9, 21, 50])
def test_ema_matches_talib(name: str, period: int) -> None:
    x = SERIES[name]()
    ind = EMA(period)
    ours = [ind.update(float(v)) for v in x]
    _assert_series(ours, talib.EMA(x, period), _price_tol(x))


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_talib(name: str, period: int) -> None:
    x = SERIES[name]()
    ind = RSI(period)
    ours = [ind.update(float(v)) for v in x]
    _assert_series(ours, talib.RSI(x, period), 1e-12)


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize(("period", "num_std"), [(5, 2.0), (20, 2.0), (20, 1.5), (50, 3.0)])
def test_bbands_matches_talib(name: str, period: int, num_std: float) -> None:
    x = SERIES[name]()
    ind = BollingerBands(period, num_std)
    ours = [ind.update(float(v)) for v in x]
    upper, middle, lower = talib.BBANDS(
        x, timeperiod=period, nbdevup=num_std, nbdevdn=num_std, matype=0
    )
    tol = _price_tol(x)
    for k, ref in enumerate((upper, middle, lower)):
        _assert_series([None if v is None else v[k] for v in ours], ref, tol)
    # The band half-width itself (much less forgiving than the bands) agrees too.
    widths = [None if v is None else v[0] - v[1] for v in ours]
    _assert_series(widths, upper - middle, tol * 10)


@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize("period", [1, 2, 14, 30])
def test_atr_matches_talib(name: str, period: int) -> None:
    high, low, close = _ohlc(SERIES[name]())
    ind = ATR(period)
    ours = [
        ind.update(float(h), float(lo), float(c)) for h, lo, c in zip(high, low, close, strict=True)
    ]
    ref = talib.ATR(high, low, close, timeperiod=period)
    # TA-Lib's first ATR is at index `period` (the first TR needs a previous close).
    assert int(np.argmax(~np.isnan(ref))) == period
    _assert_series(ours, ref, _price_tol(close))


def test_warmup_indices() -> None:
    x = _walk(21, 40)
    h, lo, c = _ohlc(x)
    firsts = {}
    for name, ind in {
        "sma": SMA(10),
        "ema": EMA(10),
        "rsi": RSI(10),
        "bb": BollingerBands(10),
    }.items():
        firsts[name] = next(i for i, v in enumerate(x) if ind.update(float(v)) is not None)
    atr = ATR(10)
    firsts["atr"] = next(i for i in range(40) if atr.update(h[i], lo[i], c[i]) is not None)
    assert firsts == {"sma": 9, "ema": 9, "rsi": 10, "bb": 9, "atr": 10}


def test_rsi_is_scale_free() -> None:
    # TA-Lib < 0.6 zeroed RSI under an absolute 1e-8 epsilon; ours only on exact zero.
    x = _walk(8, 300, start=1.0, vol=0.01)
    big, tiny = RSI(14), RSI(14)
    for v in x:
        a, b = big.update(float(v)), tiny.update(float(v) * 1e-9)
        assert (a is None) == (b is None)
        if a is not None:
            assert b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_flat_series_values() -> None:
    rsi, bb = RSI(14), BollingerBands(20, 2.0)
    for _ in range(50):
        r = rsi.update(100.1)
        b = bb.update(100.1)
    assert r == 0.0  # TA-Lib convention for "nothing moved"
    assert b == (100.1, 100.1, 100.1)


def test_flat_window_after_moves_is_exactly_flat() -> None:
    # Illiquid pairs get runs of flat gap candles: the bands must collapse exactly.
    x = [*_walk(9, 60, start=0.1, vol=0.02).tolist(), *([0.1] * 25)]
    bb = BollingerBands(20, 2.0)
    for i, v in enumerate(x):
        out = bb.update(v)
        if i >= 60 + 19:
            assert out == (0.1, 0.1, 0.1)
            assert bollinger_position(0.1, out[0], out[2]) == 0.5


# -------------------------------------------------- Bollinger drift (100k)


def test_bbands_no_drift_100k() -> None:
    n, period = 100_000, 20
    rng = np.random.default_rng(2024)
    x = 60000.0 + np.cumsum(rng.normal(0.0, 2.0, n))  # ~60000 with small moves
    ind = BollingerBands(period, 2.0)
    ours = [ind.update(v) for v in x.tolist()]

    # Exact reference: two-pass population std of every window.
    win = np.lib.stride_tricks.sliding_window_view(x, period)
    exact_std = win.std(axis=1)
    exact_mid = np.array([math.fsum(w) / period for w in win])
    got = np.array([v for v in ours[period - 1 :]], dtype=float)
    got_std = (got[:, 0] - got[:, 2]) / 4.0
    assert all(v is None for v in ours[: period - 1])
    np.testing.assert_allclose(got[:, 1], exact_mid, rtol=1e-12, atol=0)
    # 1e-9 relative on the std itself, at every one of the 100k windows.
    np.testing.assert_allclose(got_std, exact_std, rtol=1e-9, atol=0)
    worst = float(np.max(np.abs(got_std - exact_std) / exact_std))

    upper, middle, lower = talib.BBANDS(x, timeperiod=period, nbdevup=2.0, nbdevdn=2.0, matype=0)
    np.testing.assert_allclose(got[:, 0], upper[period - 1 :], rtol=1e-9, atol=0)
    np.testing.assert_allclose(got[:, 1], middle[period - 1 :], rtol=1e-9, atol=0)
    np.testing.assert_allclose(got[:, 2], lower[period - 1 :], rtol=1e-9, atol=0)

    # The textbook running sum of squares misses that bar on the same data.
    s = s2 = 0.0
    window: deque[float] = deque()
    naive_worst = 0.0
    for i, v in enumerate(x.tolist()):
        s += v
        s2 += v * v
        window.append(v)
        if len(window) > period:
            o = window.popleft()
            s -= o
            s2 -= o * o
        if len(window) == period:
            m = s / period
            sd = math.sqrt(max(s2 / period - m * m, 0.0))
            e = exact_std[i - period + 1]
            naive_worst = max(naive_worst, abs(sd - e) / e)
    assert naive_worst > 1e-9 > worst


def test_bbands_recentres_after_price_gap() -> None:
    x = [60000.0 + math.sin(i) for i in range(200)] + [30000.0 + math.sin(i) for i in range(200)]
    ind = BollingerBands(20, 2.0)
    for i, v in enumerate(x):
        out = ind.update(v)
        if i >= 19:
            assert out is not None
            w = np.array(x[i - 19 : i + 1])
            assert math.isclose((out[0] - out[1]) / 2.0, float(w.std()), rel_tol=1e-9)


# ------------------------------------------------------------- preview


def _state(obj: Any) -> tuple[Any, ...]:
    out = []
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            v = getattr(obj, name)
            out.append(tuple(v) if isinstance(v, deque) else v)
    return tuple(out)


def _single_input_indicators() -> list[Any]:
    return [
        SMA(1),
        SMA(7),
        EMA(1),
        EMA(7),
        RSI(1),
        RSI(7),
        BollingerBands(1),
        BollingerBands(7, 2.5),
        RollingMax(1),
        RollingMax(7),
        RollingMin(7),
    ]


@pytest.mark.parametrize("name", ["walk_btc_1", "flat_then_move", "gap", "walk_shib"])
def test_preview_equals_update_and_is_pure(name: str) -> None:
    x = SERIES[name]()[:300]
    rng = np.random.default_rng(3)
    inds = _single_input_indicators()
    for v in x.tolist():
        for ind in inds:
            before = _state(ind)
            for probe in rng.normal(v, abs(v) * 0.01, 3).tolist():
                ind.preview(probe)  # forming-candle ticks
            assert _state(ind) == before
            p = ind.preview(v)
            assert _state(ind) == before
            assert ind.update(v) == p
            assert ind.value == p
            assert ind.ready == (p is not None)


def test_atr_preview_equals_update_and_is_pure() -> None:
    high, low, close = _ohlc(_gap()[:300])
    ind = ATR(5)
    for h, lo, c in zip(high.tolist(), low.tolist(), close.tolist(), strict=True):
        before = _state(ind)
        ind.preview(h * 1.01, lo * 0.99, c)
        p = ind.preview(h, lo, c)
        assert _state(ind) == before
        assert ind.update(h, lo, c) == p
        assert ind.value == p


# ------------------------------------------------ rolling max / min / corr


@pytest.mark.parametrize("period", [1, 3, 20, 55])
@pytest.mark.parametrize("name", ["walk_btc_1", "flat_then_move", "trend"])
def test_rolling_max_min_match_pandas(period: int, name: str) -> None:
    x = SERIES[name]()
    s = pd.Series(x)
    ref_max = s.rolling(period).max().to_numpy()
    ref_min = s.rolling(period).min().to_numpy()
    mx, mn = RollingMax(period), RollingMin(period)
    got_max = [mx.update(v) for v in x.tolist()]
    got_min = [mn.update(v) for v in x.tolist()]
    _assert_series(got_max, ref_max, 0.0)
    _assert_series(got_min, ref_min, 0.0)


def test_rolling_max_with_ties_and_integers() -> None:
    ind = RollingMax(3)
    out = [ind.update(v) for v in [5, 5, 5, 1, 1, 1, 7, 7, 2, 2, 2]]
    assert out == [None, None, 5, 5, 5, 1, 7, 7, 7, 7, 2]


def _returns(x: np.ndarray) -> np.ndarray:
    return np.diff(x) / x[:-1]


@pytest.mark.parametrize("window", [2, 10, 60])
def test_rolling_correlation_matches_numpy(window: int) -> None:
    rng = np.random.default_rng(17)
    n = 800
    common = rng.normal(0.0, 0.002, n)
    btc = 60000.0 * np.exp(np.cumsum(common + rng.normal(0.0, 0.001, n)))
    eth = 3000.0 * np.exp(np.cumsum(0.8 * common + rng.normal(0.0, 0.002, n)))
    rx, ry = _returns(btc), _returns(eth)
    ind = RollingCorrelation(window)
    for i, (a, b) in enumerate(zip(rx.tolist(), ry.tolist(), strict=True)):
        got = ind.update(a, b)
        if i < window - 1:
            assert got is None
            continue
        ref = float(np.corrcoef(rx[i - window + 1 : i + 1], ry[i - window + 1 : i + 1])[0, 1])
        assert got is not None and math.isclose(got, ref, rel_tol=1e-9, abs_tol=1e-9), (i, got, ref)


def test_rolling_correlation_on_raw_prices_and_level_shift() -> None:
    # Large levels with small moves plus a level shift: the centred sums must hold up.
    rng = np.random.default_rng(5)
    x = 60000.0 + np.cumsum(rng.normal(0.0, 3.0, 600))
    y = 0.5 * x + rng.normal(0.0, 2.0, 600)
    x[300:] -= 20000.0
    y[300:] -= 10000.0
    ind = RollingCorrelation(30)
    for i in range(600):
        got = ind.update(float(x[i]), float(y[i]))
        if i >= 29:
            ref = float(np.corrcoef(x[i - 29 : i + 1], y[i - 29 : i + 1])[0, 1])
            assert got is not None and math.isclose(got, ref, abs_tol=1e-9), (i, got, ref)


def test_rolling_correlation_zero_variance_is_none() -> None:
    ind = RollingCorrelation(5)
    for i in range(20):
        assert ind.update(0.001, float(i % 3)) is None  # x is constant
    ind = RollingCorrelation(5)
    for i in range(20):
        assert ind.update(float(i), 0.0) is None  # y is constant
    ind = RollingCorrelation(4)
    vals = [ind.update(float(i), 2.0 * i + 1.0) for i in range(6)]
    assert vals[:3] == [None, None, None]
    assert all(v is not None and math.isclose(v, 1.0) for v in vals[3:])
    # A flat stretch after movement returns to None once it fills the window.
    ind = RollingCorrelation(4)
    for i in range(6):
        ind.update(float(i * i), float(i))
    for _ in range(4):
        last = ind.update(36.0, 5.0)
    assert last is None


# ------------------------------------------------------------- misc


def test_bollinger_position() -> None:
    assert bollinger_position(105.0, 110.0, 100.0) == 0.5
    assert bollinger_position(100.0, 110.0, 100.0) == 0.0
    assert bollinger_position(110.0, 110.0, 100.0) == 1.0
    assert bollinger_position(120.0, 110.0, 100.0) == 2.0
    assert bollinger_position(42.0, 100.0, 100.0) == 0.5


@pytest.mark.parametrize(
    "cls", [SMA, EMA, RSI, BollingerBands, ATR, RollingMax, RollingMin, RollingCorrelation]
)
@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_period_rejected(cls: type, bad: Any) -> None:
    # 2.5: ValueError from the check, or TypeError at the compiled core's typed boundary
    with pytest.raises(ValueError if isinstance(bad, int) else (ValueError, TypeError)):
        cls(bad)


def test_not_ready_initially() -> None:
    for ind in [*_single_input_indicators(), ATR(3), RollingCorrelation(3)]:
        assert ind.value is None and not ind.ready


# ------------------------------------------------------------- hypothesis

prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(prices, min_size=1, max_size=120), period=st.integers(1, 30))
# Regression: the rounding residual of fsum must survive a resync.
@example(xs=[73741825.0, 999999999.5001651, 1.0, 1.0], period=2)
def test_sma_is_mean_of_last_n(xs: list[float], period: int) -> None:
    ind = SMA(period)
    for i, v in enumerate(xs):
        p = ind.preview(v)
        got = ind.update(v)
        assert got == p
        if i + 1 < period:
            assert got is None
        else:
            want = math.fsum(xs[i + 1 - period : i + 1]) / period
            assert got is not None and math.isclose(got, want, rel_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=1, max_size=120),
    period=st.integers(1, 25),
)
def test_bbands_std_is_window_pstdev(xs: list[float], period: int) -> None:
    ind = BollingerBands(period, 1.0)
    for i, v in enumerate(xs):
        got = ind.update(v)
        if i + 1 < period:
            assert got is None
            continue
        assert got is not None
        w = np.array(xs[i + 1 - period : i + 1])
        sd = float(w.std())
        mid = math.fsum(w.tolist()) / period
        assert math.isclose(got[1], mid, rel_tol=1e-12)
        half = (got[0] - got[2]) / 2.0
        # Bands are stored as mid ± std, so their rounding (~1e-16 * mid) bounds what we can see.
        assert abs(half - sd) <= 1e-9 * sd + 4e-16 * abs(mid), (half, sd)


@settings(max_examples=200, deadline=None)
@given(
    xs=st.lists(st.floats(-1e6, 1e6) | st.sampled_from([1.0, 2.0]), min_size=1, max_size=300),  # ties, runs
    period=st.integers(1, 20),
)
def test_rolling_extremes_are_window_extremes(xs: list[float], period: int) -> None:
    """Also long past the period: the queue keeps its indices modulo ``period + 1``."""
    mx, mn = RollingMax(period), RollingMin(period)
    for i, v in enumerate(xs):
        pmx, pmn = mx.preview(v), mn.preview(v)
        a, b = mx.update(v), mn.update(v)
        assert (a, b) == (pmx, pmn)
        if i + 1 < period:
            assert a is None and b is None
        else:
            w = xs[i + 1 - period : i + 1]
            assert (a, b) == (max(w), min(w))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6) | st.sampled_from([1.0, 2.0, 3.0]), min_size=1, max_size=40)
)
@example([1.0, 3.0])  # two equally close: the first
@example([5.0, 5.0, 5.0])
def test_the_shift_is_the_first_value_closest_to_the_mean(values: list[float]) -> None:
    """``_centre`` (the Bollinger Bands' and the rolling correlation's shift), written as a
    loop, picks what ``min`` with a key picked: the first of the values closest to the mean."""
    from engine.core.indicators.base import _centre

    mean = math.fsum(values) / len(values)
    got = _centre(deque(values))
    assert got == min(values, key=lambda v: abs(v - mean))
    assert values.index(got) == min(range(len(values)), key=lambda i: abs(values[i] - mean))  # the first
