"""Policy: a learned (or hand-written) policy picks the action from the ML state vector.

``params.policy`` is either a policy file (a path ending in ``.npz``: the project's plain numpy
format, ``engine.core.policy_file``, docs/ml.md; relative paths are from the working
directory) or a callable named as ``"package.module:function"``. Either is loaded when the
strategy is built, so a typo is a config error at start-up, not a surprise at the first
candle. Each closed candle the policy receives one argument, the float64 observation
(``engine.core.ml_interface.observation``) in the policy's ``layout`` (a callable without a
``layout`` attribute gets the seed's six fields, ``state_vector``), and returns an action
(0 HOLD, 1 BUY, 2 SELL) or ``(action, confidence)``. A bare action has confidence 1.0. A
loaded object with a ``bind`` method is asked ``bind(strategy)`` for the pair's callable (the
gymnasium environment's agent uses it to know the pair and the candle it decides on).

The portfolio part of the state (exposure, daily PnL, correlation) comes from the
``portfolio_state`` hook the trading core sets on every strategy: ``f(symbol) ->
{"total_exposure", "daily_pnl", "correlation"}`` (fractions of capital; the pair's strongest
live correlation); a strategy built on its own (tests) has none and sees 0. A BUY while short or a SELL while long is an
exit; entries get stop = entry ∓ stop_atr×ATR and take-profit = entry ± take_profit_atr×ATR.
A policy that raises or returns garbage yields HOLD with the reason, never a crash.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.core.config import ConfigError
from engine.core.ml_interface import STATE_FIELDS, action_to_signal, check_layout, observation
from engine.core.models import Indicators, Signal, SignalType
from engine.core.strategies.base import Strategy, register

if TYPE_CHECKING:
    import numpy as np

    from engine.core.candles import Candle
    from engine.core.config import StrategyParams

logger = logging.getLogger(__name__)

DEFAULT_CONFIDENCE = 1.0


def load_policy(spec: str) -> Callable[[np.ndarray], Any]:
    """A policy file (``*.npz``) or ``"package.module:callable"``; ValueError (one line)."""
    if spec.endswith(".npz"):
        from engine.core.policy_file import LinearPolicy

        return LinearPolicy.load(spec)  # PolicyFileError is a ValueError
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ValueError(f"{spec!r} is not 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ValueError(f"cannot import {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise ValueError(f"{spec!r} is a {type(obj).__name__}, not a callable")
    return obj  # type: ignore[no-any-return]


@register("policy")
class PolicyStrategy(Strategy):
    def __init__(self, symbol: str, params: StrategyParams) -> None:
        super().__init__(symbol, params)
        if not params.policy:
            raise ConfigError(
                [f"pairs.{symbol}.params.policy: required for strategy 'policy' (set it to 'package.module:callable')"]
            )
        try:
            policy = load_policy(params.policy)
            bind = getattr(policy, "bind", None)
            self.policy = bind(self) if callable(bind) else policy
            self.layout = check_layout(getattr(self.policy, "layout", STATE_FIELDS))
        except ValueError as exc:
            raise ConfigError([f"pairs.{symbol}.params.policy: {exc}"]) from None
        self.errors = 0
        self.candle: Candle | None = None  # the candle being decided on (read by bound policies)

    def _portfolio(self) -> Mapping[str, Any]:
        if self.portfolio_state is None:
            return {}
        try:
            return self.portfolio_state(self.symbol)
        except Exception as exc:  # a broken hook must not stop the pair
            logger.warning("%s - portfolio state for the policy failed: %s", self.symbol, exc)
            return {}

    def _decide(self, state: np.ndarray) -> tuple[SignalType, float, str]:
        try:
            out = self.policy(state)
        except Exception as exc:
            self.errors += 1
            return SignalType.HOLD, 0.0, f"policy error: {type(exc).__name__}: {exc}"
        confidence = DEFAULT_CONFIDENCE
        if isinstance(out, tuple):
            if len(out) != 2:
                self.errors += 1
                return SignalType.HOLD, 0.0, f"policy returned {out!r}, not action or (action, confidence)"
            out, raw = out
            try:
                confidence = float(raw)
            except (TypeError, ValueError):
                confidence = math.nan
            if not math.isfinite(confidence):
                self.errors += 1
                return SignalType.HOLD, 0.0, f"policy confidence {raw!r} is not a number"
            confidence = min(max(confidence, 0.0), 1.0)
        kind = action_to_signal(out)
        return kind, confidence, f"policy action {out!r}"

    def warmup_candles(self) -> int:  # RSI, the bands, ATR
        p = self.params
        return max(p.rsi_period + 1, p.bb_period, p.atr_period + 1)

    def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
        if ind.rsi is None or ind.bb_middle is None or ind.atr is None:
            named = (("RSI", ind.rsi), ("Bollinger Bands", ind.bb_middle), ("ATR", ind.atr))
            return self.hold(candle, f"warming up: {', '.join(n for n, v in named if v is None)} not ready")
        state = observation(self.layout, self.symbol, ind, candle.close, self._portfolio())
        self.candle = candle
        kind, conf, why = self._decide(state)
        close, atr, p = candle.close, ind.atr, self.params
        if kind is SignalType.HOLD:
            return self.hold(candle, why)
        if (kind is SignalType.SELL and position_qty > 0) or (kind is SignalType.BUY and position_qty < 0):
            side = "long" if position_qty > 0 else "short"
            return Signal(self.symbol, kind, conf, close, reasoning=f"exit {side}: {why}", ts=candle.ts)
        if atr <= 0:
            return self.hold(candle, f"{why} but ATR is 0 (no range): no stop distance")
        if kind is SignalType.BUY:
            stop, target = close - p.stop_atr * atr, close + p.take_profit_atr * atr
        else:
            stop, target = close + p.stop_atr * atr, max(close - p.take_profit_atr * atr, 0.0)
        return Signal(self.symbol, kind, conf, close, stop_loss=stop, take_profit=target, reasoning=why, ts=candle.ts)
