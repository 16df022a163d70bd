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
  updates, an O(period) step that amortises to O(1).

Warm-up and seeding match TA-Lib 0.6 (``SMA``, ``EMA``, ``RSI``,
``BBANDS(matype=0)``, ``ATR``) index for index; see tests/test_indicators.py.
One deliberate difference: zero tests are exact (``gain + loss == 0``) rather
than against an absolute epsilon, so coins priced at 1e-8 behave like BTC.
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

# A shifted sum loses about log10(ratio) digits when (mean - shift)^2 / var
# exceeds this; re-centre before it can cost more than ~3 digits.
_RECENTRE_RATIO = 1000.0


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


class SMA:
    """Simple moving average; first value after ``period`` closes (TA-Lib SMA)."""

    __slots__ = ("_comp", "_period", "_since_resync", "_sum", "_value", "_window")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._comp = 0.0  # compensation term: keeps the running sum exact-ish forever
        self._since_resync = 0
        self._value: float | None = None

    @property
    def period(self) -> int:
        return self._period

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

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
            self._sum, self._comp = math.fsum(w), 0.0
            self._since_resync = 0
        return value


# --------------------------------------------------------------------------- EMA


class EMA:
    """Exponential MA, k = 2/(period+1), seeded with the SMA of the first
    ``period`` closes (TA-Lib EMA, default compatibility)."""

    __slots__ = ("_count", "_k", "_period", "_seed_sum", "_value")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._k = 2.0 / (period + 1)
        self._count = 0
        self._seed_sum = 0.0
        self._value: float | None = None

    @property
    def period(self) -> int:
        return self._period

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

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


class RSI:
    """Wilder RSI (TA-Lib RSI): first value after ``period + 1`` closes, seeded
    with the mean gain/loss of the first ``period`` changes."""

    __slots__ = ("_diffs", "_gain", "_loss", "_period", "_prev", "_value")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._prev: float | None = None
        self._diffs = 0
        self._gain = 0.0  # sum during warm-up, Wilder average afterwards
        self._loss = 0.0
        self._value: float | None = None

    @property
    def period(self) -> int:
        return self._period

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

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


class ATR:
    """Wilder ATR (TA-Lib ATR). True range needs the previous close, so the
    first candle only primes it; the first value (simple mean of the first
    ``period`` TRs) appears on candle ``period + 1`` (index ``period``)."""

    __slots__ = ("_count", "_period", "_prev_close", "_tr_sum", "_value")

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._prev_close: float | None = None
        self._count = 0  # true ranges seen
        self._tr_sum = 0.0
        self._value: float | None = None

    @property
    def period(self) -> int:
        return self._period

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

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


class BollingerBands:
    """Bollinger Bands = SMA ± num_std * population std (TA-Lib BBANDS, matype=0,
    nbdevup = nbdevdn = num_std). Values are ``(upper, middle, lower)``.

    Sums are kept around a shift K (a recent window value near the mean):
    s1 = Σ(x-K), s2 = Σ(x-K)². With BTC at 60000 and moves of a few dollars a
    raw sum of squares would cancel ~8 digits; centred sums cancel none. K is
    re-picked and the sums re-derived exactly every ``period`` updates, or
    sooner if the mean walks far from K (e.g. after a price gap).
    """

    __slots__ = (
        "_num_std",
        "_period",
        "_s1",
        "_s2",
        "_shift",
        "_since_resync",
        "_value",
        "_window",
    )

    def __init__(self, period: int = 20, num_std: float = 2.0) -> None:
        self._period = _check_period(period)
        self._num_std = float(num_std)
        self._window: deque[float] = deque()
        self._shift = 0.0
        self._s1 = 0.0
        self._s2 = 0.0
        self._since_resync = 0
        self._value: BBValue | None = None

    @property
    def period(self) -> int:
        return self._period

    @property
    def num_std(self) -> float:
        return self._num_std

    @property
    def value(self) -> BBValue | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def _advance(self, x: float) -> tuple[float, float, float, float, BBValue | None]:
        """Returns (s1, s2, mean offset from K, variance, bands) after adding x."""
        w = self._window
        k = self._shift if w else x  # first value becomes the shift
        d = x - k
        s1 = self._s1 + d
        s2 = self._s2 + d * d
        n = self._period
        if len(w) == n:
            o = w[0] - k
            s1 -= o
            s2 -= o * o
        elif len(w) < n - 1:
            return s1, s2, 0.0, 0.0, None
        m = s1 / n
        var = s2 / n - m * m
        if var < 0.0:
            var = 0.0  # rounding can leave a tiny negative on flat windows
        dev = self._num_std * math.sqrt(var)
        mid = k + m
        return s1, s2, m, var, (mid + dev, mid, mid - dev)

    def preview(self, x: float) -> BBValue | None:
        return self._advance(x)[4]

    def update(self, x: float) -> BBValue | None:
        s1, s2, m, var, value = self._advance(x)
        w = self._window
        if not w:
            self._shift = x
        elif len(w) == self._period:
            w.popleft()
        w.append(x)
        self._s1, self._s2 = s1, s2
        self._value = value
        self._since_resync += 1
        if self._since_resync >= self._period or m * m > _RECENTRE_RATIO * var:
            self._resync()
        return value

    def _resync(self) -> None:
        w = self._window
        k = _centre(w)
        self._shift = k
        self._s1 = math.fsum(v - k for v in w)
        self._s2 = math.fsum((v - k) * (v - k) for v in w)
        self._since_resync = 0


def bollinger_position(close: float, upper: float, lower: float) -> float:
    """Where close sits in the bands: 0 at lower, 1 at upper (0.5 if they touch)."""
    width = upper - lower
    if width == 0.0:
        return 0.5
    return (close - lower) / width


# ------------------------------------------------------------ rolling max / min


class _RollingExtreme:
    """Monotonic deque of (index, value); front is the window's extreme."""

    __slots__ = ("_count", "_dq", "_period", "_value")
    _is_max: bool = True

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._dq: deque[tuple[int, float]] = deque()
        self._count = 0
        self._value: float | None = None

    @property
    def period(self) -> int:
        return self._period

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

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
    either side has (numerically) zero variance. Uses centred running sums with
    the same exact re-derivation scheme as BollingerBands."""

    __slots__ = (
        "_kx",
        "_ky",
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

    # Variance below this fraction of the second moment about the shift is rounding noise.
    _ZERO_VAR = 1e-12

    def __init__(self, window: int) -> None:
        self._window = _check_period(window, "window")
        self._xs: deque[float] = deque()
        self._ys: deque[float] = deque()
        self._kx = 0.0
        self._ky = 0.0
        self._sx = self._sy = self._sxx = self._syy = self._sxy = 0.0
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
        self._sx += dx
        self._sy += dy
        self._sxx += dx * dx
        self._syy += dy * dy
        self._sxy += dx * dy
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
        mxx, myy = self._sxx / n, self._syy / n
        vx = mxx - mx * mx
        vy = myy - my * my
        value: float | None
        if vx <= self._ZERO_VAR * mxx or vy <= self._ZERO_VAR * myy:
            value = None
        else:
            r = (self._sxy / n - mx * my) / math.sqrt(vx * vy)
            value = -1.0 if r < -1.0 else (1.0 if r > 1.0 else r)
        self._value = value
        if (
            self._since_resync >= n
            or mx * mx > _RECENTRE_RATIO * max(vx, 0.0)
            or my * my > _RECENTRE_RATIO * max(vy, 0.0)
        ):
            self._resync()
        return value

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
        self._since_resync = 0
