"""The simulated market (feed/sim.py): determinism, correlation, tiers, spreads, and history."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import numpy as np
import pytest

from feed.__main__ import parse_args
from feed.errors import SourceConfigError, UnknownSymbolError
from feed.sim import SimMarket, SimSource, symbol_profile
from feed.wire import STATUS_CONNECTED

PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
T0 = 1_700_000_000.0 + 30.5  # mid-minute, so the first live candle straddles the start


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class CollectingPublisher:
    """The feed.source.Publisher protocol, recording instead of sending."""

    def __init__(self) -> None:
        self.ticks: list[tuple[str, int, float, float, float, float, float]] = []
        self.states: list[tuple[str, str | None, int | None]] = []

    def publish_tick(self, symbol: str, ts_exchange_ms: int, bid: float, ask: float, last: float,
                     base_volume: float = 0.0, quote_volume: float = 0.0) -> None:
        self.ticks.append((symbol, ts_exchange_ms, bid, ask, last, base_volume, quote_volume))

    def set_status(self, state: str, last_error: str | None = None, reconnects: int | None = None) -> None:
        self.states.append((state, last_error, reconnects))

    def of(self, symbol: str) -> list[tuple[Any, ...]]:
        return [t for t in self.ticks if t[0] == symbol]


def _path(market: SimMarket, steps: int) -> np.ndarray:
    mids = np.empty((steps, len(market.symbols)))
    for i in range(steps):
        market.step()
        mids[i] = market.mid
    return mids


def _quotes(market: SimMarket, steps: int) -> list[tuple[Any, ...]]:
    out = []
    for _ in range(steps):
        market.step()
        out.append(tuple(tuple(v) for v in (market.ticked, market.bid, market.ask, market.last)))
    return out


class TestDeterminism:
    """Same seed, same prices; the path does not depend on wall-clock timing."""

    def test_same_seed_same_prices(self) -> None:
        assert _quotes(SimMarket(PAIRS, seed=11), 3000) == _quotes(SimMarket(PAIRS, seed=11), 3000)

    def test_different_seed_different_prices(self) -> None:
        a = _path(SimMarket(PAIRS, seed=1), 500)
        b = _path(SimMarket(PAIRS, seed=2), 500)
        assert not np.allclose(a, b)

    def test_a_symbols_path_does_not_depend_on_the_other_symbols(self) -> None:
        alone = _path(SimMarket(["BTC/USDT"], seed=5), 1000)[:, 0]
        among = _path(SimMarket(["DOGE/USDT", "BTC/USDT", "ETH/USDT"], seed=5), 1000)[:, 1]
        np.testing.assert_array_equal(alone, among)

    def test_live_ticks_do_not_depend_on_when_they_are_pumped(self) -> None:
        def ticks(chunks: int) -> list[tuple[Any, ...]]:
            clock = FakeClock(T0)
            src = SimSource(PAIRS, seed=3, clock=clock)
            pub = CollectingPublisher()
            for i in range(1, chunks + 1):
                src.pump(pub, T0 + 60.0 * i / chunks)
            return [t[:5] for t in pub.ticks]

        assert ticks(1) == ticks(37)


class TestMarketShape:
    """Realistic start prices, correlated returns, volatility ordered by tier, positive spreads."""

    def test_start_prices(self) -> None:
        m = SimMarket([*PAIRS, "ZZTOP/USDT", "ETH/BTC"])
        assert m.mid[:3] == [60_000.0, 3_000.0, 150.0]
        assert 1.0 <= m.mid[3] <= 100.0
        assert m.mid[3] == SimMarket(["ZZTOP/USDT"], seed=99).mid[0]  # fixed by the name
        assert m.mid[4] == pytest.approx(0.05)

    def test_default_tiers(self) -> None:
        tiers = {s: symbol_profile(s).tier for s in ["BTC/USDT", "ETH/USDT", "SOL/USDT", "PEPE/USDT", "ABC/USDT"]}
        assert tiers == {"BTC/USDT": "STABLE", "ETH/USDT": "STABLE", "SOL/USDT": "VOLATILE",
                         "PEPE/USDT": "MEME", "ABC/USDT": "VOLATILE"}

    def test_return_correlation(self) -> None:
        mids = _path(SimMarket(PAIRS, seed=4), 20_000)
        returns = np.diff(np.log(mids[::10]), axis=0)  # ~2 s returns
        corr = np.corrcoef(returns.T)
        btc_eth, btc_sol, eth_sol = corr[0, 1], corr[0, 2], corr[1, 2]
        assert btc_eth > 0.6
        assert 0.2 < btc_sol < btc_eth
        assert 0.2 < eth_sol < btc_eth

    def test_volatility_ordered_by_tier(self) -> None:
        tiers = {"AAA/USDT": "STABLE", "BBB/USDT": "VOLATILE", "CCC/USDT": "MEME"}
        mids = _path(SimMarket(list(tiers), seed=8, tiers=tiers), 20_000)
        vol = np.diff(np.log(mids), axis=0).std(axis=0)
        assert vol[0] < vol[1] < vol[2]

    def test_tiers_override_the_default(self) -> None:
        calm = _path(SimMarket(["SOL/USDT"], seed=8, tiers={"SOL/USDT": "STABLE"}), 5_000)
        wild = _path(SimMarket(["SOL/USDT"], seed=8, tiers={"SOL/USDT": "MEME"}), 5_000)
        assert np.diff(np.log(calm[:, 0])).std() < np.diff(np.log(wild[:, 0])).std()

    def test_spread_positive_last_at_the_touch_meme_wider(self) -> None:
        m = SimMarket(["BTC/USDT", "PEPE/USDT"], seed=2)
        spreads: dict[int, list[float]] = {0: [], 1: []}
        ticked = 0
        for _ in range(5_000):
            m.step()
            for k in (0, 1):
                if m.ticked[k]:
                    ticked += 1
                    bid, ask, last = m.bid[k], m.ask[k], m.last[k]
                    assert 0.0 < bid < ask
                    assert last in (bid, ask)
                    spreads[k].append((ask - bid) / ((ask + bid) / 2) * 1e4)
        assert 0.8 * 10_000 < ticked < 10_000  # ~90 % of steps publish: arrival jitter
        assert 0.5 < np.mean(spreads[0]) < 5.0  # a few bps
        assert np.mean(spreads[1]) > 2 * np.mean(spreads[0])

    def test_volume_is_positive_and_rolling(self) -> None:
        m = SimMarket(["BTC/USDT"], seed=2)
        start = m.base_volume[0]
        for _ in range(2_000):
            m.step()
        assert 0.5 * start < m.base_volume[0] < 2 * start
        assert m.quote_volume[0] == pytest.approx(m.base_volume[0] * m.mid[0], rel=0.1)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"rate": 0.0}, "rate"),
            ({"rate": math.nan}, "rate"),
            ({"tiers": {"BTC/USDT": "SAFE"}}, "tier"),
            ({"tiers": {"DOGE/USDT": "MEME"}}, "not streamed"),
            ({"time_scale": 0.0}, "time scale"),
            ({"time_scale": math.inf}, "time scale"),
            ({"time_scale": 3601.0}, "time scale"),
        ],
    )
    def test_bad_parameters_are_one_line_errors(self, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(SourceConfigError, match=match) as info:
            SimMarket(PAIRS, **kwargs)
        assert "\n" not in str(info.value)

    def test_bad_symbol(self) -> None:
        with pytest.raises(SourceConfigError, match="BASE/QUOTE"):
            SimMarket(["BTCUSDT"])


class TestHistory:
    """History is the same model, ends at the aligned boundary, and the live path continues it."""

    def test_candles_end_at_the_start_price_and_boundary(self) -> None:
        src = SimSource(PAIRS, seed=1, clock=FakeClock(T0))
        for sym, p0 in zip(PAIRS, (60_000.0, 3_000.0, 150.0), strict=True):
            candles = src.history_sync(sym, 60, 300)
            assert len(candles) == 300
            ts = [c[0] for c in candles]
            assert ts[-1] == (int(T0) // 60 - 1) * 60_000  # last closed candle before now
            assert np.all(np.diff(ts) == 60_000)
            assert candles[-1][4] == p0
            for _, o, h, lo, c, v in candles:
                assert 0 < lo <= min(o, c) <= max(o, c) <= h and v > 0
            opens, closes = [c[1] for c in candles], [c[4] for c in candles]
            assert opens[1:] == closes[:-1]  # no gaps between candles

    def test_live_path_continues_from_the_last_close(self) -> None:
        src = SimSource(PAIRS, seed=1, clock=FakeClock(T0))
        last_close = {s: src.history_sync(s, 60, 50)[-1][4] for s in PAIRS}
        pub = CollectingPublisher()
        src.pump(pub, T0 + 2.0)
        for sym in PAIRS:
            first = pub.of(sym)[0]
            mid = (first[2] + first[3]) / 2
            assert abs(mid / last_close[sym] - 1) < 0.002  # one step of noise plus half a spread

    def test_history_is_deterministic_and_limits_are_suffixes(self) -> None:
        a = SimSource(PAIRS, seed=9, clock=FakeClock(T0))
        b = SimSource(PAIRS, seed=9, clock=FakeClock(T0))
        long = a.history_sync("ETH/USDT", 300, 700)  # spans chunks
        assert long == b.history_sync("ETH/USDT", 300, 700)
        assert a.history_sync("ETH/USDT", 300, 20) == long[-20:]
        other = SimSource(PAIRS, seed=10, clock=FakeClock(T0)).history_sync("ETH/USDT", 300, 700)
        assert other != long

    def test_history_volatility_scales_with_timeframe(self) -> None:
        src = SimSource(["BTC/USDT"], seed=3, clock=FakeClock(T0))

        def vol(tf: int) -> float:
            closes = np.array([c[4] for c in src.history_sync("BTC/USDT", tf, 1000)])
            return float(np.diff(np.log(closes)).std())

        assert 2.0 < vol(3600) / vol(60) < 15.0  # sqrt(60) ~ 7.7

    def test_history_after_running_holds_the_published_ticks(self) -> None:
        clock = FakeClock(T0)
        src = SimSource(PAIRS, seed=6, clock=clock)
        before = src.history_sync("SOL/USDT", 60, 10)
        pub = CollectingPublisher()
        clock.t = T0 + 185.0
        src.pump(pub, clock.t)
        after = src.history_sync("SOL/USDT", 60, 10)
        start_minute = int(T0) // 60 * 60_000
        assert [c[0] for c in after[-3:]] == [start_minute + i * 60_000 for i in range(3)]
        assert after[:7] == before[-7:]  # the synthetic part is unchanged
        assert after[-3][1] == before[-1][4]  # the candle holding the start opens at its price
        ticks = pub.of("SOL/USDT")
        for ts, o, h, lo, c, v in after[-3:]:
            inside = [t for t in ticks if ts <= t[1] < ts + 60_000]
            assert inside
            assert c == inside[-1][4]
            assert h >= max(t[4] for t in inside) and lo <= min(t[4] for t in inside)
            assert 0 < lo <= min(o, c) <= max(o, c) <= h and v > 0
        assert after[-2][1] == ticks[next(i for i, t in enumerate(ticks) if t[1] >= after[-2][0])][4]

    def test_unknown_symbol_and_bad_arguments(self) -> None:
        src = SimSource(PAIRS, clock=FakeClock(T0))
        with pytest.raises(UnknownSymbolError, match="DOGE/USDT"):
            src.history_sync("DOGE/USDT", 60, 10)
        with pytest.raises(ValueError):
            src.history_sync("BTC/USDT", 0, 10)
        assert src.history_sync("BTC/USDT", 60, 0) == []


class TestStreaming:
    """run() streams every pair at about the configured rate and stops promptly."""

    async def test_run_streams_all_pairs_and_stops(self) -> None:
        src = SimSource(PAIRS, seed=1, rate=500.0)
        pub = CollectingPublisher()
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(pub, stop))
        wall_start = time.time()
        started = time.monotonic()
        deadline = started + 15.0
        while time.monotonic() < deadline and min(len(pub.of(s)) for s in PAIRS) < 100:
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.wait_for(task, 2.0)
        assert pub.states[0][0] == STATUS_CONNECTED
        for sym in PAIRS:
            ticks = pub.of(sym)
            assert len(ticks) >= 100
            te = [t[1] for t in ticks]
            assert te == sorted(te)
            assert abs(te[0] / 1000 - wall_start) < 5.0  # exchange time is wall time
        # No faster than the rate allows (with its jitter): 100 ticks at 500/s take >= ~0.15 s.
        assert elapsed > 0.1


def _live_candle_returns(scale: float, candles: int, tf_s: float = 2.0, seed: int = 3) -> np.ndarray:
    """Per-candle log returns of every pair's mid, candles of ``tf_s`` wall seconds built from
    the market's steps on the wall times the source would give them (no sleeping)."""
    m = SimMarket(PAIRS, seed=seed, time_scale=scale)
    closes, t, edge = [], 0.0, tf_s
    while len(closes) <= candles:
        m.step()
        t += m.next_interval()
        while t >= edge:  # the candle ending at ``edge`` closes on the last mid before it
            closes.append(list(m.mid))
            edge += tf_s
    return np.diff(np.log(np.array(closes[: candles + 1])), axis=0)


class TestTimeScale:
    """--time-scale S: the market runs S market seconds per wall second; ticks stay on the wall."""

    def test_the_default_is_unchanged(self) -> None:
        # Values computed before the time scale existed (seed 7), and S=1 given explicitly.
        m = SimMarket(PAIRS, seed=7)
        for _ in range(5_000):
            m.step()
        assert m.bid == [60546.75, 3032.075, 149.7214]
        assert m.ask == [60553.97, 3032.328, 149.7644]
        assert m._model.dt == m.step_dt and m._model.sig == [p.sigma_s for p in m.profiles]
        assert _quotes(SimMarket(PAIRS, seed=7), 2_000) == _quotes(SimMarket(PAIRS, seed=7, time_scale=1.0), 2_000)
        src = SimSource(PAIRS, seed=7, clock=FakeClock(T0))
        assert src.history_sync("SOL/USDT", 60, 300)[0][:5] == [1699981980000, 163.8003, 164.5777, 163.6985, 164.2484]
        assert src.history_sync("SOL/USDT", 2, 300)[0][:5] == [1699999430000, 147.6065, 147.7302, 147.5755, 147.7245]

    def test_the_model_runs_on_market_time_the_ticks_on_wall_time(self) -> None:
        slow, fast = SimMarket(PAIRS, seed=7), SimMarket(PAIRS, seed=7, time_scale=30.0)
        assert fast.step_dt == slow.step_dt  # as many ticks per wall second
        assert fast._model.dt == pytest.approx(30.0 * slow.step_dt)
        assert fast._model.sig == [p.sigma_s for p in fast.profiles]  # per market second
        runs = []
        for scale in (1.0, 30.0):
            src, pub = SimSource(PAIRS, seed=7, clock=FakeClock(T0), time_scale=scale), CollectingPublisher()
            runs.append((src.pump(pub, T0 + 60.0), src._next_t, pub.ticks))
        (steps, next_t, slow_ticks), (fast_steps, fast_next_t, fast_ticks) = runs
        assert (fast_steps, fast_next_t) == (steps, next_t)  # the same steps at the same wall times
        assert abs(len(fast_ticks) / len(slow_ticks) - 1.0) < 0.05
        assert all(int(T0 * 1000) <= t[1] <= int((T0 + 60.0) * 1000) for t in fast_ticks)  # wall ms

    def test_live_volatility_per_candle_scales_with_the_square_root(self) -> None:
        slow = _live_candle_returns(1.0, 6_000).std(axis=0)
        fast = _live_candle_returns(30.0, 6_000).std(axis=0)
        # Over a market minute the regimes' drift (trends, breakouts) adds to the diffusion's
        # sqrt(30) = 5.48; over 2 market seconds it is negligible. Ratio / sqrt(30) measured
        # 1.07-1.18 over seeds 1-8 (seed 3: 1.13-1.16).
        ratio = fast / slow
        assert np.all(ratio > 0.95 * math.sqrt(30.0)) and np.all(ratio < 1.3 * math.sqrt(30.0)), ratio
        # The claim the demo rests on: a 2 s candle at S=30 moves like a 1-minute candle at S=1
        # (measured 0.97-1.06 over seeds 1-8).
        minute = _live_candle_returns(1.0, 800, tf_s=60.0).std(axis=0)
        assert np.all(np.abs(fast / minute - 1.0) < 0.15), (fast, minute)

    def test_history_candles_move_like_live_candles(self) -> None:
        live = _live_candle_returns(30.0, 5_000).std(axis=0)
        src = SimSource(PAIRS, seed=3, clock=FakeClock(T0), time_scale=30.0)
        for k, sym in enumerate(PAIRS):
            closes = np.array([c[4] for c in src.history_sync(sym, 2, 3_000)])
            hist = np.diff(np.log(closes)).std()
            assert abs(hist / live[k] - 1.0) < 0.15, (sym, hist, live[k])  # seeds 1-8: 0.97-1.05
        again = SimSource(PAIRS, seed=3, clock=FakeClock(T0), time_scale=30.0).history_sync("BTC/USDT", 2, 600)
        assert again == src.history_sync("BTC/USDT", 2, 600)  # deterministic in the scale too
        assert again != SimSource(PAIRS, seed=3, clock=FakeClock(T0)).history_sync("BTC/USDT", 2, 600)

    def test_the_24h_volume_window_is_in_market_time(self) -> None:
        m = SimMarket(PAIRS, seed=2, time_scale=30.0)
        for _ in range(20_000):  # ~1.6 market days
            m.step()
        for k, p in enumerate(m.profiles):  # measured ~0.91; a wall-time window would read ~2.3
            assert 0.7 < m.base_volume[k] / (p.volume_per_s * 86_400.0) < 1.3

    @pytest.mark.parametrize("value", ["0", "-2", "nan", "inf", "3601", "fast"])
    def test_a_bad_value_is_a_one_line_usage_error(self, value: str, capsys: pytest.CaptureFixture[str]) -> None:
        argv = ["--source", "sim", "--pub", "ipc:///tmp/p", "--rep", "ipc:///tmp/r", "--time-scale", value]
        with pytest.raises(SystemExit) as info:
            parse_args(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2
        assert len(err.strip().splitlines()) == 1 and "--time-scale" in err, err
        assert parse_args([*argv[:-1], "30"]).time_scale == 30.0
