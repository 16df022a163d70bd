"""The ML interface: the six-value state vector (shape, dtype, conventions, never NaN)
and the action mapping 0 HOLD / 1 BUY / 2 SELL / anything else HOLD.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.ml_interface import STATE_FIELDS, MLInterface, action_to_signal, state_vector
from engine.core.models import Indicators, SignalType

FULL = Indicators(rsi=75.0, bb_upper=110.0, bb_middle=100.0, bb_lower=90.0, atr=2.5)


def test_shape_dtype_and_values() -> None:
    v = state_vector("BTC/USDT", FULL, 105.0, 0.08, -0.012, 0.85)
    assert v.shape == (6,) and v.dtype == np.float64
    assert STATE_FIELDS == ("rsi", "bb_position", "atr", "exposure", "daily_pnl", "correlation")
    assert v.tolist() == pytest.approx([0.5, 0.5, 2.5 / 105.0, 0.08, -0.012, 0.85])


def test_band_edges_and_beyond() -> None:
    assert state_vector("X", FULL, 90.0, 0, 0, None)[1] == pytest.approx(-1.0)
    assert state_vector("X", FULL, 110.0, 0, 0, None)[1] == pytest.approx(1.0)
    assert state_vector("X", FULL, 100.0, 0, 0, None)[1] == pytest.approx(0.0)
    assert state_vector("X", FULL, 115.0, 0, 0, None)[1] == pytest.approx(1.5)
    flat = Indicators(rsi=50.0, bb_upper=100.0, bb_middle=100.0, bb_lower=100.0, atr=0.0)
    assert state_vector("X", flat, 100.0, 0, 0, None).tolist() == [0.0] * 6


def test_missing_inputs_are_zero_never_nan() -> None:
    v = state_vector("BTC/USDT", Indicators(), 100.0, float("nan"), float("inf"), None)
    assert v.tolist() == [0.0] * 6
    v = state_vector("BTC/USDT", FULL, 0.0, 0.1, 0.0, float("nan"))
    assert not np.isnan(v).any() and v[1] == 0.0 and v[2] == 0.0 and v[0] == 0.5


@settings(max_examples=200, deadline=None)
@given(
    rsi=st.none() | st.floats(0, 100),
    band=st.none() | st.floats(0, 1e6),
    width=st.floats(0, 1e4),
    atr=st.none() | st.floats(0, 1e5),
    close=st.floats(allow_nan=True, allow_infinity=True),
    other=st.floats(allow_nan=True, allow_infinity=True),
)
def test_property_always_six_finite_values(
    rsi: float | None, band: float | None, width: float, atr: float | None, close: float, other: float
) -> None:
    ind = Indicators(rsi=rsi, atr=atr)
    if band is not None:
        ind.bb_upper, ind.bb_middle, ind.bb_lower = band + width, band, band - width
    v = state_vector("X", ind, close, other, other, other)
    assert v.shape == (6,) and all(math.isfinite(x) for x in v)


@pytest.mark.parametrize(
    ("action", "expect"),
    [
        (0, SignalType.HOLD),
        (1, SignalType.BUY),
        (2, SignalType.SELL),
        (3, SignalType.HOLD),
        (-1, SignalType.HOLD),
        (np.int64(2), SignalType.SELL),
        (1.0, SignalType.HOLD),
        (True, SignalType.HOLD),
        (None, SignalType.HOLD),
        ("1", SignalType.HOLD),
    ],
)
def test_action_to_signal(action: object, expect: SignalType) -> None:
    assert action_to_signal(action) is expect


def test_ml_interface_wraps_both_as_the_seed_shows() -> None:
    ml = MLInterface()
    v = ml.get_state_vector("ETH/USDT", FULL, 95.0, {"total_exposure": 0.05, "daily_pnl": 0.01, "correlation": -0.2})
    assert v.tolist() == pytest.approx([0.5, -0.5, 2.5 / 95.0, 0.05, 0.01, -0.2])
    assert ml.get_state_vector("ETH/USDT", FULL, 95.0, {})[3:].tolist() == [0.0, 0.0, 0.0]
    assert ml.action_to_order(1) is SignalType.BUY and ml.action_to_order(7) is SignalType.HOLD
    assert ml.size == 6
