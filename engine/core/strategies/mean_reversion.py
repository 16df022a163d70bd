"""Mean reversion: Bollinger Bands plus RSI.

Flat: BUY when the close is at or below the lower band and RSI is at or below oversold;
SELL (a short entry, refused by the risk pipeline on spot pairs) when the close is at or
above the upper band and RSI at or above overbought. Long: exit (SELL) once the close
crosses back up to the middle band, the target. Short: exit (BUY) at or below the middle.
Stop = entry ∓ stop_atr×ATR; take-profit = the middle band.

Confidence = 0.6 + 0.2 × depth + 0.2 × extremity, in [0, 1]: depth is how far the close is
outside the band as a fraction of 1/4 of the band width (capped at 1), extremity how far
RSI is past its threshold in units of 15 RSI points (capped at 1). A signal that just meets
both conditions has confidence 0.6. Signals carry ``ts = candle.ts`` (the candle open time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from engine.core.models import Indicators, Signal, SignalType
from engine.core.strategies.base import Strategy, clip01, register

if TYPE_CHECKING:
    from engine.core.candles import Candle

DEEP_BAND_FRACTION: Final = 0.25  # a close this fraction of the band width outside counts as fully deep
EXTREME_RSI_POINTS: Final = 15.0  # RSI this far past its threshold counts as fully extreme


class MeanReversionStrategy(Strategy):
    reads = frozenset({"rsi", "bands"})

    def warmup_candles(self) -> int:  # the bands, RSI, ATR
        p = self.params
        return max(p.bb_period, p.rsi_period + 1, p.atr_period + 1)

    def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
        p = self.params
        upper, middle, lower, rsi, atr = ind.bb_upper, ind.bb_middle, ind.bb_lower, ind.rsi, ind.atr
        if upper is None or middle is None or lower is None or rsi is None or atr is None:
            named = (("Bollinger Bands", middle), ("RSI", rsi), ("ATR", atr))
            return self.hold(candle, f"warming up: {', '.join(n for n, v in named if v is None)} not ready")
        close = candle.close

        if position_qty > 0:
            if close >= middle:
                return Signal(self.symbol, SignalType.SELL, 1.0, close,
                              reasoning=f"exit long: close {close:.8g} back at the middle band {middle:.8g}",
                              ts=candle.ts)
            return self.hold(candle, f"long; waiting for the middle band {middle:.8g}")
        if position_qty < 0:
            if close <= middle:
                return Signal(self.symbol, SignalType.BUY, 1.0, close,
                              reasoning=f"exit short: close {close:.8g} back at the middle band {middle:.8g}",
                              ts=candle.ts)
            return self.hold(candle, f"short; waiting for the middle band {middle:.8g}")

        if atr <= 0:
            return self.hold(candle, "ATR is 0 (no range): no stop distance")
        width = upper - lower
        if close <= lower and rsi <= p.rsi_oversold:
            depth = clip01((lower - close) / (DEEP_BAND_FRACTION * width)) if width > 0 else 1.0
            extreme = clip01((p.rsi_oversold - rsi) / EXTREME_RSI_POINTS)
            conf = clip01(0.6 + 0.2 * depth + 0.2 * extreme)
            return Signal(
                self.symbol, SignalType.BUY, conf, close,
                stop_loss=close - p.stop_atr * atr, take_profit=middle if middle > close else 0.0,
                reasoning=f"close {close:.8g} at/below lower band {lower:.8g}, RSI {rsi:.1f} oversold",
                ts=candle.ts,
            )
        if close >= upper and rsi >= p.rsi_overbought:
            depth = clip01((close - upper) / (DEEP_BAND_FRACTION * width)) if width > 0 else 1.0
            extreme = clip01((rsi - p.rsi_overbought) / EXTREME_RSI_POINTS)
            conf = clip01(0.6 + 0.2 * depth + 0.2 * extreme)
            return Signal(
                self.symbol, SignalType.SELL, conf, close,
                stop_loss=close + p.stop_atr * atr, take_profit=middle if middle < close else 0.0,
                reasoning=f"close {close:.8g} at/above upper band {upper:.8g}, RSI {rsi:.1f} overbought",
                ts=candle.ts,
            )
        return self.hold(candle, f"inside the bands ({lower:.8g}..{upper:.8g}), RSI {rsi:.1f}")


register("mean_reversion")(MeanReversionStrategy)  # a call, not a decorator: a decorated class cannot be compiled
