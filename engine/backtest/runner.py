"""The backtest: the one trading core that trades live, run candle by candle over history.

Owns ``run_backtest``. Nothing here decides a trade: the ``TradingCore`` does, with the paper
execution client (the safe list's fee and slippage, the exchange's order rules) and a journal,
as in the engine process. What the backtest adds is a simulated clock and the market data:

- Warm-up: the first ``warmup`` candles of each pair (at most half of them; the safe list's
  ``engine.history_candles`` by default) seed indicators and strategies through the live path
  (``TradingCore.warm_pair``), exactly what the replay feed serves an engine as history.
- Each later candle becomes four ticks at 0, 30, 60 and 90 % of its interval, as
  ``feed.candle_ticks`` makes them for the replay feed: the open, the two extremes, the close,
  with a ``spread_bps`` spread around each price and the 24 h rolling volume
  (engine/backtest/replay.py, the loop). Pairs are interleaved by time as a feed interleaves
  them. A candle closes (and the strategy decides) at the next candle's open tick, so an entry
  fills at the next open, at the ask or bid, with slippage and the taker fee.
- **Intra-candle order**: for a pair holding a position when the candle's extremes come, the
  extreme against the position comes first (a long sees the low before the high; a short the
  high before the low), so when a stop and a take-profit both lie inside one candle the stop
  wins: the pessimistic reading. A flat pair takes the replay's order (low first on an up
  candle). A stop fills at the tick that crosses it (the extreme, not the stop level: a gap
  through the stop costs what it costs).
- The core's timer runs once per candle time, so candles with no tick close and pending exits
  are retried as live. The run ends 2 s after the last candle's end (its decision is made);
  positions still open are marked at the last close and reported as open (``exit_reason`` end).

The run's book (engine/backtest/book.py: SQLite, no fsync and one transaction for the whole run,
rerun it rather than recover it) holds every decision, order and fill as the engine's would; the
equity curve is kept at every candle time and written to the book in bulk (every 65,536 points
and at the end).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np

from engine.backtest.book import BacktestBook
from engine.backtest.clock import SimClock
from engine.backtest.replay import Progress, replay
from engine.backtest.result import BacktestResult, EquityPoint, PairSeries, Rejection, RunMeta
from engine.backtest.trades import TradeBook
from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.core.events import CoreEvent, DecisionMade, FillBooked
from engine.core.markets import MarketRules, default_rules
from engine.core.trader import FEED_LATENCY_ALLOWANCE_MS, TradingCore
from engine.execution.paper import PaperExecutionClient

DEFAULT_SPREAD_BPS: Final = 2.0  # the replay feed's default
MAX_POINTS: Final = 20_000  # equity points and price points per pair kept in the result
GC_YOUNG: Final = 50_000  # allocations between young collections during the replay (CPython's default: 700)
# each pair computes only the indicators its strategy reads (and ATR): nothing shows the others
EVERY_INDICATOR = False


class RunSink:
    """The core's events, turned into trades and the 'why not traded' ledger as they come."""

    def __init__(self, trades: TradeBook) -> None:
        self.trades = trades
        self.rejections: list[Rejection] = []
        self.signals: dict[str, int] = {}
        self.listeners: list[Callable[[CoreEvent], None]] = []  # told every event first

    def emit(self, event: CoreEvent) -> None:
        for listener in self.listeners:
            listener(event)
        if type(event) is FillBooked:
            self.trades.on_fill(event.fill, event.position)
        elif type(event) is DecisionMade:
            d = event.decision
            if not d.action.startswith("open_"):
                return  # an exit is never refused: the ledger counts entry signals
            self.signals[d.symbol] = self.signals.get(d.symbol, 0) + 1
            if not d.approved:
                failed = next((c for c in d.checks if not c.ok), None)
                self.rejections.append(
                    Rejection(
                        ts=d.ts,
                        symbol=d.symbol,
                        action=d.action,
                        check=failed.name if failed is not None else "unknown",
                        reason=(failed.reason or failed.name) if failed is not None else "",
                    )
                )


def run_backtest(
    cfg: SafeList,
    candles: Mapping[str, np.ndarray],
    book: Path,
    *,
    timeframe_s: int | None = None,
    warmup: int | None = None,
    spread_bps: float = DEFAULT_SPREAD_BPS,
    rules: Mapping[str, MarketRules] | None = None,
    progress: Progress | None = None,
    config_name: str = "",
    data_name: str = "",
) -> BacktestResult:
    """Backtest ``cfg``'s active pairs over ``candles`` (per pair an ``(n, 6)`` array: ts in
    ms, open, high, low, close, volume, in time order) into the new book at ``book``."""
    t_start = time.perf_counter()
    symbols = [s for s in cfg.active_symbols() if s in candles]
    missing = [s for s in cfg.active_symbols() if s not in candles]
    if missing:
        raise ValueError(f"no candles for {', '.join(missing)}")
    tf_s = timeframe_s or cfg.engine.timeframe_s
    tf_ms = tf_s * 1000
    n_warm = cfg.engine.history_candles if warmup is None else warmup
    skips = {s: min(max(n_warm, 0), len(candles[s]) // 2) for s in symbols}
    first = min(int(candles[s][skips[s], 0]) for s in symbols if len(candles[s]) > skips[s])
    run = Run(cfg, symbols, book, tf_s, first, rules)
    for s in symbols:
        rows = candles[s][: skips[s]]
        run.core.warm_pair(s, [Candle(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows])
    with _young_collections_rarer():
        curve = replay(
            run.core, run.clock, run.store, symbols, candles, skips, tf_ms, spread_bps * 0.5e-4, progress
        )
    end_ms = int(max(candles[s][-1, 0] for s in symbols)) + tf_ms
    series = [_series(s, candles[s][skips[s] :], run.trades) for s in symbols]
    n_candles = sum(len(candles[s]) - skips[s] for s in symbols)
    return run.finish(curve, end_ms, n_candles, series, t_start, config_name, data_name)


_GC_LOCK: Final = threading.Lock()
# one entry per replay running (the ML environment's episodes may overlap on threads), each the
# thresholds from before the first and whether the first froze the objects then
_gc_runs: list[tuple[tuple[int, int, int], bool]] = []


@contextmanager
def _young_collections_rarer() -> Iterator[None]:
    """The replay with the cyclic garbage collector's youngest generation collected every
    ``GC_YOUNG`` allocations instead of 700, and what existed before it out of the collector's
    sight (``gc.freeze``): a replay allocates a few short-lived objects per tick, freed by
    reference counting; the collector walked the living ones again and again (4 % of a
    backtest's instructions, a quarter of that after). Cycles are still collected. The first
    replay to start sets the thresholds, the last to end puts back what was there before the
    first and returns the objects it froze (replays on several threads share the process's
    collector; objects someone else froze are left frozen, and then none are frozen here)."""
    with _GC_LOCK:
        if _gc_runs:
            state = _gc_runs[0]
        else:
            state = (gc.get_threshold(), gc.get_freeze_count() == 0)
            if state[1]:
                gc.freeze()
        _gc_runs.append(state)
        before = state[0]
        gc.set_threshold(GC_YOUNG, before[1], before[2])
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_runs.pop()
            if not _gc_runs:
                gc.set_threshold(*state[0])
                if state[1]:
                    gc.unfreeze()


class Run:
    """One backtest's core, clock, book and collectors; ``finish`` turns them into a result."""

    def __init__(
        self,
        cfg: SafeList,
        symbols: list[str],
        book: Path,
        tf_s: int,
        first_ms: int,
        rules: Mapping[str, MarketRules] | None,
    ) -> None:
        self.cfg, self.symbols, self.book, self.tf_s = cfg, symbols, book, tf_s
        self.first_ms = first_ms
        self.clock = SimClock(first_ms)
        self.store = BacktestBook(book)
        rules = dict(rules) if rules else {s: default_rules(s) for s in symbols}
        pc = cfg.portfolio
        self.trades = TradeBook()
        self.sink = RunSink(self.trades)
        self.core = TradingCore(
            cfg,
            clock=self.clock,
            client=PaperExecutionClient(pc.taker_fee, pc.slippage_bps, rules, self.clock),
            journal=self.store,
            sink=self.sink,
            rules=rules,
            timeframe_s=tf_s,
            every_indicator=EVERY_INDICATOR,
        )

    def finish(
        self,
        curve: tuple[list[int], list[float], list[float], list[float]],
        end_ms: int,
        n_candles: int,
        series: list[PairSeries],
        t_start: float,
        config_name: str,
        data_name: str,
    ) -> BacktestResult:
        """The last candles close by the timer, as live (their decisions are made); positions
        still open are marked at the last price; the book gets its equity curve."""
        core, clock = self.core, self.clock
        clock.ms = end_ms + FEED_LATENCY_ALLOWANCE_MS + 1
        core.on_timer()
        marks = core.marks()
        pf = core.portfolio
        self.trades.close_open(marks, clock.ms)
        self.store.close()  # (writes the equity points still held)
        pc = self.cfg.portfolio
        meta = RunMeta(
            config=config_name,
            pairs=self.symbols,
            timeframe=_tf_text(self.tf_s),
            start_ms=self.first_ms,
            end_ms=end_ms,
            capital=pc.capital_usd,
            fee_rate=pc.taker_fee,
            slippage_bps=pc.slippage_bps,
            candles=n_candles,
            elapsed_s=time.perf_counter() - t_start,
            book=str(self.book),
            data=data_name,
        )
        eq_ts, eq_val, eq_cash, eq_exp = curve
        equity, exposure, _ = pf.valuation(marks)
        eq_ts.append(clock.ms)
        eq_val.append(equity)
        eq_cash.append(pf.cash)
        eq_exp.append(exposure)
        return BacktestResult(
            meta=meta,
            trades=self.trades.trades,
            equity=_equity_points(eq_ts, eq_val, eq_cash, eq_exp),
            rejections=self.sink.rejections,
            signals=self.sink.signals,
            series=series,
        )


def _equity_points(
    ts: list[int], equity: list[float], cash: list[float], exposure: list[float]
) -> list[EquityPoint]:
    """About ``MAX_POINTS``: each bucket keeps its lowest and highest point in time order, so
    every peak and trough (and so the maximum drawdown) survives exactly."""
    n = len(ts)
    if n <= MAX_POINTS:
        keep: Any = range(n)
    else:  # and each UTC day's last point, so daily returns (Sharpe, Sortino) stay exact
        day = np.asarray(ts, dtype="int64") // 86_400_000
        last_of_day = np.flatnonzero(np.diff(day)).tolist()
        keep = sorted(set(_extremes(np.asarray(equity), MAX_POINTS // 2)) | set(last_of_day))
    return [EquityPoint(ts[i], equity[i], cash[i], exposure[i]) for i in keep]


def _extremes(values: np.ndarray, buckets: int) -> list[int]:
    """Indices of each bucket's minimum and maximum (and the last point), in time order: each
    the bucket's first, as ``np.argmin`` and ``np.argmax`` (a NaN, when there is one) give it,
    found for every bucket at once (a call per bucket cost 0.2 s a run)."""
    n = len(values)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    lo, hi = edges[:-1], edges[1:]
    lo = lo[hi > lo]  # the buckets that hold a point: they tile 0..n in order
    length = np.diff(np.append(lo, n))
    bucket = np.repeat(np.arange(len(lo)), length)  # each point's bucket
    nan = np.isnan(values)
    keep = {0, n - 1}
    for reduce in (np.minimum, np.maximum):  # both propagate a NaN, as argmin and argmax find it
        extreme = reduce.reduceat(values, lo)[bucket]
        hits = np.flatnonzero((values == extreme) | (nan & np.isnan(extreme)))
        _, first = np.unique(bucket[hits], return_index=True)  # every bucket has one
        keep.update(hits[first].tolist())
    return sorted(keep)


def _series(symbol: str, rows: np.ndarray, trades: TradeBook) -> PairSeries:
    """The pair's closes for the price chart (lows and highs of buckets when downsampled)."""
    ts = rows[:, 0].astype("int64")
    close = rows[:, 4]
    idx = range(len(ts)) if len(ts) <= MAX_POINTS else _extremes(close, MAX_POINTS // 2)
    return PairSeries(
        symbol=symbol,
        ts=[int(ts[i]) for i in idx],
        close=[float(close[i]) for i in idx],
        stops=trades.stops.get(symbol, []),
    )


def _tf_text(seconds: int) -> str:
    for unit, n in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"
