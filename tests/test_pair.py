"""PairRuntime: indicators built from the pair's params, committed per closed candle (prev
values, highest/lowest of the candles before), preview for the forming candle, the 24 h
reference close, bad candles ignored, warm-up and live analysis reaching the same state
(the breakout's volume average included), and the trading core holding one runtime per
active pair of the safe list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import talib

from engine.core.candles import Candle
from engine.core.clock import Clock
from engine.core.config import PairConfig, SafeList, StrategyParams, load_safe_list
from engine.core.models import Indicators, Signal, SignalType
from engine.core.pair import PairRuntime
from engine.core.strategies.breakout import BASE_CONFIDENCE
from engine.core.trader import TradingCore
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store

MIN = 60_000
ROOT = Path(__file__).resolve().parents[1]


def _runtime(strategy: str = "breakout", timeframe_s: int = 60, **params: object) -> PairRuntime:
    cfg = PairConfig(tier="STABLE", strategy=strategy, max_position_size_usd=500, params=StrategyParams(**params))
    return PairRuntime("BTC/USDT", cfg, timeframe_s)


def _series(n: int, seed: int = 5, *, volumes: bool = False) -> list[Candle]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    openp = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(openp, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(openp, close) * (1 - rng.uniform(0, 0.005, n))
    vol = rng.uniform(0.5, 3.0, n) if volumes else np.ones(n)
    return [Candle(i * MIN, float(openp[i]), float(high[i]), float(low[i]), float(close[i]), float(vol[i]), 1)
            for i in range(n)]


def test_indicators_follow_the_params_and_match_talib() -> None:
    params = {"rsi_period": 7, "bb_period": 12, "bb_std": 1.5, "ma_fast": 4, "ma_slow": 10, "atr_period": 6, "lookback": 8}
    rt = _runtime("momentum", **params)
    candles = _series(60)
    inds = [rt.on_candle_close(c) for c in candles]
    c = np.array([x.close for x in candles])
    h = np.array([x.high for x in candles])
    lo = np.array([x.low for x in candles])
    rsi = talib.RSI(c, 7)
    up, mid, dn = talib.BBANDS(c, 12, 1.5, 1.5, 0)
    fast, slow = talib.SMA(c, 4), talib.SMA(c, 10)
    atr = talib.ATR(h, lo, c, 6)
    for i, ind in enumerate(inds):
        for got, ref in ((ind.rsi, rsi), (ind.bb_upper, up), (ind.bb_lower, dn), (ind.bb_middle, mid),
                         (ind.ma_fast, fast), (ind.ma_slow, slow), (ind.atr, atr)):
            if np.isnan(ref[i]):
                assert got is None, i
            else:
                assert got == pytest.approx(ref[i], rel=1e-9), i
        if i >= 1:
            prev = inds[i - 1]
            assert (ind.prev_rsi, ind.prev_ma_fast, ind.prev_ma_slow) == (prev.rsi, prev.ma_fast, prev.ma_slow)
        if i >= 8:
            assert ind.highest == max(x.high for x in candles[i - 8 : i])  # the 8 candles BEFORE i
            assert ind.lowest == min(x.low for x in candles[i - 8 : i])
        else:
            assert ind.highest is None and ind.lowest is None
    assert rt.candles == 60


def test_highest_excludes_the_current_candle() -> None:
    rt = _runtime(lookback=3, ma_fast=2, ma_slow=3)
    candles = [Candle(i * MIN, 10, h, 9, 10, 1, 1) for i, h in enumerate([11, 12, 13, 20, 14])]
    inds = [rt.on_candle_close(c) for c in candles]
    assert [i.highest for i in inds] == [None, None, None, 13, 20]
    assert [i.lowest for i in inds] == [None, None, None, 9, 9]


def test_late_or_malformed_candles_change_nothing() -> None:
    rt = _runtime(lookback=3)
    for c in _series(5):
        rt.on_candle_close(c)
    before = rt.ind
    for bad in (
        Candle(2 * MIN, 10, 11, 9, 10, 1, 1),  # older than the last
        Candle(4 * MIN, 10, 11, 9, 10, 1, 1),  # same time as the last
        Candle(9 * MIN, 10, 11, 9, float("nan"), 1, 1),
        Candle(9 * MIN, 10, 9, 11, 10, 1, 1),  # high below low
        Candle(9 * MIN, 10, 11, 0.0, 10, 1, 1),
    ):
        assert rt.on_candle_close(bad) is before
    assert rt.bad_candles == 5 and rt.candles == 5


def test_preview_equals_the_commit_and_leaves_state_alone() -> None:
    rt = _runtime("mean_reversion", bb_period=10, rsi_period=5, atr_period=5)
    candles = _series(30)
    for c in candles[:-1]:
        rt.on_candle_close(c)
    last = candles[-1]
    first = rt.preview(last.close, last.high, last.low)
    assert rt.preview(last.close, last.high, last.low) == first  # no state touched
    no_range = rt.preview(last.close)
    assert no_range["atr"] == rt.ind.atr  # without the forming range: the committed ATR
    ind = rt.on_candle_close(last)
    assert set(first) == {"rsi", "bb_upper", "bb_middle", "bb_lower", "bb_pos", "ma_fast", "ma_slow", "atr"}
    assert (first["rsi"], first["bb_upper"], first["bb_middle"], first["bb_lower"]) == (
        ind.rsi, ind.bb_upper, ind.bb_middle, ind.bb_lower)
    assert (first["ma_fast"], first["ma_slow"], first["atr"]) == (ind.ma_fast, ind.ma_slow, ind.atr)
    assert first["bb_pos"] == pytest.approx((last.close - ind.bb_lower) / (ind.bb_upper - ind.bb_lower))


def test_preview_before_warm_up_is_all_none() -> None:
    view = _runtime().preview(100.0)
    assert all(v is None for v in view.values())


def test_reference_close_is_a_day_ago_or_the_oldest_held() -> None:
    rt = _runtime(timeframe_s=3600)  # 24 candles a day
    assert rt.reference_close is None
    candles = _series(30)
    for c in candles[:10]:
        rt.on_candle_close(c)
    assert rt.reference_close == candles[0].close
    for c in candles[10:]:
        rt.on_candle_close(Candle(c.ts * 60, c.open, c.high, c.low, c.close, c.volume, c.ticks))
    assert rt.reference_close == candles[-25].close  # the close 24 candles before the last


def test_analyze_and_warm_up_feed_the_strategy() -> None:
    rt = _runtime(lookback=5)
    candles = _series(40)
    assert rt.warm_up(candles[:30]) == candles[:30]
    assert rt.candles == 30
    assert rt.strategy._seen == 30  # breakout's own volume average saw the history
    ind, sig = rt.analyze(candles[30], 0.0)
    assert sig.ts == candles[30].ts and ind is rt.ind


def test_breakout_volume_average_is_warm_after_warm_up() -> None:
    rt = _runtime("breakout", lookback=5, atr_period=5)
    flat = [Candle(i * MIN, 100.0, 101.0, 99.0, 100.0, 10.0, 1) for i in range(12)]  # N > lookback
    rt.warm_up(flat)
    assert rt.strategy.volume_average == pytest.approx(10.0)  # type: ignore[attr-defined]
    # the first live candle breaks out above the 5-candle high of 101 on 3× the volume
    live = Candle(12 * MIN, 100.0, 101.6, 99.9, 101.5, 30.0, 1)
    ind, sig = rt.analyze(live, 0.0)
    assert sig.type is SignalType.BUY and sig.ts == live.ts
    assert "volume 3.0× average" in sig.reasoning
    assert ind.highest == 101.0 and ind.atr is not None and ind.atr > 0
    margin = min((live.close - ind.highest) / ind.atr, 1.0)
    no_volume = BASE_CONFIDENCE + 0.15 * margin
    assert sig.confidence > no_volume
    assert sig.confidence == pytest.approx(no_volume + 0.15)  # surge 3× − 1, capped at 1
    # and the live candle is folded in afterwards: the average moved towards 30
    assert rt.strategy.volume_average == pytest.approx(10.0 + (30.0 - 10.0) * 2 / 6)  # type: ignore[attr-defined]


def test_warm_up_and_live_analysis_reach_the_same_state() -> None:
    candles = _series(80, seed=11, volumes=True)
    warmed = _runtime("breakout", lookback=7, atr_period=5, ma_fast=3, ma_slow=8)
    live = _runtime("breakout", lookback=7, atr_period=5, ma_fast=3, ma_slow=8)
    warmed.warm_up(candles)
    for c in candles:
        live.analyze(c, 0.0)
    assert warmed.ind == live.ind and warmed.candles == live.candles == 80
    assert warmed.strategy.volume_average is not None  # type: ignore[attr-defined]
    assert warmed.strategy.volume_average == live.strategy.volume_average  # type: ignore[attr-defined]
    assert warmed.reference_close == live.reference_close
    assert warmed.preview(101.0, 102.0, 100.0) == live.preview(101.0, 102.0, 100.0)
    # from here on both decide alike: the next candle gives the same signal
    nxt = Candle(80 * MIN, 100.0, 200.0, 99.0, 190.0, 9.0, 1)
    assert warmed.analyze(nxt, 0.0) == live.analyze(nxt, 0.0)


class _Clock(Clock):
    def time_ms(self) -> int:
        return 1_700_000_000_000

    def monotonic(self) -> float:
        return 1.0


def _core(cfg: SafeList, journal: Store) -> TradingCore:
    clock = _Clock()
    return TradingCore(cfg, clock=clock, client=PaperExecutionClient(0.001, 1.0, {}, clock), journal=journal)


def test_trading_core_holds_a_runtime_for_every_active_pair_of_the_safe_list(tmp_path: Path) -> None:
    cfg = load_safe_list(ROOT / "safe_list.yaml")
    with Store(tmp_path / "a.db") as journal:
        core = _core(cfg, journal)
    assert core.symbols == list(core.pairs) == cfg.active_symbols()
    for sym, ps in core.pairs.items():
        rt, pcfg = ps.runtime, cfg.pair(sym)
        assert rt.symbol == sym and rt.cfg is pcfg and rt.candles == 0
        assert rt.strategy.name == pcfg.strategy and rt.strategy.symbol == sym
        assert rt.rsi.period == pcfg.params.rsi_period and rt.atr.period == pcfg.params.atr_period
        assert rt.highs.period == pcfg.params.lookback
        assert rt.strategy.portfolio_state is not None  # the core hands every strategy its state
    assert "XRP/USDT" not in core.pairs
    data = cfg.model_dump()
    data["pairs"]["SOL/USDT"]["enabled"] = False
    with Store(tmp_path / "b.db") as journal:
        assert "SOL/USDT" not in _core(SafeList.model_validate(data), journal).pairs


@pytest.mark.parametrize(
    ("strategy", "has"),
    [
        ("momentum", {"rsi", "ma_fast", "ma_slow"}),
        ("mean_reversion", {"rsi", "bb_upper", "bb_middle", "bb_lower"}),
        ("breakout", {"highest", "lowest"}),
    ],
)
def test_a_backtests_pair_computes_what_its_strategy_reads(strategy: str, has: set[str]) -> None:
    """``every_indicator=False`` (a backtest): the groups the strategy reads and ATR, the others
    None; the values it computes are the live engine's (every indicator), to the bit."""
    cfg = PairConfig(tier="STABLE", strategy=strategy, max_position_size_usd=500, params=StrategyParams())
    lean, full = PairRuntime("BTC/USDT", cfg, 60, every_indicator=False), PairRuntime("BTC/USDT", cfg, 60)
    optional = {"rsi", "ma_fast", "ma_slow", "bb_upper", "bb_middle", "bb_lower", "highest", "lowest"}
    for c in _series(80):
        a, b = lean.on_candle_close(c), full.on_candle_close(c)
    assert a.atr is not None and a.atr == b.atr
    for name in optional:
        got, want = getattr(a, name), getattr(b, name)
        assert want is not None, name  # warmed up: the live engine has every one
        assert got == (want if name in has else None), (name, got, want)
    assert full.reference_close is not None and lean.reference_close is None  # the console's change: live only


def test_a_strategy_reading_an_unknown_group_is_refused() -> None:
    import engine.core.strategies.base as base

    cfg = PairConfig(tier="STABLE", strategy="momentum", max_position_size_usd=500, params=StrategyParams())

    class Odd(base.Strategy):  # a strategy of one's own, in plain Python
        reads = frozenset({"rsi", "vwap"})

        def analyze(self, candle: Candle, ind: Indicators, position_qty: float) -> Signal:
            return self.hold(candle, "odd")

    real = base._REGISTRY["momentum"]
    base._REGISTRY["momentum"] = Odd
    try:
        with pytest.raises(ValueError, match="reads vwap: not an indicator group"):
            PairRuntime("BTC/USDT", cfg, 60, every_indicator=False)
        PairRuntime("BTC/USDT", cfg, 60)  # a live engine computes every one: nothing to refuse
    finally:
        base._REGISTRY["momentum"] = real
