"""Candles in memory: one pair's OHLCV as numpy arrays, its timeframe arithmetic and its gaps.

Owns ``Candles`` (oldest first, one row per open time: merged, sliced by open time, turned into
a pandas frame), ``timeframe_to_ms``, and the two views of what is missing between open times:
``find_gaps`` (a run of missing candles between a file's first and last, ``Gap``) and
``missing_ranges`` (what a wanted range lacks, for a download to ask for). ``DataError`` is the
one error of the candle data, raised here and by the file and directory modules above
(``feed.candlefiles``, ``feed.datadir``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from feed.errors import FeedError

if TYPE_CHECKING:
    import pandas as pd

_TF_RE = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class DataError(FeedError, ValueError):
    """A candle file or directory that cannot be used; one line naming it and what to do."""


# -- time -------------------------------------------------------------------------------------


def timeframe_to_ms(timeframe: str) -> int:
    """``1s``, ``5m``, ``1h``, ``1d``, ``1w`` in milliseconds (a month has no fixed length)."""
    m = _TF_RE.match(timeframe)
    if not m or int(m.group(1)) <= 0:
        raise DataError(f"timeframe {timeframe!r} is not like 1s, 1m, 15m, 1h, 1d or 1w")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def fmt_ts(ms: int | None) -> str:
    """``2024-01-01 00:00`` (UTC; seconds shown only when not zero)."""
    if ms is None:
        return "-"
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if dt.second else "%Y-%m-%d %H:%M")


# -- gaps -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles: open times ``start_ms`` (the first missing) to ``end_ms`` (exclusive)."""

    start_ms: int
    end_ms: int
    tf_ms: int

    @property
    def missing(self) -> int:
        return (self.end_ms - self.start_ms) // self.tf_ms

    def __str__(self) -> str:
        return f"{fmt_ts(self.start_ms)} → {fmt_ts(self.end_ms)} ({self.missing:,} candles)"


def find_gaps(ts: np.ndarray, tf_ms: int, start_ms: int | None = None, end_ms: int | None = None) -> list[Gap]:
    """Runs of missing candles between consecutive open times of ``ts`` (sorted, unique), only
    those inside ``[start_ms, end_ms)`` when given (clipped to it)."""
    if len(ts) < 2:
        return []
    idx = np.flatnonzero(np.diff(ts) > tf_ms)
    gaps = []
    for i in idx:
        a, b = int(ts[i]) + tf_ms, int(ts[i + 1])
        if start_ms is not None:
            a = max(a, start_ms)
        if end_ms is not None:
            b = min(b, end_ms)
        if b > a:
            gaps.append(Gap(a, b, tf_ms))
    return gaps


def missing_ranges(ts: np.ndarray, tf_ms: int, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The open-time ranges ``[a, b)`` inside ``[start_ms, end_ms)`` that ``ts`` (sorted) lacks."""
    if end_ms <= start_ms:
        return []
    inside = ts[(ts >= start_ms) & (ts < end_ms)]
    if not len(inside):
        return [(start_ms, end_ms)]
    out = []
    if inside[0] > start_ms:
        out.append((start_ms, int(inside[0])))
    idx = np.flatnonzero(np.diff(inside) > tf_ms)
    out += [(int(inside[i]) + tf_ms, int(inside[i + 1])) for i in idx]
    if int(inside[-1]) + tf_ms < end_ms:
        out.append((int(inside[-1]) + tf_ms, end_ms))
    return out


# -- candles ----------------------------------------------------------------------------------


def _empty_f64() -> np.ndarray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, eq=False, slots=True)
class Candles:
    """One pair's candles, oldest first, unique open times: numpy arrays of equal length.

    ``ts`` is the open time in epoch milliseconds (int64); prices and volume are float64.
    """

    pair: str
    timeframe: str
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    open: np.ndarray = field(default_factory=_empty_f64)
    high: np.ndarray = field(default_factory=_empty_f64)
    low: np.ndarray = field(default_factory=_empty_f64)
    close: np.ndarray = field(default_factory=_empty_f64)
    volume: np.ndarray = field(default_factory=_empty_f64)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def first_ts(self) -> int | None:
        return int(self.ts[0]) if len(self.ts) else None

    @property
    def last_ts(self) -> int | None:
        return int(self.ts[-1]) if len(self.ts) else None

    @property
    def tf_ms(self) -> int:
        return timeframe_to_ms(self.timeframe)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (self.ts, self.open, self.high, self.low, self.close, self.volume)

    def between(self, start_ms: int | None = None, end_ms: int | None = None) -> Candles:
        """The candles that open in ``[start_ms, end_ms)`` (views, no copy)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        hi = len(self.ts) if end_ms is None else int(np.searchsorted(self.ts, end_ms, side="left"))
        return Candles(self.pair, self.timeframe, *(c[lo:hi] for c in self.columns()), path=self.path)

    def gaps(self, start_ms: int | None = None, end_ms: int | None = None) -> list[Gap]:
        return find_gaps(self.ts, self.tf_ms, start_ms, end_ms)

    def to_frame(self) -> pd.DataFrame:
        """A pandas frame with freqtrade's columns (``date`` UTC) plus ``ts`` (ms)."""
        import pandas as pd

        return pd.DataFrame({
            "date": pd.to_datetime(self.ts, unit="ms", utc=True),
            "open": self.open, "high": self.high, "low": self.low,
            "close": self.close, "volume": self.volume, "ts": self.ts,
        })

    def merged(self, other: Candles) -> Candles:
        """Both sets, sorted; where both have a candle at the same open time, ``other``'s wins."""
        if not len(other):
            return self
        cols = [np.concatenate([a, b]) for a, b in zip(self.columns(), other.columns(), strict=True)]
        return Candles(self.pair, self.timeframe, *sorted_unique(*cols), path=self.path)


def sorted_unique(ts: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sort by ``ts`` (stable) and keep the last row of each open time."""
    if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        values = tuple(v[order] for v in values)
        keep = np.ones(len(ts), dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]
        ts = ts[keep]
        values = tuple(v[keep] for v in values)
    return (ts, *values)
