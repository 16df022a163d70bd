"""Volatility: ATR and Bollinger Bands (population standard deviation, TA-Lib's)."""

from __future__ import annotations

import math
from collections import deque

from engine.core.indicators.base import _centre, _check_period, _Indicator

BBValue = tuple[float, float, float]


class ATR(_Indicator):
    """Wilder ATR (TA-Lib ATR). True range needs the previous close, so the
    first candle only primes it; the first value (simple mean of the first
    ``period`` TRs) appears on candle ``period + 1`` (index ``period``)."""

    __slots__ = ("_count", "_prev_close", "_tr_sum")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._prev_close: float | None = None
        self._count = 0  # true ranges seen
        self._tr_sum = 0.0
        self._value = None


    @property
    def value(self) -> float | None:
        return self._value


    @staticmethod
    def true_range(high: float, low: float, prev_close: float) -> float:
        return max(high - low, abs(prev_close - high), abs(prev_close - low))

    def _advance(self, high: float, low: float) -> tuple[float, float | None]:
        pc = self._prev_close
        if pc is None:
            return 0.0, None
        # max(high - low, |pc - high|, |pc - low|) written out: ``max`` keeps its first argument
        # unless a later one is greater, exactly as these two tests do, without the call
        tr = high - low
        up = abs(pc - high)
        if up > tr:
            tr = up
        down = abs(pc - low)
        if down > tr:
            tr = down
        n = self._period
        prev: float | None = self._value  # (typed: ``_value`` is ``Any``, its arithmetic generic)
        if prev is not None:
            # TA-Lib order: prev * (n-1), + TR, / n.
            return tr, (prev * (n - 1) + tr) / n
        if self._count == n - 1:
            return tr, (self._tr_sum + tr) / n
        return tr, None

    def preview(self, high: float, low: float, close: float) -> float | None:
        return self._advance(high, low)[1]

    def update(self, high: float, low: float, close: float) -> float | None:
        tr, value = self._advance(high, low)
        if self._prev_close is not None and self._value is None:
            self._tr_sum += tr
            self._count += 1
        self._prev_close = close
        self._value = value
        return value


# --------------------------------------------------------------- Bollinger Bands


class BollingerBands(_Indicator):
    """Bollinger Bands = SMA ± num_std * population std (TA-Lib BBANDS, matype=0,
    nbdevup = nbdevdn = num_std). Values are ``(upper, middle, lower)``.

    Sums are kept around a shift K (a window value near the mean):
    s1 = Σ(x-K), s2 = Σ(x-K)². With BTC at 60000 and moves of a few dollars a
    raw sum of squares cancels ~8 digits; centred sums cancel none. K is
    re-picked and the sums re-derived exactly (math.fsum) every ``period``
    updates. ``peak`` (largest (x-K)² since then) bounds the rounding error of
    the running sums; if peak / variance says that error could reach ~1e-10 of
    the variance (a near-flat window right after a big move), that value is
    computed exactly from the window instead (O(period), rare) and the sums
    are re-derived on commit. A window of identical closes (gap candles) is
    recognised in O(1) and gives exactly zero width, like TA-Lib.
    """

    __slots__ = (
        "_num_std",
        "_peak",
        "_ratio",
        "_run",
        "_s1",
        "_s2",
        "_shift",
        "_since_resync",
        "_window",
    )

    def __init__(self, period: int = 20, num_std: float = 2.0) -> None:
        self._period = _check_period(period)
        self._num_std = float(num_std)
        # Just after a re-centre peak/var <= ~n + 2*sqrt(n), so this never fires
        # spuriously, and error stays <= ~4n^2*eps of the variance when it doesn't.
        self._ratio = 2.0 * period + 1000.0
        self._window: deque[float] = deque()
        self._shift = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._peak = 0.0
        self._run = 0  # how many trailing closes are identical
        self._since_resync = 0
        self._value = None


    @property
    def num_std(self) -> float:
        return self._num_std

    @property
    def value(self) -> BBValue | None:
        return self._value


    def _advance(self, x: float) -> tuple[float, float, float, int, BBValue | None, bool]:
        """State after adding x: (s1, s2, peak, run, bands, computed_exactly)."""
        w = self._window
        n = self._period
        run = self._run + 1 if w and x == w[-1] else 1
        k = self._shift if w else x  # the first close becomes the shift
        d = x - k
        dd = d * d
        s1 = self._s1 + d
        s2 = self._s2 + dd
        peak = self._peak if self._peak >= dd else dd
        full = len(w) == n
        if full:
            o = w[0] - k
            s1 -= o
            s2 -= o * o
        elif len(w) < n - 1:
            return s1, s2, peak, run, None, False
        if run >= n:
            return s1, s2, peak, run, (x, x, x), False
        m = s1 / n
        var = s2 / n - m * m
        exact = var * self._ratio < peak
        if exact:
            vals = list(w)
            if full:
                del vals[0]
            vals.append(x)
            mid = math.fsum(vals) / n
            var = math.fsum((v - mid) * (v - mid) for v in vals) / n
        else:
            mid = k + m
            if var < 0.0:
                var = 0.0  # rounding can leave a tiny negative on a flat window
        dev = self._num_std * math.sqrt(var)
        return s1, s2, peak, run, (mid + dev, mid, mid - dev), exact

    def preview(self, x: float) -> BBValue | None:
        return self._advance(x)[4]

    def update(self, x: float) -> BBValue | None:
        s1, s2, peak, run, value, exact = self._advance(x)
        w = self._window
        if not w:
            self._shift = x
        elif len(w) == self._period:
            w.popleft()
        w.append(x)
        self._s1, self._s2, self._peak, self._run = s1, s2, peak, run
        self._value = value
        self._since_resync += 1
        if exact or self._since_resync >= self._period:
            self._resync()
        return value

    def _resync(self) -> None:
        w = self._window
        k = _centre(w)
        devs = [v - k for v in w]
        squares = [d * d for d in devs]  # once, for the sum and the peak
        self._shift = k
        self._s1 = math.fsum(devs)
        self._s2 = math.fsum(squares)
        self._peak = max(squares)
        self._since_resync = 0


def bollinger_position(close: float, upper: float, lower: float) -> float:
    """Where close sits in the bands: 0 at lower, 1 at upper (0.5 if they touch)."""
    width = upper - lower
    if width == 0.0:
        return 0.5
    return (close - lower) / width


# ------------------------------------------------------------ rolling max / min
