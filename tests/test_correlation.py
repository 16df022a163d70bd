"""CorrelationTracker: log returns aligned by candle time whatever the arrival order,
rolling correlation against numpy, the matrix shape, and correlated_with = groups ∪ live.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.core.correlation import CorrelationTracker

MIN = 60_000
SYMS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def _walks(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.002, n)
    return {
        "BTC/USDT": 60_000 * np.exp(np.cumsum(common + rng.normal(0, 0.0005, n))),
        "ETH/USDT": 3_000 * np.exp(np.cumsum(common + rng.normal(0, 0.0007, n))),
        "SOL/USDT": 150 * np.exp(np.cumsum(rng.normal(0, 0.003, n))),  # independent
    }


def test_matches_numpy_on_aligned_log_returns_and_arrival_order_does_not_matter() -> None:
    n, window = 80, 30
    px = _walks(n)
    fwd = CorrelationTracker(SYMS, window, 0.8)
    rev = CorrelationTracker(SYMS, window, 0.8)
    for i in range(n):
        for s in SYMS:
            fwd.on_close(s, i * MIN, float(px[s][i]))
        for s in reversed(SYMS):
            rev.on_close(s, i * MIN, float(px[s][i]))
    rets = {s: np.diff(np.log(px[s]))[-window:] for s in SYMS}
    expect = np.corrcoef([rets[s] for s in SYMS])
    syms, m = fwd.matrix()
    assert syms == SYMS
    for i in range(3):
        for j in range(3):
            assert m[i][j] == pytest.approx(expect[i][j], abs=1e-9)
            assert m[i][j] == m[j][i]
    assert [row[i] for i, row in enumerate(m)] == [1.0, 1.0, 1.0]
    flat = [x for row in m for x in row]
    assert [x for row in rev.matrix()[1] for x in row] == pytest.approx(flat, abs=1e-12)
    assert fwd.correlated_with("BTC/USDT") == {"ETH/USDT"}  # the common factor dominates
    assert fwd.correlated_with("SOL/USDT") == set()


def test_warm_up_is_none_and_groups_count_from_the_start() -> None:
    t = CorrelationTracker(SYMS, 10, 0.8, groups=[["BTC/USDT", "SOL/USDT"], ["NOT/LISTED", "ETH/USDT"]])
    _, m = t.matrix()
    assert m == [[1.0, None, None], [None, 1.0, None], [None, None, 1.0]]
    assert t.correlated_with("BTC/USDT") == {"SOL/USDT"}
    assert t.correlated_with("SOL/USDT") == {"BTC/USDT"}
    assert t.correlated_with("ETH/USDT") == set()
    assert t.correlated_with("UNKNOWN/USDT") == set()


def test_threshold_is_inclusive_and_negative_correlation_is_not_a_link() -> None:
    t = CorrelationTracker(["A/USDT", "B/USDT"], 5, 0.8)
    a, b = 100.0, 100.0
    rng = np.random.default_rng(1)
    for i in range(12):
        r = float(rng.normal(0, 0.01))
        a *= math.exp(r)
        b *= math.exp(-r)  # perfect anti-correlation
        t.on_close("A/USDT", i * MIN, a)
        t.on_close("B/USDT", i * MIN, b)
    assert t.correlation("A/USDT", "B/USDT") == pytest.approx(-1.0)
    assert t.correlated_with("A/USDT") == set()
    same = CorrelationTracker(["A/USDT", "B/USDT"], 5, 1.0)
    for i in range(8):
        p = 100 * (1.01 ** (i * (-1) ** i))
        same.on_close("A/USDT", i * MIN, p)
        same.on_close("B/USDT", i * MIN, 2 * p)  # identical returns: correlation 1.0 >= 1.0
    assert same.correlation("A/USDT", "B/USDT") == pytest.approx(1.0)
    assert same.correlated_with("B/USDT") == {"A/USDT"}


def test_history_fed_one_symbol_after_another_gives_the_same_matrix() -> None:
    n, window = 120, 25
    px = _walks(n, seed=11)
    live = CorrelationTracker(SYMS, window, 0.8)
    warm = CorrelationTracker(SYMS, window, 0.8)
    for i in range(n):
        for s in SYMS:
            live.on_close(s, i * MIN, float(px[s][i]))
    for s in SYMS:  # the engine's warm-up: one symbol's whole history, then the next
        for i in range(n):
            warm.on_close(s, i * MIN, float(px[s][i]))
    flat = [x for row in live.matrix()[1] for x in row]
    assert None not in flat
    assert [x for row in warm.matrix()[1] for x in row] == pytest.approx(flat, abs=1e-12)


def test_pairs_only_update_on_shared_candle_times() -> None:
    t = CorrelationTracker(["A/USDT", "B/USDT"], 4, 0.5)
    a = [100 * (1.01 ** (i % 3)) * (1 + 0.001 * i) for i in range(10)]
    b = [50 * (1.02 ** (i % 4)) for i in range(10)]
    for i in range(10):
        t.on_close("A/USDT", i * MIN, a[i])
    for i in range(0, 10, 2):  # B closes only the even candles: returns at 2, 4, 6, 8 minutes
        t.on_close("B/USDT", i * MIN, b[i])
    ra = {i: math.log(a[i] / a[i - 1]) for i in range(1, 10)}
    rb = {i: math.log(b[i] / b[i - 2]) for i in range(2, 10, 2)}
    expect = np.corrcoef([ra[i] for i in (2, 4, 6, 8)], [rb[i] for i in (2, 4, 6, 8)])[0, 1]
    assert t.correlation("A/USDT", "B/USDT") == pytest.approx(expect, abs=1e-9)


def test_timeframe_drops_returns_across_a_gap() -> None:
    t = CorrelationTracker(["A/USDT"], 3, 0.5, timeframe_ms=MIN)
    assert t.on_close("A/USDT", 0, 100.0) is False  # first close: no return yet
    assert t.on_close("A/USDT", MIN, 101.0) is True
    assert t.on_close("A/USDT", 3 * MIN, 102.0) is False  # spans a missing candle
    assert t.on_close("A/USDT", 4 * MIN, 103.0) is True


def test_bad_and_out_of_order_closes_are_counted_not_raised() -> None:
    t = CorrelationTracker(["A/USDT", "B/USDT"], 3, 0.5)
    assert t.on_close("A/USDT", MIN, 100.0) is False
    assert t.on_close("A/USDT", MIN, 101.0) is False  # duplicate candle time
    assert t.on_close("A/USDT", 0, 101.0) is False  # older
    assert t.out_of_order == 2
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        assert t.on_close("A/USDT", 5 * MIN, bad) is False
    assert t.on_close("Z/USDT", 5 * MIN, 1.0) is False
    assert t.bad == 5
    assert t.on_close("A/USDT", 2 * MIN, 102.0) is True
