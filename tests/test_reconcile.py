"""Reconciliation through the real core and book (engine/core/reconcile.py): views of the
exchange are built here as the live client builds them (tests/test_live_reconcile.py asks the
local exchange for them); every rule is checked on what the book then holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.models import Fill, PairMode, Side
from engine.core.orders import Order, OrderStatus, client_order_id
from engine.core.reconcile_view import ReconcileReport, VenueOrder, VenueView
from tests.core_harness import Harness, make_core
from tests.test_protective_stops import SYM, RestingVenue, _core, _open_long

pytestmark = pytest.mark.timeout(30)


def _view(h: Harness, **kw: object) -> VenueView:
    base = {"ts": h.clock.ms, "started_ts": h.clock.ms - 5_000, "symbols": (SYM,), "markets": {SYM: "spot"}}
    return VenueView(**{**base, **kw})  # type: ignore[arg-type]


def _stop_at_venue(venue: RestingVenue) -> tuple[VenueOrder, ...]:
    return tuple(VenueOrder(o.symbol, cid, str(o.side), o.qty, type="STOP_LOSS_LIMIT", trigger=o.trigger)
                 for cid, o in venue.resting.items())  # fmt: skip


def _settled(h: Harness) -> None:
    h.clock.advance(10_000)  # the entry's fill is older than the fetch


def _equity_adds_up(h: Harness) -> None:
    pf = h.core.portfolio
    marks = {s: (p.bid + p.ask) / 2 for s, p in h.core.pairs.items() if p.bid}
    acct = h.store.load_account()
    assert acct is not None and acct["cash"] == pytest.approx(pf.cash)
    cash = 10_000.0
    for f in h.store.fills():
        cash -= (1 if f.side is Side.BUY else -1) * f.qty * f.price + f.fee
    assert pf.cash == pytest.approx(cash, rel=1e-12)
    assert pf.equity(marks) == pytest.approx(pf.cash + sum(p.qty * marks.get(s, p.entry)
                                             for s, p in pf.positions.items() if p.is_open))  # fmt: skip


def test_all_agree_nothing_halts_and_entries_wait_for_the_first_check(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    h.core.reconciler.expect_start()
    assert h.core.reconciler.blocks_entries
    _open_long(h, venue)
    _settled(h)
    r = h.core.reconciler.apply(_view(h, open_orders=_stop_at_venue(venue), balances={"BTC": 0.005}), "start")
    (c,) = r.pairs
    assert c.verdict == "ok" and not c.mismatches and h.core.pairs[SYM].mode is PairMode.ACTIVE
    assert not h.core.reconciler.blocks_entries
    stored = h.store.latest_reconciliation()
    assert stored is not None and stored[1]["pairs"][0]["verdict"] == "ok"


def test_a_stop_that_filled_while_the_engine_was_down_is_booked(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    (cid,) = venue.resting
    _settled(h)
    fill = Fill("binance:BTCUSDT:77", cid, SYM, Side.SELL, 0.005, 58_900.0, 0.06, h.clock.ms - 8_000, "stop")
    r = h.core.reconciler.apply(_view(h, fills=(fill,), balances={"BTC": 0.0}), "start")
    (c,) = r.pairs
    assert c.verdict == "applied" and c.applied[0].startswith("missed fill booked: sell 0.005 @ 58900")
    assert not h.core.portfolio.positions[SYM].is_open and h.store.has_fill("binance:BTCUSDT:77")
    again = h.core.reconciler.apply(_view(h, fills=(fill,), balances={"BTC": 0.0}), "reconnect")
    assert again.pairs[0].verdict == "ok"  # booked once
    _equity_adds_up(h)


def test_a_position_sold_by_hand_halts_the_pair_until_the_operator_adopts(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    _settled(h)
    r = h.core.reconciler.apply(_view(h, balances={"BTC": 0.0}), "start")  # coins and stop gone
    (c,) = r.pairs
    assert c.verdict == "mismatch" and "the exchange holds 0 BTC, the book 0.005" in c.mismatches[0]
    assert h.core.pairs[SYM].mode is PairMode.HALTED and r.waiting == [SYM]
    assert "wait for a reconciliation choice" in h.core.command("rearm").message
    assert h.core.pairs[SYM].mode is PairMode.HALTED  # rearm does not undo it
    res = h.core.command("reconcile", SYM, choice="adopt", who="ops@vps")
    assert res.ok and "book 0.005 → 0" in res.message, res.message
    assert not h.core.portfolio.positions[SYM].is_open and h.core.pairs[SYM].mode is PairMode.ACTIVE
    (adj,) = [f for f in h.store.fills() if f.reason == "reconcile-adopt"]
    assert adj.fee == 0.0 and adj.side is Side.SELL and adj.fill_id.startswith("adjust:")
    stored = ReconcileReport.from_dict(h.store.latest_reconciliation()[1])  # type: ignore[index]
    assert (stored.pairs[0].choice, stored.pairs[0].choice_by) == ("adopt", "ops@vps")
    assert any("adopt by ops@vps" in e["message"] for e in h.store.recent_events())
    _equity_adds_up(h)


def test_foreign_orders_and_coins_held_outside_the_bot_are_listed_never_ours(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    _settled(h)
    foreign = VenueOrder(SYM, "web_8f2c1a", "sell", 0.1, type="LIMIT", price=90_000.0)
    r = h.core.reconciler.apply(_view(h, open_orders=(*_stop_at_venue(venue), foreign), balances={"BTC": 0.2}), "start")
    (c,) = r.pairs
    assert c.verdict == "ok" and c.foreign_orders == [f"{foreign.describe()}: not ours, left alone"]
    assert any("held outside the bot: not counted" in n for n in c.notes)
    assert h.core.pairs[SYM].mode is PairMode.ACTIVE and venue.log.count("cancel") == 0


def test_the_exchange_failing_halts_every_pair_with_the_reason(tmp_path: Path) -> None:
    h, _venue = _core(tmp_path)
    h.core.reconciler.expect_start()
    r = h.core.reconciler.apply(_view(h, error="HTTP 500 on GET /api/v3/openOrders"), "start")
    (c,) = r.pairs
    assert c.verdict == "error" and "could not be asked: HTTP 500" in c.mismatches[0]
    assert h.core.pairs[SYM].mode is PairMode.HALTED
    assert not h.core.command("reconcile", SYM, choice="adopt", who="x").ok  # nothing known to adopt
    assert h.core.command("reconcile", SYM, choice="keep", who="x").ok
    assert h.core.command("rearm").message == "re-armed 1 pair(s)"  # acknowledged: re-armable


def test_a_missing_protective_stop_is_placed_again(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    (cid,) = venue.resting
    del venue.resting[cid]  # cancelled at the exchange behind our back
    _settled(h)
    r = h.core.reconciler.apply(_view(h, balances={"BTC": 0.005}), "periodic")
    (c,) = r.pairs
    assert c.verdict == "applied" and "missing at the exchange: placed again" in c.applied[0]
    venue.deliver()  # the lookup: not found
    venue.deliver()
    assert len(venue.resting) == 1 and venue.log.count("stop sell") == 2
    assert h.core.pairs[SYM].mode is PairMode.ACTIVE


def test_an_order_in_flight_leaves_the_pair_unchecked(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)  # its fill is newer than the fetch's start
    r = h.core.reconciler.apply(_view(h, balances={"BTC": 0.0}), "periodic")
    assert r.pairs[0].verdict == "unchecked" and h.core.pairs[SYM].mode is PairMode.ACTIVE


def test_keep_is_remembered_while_the_mismatch_is_the_same(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    _settled(h)
    view = _view(h, open_orders=_stop_at_venue(venue), balances={"BTC": 0.001})
    h.core.reconciler.apply(view, "start")
    assert h.core.command("reconcile", SYM, choice="keep", who="ops").ok
    r = h.core.reconciler.apply(view, "periodic")
    assert r.pairs[0].choice == "keep" and not r.waiting


def _futures_core(tmp_path: Path, qty: float) -> tuple[Harness, RestingVenue]:
    from engine.core.config import SafeList

    cfg = SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {SYM: {"tier": "STABLE", "strategy": "momentum", "market": "futures", "leverage": 3,
                        "max_position_size_usd": 500, "params": {"lookback": 10}}},
    })  # fmt: skip
    from tests.core_harness import FakeClock

    clock = FakeClock()
    venue = RestingVenue(clock, cfg)
    h = make_core(tmp_path, cfg, clock=clock, client=venue)
    h.tick(SYM, 60_000.0)
    entry = Order(client_order_id("fe"), SYM, Side.BUY, qty, "signal", "fe", h.clock.ms, stop_loss=59_000.0)
    h.core.execution.submit(entry, *h.core.quote(SYM))
    venue.deliver()
    venue.deliver()
    return h, venue


def test_a_futures_position_larger_at_the_exchange_is_never_adopted_silently(tmp_path: Path) -> None:
    h, venue = _futures_core(tmp_path, 0.003)
    _settled(h)
    entry = h.core.portfolio.positions[SYM].entry
    view = _view(h, markets={SYM: "futures"}, open_orders=_stop_at_venue(venue), positions={SYM: (0.005, 60_100.0)})
    r = h.core.reconciler.apply(view, "start")
    (c,) = r.pairs
    assert c.verdict == "mismatch" and "larger than the book's +0.003: never adopted silently" in c.mismatches[0]
    assert h.core.portfolio.positions[SYM].qty == pytest.approx(0.003) and h.core.pairs[SYM].mode is PairMode.HALTED
    res = h.core.command("reconcile", SYM, choice="adopt", who="ops")
    pos = h.core.portfolio.positions[SYM]
    assert res.ok and pos.qty == pytest.approx(0.005) and pos.entry == 60_100.0 and entry != 60_100.0
    assert h.store.load_positions()[SYM].entry == 60_100.0
    _equity_adds_up(h)


def test_flatten_adopts_then_closes_at_the_exchange(tmp_path: Path) -> None:
    h, venue = _futures_core(tmp_path, 0.003)
    _settled(h)
    view = _view(h, markets={SYM: "futures"}, open_orders=_stop_at_venue(venue), positions={SYM: (0.005, 60_000.0)})
    h.core.reconciler.apply(view, "start")
    res = h.core.command("reconcile", SYM, choice="flatten", who="ops")
    assert res.ok and "flatten:" in res.message
    for _ in range(3):
        venue.deliver()
    assert not h.core.portfolio.positions[SYM].is_open
    sells = [o for o in h.store._orders("t") if o.side is Side.SELL and o.order_type == "market"
             and o.status is OrderStatus.FILLED and o.reason == "reconcile-flatten"]  # fmt: skip
    assert len(sells) == 1 and sells[0].qty == pytest.approx(0.005)


def test_adopt_after_a_kill_leaves_the_pair_halted(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    _settled(h)
    h.core.reconciler.apply(_view(h, balances={"BTC": 0.0}), "start")
    assert h.core.command("kill").ok
    assert h.core.command("reconcile", SYM, choice="adopt", who="ops").ok
    assert h.core.pairs[SYM].mode is PairMode.HALTED  # the kill's halt is the operator's to lift
