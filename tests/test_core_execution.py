"""Orders shaped for real venues: journaled before they are sent, answered with events,
looked up (never resent) when the outcome is unknown, and an exit that is never disarmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.events import Notice
from engine.core.models import Side
from engine.core.orders import OrderStatus
from engine.node.fallback import flatten_from_store
from tests.core_harness import Harness, ScriptedClient, make_core, safe_list
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(60)

BTC_ONLY = {"BTC/USDT": "momentum"}


def _seeded(tmp_path: Path, plan: list[str] | None = None, qty: float = 0.004) -> tuple[Harness, ScriptedClient]:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", qty, 60_000.0, stop=59_000.0, target=70_000.0)
    cfg = safe_list(BTC_ONLY)
    from tests.core_harness import FakeClock

    clock = FakeClock()
    client = ScriptedClient(cfg, clock, plan)
    h = make_core(tmp_path, cfg, clock=clock, client=client, db=db)
    client.journal_check = lambda o: o.client_order_id in {x.client_order_id for x in h.store.orders()}
    return h, client


def test_every_order_is_in_the_journal_before_the_client_sees_it(tmp_path: Path) -> None:
    h, client = _seeded(tmp_path)
    h.tick("BTC/USDT", 58_000.0)  # stop
    assert client.journaled_at_submit == [True]
    assert [o.status for o in h.store.orders()][-1] is OrderStatus.FILLED
    statuses = [o.status for o in h.events.orders]
    assert statuses == [OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.FILLED]


def test_a_client_that_raises_after_the_venue_filled_leaves_one_order_and_one_fill(tmp_path: Path) -> None:
    h, client = _seeded(tmp_path, plan=["raise_after_fill"])
    h.tick("BTC/USDT", 58_000.0)
    (order,) = h.store.open_orders()
    assert order.status is OrderStatus.UNKNOWN and "connection reset" in order.message
    assert h.store.load_positions()["BTC/USDT"].qty == 0.004  # not booked: we do not know yet
    for _ in range(5):  # the stop keeps being hit: nothing is resent while the outcome is unknown
        h.clock.advance(100)
        h.tick("BTC/USDT", 57_900.0)
    assert len(client.venue) == 1
    h.clock.advance(1_000)
    h.core.on_timer()  # looks the order up by its client order id
    assert client.lookups == [order.client_order_id]
    assert "BTC/USDT" not in h.store.load_positions()
    assert len(h.store.fills()) == 2  # the seeded entry and this exit, once
    assert len(client.venue) == 1 and h.store.open_orders() == []


def test_an_unknown_order_is_looked_up_after_a_restart_and_booked_once(tmp_path: Path) -> None:
    h, client = _seeded(tmp_path, plan=["raise_after_fill"])
    h.tick("BTC/USDT", 58_000.0)
    h2 = h.reopen(client=client)  # the engine restarts; the venue remembers what it filled
    (order,) = h2.store.open_orders()
    h2.core.on_timer()
    assert client.lookups == [order.client_order_id]
    assert "BTC/USDT" not in h2.store.load_positions() and len(h2.store.fills()) == 2
    assert len(client.venue) == 1


def test_a_refused_stop_is_retried_until_it_fills(tmp_path: Path) -> None:
    """Refuse the stop's first order: the stop stays armed and the next tick after the
    back-off fills it (it used to be recorded as done and never fire again)."""
    h, _ = _seeded(tmp_path, plan=["reject"])
    h.tick("BTC/USDT", 58_000.0)
    assert h.store.load_positions()["BTC/USDT"].qty == 0.004
    assert h.core.execution.exits["BTC/USDT"].last_error == "venue busy, try again"
    h.clock.advance(50)
    h.tick("BTC/USDT", 58_000.0)  # inside the back-off: not yet
    assert len(h.store.orders()) == 2  # seeded entry + the refused exit
    h.clock.advance(300)
    h.tick("BTC/USDT", 58_100.0)
    assert "BTC/USDT" not in h.store.load_positions()
    exits = [o for o in h.store.orders() if o.reason == "stop"]
    assert [o.status for o in exits] == [OrderStatus.REJECTED, OrderStatus.FILLED]
    assert len({o.client_order_id for o in exits}) == 2  # each attempt has its own id
    assert sum(d.action == "close_long" for d in h.events.decisions) == 1  # one decision


def test_a_remainder_below_the_lot_step_is_dust_flat_for_trading_and_kept_in_the_book(tmp_path: Path) -> None:
    h, client = _seeded(tmp_path, qty=0.000001)  # below BTC's 0.00001 step: no order can sell it
    for _ in range(10):
        h.clock.advance(500)
        h.tick("BTC/USDT", 58_000.0)  # far below the stop: a tradable position would be closed
        h.core.on_timer()
    assert client.venue == [] and not h.core.execution.exits  # nothing sent, nothing waiting
    assert not [e for e in h.events.of(Notice) if e.kind == "exit_blocked"]
    r = h.core.command("kill")
    assert r.ok, r.message  # flat for trading: the kill has nothing to close
    assert set(h.core.modes().values()) == {"HALTED"}
    assert h.store.load_positions()["BTC/USDT"].qty == 0.000001  # still in the book (and equity)


def test_an_exit_that_leaves_dust_is_done_and_the_next_stop_still_works(tmp_path: Path) -> None:
    """Binance takes a buy's fee in the asset bought: 0.00166 bought leaves 0.00165834, not a
    whole number of 0.00001 lots. The exit sells 0.00165 and the 0.00000834 left is dust: the
    exit ends, no exit stays blocked, and the pair trades (and stops) again."""
    h, client = _seeded(tmp_path, qty=0.00165834)
    h.tick("BTC/USDT", 58_000.0)  # through the stop (59,000): sells what a lot step allows
    assert [(o.side, o.qty) for o in client.venue] == [(Side.SELL, 0.00165)]
    assert not h.core.execution.exits  # done: the dust is not an exit waiting forever
    left = h.store.load_positions()["BTC/USDT"].qty
    assert 0 < left < 0.00001
    h.clock.advance(500)
    h.tick("BTC/USDT", 57_000.0)
    assert len(client.venue) == 1  # no stop fires on dust
    assert h.core.command("flatten_all").ok


def test_the_kill_fallback_closes_through_the_core(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", 0.004, 60_000.0)
    seed_open_position(db, "ETH/USDT", 0.1, 3_000.0)
    cfg = safe_list({"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion"})
    fills = flatten_from_store(db, cfg, {"BTC/USDT": (61_000.0, 61_010.0)})
    assert {f.symbol for f in fills} == {"BTC/USDT", "ETH/USDT"}
    eth = next(f for f in fills if f.symbol == "ETH/USDT")
    assert eth.price == pytest.approx(3_000.0 * (1 - 1e-4), rel=1e-6)  # no price known: at entry
    h = make_core(tmp_path, cfg, db=db)
    assert h.store.load_positions() == {} and set(h.core.modes().values()) == {"HALTED"}
    assert {o.reason for o in h.store.orders() if o.side == "sell"} == {"kill-fallback"}
    assert "ETH/USDT closed at entry" in h.store.recent_events()[0]["message"]


def test_a_tick_stamped_hours_ahead_is_dropped_and_candles_go_on(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list(BTC_ONLY), timeframe_s=2)
    ps = h.core.pairs["BTC/USDT"]
    for _ in range(50):
        h.clock.advance(100)
        assert h.tick("BTC/USDT", 60_000.0)
    closed = ps.candles.last_closed
    assert closed is not None
    ahead = h.clock.ms + 5 * 3600 * 1000
    assert h.core.on_tick(ps, ahead, 59_999.0, 60_001.0, 60_000.0, 0.0) is False
    for _ in range(50):
        h.clock.advance(100)
        assert h.tick("BTC/USDT", 60_000.0)
    assert ps.candles.last_closed is not None and ps.candles.last_closed.ts > closed.ts  # not frozen
    assert ps.implausible == 1


def test_a_real_gap_is_believed_once_ticks_agree_for_a_second(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list(BTC_ONLY), timeframe_s=2)
    ps = h.core.pairs["BTC/USDT"]
    h.tick("BTC/USDT", 60_000.0)
    h.clock.advance(10 * 60_000)  # a 10-minute outage: the clock and the stamps both moved
    accepted = []
    for _ in range(15):
        h.clock.advance(100)
        accepted.append(h.tick("BTC/USDT", 60_000.0))
    assert accepted.count(False) >= 2 and accepted[-1] is True
    assert ps.last_te == h.clock.ms


def test_a_journal_that_cannot_record_a_fill_stops_the_core_and_the_book_stays_whole(tmp_path: Path) -> None:
    """A full disk while booking a fill is fatal (the process exits and restarts), never a
    position that lives only in memory; the restarted core finds the order open and asks."""
    from engine.journal.store import StoreError

    h, client = _seeded(tmp_path)

    def full_disk(*_: object) -> bool:
        raise StoreError("book.sqlite: record_fill failed: database or disk is full")

    h.store.record_fill = full_disk  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="disk is full"):
        h.tick("BTC/USDT", 58_000.0)
    h2 = h.reopen(client=client)
    assert h2.store.load_positions()["BTC/USDT"].qty == 0.004  # the book never saw the exit
    (order,) = h2.store.open_orders()
    h2.core.on_timer()
    assert client.lookups == [order.client_order_id]  # the venue filled it: booked now, once
    assert "BTC/USDT" not in h2.store.load_positions() and len(h2.store.fills()) == 2


def test_no_entry_is_decided_while_an_order_of_the_pair_is_unknown(tmp_path: Path) -> None:
    from engine.core.models import Side
    from engine.core.orders import Order, OrderStatus, client_order_id

    h = make_core(tmp_path, safe_list({"SOL/USDT": "breakout"}), timeframe_s=2)
    stuck = Order(client_order_id("stuck"), "SOL/USDT", Side.BUY, 1.0, "signal", "stuck", h.clock.ms)
    stuck.status = OrderStatus.UNKNOWN
    h.core.execution.orders[stuck.client_order_id] = stuck
    h.core.execution._looked_up[stuck.client_order_id] = 10**15  # the venue does not answer
    from tests.core_harness import Walk

    Walk(h, seed=7, step_ms=100, sd=0.002).run(3_000)
    assert not any(d.action.startswith("open_") for d in h.events.decisions)
    assert h.store.orders() == []


def test_the_copies_the_sink_gets_hold_every_field() -> None:
    """``Order.copy`` and ``Position.copy`` are written out for speed: each equals
    ``dataclasses.replace`` on an object whose every field differs from its default, and is
    a new object (the core goes on mutating the original)."""
    import dataclasses

    from engine.core.models import Position
    from engine.core.orders import Order

    def odd(cls: type, seed: int) -> object:
        values = []
        for k, f in enumerate(dataclasses.fields(cls)):
            t = str(f.type)
            if "float" in t:
                values.append(seed + k + 0.5)
            elif "int" in t:
                values.append(seed + k)
            elif f.name == "side":
                values.append(Side.SELL)
            elif f.name == "status":
                values.append(OrderStatus.PARTIALLY_FILLED)
            else:
                values.append(f"{f.name}-{seed}")
        return cls(*values)

    for cls in (Order, Position):
        obj = odd(cls, 7)
        copy = obj.copy()  # type: ignore[attr-defined]
        assert copy == dataclasses.replace(obj) and copy is not obj
        for f in dataclasses.fields(cls):  # and no field is left at its default
            assert getattr(copy, f.name) != f.default, (cls.__name__, f.name)
