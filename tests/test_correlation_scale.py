"""Correlation without the quadratic step (issue 16): the tracker's bulk and on-demand paths
give what a ``RollingCorrelation`` per couple, fed incrementally on every close (the tracker
before issue 16, kept here as the reference), gives, to 1e-9; and at hundreds of pairs the
risk check and the portfolio gauge, both asked only among the open positions, agree with each
other and with the brute force over every couple.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from console.model import ConsoleModel
from engine.core import correlation_math as cm
from engine.core.correlation import RETURN_SLACK, CorrelationTracker, window_rho
from engine.core.indicators import RollingCorrelation
from engine.core.models import Position, Signal, SignalType
from engine.core.risk import RiskContext, RiskEngine
from engine.node.corr_view import CORR_LINKS, CORR_SHOWN, CorrelationView
from engine.wire.commands import pack_map
from engine.wire.schema import PortfolioMsg
from tests.console_fakes import make_safe_list
from tests.core_harness import make_core, safe_list

MIN = 60_000


class IncrementalReference:
    """The tracker before issue 16: every couple's ``RollingCorrelation`` updated on each close
    (returns aligned by candle time, each symbol remembering ``window + slack`` of them)."""

    def __init__(self, symbols: list[str], window: int) -> None:
        self.symbols = symbols
        self.keep = window + RETURN_SLACK
        self.pairs = {(a, b): RollingCorrelation(window) for i, a in enumerate(symbols) for b in symbols[i + 1 :]}
        self.last: dict[str, tuple[int, float]] = {}
        self.rets: dict[str, dict[int, float]] = {s: {} for s in symbols}
        self.order: dict[str, deque[int]] = {s: deque() for s in symbols}

    def on_close(self, s: str, ts: int, close: float) -> None:
        last = self.last.get(s)
        if last is not None and ts <= last[0]:
            return
        self.last[s] = (ts, close)
        if last is None:
            return
        r = math.log(close / last[1])
        self.rets[s][ts] = r
        self.order[s].append(ts)
        if len(self.order[s]) > self.keep:
            del self.rets[s][self.order[s].popleft()]
        for o in self.symbols:
            peer = self.rets[o].get(ts) if o != s else None
            if peer is None:
                continue
            if (s, o) in self.pairs:
                self.pairs[(s, o)].update(r, peer)
            else:
                self.pairs[(o, s)].update(peer, r)

    def value(self, a: str, b: str) -> float | None:
        if a == b:
            return 1.0
        return (self.pairs.get((a, b)) or self.pairs[(b, a)]).value


def _market(n_sym: int, n_candles: int, seed: int) -> tuple[list[str], dict[str, list[float]]]:
    """Three factors (symbol i rides factor i % 3; every fifth one only weakly), so some couples
    are strongly correlated and some not; the last symbol is flat."""
    rng = np.random.default_rng(seed)
    syms = [f"S{i:03d}/USDT" for i in range(n_sym)]
    factors = rng.normal(0, 0.002, (3, n_candles))
    px: dict[str, list[float]] = {}
    for i, s in enumerate(syms):
        load = np.zeros(3)
        load[i % 3] = rng.uniform(0.1, 0.4) if i % 5 == 4 else rng.uniform(1.0, 1.5)  # ρ ≈ 0.9 in a factor
        r = load @ factors + rng.normal(0, 0.0008, n_candles)
        px[s] = list(100.0 * np.exp(np.cumsum(r)))
    px[syms[-1]] = [5.0] * n_candles  # flat: zero variance, None against everyone
    return syms, px


def _assert_same(tr: CorrelationTracker, ref: IncrementalReference, syms: list[str]) -> int:
    """Every couple through the three paths (pair on demand, bulk matrix, one row) against the
    reference; returns how many couples held a value."""
    _, bulk = tr.matrix()
    rows = {s: tr.row(s) for s in syms[:5]}
    valued = 0
    for i, a in enumerate(syms):
        for j, b in enumerate(syms):
            want = ref.value(a, b)
            got = [tr.correlation(a, b), bulk[i][j]] + ([rows[a][b]] if a in rows else [])
            for g in got:
                if want is None:
                    assert g is None, (a, b, g)
                else:
                    assert g is not None and abs(g - want) <= 1e-9, (a, b, g, want)
            valued += want is not None and a != b
    return valued


def test_bulk_and_on_demand_equal_the_incremental_correlations_to_1e_9() -> None:
    """Live order (closes interleaved at random within a candle), a symbol a few candles late,
    one that starts late, one that misses candles, and checks taken in the middle of a
    candle-close burst (half the symbols have the newest candle, half not yet)."""
    window = 20
    syms, px = _market(24, 140, seed=5)
    late, starter, holey = syms[3], syms[7], syms[11]
    tr = CorrelationTracker(syms, window, 0.8)
    ref = IncrementalReference(syms, window)
    rnd = random.Random(9)
    checked = 0
    backlog: list[tuple[str, int]] = []
    for t in range(140):
        order = list(syms)
        rnd.shuffle(order)
        for k, s in enumerate(order):
            if s == starter and t < 60:
                continue
            if s == holey and t % 7 == 3:
                continue
            if s == late:  # closes 3 candles behind the others
                backlog.append((s, t))
                if len(backlog) > 3:
                    bs, bt = backlog.pop(0)
                    tr.on_close(bs, bt * MIN, px[bs][bt])
                    ref.on_close(bs, bt * MIN, px[bs][bt])
                continue
            tr.on_close(s, t * MIN, px[s][t])
            ref.on_close(s, t * MIN, px[s][t])
            if t in (50, 90, 139) and k == len(order) // 2:
                checked += _assert_same(tr, ref, syms)
    checked += _assert_same(tr, ref, syms)
    assert checked > 1000  # the comparison held real values, not only Nones


def test_warm_up_in_bulk_equals_closes_fed_live() -> None:
    """The engine's warm-up: each symbol's whole history in one call, one symbol after another,
    gives the live interleaved values (only the table's tail is stored)."""
    window = 30
    syms, px = _market(12, 400, seed=8)
    warm = CorrelationTracker(syms, window, 0.8)
    ref = IncrementalReference(syms, window)
    for s in syms:
        assert warm.warm(s, [(t * MIN, px[s][t]) for t in range(400)]) == window + RETURN_SLACK
    for t in range(400):
        for s in syms:
            ref.on_close(s, t * MIN, px[s][t])
    assert _assert_same(warm, ref, syms) > 50


def _factor_tracker(n: int, window: int, seed: int) -> CorrelationTracker:
    syms, px = _market(n, window + 5, seed)
    tr = CorrelationTracker(syms, window, 0.8)
    for t in range(window + 5):
        for s in syms:
            tr.on_close(s, t * MIN, px[s][t])
    return tr


def _brute_cluster(tr: CorrelationTracker, open_syms: set[str]) -> list[str]:
    """The gauge's rule over the full matrix: every couple, no 'among' shortcut."""
    syms, m = tr.matrix()
    idx = {s: i for i, s in enumerate(syms)}
    best: set[str] = set()
    for s in sorted(open_syms):
        peers = {o for o in open_syms if o != s and (m[idx[s]][idx[o]] or -2) >= tr.threshold}
        if len(peers | {s}) > len(best):
            best = peers | {s}
    return sorted(best)


def test_risk_check_and_gauge_agree_at_300_pairs() -> None:
    n = 300
    tr = _factor_tracker(n, 30, seed=21)
    syms = tr.symbols
    open_syms = {syms[i] for i in (0, 3, 6, 1, 2, 40, 41)}  # factor 0: 0, 3, 6; factor 1: 1, 40
    positions = {s: Position(s, 1.0, 100.0) for s in open_syms}
    cfg = safe_list({s: "momentum" for s in syms}, max_correlated_positions=3)
    risk = RiskEngine(cfg)
    ctx = RiskContext(positions=positions, correlated_with=tr)
    gauge = risk.largest_open_cluster(ctx)
    assert gauge == _brute_cluster(tr, open_syms)
    assert len(gauge) >= 3
    # the check: a candidate joining the gauge's cluster is refused exactly when it would
    # exceed the max, and says the same count the gauge would then show
    for cand in (syms[9], syms[12], syms[4], syms[5], syms[100]):
        res = risk._correlation(cand, ctx)
        grown = risk.largest_open_cluster(
            RiskContext(positions={**positions, cand: Position(cand, 1.0, 100.0)}, correlated_with=tr)
        )
        assert res.ok is (len(grown) <= 3), (cand, res.reason, grown)
        if not res.ok:
            assert f"{len(grown)} correlated positions" in res.reason
    # the bound method (every symbol asked, not only the open ones) says the same
    assert risk.largest_open_cluster(RiskContext(positions=positions, correlated_with=tr.correlated_with)) == gauge


def test_core_gauge_is_the_checks_cluster_at_300_pairs(tmp_path: Path) -> None:
    """A real core with 300 pairs warmed from history: the summary's cluster is the check's.
    (How cheap the summary is, is a benchmark's figure: ``python -m bench --only publish``.)"""
    n, window = 300, 30
    syms, px = _market(n, 120, seed=4)
    cfg = safe_list({s: "momentum" for s in syms}, correlation_window=window, max_correlated_positions=2)
    h = make_core(tmp_path, cfg)
    core = h.core
    for s in syms:
        core.corr.warm(s, [(t * MIN, px[s][t]) for t in range(120)])
    opened = [syms[0], syms[3], syms[1]]
    for s in opened:
        core.portfolio.positions[s] = Position(s, 0.5, px[s][-1])
    summary = core.portfolio_summary()
    assert summary.correlated_cluster == _brute_cluster(core.corr, set(opened))
    assert summary.correlated_used == len(core.risk.largest_open_cluster(core.risk_context()))
    sig = Signal(syms[6], SignalType.BUY, 0.9, px[syms[6]][-1], px[syms[6]][-1] * 0.98, px[syms[6]][-1] * 1.04, "", 0)
    check = core.risk._correlation(sig.symbol, core.risk_context())
    assert not check.ok  # syms[6] rides factor 0 with syms[0] and syms[3]: 3 > 2
    assert "3 correlated positions" in check.reason
    assert core.corr.strongest(syms[6]) == pytest.approx(max(
        (v for s, v in core.corr.row(syms[6]).items() if s != syms[6] and v is not None), key=abs))


def test_view_shows_the_chosen_symbols_and_the_strongest_links_of_all() -> None:
    tr = _factor_tracker(90, 25, seed=13)
    syms = tr.symbols
    shown, matrix, links = tr.view([syms[50], syms[2]], 6, 5)
    assert shown == [syms[50], syms[2], syms[0], syms[1], syms[3], syms[4]]
    assert matrix == tr.matrix(shown)[1]
    _, full = tr.matrix()
    brute = sorted(
        ((a, b, full[i][j]) for i, a in enumerate(syms) for j, b in enumerate(syms) if i < j and full[i][j] is not None),
        key=lambda t: (-abs(t[2]), syms.index(t[0]), syms.index(t[1])),
    )[:5]
    assert [(a, b) for a, b, _ in links] == [(a, b) for a, b, _ in brute]
    assert [v for *_, v in links] == pytest.approx([v for *_, v in brute], abs=1e-12)


def test_portfolio_carries_the_correlations_only_when_they_moved_at_most_once_a_second(tmp_path: Path) -> None:
    """The publisher's view at 300 pairs: a small message (12 symbols, 8 links, not 300×300),
    built when the tracker moved, at most once a second, re-sent every 10 s; the console's model
    keeps the last one through the messages that leave it out."""

    n = 300
    syms, px = _market(n, 80, seed=6)
    h = make_core(tmp_path, safe_list({s: "momentum" for s in syms}, correlation_window=30))
    core = h.core
    for s in syms:
        core.corr.warm(s, [(t * MIN, px[s][t]) for t in range(79)])
    core.portfolio.positions[syms[42]] = Position(syms[42], 1.0, 100.0)
    view = CorrelationView()
    first = view.due(core, 100.0)
    assert first is not None and first.version == 2 and first.pairs == n
    assert first.symbols[0] == syms[42] and len(first.symbols) == CORR_SHOWN and len(first.links) == CORR_LINKS
    assert len(pack_map(first.to_wire())) < 4096
    assert view.due(core, 100.5) is None  # nothing moved
    core.corr.on_close(syms[0], 79 * MIN, px[syms[0]][79])
    assert view.due(core, 100.9) is None  # moved, but within the second
    again = view.due(core, 101.0)
    assert again is not None and again is not first and view.builds == 2
    assert view.due(core, 105.0) is None
    assert view.due(core, 111.0) is again  # the refresh: unchanged, sent again
    # the console's model: a portfolio message without corr keeps the last correlations
    model = ConsoleModel.for_safe_list(make_safe_list())
    summary = core.portfolio_summary()
    model.apply_portfolio(PortfolioMsg(**asdict(summary), corr=again))
    model.apply_portfolio(PortfolioMsg.from_wire(PortfolioMsg(**asdict(summary), corr=None).to_wire()))
    assert model.portfolio is not None and model.portfolio.corr is again


def _pair_on_arrays(x: np.ndarray, y: np.ndarray, window: int) -> float | None:
    """A couple's ρ on numpy arrays through ``_finish`` (the function the matrix paths use):
    the reference ``window_rho``, on Python floats, must agree with."""
    idx = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    if len(idx) < window:
        return None
    idx = idx[-window:]
    xs, ys = x[idx], y[idx]
    mx, my = xs.mean(), ys.mean()
    dx, dy = xs - mx, ys - my
    out = cm._finish(np.asarray(dx @ dy / window), np.asarray(dx @ dx / window), np.asarray(dy @ dy / window),
                     np.asarray(mx), np.asarray(my))  # fmt: skip
    v = float(out)
    return None if v != v else v


def _agree(got: float | None, want: float | None) -> bool:
    return (got is None and want is None) or (got is not None and want is not None and abs(got - want) <= 1e-12)


def test_one_couple_on_floats_agrees_with_the_array_path() -> None:
    """``window_rho`` answers the risk check's couple on Python floats (no array built per
    couple): the value the matrix paths' ``_finish`` gives, to 1e-12, or both None, on couples
    with holes, flat sides, tiny and large scales and perfectly (anti-)correlated sides."""
    rng = np.random.default_rng(11)
    valued = 0
    for k in range(3000):
        n, window = int(rng.integers(5, 120)), int(rng.integers(3, 60))
        scale = 10.0 ** rng.uniform(-8, 0)
        x = rng.normal(0, scale, n)
        y = rng.normal(0, scale, n) if k % 5 else (x * (-1.0 if k % 2 else 2.0))  # exact ±1
        if k % 7 == 0:
            y[:] = 0.001  # a flat side
        x[rng.random(n) < 0.2] = np.nan
        y[rng.random(n) < 0.2] = np.nan
        want = _pair_on_arrays(x, y, window)
        got = window_rho(x.tolist(), y.tolist(), list(range(n)), window)
        assert _agree(got, want), (k, got, want)
        valued += want is not None
    assert valued > 1000


def test_the_tracker_answers_a_couple_from_its_last_window() -> None:
    """``correlation`` reads the last ``window`` candle times both symbols hold, whether the
    tail is full, holed, short, a candle-close burst's (one symbol's newest return not in yet)
    or flat: the array path's value on the table's rows, to 1e-12; and the table's numpy copy,
    brought up to date when a vectorised query asks, equals its rows."""
    rng = np.random.default_rng(5)
    window = 20
    tails = bursts = holed = 0
    for k in range(400):
        tr = CorrelationTracker(["A", "B"], window=window, threshold=0.7, timeframe_ms=None)
        n = int(rng.integers(2, window + RETURN_SLACK + 10))
        pa, pb = 100.0, 50.0
        hole_a, hole_b = rng.random(n) < (0.0 if k % 2 else 0.1), rng.random(n) < (0.0 if k % 3 else 0.1)
        for t in range(n):
            pa *= math.exp(rng.normal(0, 0.01))
            pb = 50.0 if k % 11 == 0 else pb * math.exp(rng.normal(0, 0.01))
            if not hole_a[t]:
                tr.on_close("A", t * MIN, pa)
            if not hole_b[t] and not (k % 4 == 1 and t == n - 1):  # B's newest close not in yet: a burst
                tr.on_close("B", t * MIN, pb)
            if k % 9 == 0 and t % 7 == 0:  # a vectorised query now and then: the copy is synced
                tr.row("A")
        table = tr._table()
        assert np.array_equal(table, np.asarray(tr._rows)[:, tr._seq], equal_nan=True), k
        want = _pair_on_arrays(table[0], table[1], window)
        tail = table[:, -window:]
        full = table.shape[1] >= window and not np.isnan(tail).any()
        burst = not full and table.shape[1] > window and bool(np.isnan(table[:, -1]).any()) and not bool(
            np.isnan(table[:, -window - 1 : -1]).any())
        tails, bursts, holed = tails + full, bursts + burst, holed + (not full and not burst and want is not None)
        assert _agree(tr.correlation("A", "B"), want), (k, want)
    assert tails > 30 and bursts > 20 and holed > 5  # every kind of window was asked
