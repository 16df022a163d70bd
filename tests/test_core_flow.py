"""The trading core in process: the seed's flow for every strategy, stops, operator commands,
and the accounting identity, with a fake clock, the paper client and a real SQLite journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.candles import Candle
from engine.core.models import PairMode
from engine.core.orders import OrderStatus, client_order_id
from engine.core.risk import CHECKS
from tests import core_policies
from tests.core_harness import Walk, make_core, safe_list
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(60)


def _identity_holds(h) -> None:  # type: ignore[no-untyped-def]
    pf, marks = h.core.portfolio, h.core.marks()
    lhs = pf.equity(marks)
    rhs = pf.capital + pf.realised - pf.fees + pf.unrealised(marks)
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("strategy", ["momentum", "mean_reversion", "breakout"])
def test_signal_checks_portfolio_then_execute_or_reject(tmp_path: Path, strategy: str) -> None:
    """Signal → individual checks → portfolio checks → order journaled → fill, for each
    strategy, on the path production takes; the accounting identity holds at every step."""
    h = make_core(tmp_path, safe_list({"SOL/USDT": strategy}), timeframe_s=2)
    walk = Walk(h, seed=7, step_ms=100, sd=0.002)
    steps = walk.run(40_000, until=lambda: len(h.events.fills) >= 2, every=lambda: _identity_holds(h))
    assert len(h.events.fills) >= 2, f"{strategy}: no trade in {steps} steps"

    journaled = {o.client_order_id: o for o in h.store.orders()}
    stored = {d.key: d for d in h.store.recent_decisions(limit=1000)}
    entries = [d for d in h.events.decisions if d.action.startswith("open_")]
    assert entries, "no entry decision"
    for d in h.events.decisions:
        assert d.key in stored  # every decision is in the book, approved or not
        assert [c.name for c in d.checks] == list(CHECKS)
    for d in entries:
        cid = client_order_id(d.key)
        if d.approved:
            assert all(c.ok for c in d.checks)
            order = journaled[cid]
            assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(d.qty)
            assert order.stop_loss == d.signal.stop_loss and order.take_profit == d.signal.take_profit
        else:
            assert cid not in journaled and d.reasons
    opened = [f for f in h.events.fills if f.reason == "signal" and f.side == "buy"]
    assert opened
    # the first entry's protective levels were attached to the position it opened
    first = next(d for d in entries if d.approved)
    assert journaled[client_order_id(first.key)].stop_loss < first.signal.entry


def test_paused_pair_decides_but_never_orders(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list({"SOL/USDT": "breakout"}), timeframe_s=2)
    assert h.core.command("pause", "SOL/USDT").ok
    Walk(h, seed=7, step_ms=100, sd=0.002).run(40_000, until=lambda: any(d.action == "open_long" for d in h.events.decisions))
    d = next(d for d in h.events.decisions if d.action == "open_long")
    assert not d.approved
    assert dict((c.name, c.reason) for c in d.checks)["pair_mode"] == "pair is PAUSED: no new entries"
    assert h.store.orders() == []


@pytest.mark.parametrize(("price", "reason"), [(58_000.0, "stop"), (63_000.0, "take_profit")])
def test_stop_and_take_profit_close_the_whole_position(tmp_path: Path, price: float, reason: str) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", 0.004, 60_000.0, stop=59_000.0, target=62_000.0)
    h = make_core(tmp_path, safe_list({"BTC/USDT": "momentum"}), db=db)
    assert h.tick("BTC/USDT", 60_500.0)  # inside the band: nothing happens
    assert h.store.load_positions()["BTC/USDT"].qty == 0.004
    h.clock.advance(100)
    h.tick("BTC/USDT", price)
    assert "BTC/USDT" not in h.store.load_positions()
    (fill,) = h.events.fills
    assert fill.reason == reason and fill.side == "sell" and fill.qty == 0.004
    exit_decision = h.events.decisions[-1]
    assert exit_decision.action == "close_long" and exit_decision.approved
    assert exit_decision.key.startswith(f"BTC/USDT|{reason}|")  # one key per position and reason
    _identity_holds(h)


def test_flatten_kill_and_rearm(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", 0.004, 60_000.0)
    seed_open_position(db, "ETH/USDT", 0.1, 3_000.0)
    h = make_core(tmp_path, safe_list({"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion"}), db=db)
    h.tick("BTC/USDT", 60_100.0)
    h.tick("ETH/USDT", 3_010.0)

    r = h.core.command("flatten", "BTC/USDT")
    assert r.ok and r.message.startswith("BTC/USDT flattened: sell 0.004 @ ")
    again = h.core.command("flatten", "BTC/USDT")
    assert again.ok and again.noop and again.message == "nothing to do: BTC/USDT is already flat"
    assert h.core.command("flatten", "XRP/USDT").ok is False

    r = h.core.command("kill")
    assert r.ok and r.message == "all pairs HALTED, 1 position(s) flattened"
    assert h.store.load_positions() == {}
    assert set(h.store.load_modes().values()) == {PairMode.HALTED}
    assert h.core.portfolio_summary().halted
    assert not h.core.command("pause", "ETH/USDT").ok  # HALTED until re-armed
    assert [e["kind"] for e in h.store.recent_events()] == ["kill"]

    r = h.core.command("rearm")
    assert r.ok and r.message == "re-armed 2 pair(s)"
    assert set(h.core.modes().values()) == {"ACTIVE"} and not h.core.portfolio_summary().halted
    assert {f.reason for f in h.events.fills} == {"flatten", "kill"}
    _identity_holds(h)


def test_modes_survive_a_restart(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list({"BTC/USDT": "momentum"}))
    h.core.command("pause", "BTC/USDT")
    h2 = h.reopen()
    assert h2.core.modes() == {"BTC/USDT": "PAUSED"}


def test_policy_strategy_sees_the_live_portfolio(tmp_path: Path) -> None:
    """The policy's state vector carries exposure and daily PnL from the core (it was always
    0 before the core wired it)."""
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", 0.004, 60_000.0)
    cfg = safe_list({"BTC/USDT": "momentum", "SOL/USDT": "policy"})
    data = cfg.model_dump()
    data["pairs"]["SOL/USDT"]["params"]["policy"] = "tests.core_policies:hold_and_record"
    cfg = type(cfg).model_validate(data)
    core_policies.seen.clear()
    h = make_core(tmp_path, cfg, db=db, timeframe_s=2)
    Walk(h, seed=3, step_ms=200).run(400, until=lambda: len(core_policies.seen) > 0)
    assert core_policies.seen, "the policy was never asked"
    state = core_policies.seen[-1]
    exposure = h.core.portfolio.exposure(h.core.marks()) / 10_000
    assert state[3] == pytest.approx(exposure, rel=0.05) and state[3] > 0.01


def test_warm_up_goes_through_the_live_path(tmp_path: Path) -> None:
    """History warms the strategy's own state too: the breakout's volume average is ready."""
    h = make_core(tmp_path, safe_list({"SOL/USDT": "breakout"}))
    candles = [Candle(i * 60_000, 100.0, 101.0, 99.0, 100.0 + (i % 3), 50.0 + i) for i in range(30)]
    assert h.core.warm_pair("SOL/USDT", candles) == 30
    strat = h.core.pairs["SOL/USDT"].runtime.strategy
    assert strat.volume_average is not None  # type: ignore[attr-defined]
    ps = h.core.pairs["SOL/USDT"]
    assert ps.ind.atr is not None and ps.bid == ps.ask == candles[-1].close
