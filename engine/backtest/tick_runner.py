"""The backtest over a tick file: a recorded live session replayed through the trading core.

Owns ``run_tick_backtest``. The file is one the replay feed reads (``ts, symbol, bid, ask,
last[, volume]``, CSV or Parquet; ``volume`` is the exchange's 24 h base volume), loaded by
the replay feed's own loader (``feed.replay.ReplaySource``: the same cleaning, the same time
order, pairs interleaved as a feed interleaves them). Each tick goes to ``core.on_tick`` as it
was recorded, at its own time, bid and ask: no spread is added and there is no intra-candle
rule to apply, the ticks are the path. The core builds its candles from them as it does live;
a tick file has no history before its first tick, so indicators warm up on the ticks (as the
replay feed serves an engine: no history). The core's timer runs whenever the simulated clock
crosses half a second, so candles of a quiet pair close by time, as live. The run's book,
trades, equity curve and report are those of ``runner.run_backtest``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engine.backtest.replay import Progress
from engine.backtest.result import BacktestResult, PairSeries
from engine.backtest.runner import MAX_POINTS, Run, _extremes
from engine.core.config import SafeList
from engine.core.markets import MarketRules
from engine.core.trader import FLUSH_EVERY_S

TIMER_EVERY_MS = int(FLUSH_EVERY_S * 1000)


def run_tick_backtest(
    cfg: SafeList,
    path: Path,
    book: Path,
    *,
    timeframe_s: int | None = None,
    rules: Mapping[str, MarketRules] | None = None,
    progress: Progress | None = None,
    config_name: str = "",
) -> BacktestResult:
    """Backtest ``cfg``'s active pairs over the tick file at ``path`` into the book ``book``."""
    from feed.replay import ReplaySource

    t_start = time.perf_counter()
    symbols = cfg.active_symbols()
    source = ReplaySource(path, symbols, speed=0, wait_for_subscriber=False)
    if source.kind != "ticks":
        raise ValueError(f"{path}: a candle file (give it to the backtest as candles)")
    tf_s = timeframe_s or cfg.engine.timeframe_s
    tf_ms = tf_s * 1000
    chunks = source.chunks()
    head = next(chunks, None)
    if head is None or not head[0]:
        raise ValueError(f"{path}: no ticks")
    first = int(head[0][0])
    run = Run(cfg, symbols, book, tf_s, first, rules)
    core, clock = run.core, run.clock
    states = [core.pairs[s] for s in symbols]
    portfolio = core.portfolio
    eq_ts: list[int] = []
    eq_val: list[float] = []
    eq_cash: list[float] = []
    eq_exp: list[float] = []
    closes: list[list[tuple[int, float]]] = [[] for _ in symbols]
    total = int(source.ticks)  # ticks to replay (the loader counted them)
    done = 0
    next_timer = first + TIMER_EVERY_MS
    next_point = (first // tf_ms + 1) * tf_ms
    last_ms = first
    for ts, sym, bid, ask, last, bv, _qv in itertools.chain([head], chunks):
        for t, k, b, a, p, v in zip(ts, sym, bid, ask, last, bv, strict=True):
            if t >= next_timer:  # what is due by time: candle closes of quiet pairs, retries
                clock.ms = t
                core.on_timer()
                next_timer = t + TIMER_EVERY_MS
            if t >= next_point:  # one equity point (and price point) per candle interval
                equity, exposure, _ = portfolio.valuation({ps.symbol: ps.last for ps in states if ps.last > 0.0})
                eq_ts.append(t)
                eq_val.append(equity)
                eq_cash.append(portfolio.cash)
                eq_exp.append(exposure)
                for j, ps in enumerate(states):
                    if ps.last > 0.0:
                        closes[j].append((t, ps.last))
                next_point = (t // tf_ms + 1) * tf_ms
            clock.ms = t
            core.on_tick(states[k], t, b, a, p, v)
            last_ms = t
        done += len(ts)
        if progress is not None:
            progress(done, max(total, done))
    series = [_series(s, closes[j], run) for j, s in enumerate(symbols)]
    curve = (eq_ts, eq_val, eq_cash, eq_exp)
    # the candle forming at the last tick ends an interval later: its decision is made
    end_ms = (last_ms // tf_ms + 1) * tf_ms
    return run.finish(curve, end_ms, done, series, t_start, config_name, str(path))


def _series(symbol: str, points: list[tuple[int, float]], run: Run) -> PairSeries:
    idx = (
        range(len(points))
        if len(points) <= MAX_POINTS
        else _extremes(np.asarray([p for _, p in points]), MAX_POINTS // 2)
    )
    return PairSeries(
        symbol=symbol,
        ts=[points[i][0] for i in idx],
        close=[points[i][1] for i in idx],
        stops=run.trades.stops.get(symbol, []),
    )
