"""Stops outside the noise: an entry's stop and target measured from the price the order can get.

Owns ``place_entry``. A strategy reasons on the closed candle, so its stop and target are
levels around the candle's close; the order fills at the ask (a long) or the bid (a short).
For every strategy the core hands the entry signal through here before the risk pipeline:

- the entry becomes the expected fill (the ask for a long, the bid for a short; the close
  while no quote is known, e.g. in a warm-up with no tick yet);
- the stop is the strategy's level, moved further away when it is nearer the fill than
  ``min_stop_atr`` × ATR or ``min_stop_spreads`` × the current spread (whichever is larger),
  so a stop never sits inside the noise of the spread or of one candle's range;
- a signal whose stop or target would still be on the wrong side of the fill (or not a
  positive price) is not emitted: it becomes a HOLD that says why. The ``valid_stop`` check in
  the risk pipeline stays as the guard for anything that reaches it another way.

The target is the strategy's level, unchanged: it is a statement about the market (the middle
band, a multiple of ATR beyond the close); whether it is worth the costs from the fill is the
risk pipeline's ``costs`` check.
"""

from __future__ import annotations

import math

from engine.core.config import StrategyParams
from engine.core.models import Signal, SignalType


def stop_floor(params: StrategyParams, atr: float | None, bid: float, ask: float) -> float:
    """The least distance from the fill an entry's stop may have (price units)."""
    spread = ask - bid if 0.0 < bid <= ask else 0.0
    atr_part = (
        params.min_stop_atr * atr if atr is not None and math.isfinite(atr) and atr > 0 else 0.0
    )
    return max(atr_part, params.min_stop_spreads * spread)


def place_entry(
    signal: Signal, params: StrategyParams, atr: float | None, bid: float, ask: float
) -> Signal:
    """The entry signal anchored at its expected fill (see the module doc); a HOLD if it cannot be."""
    long = signal.type is SignalType.BUY
    quote = ask if long else bid
    fill = quote if quote > 0.0 else signal.entry
    floor = stop_floor(params, atr, bid, ask)
    stop, target = signal.stop_loss, signal.take_profit
    if long:
        stop = min(stop, fill - floor) if stop > 0.0 else fill - floor
        wrong_stop = not 0.0 < stop < fill
        wrong_target = bool(target) and target <= fill
    else:
        stop = max(stop, fill + floor)
        wrong_stop = not stop > fill
        wrong_target = bool(target) and not 0.0 < target < fill
    side = "ask" if long else "bid"
    what = f"{signal.type} signal not emitted"
    if not math.isfinite(fill) or fill <= 0.0:
        return _hold(signal, f"{what}: no price to fill at")
    if wrong_stop:
        return _hold(signal, f"{what}: no stop possible on the right side of the {side} {fill:.8g}")
    if wrong_target:
        return _hold(
            signal,
            f"{what}: target {target:.8g} is already behind the {side} {fill:.8g} ({signal.reasoning})",
        )
    signal.entry = fill
    signal.stop_loss = stop
    return signal


def _hold(signal: Signal, reason: str) -> Signal:
    return Signal(signal.symbol, SignalType.HOLD, 0.0, signal.entry, reasoning=reason, ts=signal.ts)
