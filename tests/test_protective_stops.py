"""Protective stops resting at the venue, through the real core and book (``core/protect.py``).

``RestingVenue`` is an execution client that, like Binance, keeps a stop order until the price
reaches it and answers later (``deliver``), so every interleaving a live venue allows can be
played: the core's stop and the venue's stop never both sell, every other exit cancels the
resting stop first, and a stop that does not fill is taken over after the grace period.
The same rules against the real ccxt client and the local exchange: tests/test_live_stops.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.core.models import PairMode, Side
from engine.core.orders import (
    ExecutionEvent,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderNotFound,
    OrderRejected,
    OrderStatus,
    client_order_id,
)
from engine.core.protect import PROTECT_RETRY_MS, STOP_GRACE_MS
from tests.core_harness import FakeClock, Harness, make_core, paper, safe_list

pytestmark = pytest.mark.timeout(30)

SYM = "BTC/USDT"


class RestingVenue:
    """Market orders fill at the quote (paper rules); stop orders rest until ``price`` reaches
    their trigger. Answers wait in ``pending`` until ``deliver`` (a live venue answers later)."""

    rests_stops = True

    def __init__(self, h_clock: FakeClock, cfg: object) -> None:
        self.paper = paper(cfg, h_clock)  # type: ignore[arg-type]
        self.clock = h_clock
        self.pending: list[ExecutionEvent] = []
        self.resting: dict[str, Order] = {}
        self.filled: dict[str, list[ExecutionEvent]] = {}
        self.log: list[str] = []  # what reached the venue, in order: "market sell", "stop sell", "cancel"
        self.refuse_stops = ""  # a reason: stop orders refused
        self.triggers = True  # False: a venue whose stop does not fill (a gapped stop-limit)
        self._listener: Callable[[ExecutionEvent], None] | None = None

    def bind(self, listener: Callable[[ExecutionEvent], None]) -> None:
        self._listener = listener

    def submit(self, order: Order, bid: float, ask: float) -> None:
        ts = self.clock.time_ms()
        self.log.append(f"{order.order_type} {order.side}")
        if order.order_type == "stop":
            if self.refuse_stops:
                self.pending.append(OrderRejected(order.client_order_id, ts, self.refuse_stops, False))
                return
            self.resting[order.client_order_id] = order
            self.pending.append(OrderAccepted(order.client_order_id, ts))
            return
        fill = self.paper.fill(order.client_order_id, order.symbol, order.side, order.qty, bid, ask, ts, order.reason)
        events = [OrderAccepted(order.client_order_id, ts), OrderFilled(order.client_order_id, fill)]
        self.filled[order.client_order_id] = events
        self.pending += events

    def lookup(self, order: Order) -> None:
        cid = order.client_order_id
        if cid in self.filled:
            self.pending += self.filled[cid]
        elif cid in self.resting:
            self.pending.append(OrderAccepted(cid, self.clock.time_ms()))
        else:
            self.pending.append(OrderNotFound(cid, self.clock.time_ms()))

    def cancel(self, order: Order) -> None:
        self.log.append("cancel")
        cid = order.client_order_id
        if self.resting.pop(cid, None) is not None:
            self.pending.append(OrderCancelled(cid, self.clock.time_ms(), "cancelled"))
        else:
            self.lookup(order)  # Binance's -2011: the client looks it up

    def price(self, symbol: str, bid: float, ask: float) -> None:
        """The venue's market moves: resting stops whose trigger is reached fill at the touch."""
        for cid, o in list(self.resting.items()):
            hit = bid <= o.trigger if o.side is Side.SELL else ask >= o.trigger
            if o.symbol == symbol and hit and self.triggers:
                del self.resting[cid]
                ts = self.clock.time_ms()
                fill = self.paper.fill(cid, symbol, o.side, o.qty, bid, ask, ts, o.reason)
                self.filled[cid] = [OrderFilled(cid, fill)]
                self.pending += self.filled[cid]
                self.log.append(f"triggered {o.side}")

    def deliver(self) -> int:
        n = 0
        while self.pending:
            assert self._listener is not None
            self._listener(self.pending.pop(0))
            n += 1
        return n


def _core(tmp_path: Path) -> tuple[Harness, RestingVenue]:
    cfg = safe_list({SYM: "momentum"})
    clock = FakeClock()
    venue = RestingVenue(clock, cfg)
    return make_core(tmp_path, cfg, clock=clock, client=venue), venue


def _open_long(h: Harness, venue: RestingVenue, price: float = 60_000.0) -> None:
    """An entry with stop 59,000 and target 62,000, filled, and the venue's stop resting."""
    h.tick(SYM, price)
    bid, ask = h.core.quote(SYM)
    entry = Order(client_order_id("entry"), SYM, Side.BUY, 0.005, "signal", "entry", h.clock.ms,
                  stop_loss=59_000.0, take_profit=62_000.0)  # fmt: skip
    assert h.core.execution.submit(entry, bid, ask)
    venue.deliver()  # the entry's fill: the protective stop goes out at once
    venue.deliver()  # ... and rests
    assert venue.log == ["market buy", "stop sell"]


def _tick(h: Harness, venue: RestingVenue, price: float, ms: int = 100) -> None:
    h.clock.advance(ms)
    h.tick(SYM, price)
    venue.price(SYM, *h.core.quote(SYM))
    h.core.on_timer()
    venue.deliver()


def _stops(h: Harness) -> list[Order]:
    return [o for o in h.store._orders("t") if o.order_type == "stop"]


def test_the_entry_fill_places_a_stop_at_the_venue_journaled_first(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    (stop,) = _stops(h)
    pos = h.core.portfolio.positions[SYM]
    assert (stop.side, stop.qty, stop.trigger, stop.reason) == (Side.SELL, pos.qty, 59_000.0, "stop")
    assert stop.status is OrderStatus.ACCEPTED and h.core.execution.protect.resting(SYM)
    assert stop.decision_key == f"{SYM}|protect|{pos.opened_ts}"
    # a resting stop is no "order in flight": nothing waits on it
    assert h.core.execution.open_order(SYM) is None


def test_the_venue_stop_closes_the_position_and_the_core_never_sells_beside_it(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    _tick(h, venue, 58_900.0)  # through the stop: the venue's stop fills
    assert not h.core.portfolio.positions[SYM].is_open
    assert venue.log == ["market buy", "stop sell", "triggered sell"]  # one sell, the venue's
    (fill,) = [f for f in h.store.fills() if f.side is Side.SELL]
    assert fill.reason == "stop"
    for _ in range(5):
        _tick(h, venue, 58_800.0)
    assert venue.log[-1] == "triggered sell" and not venue.resting  # nothing placed on a flat pair


def test_the_core_waits_for_the_venue_stop_then_takes_over_after_the_grace(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    venue.triggers = False  # a stop-limit gapped through its limit: it rests unfilled
    _tick(h, venue, 58_900.0)
    assert venue.log == ["market buy", "stop sell"]  # the core defers to the venue's stop
    _tick(h, venue, 58_900.0, ms=STOP_GRACE_MS // 2)
    assert venue.log == ["market buy", "stop sell"]
    _tick(h, venue, 58_900.0, ms=STOP_GRACE_MS // 2 + 100)  # grace over: cancel, then sell
    _tick(h, venue, 58_900.0)
    assert venue.log == ["market buy", "stop sell", "cancel", "market sell"]
    assert not h.core.portfolio.positions[SYM].is_open
    assert [o.status for o in _stops(h)] == [OrderStatus.CANCELLED]


def test_a_take_profit_cancels_the_resting_stop_before_it_sells(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    h.clock.advance(100)
    h.tick(SYM, 62_100.0)  # target hit: the exit waits for the cancel
    assert venue.log[-1] == "cancel" and h.core.execution.exits[SYM].waiting == "cancelling the resting stop first"
    venue.deliver()  # cancelled: the market sell goes at once
    venue.deliver()
    assert venue.log == ["market buy", "stop sell", "cancel", "market sell"]
    assert not h.core.portfolio.positions[SYM].is_open and not venue.resting


def test_a_stop_that_fills_while_its_cancel_is_in_flight_is_the_exit(tmp_path: Path) -> None:
    """The take-profit asked for a cancel; the venue's stop filled first (a fast market): the
    cancel meets a filled order, the pair is flat and no market sell is ever sent."""
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    venue.price(SYM, 58_000.0, 58_010.0)  # at the venue the stop fills; its news is not here yet
    h.clock.advance(100)
    h.tick(SYM, 62_100.0)  # the target on our (older) ticks: the cancel meets a filled stop
    assert venue.log[-1] == "cancel"
    venue.deliver()  # the fill (twice: the stream's and the cancel's lookup): booked once
    assert not h.core.portfolio.positions[SYM].is_open
    assert "market sell" not in venue.log and SYM not in h.core.execution.exits
    assert len([f for f in h.store.fills() if f.side is Side.SELL]) == 1


def test_the_kill_cancels_every_resting_stop_then_closes(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    result = h.core.command("kill")
    assert result.ok and "1 closing (orders sent)" in result.message, result.message
    assert venue.log[-1] == "cancel"
    venue.deliver()
    venue.deliver()
    assert venue.log == ["market buy", "stop sell", "cancel", "market sell"]
    assert not h.core.portfolio.positions[SYM].is_open and not venue.resting
    assert h.core.pairs[SYM].mode is PairMode.HALTED


def test_a_refused_stop_is_said_once_the_core_stop_acts_and_it_is_placed_again(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    venue.refuse_stops = "Stop price would trigger immediately."
    h.tick(SYM, 60_000.0)
    entry = Order(client_order_id("entry"), SYM, Side.BUY, 0.005, "signal", "entry", h.clock.ms,
                  stop_loss=59_000.0, take_profit=62_000.0)  # fmt: skip
    h.core.execution.submit(entry, *h.core.quote(SYM))
    venue.deliver()
    venue.deliver()
    notices = [e for e in h.events.all if getattr(e, "kind", "") == "protect_refused"]
    assert len(notices) == 1 and "refused by the exchange: Stop price would trigger immediately." in notices[0].message
    _tick(h, venue, 60_000.0, ms=PROTECT_RETRY_MS // 2)
    assert venue.log.count("stop sell") == 1  # not yet placed again
    _tick(h, venue, 60_000.0, ms=PROTECT_RETRY_MS)
    assert venue.log.count("stop sell") == 2  # placed again (and refused again, said once)
    assert len([e for e in h.events.all if getattr(e, "kind", "") == "protect_refused"]) == 1
    _tick(h, venue, 58_900.0)  # no stop rests: the core's own tick stop sells at once
    assert venue.log[-1] == "market sell" and not h.core.portfolio.positions[SYM].is_open


def test_a_restart_looks_the_resting_stop_up_and_places_no_second_one(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    h2 = h.reopen(client=venue)  # the same venue: the stop still rests there
    venue._listener = None
    venue.bind(h2.core.execution.on_event)
    h2.core.on_timer()
    venue.deliver()
    _tick(h2, venue, 60_000.0)
    assert venue.log == ["market buy", "stop sell"] and len(venue.resting) == 1
    (stop,) = _stops(h2)
    assert stop.status is OrderStatus.ACCEPTED
    _tick(h2, venue, 58_900.0)
    assert not h2.core.portfolio.positions[SYM].is_open and venue.log[-1] == "triggered sell"


def test_paper_never_places_a_resting_stop(tmp_path: Path) -> None:
    cfg = safe_list({SYM: "momentum"})
    h = make_core(tmp_path, cfg)
    h.tick(SYM, 60_000.0)
    entry = Order(client_order_id("entry"), SYM, Side.BUY, 0.005, "signal", "entry", h.clock.ms,
                  stop_loss=59_000.0, take_profit=62_000.0)  # fmt: skip
    h.core.execution.submit(entry, *h.core.quote(SYM))
    h.clock.advance(100)
    h.tick(SYM, 58_900.0)
    assert not h.core.portfolio.positions[SYM].is_open and not _stops(h)
