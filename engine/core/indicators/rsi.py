"""Wilder's RSI, seeded as TA-Lib 0.6 seeds it."""

from __future__ import annotations

from engine.core.indicators.base import _check_period, _Indicator


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
        self._value = None


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
