"""The live Binance execution client: orders never lost or doubled, fills booked once, fees in
the quote currency, the order boundary from the exchange, rate limits and bans reported, no
secret in any log or in the book.

Unit tests for what needs no server (error classes, fees, the order ledger, market rules), then
the real client against ``tests/binance_exchange.py`` (a local Binance-protocol exchange). The
exchange runs on its own thread and event loop (``VenueThread``), as a real venue would: the
client's worker thread talks to it over TCP while the test thread plays the engine thread
(``drain()`` delivers events to the core there). Where it matters the client sits under the
real ``TradingCore`` with a real ``Store`` (``tests.core_harness.make_core``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import pytest

from engine.core.markets import MarketRules, check_order, price_band
from engine.core.models import Side
from engine.core.orders import (
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
)
from engine.execution.binance_connect import LiveConfig, LiveConfigError, point_at
from engine.execution.binance_live import BinanceLiveClient, LiveClientError
from engine.execution.binance_rules import rules_from_markets
from engine.execution.live_errors import Outcome, Scrubber, classify
from engine.execution.live_fills import FeePrices, fill_from_trade
from engine.execution.live_orders import OrderLedger, Track
from engine.execution.live_worker import LiveStartError
from tests.binance_exchange import point_ccxt_at
from tests.core_harness import FakeClock, Harness, make_core, safe_list
from tests.live_venue import Account, VenueThread
from tests.store_seed import seed_open_position

pytestmark = pytest.mark.timeout(60)

MARKETS_JSON = Path(__file__).resolve().parent / "data" / "binance_markets.json"
SYMBOLS = ("BTC/USDT", "ETH/USDT")
BTC_ONLY = {"BTC/USDT": "momentum"}
# BTC/USDT's filters in tests/data/binance_markets.json: LOT_SIZE, MARKET_LOT_SIZE maxQty 900,
# NOTIONAL min 5 (its max does not apply to MARKET), PERCENT_PRICE_BY_SIDE x0.2..x5 both sides
BTC_RULES = MarketRules(1e-05, 0.01, 1e-05, 5.0, max_qty=900.0, bid_up=5.0, bid_down=0.2, ask_up=5.0, ask_down=0.2)


# --------------------------------------------------------------------------- unit: errors and secrets


def _exc(cls: type[Exception], text: str, status: int | None = None, headers: dict[str, str] | None = None) -> Exception:
    e = cls(text)
    if status is not None:
        e.http_status = status  # type: ignore[attr-defined]
        e.http_headers = headers or {}  # type: ignore[attr-defined]
    return e


@pytest.mark.parametrize(
    ("exc", "outcome", "retryable"),
    [
        (_exc(ccxt.RequestTimeout, "binance POST http://h/api/v3/order"), Outcome.AMBIGUOUS, True),
        (_exc(ccxt.ExchangeNotAvailable, "binance POST http://h/api/v3/order 503 Service Unavailable"), Outcome.AMBIGUOUS, True),
        (_exc(ccxt.ExchangeError, 'binance {"code":-1006,"msg":"An unexpected response"}'), Outcome.AMBIGUOUS, True),
        (_exc(ccxt.RequestTimeout, 'binance {"code":-1007,"msg":"Timeout waiting"}'), Outcome.AMBIGUOUS, True),
        # a 5xx is never a definite answer, whatever its body says
        (_exc(ccxt.BadRequest, 'binance {"code":-1013,"msg":"x"}', 503), Outcome.AMBIGUOUS, True),
        (_exc(ccxt.OrderNotFound, 'binance {"code":-2013,"msg":"Order does not exist."}'), Outcome.NOT_FOUND, True),
        (_exc(ccxt.InvalidOrder, 'binance {"code":-2010,"msg":"Duplicate order sent."}'), Outcome.DUPLICATE, True),
        (_exc(ccxt.InsufficientFunds, "binance Account has insufficient balance for requested action."), Outcome.REFUSED, True),
        (_exc(ccxt.BadRequest, 'binance {"code":-1013,"msg":"Filter failure: NOTIONAL"}'), Outcome.REFUSED, False),
        # ccxt picks classes by host: a local server's -1013 may come as a bare ExchangeError
        (_exc(ccxt.ExchangeError, 'binance {"code":-1013,"msg":"Filter failure: LOT_SIZE"}'), Outcome.REFUSED, False),
        (_exc(ccxt.InvalidNonce, 'binance {"code":-1021,"msg":"Timestamp outside recvWindow"}'), Outcome.REFUSED, True),
        (_exc(ccxt.AuthenticationError, 'binance {"code":-2015,"msg":"Invalid API-key"}'), Outcome.REFUSED, False),
        (_exc(ccxt.DDoSProtection, "binance 429 Too Many Requests {}", 429, {"Retry-After": "7"}), Outcome.RATE_LIMITED, True),
        (_exc(ccxt.DDoSProtection, 'binance 418 {"code":-1003,"msg":"banned"}', 418), Outcome.BANNED, True),
        (ConnectionResetError("reset by peer"), Outcome.AMBIGUOUS, True),
        (ccxt.BadResponse("binance garbled"), Outcome.AMBIGUOUS, True),
    ],
)
def test_classify_tells_a_refusal_from_an_unknown_outcome(exc: Exception, outcome: Outcome, retryable: bool) -> None:
    c = classify(exc, Scrubber(["k" * 8]), "BTC/USDT create x")
    assert c.outcome is outcome, c
    if outcome is Outcome.REFUSED:
        assert c.retryable is retryable
    assert "\n" not in c.reason and len(c.reason) <= 240


def test_retry_after_is_read_from_the_response_headers() -> None:
    c = classify(_exc(ccxt.DDoSProtection, "binance 429", 429, {"retry-after": "7"}), Scrubber([]))
    assert c.outcome is Outcome.RATE_LIMITED and c.retry_after == 7.0 and c.http == 429


def test_the_scrubber_hides_the_key_the_secret_and_signed_parameters() -> None:
    key, secret = "AKEY1234abcd", "SECRETsecret5678"
    scrub = Scrubber([key, secret])
    text = (f"binance GET http://h/api/v3/order?symbol=BTCUSDT&timestamp=1&signature=deadbeef "
            f'headers {{"X-MBX-APIKEY": "{key}"}} body a=1&signature=cafe {{"apiKey": "{key}", "signature": "x"}} {secret}')
    out = scrub(text)
    for leaked in (key, secret, "deadbeef", "cafe"):
        assert leaked not in out
    assert "symbol=BTCUSDT" in out  # what is not secret stays, so the log still says what failed


def test_config_never_prints_its_secret_and_refuses_what_it_cannot_run() -> None:
    cfg = LiveConfig("the-key-1234", "the-secret-5678", SYMBOLS)
    assert "the-secret-5678" not in repr(cfg) and "the-key-1234" not in str(cfg)
    with pytest.raises(LiveConfigError, match="not among the symbols"):
        LiveConfig("k" * 8, "s" * 8, SYMBOLS, futures={"SOL/USDT": 2})
    with pytest.raises(LiveConfigError, match="leverage 0"):
        LiveConfig("k" * 8, "s" * 8, SYMBOLS, futures={"BTC/USDT": 0})
    both = LiveConfig("k" * 8, "s" * 8, SYMBOLS, futures={"BTC/USDT": 3})
    assert both.venue_symbol("BTC/USDT") == "BTC/USDT:USDT" and both.venue_symbol("ETH/USDT") == "ETH/USDT"
    assert both.spot_symbols() == ["ETH/USDT"]
    with pytest.raises(LiveConfigError, match="API key"):
        LiveConfig("", "s" * 8, SYMBOLS)
    with pytest.raises(LiveConfigError, match="must start with http"):
        LiveConfig("k" * 8, "s" * 8, SYMBOLS, rest_url="ftp://x")


def test_point_at_moves_every_endpoint_to_one_host_keeping_paths() -> None:
    import ccxt.pro

    ex = ccxt.pro.binance()
    point_at(ex, "http://127.0.0.1:9", "ws://127.0.0.1:10")
    api = ex.urls["api"]
    assert api["private"] == "http://127.0.0.1:9/api/v3" and api["fapiPrivate"] == "http://127.0.0.1:9/fapi/v1"
    assert api["ws"]["spot"] == "ws://127.0.0.1:10/ws"
    assert api["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:10/ws-api/v3"
    assert all("binance.com" not in v for v in api.values() if isinstance(v, str))


# --------------------------------------------------------------------------- unit: market rules


def _markets() -> dict[str, Any]:
    import json

    return json.loads(MARKETS_JSON.read_text())


def test_rules_come_from_the_exchange_filters() -> None:
    markets = _markets()
    rules = rules_from_markets(markets, ["BTC/USDT", "ETH/USDT"])
    assert rules["BTC/USDT"] == BTC_RULES
    assert rules["ETH/USDT"].amount_step == 0.0001
    # the filters win over ccxt's unified fields; a NOTIONAL that does not apply to MARKET is 0
    m = markets["BTC/USDT"]
    filters = m["info"]["filters"]
    for f in filters:
        if f["filterType"] == "NOTIONAL":
            f["applyMinToMarket"] = False
        if f["filterType"] == "MARKET_LOT_SIZE":
            f["stepSize"], f["minQty"] = "0.00100000", "0.00200000"
    r = rules_from_markets(markets, ["BTC/USDT"])["BTC/USDT"]
    assert r.min_notional == 0.0 and r.amount_step == 0.001 and r.min_qty == 0.002


def test_rules_hold_the_maximums_and_the_price_band() -> None:
    r = rules_from_markets(_markets(), ["BTC/USDT"])["BTC/USDT"]
    assert r.max_qty == 900.0  # MARKET_LOT_SIZE maxQty, smaller than LOT_SIZE's 9000
    assert price_band(r, "buy", 100.0) == (20.0, 500.0)  # PERCENT_PRICE_BY_SIDE bid x0.2..x5
    assert "above exchange maximum 900" in (check_order(901.0, 60_000.0, r) or "")
    assert check_order(1.0, 60_000.0, r) is None
    with pytest.raises(ValueError, match="not listed"):
        rules_from_markets(_markets(), ["NOPE/USDT"])


# --------------------------------------------------------------------------- unit: fees and the ledger

MARKET = {"id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT"}


def _trade(tid: int, qty: float, price: float, fee: float, asset: str, order: str = "7") -> dict[str, Any]:
    return {"id": str(tid), "order": order, "amount": qty, "price": price, "timestamp": 1_700_000_000_000,
            "fee": {"cost": fee, "currency": asset}}  # fmt: skip


def test_a_buy_whose_fee_is_taken_in_base_books_what_the_account_received() -> None:
    tf = fill_from_trade(_trade(1, 0.01, 60_000.0, 0.00001, "BTC"), market=MARKET, client_order_id="c",
                         side=Side.BUY, reason="signal", fee_prices=FeePrices())  # fmt: skip
    f = tf.fill
    assert f.fill_id == "binance:BTCUSDT:1" and f.qty == pytest.approx(0.00999)
    assert f.fee == pytest.approx(0.6)  # 0.00001 BTC x 60000
    # the book's cash moves by exactly what the exchange charged: 0.01 x 60000
    assert f.qty * f.price + f.fee == pytest.approx(600.0)


def test_fees_in_quote_and_in_bnb() -> None:
    fp = FeePrices()
    sell = fill_from_trade(_trade(2, 0.01, 60_000.0, 0.6, "USDT"), market=MARKET, client_order_id="c",
                           side=Side.SELL, reason="stop", fee_prices=fp)  # fmt: skip
    assert sell.fill.qty == 0.01 and sell.fill.fee == 0.6
    unpriced = fill_from_trade(_trade(3, 0.01, 60_000.0, 0.001, "BNB"), market=MARKET, client_order_id="c",
                               side=Side.BUY, reason="signal", fee_prices=fp)  # fmt: skip
    assert unpriced.fill.fee == 0.0 and unpriced.fill.qty == 0.01 and "no known USDT price" in unpriced.note
    assert fp.unpriced == 1 and ("BNB", "USDT") in fp.missing
    fp.set("BNB", "USDT", 500.0)
    priced = fill_from_trade(_trade(4, 0.01, 60_000.0, 0.001, "BNB"), market=MARKET, client_order_id="c",
                             side=Side.BUY, reason="signal", fee_prices=fp)  # fmt: skip
    assert priced.fill.fee == pytest.approx(0.5)


def _ledger() -> tuple[OrderLedger, list[Any]]:
    out: list[Any] = []
    return OrderLedger({"BTC/USDT": MARKET}, out.append, lambda: 1), out


def test_a_fill_reported_by_the_answer_the_stream_and_a_poll_is_emitted_once() -> None:
    led, out = _ledger()
    t = led.add(Track("c1", "BTC/USDT", Side.SELL, 0.01, "stop", 0))
    led.trade(t, _trade(9, 0.004, 60_000.0, 0.24, "USDT"))  # the stream, before the answer
    led.order(t, {"id": "7", "status": "closed", "filled": 0.01,
                  "trades": [_trade(9, 0.004, 60_000.0, 0.24, "USDT"), _trade(10, 0.006, 60_000.0, 0.36, "USDT")]})  # fmt: skip
    led.trade(t, _trade(10, 0.006, 60_000.0, 0.36, "USDT"))  # a poll, later
    fills = [e for e in out if isinstance(e, OrderFilled)]
    assert [f.fill.fill_id for f in fills] == ["binance:BTCUSDT:9", "binance:BTCUSDT:10"]
    assert isinstance(out[0], OrderAccepted) and led.duplicates == 2 and t.done
    assert not any(isinstance(e, OrderCancelled) for e in out)  # a sell in USDT fees fills whole


def test_an_order_is_finished_only_when_every_trade_is_booked() -> None:
    led, out = _ledger()
    t = led.add(Track("c2", "BTC/USDT", Side.BUY, 0.01, "signal", 0))
    led.order(t, {"id": "8", "status": "closed", "filled": 0.01, "trades": []})  # a lookup: no trades
    assert t.needs_trades and not t.done
    led.trade(t, _trade(11, 0.01, 60_000.0, 0.00001, "BTC", order="8"))
    assert t.done and isinstance(out[-1], OrderCancelled)
    assert "1e-05 of it kept as the fee" in out[-1].reason
    # an expired market order (no liquidity) after a part: cancelled with what it did
    t2 = led.add(Track("c3", "BTC/USDT", Side.SELL, 0.01, "stop", 0))
    led.order(t2, {"id": "9", "status": "expired", "filled": 0.004, "trades": [_trade(12, 0.004, 60_000.0, 0.2, "USDT", "9")]})
    assert isinstance(out[-1], OrderCancelled) and "expired at the venue after 0.004 of 0.01" in out[-1].reason


# --------------------------------------------------------------------------- the local exchange


# (the exchange, its accounts and the venue/connect/secrets_in_logs fixtures: tests/live_venue.py)


def _core(tmp_path: Path, client: BinanceLiveClient, clock: FakeClock, qty: float = 0.004) -> Harness:
    """A real core and book holding a long BTC position with a stop at 59 000."""
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", qty, 60_000.0, stop=59_000.0, target=70_000.0)
    return make_core(tmp_path, safe_list(BTC_ONLY), clock=clock, client=client, db=db)


def pump(h: Harness, client: BinanceLiveClient, until: Callable[[], bool], timeout: float = 8.0) -> bool:
    """The engine loop: drain the client's events into the core, run its timer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        client.drain()
        if until():
            return True
        h.clock.advance(50)
        h.core.on_timer()
        time.sleep(0.02)
    client.drain()
    return until()


def _closed(h: Harness) -> Callable[[], bool]:
    return lambda: "BTC/USDT" not in h.store.load_positions() and not h.store.open_orders()


def _exit_orders(h: Harness) -> list[Order]:
    """The stop's market exits (not the protective stop resting at the exchange)."""
    return [o for o in h.store.orders() if o.reason == "stop" and o.order_type == "market"]


def _venue_orders(venue: VenueThread, cid: str) -> list[Any]:
    return venue.server.stats.orders_with_client_id(cid)


# --------------------------------------------------------------------------- the client at work


def test_a_stop_exit_fills_through_the_core_and_is_booked_once(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    client, acct = connect(clock)
    h = _core(tmp_path, client, clock)
    h.tick("BTC/USDT", 58_000.0)  # the stop: the core journals the order, then submit() hands it over
    (order,) = _exit_orders(h)
    assert order.status is OrderStatus.NEW  # nothing answered on the engine thread yet
    assert pump(h, client, _closed(h))
    (order,) = _exit_orders(h)
    assert order.status is OrderStatus.FILLED and order.filled_qty == pytest.approx(0.004)
    fills = [f for f in h.store.fills() if f.order_id == order.client_order_id]
    assert len(fills) == 1 and fills[0].fill_id.startswith("binance:BTCUSDT:")
    assert fills[0].fee > 0  # the sell's fee, charged in USDT
    assert len(_venue_orders(venue, order.client_order_id)) == 1
    st = client.status()
    assert st.state == "running" and st.fills == 1 and st.requests >= 1 and st.stream_ok
    assert float(venue.server.spot.account(acct.key).balances["BTC"][0]) == pytest.approx(0.046)


def test_pointed_by_url_only_markets_load_from_the_exchange_and_an_order_fills(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    """What ``engine --live --rest-url/--ws-url`` builds: no test hook, markets from exchangeInfo."""
    clock = FakeClock()
    client, _ = connect(clock, rest_url=venue.server.rest_url, ws_url=venue.server.ws_url)
    assert client.rules["BTC/USDT"] == BTC_RULES
    h = _core(tmp_path, client, clock)
    venue.server.fault("drop", "POST /api/v3/order")
    h.tick("BTC/USDT", 58_000.0)
    assert pump(h, client, _closed(h))
    (order,) = _exit_orders(h)
    assert len(_venue_orders(venue, order.client_order_id)) == 1
    assert venue.server.stats.counts["GET /api/v3/exchangeInfo"] >= 1


def test_an_answer_lost_after_the_venue_accepted_is_looked_up_not_resent(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    clock = FakeClock()
    client, _ = connect(clock)
    h = _core(tmp_path, client, clock)
    venue.server.fault("drop", "POST /api/v3/order")  # placed and filled, connection closed
    h.tick("BTC/USDT", 58_000.0)
    assert pump(h, client, _closed(h))
    (order,) = _exit_orders(h)
    assert len(_venue_orders(venue, order.client_order_id)) == 1  # no duplicate at the exchange
    assert len([f for f in h.store.fills() if f.order_id == order.client_order_id]) == 1
    st = client.status()
    assert st.lookups >= 1 and st.resends == 0


def test_a_5xx_the_venue_never_executed_is_resent_with_the_same_id(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    clock = FakeClock()
    client, _ = connect(clock)
    h = _core(tmp_path, client, clock)
    venue.server.fault("http", "POST /api/v3/order", status=503)  # "Service Unavailable.", not executed
    n0 = len(venue.server.stats.requests)
    h.tick("BTC/USDT", 58_000.0)
    assert pump(h, client, _closed(h))
    (order,) = _exit_orders(h)  # one order in the book ...
    assert len(_venue_orders(venue, order.client_order_id)) == 1  # ... and one at the exchange
    posts = [r for r in venue.server.stats.requests[n0:] if (r.method, r.path) == ("POST", "/api/v3/order")]
    assert [r.status for r in posts] == [503, 200]  # the 503, then the resend ...
    assert posts[1].params["newClientOrderId"] == order.client_order_id  # ... with the same client order id
    st = client.status()
    assert st.resends == 1 and st.lookups >= 2


def test_an_insufficient_balance_is_refused_and_the_exit_retried(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    client, _ = connect(clock)
    h = _core(tmp_path, client, clock)
    venue.server.fault("insufficient", "POST /api/v3/order")
    h.tick("BTC/USDT", 58_000.0)
    assert pump(h, client, lambda: len(_exit_orders(h)) == 1 and _exit_orders(h)[0].status is OrderStatus.REJECTED)
    assert "insufficient balance" in _exit_orders(h)[0].message
    assert "insufficient balance" in h.core.execution.exits["BTC/USDT"].last_error
    h.clock.advance(1_000)
    h.tick("BTC/USDT", 58_000.0)  # after the back-off the stop tries again, with a new id
    assert pump(h, client, _closed(h))
    assert [o.status for o in _exit_orders(h)] == [OrderStatus.REJECTED, OrderStatus.FILLED]


def test_a_filter_failure_is_refused_for_good(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    client, _ = connect(clock)
    events: list[Any] = []
    client.bind(events.append)
    venue.server.fault("filter", "POST /api/v3/order", filter="NOTIONAL")
    client.submit(Order("mp-filter-1", "BTC/USDT", Side.SELL, 0.001, "stop", "k", clock.ms), 0.0, 0.0)
    end = time.monotonic() + 5
    while not events and time.monotonic() < end:
        client.drain()
        time.sleep(0.02)
    (ev,) = events
    assert isinstance(ev, OrderRejected) and not ev.retryable and "Filter failure: NOTIONAL" in ev.reason


def test_partial_fills_are_booked_each_and_a_base_fee_buy_holds_what_it_received(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    clock = FakeClock()
    client, acct = connect(clock)
    h = _core(tmp_path, client, clock)
    venue.server.fault("partial", "POST /api/v3/order", parts=3)
    entry = Order("mp-partial-buy", "ETH/USDT", Side.BUY, 0.003, "signal", "k-partial", clock.ms, updated_ts=clock.ms)
    assert h.core.execution.submit(entry, 3_000.0, 3_000.1)  # journaled, then handed to the client
    # (the seeded BTC position's protective stop rests at the exchange: open, and not this one)
    assert pump(h, client, lambda: entry.client_order_id not in {o.client_order_id for o in h.store.open_orders()})
    fills = [f for f in h.store.fills() if f.order_id == entry.client_order_id]
    assert len(fills) == 3 and len({f.fill_id for f in fills}) == 3
    pos = h.store.load_positions()["ETH/USDT"]
    held = venue.server.spot.account(acct.key).balances["ETH"][0]
    assert pos.qty == pytest.approx(float(held))  # the book holds what the exchange holds
    assert pos.qty < 0.003  # the fee was taken in ETH
    (order,) = [o for o in h.store.orders() if o.client_order_id == entry.client_order_id]
    assert order.status is OrderStatus.CANCELLED and "kept as the fee" in order.message


def test_fees_paid_in_bnb_are_priced_once_the_bnb_price_is_known(venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    acct = Account(venue, {"USDT": 10_000.0, "BTC": 0.05, "BNB": 1.0}, fee_in_bnb=True)
    client, _ = connect(clock, account=acct)
    got: list[Any] = []
    client.bind(got.append)

    def sell(cid: str) -> Any:
        client.submit(Order(cid, "BTC/USDT", Side.SELL, 0.001, "stop", cid, clock.ms), 0.0, 0.0)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            client.drain()
            fills = [e.fill for e in got if isinstance(e, OrderFilled) and e.client_order_id == cid]
            if fills:
                return fills[0]
            time.sleep(0.02)
        raise AssertionError(f"{cid}: no fill")

    first = sell("mp-bnb-1")
    assert first.fee == 0.0 and first.qty == 0.001  # no BNB price yet: booked as 0 and counted
    assert client.status().fees_unpriced == 1
    end = time.monotonic() + 5
    while client.worker.ledger.fee_prices.get("BNB", "USDT") is None and time.monotonic() < end:
        time.sleep(0.02)  # the worker fetches BNB/USDT for the next fills
    second = sell("mp-bnb-2")
    assert second.fee > 0.0 and second.fee < second.qty * second.price * 0.001  # BNB's discount
    assert client.status().fees_unpriced == 1


def test_the_user_stream_closed_mid_fill_rest_polling_books_the_rest(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    clock = FakeClock()
    client, acct = connect(clock, order_resp_type="ACK")  # the answer carries no fill: the stream must
    h = _core(tmp_path, client, clock, qty=0.003)
    venue.server.fault("partial", "POST /api/v3/order", parts=3)
    venue.server.fault("close_user_stream", "POST /api/v3/order")  # dies after the first fill
    h.tick("BTC/USDT", 58_000.0)
    assert pump(h, client, _closed(h))
    (order,) = _exit_orders(h)
    assert len([f for f in h.store.fills() if f.order_id == order.client_order_id]) == 3
    st = client.status()
    assert st.stream_reconnects >= 1 and st.polls >= 1
    assert len(_venue_orders(venue, order.client_order_id)) == 1
    end = time.monotonic() + 5  # and the stream is back: subscribed again by the retried watch
    while venue.server.spot.subscribers(acct.key) == 0 and time.monotonic() < end:
        time.sleep(0.02)
    assert venue.server.spot.subscribers(acct.key) == 1


def test_a_stream_that_goes_silent_is_reopened_after_rest_finds_a_fill_it_missed(venue: VenueThread, connect: Any) -> None:
    """One malformed frame can stop ccxt.pro's receive loop without closing the socket: the
    stream looks up but says nothing. A fill only REST found reopens it."""
    clock = FakeClock()
    client, acct = connect(clock, order_resp_type="ACK")
    got: list[Any] = []
    client.bind(got.append)
    spot = venue.server.spot

    async def silence() -> None:  # the socket stays open, nothing reaches it any more
        for conn, subs in list(spot.streams.items()):
            if acct.key in subs.values():
                spot.streams.pop(conn)

    def sell(cid: str) -> None:
        client.submit(Order(cid, "BTC/USDT", Side.SELL, 0.001, "stop", cid, clock.ms), 0.0, 0.0)
        end = time.monotonic() + 5
        while not any(isinstance(e, OrderFilled) and e.client_order_id == cid for e in got) and time.monotonic() < end:
            client.drain()
            time.sleep(0.02)

    venue.run(silence())
    sell("mp-silent-1")
    assert any(isinstance(e, OrderFilled) and e.client_order_id == "mp-silent-1" for e in got)  # by REST
    st = client.status()
    assert st.polls >= 1 and st.stream_misses == 1 and st.stream_reconnects >= 1
    end = time.monotonic() + 5
    while spot.subscribers(acct.key) == 0 and time.monotonic() < end:
        time.sleep(0.02)
    assert spot.subscribers(acct.key) == 1  # subscribed again (the silent socket was closed)
    sell("mp-silent-2")
    assert any(isinstance(e, OrderFilled) and e.client_order_id == "mp-silent-2" for e in got)
    assert client.status().polls == st.polls  # the reopened stream brought it: no poll needed


def test_429_backs_off_then_418_reports_a_ban(venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    client, _ = connect(clock)
    events: list[Any] = []
    client.bind(events.append)
    server = venue.server

    def submit(cid: str) -> Any:
        n = len(events)
        client.submit(Order(cid, "BTC/USDT", Side.SELL, 0.001, "stop", cid, clock.ms), 0.0, 0.0)
        end = time.monotonic() + 5
        while len(events) == n and time.monotonic() < end:
            client.drain()
            time.sleep(0.02)
        return events[n]

    try:
        server.fault("rate_limit", None, retry_after_s=1)
        ev = submit("mp-429")
        assert isinstance(ev, OrderRejected) and ev.retryable and "rate limited" in ev.reason
        assert client.status().backoff_until_ms > time.time() * 1000
        posts = server.stats.counts["POST /api/v3/order"]
        ev = submit("mp-429-again")  # inside Retry-After: refused without a request
        assert isinstance(ev, OrderRejected) and "not sent" in ev.reason
        assert server.stats.counts["POST /api/v3/order"] == posts
        time.sleep(1.1)
        server.fault("ban", None, ban_s=2)
        ev = submit("mp-418")
        assert isinstance(ev, OrderRejected) and ev.retryable and "banned" in ev.reason
        st = client.status()
        assert st.banned(int(time.time() * 1000)) and st.banned_until_ms > time.time() * 1000 + 1000
        assert "418" in st.last_error
        assert "banned" in submit("mp-418-again").reason  # no request during the ban
        time.sleep(max(st.banned_until_ms / 1000 - time.time(), 0) + 0.1)
        assert isinstance(submit("mp-after-ban"), OrderAccepted)  # trading resumes after it
    finally:
        server.limiter.reset()


def test_an_order_from_an_earlier_run_is_looked_up_and_booked_once(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    """The engine died between "sent" and "answered": the restarted engine's new client finds
    the order by its client id and books its fill once; nothing is sent again."""
    clock = FakeClock()
    first, acct = connect(clock)
    h = _core(tmp_path, first, clock)
    venue.server.fault("delay", "POST /api/v3/order", delay_s=2)  # executed at once, answered late
    h.tick("BTC/USDT", 58_000.0)
    (order,) = _exit_orders(h)
    end = time.monotonic() + 5
    while not _venue_orders(venue, order.client_order_id) and time.monotonic() < end:
        time.sleep(0.01)  # sent: the exchange has it, its answer is 2 s away
    first.worker.stop(5.0)  # the engine dies: what the worker heard dies with it, undelivered
    first.bind(lambda event: None)  # (the fixture's close() must not feed the dead core)
    assert h.store.open_orders()
    second, _ = connect(clock, account=acct)  # the same book and account, a new client
    h2 = h.reopen(client=second)
    assert pump(h2, second, _closed(h2))
    assert len([f for f in h2.store.fills() if f.order_id == order.client_order_id]) == 1
    assert len(_venue_orders(venue, order.client_order_id)) == 1


class NeverSends:
    """A client in a process killed right after the journal wrote the order."""

    rests_stops = False

    def cancel(self, order: Order) -> None:
        pass

    def bind(self, listener: Any) -> None:
        pass

    def submit(self, order: Order, bid: float, ask: float) -> None:
        pass

    def lookup(self, order: Order) -> None:
        pass


def test_an_order_journaled_but_never_sent_is_not_found_and_the_exit_sent_anew(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    clock = FakeClock()
    h = _core(tmp_path, NeverSends(), clock)  # type: ignore[arg-type]
    h.tick("BTC/USDT", 58_000.0)
    (lost,) = _exit_orders(h)
    client, _ = connect(clock)
    h2 = h.reopen(client=client)
    assert pump(h2, client, lambda: _exit_orders(h2)[0].status is OrderStatus.REJECTED)
    assert _exit_orders(h2)[0].message == "not found at the venue"
    h2.clock.advance(1_000)
    h2.tick("BTC/USDT", 58_000.0)  # the stop is still hit: a new order, with a new id
    assert pump(h2, client, _closed(h2))
    first, second = _exit_orders(h2)
    assert first.client_order_id == lost.client_order_id and second.status is OrderStatus.FILLED
    assert _venue_orders(venue, lost.client_order_id) == []
    assert len(_venue_orders(venue, second.client_order_id)) == 1


def test_kill_switch_helpers_see_and_cancel_open_orders(venue: VenueThread, connect: Any) -> None:
    client, acct = connect()
    bal = client.balances()
    assert bal["USDT"]["free"] == pytest.approx(10_000.0) and "BNB" not in bal  # zero balances left out
    assert client.open_orders(SYMBOLS) == []
    # a resting order placed behind the client's back (a protective stop, say)
    import ccxt as sync_ccxt

    ex = sync_ccxt.binance({"apiKey": acct.key, "secret": acct.secret, "options": {"defaultType": "spot"}})
    point_ccxt_at(ex, venue.server.rest_url, None, venue.server)
    ex.create_order("BTC/USDT", "limit", "sell", 0.001, 100_000.0)  # by hand: rests above the book
    ex.create_order("BTC/USDT", "limit", "sell", 0.001, 110_000.0, {"newClientOrderId": "mp-ours-resting"})
    found = client.open_orders(SYMBOLS)
    assert sorted(o["price"] for o in found) == [100_000.0, 110_000.0] and {o["symbol"] for o in found} == {"BTC/USDT"}
    assert client.cancel_ours(SYMBOLS) == {"BTC/USDT": 1, "ETH/USDT": 0}
    (left,) = client.open_orders(SYMBOLS)
    assert left["price"] == 100_000.0 and not left["clientOrderId"].startswith("mp-")  # not ours: left alone


def test_a_wrong_secret_fails_the_start_in_one_line_without_the_secret(venue: VenueThread, secrets_in_logs: list[str]) -> None:
    server = venue.server
    wrong = f"wrong-{uuid.uuid4().hex}"
    secrets_in_logs.append(wrong)

    def configure(ex: Any) -> None:
        point_ccxt_at(ex, server.rest_url, None, server)

    client = BinanceLiveClient(LiveConfig(server.api_key, wrong, SYMBOLS, configure=configure), FakeClock())
    try:
        client.start(10.0)
        # markets load offline: the first signed request is where a wrong secret shows
        with pytest.raises(LiveClientError) as err:
            client.balances()
        assert wrong not in str(err.value) and "\n" not in str(err.value)
        logging.getLogger("engine.live").warning("balances refused: %s", err.value)
    except LiveStartError as exc:
        assert wrong not in str(exc)
    finally:
        client.close()


def test_the_engine_loop_is_woken_and_events_arrive_only_on_its_thread(venue: VenueThread, connect: Any) -> None:
    import select

    clock = FakeClock()
    client, _ = connect(clock)
    got: list[Any] = []
    client.bind(got.append)
    client.submit(Order("mp-wake", "BTC/USDT", Side.SELL, 0.001, "stop", "k-wake", clock.ms), 0.0, 0.0)
    assert got == []  # submit never answers on the spot: the worker does, through drain()
    readable, _, _ = select.select([client.wakeup_fd], [], [], 5.0)
    assert readable == [client.wakeup_fd]
    end = time.monotonic() + 5
    while not any(isinstance(e, OrderFilled) for e in got) and time.monotonic() < end:
        client.drain()
        time.sleep(0.02)
    assert any(isinstance(e, OrderFilled) for e in got)
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _catch(client.drain, errors))
    t.start()
    t.join()
    assert errors and "thread that bound" in str(errors[0])


def _catch(fn: Callable[[], Any], errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:
        errors.append(exc)


# --------------------------------------------------------------------------- USDT-M futures


def _futures_core(tmp_path: Path, client: BinanceLiveClient, clock: FakeClock, qty: float) -> Harness:
    """A real core trading BTC/USDT as a 3x USDT-M perpetual, its book holding a long."""
    from engine.core.config import SafeList

    cfg = SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {"BTC/USDT": {"tier": "STABLE", "strategy": "momentum", "market": "futures", "leverage": 3,
                               "max_position_size_usd": 500, "params": {"lookback": 10}}},
    })  # fmt: skip
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", qty, 60_000.0, stop=59_000.0, target=70_000.0)
    return make_core(tmp_path, cfg, clock=clock, client=client, db=db)


def _wait_event(client: BinanceLiveClient, got: list[Any], cid: str, kind: type) -> Any:
    end = time.monotonic() + 5
    while time.monotonic() < end:
        client.drain()
        for e in got:
            if isinstance(e, kind) and e.client_order_id == cid:
                return e
        time.sleep(0.02)
    raise AssertionError(f"{cid}: no {kind.__name__} in {got}")


def test_futures_leverage_is_set_and_a_close_is_reduce_only(venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    client, acct = connect(clock, futures={"BTC/USDT": 3})
    server = venue.server
    assert server.futures.account(acct.key).leverage["BTCUSDT"] == 3
    assert client.rules["BTC/USDT"].min_notional == 100.0  # the perpetual's own filters, not spot's
    got: list[Any] = []
    client.bind(got.append)
    entry = Order("mp-fut-entry", "BTC/USDT", Side.BUY, 0.002, "signal", "k-fe", clock.ms, stop_loss=50_000.0)
    client.submit(entry, 0.0, 0.0)
    fill = _wait_event(client, got, entry.client_order_id, OrderFilled).fill
    assert fill.fill_id.startswith("binance-usdm:BTCUSDT:") and fill.qty == 0.002 and fill.fee > 0
    assert client.positions() == {"BTC/USDT": {"qty": 0.002, "entry": pytest.approx(fill.price), "leverage": 3.0}}
    assert client.balances("future")["USDT"]["total"] > 0
    close = Order("mp-fut-close", "BTC/USDT", Side.SELL, 0.002, "stop", "k-fc", clock.ms)
    client.submit(close, 0.0, 0.0)
    _wait_event(client, got, close.client_order_id, OrderFilled)
    (sent,) = [r for r in server.stats.requests if r.path == "/fapi/v1/order" and r.method == "POST"
               and r.params.get("newClientOrderId") == close.client_order_id]  # fmt: skip
    assert sent.params.get("reduceOnly") == "true"
    (opened,) = [r for r in server.stats.requests if r.path == "/fapi/v1/order" and r.method == "POST"
                 and r.params.get("newClientOrderId") == entry.client_order_id]  # fmt: skip
    assert "reduceOnly" not in opened.params
    assert client.positions() == {}
    assert client.open_orders(["BTC/USDT"]) == [] and client.cancel_ours(["BTC/USDT"]) == {"BTC/USDT": 0}


def test_futures_hedge_mode_refuses_to_start(venue: VenueThread, connect: Any) -> None:
    venue.server.futures.dual_side = True
    try:
        with pytest.raises(LiveStartError, match="hedge mode"):
            connect(futures={"BTC/USDT": 2})
    finally:
        venue.server.futures.dual_side = False


def test_futures_stop_exit_through_the_core_with_a_lost_answer(tmp_path: Path, venue: VenueThread, connect: Any) -> None:
    clock = FakeClock()
    client, _ = connect(clock, futures={"BTC/USDT": 3})
    got: list[Any] = []
    client.bind(got.append)  # the venue position the book will hold, opened first
    client.submit(Order("mp-fut-open", "BTC/USDT", Side.BUY, 0.003, "signal", "k-fo", clock.ms, stop_loss=1.0), 0.0, 0.0)
    _wait_event(client, got, "mp-fut-open", OrderFilled)
    h = _futures_core(tmp_path, client, clock, 0.003)  # the core binds the client now
    venue.server.fault("drop", "POST /fapi/v1/order")
    h.tick("BTC/USDT", 58_000.0)
    assert pump(h, client, _closed(h))
    (order,) = _exit_orders(h)
    assert len(_venue_orders(venue, order.client_order_id)) == 1  # looked up, not resent
    (fill,) = [f for f in h.store.fills() if f.order_id == order.client_order_id]
    assert fill.fill_id.startswith("binance-usdm:")
    assert client.positions() == {}
