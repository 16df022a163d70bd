"""Incremental technical indicators for the engine's tick path.

This module owns every indicator the engine computes per pair: SMA, EMA, RSI,
Bollinger Bands, ATR, rolling max/min (breakouts) and rolling correlation
(pair filters), plus the ``bollinger_position`` helper.

Contract shared by all indicators:

* ``update(...)`` COMMITS one closed candle and returns the new value, or
  ``None`` while warming up.
* ``preview(...)`` returns what ``update`` would return if the forming candle
  closed at that price, without touching state. ``preview(x)`` followed by
  ``update(x)`` yields bit-identical values because both run the same code.
* ``.value`` is the last committed value (or ``None``), ``.ready`` says whether
  warm-up is over.
* Every call is O(1) on plain Python floats (no numpy/pandas on the hot path).
  Windowed sums are re-derived exactly from the window once every ``period``
  updates, an O(period) step that amortises to O(1). BollingerBands and
  RollingCorrelation also compute a value exactly from the window (O(period))
  in the rare state where their running sums could have lost precision.

Warm-up and seeding match TA-Lib 0.6 (``SMA``, ``EMA``, ``RSI``,
``BBANDS(matype=0)``, ``ATR``) index for index; see tests/test_indicators.py.
Zero tests are exact (``gain + loss == 0``), never against an absolute epsilon
(as TA-Lib before 0.6 did), so a coin priced at 1e-8 behaves like BTC.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = [
    "ATR",
    "EMA",
    "RSI",
    "SMA",
    "BollingerBands",
    "RollingCorrelation",
    "RollingMax",
    "RollingMin",
    "bollinger_position",
]

BBValue = tuple[float, float, float]


def _check_period(period: int, name: str = "period") -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"{name} must be an int >= 1, got {period!r}")
    return period


def _neumaier(s: float, c: float, x: float) -> tuple[float, float]:
    """Add x to the compensated sum (s, c); returns the new (s, c)."""
    t = s + x
    # Neumaier's branch keeps the rounding error of whichever operand is smaller.
    if abs(s) >= abs(x):
        c += (s - t) + x
    else:
        c += (x - t) + s
    return t, c


def _centre(window: deque[float]) -> float:
    """Pick the window value closest to its mean as the shift for centred sums."""
    n = len(window)
    mean = math.fsum(window) / n
    # An actual data point (not the mean) keeps a flat window exactly flat.
    return min(window, key=lambda v: abs(v - mean))


# --------------------------------------------------------------------------- SMA


class _Indicator:
    """What every windowed indicator shares: its period and its last committed value."""

    __slots__ = ("_period", "_value")
    _period: int
    _value: object

    @property
    def period(self) -> int:
        return self._period

    @property
    def ready(self) -> bool:
        return self._value is not None



class SMA(_Indicator):
    """Simple moving average; first value after ``period`` closes (TA-Lib SMA)."""

    __slots__ = ("_comp", "_since_resync", "_sum", "_window")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._comp = 0.0  # compensation term: keeps the running sum exact-ish forever
        self._since_resync = 0
        self._value: float | None = None


    @property
    def value(self) -> float | None:
        return self._value


    def _advance(self, x: float) -> tuple[float, float, float | None]:
        s, c = _neumaier(self._sum, self._comp, x)
        w = self._window
        n = self._period
        if len(w) == n:
            s, c = _neumaier(s, c, -w[0])
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
        self._value: float | None = None


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


def _rsi(gain: float, loss: float) -> float:
    total = gain + loss
    # TA-Lib returns 0 (not 50) when nothing moved; keep that for compatibility.
    return 100.0 * (gain / total) if total != 0.0 else 0.0


class RSI(_Indicator):
    """Wilder RSI (TA-Lib RSI): first value after ``period + 1`` closes, seeded
    with the mean gain/loss of the first ``period`` changes."""

    __slots__ = ("_diffs", "_gain", "_loss", "_prev")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._prev: float | None = None
        self._diffs = 0
        self._gain = 0.0  # sum during warm-up, Wilder average afterwards
        self._loss = 0.0
        self._value: float | None = None


    @property
    def value(self) -> float | None:
        return self._value


    def _advance(self, x: float) -> tuple[float, float, float | None]:
        prev = self._prev
        if prev is None:
            return 0.0, 0.0, None
        n = self._period
        d = x - prev
        gain, loss = self._gain, self._loss
        if self._diffs >= n:
            # TA-Lib order: scale by (n-1), add the move, divide by n.
            gain *= n - 1
            loss *= n - 1
            if d < 0:
                loss -= d
            else:
                gain += d
            gain /= n
            loss /= n
            return gain, loss, _rsi(gain, loss)
        if d < 0:
            loss -= d
        else:
            gain += d
        if self._diffs == n - 1:
            gain /= n
            loss /= n
            return gain, loss, _rsi(gain, loss)
        return gain, loss, None

    def preview(self, x: float) -> float | None:
        return self._advance(x)[2]

    def update(self, x: float) -> float | None:
        gain, loss, value = self._advance(x)
        if self._prev is not None:
            self._gain, self._loss = gain, loss
            self._diffs += 1
        self._prev = x
        self._value = value
        return value


# --------------------------------------------------------------------------- ATR


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
        self._value: float | None = None


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
        tr = max(high - low, abs(pc - high), abs(pc - low))
        n = self._period
        prev = self._value
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
        self._value: BBValue | None = None


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
        self._shift = k
        self._s1 = math.fsum(devs)
        self._s2 = math.fsum(d * d for d in devs)
        self._peak = max(d * d for d in devs)
        self._since_resync = 0


def bollinger_position(close: float, upper: float, lower: float) -> float:
    """Where close sits in the bands: 0 at lower, 1 at upper (0.5 if they touch)."""
    width = upper - lower
    if width == 0.0:
        return 0.5
    return (close - lower) / width


# ------------------------------------------------------------ rolling max / min


class _RollingExtreme(_Indicator):
    """Monotonic deque of (index, value); front is the window's extreme."""

    __slots__ = ("_count", "_dq")
    _is_max: bool = True

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._dq: deque[tuple[int, float]] = deque()
        self._count = 0
        self._value: float | None = None


    @property
    def value(self) -> float | None:
        return self._value


    def _beats(self, a: float, b: float) -> bool:
        return a >= b if self._is_max else a <= b

    def preview(self, x: float) -> float | None:
        """Extreme of the last ``period - 1`` committed values and x."""
        if self._count + 1 < self._period:
            return None
        dq = self._dq
        expiring = self._count - self._period  # index that drops out on the next update
        best: float | None = None
        if dq:
            if dq[0][0] != expiring:
                best = dq[0][1]
            elif len(dq) > 1:
                best = dq[1][1]  # deque is monotonic, so the runner-up is next
        if best is None or self._beats(x, best):
            return x
        return best

    def update(self, x: float) -> float | None:
        dq = self._dq
        i = self._count
        beats = self._beats
        while dq and beats(x, dq[-1][1]):
            dq.pop()
        dq.append((i, x))
        if dq[0][0] <= i - self._period:
            dq.popleft()
        self._count = i + 1
        value = dq[0][1] if self._count >= self._period else None
        self._value = value
        return value


class RollingMax(_RollingExtreme):
    """Max of the last ``period`` values (None until ``period`` seen); amortised O(1)."""

    __slots__ = ()
    _is_max = True


class RollingMin(_RollingExtreme):
    """Min of the last ``period`` values (None until ``period`` seen); amortised O(1)."""

    __slots__ = ()
    _is_max = False


# --------------------------------------------------------- rolling correlation


class RollingCorrelation:
    """Pearson correlation of the last ``window`` (x, y) pairs, e.g. two return
    series. ``update(x, y)`` returns None until the window is full, or when
    either side has zero variance (σ below 1e-10 of its mean's magnitude).

    Same numerical scheme as BollingerBands: running sums centred on a shift
    per series, re-derived exactly every ``window`` updates, and an exact
    O(window) computation when the peak squared deviation says the running
    sums can no longer be trusted (e.g. right after a level shift leaves).
    """

    __slots__ = (
        "_kx",
        "_ky",
        "_px",
        "_py",
        "_ratio",
        "_since_resync",
        "_sx",
        "_sxx",
        "_sxy",
        "_sy",
        "_syy",
        "_value",
        "_window",
        "_xs",
        "_ys",
    )

    # σ/|mean| below 1e-10 cannot be told apart from rounding noise: call it flat.
    _ZERO_VAR = 1e-20

    def __init__(self, window: int) -> None:
        self._window = _check_period(window, "window")
        self._ratio = 2.0 * window + 1000.0  # see BollingerBands
        self._xs: deque[float] = deque()
        self._ys: deque[float] = deque()
        self._kx = self._ky = 0.0
        self._sx = self._sy = self._sxx = self._syy = self._sxy = 0.0
        self._px = self._py = 0.0  # peak squared deviation from the shift
        self._since_resync = 0
        self._value: float | None = None

    @property
    def window(self) -> int:
        return self._window

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


    def update(self, x: float, y: float) -> float | None:
        xs, ys = self._xs, self._ys
        if not xs:
            self._kx, self._ky = x, y
        kx, ky = self._kx, self._ky
        dx, dy = x - kx, y - ky
        dxx, dyy = dx * dx, dy * dy
        self._sx += dx
        self._sy += dy
        self._sxx += dxx
        self._syy += dyy
        self._sxy += dx * dy
        if dxx > self._px:
            self._px = dxx
        if dyy > self._py:
            self._py = dyy
        n = self._window
        if len(xs) == n:
            ox = xs.popleft() - kx
            oy = ys.popleft() - ky
            self._sx -= ox
            self._sy -= oy
            self._sxx -= ox * ox
            self._syy -= oy * oy
            self._sxy -= ox * oy
        xs.append(x)
        ys.append(y)
        self._since_resync += 1
        if len(xs) < n:
            self._value = None
            return None
        mx, my = self._sx / n, self._sy / n
        vx = self._sxx / n - mx * mx
        vy = self._syy / n - my * my
        exact = vx * self._ratio < self._px or vy * self._ratio < self._py
        if exact:
            mean_x, mean_y, vx, vy, cov = self._exact_moments()
        else:
            mean_x, mean_y = kx + mx, ky + my
            cov = self._sxy / n - mx * my
        value: float | None
        zv = self._ZERO_VAR
        if vx <= zv * mean_x * mean_x or vy <= zv * mean_y * mean_y:
            value = None
        else:
            r = cov / (math.sqrt(vx) * math.sqrt(vy))
            value = -1.0 if r < -1.0 else (1.0 if r > 1.0 else r)
        self._value = value
        if exact or self._since_resync >= n:
            self._resync()
        return value

    def _exact_moments(self) -> tuple[float, float, float, float, float]:
        n = self._window
        mean_x = math.fsum(self._xs) / n
        mean_y = math.fsum(self._ys) / n
        dxs = [v - mean_x for v in self._xs]
        dys = [v - mean_y for v in self._ys]
        vx = math.fsum(d * d for d in dxs) / n
        vy = math.fsum(d * d for d in dys) / n
        cov = math.fsum(a * b for a, b in zip(dxs, dys, strict=True)) / n
        return mean_x, mean_y, vx, vy, cov

    def _resync(self) -> None:
        xs, ys = self._xs, self._ys
        kx, ky = _centre(xs), _centre(ys)
        self._kx, self._ky = kx, ky
        dxs = [v - kx for v in xs]
        dys = [v - ky for v in ys]
        self._sx = math.fsum(dxs)
        self._sy = math.fsum(dys)
        self._sxx = math.fsum(d * d for d in dxs)
        self._syy = math.fsum(d * d for d in dys)
        self._sxy = math.fsum(a * b for a, b in zip(dxs, dys, strict=True))
        self._px = max(d * d for d in dxs)
        self._py = max(d * d for d in dys)
        self._since_resync = 0
