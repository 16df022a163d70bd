"""Strategies on crafted candle series (through the real PairRuntime indicators) and on
hand-built indicator snapshots: warm-up HOLD, entries, exits, stops and confidence range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.candles import Candle
from engine.core.config import ConfigError, PairConfig, StrategyParams
from engine.core.models import Indicators, Signal, SignalType
from engine.core.pair import PairRuntime
from engine.core.strategies import create_strategy, known_strategies

MIN = 60_000


def _runtime(strategy: str, **params: Any) -> PairRuntime:
    cfg = PairConfig(tier="STABLE", strategy=strategy, max_position_size_usd=500, params=StrategyParams(**params))
    return PairRuntime("BTC/USDT", cfg)


def _candles(closes: Sequence[float], volumes: Sequence[float] | None = None, wick: float = 0.5) -> list[Candle]:
    out = []
    prev = closes[0]
    for i, c in enumerate(closes):
        vol = volumes[i] if volumes is not None else 10.0
        out.append(Candle(i * MIN, prev, max(prev, c) + wick, min(prev, c) - wick, c, vol, 5))
        prev = c
    return out


def _trade(rt: PairRuntime, candles: Sequence[Candle], inds: list[Indicators] | None = None) -> list[tuple[int, Signal, float]]:
    """Feed candles; a BUY opens 1 unit, an exit closes it. Returns (index, signal, qty before)."""
    qty = 0.0
    out = []
    for i, c in enumerate(candles):
        ind, sig = rt.analyze(c, qty)
        if inds is not None:
            inds.append(ind)
        out.append((i, sig, qty))
        if sig.type is SignalType.BUY and qty == 0:
            qty = 1.0
        elif sig.type is SignalType.SELL and qty > 0:
            qty = 0.0
    return out


def _check_signal_shape(sig: Signal, candle: Candle) -> None:
    assert 0.0 <= sig.confidence <= 1.0
    assert sig.ts == candle.ts  # the candle's open time
    assert sig.reasoning


def test_registry_knows_every_strategy() -> None:
    assert {"momentum", "mean_reversion", "breakout", "policy"} <= known_strategies()
    with pytest.raises(KeyError, match="known: "):
        create_strategy("nope", "BTC/USDT", StrategyParams())


# --------------------------------------------------------------------------- momentum

MOMENTUM = {"ma_fast": 3, "ma_slow": 8, "rsi_period": 6, "atr_period": 5}
# a zig-zag decline, then a zig-zag rise, then a decline again
ZIGZAG = (
    [100 - 0.5 * i + (0.8 if i % 2 else -0.8) for i in range(25)]
    + [88 + 0.6 * i + (0.8 if i % 2 else -0.8) for i in range(16)]
    + [97 - 0.9 * i + (0.3 if i % 2 else -0.3) for i in range(12)]
)


def test_momentum_warm_up_buy_on_cross_then_exit_on_opposite_cross() -> None:
    rt = _runtime("momentum", **MOMENTUM)
    candles = _candles(ZIGZAG)
    steps = _trade(rt, candles)
    # nothing before the slow MA and its previous value exist
    for i, sig, _ in steps[:8]:
        assert sig.type is SignalType.HOLD and "warming up" in sig.reasoning, (i, sig)
    actionable = [(i, s, q) for i, s, q in steps if s.type is not SignalType.HOLD]
    assert [s.type for _, s, _ in actionable] == [SignalType.BUY, SignalType.SELL]
    (ib, buy, qb), (isell, sell, qs) = actionable
    assert qb == 0 and qs == 1.0 and ib < isell
    assert 25 <= ib < 41 and isell >= 41  # the cross in the rise, the exit in the decline
    assert "crossed above" in buy.reasoning and "exit long" in sell.reasoning
    for i, s, _ in actionable:
        _check_signal_shape(s, candles[i])
    # stop/target are ATR multiples around the entry
    assert buy.entry == candles[ib].close
    assert buy.stop_loss < buy.entry < buy.take_profit
    assert (buy.entry - buy.stop_loss) / (buy.take_profit - buy.entry) == pytest.approx(1.5 / 3.0)


def _mom_ind(fast: float, slow: float, pfast: float, pslow: float, rsi: float, atr: float = 2.0) -> Indicators:
    return Indicators(rsi=rsi, ma_fast=fast, ma_slow=slow, prev_ma_fast=pfast, prev_ma_slow=pslow, atr=atr)


CANDLE = Candle(42 * MIN, 100.0, 101.0, 99.0, 100.0, 10.0, 3)


def test_momentum_cross_up_rejected_when_rsi_overbought() -> None:
    s = create_strategy("momentum", "BTC/USDT", StrategyParams())
    sig = s.analyze(CANDLE, _mom_ind(101, 100, 99, 100, rsi=75), 0.0)
    assert sig.type is SignalType.HOLD and "overbought" in sig.reasoning
    sig = s.analyze(CANDLE, _mom_ind(101, 100, 99, 100, rsi=60), 0.0)
    assert sig.type is SignalType.BUY
    assert sig.stop_loss == pytest.approx(100 - 1.5 * 2) and sig.take_profit == pytest.approx(100 + 3 * 2)


def test_momentum_short_entry_mirrors_stops_and_cover_exit() -> None:
    s = create_strategy("momentum", "BTC/USDT", StrategyParams())
    sig = s.analyze(CANDLE, _mom_ind(99, 100, 101, 100, rsi=45), 0.0)
    assert sig.type is SignalType.SELL
    assert sig.stop_loss == pytest.approx(103) and sig.take_profit == pytest.approx(94)
    cover = s.analyze(CANDLE, _mom_ind(101, 100, 99, 100, rsi=80), -1.0)
    assert cover.type is SignalType.BUY and "exit short" in cover.reasoning  # exits ignore RSI
    assert s.analyze(CANDLE, _mom_ind(99, 100, 101, 100, rsi=20), 0.0).type is SignalType.HOLD  # oversold


def test_momentum_confidence_grows_with_strength_and_rsi_room() -> None:
    s = create_strategy("momentum", "BTC/USDT", StrategyParams())
    weak = s.analyze(CANDLE, _mom_ind(100.01, 100, 99, 100, rsi=65), 0.0).confidence
    strong = s.analyze(CANDLE, _mom_ind(100.5, 100, 99, 100, rsi=65), 0.0).confidence
    roomy = s.analyze(CANDLE, _mom_ind(100.5, 100, 99, 100, rsi=40), 0.0).confidence
    assert 0.5 <= weak < strong < roomy <= 1.0


def test_momentum_no_signal_without_cross_or_while_in_position() -> None:
    s = create_strategy("momentum", "BTC/USDT", StrategyParams())
    assert s.analyze(CANDLE, _mom_ind(101, 100, 101, 100, rsi=50), 0.0).type is SignalType.HOLD
    assert s.analyze(CANDLE, _mom_ind(101, 100, 99, 100, rsi=50), 1.0).type is SignalType.HOLD


# ---------------------------------------------------------------------- mean reversion

MR = {"bb_period": 10, "bb_std": 2.0, "rsi_period": 5, "atr_period": 5}


def test_mean_reversion_buy_below_band_then_exit_at_middle() -> None:
    flat = [100 + (0.3 if i % 2 else -0.3) for i in range(14)]
    crash = [99.0, 97.0, 94.5]
    recover = [96.0, 98.0, 99.5, 100.5, 101.0]
    candles = _candles(flat + crash + recover)
    rt = _runtime("mean_reversion", **MR)
    steps = _trade(rt, candles)
    for _, sig, _ in steps[:9]:
        assert sig.type is SignalType.HOLD and "warming up" in sig.reasoning
    actionable = [(i, s) for i, s, _ in steps if s.type is not SignalType.HOLD]
    assert [s.type for _, s in actionable] == [SignalType.BUY, SignalType.SELL]
    (ib, buy), (ix, ex) = actionable
    assert 14 <= ib <= 16 and ix > ib
    assert "lower band" in buy.reasoning and "middle band" in ex.reasoning
    assert 0.6 <= buy.confidence <= 1.0
    assert buy.stop_loss < buy.entry < buy.take_profit  # target: the middle band
    for i, s in actionable:
        _check_signal_shape(s, candles[i])


def _mr_ind(rsi: float, upper: float = 110, middle: float = 100, lower: float = 90) -> Indicators:
    return Indicators(rsi=rsi, bb_upper=upper, bb_middle=middle, bb_lower=lower, atr=2.0)


def _at(close: float) -> Candle:
    return Candle(7 * MIN, close, close + 1, close - 1, close, 1.0, 1)


def test_mean_reversion_needs_both_band_and_rsi() -> None:
    s = create_strategy("mean_reversion", "ETH/USDT", StrategyParams())
    assert s.analyze(_at(89), _mr_ind(rsi=35), 0.0).type is SignalType.HOLD  # RSI not oversold
    assert s.analyze(_at(91), _mr_ind(rsi=20), 0.0).type is SignalType.HOLD  # inside the band
    at_threshold = s.analyze(_at(90), _mr_ind(rsi=30), 0.0)
    deep = s.analyze(_at(84), _mr_ind(rsi=10), 0.0)
    assert at_threshold.type is SignalType.BUY and at_threshold.confidence == pytest.approx(0.6)
    assert deep.type is SignalType.BUY and deep.confidence == pytest.approx(1.0)
    short = s.analyze(_at(112), _mr_ind(rsi=80), 0.0)
    assert short.type is SignalType.SELL and short.stop_loss > short.entry > short.take_profit == 100


def test_mean_reversion_exits() -> None:
    s = create_strategy("mean_reversion", "ETH/USDT", StrategyParams())
    assert s.analyze(_at(99), _mr_ind(rsi=50), 1.0).type is SignalType.HOLD
    ex = s.analyze(_at(100.5), _mr_ind(rsi=50), 1.0)
    assert ex.type is SignalType.SELL and "exit long" in ex.reasoning
    cover = s.analyze(_at(99.5), _mr_ind(rsi=50), -1.0)
    assert cover.type is SignalType.BUY and "exit short" in cover.reasoning


# ---------------------------------------------------------------------------- breakout


def test_breakout_seed_example_buy_with_low_as_stop_then_exit_below_low() -> None:
    n = 20
    rng = np.random.default_rng(7)
    base = list(100 + rng.uniform(-1, 1, 30))
    closes = [*base, 104.0, 104.5, 103.0, 101.0, 97.0]
    volumes = [10.0] * 30 + [30.0, 10, 10, 10, 10]
    candles = _candles(closes, volumes)
    rt = _runtime("breakout", lookback=n, atr_period=14)
    inds: list[Indicators] = []
    steps = _trade(rt, candles, inds)
    for _, sig, _ in steps[:n]:
        assert sig.type is SignalType.HOLD and "warming up" in sig.reasoning
    actionable = [(i, s) for i, s, _ in steps if s.type is not SignalType.HOLD]
    assert [s.type for _, s in actionable] == [SignalType.BUY, SignalType.SELL]
    (ib, buy), (ix, ex) = actionable
    assert ib == 30 and ix == 34
    assert "20-candle breakout" in buy.reasoning
    c = candles[ib]
    assert buy.entry == c.close
    atr = inds[ib].atr
    assert atr is not None and inds[ib].highest == pytest.approx(max(x.high for x in candles[ib - n : ib]))
    assert buy.stop_loss == pytest.approx(max(c.low, c.close - 1.5 * atr)) and buy.stop_loss < buy.entry
    assert buy.take_profit == pytest.approx(c.close + 3.0 * atr)
    assert 0.70 < buy.confidence <= 1.0  # raised by margin and the 3× volume
    assert "exit long" in ex.reasoning


def test_breakout_stop_rules() -> None:
    s = create_strategy("breakout", "SOL/USDT", StrategyParams(lookback=5))
    ind = Indicators(highest=100.0, lowest=90.0, atr=2.0)
    wide = Candle(0, 95.0, 106.0, 95.0, 105.0, 1.0, 1)  # low far below: the ATR stop is tighter
    sig = s.analyze(wide, ind, 0.0)
    assert sig.type is SignalType.BUY and sig.stop_loss == pytest.approx(105 - 3.0)
    tight = Candle(MIN, 104.0, 106.0, 104.0, 105.0, 1.0, 1)  # low 104: tighter than 102
    assert s.analyze(tight, ind, 0.0).stop_loss == pytest.approx(104.0)
    odd = Candle(2 * MIN, 105.0, 106.0, 105.0, 105.0, 1.0, 1)  # low == close: invalid, use ATR
    assert s.analyze(odd, ind, 0.0).stop_loss == pytest.approx(102.0)
    assert s.analyze(Candle(3 * MIN, 99, 100, 98, 99.5, 1, 1), ind, 0.0).type is SignalType.HOLD
    assert s.analyze(Candle(4 * MIN, 99, 100, 98, 89.0, 1, 1), ind, 0.0).type is SignalType.HOLD  # no shorts
    assert s.analyze(Candle(5 * MIN, 99, 100, 88, 89.0, 1, 1), ind, 1.0).type is SignalType.SELL


def test_breakout_confidence_floor_and_cap() -> None:
    s = create_strategy("breakout", "SOL/USDT", StrategyParams(lookback=5))
    ind = Indicators(highest=100.0, lowest=90.0, atr=2.0)
    barely = s.analyze(Candle(0, 99, 100.2, 99.5, 100.01, 1.0, 1), ind, 0.0)
    assert barely.type is SignalType.BUY and barely.confidence == pytest.approx(0.70, abs=0.01)
    huge = s.analyze(Candle(MIN, 99, 110, 99.5, 109, 1.0, 1), ind, 0.0)
    assert 0.84 <= huge.confidence <= 1.0


# ------------------------------------------------------------------------------ policy

CALLS: list[np.ndarray] = []


def buy_policy(state: np.ndarray) -> int:
    CALLS.append(state)
    return 1


def sell_policy(state: np.ndarray) -> tuple[int, float]:
    return 2, 0.8


def broken_policy(state: np.ndarray) -> int:
    raise RuntimeError("model file missing")


def junk_policy(state: np.ndarray) -> object:
    return "buy"


NOT_CALLABLE = 3


def _policy(name: str) -> Any:
    return create_strategy("policy", "BTC/USDT", StrategyParams(policy=f"{__name__}:{name}"))


POLICY_IND = Indicators(rsi=60.0, bb_upper=110.0, bb_middle=100.0, bb_lower=90.0, atr=2.0)


def test_policy_calls_the_callable_with_the_state_vector() -> None:
    CALLS.clear()
    s = _policy("buy_policy")
    s.portfolio_state = lambda sym: {"total_exposure": 0.05, "daily_pnl": -0.01, "correlation": 0.9}
    sig = s.analyze(_at(105.0), POLICY_IND, 0.0)
    assert sig.type is SignalType.BUY and sig.confidence == 1.0
    assert sig.stop_loss == pytest.approx(102.0) and sig.take_profit == pytest.approx(111.0)
    (state,) = CALLS
    assert state.dtype == np.float64 and state.shape == (6,)
    assert state == pytest.approx([0.2, 0.5, 2.0 / 105.0, 0.05, -0.01, 0.9])


def test_policy_tuple_action_exit_and_errors() -> None:
    s = _policy("sell_policy")
    sig = s.analyze(_at(100.0), POLICY_IND, 2.0)
    assert sig.type is SignalType.SELL and sig.confidence == 0.8 and "exit long" in sig.reasoning
    short = s.analyze(_at(100.0), POLICY_IND, 0.0)
    assert short.stop_loss > short.entry > short.take_profit
    broken = _policy("broken_policy")
    sig = broken.analyze(_at(100.0), POLICY_IND, 0.0)
    assert sig.type is SignalType.HOLD and "model file missing" in sig.reasoning and broken.errors == 1
    assert _policy("junk_policy").analyze(_at(100.0), POLICY_IND, 0.0).type is SignalType.HOLD
    assert _policy("buy_policy").analyze(_at(100.0), Indicators(rsi=50.0), 0.0).type is SignalType.HOLD


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ("no_such_pkg.mod:f", "params.policy: cannot import 'no_such_pkg.mod:f': ModuleNotFoundError"),
        (f"{__name__}:missing", f"params.policy: cannot import '{__name__}:missing': AttributeError"),
        ("justaname", "params.policy: 'justaname' is not 'package.module:callable'"),
        (f"{__name__}:NOT_CALLABLE", "not a callable"),
    ],
)
def test_policy_import_errors_are_config_errors(spec: str, expect: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_strategy("policy", "BTC/USDT", StrategyParams(policy=spec))
    (line,) = err.value.problems
    assert expect in line and "BTC/USDT" in line and "\n" not in line


def test_policy_requires_the_param() -> None:
    with pytest.raises(ConfigError, match=r"params\.policy: required"):
        create_strategy("policy", "BTC/USDT", StrategyParams())


def test_zero_atr_blocks_entries_not_exits() -> None:
    s = create_strategy("momentum", "BTC/USDT", StrategyParams())
    assert s.analyze(CANDLE, _mom_ind(101, 100, 99, 100, rsi=50, atr=0.0), 0.0).type is SignalType.HOLD
    assert s.analyze(CANDLE, _mom_ind(99, 100, 101, 100, rsi=50, atr=0.0), 1.0).type is SignalType.SELL
    mr = create_strategy("mean_reversion", "ETH/USDT", StrategyParams())
    flat = Indicators(rsi=10.0, bb_upper=100.0, bb_middle=100.0, bb_lower=100.0, atr=0.0)
    assert mr.analyze(_at(100.0), flat, 0.0).type is SignalType.HOLD
    assert mr.analyze(_at(100.0), flat, 1.0).type is SignalType.SELL


def test_a_strategy_of_ones_own_registers_in_plain_python_and_must_define_analyze() -> None:
    """One's own strategy subclasses the compiled ``Strategy`` in plain Python and registers with
    ``@register``; a class that does not define ``analyze`` is refused at registration (the
    base is no ``abc.ABC``: that would make it, and every built-in strategy, an ordinary Python
    class, tests/test_compiled.py)."""
    from engine.core.models import SignalType
    from engine.core.strategies.base import Strategy, register, registry

    @register("test-own-always-hold")
    class AlwaysHold(Strategy):
        def analyze(self, candle, ind, position_qty):  # type: ignore[no-untyped-def]
            return self.hold(candle, "never trades")

    try:
        s = create_strategy("test-own-always-hold", "BTC/USDT", StrategyParams())
        assert type(s) is AlwaysHold and AlwaysHold.name == "test-own-always-hold"
        from engine.core.candles import Candle
        from engine.core.models import Indicators

        sig = s.analyze(Candle(60_000, 1.0, 1.0, 1.0, 1.0, 0.0), Indicators(), 0.0)
        assert sig.type is SignalType.HOLD and sig.reasoning == "never trades"

        class NoAnalyze(Strategy):
            pass

        with pytest.raises(TypeError, match="NoAnalyze does not define analyze"):
            register("test-own-no-analyze")(NoAnalyze)
        assert "test-own-no-analyze" not in registry()
    finally:
        from engine.core.strategies import base

        base._REGISTRY.pop("test-own-always-hold", None)


@settings(max_examples=5000, deadline=None)
@given(
    v=st.floats(min_value=-10.0, max_value=2e5, allow_nan=False)
    | st.integers(min_value=0, max_value=10**6).map(lambda n: n / 20.0)  # halves and ties
    | st.floats(allow_nan=False)
)
def test_one_decimal_is_format_point_one_f(v: float) -> None:
    """The reasons' RSI text, written out for speed, is ``f"{v:.1f}"``: ties, values a few
    ulps off a tie, zero, negative, large and infinite values included."""
    from engine.core.strategies.base import one_decimal

    for x in (v, math.nextafter(v, math.inf), math.nextafter(v, -math.inf)):
        assert one_decimal(x) == f"{x:.1f}", x


def test_one_decimal_table_covers_every_rsi_tenth() -> None:
    """The RSI's texts come from a table made once (0.0 to 100.0): every tenth, the ties
    between two (a twentieth: a tie goes to the even digit) and their float neighbours."""
    from engine.core.strategies.base import _TENTHS, one_decimal

    assert len(_TENTHS) == 1001 and _TENTHS[0] == "0.0" and _TENTHS[-1] == "100.0"
    for k in range(0, 2012):
        v = k / 20.0
        for x in (v, math.nextafter(v, math.inf), math.nextafter(v, -math.inf), v + 0.01, v - 0.01):
            assert one_decimal(x) == f"{x:.1f}", x
