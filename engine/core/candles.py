"""Candle building from ticks for one pair and one timeframe.

This module owns the ``Candle`` record and ``CandleBuilder``, which turns a
stream of (timestamp, price, volume delta) ticks into time-aligned OHLCV
candles, keeps a bounded history of closed candles and exposes the forming one.

Gap policy (deliberate): when whole intervals pass with no tick, the builder
emits explicit flat "gap" candles (open = high = low = close = previous close,
volume 0, ticks 0) for each missing interval, so that every indicator fed from
the closed candles stays aligned to wall-clock time (a 14-period RSI always
spans 14 timeframes). At most ``max_gap_candles`` (default 1000) are emitted
for one gap; for a longer outage only the most recent ones are emitted and the
rest are counted in ``skipped_intervals``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["Candle", "CandleBuilder"]

_INF: Final = math.inf


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class Candle:
    """One OHLCV candle; ``ts`` is its open time in ms since epoch, aligned to the timeframe."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int = 0

    def __init__(
        self, ts: int, open: float, high: float, low: float, close: float, volume: float, ticks: int = 0
    ) -> None:
        self.ts, self.open, self.high, self.low, self.close = ts, open, high, low, close
        self.volume, self.ticks = volume, ticks


class CandleBuilder:
    """Builds candles of ``timeframe_s`` seconds from ticks.

    * ``on_tick`` returns the candles closed by that tick (usually none; one at
      a boundary; more when gap candles fill skipped intervals).
    * Ticks whose interval is older than the forming candle (or, with nothing
      forming, not newer than the last closed candle) are ignored and counted
      in ``late_ticks``. A tick older than the latest one inside the same
      interval still updates high/low/volume, but not the close.
    * Non-finite or non-positive prices and negative/non-finite volumes are
      ignored and counted in ``bad_ticks``.
    * ``flush_until(now_ms)`` closes the forming candle (and emits gap candles)
      once its interval has fully elapsed, for timers when ticks stop. Pass a
      ``now_ms`` that already allows for feed latency: ticks for intervals it
      closed will count as late.
    """

    __slots__ = (
        "_last_tick_ts",
        "_tf_ms",
        "bad_ticks",
        "closed",
        "forming",
        "gap_candles",
        "late_ticks",
        "max_gap_candles",
        "seed_dropped",
        "skipped_intervals",
        "timeframe_s",
    )

    def __init__(self, timeframe_s: int, history: int = 500, max_gap_candles: int = 1000) -> None:
        if isinstance(timeframe_s, bool) or not isinstance(timeframe_s, int) or timeframe_s < 1:
            raise ValueError(f"timeframe_s must be an int >= 1, got {timeframe_s!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history!r}")
        if max_gap_candles < 0:
            raise ValueError(f"max_gap_candles must be >= 0, got {max_gap_candles!r}")
        self.timeframe_s = timeframe_s
        self._tf_ms = timeframe_s * 1000
        self.max_gap_candles = max_gap_candles
        self.closed: deque[Candle] = deque(maxlen=history)
        self.forming: Candle | None = None
        self._last_tick_ts = 0
        self.late_ticks = 0
        self.bad_ticks = 0
        self.seed_dropped = 0
        self.gap_candles = 0
        self.skipped_intervals = 0

    @property
    def timeframe_ms(self) -> int:
        return self._tf_ms

    @property
    def last_closed(self) -> Candle | None:
        return self.closed[-1] if self.closed else None

    def bucket(self, ts_ms: int) -> int:
        """Open time of the interval containing ts_ms."""
        return ts_ms - ts_ms % self._tf_ms

    # ------------------------------------------------------------------ ticks

    def on_tick(self, ts_ms: int, price: float, volume_delta: float = 0.0) -> tuple[Candle, ...]:
        """Add one trade/ticker tick; returns the candles it closed, oldest first (a tuple:
        most ticks close none, and the empty one is not a new object each time)."""
        # ``0 < price < inf``: finite and positive (NaN fails every comparison); likewise the
        # volume: finite and not negative. Cheaper than isfinite calls on every tick.
        if not (0.0 < price < _INF and 0.0 <= volume_delta < _INF):
            self.bad_ticks += 1
            return ()
        tf = self._tf_ms
        b = ts_ms - ts_ms % tf
        f = self.forming
        if f is not None:
            if b == f.ts:
                # Hot path: most ticks land in the forming candle.
                if price > f.high:
                    f.high = price
                elif price < f.low:
                    f.low = price
                if ts_ms >= self._last_tick_ts:
                    f.close = price
                    self._last_tick_ts = ts_ms
                f.volume += volume_delta
                f.ticks += 1
                return ()
            if b < f.ts:
                self.late_ticks += 1
                return ()
            self.closed.append(f)
            # whole intervals passed with no tick: their flat candles too
            out = (f, *self._fill(f.ts, b, f.close)) if b - f.ts > tf else (f,)
        else:
            last = self.closed[-1] if self.closed else None
            if last is None:
                out = ()
            elif b <= last.ts:
                self.late_ticks += 1
                return ()
            else:
                out = tuple(self._fill(last.ts, b, last.close))
        self.forming = Candle(b, price, price, price, price, volume_delta, 1)
        self._last_tick_ts = ts_ms
        return out

    def flush_until(self, now_ms: int) -> tuple[Candle, ...]:
        """Close every interval that ended at or before now_ms; returns closed candles."""
        f = self.forming
        tf = self._tf_ms
        if f is not None:
            if now_ms < f.ts + tf:
                return ()
            self.closed.append(f)
            self.forming = None
            # The interval containing now_ms is still open, so fill strictly before it.
            return (f, *self._fill(f.ts, now_ms - now_ms % tf, f.close))
        if not self.closed:
            return ()
        last = self.closed[-1]
        return tuple(self._fill(last.ts, now_ms - now_ms % tf, last.close))

    def _fill(self, prev_ts: int, next_ts: int, price: float) -> list[Candle]:
        """Append and return flat candles for the intervals strictly between prev_ts and next_ts."""
        tf = self._tf_ms
        missing = (next_ts - prev_ts) // tf - 1
        if missing <= 0:
            return []
        if missing > self.max_gap_candles:
            self.skipped_intervals += missing - self.max_gap_candles
            missing = self.max_gap_candles
        start = next_ts - missing * tf  # keep the most recent intervals contiguous
        gaps = [Candle(start + i * tf, price, price, price, price, 0.0, 0) for i in range(missing)]
        self.closed.extend(gaps)
        self.gap_candles += missing
        return gaps

    # ---------------------------------------------------------------- history

    def seed(self, candles: Iterable[Candle], fill_gaps: bool = True) -> list[Candle]:
        """Load closed history (increasing ts) and return what was appended,
        oldest first, gap candles included: warm the indicators from that list
        (``closed`` may keep fewer than were loaded if ``history`` is small).

        Candles that are misaligned, duplicated, out of order, or not older
        than the forming candle are dropped and counted in ``seed_dropped``.
        Missing intervals are filled with flat candles, like live gaps.
        """
        tf = self._tf_ms
        last = self.closed[-1] if self.closed else None
        limit = self.forming.ts if self.forming is not None else None
        loaded: list[Candle] = []
        for c in candles:
            if (
                c.ts % tf != 0
                or (last is not None and c.ts <= last.ts)
                or (limit is not None and c.ts >= limit)
            ):
                self.seed_dropped += 1
                continue
            if last is not None and fill_gaps:
                loaded.extend(self._fill(last.ts, c.ts, last.close))
            self.closed.append(c)
            loaded.append(c)
            last = c
        return loaded

    def closes(self, n: int | None = None, include_forming: bool = False) -> list[float]:
        """Recent closes, oldest first (the last n if given), e.g. for sparklines."""
        out = [c.close for c in self.closed]
        if include_forming and self.forming is not None:
            out.append(self.forming.close)
        if n is not None:
            out = out[-n:] if n > 0 else []
        return out
