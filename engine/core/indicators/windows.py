"""Rolling windows: highest high / lowest low (breakouts) and the correlation of returns."""

from __future__ import annotations

import math
from collections import deque

from engine.core.indicators.base import ZERO_VAR, _centre, _check_period, _Indicator


class _RollingExtreme(_Indicator):
    """Monotonic queue of (index, value); its front is the window's extreme.

    The queue lives in two native lists used as a ring of ``period`` slots (``_ix`` the indices,
    ``_vx`` the values; ``_front`` the first slot, ``_size`` how many are used): a ``deque`` of
    tuples cost a generic call for each read, push and pop and a tuple per candle, about a
    third of a compiled candle's indicator work. An index is kept modulo ``period + 1`` (a
    small int, which Python does not allocate): every index in the queue is within ``period``
    of the newest, so the distance to it is exact."""

    __slots__ = ("_count", "_front", "_ix", "_size", "_vx")
    _is_max: bool = True

    def __init__(self, period: int) -> None:
        self._period = _check_period(period)
        self._ix: list[int] = [0] * period
        self._vx: list[float] = [0.0] * period
        self._front = 0
        self._size = 0
        self._count = 0
        self._value = None


    @property
    def value(self) -> float | None:
        return self._value


    def _beats(self, a: float, b: float) -> bool:
        return a >= b if self._is_max else a <= b

    def preview(self, x: float) -> float | None:
        """Extreme of the last ``period - 1`` committed values and x."""
        n = self._period
        if self._count + 1 < n:
            return None
        best: float | None = None
        size, front = self._size, self._front
        if size:
            if (self._count - self._ix[front]) % (n + 1) != n:  # not the one that drops out next
                best = self._vx[front]
            elif size > 1:
                best = self._vx[(front + 1) % n]  # monotonic: the runner-up is next
        if best is None or self._beats(x, best):
            return x
        return best

    def update(self, x: float) -> float | None:
        n = self._period
        ix, vx = self._ix, self._vx
        front, size = self._front, self._size
        i = self._count
        # pop from the back every value x beats (``_beats`` spelled out per kind: a method call
        # per comparison costs more than the rest)
        if self._is_max:
            while size and x >= vx[(front + size - 1) % n]:
                size -= 1
        else:
            while size and x <= vx[(front + size - 1) % n]:
                size -= 1
        if size and (i - ix[front]) % (n + 1) >= n:  # the front left the window (before the push: room)
            front = (front + 1) % n
            size -= 1
        back = (front + size) % n
        ix[back] = i % (n + 1)
        vx[back] = x
        size += 1
        self._front, self._size = front, size
        self._count = i + 1
        value = vx[front] if self._count >= n else None
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
        # the running sums in locals, stored once: the same operations in the same order
        sx = self._sx + dx
        sy = self._sy + dy
        sxx = self._sxx + dxx
        syy = self._syy + dyy
        sxy = self._sxy + dx * dy
        if dxx > self._px:
            self._px = dxx
        if dyy > self._py:
            self._py = dyy
        n = self._window
        if len(xs) == n:
            ox = xs.popleft() - kx
            oy = ys.popleft() - ky
            sx -= ox
            sy -= oy
            sxx -= ox * ox
            syy -= oy * oy
            sxy -= ox * oy
        self._sx, self._sy, self._sxx, self._syy, self._sxy = sx, sy, sxx, syy, sxy
        xs.append(x)
        ys.append(y)
        self._since_resync += 1
        if len(xs) < n:
            self._value = None
            return None
        mx, my = sx / n, sy / n
        vx = sxx / n - mx * mx
        vy = syy / n - my * my
        exact = vx * self._ratio < self._px or vy * self._ratio < self._py
        if exact:
            mean_x, mean_y, vx, vy, cov = self._exact_moments()
        else:
            mean_x, mean_y = kx + mx, ky + my
            cov = sxy / n - mx * my
        value: float | None
        zv = ZERO_VAR
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
        xxs = [d * d for d in dxs]  # once, for the sum and the peak
        yys = [d * d for d in dys]
        self._sx = math.fsum(dxs)
        self._sy = math.fsum(dys)
        self._sxx = math.fsum(xxs)
        self._syy = math.fsum(yys)
        self._sxy = math.fsum([a * b for a, b in zip(dxs, dys, strict=True)])
        self._px = max(xxs)
        self._py = max(yys)
        self._since_resync = 0
