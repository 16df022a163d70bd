"""Breakout, the seed's example strategy: a close above the highest high of the previous
``lookback`` candles is a BUY.

Stop = the breakout candle's low, or entry − stop_atr×ATR when that is tighter or the low is
not below the entry; it is always below the entry. Take-profit = entry + take_profit_atr×ATR.
A close below the lowest low of the previous ``lookback`` candles exits a long (SELL); a
close above the highest high covers a short (BUY). No short entries.

Confidence = 0.70 + 0.15 × margin + 0.15 × volume surge, capped at 1: margin is how far the
close is beyond the level in ATRs (capped at 1); surge is the candle's volume over its
recent average minus 1 (capped at 1). The strategy keeps that volume average itself (an EMA
over ``lookback`` candles, folded in by ``observe`` on every closed candle, warm-up included,
so the average is warm when live trading starts). Signals carry
``ts = candle.ts`` (the candle open time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from engine.core.models import Indicators, Signal, SignalType
from engine.core.strategies.base import Strategy, clip01, register

if TYPE_CHECKING:
    from engine.core.candles import Candle
    from engine.core.config import StrategyParams

BASE_CONFIDENCE: Final = 0.70


class BreakoutStrategy(Strategy):
    reads = frozenset({"extremes"})

    def __init__(self, symbol: str, params: StrategyParams) -> None:
        super().__init__(symbol, params)
        self._alpha = 2.0 / (params.lookback + 1)
        self._avg_volume: float | None = None  # EMA of volume, including the last observed candle
        self._seen = 0
        self._observed_ts: int | None = None
        self._avg_before: float | None = None  # the average before the last observed candle

    @property
    def volume_average(self) -> float | None:
        """The volume EMA once ``lookback`` candles were seen (None while it warms)."""
        return self._avg_volume if self._seen >= self.params.lookback else None

    def observe(self, candle: Candle, ind: Indicators) -> None:
        self._avg_before = self.volume_average
        self._observed_ts = candle.ts
        volume = candle.volume
        if volume >= 0:
            avg = self._avg_volume
            self._avg_volume = volume if avg is None else avg + self._alpha * (volume - avg)
            self._seen += 1

    def warmup_candles(self) -> int:  # the window before the candle (and its volume), ATR
        p = self.params
        return max(p.lookback + 1, p.atr_period + 1)

    def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
        if self._observed_ts != candle.ts:  # called on its own, not through PairRuntime
            self.observe(candle, ind)
        avg_volume = self._avg_before
        p = self.params
        high, low, atr = ind.highest, ind.lowest, ind.atr
        n = p.lookback
        if high is None or low is None or atr is None:
            named = ((f"{n}-candle high", high), (f"{n}-candle low", low), ("ATR", atr))
            return self.hold(candle, f"warming up: {', '.join(x for x, v in named if v is None)} not ready")
        close = candle.close

        if position_qty > 0:
            if close < low:
                return Signal(self.symbol, SignalType.SELL, 1.0, close,
                              reasoning=f"exit long: close {close:.8g} below the {n}-candle low {low:.8g}",
                              ts=candle.ts)
            return self.hold(candle, f"long; exit below the {n}-candle low {low:.8g}")
        if position_qty < 0:
            if close > high:
                return Signal(self.symbol, SignalType.BUY, 1.0, close,
                              reasoning=f"exit short: close {close:.8g} above the {n}-candle high {high:.8g}",
                              ts=candle.ts)
            return self.hold(candle, f"short; exit above the {n}-candle high {high:.8g}")

        if close <= high:
            return self.hold(candle, f"no breakout: close {close:.8g} <= {n}-candle high {high:.8g}")
        if atr <= 0:
            return self.hold(candle, "ATR is 0 (no range): no stop distance")
        atr_stop = close - p.stop_atr * atr
        stop = candle.low if 0 < candle.low < close and candle.low > atr_stop else atr_stop
        if stop <= 0:
            return self.hold(candle, f"{n}-candle breakout but no positive stop below {close:.8g}")
        margin = clip01((close - high) / atr)
        surge = clip01(candle.volume / avg_volume - 1.0) if avg_volume else 0.0
        conf = clip01(BASE_CONFIDENCE + 0.15 * margin + 0.15 * surge)
        vol_note = f", volume {candle.volume / avg_volume:.1f}× average" if avg_volume else ""
        return Signal(
            self.symbol, SignalType.BUY, conf, close,
            stop_loss=stop, take_profit=close + p.take_profit_atr * atr,
            reasoning=f"{n}-candle breakout above {high:.8g} ({(close - high) / atr:.2f} ATR{vol_note})",
            ts=candle.ts,
        )


register("breakout")(BreakoutStrategy)  # a call, not a decorator: a decorated class cannot be compiled
