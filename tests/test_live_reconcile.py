"""Reconciliation against the local Binance-protocol exchange, with the exchange's state changed
behind the engine's back: the real core and book, the real ccxt client asking the exchange
(``venue_view``) and the engine's ``ReconcileRunner`` deciding when, pumped as the engine loop
does. The core's rules alone: tests/test_reconcile.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.core.models import PairMode
from engine.node.reconcile_run import ReconcileRunner
from tests.core_harness import FakeClock, Harness
from tests.live_venue import Account, VenueThread
from tests.test_live_client import _core
from tests.test_live_venue_view import _by_hand, _price

pytestmark = pytest.mark.timeout(60)
SYM = "BTC/USDT"


def _start(tmp_path: Path, venue: VenueThread, connect: Any, acct: Account | None = None) -> tuple[Harness, Any, ReconcileRunner, Any]:
    """A live start: the book holds 0.004 BTC (stop 59,000), the runner reconciles first."""
    _price(venue, SYM, 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock, account=acct)
    h = _core(tmp_path, client, clock)
    h.tick(SYM, 60_000.0)
    runner = ReconcileRunner(client, h.core, settle_s=0.0)
    return h, client, runner, acct


def _pump(h: Harness, client: Any, runner: ReconcileRunner, until: Callable[[], bool], timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        client.drain()
        runner.poll()
        if until():
            return True
        h.clock.advance(50)
        h.core.on_timer()
        time.sleep(0.02)
    return until()


def _runs(runner: ReconcileRunner, n: int) -> Callable[[], bool]:
    return lambda: runner.runs >= n


def test_a_position_sold_by_hand_halts_the_pair_and_adopt_makes_the_book_flat(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    acct = Account(venue, {"USDT": 10_000.0, "BTC": 0.0})  # the 0.004 BTC were sold on the website
    h, client, runner, _ = _start(tmp_path, venue, connect, acct)
    assert h.core.reconciler.blocks_entries
    assert _pump(h, client, runner, _runs(runner, 1))
    report = h.core.reconciler.report
    assert report is not None and report.trigger == "start" and report.waiting == [SYM]
    (c,) = report.pairs
    assert (c.book_qty, c.venue_qty) == (0.004, 0.0) and "sold or moved outside the bot" in c.mismatches[0]
    assert h.core.pairs[SYM].mode is PairMode.HALTED and not h.core.reconciler.blocks_entries
    res = h.core.command("reconcile", SYM, choice="adopt", who="ops@laptop")
    assert res.ok, res.message
    assert SYM not in h.store.load_positions() and h.core.pairs[SYM].mode is PairMode.ACTIVE
    stored = h.store.latest_reconciliation()
    assert stored is not None and stored[1]["pairs"][0]["choice_by"] == "ops@laptop"


def test_a_foreign_order_is_listed_and_left_alone(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    acct = Account(venue, {"USDT": 10_000.0, "BTC": 0.05})
    by_hand = _by_hand(venue, acct).create_order(SYM, "limit", "sell", 0.001, 100_000.0)
    h, client, runner, _ = _start(tmp_path, venue, connect, acct)
    assert _pump(h, client, runner, lambda: runner.runs >= 1 and h.core.execution.protect.resting(SYM))
    (c,) = h.core.reconciler.report.pairs  # type: ignore[union-attr]
    assert c.verdict in ("ok", "applied") and len(c.foreign_orders) == 1 and "not ours, left alone" in c.foreign_orders[0]
    assert any("held outside the bot" in n for n in c.notes)  # 0.05 BTC in the account, 0.004 the bot's
    h.core.command("kill")
    assert _pump(h, client, runner, lambda: SYM not in h.store.load_positions())
    still = [o for o in venue.server.spot.open_orders(acct.key)]
    assert [o.order_id for o in still] == [int(by_hand["id"])]  # the kill never touched it


def test_the_exchange_failing_halts_every_pair_with_the_reason(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    h, client, runner, _ = _start(tmp_path, venue, connect)
    venue.server.fault("http", "GET /api/v3/openOrders", times=50, status=500)
    try:
        assert _pump(h, client, runner, _runs(runner, 1), timeout=30)
    finally:
        venue.server.faults.clear()
    report = h.core.reconciler.report
    assert report is not None and not report.ok and report.error
    assert all(p.verdict == "error" for p in report.pairs) and h.core.pairs[SYM].mode is PairMode.HALTED
    assert "could not be asked" in report.pairs[0].mismatches[0]


def test_a_protective_stop_cancelled_by_hand_is_placed_again(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    h, client, runner, acct = _start(tmp_path, venue, connect)
    assert _pump(h, client, runner, lambda: runner.runs >= 1 and h.core.execution.protect.resting(SYM))
    (first,) = venue.server.spot.open_orders(acct.key)
    _by_hand(venue, acct).cancel_order(str(first.order_id), SYM)  # gone behind the engine's back
    assert _pump(h, client, runner, lambda: [o.order_id for o in venue.server.spot.open_orders(acct.key)
                                              if o.order_id != first.order_id] != [])  # fmt: skip
    (again,) = venue.server.spot.open_orders(acct.key)
    assert again.type == "STOP_LOSS_LIMIT" and again.stop_price == Decimal("59000")
    assert h.core.pairs[SYM].mode is PairMode.ACTIVE


def test_a_stop_filled_while_the_engine_was_down_is_booked_once(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    h, client, runner, acct = _start(tmp_path, venue, connect)
    assert _pump(h, client, runner, lambda: runner.runs >= 1 and h.core.execution.protect.resting(SYM))
    client.close()  # the engine dies; its stop rests at the exchange
    _price(venue, SYM, 58_900.0)  # and fills
    second, _ = connect(h.clock, account=acct)
    h2 = h.reopen(client=second)
    h2.tick(SYM, 58_900.0)
    runner2 = ReconcileRunner(second, h2.core, settle_s=5.0)
    assert _pump(h2, second, runner2, lambda: runner2.runs >= 1 and SYM not in h2.store.load_positions())
    sells = [f for f in h2.store.fills() if f.reason == "stop"]
    assert len(sells) == 1 and sells[0].fill_id.startswith("binance:")
    (c,) = h2.core.reconciler.report.pairs  # type: ignore[union-attr]
    assert c.verdict in ("ok", "applied", "unchecked") and h2.core.pairs[SYM].mode is PairMode.ACTIVE
