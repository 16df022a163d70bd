"""Bad data never trades (issue 12, point 5), through the real trading core with the paper
client and a real SQLite journal: a wild print is quarantined (no stop, no fill, no candle), a
real crash gets through once the market confirms it, no fill is ever priced outside the band,
and after a feed pause the gap candles are committed but only the newest is decided on, never
with an entry. The band itself (engine/core/quality.py) and its ``data:`` section are
checked directly too."""

from __future__ import annotations

import logging
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.candles import Candle
from engine.core.config import ConfigError, SafeList, parse_safe_list
from engine.core.config_data import DataConfig
from engine.core.models import Side, Signal, SignalType
from engine.core.quality import WIDENS_AFTER_S, PriceBand, gap_entry
from engine.core.trader import FEED_LATENCY_ALLOWANCE_MS
from engine.node.service import Endpoints, EngineNode
from feed.wire import Tick, encode_tick
from tests import core_policies
from tests.core_harness import T0_MS, FakeClock, Harness, make_core, paper
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(120)

BTC = "BTC/USDT"
POLICY = "tests.core_policies:scripted"


def _cfg(strategy: str = "momentum", *, tier: str = "STABLE", data: dict[str, Any] | None = None) -> SafeList:
    params: dict[str, Any] = {"lookback": 10}
    if strategy == "policy":
        params["policy"] = POLICY
    raw: dict[str, Any] = {
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {BTC: {"tier": tier, "strategy": strategy, "max_position_size_usd": 500, "params": params}},
    }
    if data is not None:
        raw["data"] = data
    return SafeList.model_validate(raw)


def _open_long(tmp_path: Path, price: float = 59_000.0, **kw: Any) -> Harness:
    """A BTC long at ``price`` recovered from the book, and a few ticks at that price."""
    db = tmp_path / "book.sqlite"
    seed_open_position(db, BTC, 0.004, price, **kw)
    h = make_core(tmp_path, _cfg(), db=db)
    for _ in range(4):
        h.clock.advance(500)
        assert h.tick(BTC, price)
    return h


def _warm(h: Harness, tf_s: int, price: float = 59_000.0, n: int = 60, seed: int = 3) -> None:
    """``n`` closed candles of history ending at the current interval, the last close ``price``
    (indicators ready for the policy strategy: RSI, Bollinger Bands, ATR)."""
    rng = random.Random(seed)
    tf = tf_s * 1000
    start = h.clock.ms - h.clock.ms % tf - n * tf
    closes = [1.0]
    for _ in range(n):
        closes.append(closes[-1] * math.exp(rng.gauss(0.0, 0.002)))
    k = price / closes[-1]
    candles = []
    for i in range(n):
        o, c = closes[i] * k, closes[i + 1] * k
        candles.append(Candle(start + i * tf, o, max(o, c) * 1.003, min(o, c) * 0.997, c, 10.0, 5))
    h.core.warm_pair(BTC, candles)


def _sell_price(h: Harness, bid: float, ask: float) -> float:
    return paper(h.core.cfg, h.clock).fill_price(BTC, Side.SELL, bid, ask)


# ------------------------------------------------------------------ (a) one wild print


@pytest.mark.parametrize(
    ("bid", "ask", "last"),
    [
        (100.0, 59_003.0, 59_000.0),  # the fuzzed case: one bid of 100
        (100.0, 100.01, 100.0),  # a whole tick at a six-hundredth of the price
        (590_000.0, 590_059.0, 590_000.0),  # ten times the price (the take-profit side)
        (59_100.0, 58_900.0, 59_000.0),  # a crossed quote: bid above ask
        (0.0, 59_003.0, 59_000.0),  # a bid of 0
        (math.nan, 59_003.0, 59_000.0),
    ],
)
def test_one_wild_tick_fires_no_stop_and_fills_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bid: float, ask: float, last: float
) -> None:
    h = _open_long(tmp_path, stop=58_000.0, target=62_000.0)
    ps = h.core.pairs[BTC]
    assert ps.candles.forming is not None
    before = (ps.bid, ps.ask, ps.last, ps.ticks, ps.candles.forming.low, ps.candles.forming.high)
    h.clock.advance(500)
    with caplog.at_level(logging.WARNING, logger="engine"):
        assert h.core.on_tick(ps, h.clock.ms, bid, ask, last, 0.0) is False
    # nothing moved: no price, no candle, no stop, no fill, no decision
    assert (ps.bid, ps.ask, ps.last, ps.ticks, ps.candles.forming.low, ps.candles.forming.high) == before
    assert h.events.fills == [] and h.events.decisions == [] and len(h.store.orders()) == 1  # the seed's
    assert h.store.load_positions()[BTC].qty == 0.004 and h.core.portfolio.positions[BTC].is_open
    assert h.core.counters()["quarantined_ticks"] == 1
    said = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("BTC/USDT - tick quarantined: ")
    assert ("band" in said[0] and "59000" in said[0]) or "not a valid quote" in said[0]
    # the market goes on at 59,000: still nothing happened
    for _ in range(20):
        h.clock.advance(500)
        assert h.tick(BTC, 59_000.0)
    assert h.events.fills == [] and len(h.store.orders()) == 1 and not h.core.execution.exits
    assert h.store.load_positions()[BTC].qty == 0.004
    assert h.core.counters()["quarantined_ticks"] == 1
    assert len([r for r in caplog.records if "quarantined" in r.getMessage()]) == 1
    assert ps.band.released == 0


def test_sporadic_wild_prints_never_add_up_to_a_confirmation(tmp_path: Path) -> None:
    """The same bad print every few seconds, with good ticks between, stays quarantined."""
    h = _open_long(tmp_path, stop=58_000.0)
    ps = h.core.pairs[BTC]
    for _ in range(30):
        h.clock.advance(1_000)
        assert h.core.on_tick(ps, h.clock.ms, 100.0, 100.01, 100.0, 0.0) is False
        h.clock.advance(1_000)
        assert h.tick(BTC, 59_000.0)
    assert h.core.counters()["quarantined_ticks"] == 30 and ps.band.released == 0
    assert h.events.fills == [] and h.store.load_positions()[BTC].qty == 0.004


# ------------------------------------------------------------------ (b) a real crash


def test_a_real_crash_is_confirmed_and_the_stop_fires_at_a_confirmed_price(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = _open_long(tmp_path, stop=56_000.0, target=62_000.0)
    ps = h.core.pairs[BTC]
    crash = [54_280.0, 54_230.0, 54_180.0, 54_130.0, 54_080.0, 54_030.0]  # -8 % and falling
    seen = []
    with caplog.at_level(logging.WARNING, logger="engine"):
        for price in crash:
            h.clock.advance(500)
            seen.append((h.tick(BTC, price), ps.bid, ps.ask))
    # quarantined until 3 ticks agreeing over 2 s: the fifth tick (2.0 s after the first)
    assert [ok for ok, _, _ in seen] == [False, False, False, False, True, True]
    assert h.core.counters()["quarantined_ticks"] == 4 and ps.band.released == 1
    assert any("price confirmed by 5 ticks over 2.0 s" in r.getMessage() for r in caplog.records)
    (fill,) = h.events.fills
    _, bid, ask = seen[4]
    assert fill.reason == "stop" and fill.side == "sell"
    assert fill.price == _sell_price(h, bid, ask)  # the confirming tick's bid, not the first print
    assert fill.price < _sell_price(h, 54_280.0 * (1 - 0.5e-4), 54_280.0 * (1 + 0.5e-4))
    assert BTC not in h.store.load_positions()
    assert ps.band.ref == pytest.approx(54_030.0)  # the band follows the market again


def test_a_move_inside_the_band_is_believed_at_once(tmp_path: Path) -> None:
    h = _open_long(tmp_path, stop=57_000.0)
    h.clock.advance(500)
    assert h.tick(BTC, 56_500.0)  # -4.2 %: inside STABLE's 5 % band, the stop fires now
    assert [f.reason for f in h.events.fills] == ["stop"]
    assert h.core.counters()["quarantined_ticks"] == 0


# ------------------------------------------------------------------ (c) fills inside the band


@pytest.mark.parametrize("command", ["flatten", "kill"])
def test_a_flatten_right_after_a_bad_tick_fills_at_the_confirmed_price(tmp_path: Path, command: str) -> None:
    h = _open_long(tmp_path)
    ps = h.core.pairs[BTC]
    bid, ask = ps.bid, ps.ask
    h.clock.advance(100)
    assert h.core.on_tick(ps, h.clock.ms, 100.0, 100.01, 100.0, 0.0) is False
    r = h.core.command(command, BTC) if command == "flatten" else h.core.command("kill")
    assert r.ok, r.message
    (fill,) = h.events.fills
    assert fill.price == _sell_price(h, bid, ask)
    assert 59_000.0 / 1.05 < fill.price < 59_000.0 * 1.05


def test_an_entry_decided_right_after_a_bad_tick_fills_at_the_confirmed_ask(tmp_path: Path) -> None:
    """The candle closes by the timer just after a quarantined print: the entry is priced from
    the last confirmed quote."""
    tf_s = 5
    h = make_core(tmp_path, _cfg("policy"), timeframe_s=tf_s)
    _warm(h, tf_s)
    ps = h.core.pairs[BTC]
    core_policies.action[0] = 1
    try:
        h.clock.advance(100)
        assert h.tick(BTC, 59_000.0)
        bid, ask = ps.bid, ps.ask
        h.clock.advance(100)
        assert h.core.on_tick(ps, h.clock.ms, 100.0, 100.01, 100.0, 0.0) is False
        h.clock.advance(tf_s * 1000 + FEED_LATENCY_ALLOWANCE_MS)  # the timer closes the candle
        h.core.on_timer()
    finally:
        core_policies.action[0] = 0
    entries = [d for d in h.events.decisions if d.action == "open_long"]
    assert entries, [d.signal.reasoning for d in h.events.decisions]
    fills = h.events.fills
    assert all(f.side == "buy" for f in fills)
    for f in fills:
        assert f.price == paper(h.core.cfg, h.clock).fill_price(BTC, Side.BUY, bid, ask)


# ------------------------------------------------------------------ (d) a feed pause


@pytest.mark.parametrize("by", ["tick", "timer"])
def test_after_a_feed_pause_gap_candles_are_committed_and_only_the_newest_is_decided(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, by: str
) -> None:
    tf_s = 5
    tf = tf_s * 1000
    h = make_core(tmp_path, _cfg("policy"), timeframe_s=tf_s)
    _warm(h, tf_s)
    ps = h.core.pairs[BTC]
    core_policies.action[0] = 0
    core_policies.calls.clear()
    try:
        for _ in range(30):  # 15 s of ticks: three candles close and are decided (HOLD)
            h.clock.advance(500)
            assert h.tick(BTC, 59_000.0)
            h.core.on_timer()
        assert len(core_policies.calls) >= 2
        assert ps.candles.forming is not None
        forming_ts, committed, n_decisions = ps.candles.forming.ts, ps.runtime.candles, len(h.events.decisions)
        core_policies.action[0] = 1  # from now on the strategy wants to buy on every candle
        core_policies.calls.clear()
        h.clock.advance(80_000)  # the feed pauses for 80 s; nothing runs (a blocked loop)
        with caplog.at_level(logging.INFO, logger="engine"):
            if by == "timer":
                h.core.on_timer()
                upto = h.clock.ms - FEED_LATENCY_ALLOWANCE_MS
            else:  # the feed comes back: its far jump is confirmed by the ticks after it
                while True:
                    h.clock.advance(100)
                    if h.tick(BTC, 59_000.0):
                        break
                upto = h.clock.ms
        n = (upto - upto % tf - forming_ts) // tf  # the forming candle and the gap candles
        assert n >= 15
        assert ps.runtime.candles - committed == n  # every candle committed: indicators in time
        assert ps.runtime.last_ts == forming_ts + (n - 1) * tf
        assert core_policies.calls == [1]  # one decision evaluated: the newest candle's
        assert ps.signal is not None and ps.signal.type is SignalType.HOLD
        assert "gap candle" in ps.signal.reasoning
        assert len(h.events.decisions) == n_decisions  # nothing journaled for it
        assert h.events.fills == [] and h.store.orders() == [] and not h.core.portfolio.positions
        said = [r.getMessage() for r in caplog.records if "after a feed pause" in r.getMessage()]
        assert said == [f"BTC/USDT - {n - 1} gap candle(s) after a feed pause: indicators updated, "
                        "only the newest candle evaluated"]
        # a candle with ticks in it is traded again: the strategy's BUY is decided
        for _ in range(2 * tf_s * 2 + 8):
            h.clock.advance(500)
            h.tick(BTC, 59_000.0)
            h.core.on_timer()
        assert any(d.action == "open_long" for d in h.events.decisions[n_decisions:])
    finally:
        core_policies.action[0] = 0


def test_with_the_timer_running_through_the_pause_the_returning_tick_decides_once(tmp_path: Path) -> None:
    """Live shape: the timer closes the last real candle 2 s after its end (decided as any
    candle with ticks); the gap candles come when the feed is back, all at once, and only the
    newest is decided on, without an entry."""
    tf_s = 5
    h = make_core(tmp_path, _cfg("policy"), timeframe_s=tf_s)
    _warm(h, tf_s)
    ps = h.core.pairs[BTC]
    core_policies.action[0] = 1
    core_policies.calls.clear()
    try:
        h.clock.advance(100)
        assert h.tick(BTC, 59_000.0)
        for _ in range(160):  # 80 s with no tick, the timer every half second
            h.clock.advance(500)
            h.core.on_timer()
        assert core_policies.calls == [1]  # the real candle, closed by the timer
        committed = ps.runtime.candles
        while not h.tick(BTC, 59_000.0):  # the feed is back (its jump confirmed)
            h.clock.advance(100)
    finally:
        core_policies.action[0] = 0
    assert core_policies.calls == [1, 1]  # and one decision for the whole gap
    assert ps.runtime.candles - committed >= 15
    opened = [d for d in h.events.decisions if d.action == "open_long"]
    assert [d.key for d in opened] in ([], [f"{BTC}|{T0_MS}|BUY"])  # only the candle with ticks
    assert len(h.events.fills) <= 1


def test_an_exit_on_the_newest_gap_candle_is_still_taken(tmp_path: Path) -> None:
    tf_s = 5
    db = tmp_path / "book.sqlite"
    seed_open_position(db, BTC, 0.004, 59_000.0)
    h = make_core(tmp_path, _cfg("policy"), db=db, timeframe_s=tf_s)
    _warm(h, tf_s)
    ps = h.core.pairs[BTC]
    core_policies.action[0] = 0
    try:
        for _ in range(12):
            h.clock.advance(500)
            assert h.tick(BTC, 59_000.0)
        bid, ask = ps.bid, ps.ask
        core_policies.action[0] = 2  # SELL: an exit of the long
        core_policies.calls.clear()
        h.clock.advance(80_000)
        h.core.on_timer()
    finally:
        core_policies.action[0] = 0
    assert core_policies.calls == [2]
    (fill,) = h.events.fills
    assert fill.reason == "signal" and fill.side == "sell" and fill.price == _sell_price(h, bid, ask)
    assert [d.action for d in h.events.decisions] == ["close_long"]
    assert BTC not in h.store.load_positions()


# ------------------------------------------------------------------ (e) the property


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(40, 300),
    wild=st.lists(
        st.tuples(
            st.integers(0, 299),
            st.sampled_from(["bid", "ask", "last", "all", "crossed"]),
            st.one_of(st.floats(1e-4, 0.9), st.floats(1.1, 1e4)),
        ),
        max_size=60,
    ),
    flattens=st.lists(st.integers(0, 299), max_size=8),
)
def test_no_fill_is_ever_priced_outside_the_band(
    seed: int, steps: int, wild: list[tuple[int, str, float]], flattens: list[int]
) -> None:
    """Random walks with wild prints anywhere (never two in a row, so none is ever confirmed),
    a strategy that buys on every candle, stops, targets and flattens: every wild print is
    quarantined, every real tick believed, and every fill lies inside the band around the
    last confirmed price."""
    outliers: dict[int, tuple[str, float]] = {}
    for i, kind, factor in sorted(wild):
        if i - 1 not in outliers and i + 1 not in outliers:
            outliers[i] = (kind, factor)
    rng = random.Random(seed)
    tf_s = 2
    core_policies.action[0] = 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            h = make_core(Path(tmp), _cfg("policy"), timeframe_s=tf_s)
            _warm(h, tf_s, seed=seed % 1000)
            ps = h.core.pairs[BTC]
            band = 1.0 + h.core.cfg.data.band_pct.STABLE
            price = confirmed = 59_000.0
            checked = 0
            for i in range(steps):
                h.clock.advance(250)
                price *= math.exp(rng.gauss(0.0, 0.002))
                half = price * 0.5e-4
                bid, ask, last = price - half, price + half, price
                if i in outliers:
                    kind, factor = outliers[i]
                    if kind in ("bid", "all"):
                        bid *= factor
                    if kind in ("ask", "all"):
                        ask *= factor
                    if kind in ("last", "all"):
                        last *= factor
                    if kind == "crossed":
                        bid, ask = ask * 1.0001, bid
                    assert h.core.on_tick(ps, h.clock.ms, bid, ask, last, 0.0) is False
                else:
                    assert h.core.on_tick(ps, h.clock.ms, bid, ask, last, 0.0) is True
                    confirmed = price
                if i in flattens:
                    h.core.command("flatten", BTC)
                h.core.on_timer()
                for f in h.events.fills[checked:]:
                    assert confirmed / band < f.price < confirmed * band, (f, confirmed)
                    assert ps.band.ref / band < f.price < ps.band.ref * band
                checked = len(h.events.fills)
            assert h.core.counters()["quarantined_ticks"] == len([i for i in outliers if i < steps])
            h.store.close()
    finally:
        core_policies.action[0] = 0


# ------------------------------------------------------------------ the band itself


def test_the_band_widens_with_the_silence_but_never_believes_a_wild_print() -> None:
    band = PriceBand(BTC, "STABLE", DataConfig())
    assert band.admit(59_000.0, 59_001.0, 59_000.0, 0.0)  # the first tick is believed
    assert not band.admit(64_000.0, 64_001.0, 64_000.0, 1.0)  # +8.5 % a second later
    # +15 % after 30 minutes of silence: inside 1.05 ** sqrt(30) (about 1.31)
    later = 1.0 + 30 * WIDENS_AFTER_S
    assert band.admit(67_850.0, 67_851.0, 67_850.0, later)
    # a print at 100 after a whole day of silence is still far outside (1.05 ** 38 is about 6)
    assert not band.admit(100.0, 100.01, 100.0, later + 86_400.0)


def test_the_band_starts_from_the_warm_up_close_and_follows_its_tier() -> None:
    meme = PriceBand("PEPE/USDT", "MEME", DataConfig())
    assert meme.admit(1.2, 1.2001, 1.2, 0.0, seed=1.0)  # +20 %: inside MEME's 25 %
    stable = PriceBand(BTC, "STABLE", DataConfig())
    assert not stable.admit(1.2, 1.2001, 1.2, 0.0, seed=1.0)  # outside STABLE's 5 %
    assert stable.ref == 1.0 and stable.quarantined == 1


def test_the_confirmation_waits_for_both_the_ticks_and_the_time() -> None:
    band = PriceBand(BTC, "STABLE", DataConfig(confirm_ticks=4, confirm_s=3.0))
    band.admit(100.0, 100.0, 100.0, 0.0)
    # many agreeing ticks within a second: not enough time
    assert not any(band.admit(80.0, 80.0, 80.0, 0.1 * k) for k in range(1, 10))
    assert band.admit(80.0, 80.0, 80.0, 3.1)  # the chain began at 0.1 s: 3 s later, believed
    band.admit(80.0, 80.0, 80.0, 4.0)
    # time enough, too few ticks: a tick at 5 s and another at 20 s are two, not four
    assert not band.admit(60.0, 60.0, 60.0, 5.0) and not band.admit(60.0, 60.0, 60.0, 20.0)
    # a print that disagrees with the chain starts it again
    assert not band.admit(30.0, 30.0, 30.0, 21.0) and not band.admit(60.0, 60.0, 60.0, 22.0)


@pytest.mark.parametrize(
    ("kind", "qty", "ticks", "refused"),
    [
        (SignalType.BUY, 0.0, 0, True),  # an entry on a gap candle
        (SignalType.BUY, 0.5, 0, True),  # adding to a long is an entry too
        (SignalType.SELL, 0.0, 0, True),  # a short entry (futures)
        (SignalType.SELL, -0.5, 0, True),
        (SignalType.SELL, 0.5, 0, False),  # the exit of a long is taken
        (SignalType.BUY, -0.5, 0, False),  # the exit of a short is taken
        (SignalType.HOLD, 0.0, 0, False),
        (SignalType.BUY, 0.0, 3, False),  # a candle with ticks trades as ever
    ],
)
def test_a_gap_candle_gives_exits_and_never_entries(kind: SignalType, qty: float, ticks: int, refused: bool) -> None:
    candle = Candle(T0_MS, 100.0, 100.0, 100.0, 100.0, 0.0, ticks)
    assert gap_entry(candle, Signal(BTC, kind, 0.9, 100.0), qty) is refused


def test_the_data_section_of_the_safe_list() -> None:
    cfg = _cfg(data={"band_pct": {"MEME": 0.4}, "confirm_ticks": 5, "confirm_s": 1.5})
    assert (cfg.data.band_pct.STABLE, cfg.data.band_pct.MEME) == (0.05, 0.4)
    assert (cfg.data.confirm_ticks, cfg.data.confirm_s) == (5, 1.5)
    assert _cfg().data == DataConfig()
    base = "version: 1\nportfolio: {capital_usd: 1000}\npairs:\n  BTC/USDT: {tier: STABLE, strategy: momentum, max_position_size_usd: 100}\n"
    for bad, where in [
        ("data: {band: 0.1}", "data.band: unknown key"),
        ("data: {band_pct: {STABLE: 0.0}}", "data.band_pct.STABLE"),
        ("data: {band_pct: {STABLE: 2}}", "data.band_pct.STABLE"),
        ("data: {band_pct: {COIN: 0.1}}", "data.band_pct.COIN: unknown key"),
        ("data: {confirm_ticks: 1}", "data.confirm_ticks"),
        ("data: {confirm_s: -1}", "data.confirm_s"),
    ]:
        with pytest.raises(ConfigError) as err:
            parse_safe_list(base + bad + "\n", "s.yaml")
        assert any(p.startswith(f"s.yaml: {where}") for p in err.value.problems), err.value.problems


def test_default_bands_never_quarantine_a_wide_real_candle(tmp_path: Path) -> None:
    """A backtest candle's four ticks (open, low, high, close) span its whole range: a 4.5 %
    one-minute BTC candle, rare as it is, passes STABLE's band whole."""
    h = make_core(tmp_path, _cfg())
    for o, lo, hi, c in [(59_000.0, 57_900.0, 60_500.0, 60_300.0), (60_300.0, 58_000.0, 60_400.0, 58_100.0)]:
        for p in (o, lo, hi, c):
            h.clock.advance(15_000)
            assert h.tick(BTC, p)
    assert h.core.counters()["quarantined_ticks"] == 0


# ------------------------------------------------------------------ the engine node


def test_the_node_counts_a_quarantined_tick_as_bad_but_not_as_a_feed_gap(tmp_path: Path) -> None:
    """A wild price comes in a sound frame: the heartbeat's ``bad`` counts it, the pair's
    sequence numbers go on (no lost message is invented), and nothing trades on it."""
    class NoHistory:
        def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
            return []

    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    clock = FakeClock()
    node = EngineNode(_cfg(), tmp_path / "book.sqlite", ends, clock=clock, history=NoHistory(), context=ctx)
    try:
        for seq, bid in enumerate([59_000.0, 59_001.0, 100.0, 59_002.0, 59_000.0], start=1):
            clock.advance(500)
            tick = Tick(BTC, seq, clock.ms, 0, bid, max(bid, 59_003.0), 59_000.0, 10.0, 1e6)
            node.on_message(BTC.encode(), encode_tick(tick))
        st = node.stats[BTC]
        assert (node.ticks_total, node.bad_total, st.gaps, st.expected_seq) == (4, 1, 0, 6)
        assert node.counters()["quarantined_ticks"] == 1
        assert node.core.pairs[BTC].bid == 59_000.0 and node.core.pairs[BTC].ticks == 4
    finally:
        node.close()
        ctx.term()
