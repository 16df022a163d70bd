"""What every indicator shares: the period check, the shift of centred sums, the base class."""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Final

# σ below 1e-10 of a mean's magnitude cannot be told apart from rounding noise: a flat series
# (its variance at or below this times the squared mean). The rolling correlation's, the
# correlation table's and its numpy kernels' one limit.
ZERO_VAR: Final = 1e-20


def _check_period(period: int, name: str = "period") -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"{name} must be an int >= 1, got {period!r}")
    return period


def _centre(window: deque[float]) -> float:
    """Pick the window value closest to its mean as the shift for centred sums."""
    n = len(window)
    mean = math.fsum(window) / n
    # An actual data point (not the mean) keeps a flat window exactly flat. The first of the
    # closest, as ``min(window, key=lambda v: abs(v - mean))`` picks it, without a call per value.
    best = window[0]
    gap = abs(best - mean)
    for v in window:
        d = abs(v - mean)
        if d < gap:
            best = v
            gap = d
    return best


class _Indicator:
    """What every windowed indicator shares: its period and its last committed value."""

    __slots__ = ("_period", "_value")
    _period: int
    _value: Any  # each indicator's own: float | None, or BBValue | None (one type for mypyc)

    @property
    def period(self) -> int:
        return self._period

    @property
    def ready(self) -> bool:
        return self._value is not None
