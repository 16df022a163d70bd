"""The local Binance exchange (tests/binance_exchange.py) driven through real ccxt, offline.

Every test talks to the server the way the live client will: ``ccxt.pro.binance`` (or
``ccxt.binance``) with its REST and websocket URLs pointed at 127.0.0.1, signing with HMAC,
getting Binance's answers and ccxt's error classes for them. The faults are the ones issue 13
lists: a dropped answer after the order was accepted, a 5xx, -1007, 429 then 418, -2010,
-1013, partial fills, the user stream closed mid-fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
import pytest_asyncio

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from binance_exchange import (  # noqa: E402
    DEFAULT_SECRET,
    BinanceExchange,
    ThreadedExchange,
    exchange_server,
    make_ccxt,
)

pytestmark = pytest.mark.timeout(20)
__all__ = ["exchange_server"]  # the fixture, imported for pytest

BTC = "BTC/USDT"


FAST = {"rateLimit": 5}  # ccxt's limiter stays on, 10x faster than Binance's 50 ms unit (some calls cost 30 units)


@pytest_asyncio.fixture
async def spot(exchange_server: BinanceExchange) -> AsyncIterator[Any]:
    ex = make_ccxt(exchange_server, "pro", **FAST)
    try:
        yield ex
    finally:
        await ex.close()


@pytest_asyncio.fixture
async def fut(exchange_server: BinanceExchange) -> AsyncIterator[Any]:
    ex = make_ccxt(exchange_server, "pro", default_type="swap", **FAST)
    try:
        yield ex
    finally:
        await ex.close()


def _sent(server: BinanceExchange, endpoint: str) -> list[dict[str, str]]:
    method, _, path = endpoint.partition(" ")
    return [r.params for r in server.stats.requests if r.method == method and r.path == path]


# --------------------------------------------------------------------------- spot basics


async def test_market_buy_with_client_id_fills_with_fee_in_base(exchange_server: BinanceExchange, spot: Any) -> None:
    await exchange_server.set_price(BTC, 65000.0, bid=64999.99, ask=65000.01)
    order = await spot.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "e1-buy-0001"})
    assert order["clientOrderId"] == "e1-buy-0001"
    assert order["status"] == "closed" and order["filled"] == pytest.approx(0.01)
    assert order["average"] == pytest.approx(65000.01)
    assert order["fee"] == {"currency": "BTC", "cost": pytest.approx(0.00001)}  # 0.1 % of what was received
    assert len(order["trades"]) == 1 and order["trades"][0]["id"]
    sent = _sent(exchange_server, "POST /api/v3/order")[-1]
    assert sent["newClientOrderId"] == "e1-buy-0001" and sent["newOrderRespType"] == "FULL"
    balance = await spot.fetch_balance()
    assert balance["BTC"]["free"] == pytest.approx(0.00999)
    assert balance["USDT"]["free"] == pytest.approx(10_000 - 650.0001)
    trades = await spot.fetch_my_trades(BTC)
    assert [t["order"] for t in trades] == [order["id"]]
    assert trades[0]["fee"]["currency"] == "BTC" and trades[0]["side"] == "buy" and trades[0]["takerOrMaker"] == "taker"


async def test_sell_fee_in_quote_and_bnb_when_configured(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.set_balance("BTC", 1.0)
    await exchange_server.set_price(BTC, 60000.0, bid=60000.0, ask=60000.01)
    o = await spot.create_order(BTC, "market", "sell", 0.1, None, {"clientOrderId": "e1-sell-1"})
    assert o["fee"]["currency"] == "USDT" and o["fee"]["cost"] == pytest.approx(6.0)
    exchange_server.add_account("bnb-key", "bnb-secret", balances={"USDT": 1000, "BNB": 1}, fee_in_bnb=True)
    await exchange_server.set_price("BNB/USDT", 600.0)
    ex = make_ccxt(exchange_server, "async", api_key="bnb-key")
    try:
        o = await ex.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "bnb-1"})
        assert o["fee"]["currency"] == "BNB"
        assert o["fee"]["cost"] == pytest.approx(0.001 * 60000.01 * 0.001 * 0.75 / 600.0, rel=1e-6)
    finally:
        await ex.close()


async def test_fetch_by_client_id_sends_orig_client_order_id(exchange_server: BinanceExchange, spot: Any) -> None:
    placed = await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "look-me-up"})
    found = await spot.fetch_order(None, BTC, {"clientOrderId": "look-me-up"})
    assert found["id"] == placed["id"] and found["status"] == "open"
    assert _sent(exchange_server, "GET /api/v3/order")[-1]["origClientOrderId"] == "look-me-up"
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await spot.fetch_order(None, BTC, {"clientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound):
        await spot.fetch_order("123", BTC)


async def test_duplicate_client_id_refused_only_while_open(exchange_server: BinanceExchange, spot: Any) -> None:
    await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "dup-1"})
    await exchange_server.set_price(BTC, 59990.0, bid=59989.99, ask=59990.0)  # the first one fills
    assert (await spot.fetch_order(None, BTC, {"clientOrderId": "dup-1"}))["status"] == "closed"
    await spot.create_order(BTC, "limit", "buy", 0.001, 59000.0, {"clientOrderId": "dup-1"})  # Binance takes it again
    assert exchange_server.stats.duplicate_client_ids() == {"dup-1": 2}


async def test_cancel_open_orders_and_unknown_order(exchange_server: BinanceExchange, spot: Any) -> None:
    o = await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "c-1"})
    assert [x["id"] for x in await spot.fetch_open_orders(BTC)] == [o["id"]]
    assert (await spot.fetch_balance())["USDT"]["used"] == pytest.approx(60.0)  # locked by the resting order
    c = await spot.cancel_order(o["id"], BTC)
    assert c["status"] == "canceled"
    assert await spot.fetch_open_orders(BTC) == []
    assert (await spot.fetch_balance())["USDT"]["used"] == 0
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await spot.cancel_order(o["id"], BTC)


# --------------------------------------------------------------------------- auth


async def test_wrong_signature_unknown_key_and_stale_timestamp(exchange_server: BinanceExchange) -> None:
    bad = make_ccxt(exchange_server, "async", secret="not-the-secret", **FAST)
    unknown = make_ccxt(exchange_server, "async", api_key="nobody", secret="x", **FAST)
    good = make_ccxt(exchange_server, "async", **FAST)
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await bad.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await unknown.fetch_balance()
        exchange_server.auth.clock_offset_ms = 30_000  # ccxt's recvWindow is 10 s
        with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
            await good.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "late-1"})
        exchange_server.auth.clock_offset_ms = -5_000
        with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
            await good.fetch_balance()
        exchange_server.auth.clock_offset_ms = 0
        await good.fetch_balance()
    finally:
        for ex in (bad, unknown, good):
            await ex.close()
    assert exchange_server.stats.orders == []
    assert exchange_server.auth.failures[-1022] == 1 and exchange_server.auth.failures[-1021] == 2


# --------------------------------------------------------------------------- filters and balance


async def test_filters_and_balance_refusals(exchange_server: BinanceExchange, spot: Any) -> None:
    await exchange_server.set_price(BTC, 65000.0)
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await spot.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await spot.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                     "quantity": "0.001", "price": "60000.005"})
    # ccxt maps -1013 by code to BadRequest unless the message names LOT_SIZE/PRICE_FILTER/PERCENT_PRICE_BY_SIDE
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        await spot.create_order(BTC, "limit", "buy", 0.00005, 60000.0)
    with pytest.raises(ccxt.InvalidOrder, match="PERCENT_PRICE_BY_SIDE"):
        await spot.create_order(BTC, "limit", "buy", 0.001, 10000.0)
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        await spot.create_order(BTC, "market", "buy", 1.0, None, {"clientOrderId": "too-big"})
    with pytest.raises(ccxt.InsufficientFunds):
        await spot.create_order(BTC, "limit", "sell", 0.01, 70000.0)
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "no spaces allowed"})
    assert exchange_server.stats.orders == []


# --------------------------------------------------------------------------- faults


async def test_dropped_answer_after_accept_order_exists_once(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.fault("drop", "POST /api/v3/order")
    with pytest.raises(ccxt.NetworkError):
        await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "drop-1"})
    found = await spot.fetch_order(None, BTC, {"clientOrderId": "drop-1"})  # look up before resending
    assert found["status"] == "closed" and found["filled"] == pytest.approx(0.001)
    assert len(exchange_server.stats.orders_with_client_id("drop-1")) == 1
    assert [t["order"] for t in await spot.fetch_my_trades(BTC)] == [found["id"]]


async def test_5xx_once_not_executed_then_retry(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.fault("http", "POST /api/v3/order", status=503)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "5xx-1"})
    with pytest.raises(ccxt.OrderNotFound):
        await spot.fetch_order(None, BTC, {"clientOrderId": "5xx-1"})
    await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "5xx-1"})
    assert exchange_server.stats.counts["POST /api/v3/order"] == 2
    assert len(exchange_server.stats.orders_with_client_id("5xx-1")) == 1


async def test_1007_timeout_execution_unknown_but_executed(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.fault("code", "POST /api/v3/order")  # -1007, executed
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "t-1007"})
    assert (await spot.fetch_order(None, BTC, {"clientOrderId": "t-1007"}))["status"] == "open"
    exchange_server.fault("code", "POST /api/v3/order", code=-1006, execute=False)
    with pytest.raises(ccxt.OperationFailed, match="-1006"):
        await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "t-1006"})
    with pytest.raises(ccxt.OrderNotFound):
        await spot.fetch_order(None, BTC, {"clientOrderId": "t-1006"})


async def test_injected_insufficient_and_filter_failures(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.fault("insufficient", "POST /api/v3/order")
    with pytest.raises(ccxt.InsufficientFunds):
        await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "f-1"})
    exchange_server.fault("filter", "POST /api/v3/order", filter="LOT_SIZE")
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: LOT_SIZE"):
        await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "f-2"})
    assert exchange_server.stats.orders == []
    assert [k for k, _m, _p in exchange_server.faults.fired] == ["insufficient", "filter"]


async def test_429_then_418_ban_with_retry_after(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.limiter.ban_scale = 0.01  # 2 minutes -> 1.2 s
    exchange_server.fault("rate_limit", None, retry_after_s=5)
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await spot.fetch_balance()
    assert spot.last_response_headers["Retry-After"] == "5"
    with pytest.raises(ccxt.DDoSProtection, match="418"):  # did not wait: banned
        await spot.fetch_balance()
    assert 1 <= int(spot.last_response_headers["Retry-After"]) <= 2
    with pytest.raises(ccxt.DDoSProtection, match="IP banned until"):
        await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "banned-1"})
    await asyncio.sleep(1.3)
    await spot.fetch_balance()
    assert exchange_server.stats.orders == []
    # the weight limit itself: 429 when the minute's weight is used up
    exchange_server.limiter.venues["spot"].weight_per_min = exchange_server.limiter.venues["spot"].used + 20
    await spot.fetch_balance()  # weight 20
    with pytest.raises(ccxt.DDoSProtection, match="Too much request weight"):
        await spot.fetch_balance()
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        await spot.fetch_balance()
    assert exchange_server.limiter.venues["spot"].bans == 2


async def test_order_rate_limit_1015(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.limiter.venues["spot"].orders_per_10s = 2
    for i in range(2):
        await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": f"r-{i}"})
    with pytest.raises(ccxt.DDoSProtection, match="-1015"):
        await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "r-2"})
    assert "Retry-After" in spot.last_response_headers
    assert [o.client_order_id for o in exchange_server.stats.orders] == ["r-0", "r-1"]


async def test_partial_fills_have_distinct_trade_ids(exchange_server: BinanceExchange, spot: Any) -> None:
    await exchange_server.set_price(BTC, 65000.0, bid=64999.99, ask=65000.01)
    exchange_server.fault("partial", "POST /api/v3/order", parts=3)
    exchange_server.spot.sweep_ticks = 1
    o = await spot.create_order(BTC, "market", "buy", 0.003, None, {"clientOrderId": "p-3"})
    ids = [t["id"] for t in o["trades"]]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert sum(t["amount"] for t in o["trades"]) == pytest.approx(0.003)
    assert [t["price"] for t in o["trades"]] == pytest.approx([65000.01, 65000.02, 65000.03])
    assert o["average"] == pytest.approx(65000.02)
    exchange_server.spot.sweep_ticks = 0
    # a resting limit in parts fills one part per crossing
    exchange_server.spot.fill_parts = 2
    await exchange_server.set_price(BTC, 65000.0)
    lim = await spot.create_order(BTC, "limit", "buy", 0.002, 64000.0, {"clientOrderId": "p-lim"})
    await exchange_server.set_price(BTC, 63990.0, bid=63989.99, ask=63990.0)
    assert (await spot.fetch_order(lim["id"], BTC))["status"] == "open"
    assert (await spot.fetch_order(lim["id"], BTC))["filled"] == pytest.approx(0.001)
    await exchange_server.set_price(BTC, 63980.0, bid=63979.99, ask=63980.0)
    done = await spot.fetch_order(lim["id"], BTC)
    assert done["status"] == "closed" and done["average"] == pytest.approx(64000.0)
    trades = await spot.fetch_my_trades(BTC)
    assert len({t["id"] for t in trades}) == len(trades) == 5
    assert all(t["takerOrMaker"] == "maker" for t in trades if t["order"] == lim["id"])


async def test_stop_loss_limit_triggers_on_the_moving_price(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.set_balance("BTC", 0.01)
    await exchange_server.set_price(BTC, 65000.0)
    with pytest.raises(ccxt.InvalidOrder, match="trigger immediately"):
        await spot.create_order(BTC, "limit", "sell", 0.01, 65100.0, {"stopLossPrice": 65500.0})
    stop = await spot.create_order(BTC, "limit", "sell", 0.01, 63900.0, {"stopLossPrice": 64000.0, "clientOrderId": "sl-1"})
    assert _sent(exchange_server, "POST /api/v3/order")[-1]["type"] == "STOP_LOSS_LIMIT"
    assert (await spot.fetch_balance())["BTC"]["used"] == pytest.approx(0.01)
    await exchange_server.set_price(BTC, 64500.0)
    assert (await spot.fetch_order(stop["id"], BTC))["status"] == "open"
    await exchange_server.set_price(BTC, 63950.0)  # through the stop, above the limit: sells at the bid
    filled = await spot.fetch_order(stop["id"], BTC)
    assert filled["status"] == "closed" and filled["average"] == pytest.approx(63949.99)


async def test_oco_one_leg_fills_the_other_expires(exchange_server: BinanceExchange, spot: Any) -> None:
    exchange_server.set_balance("BTC", 0.01)
    await exchange_server.set_price(BTC, 65000.0)
    res = await spot.privatePostOrderListOco({
        "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01", "aboveType": "LIMIT_MAKER", "abovePrice": "66000",
        "belowType": "STOP_LOSS_LIMIT", "belowStopPrice": "64000", "belowPrice": "63900", "belowTimeInForce": "GTC",
        "listClientOrderId": "oco-1"})
    assert res["listClientOrderId"] == "oco-1" and len(res["orders"]) == 2
    assert (await spot.fetch_balance())["BTC"]["used"] == pytest.approx(0.01)
    await exchange_server.set_price(BTC, 66010.0)
    legs = [await spot.fetch_order(str(x["orderId"]), BTC) for x in res["orders"]]
    assert [(o["info"]["type"], o["status"]) for o in legs] == [("LIMIT_MAKER", "closed"), ("STOP_LOSS_LIMIT", "expired")]
    assert (await spot.fetch_balance())["BTC"]["total"] == pytest.approx(0)


# --------------------------------------------------------------------------- spot user data stream


async def _until(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_user_stream_delivers_fill_to_watch_orders_and_trades(exchange_server: BinanceExchange, spot: Any) -> None:
    orders = asyncio.ensure_future(spot.watch_orders(BTC))
    await _until(lambda: exchange_server.spot.subscribers() == 1)
    assert exchange_server.stats.counts["WS userDataStream.subscribe.signature"] == 1
    trades = asyncio.ensure_future(spot.watch_my_trades(BTC))
    await asyncio.sleep(0.05)
    placed = await spot.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "ws-1"})
    got = await asyncio.wait_for(orders, 5)
    assert got[-1]["clientOrderId"] == "ws-1"
    mine = await asyncio.wait_for(trades, 5)
    assert mine[-1]["order"] == placed["id"] and mine[-1]["fee"]["currency"] == "BTC"
    assert mine[-1]["id"] == placed["trades"][0]["id"]
    for _ in range(3):
        if spot.orders.hashmap[BTC][placed["id"]]["status"] == "closed":
            break
        await asyncio.wait_for(spot.watch_orders(BTC), 5)
    assert spot.orders.hashmap[BTC][placed["id"]]["status"] == "closed"


async def test_user_stream_balance_events_and_bad_signature(exchange_server: BinanceExchange, spot: Any) -> None:
    balance = asyncio.ensure_future(spot.watch_balance())
    await _until(lambda: exchange_server.spot.subscribers() == 1)
    await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "wb-1"})
    got = await asyncio.wait_for(balance, 5)
    assert got["USDT"]["used"] == pytest.approx(60.0)
    bad = make_ccxt(exchange_server, "pro", secret="wrong")
    try:
        # Binance answers {"id", "status": 400, "error": {"code": -1022, ...}}; ccxt 4.5.90 then deletes the
        # 'spot' subscription twice (handle_ws_error, then ensure_user_data_stream_ws_subscribe_signature),
        # so the caller sees KeyError('spot') instead of AuthenticationError.
        with pytest.raises((ccxt.AuthenticationError, KeyError)):
            await asyncio.wait_for(bad.watch_orders(BTC), 5)
    finally:
        await bad.close()
    assert exchange_server.auth.failures[-1022] == 1


async def test_user_stream_closed_mid_fill_rest_has_the_rest(exchange_server: BinanceExchange, spot: Any) -> None:
    first = asyncio.ensure_future(spot.watch_my_trades(BTC))
    await _until(lambda: exchange_server.spot.subscribers() == 1)
    exchange_server.fault("partial", "POST /api/v3/order", parts=2)
    exchange_server.fault("close_user_stream", "POST /api/v3/order")
    placed = await spot.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "mid-1"})
    assert len(placed["trades"]) == 2
    streamed = await asyncio.wait_for(first, 5)
    assert [t["id"] for t in streamed] == [placed["trades"][0]["id"]]  # the second fill never came
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(spot.watch_my_trades(BTC), 5)  # the closed socket surfaces
    assert exchange_server.spot.subscribers() == 0
    rest = await spot.fetch_my_trades(BTC)
    assert {t["id"] for t in rest} == {t["id"] for t in placed["trades"]}
    again = asyncio.ensure_future(spot.watch_orders(BTC))  # a new watch resubscribes
    await _until(lambda: exchange_server.spot.subscribers() == 1)
    await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "mid-2"})
    assert (await asyncio.wait_for(again, 5))[-1]["clientOrderId"] == "mid-2"


async def test_silent_terminated_and_malformed_user_streams(exchange_server: BinanceExchange, spot: Any) -> None:
    """What a client's staleness watchdog is for: each of these leaves a pending watch hanging."""
    watch = asyncio.ensure_future(spot.watch_orders(BTC))
    await _until(lambda: exchange_server.spot.subscribers() == 1)
    exchange_server.mute_user_streams(True)  # silent: nothing arrives, the socket stays up
    placed = await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "quiet-1"})
    await asyncio.sleep(0.2)
    assert not watch.done() and exchange_server.spot.events_dropped >= 2
    assert (await spot.fetch_order(placed["id"], BTC))["status"] == "closed"  # REST is the safety net
    exchange_server.mute_user_streams(False)
    # eventStreamTerminated: ccxt drops the subscription but does not fail the pending watch;
    # only a new watch subscribes again, and then both get the next event
    assert await exchange_server.spot.terminate_subscriptions() == 1
    await asyncio.sleep(0.1)
    assert not watch.done()
    again = asyncio.ensure_future(spot.watch_orders(BTC))
    await _until(lambda: exchange_server.spot.subscribers() == 1)
    assert exchange_server.stats.counts["WS userDataStream.subscribe.signature"] == 2
    await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "quiet-2"})
    assert (await asyncio.wait_for(watch, 5))[-1]["clientOrderId"] == "quiet-2"
    assert (await asyncio.wait_for(again, 5))[-1]["clientOrderId"] == "quiet-2"
    # one truncated JSON frame kills ccxt.pro's receive loop without failing anything
    hung = asyncio.ensure_future(spot.watch_orders(BTC))
    await asyncio.sleep(0.05)
    assert await exchange_server.send_malformed_user_event() == 1
    await spot.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "quiet-3"})
    await asyncio.sleep(0.3)
    assert not hung.done()
    hung.cancel()


async def test_clock_offset_fixed_by_ccxt_time_difference(exchange_server: BinanceExchange) -> None:
    exchange_server.auth.clock_offset_ms = -20_000  # the server is 20 s behind: "ahead of the server"
    ex = make_ccxt(exchange_server, "async", **FAST)
    try:
        with pytest.raises(ccxt.InvalidNonce):
            await ex.fetch_balance()
        await ex.load_time_difference()  # GET /api/v3/time reports the server's (offset) clock
        assert ex.options["timeDifference"] == pytest.approx(20_000, abs=1_000)
        await ex.fetch_balance()
    finally:
        await ex.close()


# --------------------------------------------------------------------------- futures


async def test_futures_entry_stop_and_trigger(exchange_server: BinanceExchange, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    await exchange_server.set_price(BTC, 65000.0)
    assert (await fut.fetch_position_mode(sym))["hedged"] is False
    await fut.set_leverage(5, sym)
    entry = await fut.create_order(sym, "market", "buy", 0.01, None, {"clientOrderId": "fe-1"})
    assert entry["status"] == "closed" and entry["filled"] == pytest.approx(0.01)
    stop = await fut.create_order(sym, "market", "sell", 0.01, None,
                                  {"stopLossPrice": 64000.0, "reduceOnly": True, "clientOrderId": "fs-1"})
    sent = _sent(exchange_server, "POST /fapi/v1/algoOrder")[-1]
    assert sent["type"] == "STOP_MARKET" and sent["clientAlgoId"] == "fs-1" and sent["reduceOnly"] == "true"
    assert (await fut.fetch_order(None, sym, {"clientOrderId": "fs-1", "trigger": True}))["status"] == "open"
    pos = await fut.fetch_positions([sym])
    assert [(p["side"], p["contracts"]) for p in pos] == [("long", 0.01)]
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await fut.create_order(sym, "market", "sell", 0.01, None, {"stopLossPrice": 66000.0, "reduceOnly": True})
    await exchange_server.set_price(BTC, 63990.0)
    assert exchange_server.futures.positions() == {}
    assert (await fut.fetch_order(stop["id"], sym, {"trigger": True}))["status"] == "closed"
    assert await fut.fetch_positions([sym]) == []
    bal = await fut.fetch_balance()
    assert bal["USDT"]["total"] < 10_000  # lost on the stop, paid fees


async def test_futures_errors_map_like_fapi_binance_com(exchange_server: BinanceExchange, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # reduce-only with no position
        await fut.create_order(sym, "market", "sell", 0.01, None, {"reduceOnly": True})
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        await fut.create_order(sym, "market", "buy", 10, None)
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        await fut.create_order(sym, "market", "buy", 0.001, None)
    with pytest.raises(ccxt.OrderNotFound):
        await fut.fetch_order(None, sym, {"clientOrderId": "nope"})
    exchange_server.futures.dual_side = True
    assert (await fut.fetch_position_mode(sym))["hedged"] is True
    with pytest.raises(ccxt.OperationRejected, match="-4061"):
        await fut.create_order(sym, "market", "buy", 0.01, None)


async def test_futures_countdown_cancels_entries_not_algo_stops(exchange_server: BinanceExchange, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    await exchange_server.set_price(BTC, 65000.0)
    await fut.create_order(sym, "market", "buy", 0.01, None, {"clientOrderId": "cd-pos"})
    await fut.create_order(sym, "limit", "buy", 0.01, 63000.0, {"clientOrderId": "cd-entry"})
    await fut.create_order(sym, "market", "sell", 0.01, None, {"stopLossPrice": 62000.0, "reduceOnly": True})
    await fut.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 200})
    await _until(lambda: exchange_server.futures.countdown_fired != [])
    assert await fut.fetch_open_orders(sym) == []
    assert len(await fut.fetch_open_orders(sym, params={"trigger": True})) == 1  # the stop survives
    exchange_server.futures.countdown_cancels_algo = True
    await fut.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 100})
    await _until(lambda: len(exchange_server.futures.countdown_fired) == 2)
    assert await fut.fetch_open_orders(sym, params={"trigger": True}) == []


async def test_futures_user_stream_over_listen_key(exchange_server: BinanceExchange, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    watch = asyncio.ensure_future(fut.watch_orders(sym))
    await _until(lambda: exchange_server.futures.subscribers() == 1)
    assert exchange_server.stats.counts["POST /fapi/v1/listenKey"] == 1
    placed = await fut.create_order(sym, "market", "buy", 0.01, None, {"clientOrderId": "fws-1"})
    got = await asyncio.wait_for(watch, 5)
    assert got[-1]["clientOrderId"] == "fws-1" and got[-1]["id"] == placed["id"]
    assert (await fut.fetch_my_trades(sym))[-1]["order"] == placed["id"]
    watch = asyncio.ensure_future(fut.watch_orders(sym))
    await asyncio.sleep(0.05)
    stop = await fut.create_order(sym, "market", "sell", 0.01, None, {"stopLossPrice": 60000.0, "reduceOnly": True,
                                                                     "clientOrderId": "fws-stop"})
    algo = await asyncio.wait_for(watch, 5)  # ALGO_UPDATE
    assert algo[-1]["id"] == stop["id"] and algo[-1]["status"] == "open"


async def test_futures_partial_fills_stream_closed_and_reduce_only_capped(exchange_server: BinanceExchange, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    trades = asyncio.ensure_future(fut.watch_my_trades(sym))
    await _until(lambda: exchange_server.futures.subscribers() == 1)
    exchange_server.fault("partial", "POST /fapi/v1/order", parts=2)
    exchange_server.fault("close_user_stream", "POST /fapi/v1/order")
    entry = await fut.create_order(sym, "market", "sell", 0.02, None, {"clientOrderId": "fp-1"})
    assert entry["status"] == "closed"
    first = await asyncio.wait_for(trades, 5)
    assert len(first) == 1 and first[0]["amount"] == pytest.approx(0.01)
    rest = await fut.fetch_my_trades(sym)
    assert len(rest) == 2 and len({t["id"] for t in rest}) == 2
    assert exchange_server.futures.subscribers() == 0
    close = await fut.create_order(sym, "market", "buy", 0.05, None, {"reduceOnly": True, "clientOrderId": "fp-close"})
    assert close["filled"] == pytest.approx(0.02) and close["status"] == "expired"  # only what reduces
    assert exchange_server.is_flat()


async def test_futures_dropped_answer_order_exists(exchange_server: BinanceExchange, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    exchange_server.fault("drop", "POST /fapi/v1/order")
    with pytest.raises(ccxt.NetworkError):
        await fut.create_order(sym, "market", "buy", 0.01, None, {"clientOrderId": "fdrop-1"})
    found = await fut.fetch_order(None, sym, {"clientOrderId": "fdrop-1"})
    assert found["status"] == "closed"
    assert len(exchange_server.stats.orders_with_client_id("fdrop-1")) == 1


async def test_kill_switch_through_ccxt_leaves_the_server_flat(exchange_server: BinanceExchange, spot: Any, fut: Any) -> None:
    sym = "BTC/USDT:USDT"
    exchange_server.set_balance("BTC", 0.01)
    await exchange_server.set_price(BTC, 65000.0)
    await spot.create_order(BTC, "limit", "buy", 0.001, 60000.0, {"clientOrderId": "k-entry"})
    await spot.create_order(BTC, "limit", "sell", 0.01, 63900.0, {"stopLossPrice": 64000.0, "clientOrderId": "k-stop"})
    await fut.create_order(sym, "market", "sell", 0.01, None, {"clientOrderId": "k-short"})
    await fut.create_order(sym, "limit", "sell", 0.01, 66000.0, {"clientOrderId": "k-fentry"})
    await fut.create_order(sym, "market", "buy", 0.01, None, {"stopLossPrice": 66500.0, "reduceOnly": True, "clientOrderId": "k-fstop"})
    assert not exchange_server.is_flat()
    assert exchange_server.exposure()["futures_positions"] == ["BTCUSDT -0.010"]
    await spot.cancel_all_orders(BTC)
    await fut.cancel_all_orders(sym)
    await fut.cancel_all_orders(sym, {"trigger": True})
    for p in await fut.fetch_positions([sym]):
        side = "buy" if p["side"] == "short" else "sell"
        await fut.create_order(sym, "market", side, p["contracts"], None, {"reduceOnly": True, "clientOrderId": "k-close"})
    assert exchange_server.is_flat(), exchange_server.exposure()
    assert await spot.fetch_open_orders(BTC) == [] and await fut.fetch_positions([sym]) == []


async def test_delayed_answer_times_out_in_ccxt_but_the_order_is_placed(exchange_server: BinanceExchange) -> None:
    ex = make_ccxt(exchange_server, "async", timeout=300, **FAST)
    try:
        exchange_server.fault("delay", "POST /api/v3/order", delay_s=1.0)
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(BTC, "market", "buy", 0.001, None, {"clientOrderId": "slow-1"})
        assert (await ex.fetch_order(None, BTC, {"clientOrderId": "slow-1"}))["status"] == "closed"
    finally:
        await ex.close()


async def test_the_random_walk_moves_pairs_with_working_orders(exchange_server: BinanceExchange, spot: Any) -> None:
    await spot.create_order("ETH/USDT", "limit", "buy", 0.01, 3000.0, {"clientOrderId": "walk-1"})
    m = exchange_server.market("ETH/USDT")
    before = m.last_trade_id
    exchange_server.start_steady(100.0)
    await _until(lambda: m.last_trade_id > before + 3)
    await exchange_server.stop_steady()
    assert "ETHUSDT" in exchange_server.active_ids()


# --------------------------------------------------------------------------- harness


def test_threaded_server_with_sync_ccxt() -> None:
    with ThreadedExchange() as t:
        ex = make_ccxt(t.server, "sync", **FAST)
        t.run(t.server.set_price(BTC, 50000.0, bid=49999.99, ask=50000.01))
        o = ex.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "sync-1"})
        assert o["status"] == "closed" and o["average"] == pytest.approx(50000.01)
        assert ex.fetch_balance()["BTC"]["free"] == pytest.approx(0.001998)
        t.server.fault("http", "POST /api/v3/order", status=502)
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "sync-2"})


async def test_sync_ccxt_and_secret_never_logged(exchange_server: BinanceExchange, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ex = make_ccxt(exchange_server, "sync")
    assert ex.urls["api"]["private"] == f"{exchange_server.rest_url}/api/v3"
    assert BTC in ex.markets and "BTC/USDT:USDT" in ex.markets
    assert DEFAULT_SECRET not in repr(exchange_server.auth.accounts[exchange_server.api_key])
    bad = make_ccxt(exchange_server, "pro", secret="wrong-secret-value")
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await bad.fetch_balance()
    finally:
        await bad.close()
    text = caplog.text + repr(exchange_server.stats.requests)
    assert DEFAULT_SECRET not in text and "wrong-secret-value" not in text


def test_standalone_prints_urls_not_the_secret(tmp_path: Path) -> None:
    env = {**os.environ, "BINANCE_EXCHANGE_SECRET": "standalone-secret-xyz"}
    proc = subprocess.Popen([sys.executable, str(_TESTS_DIR / "binance_exchange.py"), "--port", "0", "--rate", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("binance-exchange ready rest=http://127.0.0.1:")
        assert "ws_api=ws://127.0.0.1:" in line and "standalone-secret-xyz" not in line
        rest = line.split()[2].removeprefix("rest=")
        req = urllib.request.Request(f"{rest}/_test/fault", data=json.dumps({"kind": "http", "endpoint": "GET /api/v3/time"}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        assert json.loads(urllib.request.urlopen(req, timeout=5).read())["armed"] == "http"
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(f"{rest}/api/v3/time", timeout=5)
        state = json.loads(urllib.request.urlopen(f"{rest}/_test/state", timeout=5).read())
        assert state["flat"] is True and state["counts"]["GET /api/v3/time"] == 1
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
    out, err = proc.communicate()
    assert "standalone-secret-xyz" not in out + err
