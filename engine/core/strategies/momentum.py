"""Momentum: a fast/slow moving-average crossover confirmed by RSI.

BUY when the fast MA crosses above the slow MA and RSI is not overbought; SELL (a short
entry, which the risk pipeline refuses on spot pairs) on the mirror cross when RSI is not
oversold. While long, the opposite cross is the exit (SELL); while short, the up-cross (BUY).
Stop = entry ∓ stop_atr×ATR, take-profit = entry ± take_profit_atr×ATR.

Confidence = 0.5 + 0.3 × crossover strength + 0.2 × RSI room, in [0, 1]: strength is the MA
gap in units of 0.2 ATR (capped at 1), room is how far RSI sits from the extreme it must
avoid, as a fraction of the oversold..overbought span. Signals carry ``ts = candle.ts``
(the candle's open time, which identifies the candle that produced them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from engine.core.models import Indicators, Signal, SignalType
from engine.core.strategies.base import Strategy, clip01, register

if TYPE_CHECKING:
    from engine.core.candles import Candle

STRONG_GAP_ATR: Final = 0.2  # an MA gap of this many ATRs at the cross counts as full strength


class MomentumStrategy(Strategy):
    def warmup_candles(self) -> int:  # both MAs and their previous values, RSI, ATR
        p = self.params
        return max(p.ma_slow + 1, p.rsi_period + 1, p.atr_period + 1)

    def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
        p = self.params
        fast, slow, pf, ps, rsi, atr = ind.ma_fast, ind.ma_slow, ind.prev_ma_fast, ind.prev_ma_slow, ind.rsi, ind.atr
        if fast is None or slow is None or pf is None or ps is None or rsi is None or atr is None:
            named = (("fast MA", fast), ("slow MA", slow), ("previous MA", ps if pf is not None else None),
                     ("RSI", rsi), ("ATR", atr))
            return self.hold(candle, f"warming up: {', '.join(n for n, v in named if v is None)} not ready")
        crossed_up = pf <= ps and fast > slow
        crossed_down = pf >= ps and fast < slow
        gap = abs(fast - slow)
        strength = clip01(gap / (STRONG_GAP_ATR * atr)) if atr > 0 else 1.0
        span = p.rsi_overbought - p.rsi_oversold
        names = f"MA{p.ma_fast} {'above' if fast > slow else 'below'} MA{p.ma_slow}"
        close = candle.close

        if position_qty > 0 and crossed_down:
            conf = clip01(0.5 + 0.5 * strength)
            return Signal(self.symbol, SignalType.SELL, conf, close,
                          reasoning=f"exit long: MA{p.ma_fast} crossed below MA{p.ma_slow}", ts=candle.ts)
        if position_qty < 0 and crossed_up:
            conf = clip01(0.5 + 0.5 * strength)
            return Signal(self.symbol, SignalType.BUY, conf, close,
                          reasoning=f"exit short: MA{p.ma_fast} crossed above MA{p.ma_slow}", ts=candle.ts)
        if position_qty != 0:
            return self.hold(candle, f"in position; {names}, RSI {rsi:.1f}")
        if atr <= 0 and (crossed_up or crossed_down):
            return self.hold(candle, "crossover but ATR is 0 (no range): no stop distance")

        if crossed_up:
            if rsi >= p.rsi_overbought:
                return self.hold(candle, f"MA{p.ma_fast} crossed above MA{p.ma_slow} but RSI {rsi:.1f} is overbought")
            room = clip01((p.rsi_overbought - rsi) / span)
            conf = clip01(0.5 + 0.3 * strength + 0.2 * room)
            return Signal(
                self.symbol, SignalType.BUY, conf, close,
                stop_loss=close - p.stop_atr * atr, take_profit=close + p.take_profit_atr * atr,
                reasoning=f"MA{p.ma_fast} crossed above MA{p.ma_slow} (gap {gap / atr:.2f} ATR), RSI {rsi:.1f}",
                ts=candle.ts,
            )
        if crossed_down:
            if rsi <= p.rsi_oversold:
                return self.hold(candle, f"MA{p.ma_fast} crossed below MA{p.ma_slow} but RSI {rsi:.1f} is oversold")
            room = clip01((rsi - p.rsi_oversold) / span)
            conf = clip01(0.5 + 0.3 * strength + 0.2 * room)
            return Signal(
                self.symbol, SignalType.SELL, conf, close,
                stop_loss=close + p.stop_atr * atr, take_profit=max(close - p.take_profit_atr * atr, 0.0),
                reasoning=f"MA{p.ma_fast} crossed below MA{p.ma_slow} (gap {gap / atr:.2f} ATR), RSI {rsi:.1f}",
                ts=candle.ts,
            )
        return self.hold(candle, f"no crossover; {names}, RSI {rsi:.1f}")


register("momentum")(MomentumStrategy)  # a call, not a decorator: a decorated class cannot be compiled
