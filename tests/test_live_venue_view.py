"""The exchange's view of the account for reconciliation (``BinanceLiveClient.venue_view``,
engine/execution/live_account.py) against the local Binance-protocol exchange through real ccxt:
open orders ours and not ours, fills the client missed with the fill ids it books, balances with
the zeros, positions, a light view that asks for no trades, and failures as one secret-free line.
Orders "by hand" go through a plain ccxt client on the same account (no ``mp-`` client id)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt as sync_ccxt
import pytest

from engine.core.models import Side
from engine.core.orders import Order, OrderAccepted, OrderFilled
from engine.execution import live_account
from engine.execution.binance_connect import LiveConfig
from engine.execution.live_account import MAX_PAGES, PAGE, ViewError
from engine.execution.live_fills import fill_id
from tests.binance_exchange import point_ccxt_at
from tests.core_harness import FakeClock
from tests.live_venue import SYMBOLS, VenueThread
from tests.test_live_client import _wait_event

pytestmark = pytest.mark.timeout(60)

ASKED_FOR_TRADES = ("/api/v3/myTrades", "/api/v3/allOrders", "/api/v3/order", "/fapi/v1/userTrades", "/fapi/v1/allOrders")


def _by_hand(venue: VenueThread, acct: Any) -> Any:
    ex = sync_ccxt.binance({"apiKey": acct.key, "secret": acct.secret, "options": {"defaultType": "spot"}})
    return point_ccxt_at(ex, venue.server.rest_url, None, venue.server)


def _price(venue: VenueThread, symbol: str, price: float) -> None:
    venue.run(venue.server.set_price(symbol, price))


def _stop(clock: FakeClock, cid: str = "mp-vv-stop", qty: float = 0.004) -> Order:
    return Order(cid, "BTC/USDT", Side.SELL, qty, "stop", f"k-{cid}", clock.ms, order_type="stop", trigger=59_000.0)


def _paths(venue: VenueThread, key: str, since: int) -> list[str]:
    return [r.path for r in venue.server.stats.requests[since:] if r.api_key == key]


def test_open_orders_list_our_stop_with_its_trigger_and_a_foreign_order_as_not_ours(
    venue: VenueThread, connect: Any
) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock)
    got: list[Any] = []
    client.bind(got.append)
    stop = _stop(clock)
    client.submit(stop, 0.0, 0.0)
    _wait_event(client, got, stop.client_order_id, OrderAccepted)
    _by_hand(venue, acct).create_order("BTC/USDT", "limit", "sell", 0.001, 100_000.0)  # rests above the book
    view = client.venue_view(SYMBOLS, {}, light=True)
    assert not view.error and view.markets == {"BTC/USDT": "spot", "ETH/USDT": "spot"}
    (ours,) = [o for o in view.open_orders if o.ours]
    assert (ours.client_order_id, ours.symbol, ours.side, ours.qty, ours.type, ours.trigger) == (
        "mp-vv-stop", "BTC/USDT", "sell", 0.004, "STOP_LOSS_LIMIT", 59_000.0)  # fmt: skip
    assert ours.price == client.stop_limit_price(stop) and ours.is_stop
    (foreign,) = [o for o in view.open_orders if not o.ours]
    assert (foreign.type, foreign.price, foreign.trigger, foreign.qty) == ("LIMIT", 100_000.0, 0.0, 0.001)
    assert not foreign.client_order_id.startswith("mp-") and not foreign.is_stop
    assert len(venue.server.spot.open_orders(acct.key)) == 2  # listed, nothing touched


def test_a_stop_filled_while_the_client_was_closed_is_a_fill_with_the_id_the_client_books(
    venue: VenueThread, connect: Any
) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock)
    since = venue.server.auth.server_time()  # the book's last fill (the exchange's clock)
    got: list[Any] = []
    client.bind(got.append)
    stop = _stop(clock)
    client.submit(stop, 0.0, 0.0)
    _wait_event(client, got, stop.client_order_id, OrderAccepted)
    _by_hand(venue, acct).create_order("BTC/USDT", "market", "buy", 0.001)  # a trade not ours
    client.close()
    _price(venue, "BTC/USDT", 58_900.0)  # through the stop, above its limit: it fills, nobody listening
    trades = venue.server.spot.account(acct.key).trades
    assert len(trades) == 2
    second, _ = connect(clock, account=acct)
    n = len(venue.server.stats.requests)
    view = second.venue_view(["BTC/USDT"], {"BTC/USDT": since})
    assert not view.error and view.open_orders == ()
    (fill,) = view.fills  # the foreign buy's trade is not ours: not there
    stop_order = [o for o in venue.server.spot.account(acct.key).orders.values() if o.client_order_id == stop.client_order_id]
    (trade,) = [t for t in trades if t["orderId"] == stop_order[0].order_id]
    assert fill.fill_id == fill_id(second.worker.markets["BTC/USDT"], trade["id"])
    assert (fill.order_id, fill.side, fill.qty, fill.reason) == (stop.client_order_id, Side.SELL, 0.004, "stop")
    assert "/api/v3/allOrders" in _paths(venue, acct.key, n)  # a new client: the trade's order from the exchange
    # the live client, asked about that order, emits the very same fill
    got2: list[Any] = []
    second.bind(got2.append)
    second.lookup(stop)
    assert _wait_event(second, got2, stop.client_order_id, OrderFilled).fill == fill
    assert second.venue_view(["BTC/USDT"], {"BTC/USDT": since}).fills == (fill,)  # the order now from the ledger


def test_balances_count_locked_coins_and_a_zero_for_what_is_not_held(venue: VenueThread, connect: Any) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    client, acct = connect(balances={"USDT": 10_000.0, "BTC": 0.05})  # no ETH at all
    _by_hand(venue, acct).create_order("BTC/USDT", "limit", "sell", 0.01, 100_000.0)  # locks 0.01 BTC
    view = client.venue_view(SYMBOLS, {}, light=True)
    assert not view.error and view.positions == {}
    assert view.balances == {"BTC": pytest.approx(0.05), "USDT": pytest.approx(10_000.0), "ETH": 0.0}


def test_a_futures_position_and_its_algo_stop_are_in_the_view_and_its_trigger_a_fill(
    venue: VenueThread, connect: Any
) -> None:
    _price(venue, "BTC/USDT", 60_000.0)
    clock = FakeClock()
    client, acct = connect(clock, futures={"BTC/USDT": 3})
    got: list[Any] = []
    client.bind(got.append)
    client.submit(Order("mp-vv-long", "BTC/USDT", Side.BUY, 0.003, "signal", "k-vv-long", clock.ms, stop_loss=1.0), 0.0, 0.0)
    entry = _wait_event(client, got, "mp-vv-long", OrderFilled).fill
    stop = Order("mp-vv-fstop", "BTC/USDT", Side.SELL, 0.003, "stop", "k-vv-fstop", clock.ms, order_type="stop", trigger=59_000.0)
    client.submit(stop, 0.0, 0.0)
    _wait_event(client, got, stop.client_order_id, OrderAccepted)
    view = client.venue_view(SYMBOLS, {}, light=True)
    assert not view.error and view.markets == {"BTC/USDT": "futures", "ETH/USDT": "spot"}
    assert view.positions == {"BTC/USDT": (pytest.approx(0.003), pytest.approx(entry.price))}
    assert view.balances == {"ETH": 0.0, "USDT": pytest.approx(10_000.0)}  # the spot pair's assets only
    (algo,) = view.open_orders
    assert algo.ours and (algo.type, algo.side, algo.qty, algo.trigger, algo.reduce_only) == (
        "STOP_MARKET", "sell", 0.003, 59_000.0, True)  # fmt: skip
    client.close()
    _price(venue, "BTC/USDT", 58_900.0)  # the algo stop triggers: a regular reduce-only order fills
    second, _ = connect(clock, account=acct, futures={"BTC/USDT": 3})
    full = second.venue_view(["BTC/USDT"], {"BTC/USDT": entry.ts})
    assert not full.error and full.positions == {"BTC/USDT": (0.0, 0.0)} and full.open_orders == ()
    booked, missed = full.fills
    assert booked.fill_id == entry.fill_id and booked.reason == "reconcile"  # a new client: the entry's reason unknown
    got2: list[Any] = []
    second.bind(got2.append)
    second.lookup(stop)
    assert _wait_event(second, got2, stop.client_order_id, OrderFilled).fill == missed
    assert missed.fill_id.startswith("binance-usdm:BTCUSDT:") and missed.reason == "stop"


def test_a_light_view_asks_for_no_trades_and_no_orders(venue: VenueThread, connect: Any) -> None:
    client, acct = connect()
    _by_hand(venue, acct).create_order("BTC/USDT", "market", "buy", 0.001)
    n = len(venue.server.stats.requests)
    view = client.venue_view(SYMBOLS, {}, light=True)
    asked = _paths(venue, acct.key, n)
    assert not view.error and view.light and view.fills == ()
    assert "/api/v3/openOrders" in asked and "/api/v3/account" in asked
    assert not [p for p in asked if p in ASKED_FOR_TRADES], asked
    n = len(venue.server.stats.requests)
    full = client.venue_view(SYMBOLS, {})
    assert not full.error and not full.light and full.fills == ()  # the hand-made trade is not ours
    assert "/api/v3/myTrades" in _paths(venue, acct.key, n)


def test_a_failure_is_a_view_with_one_line_and_no_secret(
    venue: VenueThread, connect: Any, secrets_in_logs: list[str]
) -> None:
    client, acct = connect()
    venue.server.fault("http", "GET /api/v3/openOrders", status=500, times=1)
    view = client.venue_view(SYMBOLS, {})
    assert view.error.startswith("venue view: ") and "open orders" in view.error
    assert "\n" not in view.error and acct.key not in view.error and acct.secret not in view.error
    assert (view.open_orders, view.fills, view.balances, view.symbols) == ((), (), {}, SYMBOLS)
    assert "not a pair" in client.venue_view(["SOL/USDT"], {}).error
    venue.server.fault("delay", "GET /api/v3/account", delay_s=1.0)
    assert client.venue_view(SYMBOLS, {}, light=True, timeout_s=0.3).error == "venue view: no answer in 0.3 s"
    assert not client.venue_view(SYMBOLS, {}, light=True).error  # the next one is whole again
    client.close()
    assert client.venue_view(SYMBOLS, {}).error == "venue view: the live client is not running"


# --------------------------------------------------------------------------- pagination, without a server


class _PagedApi:
    """``fetch_my_trades`` answering full pages forever (one trade a millisecond)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def call(self, what: str, name: str, *args: Any) -> Any:
        self.calls.append((name, *args))
        start = args[1]
        return [{"id": start + i, "order": "1", "timestamp": start + i, "amount": 1.0, "price": 1.0} for i in range(PAGE)]


class _Worker:
    def __init__(self) -> None:
        self.cfg = LiveConfig("k" * 8, "s" * 8, ("BTC/USDT",))
        self.api = _PagedApi()
        self.markets: dict[str, Any] = {}
        self.ledger = None


def test_trades_are_paged_on_from_the_last_trade_and_bounded() -> None:
    w = _Worker()
    now = int(time.time() * 1000)
    with pytest.raises(ViewError, match=f"more than {MAX_PAGES} requests"):
        asyncio.run(live_account._trades(w, "BTC/USDT", now - 3_600_000, now))
    starts = [c[2] for c in w.api.calls]
    assert len(starts) == MAX_PAGES and starts[1] == starts[0] + PAGE - 1  # on from the last trade's time
    assert all(c[3] == PAGE and c[4]["until"] - c[2] < live_account.SPOT_WINDOW_MS for c in w.api.calls)
