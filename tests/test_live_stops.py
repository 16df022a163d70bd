"""Protective stops resting at the local Binance-protocol exchange, through the real core,
book and ccxt client: the stop works while the engine is gone, a stop-limit gapped through its
limit is taken over, a moved stop is replaced, and a kill cancels the stop before it closes
(spot STOP_LOSS_LIMIT, USDT-M STOP_MARKET in the algo service). Core rules alone:
tests/test_protective_stops.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.core.models import Side
from engine.core.orders import Order, OrderFilled
from tests.core_harness import FakeClock, Harness
from tests.live_venue import VenueThread
from tests.test_live_client import _closed, _core, _futures_core, _wait_event, pump

pytestmark = pytest.mark.timeout(60)


def _stop_orders(venue: VenueThread, key: str, kind: str) -> list[Any]:
    """The exchange's stop orders of one account (``kind`` spot | futures-algo), oldest first."""
    return [o for o in venue.server.stats.orders if o.api_key == key and o.venue == kind and o.type.startswith("STOP")]


def _resting(venue: VenueThread, key: str) -> list[str]:
    ex = venue.server.exposure(key)
    return ex["spot_orders"] + ex["futures_algo_orders"]


def _price(venue: VenueThread, symbol: str, price: float) -> None:
    venue.run(venue.server.set_price(symbol, price))


def _rests(h: Harness, client: Any, venue: VenueThread, key: str) -> None:
    assert pump(h, client, lambda: h.core.execution.protect.resting("BTC/USDT") and bool(_resting(venue, key)))


def test_the_spot_stop_fills_at_the_exchange_while_the_engine_is_gone(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock)
    h = _core(tmp_path, client, clock)  # a long 0.004 BTC, its stop at 59,000
    _rests(h, client, venue, acct.key)
    (stop,) = _stop_orders(venue, acct.key, "spot")
    assert (stop.type, stop.side, stop.quantity) == ("STOP_LOSS_LIMIT", "SELL", "0.00400000")
    client.close()  # the engine dies; the stop stays at the exchange
    _price(venue, "BTC/USDT", 58_900.0)  # through the stop, above its limit (1% below): it fills
    assert float(venue.server.spot.account(acct.key).balances["BTC"][0]) == pytest.approx(0.05 - 0.004)
    second, _ = connect(clock, account=acct)
    h2 = h.reopen(client=second)  # the restart looks the stop up and books its fill
    assert pump(h2, second, _closed(h2))
    (fill,) = [f for f in h2.store.fills() if f.side is Side.SELL]
    assert fill.reason == "stop" and fill.qty == pytest.approx(0.004) and fill.fill_id.startswith("binance:")
    sells = [o for o in venue.server.stats.orders if o.api_key == acct.key and o.side == "SELL"]
    assert len(sells) == 1  # the exchange's stop was the only sell


def test_a_stop_limit_gapped_through_its_limit_is_taken_over_by_the_core(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock)
    h = _core(tmp_path, client, clock)
    _rests(h, client, venue, acct.key)
    _price(venue, "BTC/USDT", 57_000.0)  # a gap below the limit (58,410): it rests unfilled
    h.tick("BTC/USDT", 57_000.0)  # our tick: the core waits for the exchange's stop first
    assert pump(h, client, _closed(h))  # 3 s later: cancel it, then sell by market
    kinds = [(o.side, o.type) for o in venue.server.stats.orders if o.api_key == acct.key]
    assert kinds == [("SELL", "STOP_LOSS_LIMIT"), ("SELL", "MARKET")]
    assert not _resting(venue, acct.key)
    (fill,) = [f for f in h.store.fills() if f.side is Side.SELL]
    assert fill.reason == "stop" and fill.price < 58_000.0


def test_a_moved_stop_is_replaced_at_the_exchange(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock)
    h = _core(tmp_path, client, clock)
    _rests(h, client, venue, acct.key)
    h.core.portfolio.positions["BTC/USDT"].stop_loss = 59_500.0  # the strategy moves its stop up
    assert pump(h, client, lambda: [float(o.stop_price) for o in venue.server.spot.open_orders(acct.key)] == [59_500.0])
    first, second = _stop_orders(venue, acct.key, "spot")
    assert second.client_order_id != first.client_order_id
    stops = [o for o in h.store.orders() if o.order_type == "stop"]
    assert [(o.trigger, o.status.value) for o in stops] == [(59_000.0, "cancelled"), (59_500.0, "accepted")]


def _futures(tmp_path: Path, venue: VenueThread, connect: Any) -> tuple[Harness, Any, Any]:
    """A 3x USDT-M long of 0.003 BTC, at the exchange and in the book, its stop at 59,000."""
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock, futures={"BTC/USDT": 3})
    got: list[Any] = []
    client.bind(got.append)
    client.submit(Order("mp-fs-open", "BTC/USDT", Side.BUY, 0.003, "signal", "k-fso", clock.ms, stop_loss=1.0), 0.0, 0.0)
    _wait_event(client, got, "mp-fs-open", OrderFilled)
    h = _futures_core(tmp_path, client, clock, 0.003)
    _rests(h, client, venue, acct.key)
    return h, client, acct


def test_the_futures_stop_rests_in_the_algo_service_and_its_trigger_is_booked(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    h, client, acct = _futures(tmp_path, venue, connect)
    (algo,) = venue.server.futures.open_algo_orders(acct.key)
    assert (algo.order_type, algo.side, algo.reduce_only, float(algo.trigger)) == ("STOP_MARKET", "SELL", True, 59_000.0)
    _price(venue, "BTC/USDT", 58_900.0)  # it triggers: a regular reduce-only market order fills
    assert pump(h, client, _closed(h))
    (fill,) = [f for f in h.store.fills() if f.side is Side.SELL]
    assert fill.reason == "stop" and fill.fill_id.startswith("binance-usdm:")
    assert client.positions() == {} and venue.server.is_flat(acct.key)
    (stop,) = [o for o in h.store.orders() if o.order_type == "stop"]
    assert stop.status.value == "filled"


def test_a_futures_kill_cancels_the_algo_stop_then_closes_reduce_only(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    h, client, acct = _futures(tmp_path, venue, connect)
    h.tick("BTC/USDT", 60_000.0)
    result = h.core.command("kill")
    assert result.ok and "1 closing" in result.message, result.message
    assert pump(h, client, _closed(h))
    assert venue.server.is_flat(acct.key)  # no algo order, no order, no position
    reqs = [(r.method, r.path, r.params.get("reduceOnly")) for r in venue.server.stats.requests
            if r.path in ("/fapi/v1/algoOrder", "/fapi/v1/order") and r.method in ("POST", "DELETE")
            and r.api_key == acct.key]  # fmt: skip
    cancel = reqs.index(("DELETE", "/fapi/v1/algoOrder", None))
    close = reqs.index(("POST", "/fapi/v1/order", "true"))
    assert cancel < close, reqs
    (fill,) = [f for f in h.store.fills() if f.side is Side.SELL]
    assert fill.reason == "kill"
