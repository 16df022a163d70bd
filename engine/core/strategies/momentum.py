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
from engine.core.strategies.base import Strategy, clip01, hold_signal, one_decimal, register

if TYPE_CHECKING:
    from engine.core.candles import Candle
    from engine.core.config import StrategyParams

STRONG_GAP_ATR: Final = 0.2  # an MA gap of this many ATRs at the cross counts as full strength


class MomentumStrategy(Strategy):
    reads = frozenset({"rsi", "averages"})

    def __init__(self, symbol: str, params: StrategyParams) -> None:
        super().__init__(symbol, params)
        # What ``analyze`` reads on every candle, as native values: a parameter read from the
        # (validated, never changed: a new parameter is a new strategy) config model is a
        # generic attribute lookup, and the MA names were an f-string every candle.
        self._overbought = float(params.rsi_overbought)
        self._oversold = float(params.rsi_oversold)
        self._stop_atr = float(params.stop_atr)
        self._tp_atr = float(params.take_profit_atr)
        fast, slow = f"MA{params.ma_fast}", f"MA{params.ma_slow}"
        above, below = f"{fast} above {slow}", f"{fast} below {slow}"
        self._crossed_up, self._crossed_down = f"{fast} crossed above {slow}", f"{fast} crossed below {slow}"
        # the hold reasons but their RSI, whole: one concatenation a candle instead of three
        self._held_above, self._held_below = f"in position; {above}, RSI ", f"in position; {below}, RSI "
        self._flat_above, self._flat_below = f"no crossover; {above}, RSI ", f"no crossover; {below}, RSI "

    def warmup_candles(self) -> int:  # both MAs and their previous values, RSI, ATR
        p = self.params
        return max(p.ma_slow + 1, p.rsi_period + 1, p.atr_period + 1)

    def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
        fast, slow, pf, ps, rsi, atr = ind.ma_fast, ind.ma_slow, ind.prev_ma_fast, ind.prev_ma_slow, ind.rsi, ind.atr
        if fast is None or slow is None or pf is None or ps is None or rsi is None or atr is None:
            named = (("fast MA", fast), ("slow MA", slow), ("previous MA", ps if pf is not None else None),
                     ("RSI", rsi), ("ATR", atr))
            return hold_signal(self.symbol, candle,
                               f"warming up: {', '.join(n for n, v in named if v is None)} not ready")
        crossed_up = pf <= ps and fast > slow
        crossed_down = pf >= ps and fast < slow
        gap = abs(fast - slow)
        strength = clip01(gap / (STRONG_GAP_ATR * atr)) if atr > 0 else 1.0
        overbought, oversold = self._overbought, self._oversold
        close = candle.close

        if position_qty > 0 and crossed_down:
            conf = clip01(0.5 + 0.5 * strength)
            return Signal(self.symbol, SignalType.SELL, conf, close,
                          reasoning=f"exit long: {self._crossed_down}", ts=candle.ts)
        if position_qty < 0 and crossed_up:
            conf = clip01(0.5 + 0.5 * strength)
            return Signal(self.symbol, SignalType.BUY, conf, close,
                          reasoning=f"exit short: {self._crossed_up}", ts=candle.ts)
        if position_qty != 0:
            held = self._held_above if fast > slow else self._held_below
            return hold_signal(self.symbol, candle, held + one_decimal(rsi))
        if atr <= 0 and (crossed_up or crossed_down):
            return hold_signal(self.symbol, candle, "crossover but ATR is 0 (no range): no stop distance")

        span = overbought - oversold
        if crossed_up:
            if rsi >= overbought:
                return hold_signal(self.symbol, candle, f"{self._crossed_up} but RSI {rsi:.1f} is overbought")
            room = clip01((overbought - rsi) / span)
            conf = clip01(0.5 + 0.3 * strength + 0.2 * room)
            return Signal(
                self.symbol, SignalType.BUY, conf, close,
                stop_loss=close - self._stop_atr * atr, take_profit=close + self._tp_atr * atr,
                reasoning=f"{self._crossed_up} (gap {gap / atr:.2f} ATR), RSI {rsi:.1f}",
                ts=candle.ts,
            )
        if crossed_down:
            if rsi <= oversold:
                return hold_signal(self.symbol, candle, f"{self._crossed_down} but RSI {rsi:.1f} is oversold")
            room = clip01((rsi - oversold) / span)
            conf = clip01(0.5 + 0.3 * strength + 0.2 * room)
            return Signal(
                self.symbol, SignalType.SELL, conf, close,
                stop_loss=close + self._stop_atr * atr, take_profit=max(close - self._tp_atr * atr, 0.0),
                reasoning=f"{self._crossed_down} (gap {gap / atr:.2f} ATR), RSI {rsi:.1f}",
                ts=candle.ts,
            )
        # (joined with +: in an f-string mypyc formats even a str through str.format)
        flat = self._flat_above if fast > slow else self._flat_below
        return hold_signal(self.symbol, candle, flat + one_decimal(rsi))


register("momentum")(MomentumStrategy)  # a call, not a decorator: a decorated class cannot be compiled
