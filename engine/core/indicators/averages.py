"""Simple and exponential moving averages."""

from __future__ import annotations

import math

from engine.core.indicators.base import _check_period, _Indicator


class SMA(_Indicator):
    """Simple moving average; first value after ``period`` closes (TA-Lib SMA)."""

    # The window is a ring of ``period`` slots in a native list (``_held`` values; once full,
    # ``_oldest`` is the slot of the oldest, which the next value takes): a ``deque`` cost a
    # generic call for each read, push and pop. The sums are the same in any order (``fsum`` is
    # exact), so the ring's order changes no value.
    __slots__ = ("_comp", "_held", "_oldest", "_ring", "_since_resync", "_sum")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._ring: list[float] = [0.0] * period
        self._held = 0
        self._oldest = 0
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
        n = self._period
        held = self._held
        if held == n:
            y = -self._ring[self._oldest]
            t = s + y
            c += (s - t) + y if abs(s) >= abs(y) else (y - t) + s
            s = t
        elif held < n - 1:
            return s, c, None
        return s, c, (s + c) / n

    def preview(self, x: float) -> float | None:
        return self._advance(x)[2]

    def update(self, x: float) -> float | None:
        s, c, value = self._advance(x)
        n = self._period
        ring = self._ring
        if self._held == n:  # the oldest leaves: its slot takes x
            ring[self._oldest] = x
            self._oldest = (self._oldest + 1) % n
        else:
            ring[self._held] = x
            self._held += 1
        self._sum, self._comp = s, c
        self._value = value
        self._since_resync += 1
        if self._since_resync >= n:
            # Exact re-derivation bounds error accumulation; amortised O(1).
            w = ring if self._held == n else ring[: self._held]
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
        prev: float | None = self._value  # (typed: ``_value`` is ``Any``, its arithmetic generic)
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
