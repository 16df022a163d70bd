"""Candles as ticks: the one expansion the replay feed and the backtest both use.

Owns ``candle_ticks``. Each candle becomes four ticks at ``TICK_FRACTIONS`` of its interval:
the open, then the two extremes, then the close. The extremes' order here is the
position-blind one the replay uses: the low first when the candle closed up, the high first
when it closed down (the path a candle most likely took). A backtest holding a position
applies its own rule on top (the extreme against the position first: docs/backtesting.md).
Every tick carries the exchange's 24-hour rolling base and quote volume at that moment (the
candles before it in the last 24 h, plus the share of this candle's volume so far), so an
engine rebuilds each candle's volume from the ticks' volume deltas exactly as it does live.
Pure numpy (imported on first use): no Python object per tick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # numpy is imported where it is used: a live feed never loads it
    import numpy as np

TICK_FRACTIONS = (0.0, 0.3, 0.6, 0.9)  # where in a candle its four ticks fall
VOLUME_DONE = (0.25, 0.5, 0.75, 1.0)  # the share of the candle's volume each tick has seen
DAY_MS = 86_400_000


class CandleTicks(NamedTuple):
    """``n`` candles as ``(n, 4)`` arrays: tick times (ms), prices, 24 h base and quote volume."""

    ts: np.ndarray
    price: np.ndarray
    base_volume: np.ndarray
    quote_volume: np.ndarray


def volume_before(
    ts: np.ndarray, close: np.ndarray, volume: np.ndarray, interval_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exchange's 24 h rolling base and quote volume just before each candle opens (the
    candles of the 24 h window that ends with the previous one)."""
    import numpy as np

    cum_v = np.concatenate([[0.0], np.cumsum(volume)])
    cum_q = np.concatenate([[0.0], np.cumsum(volume * close)])
    start = np.searchsorted(ts, ts - DAY_MS + interval_ms, side="left")
    idx = np.arange(len(ts))
    return cum_v[idx] - cum_v[start], cum_q[idx] - cum_q[start]


def extremes_in_order(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The position-blind order of a candle's extremes: the low first when it closed up."""
    import numpy as np

    up = c >= o
    return np.where(up, lo, h), np.where(up, h, lo)


def tick_offsets(interval_ms: int) -> list[int]:
    """Where a candle of ``interval_ms`` has its ticks: ms after its open (``TICK_FRACTIONS``
    of the interval, rounded half to even)."""
    import numpy as np

    return [int(x) for x in np.round(np.asarray(TICK_FRACTIONS) * interval_ms).astype("int64")]


def candle_ticks(rows: np.ndarray, interval_ms: int, skip: int = 0) -> CandleTicks:
    """Ticks for ``rows[skip:]``, where ``rows`` is ``(n, 6)``: ts (ms), open, high, low,
    close, volume, in time order. The rolling volume counts every row (``skip``ped ones too:
    they are the history before the first replayed candle)."""
    import numpy as np

    ts = rows[:, 0].astype("int64")
    o, h, lo, c, v = (rows[:, j] for j in range(1, 6))
    before_v, before_q = volume_before(ts, c, v, interval_ms)
    sel = slice(skip, None)
    ts, o, h, lo, c, v, before_v, before_q = (
        a[sel] for a in (ts, o, h, lo, c, v, before_v, before_q)
    )
    first, second = extremes_in_order(o, h, lo, c)
    price = np.stack([o, first, second, c], axis=1)
    times = ts[:, None] + np.asarray(tick_offsets(interval_ms), dtype="int64")[None, :]
    done = np.asarray(VOLUME_DONE)[None, :]
    base = before_v[:, None] + v[:, None] * done
    quote = before_q[:, None] + (v * c)[:, None] * done
    return CandleTicks(times, price, base, quote)
