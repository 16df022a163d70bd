"""Warm-up per pair: how many closed candles a strategy needs (``Strategy.warmup_candles``), the
engine's ``pair`` message carrying "42 of 60" while a pair warms (``warm_candles``,
``warm_need``), and the console showing it in the full pane and the compact row.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from console.app import make_app
from engine.core.candles import Candle
from engine.core.config import PairConfig, StrategyParams
from engine.core.pair import PairRuntime
from engine.node.publisher import StatePublisher
from engine.node.tick_in import TopicStats
from engine.wire.schema import PairStateMsg
from tests.console_fakes import (
    FakeBackend,
    FrozenClock,
    make_safe_list,
    screen_text,
    sol_state,
)
from tests.core_harness import make_core, safe_list

MIN = 60_000


def hold_policy(state: np.ndarray) -> int:
    return 0


def _runtime(strategy: str, **params: Any) -> PairRuntime:
    if strategy == "policy":
        params["policy"] = f"{__name__}:hold_policy"
    cfg = PairConfig(
        tier="STABLE", strategy=strategy, max_position_size_usd=500, params=StrategyParams(**params)
    )
    return PairRuntime("BTC/USDT", cfg)


def _candles(n: int) -> list[Candle]:
    out, prev = [], 100.0
    for i in range(n):
        close = 100.0 + 3.0 * math.sin(i * 0.7) + 0.1 * i
        out.append(Candle(i * MIN, prev, max(prev, close) + 0.4, min(prev, close) - 0.4, close, 10.0 + i % 3, 5))
        prev = close
    return out


PARAMS: list[dict[str, Any]] = [
    {},  # the safe list's defaults: RSI 14, BB 20, MA 9/21, ATR 14, lookback 20
    {"rsi_period": 30, "bb_period": 10, "ma_fast": 3, "ma_slow": 5, "atr_period": 7, "lookback": 12},
    {"rsi_period": 5, "bb_period": 40, "ma_fast": 20, "ma_slow": 45, "atr_period": 50, "lookback": 60},
]


@pytest.mark.parametrize("strategy", ["momentum", "mean_reversion", "breakout", "policy"])
@pytest.mark.parametrize("params", PARAMS)
def test_warmup_candles_is_when_the_strategy_stops_warming(strategy: str, params: dict[str, Any]) -> None:
    """The count the pane shows is exact: with one candle fewer the strategy still says
    "warming up", with that many it decides."""
    rt = _runtime(strategy, **params)
    need = rt.warmup_need
    first_decided = None
    for i, c in enumerate(_candles(need + 5)):
        _, sig = rt.analyze(c, 0.0)
        if not sig.reasoning.startswith("warming up") and first_decided is None:
            first_decided = i + 1  # candles committed when it first decided
    assert first_decided == need, (strategy, params, rt.strategy.warmup_candles())
    assert rt.candles == need + 5


def test_pair_state_carries_warm_up_until_the_pair_is_warm(tmp_path: Path) -> None:
    """The engine's ``pair`` message says how far the warm-up is, through the real codec, and
    says nothing once the pair is warm."""
    h = make_core(tmp_path, safe_list({"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion"}))
    core = h.core
    pub = StatePublisher(None)  # type: ignore[arg-type]  # building messages needs no socket
    btc, eth = core.pairs["BTC/USDT"], core.pairs["ETH/USDT"]
    start = (h.clock.ms // MIN - 60) * MIN  # 60 closed candles before now, on the minute
    candles = [dataclasses.replace(c, ts=start + c.ts) for c in _candles(60)]
    core.warm_pair("BTC/USDT", candles[:7])
    core.warm_pair("ETH/USDT", candles)

    def state(ps: Any) -> PairStateMsg:
        msg = pub.pair_state(core, ps, TopicStats(), core.clock.monotonic())
        return PairStateMsg.from_wire(msg.to_wire())

    warming = state(btc)
    need = btc.runtime.strategy.warmup_candles()
    assert (warming.warm_candles, warming.warm_need) == (7, need) and need == 22  # MA21 and the one before
    warm = state(eth)
    assert warm.warm_candles is None and warm.warm_need is None
    assert "warm_candles" not in warm.to_wire() and "warm_need" not in warm.to_wire()
    core.warm_pair("BTC/USDT", candles[7:])
    assert state(btc).warm_need is None


async def test_console_shows_the_warm_up_in_the_pane_and_the_compact_row() -> None:
    backend = FakeBackend()
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        await backend.started.wait()
        warming = dataclasses.replace(sol_state(stale=False, tick_age_ms=300), warm_candles=42, warm_need=60)
        app.model.apply_pair(warming)
        app.repaint_now()
        await pilot.pause()
        assert "warming up: 42/60 candles" in app.main.panes["SOL/USDT"].text()
        assert "warming up" not in app.main.panes["BTC/USDT"].text()
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        app.repaint_now()
        await pilot.pause()
        row = next(line for line in screen_text(app).splitlines() if "SOL/USDT" in line)
        assert "warm 42/60" in row and "flat" not in row
        app.select_symbol("SOL/USDT")  # the selected flat pair's line says it in full
        app.repaint_now()
        await pilot.pause()
        assert "warming up: 42/60 candles" in screen_text(app)
        app.model.apply_pair(sol_state(stale=False, tick_age_ms=300))  # warm: absent again
        app.repaint_now()
        await pilot.pause()
        assert "warm" not in app.main.panes["SOL/USDT"].text()


async def test_engine_loading_history_is_said_on_pairs_without_state() -> None:
    backend = FakeBackend(board=False)
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        await backend.started.wait()
        app.model.set_child("engine", state="running", pid=4102)
        app.model.apply_heartbeat("engine", 4102, phase="warming")
        app.repaint_now()
        await pilot.pause()
        assert "warming up: loading history" in app.main.panes["BTC/USDT"].text()
        app.model.apply_heartbeat("engine", 4102, phase="running")
        app.repaint_now()
        await pilot.pause()
        assert "warming up" not in app.main.panes["BTC/USDT"].text()
