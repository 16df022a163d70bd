"""Simple and exponential moving averages."""

from __future__ import annotations

import math
from collections import deque

from engine.core.indicators.base import _check_period, _Indicator


class SMA(_Indicator):
    """Simple moving average; first value after ``period`` closes (TA-Lib SMA)."""

    __slots__ = ("_comp", "_since_resync", "_sum", "_window")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._comp = 0.0  # compensation term: keeps the running sum exact-ish forever
        self._since_resync = 0
        self._value = None


    @property
    def value(self) -> float | None:
        return self._value


    def _advance(self, x: float) -> tuple[float, float, float | None]:
        # Neumaier's compensated sum: add x, then (window full) take the oldest value out;
        # each step keeps the rounding error of whichever operand is smaller in c. Written out
        # twice rather than called: this runs on every candle and every preview.
        s, c = self._sum, self._comp
        t = s + x
        c += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
        s = t
        w = self._window
        n = self._period
        if len(w) == n:
            y = -w[0]
            t = s + y
            c += (s - t) + y if abs(s) >= abs(y) else (y - t) + s
            s = t
        elif len(w) < n - 1:
            return s, c, None
        return s, c, (s + c) / n

    def preview(self, x: float) -> float | None:
        return self._advance(x)[2]

    def update(self, x: float) -> float | None:
        s, c, value = self._advance(x)
        w = self._window
        if len(w) == self._period:
            w.popleft()
        w.append(x)
        self._sum, self._comp = s, c
        self._value = value
        self._since_resync += 1
        if self._since_resync >= self._period:
            # Exact re-derivation bounds error accumulation; amortised O(1).
            hi = math.fsum(w)
            self._sum, self._comp = hi, math.fsum([*w, -hi])  # keep fsum's rounding residual
            self._since_resync = 0
        return value


# --------------------------------------------------------------------------- EMA


class EMA(_Indicator):
    """Exponential MA, k = 2/(period+1), seeded with the SMA of the first
    ``period`` closes (TA-Lib EMA, default compatibility)."""

    __slots__ = ("_count", "_k", "_seed_sum")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._k = 2.0 / (period + 1)
        self._count = 0
        self._seed_sum = 0.0
        self._value = None


    @property
    def value(self) -> float | None:
        return self._value


    def preview(self, x: float) -> float | None:
        prev = self._value
        if prev is not None:
            # Same operation order as TA-Lib: ((x - prev) * k) + prev.
            return ((x - prev) * self._k) + prev
        if self._count == self._period - 1:
            return (self._seed_sum + x) / self._period
        return None

    def update(self, x: float) -> float | None:
        value = self.preview(x)
        if self._value is None:
            self._seed_sum += x
            self._count += 1
        self._value = value
        return value


# --------------------------------------------------------------------------- RSI
