"""The risk pipeline: every check passing and failing, the seed's exposure example exactly,
exits, and hypothesis properties over random sequences of signals, prices and fills:
exposure never above the cap after an approved entry, no correlated cluster above the max,
no position above its max size, and the equity identity at every step.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.core.clock import Clock
from engine.core.config import SafeList
from engine.core.correlation import CorrelationTracker
from engine.core.markets import DEFAULT_RULES, MarketRules
from engine.core.models import PairMode, Position, Side, Signal, SignalType
from engine.core.portfolio import Portfolio
from engine.core.risk import CHECKS, RiskContext, RiskEngine
from engine.execution.paper import PaperExecutionClient

PRICES = {"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0, "DOGE/USDT": 0.2}
RULES = {**DEFAULT_RULES, "DOGE/USDT": MarketRules(1.0, 0.00001, 1.0, 5.0)}


def _cfg(**portfolio: Any) -> SafeList:
    pf = {
        "capital_usd": 10_000,
        "max_total_exposure": 0.10,
        "max_correlated_positions": 2,
        "min_confidence": 0.60,
        "risk_per_trade_usd": 25,
        "atr_multiplier": 2.0,
        "correlation_groups": [["BTC/USDT", "ETH/USDT"]],
        **portfolio,
    }
    pairs = {
        "BTC/USDT": {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500},
        "ETH/USDT": {"tier": "STABLE", "strategy": "mean_reversion", "max_position_size_usd": 600},
        "SOL/USDT": {"tier": "VOLATILE", "strategy": "breakout", "max_position_size_usd": 400,
                     "market": "futures", "leverage": 2},
        "DOGE/USDT": {"tier": "MEME", "strategy": "breakout", "max_position_size_usd": 300,
                      "market": "futures", "leverage": 3},
    }
    return SafeList.model_validate({"portfolio": pf, "pairs": pairs})


def _buy(symbol: str, price: float | None = None, conf: float = 0.7, stop_frac: float = 0.02) -> Signal:
    p = PRICES[symbol] if price is None else price
    return Signal(symbol, SignalType.BUY, conf, p, p * (1 - stop_frac), p * (1 + 2 * stop_frac), "test", ts=1)


def _sell(symbol: str, price: float | None = None, conf: float = 0.7, stop_frac: float = 0.02) -> Signal:
    p = PRICES[symbol] if price is None else price
    return Signal(symbol, SignalType.SELL, conf, p, p * (1 + stop_frac), p * (1 - 2 * stop_frac), "test", ts=1)


def _ctx(positions: dict[str, Position] | None = None, **kw: Any) -> RiskContext:
    # small ATRs so that sizing is capped by max_position_size_usd unless a test says otherwise
    atr = {"BTC/USDT": 100.0, "ETH/USDT": 10.0, "SOL/USDT": 0.5, "DOGE/USDT": 0.0005}
    base: dict[str, Any] = {"positions": positions or {}, "marks": dict(PRICES), "atr": atr, "equity": 10_000.0,
                            "cash": 10_000.0}
    base.update(kw)
    return RiskContext(**base)


def _check(decision: Any, name: str) -> Any:
    return next(c for c in decision.checks if c.name == name)


# ------------------------------------------------------------------- the seed's example


def test_seed_example_btc_500_open_eth_600_rejected_by_total_exposure(caplog: pytest.LogCaptureFixture) -> None:
    risk = RiskEngine(_cfg(), RULES)
    btc = Position("BTC/USDT", qty=0.01, entry=50_000.0)  # $500 open
    caplog.set_level(logging.INFO, logger="engine.core.risk")
    d = risk.evaluate(_buy("ETH/USDT"), _ctx({"BTC/USDT": btc}), "ETH/USDT|1|BUY")
    assert [c.name for c in d.checks] == list(CHECKS)
    assert not d.approved and d.action == "open_long"
    assert d.reasons == ["Total exposure $1100.00 would exceed max $1000.00"]
    assert "0.2 units ($600.00)" in _check(d, "sizing").reason
    assert "ETH/USDT - Signal: BUY (confidence: 70%)" in caplog.text
    assert "ETH/USDT - Portfolio REJECTED: Total exposure $1100.00 would exceed max $1000.00" in caplog.text


def test_seed_example_approved_when_it_fits(caplog: pytest.LogCaptureFixture) -> None:
    risk = RiskEngine(_cfg(max_total_exposure=0.15), RULES)
    btc = Position("BTC/USDT", qty=0.01, entry=50_000.0)
    caplog.set_level(logging.INFO, logger="engine.core.risk")
    d = risk.evaluate(_buy("ETH/USDT"), _ctx({"BTC/USDT": btc}), "k")
    assert d.approved and d.reasons == [] and d.qty == pytest.approx(0.2) and d.price == 3_000.0
    assert all(c.ok and c.reason for c in d.checks)
    assert "Portfolio approved (exposure: $1100.00/$1500.00)" in caplog.text


# -------------------------------------------------------------------------- each check


def test_every_check_runs_and_reports_after_a_failure() -> None:
    risk = RiskEngine(_cfg(), RULES)
    bad = Signal("BTC/USDT", SignalType.BUY, 0.1, 50_000.0, 51_000.0, 0.0, ts=5)
    d = risk.evaluate(bad, _ctx(modes={"BTC/USDT": PairMode.PAUSED}, stale={"BTC/USDT": True}, atr={}), "k")
    failed = [c.name for c in d.checks if not c.ok]
    assert failed == ["valid_stop", "min_confidence", "pair_mode", "data_fresh", "sizing"]
    assert len(d.checks) == len(CHECKS) and not d.approved and d.qty == 0.0
    assert len(d.reasons) == 5 and all(d.reasons)


@pytest.mark.parametrize(
    ("signal", "ok", "text"),
    [
        (_buy("BTC/USDT"), True, "stop 49000"),
        (Signal("BTC/USDT", SignalType.BUY, 0.7, 50_000.0, 50_000.0, 0.0), False, "must be below entry"),
        (Signal("BTC/USDT", SignalType.BUY, 0.7, 50_000.0, 49_000.0, 49_500.0), False, "take profit 49500 must be above"),
        (Signal("BTC/USDT", SignalType.BUY, 0.7, 50_000.0, 0.0, 0.0), False, "stop loss 0.0 is missing"),
        (Signal("BTC/USDT", SignalType.BUY, 0.7, 50_000.0, 49_000.0, 0.0), True, "entry 50000"),  # no target
        (_sell("SOL/USDT"), True, "target 144"),
        (Signal("SOL/USDT", SignalType.SELL, 0.7, 150.0, 149.0, 140.0), False, "must be above entry 150 for a short"),
        (Signal("SOL/USDT", SignalType.SELL, 0.7, 150.0, 155.0, 151.0), False, "must be below entry"),
    ],
)
def test_valid_stop(signal: Signal, ok: bool, text: str) -> None:
    d = RiskEngine(_cfg(), RULES).evaluate(signal, _ctx(), "k")
    c = _check(d, "valid_stop")
    assert c.ok is ok and text in c.reason
    assert d.approved is ok  # everything else passes for these signals


@pytest.mark.parametrize(("conf", "ok"), [(0.59, False), (0.60, True), (1.0, True), (float("nan"), False)])
def test_min_confidence(conf: float, ok: bool) -> None:
    d = RiskEngine(_cfg(), RULES).evaluate(_buy("BTC/USDT", conf=conf), _ctx(), "k")
    c = _check(d, "min_confidence")
    assert c.ok is ok and d.approved is ok
    if not ok:
        assert "below minimum 60%" in c.reason


@pytest.mark.parametrize("mode", [PairMode.PAUSED, PairMode.REDUCING, PairMode.HALTED])
def test_pair_mode_blocks_entries_not_exits(mode: PairMode) -> None:
    risk = RiskEngine(_cfg(), RULES)
    modes = {"BTC/USDT": mode}
    d = risk.evaluate(_buy("BTC/USDT"), _ctx(modes=modes), "k")
    assert not d.approved and d.reasons == [f"pair is {mode}: no new entries"]
    held = {"BTC/USDT": Position("BTC/USDT", qty=0.004, entry=48_000.0)}
    ex = risk.evaluate(_sell("BTC/USDT", conf=0.1), _ctx(held, modes=modes, stale={"BTC/USDT": True}), "k2")
    assert ex.approved and ex.action == "close_long" and ex.qty == 0.004
    assert [c.name for c in ex.checks] == list(CHECKS) and all(c.ok for c in ex.checks)
    assert "allowed on stale data" in _check(ex, "data_fresh").reason


def test_active_mode_passes() -> None:
    d = RiskEngine(_cfg(), RULES).evaluate(_buy("BTC/USDT"), _ctx(modes={"BTC/USDT": PairMode.ACTIVE}), "k")
    assert _check(d, "pair_mode").ok and d.approved


def test_data_fresh() -> None:
    risk = RiskEngine(_cfg(), RULES)
    stale = risk.evaluate(_buy("BTC/USDT"), _ctx(stale={"BTC/USDT": True}), "k")
    assert not stale.approved and "STALE" in _check(stale, "data_fresh").reason
    fresh = risk.evaluate(_buy("BTC/USDT"), _ctx(stale={"BTC/USDT": False, "ETH/USDT": True}), "k")
    assert fresh.approved


def test_market_type_spot_is_long_only_futures_may_short() -> None:
    risk = RiskEngine(_cfg(), RULES)
    spot = risk.evaluate(_sell("BTC/USDT"), _ctx(), "k")
    assert spot.action == "open_short" and not spot.approved
    assert spot.reasons == ["spot pair cannot open a short"]
    fut = risk.evaluate(_sell("SOL/USDT"), _ctx(), "k")
    assert fut.approved and fut.action == "open_short" and fut.qty > 0
    held_short = {"SOL/USDT": Position("SOL/USDT", qty=-2.0, entry=150.0)}
    cover = risk.evaluate(_buy("SOL/USDT"), _ctx(held_short), "k")
    assert cover.approved and cover.action == "close_short" and cover.qty == 2.0


def test_sizing_by_atr_risk() -> None:
    risk = RiskEngine(_cfg(), RULES)
    # 25 / (ATR 1000 × 2) = 0.0125 BTC = $625 > $500 cap; ATR 2500 -> 0.005 BTC = $250
    d = risk.evaluate(_buy("BTC/USDT"), _ctx(atr={"BTC/USDT": 2_500.0}), "k")
    assert d.approved and d.qty == 0.005 and "by risk $25/(ATR 2500×2)" in _check(d, "sizing").reason
    # 25 / (7 × 2) = 1.7857... ETH, floored to the 0.0001 step; capped at $600/3000 = 0.2 -> use ATR 70
    d = risk.evaluate(_buy("ETH/USDT"), _ctx(atr={"ETH/USDT": 70.0}), "k")
    assert d.qty == 0.1785  # 0.178571... floored, never rounded up


def test_sizing_caps() -> None:
    risk = RiskEngine(_cfg(max_total_exposure=1.0), RULES)
    d = risk.evaluate(_buy("BTC/USDT"), _ctx(), "k")
    assert d.qty == 0.01 and "max size $500.00" in _check(d, "sizing").reason
    poor = risk.evaluate(_buy("BTC/USDT"), _ctx(cash=100.0), "k")
    assert poor.approved and poor.qty * 50_000 <= 100.0 and "cash $100.00" in _check(poor, "sizing").reason
    # futures: leverage 2 × equity $150 = $300 < $400 max size
    lev = risk.evaluate(_buy("SOL/USDT"), _ctx(equity=150.0), "k")
    assert lev.approved and lev.qty == 2.0 and "leverage 2×equity $150.00" in _check(lev, "sizing").reason
    # adding to a position only fills the room left under max size
    held = {"BTC/USDT": Position("BTC/USDT", qty=0.006, entry=50_000.0)}
    add = risk.evaluate(_buy("BTC/USDT"), _ctx(held), "k")
    assert add.approved and add.action == "open_long" and add.qty == pytest.approx(0.004)
    full = {"BTC/USDT": Position("BTC/USDT", qty=0.01, entry=50_000.0)}
    rej = risk.evaluate(_buy("BTC/USDT"), _ctx(full), "k")
    assert not rej.approved and "already at max size $500.00" in _check(rej, "sizing").reason


def test_sizing_rejects_missing_atr_and_below_exchange_minimum() -> None:
    risk = RiskEngine(_cfg(), RULES)
    for atr in ({}, {"BTC/USDT": None}, {"BTC/USDT": 0.0}, {"BTC/USDT": float("nan")}):
        d = risk.evaluate(_buy("BTC/USDT"), _ctx(atr=atr), "k")
        assert not d.approved and "insufficient data for ATR" in _check(d, "sizing").reason
    # 25 / (ATR 200000 × 2) = 0.0000625 BTC -> 0.00006 = $3.00 < $5 min notional
    tiny = risk.evaluate(_buy("BTC/USDT"), _ctx(atr={"BTC/USDT": 200_000.0}), "k")
    c = _check(tiny, "sizing")
    assert not c.ok and "notional $3.00 below exchange minimum $5.00" in c.reason
    dust = risk.evaluate(_buy("BTC/USDT"), _ctx(atr={"BTC/USDT": 5e6}), "k")
    assert "rounds to 0" in _check(dust, "sizing").reason


def test_total_exposure_counts_every_open_position_at_its_mark() -> None:
    risk = RiskEngine(_cfg(), RULES)
    held = {
        "SOL/USDT": Position("SOL/USDT", qty=-2.0, entry=140.0),  # short counts by |qty|: $300 at mark 150
        "DOGE/USDT": Position("DOGE/USDT", qty=500.0, entry=0.25),  # no mark: valued at entry, $125
    }
    marks = {k: v for k, v in PRICES.items() if k != "DOGE/USDT"}
    ok = risk.evaluate(_buy("BTC/USDT"), _ctx(held, marks=marks, atr={"BTC/USDT": 2_500.0}), "k")
    assert ok.approved and "exposure $675.00/$1000.00" in _check(ok, "total_exposure").reason
    no = risk.evaluate(_buy("ETH/USDT"), _ctx(held, marks=marks), "k")  # + $600
    assert no.reasons == ["Total exposure $1025.00 would exceed max $1000.00"]


def test_total_exposure_exact_boundary() -> None:
    risk = RiskEngine(_cfg(), RULES)
    held = {"ETH/USDT": Position("ETH/USDT", qty=0.1666, entry=3_000.0)}  # $499.80
    d = risk.evaluate(_buy("BTC/USDT"), _ctx(held), "k")  # + $500.00 = $999.80
    assert d.approved
    held = {"ETH/USDT": Position("ETH/USDT", qty=0.1667, entry=3_000.0)}  # $500.10
    d = risk.evaluate(_buy("BTC/USDT"), _ctx(held), "k")
    assert d.reasons == ["Total exposure $1000.10 would exceed max $1000.00"]


def test_correlation_configured_group() -> None:
    risk = RiskEngine(_cfg(max_correlated_positions=1, max_total_exposure=1.0), RULES)
    btc = {"BTC/USDT": Position("BTC/USDT", qty=0.001, entry=50_000.0)}
    d = risk.evaluate(_buy("ETH/USDT"), _ctx(btc), "k")
    assert d.reasons == ["2 correlated positions (BTC/USDT, ETH/USDT) would exceed max 1"]
    # SOL is in no group and not live-correlated
    assert risk.evaluate(_buy("SOL/USDT"), _ctx(btc), "k").approved


def test_correlation_live_peers_and_the_peers_own_cluster() -> None:
    risk = RiskEngine(_cfg(max_total_exposure=1.0, correlation_groups=[]), RULES)
    live = {("SOL/USDT", "DOGE/USDT"), ("SOL/USDT", "BTC/USDT")}  # DOGE and BTC not correlated

    def correlated_with(sym: str) -> set[str]:
        return {b for a, b in live if a == sym} | {a for a, b in live if b == sym}

    held = {
        "SOL/USDT": Position("SOL/USDT", qty=1.0, entry=150.0),
        "DOGE/USDT": Position("DOGE/USDT", qty=100.0, entry=0.2),
    }
    # BTC's own cluster is {SOL, BTC} = 2, but SOL's would become {SOL, DOGE, BTC} = 3
    d = risk.evaluate(_buy("BTC/USDT"), _ctx(held, correlated_with=correlated_with), "k")
    assert d.reasons == ["3 correlated positions (BTC/USDT, DOGE/USDT, SOL/USDT) would exceed max 2"]
    ok = risk.evaluate(_buy("ETH/USDT"), _ctx(held, correlated_with=correlated_with), "k")
    assert ok.approved and "1/2 correlated (ETH/USDT)" in _check(ok, "correlation").reason


def test_correlation_from_a_live_tracker_object() -> None:
    risk = RiskEngine(_cfg(max_correlated_positions=1, max_total_exposure=1.0, correlation_groups=[]), RULES)
    tracker = CorrelationTracker(SYMBOLS, 5, 0.8)
    for i in range(8):  # SOL and DOGE move in lockstep
        p = 1.0 + 0.01 * ((-1) ** i) * (i % 3)
        tracker.on_close("SOL/USDT", i * 60_000, 150.0 * p)
        tracker.on_close("DOGE/USDT", i * 60_000, 0.2 * p)
    assert tracker.correlated_with("SOL/USDT") == {"DOGE/USDT"}
    held = {"DOGE/USDT": Position("DOGE/USDT", qty=100.0, entry=0.2)}
    for cw in (tracker, tracker.correlated_with):
        d = risk.evaluate(_buy("SOL/USDT"), _ctx(held, correlated_with=cw), "k")
        assert d.reasons == ["2 correlated positions (DOGE/USDT, SOL/USDT) would exceed max 1"]
    assert risk.evaluate(_buy("SOL/USDT"), _ctx(held), "k").approved  # no tracker: groups only


def test_hold_and_unknown_symbol_are_rejected_with_every_check() -> None:
    risk = RiskEngine(_cfg(), RULES)
    hold = risk.evaluate(Signal("BTC/USDT", SignalType.HOLD), _ctx(), "k")
    assert not hold.approved and len(hold.checks) == len(CHECKS)
    unknown = risk.evaluate(Signal("XRP/USDT", SignalType.BUY, 0.9, 1.0, 0.9), _ctx(), "k")
    assert not unknown.approved and "not in the safe list" in unknown.reasons[0]


def test_exit_decision_closes_whole_position() -> None:
    risk = RiskEngine(_cfg(), RULES)
    short = Position("SOL/USDT", qty=-3.5, entry=150.0)
    sig = Signal("SOL/USDT", SignalType.BUY, 1.0, 152.0, reasoning="stop", ts=9)
    d = risk.exit_decision(sig, short, "SOL/USDT|stop|1", "stop")
    assert d.approved and d.action == "close_short" and d.qty == 3.5 and d.price == 152.0 and d.ts == 9
    assert [c.name for c in d.checks] == list(CHECKS) and all("stop" in c.reason for c in d.checks)


def test_decision_key_and_ts_come_through() -> None:
    d = RiskEngine(_cfg(), RULES).evaluate(_buy("BTC/USDT"), _ctx(), "BTC/USDT|60000|BUY")
    assert d.key == "BTC/USDT|60000|BUY" and d.ts == 1 and d.symbol == "BTC/USDT"


def test_largest_open_cluster_is_what_the_correlation_check_counts() -> None:
    risk = RiskEngine(_cfg(max_correlated_positions=2, max_total_exposure=1.0, correlation_groups=[]), RULES)
    live = {"SOL/USDT": {"DOGE/USDT", "BTC/USDT"}, "DOGE/USDT": {"SOL/USDT"}, "BTC/USDT": {"SOL/USDT"}}

    def correlated_with(sym: str) -> set[str]:
        return live.get(sym, set())

    assert risk.largest_open_cluster(_ctx(correlated_with=correlated_with)) == []
    held = {
        "SOL/USDT": Position("SOL/USDT", qty=1.0, entry=150.0),
        "DOGE/USDT": Position("DOGE/USDT", qty=-100.0, entry=0.2),  # shorts count too
        "ETH/USDT": Position("ETH/USDT", qty=0.0, entry=0.0),  # flat: not open
    }
    ctx = _ctx(held, correlated_with=correlated_with)
    assert risk.largest_open_cluster(ctx) == ["DOGE/USDT", "SOL/USDT"]
    # at the max: the check refuses BTC, whose entry would grow SOL's cluster to 3
    d = risk.evaluate(_buy("BTC/USDT"), ctx, "k")
    assert d.reasons == ["3 correlated positions (BTC/USDT, DOGE/USDT, SOL/USDT) would exceed max 2"]
    # configured groups count as well; uncorrelated open positions are clusters of one
    grouped = RiskEngine(_cfg(max_total_exposure=1.0), RULES)
    both = {"BTC/USDT": Position("BTC/USDT", qty=0.001, entry=50_000.0),
            "ETH/USDT": Position("ETH/USDT", qty=0.01, entry=3_000.0)}
    assert grouped.largest_open_cluster(_ctx(both)) == ["BTC/USDT", "ETH/USDT"]
    assert grouped.largest_open_cluster(_ctx({"SOL/USDT": held["SOL/USDT"]})) == ["SOL/USDT"]


# ------------------------------------------------------------------------- properties


class _NoClock(Clock):
    """The paper client's clock; ``fill`` is given its timestamp, so it is never read."""

    def time_ms(self) -> int:
        raise AssertionError("fill() takes its ts explicitly")

    def monotonic(self) -> float:
        raise AssertionError("not used")


SYMBOLS = list(PRICES)

_step = st.one_of(
    st.tuples(
        st.just("signal"),
        st.sampled_from(SYMBOLS),
        st.sampled_from([SignalType.BUY, SignalType.SELL]),
        st.floats(0.55, 1.0),  # confidence
        st.floats(0.0005, 0.05),  # ATR as a fraction of price
    ),
    st.tuples(st.just("move"), st.sampled_from(SYMBOLS), st.floats(0.8, 1.25)),
    st.tuples(st.just("stop"), st.sampled_from(SYMBOLS)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(_step, min_size=1, max_size=60),
    live_pairs=st.sets(st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(SYMBOLS)), max_size=4),
    max_corr=st.integers(1, 3),
    max_exposure=st.sampled_from([0.05, 0.10, 0.30, 1.0]),
    fee=st.sampled_from([0.0, 0.001]),
    slippage_bps=st.sampled_from([0.0, 1.0, 25.0]),
)
def test_property_caps_and_equity_identity(
    steps: list[tuple[Any, ...]],
    live_pairs: set[tuple[str, str]],
    max_corr: int,
    max_exposure: float,
    fee: float,
    slippage_bps: float,
) -> None:
    cfg = _cfg(max_correlated_positions=max_corr, max_total_exposure=max_exposure, taker_fee=fee,
               slippage_bps=slippage_bps)
    risk = RiskEngine(cfg, RULES)
    broker = PaperExecutionClient(fee, slippage_bps, RULES, _NoClock())
    pf = Portfolio(cfg.portfolio.capital_usd)

    def held(sym: str) -> float:
        pos = pf.positions.get(sym)
        return pos.qty if pos is not None else 0.0

    marks = dict(PRICES)
    atrs: dict[str, float] = {}
    groups = {s: set() for s in SYMBOLS}
    for a, b in live_pairs:
        if a != b:
            groups[a].add(b)
            groups[b].add(a)
    for g in cfg.portfolio.correlation_groups:
        for s in g:
            groups[s].update(x for x in g if x != s)

    def correlated_with(sym: str) -> set[str]:
        return groups[sym]

    for n, step in enumerate(steps):
        kind, sym = step[0], step[1]
        if kind == "move":
            marks[sym] = marks[sym] * step[2]
        elif kind == "stop":
            pos = pf.positions.get(sym)
            if pos is not None and pos.is_open:
                sig = Signal(sym, SignalType.SELL if pos.qty > 0 else SignalType.BUY, 1.0, marks[sym], ts=n)
                d = risk.exit_decision(sig, pos, f"{sym}|stop|{n}", "stop")
                side = Side.SELL if d.action == "close_long" else Side.BUY
                pf.apply_fill(broker.fill(f"o{n}", sym, side, d.qty, marks[sym], marks[sym], n, "stop"))
                assert held(sym) == 0.0
        else:
            _, _, typ, conf, atr_frac = step
            price = marks[sym]
            atrs[sym] = price * atr_frac
            stop = price * (1 - 2 * atr_frac) if typ is SignalType.BUY else price * (1 + 2 * atr_frac)
            sig = Signal(sym, typ, conf, price, stop, 0.0, ts=n)
            ctx = RiskContext(
                positions=pf.positions, marks=marks, atr=atrs, correlated_with=correlated_with,
                equity=pf.equity(marks), cash=pf.cash,
            )
            before_exposure = pf.exposure(marks)
            d = risk.evaluate(sig, ctx, f"{sym}|{n}|{typ}")
            assert len(d.checks) == len(CHECKS)
            assert d.approved == all(c.ok for c in d.checks)
            event("approved " + d.action if d.approved else "rejected")
            for c in d.checks:
                if not c.ok:
                    event("failed " + c.name)  # shows what the random runs exercise
            if d.approved:
                side = Side.BUY if d.action in ("open_long", "close_short") else Side.SELL
                bid, ask = price * 0.9999, price
                fill = broker.fill(f"o{n}", sym, side, d.qty, bid, ask, n)
                assert fill.qty == d.qty  # the risk engine already floored to the step
                pf.apply_fill(fill)
                if d.action.startswith("close"):
                    assert held(sym) == 0.0
                else:
                    cap = cfg.portfolio.max_exposure_usd
                    assert pf.exposure(marks) <= cap + 1e-6
                    assert pf.exposure(marks) == pytest.approx(before_exposure + d.qty * price)
                    assert abs(held(sym)) * price <= cfg.pair(sym).max_position_size_usd + 1e-6
                    if cfg.pair(sym).market == "spot":
                        assert held(sym) > 0 and pf.cash >= -1e-6
                    open_syms = {s for s, p in pf.positions.items() if p.qty != 0}
                    for s in open_syms:
                        assert len(open_syms & (groups[s] | {s})) <= max_corr
                    # the gauge's cluster is what the check counts: never above the max either
                    cluster = risk.largest_open_cluster(ctx)
                    assert len(cluster) <= max_corr and sym in open_syms
                    assert len(cluster) == max(len(open_syms & (groups[s] | {s})) for s in open_syms)
        # the accounting identity, at every step
        eq = pf.equity(marks)
        assert eq == pytest.approx(pf.cash + sum(p.qty * marks[s] for s, p in pf.positions.items()), abs=1e-6)
        assert eq == pytest.approx(pf.capital + pf.realised - pf.fees + pf.unrealised(marks), abs=1e-6)
