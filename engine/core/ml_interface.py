"""The interface a learned policy (e.g. reinforcement learning) sees: a state vector in,
an action out. The seed's ``MLInterface`` extension.

Owns ``state_vector``, ``observation`` (a layout of named features), ``action_to_signal`` and
``MLInterface``. The state is six float64s,
always finite, where 0 always means "neutral or unknown" so a missing input never looks
like an extreme:

====  ==============  ========================================================
 idx   name            value (missing or non-finite -> 0)
====  ==============  ========================================================
 0     rsi             (RSI - 50) / 50: -1 fully oversold .. +1 fully overbought
 1     bb_position     2 × bollinger_position - 1: -1 at the lower band, +1 at the
                       upper, 0 at the middle; beyond the bands it goes past ±1
 2     atr             ATR / close: volatility as a fraction of price
 3     exposure        open notional / capital (0.05 = 5 %)
 4     daily_pnl       today's PnL / capital
 5     correlation     the pair's strongest live correlation with another pair, -1..1
====  ==============  ========================================================

Actions: 0 HOLD, 1 BUY, 2 SELL; anything else is HOLD.

Extras a policy may add to its observation (``observation``; a policy file names its layout,
docs/ml.md), from the same ``portfolio_state`` hook, live as in a backtest:

====  ==============  ========================================================
 -     position        this pair's signed position notional / capital (0 flat)
 -     unrealised      this pair's open position's unrealised PnL / capital
====  ==============  ========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.core.indicators import bollinger_position
from engine.core.models import Indicators, SignalType

STATE_FIELDS = ("rsi", "bb_position", "atr", "exposure", "daily_pnl", "correlation")
STATE_SIZE = len(STATE_FIELDS)
EXTRA_FIELDS = ("position", "unrealised")
FEATURES = STATE_FIELDS + EXTRA_FIELDS  # every name an observation layout may use
_ACTIONS = {0: SignalType.HOLD, 1: SignalType.BUY, 2: SignalType.SELL}


def _finite(x: float | None) -> float:
    if x is None:
        return 0.0
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def state_vector(
    symbol: str,
    ind: Indicators,
    close: float,
    exposure_frac: float,
    daily_pnl: float,
    correlation: float | None,
) -> np.ndarray:
    """Six float64 values [rsi, bb_position, atr, exposure, daily_pnl, correlation]; see above.

    ``symbol`` is not encoded (a policy is per pair); it is accepted so callers and future
    per-symbol normalisation share one signature. ``daily_pnl`` is a fraction of capital.
    """
    rsi = (ind.rsi - 50.0) / 50.0 if ind.rsi is not None else 0.0
    if ind.bb_upper is not None and ind.bb_lower is not None and close and math.isfinite(close):
        bb = 2.0 * bollinger_position(close, ind.bb_upper, ind.bb_lower) - 1.0
    else:
        bb = 0.0
    atr = ind.atr / close if ind.atr is not None and close and close > 0 else 0.0
    return np.array(
        [_finite(rsi), _finite(bb), _finite(atr), _finite(exposure_frac), _finite(daily_pnl), _finite(correlation)],
        dtype=np.float64,
    )


def check_layout(layout: Any) -> tuple[str, ...]:
    """A layout as a tuple of known feature names; ValueError (one line) otherwise."""
    if isinstance(layout, str) or not hasattr(layout, "__iter__"):
        raise ValueError(f"layout must be a list of feature names, got {layout!r}")
    names = tuple(str(x) for x in layout)
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names or len(set(names)) != len(names):
        why = f"unknown {', '.join(unknown)}" if unknown else "empty or repeated names"
        raise ValueError(f"layout {list(names)}: {why} (known: {', '.join(FEATURES)})")
    return names


def observation(
    layout: tuple[str, ...], symbol: str, ind: Indicators, close: float, portfolio: Mapping[str, Any]
) -> np.ndarray:
    """The float64 vector of ``layout``'s features (``check_layout``), in its order: the seed's
    six from ``state_vector`` and the extras from ``portfolio`` (the strategy's
    ``portfolio_state``; a missing key counts as 0)."""
    base = state_vector(
        symbol, ind, close, _finite(portfolio.get("total_exposure")),
        _finite(portfolio.get("daily_pnl")), portfolio.get("correlation"),
    )
    if layout == STATE_FIELDS:
        return base
    values = dict(zip(STATE_FIELDS, base.tolist(), strict=True))
    for name in EXTRA_FIELDS:
        values[name] = _finite(portfolio.get(name))
    return np.array([values[n] for n in layout], dtype=np.float64)


def action_to_signal(action: Any) -> SignalType:
    """0 HOLD, 1 BUY, 2 SELL; anything else (including 1.5, True, None) is HOLD."""
    if isinstance(action, bool):
        return SignalType.HOLD
    if isinstance(action, np.integer):
        action = int(action)
    if not isinstance(action, int):
        return SignalType.HOLD
    return _ACTIONS.get(action, SignalType.HOLD)


class MLInterface:
    """The seed's shape: ``get_state_vector`` and ``action_to_order``."""

    size = STATE_SIZE
    fields = STATE_FIELDS

    def get_state_vector(
        self, symbol: str, ind: Indicators, close: float, portfolio_state: Mapping[str, Any]
    ) -> np.ndarray:
        """``portfolio_state`` keys: ``total_exposure`` and ``daily_pnl`` (fractions of
        capital) and ``correlation``; a missing key counts as 0."""
        return state_vector(
            symbol,
            ind,
            close,
            _finite(portfolio_state.get("total_exposure")),
            _finite(portfolio_state.get("daily_pnl")),
            portfolio_state.get("correlation"),
        )

    def action_to_order(self, action: Any) -> SignalType:
        return action_to_signal(action)
