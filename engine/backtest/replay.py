"""The replay: every candle's four ticks through the trading core, pairs interleaved by time.

Owns ``replay``, the backtest's hottest loop (engine/backtest/runner.py sets up the run and
shapes its result). Each candle becomes four ticks as ``feed.candle_ticks`` makes them for the
replay feed: at 0, 30, 60 and 90 % of its interval, the open, the two extremes, the close, each
with the 24 h volume before the candle plus the share of the candle's own seen so far, and a
half-spread around each price. The ticks are made here from the candle's six numbers with
``candle_ticks``' own operations (the same values; ``tick_offsets`` and ``volume_before`` are
shared), a chunk of the timeline at a time, so memory stays bounded on a year of candles.

The extremes' order: a pair holding a position when a candle's extremes come sees the extreme
against it first (a long the low, a short the high: when a stop and a take-profit both lie
inside the candle, the stop wins); a flat pair takes the replay feed's order (the low first on
an up candle). The core's timer runs once per candle time, and the run's equity is taken there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import numpy as np

from engine.backtest.book import BacktestBook, EquityRow
from engine.backtest.clock import SimClock
from engine.core.trader import PairState, TradingCore
from feed.candle_ticks import VOLUME_DONE, tick_offsets, volume_before

CHUNK: Final = 8_192  # (candle time, pair) entries of the timeline turned into Python numbers at a time
Progress = Callable[[int, int], None]  # (candles done, candles in all)


class _PairChunk:
    """One pair's candles in the part of the timeline being replayed, as Python floats, six a
    candle (``rows``): open, high, low, close, the candle's volume and the 24 h volume before
    it. Its ticks' times, prices and 24 h volumes are made from them as ``feed.candle_ticks``
    makes them (the same operations), not kept as twelve."""

    def __init__(self, ps: PairState) -> None:
        self.ps = ps
        self.rows: list[float] = []


def replay(
    core: TradingCore,
    clock: SimClock,
    book: BacktestBook,
    symbols: list[str],
    candles: Mapping[str, np.ndarray],
    skips: Mapping[str, int],
    tf_ms: int,
    half_spread: float,
    progress: Progress | None,
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Every candle's four ticks through ``core.on_tick``, pairs interleaved by time."""
    # each candle's ticks as ``feed.candle_ticks`` makes them: at these offsets from its open
    # time; the open, the extremes (the low first on an up candle), the close; each with the
    # 24 h volume before the candle plus the share of the candle's own seen so far
    off0, off1, off2, off3 = tick_offsets(tf_ms)
    d0, d1, d2, d3 = VOLUME_DONE
    sixes: list[np.ndarray] = []
    opens: list[np.ndarray] = []
    for s in symbols:
        rows, skip = candles[s], skips[s]
        ts = rows[:, 0].astype("int64")
        before_v, _ = volume_before(ts, rows[:, 4], rows[:, 5], tf_ms)  # over every row, skipped too
        sixes.append(np.column_stack([rows[skip:, 1:6], before_v[skip:]]).astype(np.float64))
        opens.append(ts[skip:])
    # one timeline: every (candle time, pair) in time order, pairs in safe-list order
    starts = np.concatenate(opens)
    owner = np.concatenate([np.full(len(t), k) for k, t in enumerate(opens)])
    row = np.concatenate([np.arange(len(t)) for t in opens])
    order = np.lexsort((owner, starts))
    starts, owner, row = starts[order], owner[order], row[order]
    slots = [_PairChunk(core.pairs[s]) for s in symbols]
    positions = core.portfolio.positions
    portfolio = core.portfolio  # (``core.on_tick`` called, not bound: a native call, no float boxed)
    booked: list[EquityRow] = book.equity_rows  # the core's own equity points, as its timer records them
    eq_ts: list[int] = []
    eq_val: list[float] = []
    eq_cash: list[float] = []
    eq_exp: list[float] = []
    swapped: list[bool] = []
    total = len(starts)
    done = 0
    next_report = 0
    while done < total:
        # The timeline becomes Python numbers a chunk at a time (memory stays bounded on a
        # year of candles); a chunk ends between candle times, never inside one.
        end = min(done + CHUNK, total)
        while end < total and starts[end] == starts[end - 1]:
            end += 1
        chunk_starts: list[int] = starts[done:end].tolist()
        owners: list[int] = owner[done:end].tolist()
        firsts = _chunk_rows(slots, sixes, owner[done:end], row[done:end])
        i, n = 0, end - done
        while i < n:
            t = chunk_starts[i]
            j = i + 1
            while j < n and chunk_starts[j] == t:
                j += 1
            # The four ticks of each pair, step by step (every pair's open, then every pair's
            # first extreme, ...), one loop per step: this is the backtest's hottest loop.
            ms = clock.ms = t + off0
            for e in range(i, j):  # the opens
                pc = slots[owners[e]]
                r = firsts[e]
                six = pc.rows
                p = six[r]
                half = p * half_spread
                core.on_tick(pc.ps, ms, p - half, p + half, p, six[r + 5] + six[r + 4] * d0)
            # the extremes' order is chosen once per candle, when the first of them comes: a
            # pair holding a position sees the extreme against it first; the second extreme
            # is the other one even when the first closed the position (the candle's high and
            # low both happened)
            swapped.clear()
            ms = clock.ms = t + off1
            for e in range(i, j):
                pc = slots[owners[e]]
                r = firsts[e]
                six = pc.rows
                up = six[r + 3] >= six[r]  # an up candle: the low first (NaN: not up)
                a = six[r + 2] if up else six[r + 1]
                b = six[r + 1] if up else six[r + 2]
                pos = positions.get(pc.ps.symbol)
                # long: the lower first; short: the higher first
                swap = pos is not None and pos.qty != 0.0 and ((b < a) if pos.qty > 0.0 else (b > a))
                swapped.append(swap)
                p = b if swap else a
                half = p * half_spread
                core.on_tick(pc.ps, ms, p - half, p + half, p, six[r + 5] + six[r + 4] * d1)
            ms = clock.ms = t + off2
            for e in range(i, j):
                pc = slots[owners[e]]
                r = firsts[e]
                six = pc.rows
                up = six[r + 3] >= six[r]
                a = six[r + 2] if up else six[r + 1]
                b = six[r + 1] if up else six[r + 2]
                p = a if swapped[e - i] else b  # the other extreme
                half = p * half_spread
                core.on_tick(pc.ps, ms, p - half, p + half, p, six[r + 5] + six[r + 4] * d2)
            ms = clock.ms = t + off3
            for e in range(i, j):  # the closes
                pc = slots[owners[e]]
                r = firsts[e]
                six = pc.rows
                p = six[r + 3]
                half = p * half_spread
                core.on_tick(pc.ps, ms, p - half, p + half, p, six[r + 5] + six[r + 4] * d3)
            core.on_timer()
            ms = clock.ms
            eq_ts.append(ms)
            last = booked[-1] if booked else None
            if last is not None and last[0] == ms:  # the point the timer just recorded, on the same marks
                eq_val.append(last[1])
                eq_cash.append(last[2])
                eq_exp.append(last[3])
            else:
                equity, exposure, _ = portfolio.valuation(core.marks())
                eq_val.append(equity)
                eq_cash.append(portfolio.cash)
                eq_exp.append(exposure)
            i = j
            if progress is not None and done + i >= next_report:
                progress(done + i, total)
                next_report = done + i + max(1, total // 200)
        done = end
    if progress is not None:
        progress(total, total)
    return eq_ts, eq_val, eq_cash, eq_exp


def _chunk_rows(slots: list[_PairChunk], sixes: list[np.ndarray], owner: np.ndarray, row: np.ndarray) -> list[int]:
    """A slice of the timeline as Python numbers: each pair's candles in it (consecutive rows)
    into its ``_PairChunk``; per entry, where its candle's six numbers start in its pair's list
    (six times its place: the multiplication done here, for all at once)."""
    first_row = np.zeros(len(slots), dtype=row.dtype)
    for k, pc in enumerate(slots):
        rows = row[owner == k]
        r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
        first_row[k] = r0
        pc.rows = sixes[k][r0:r1].ravel().tolist()  # a flat ``tolist`` costs a third of a nested one
    firsts: list[int] = ((row - first_row[owner]) * 6).tolist()
    return firsts
