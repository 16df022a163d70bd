"""``--rest-url`` / ``--ws-url`` point every endpoint the live client uses, spot and USDT-M
futures, public and private, at one host, and nothing else is ever reached.

The client is built as the engine builds it from those options (``LiveConfig.rest_url`` /
``ws_url``: no test hook, no testnet) against the local Binance-protocol exchange
(``tests/binance_exchange.py``, on its own thread; driven over its ``/_test/...`` control
endpoints where a separate exchange process would be). A guard on the live client's ccxt classes
records every REST request and websocket connection they open and refuses any other host, so a
URL that was not pointed fails the test instead of reaching Binance. Fixtures and helpers come
from ``tests/test_live_client.py`` (the exchange thread, the client factory, the secret scan)
and ``tests/test_live_process.py`` (the control endpoints).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.pro
import pytest

from engine.core.models import Side
from engine.core.orders import Order, OrderFilled
from engine.execution.binance_connect import ENDPOINT_TREES, RestBinance, StreamBinance, point_at
from engine.execution.binance_live import BinanceLiveClient
from engine.execution.live_errors import LiveCallError, Outcome
from tests.core_harness import FakeClock
from tests.live_venue import VenueThread
from tests.test_live_client import _wait_event
from tests.test_live_process import _control, _state

pytestmark = pytest.mark.timeout(60)

FUT = "BTC/USDT:USDT"
# links in ccxt's ``urls`` that are documentation, never requested
DOC_KEYS = frozenset({"logo", "www", "doc", "api_management", "fees", "referral"})
URL_SCHEMES = ("http", "https", "ws", "wss")


# --------------------------------------------------------------------------- what is pointed where


def _urls(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every URL in a ccxt ``urls`` tree, with its key path (``api.ws.ws-api.spot``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _urls(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list | tuple):
        for i, v in enumerate(node):
            yield from _urls(v, f"{path}[{i}]")
    elif isinstance(node, str) and urlsplit(node).scheme in URL_SCHEMES:
        yield path, node


def _foreign_urls(ex: Any, rest: str, ws: str) -> list[str]:
    """The endpoint URLs of ``ex`` (any key but the documentation links) not on the host
    (``netloc``) given for their kind: ``rest`` for http(s), ``ws`` for ws(s)."""
    return [f"{path} = {url}" for path, url in _urls(ex.urls) if path.split(".")[0].split("[")[0] not in DOC_KEYS
            and urlsplit(url).netloc != (ws if url.startswith("ws") else rest)]  # fmt: skip


def test_point_at_puts_spot_and_futures_on_one_host_and_futures_streams_under_fstream() -> None:
    ex = ccxt.pro.binance()
    point_at(ex, "http://127.0.0.1:9/api/v3", "ws://127.0.0.1:10/ws")  # the feed's forms are accepted
    api = ex.urls["api"]
    assert api["public"] == "http://127.0.0.1:9/api/v3" and api["fapiPrivateV3"] == "http://127.0.0.1:9/fapi/v3"
    assert api["ws"]["spot"] == "ws://127.0.0.1:10/ws" and api["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:10/ws-api/v3"
    # futures' stream host has spot's paths: on one host it lives under /fstream
    assert api["ws"]["linear"] == "ws://127.0.0.1:10/fstream/ws"
    assert ex.get_private_ws_url("linear", "KEY") == "ws://127.0.0.1:10/fstream/private/ws?listenKey=KEY"
    assert ex.get_ws_url("linear", "market") == "ws://127.0.0.1:10/fstream/market/ws"
    assert _foreign_urls(ex, "127.0.0.1:9", "127.0.0.1:10") == []  # the sandbox trees too
    # after the testnet's switch (as --testnet --rest-url does), and under a path prefix
    tn = ccxt.pro.binance()
    tn.set_sandbox_mode(True)
    point_at(tn, "https://proxy.example/binance", "wss://proxy.example/binance/stream")
    assert tn.urls["api"]["fapiPrivate"] == "https://proxy.example/binance/fapi/v1"
    assert tn.urls["api"]["ws"]["linear"] == "wss://proxy.example/binance/fstream/ws"
    assert _foreign_urls(tn, "proxy.example", "proxy.example") == [] and "apiBackup" in ENDPOINT_TREES


# --------------------------------------------------------------------------- the guard


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch, venue: VenueThread) -> Iterator[list[str]]:
    """Every URL the live client's ccxt instances request or connect to (``METHOD url``); one
    to another host than the exchange's is refused (the client sees a network error) and fails
    the test at its end."""
    local = urlsplit(venue.server.rest_url).netloc
    seen: list[str] = []
    foreign: list[str] = []

    def check(what: str, url: str) -> None:
        if urlsplit(url).scheme not in URL_SCHEMES:
            return  # ccxt.pro's internal client names ('authenticationFlights')
        seen.append(f"{what} {url.split('?')[0]}")
        if urlsplit(url).netloc != local:
            foreign.append(f"{what} {url}")
            raise ccxt.NetworkError(f"test guard: {url} is not the local exchange")

    for cls in (RestBinance, StreamBinance):
        fetch = cls.fetch

        async def guarded_fetch(self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None,
                                _fetch: Callable[..., Any] = fetch) -> Any:  # fmt: skip
            check(method, url)
            return await _fetch(self, url, method, headers, body)

        monkeypatch.setattr(cls, "fetch", guarded_fetch)
    client = StreamBinance.client

    def guarded_client(self: Any, url: str) -> Any:
        check("WS", url)
        return client(self, url)

    monkeypatch.setattr(StreamBinance, "client", guarded_client)
    yield seen
    assert not foreign, f"requests to another host than the local exchange: {foreign}"


# --------------------------------------------------------------------------- the client's life


def _on_worker(client: BinanceLiveClient, what: str, fn: Callable[[Any, Any], Any]) -> Any:
    """Run ``fn(rest, pro)`` (a coroutine function) on the client's worker loop, as the client
    itself would."""

    async def run() -> Any:
        return await fn(client.worker.rest, client.worker.pro)

    return client.worker.call(run(), 10.0, what)


def _via_gate(client: BinanceLiveClient, name: str, *args: Any) -> Any:
    """A ccxt call through the client's own REST gate (rate limits, error classes)."""
    return client.worker.call(client.worker.api.call(name, name, *args), 10.0, name)


def _requests(vt: VenueThread, method: str, path: str, **params: str) -> list[Any]:
    return [r for r in vt.server.stats.requests if r.method == method and r.path == path
            and all(r.params.get(k) == want for k, want in params.items())]  # fmt: skip


def _until(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_futures_pair_lives_its_whole_life_pointed_by_url_only(
    venue: VenueThread, connect: Any, reached: list[str]
) -> None:
    server = venue.server
    rest_url, ws_url = server.rest_url, server.ws_url
    local = urlsplit(rest_url).netloc
    clock = FakeClock()
    client, acct = connect(clock, rest_url=rest_url, ws_url=ws_url, futures={"BTC/USDT": 3})

    # start: markets from both exchangeInfos, the one-way check, the leverage, both user streams
    counts = _until(lambda: (c := _state(rest_url)["counts"]).get("WS futures user stream") and c)
    for endpoint in ("GET /api/v3/exchangeInfo", "GET /fapi/v1/exchangeInfo", "GET /fapi/v1/positionSide/dual",
                     "POST /fapi/v1/leverage", "POST /fapi/v1/listenKey", "WS futures user stream", "WS /ws-api/v3"):  # fmt: skip
        assert counts.get(endpoint, 0) >= 1, endpoint
    assert server.futures.account(acct.key).leverage["BTCUSDT"] == 3
    # every endpoint in both ccxt clients' urls (the sandbox trees too) is the exchange's
    for ex in (client.worker.rest, client.worker.pro):
        assert _foreign_urls(ex, local, urlsplit(ws_url).netloc) == []
    assert client.worker.pro.urls["api"]["ws"]["linear"] == f"ws://{local}/fstream/ws"  # REST's has no ws tree

    # a market entry, its fill delivered by the futures user stream (ccxt.pro's trade cache)
    got: list[Any] = []
    client.bind(got.append)
    entry = Order("mp-pt-entry", "BTC/USDT", Side.BUY, 0.002, "signal", "k-pe", clock.ms, stop_loss=50_000.0)
    client.submit(entry, 0.0, 0.0)
    fill = _wait_event(client, got, entry.client_order_id, OrderFilled).fill
    assert fill.fill_id.startswith("binance-usdm:BTCUSDT:") and fill.qty == 0.002

    def streamed(cid: str) -> Callable[[], list[dict[str, Any]]]:
        async def orders(rest: Any, pro: Any) -> list[dict[str, Any]]:
            return [dict(o) for o in (pro.orders or []) if o.get("clientOrderId") == cid]

        return lambda: _on_worker(client, "stream cache", orders)

    async def trades(rest: Any, pro: Any) -> list[dict[str, Any]]:
        return [dict(t) for t in (pro.myTrades or []) if t.get("symbol") == FUT]

    assert _until(lambda: _on_worker(client, "stream trades", trades))[0]["amount"] == 0.002
    assert _until(streamed(entry.client_order_id))[-1]["status"] == "closed"

    # a protective STOP_MARKET, reduce-only, through ccxt's create_order: the algo endpoint
    cid, trigger = "mp-pt-stop", round(fill.price * 0.9, 1)
    stop = _via_gate(client, "create_order", FUT, "market", "sell", 0.002, None,
                     {"stopLossPrice": trigger, "reduceOnly": True, "clientOrderId": cid})  # fmt: skip
    assert (stop["clientOrderId"], stop["status"], stop["type"], stop["side"]) == (cid, "open", "market", "sell")
    assert stop["triggerPrice"] == stop["stopPrice"] == trigger and stop["reduceOnly"] is True
    assert stop["stopLossPrice"] is None and stop["info"]["algoType"] == "CONDITIONAL"
    (sent,) = _requests(venue, "POST", "/fapi/v1/algoOrder", clientAlgoId=cid)
    assert sent.params["type"] == "STOP_MARKET" and sent.params["reduceOnly"] == "true"
    assert float(sent.params["triggerPrice"]) == trigger and sent.params["algoType"] == "CONDITIONAL"
    assert not _requests(venue, "POST", "/fapi/v1/order", newClientOrderId=cid)
    assert [o["venue"] for o in _state(rest_url)["orders"] if o["client_order_id"] == cid] == ["futures-algo"]
    # the user stream reports it (ALGO_UPDATE) through watch_orders, with the algo id as its id
    (seen,) = _until(streamed(cid))
    assert (seen["id"], seen["status"], seen["triggerPrice"]) == (stop["id"], "open", trigger)

    # fetch and cancel it by client id
    found = _via_gate(client, "fetch_order", None, FUT, {"trigger": True, "clientOrderId": cid})
    assert (found["id"], found["status"], found["triggerPrice"], found["filled"]) == (stop["id"], "open", trigger, 0.0)
    assert _requests(venue, "GET", "/fapi/v1/algoOrder", clientAlgoId=cid)
    assert [(o["clientOrderId"], o["trigger"]) for o in client.open_orders(["BTC/USDT"])] == [(cid, True)]
    cancelled = _via_gate(client, "cancel_order", None, FUT, {"trigger": True, "clientOrderId": cid})
    assert cancelled["clientOrderId"] == cid and cancelled["id"] == stop["id"]
    assert _requests(venue, "DELETE", "/fapi/v1/algoOrder", clientAlgoId=cid)
    assert _via_gate(client, "fetch_order", None, FUT, {"trigger": True, "clientOrderId": cid})["status"] == "canceled"
    assert _until(lambda: [o for o in streamed(cid)() if o["status"] == "canceled"])

    # the kill switch's cancel of our orders (conditional and plain), positions, balances, trades
    _via_gate(client, "create_order", FUT, "market", "sell", 0.002, None,
              {"stopLossPrice": trigger, "reduceOnly": True, "clientOrderId": "mp-pt-stop2"})  # fmt: skip
    assert client.cancel_ours(["BTC/USDT"]) == {"BTC/USDT": 1}
    _via_gate(client, "cancel_all_orders", FUT)  # plain orders: DELETE allOpenOrders
    assert client.positions() == {"BTC/USDT": {"qty": 0.002, "entry": pytest.approx(fill.price), "leverage": 3.0}}
    assert client.balances("future")["USDT"]["total"] > 0
    assert len(_via_gate(client, "fetch_my_trades", FUT)) == 1

    # the close, reduce-only, and the exchange flat for this account
    close = Order("mp-pt-close", "BTC/USDT", Side.SELL, 0.002, "stop", "k-pc", clock.ms)
    client.submit(close, 0.0, 0.0)
    _wait_event(client, got, close.client_order_id, OrderFilled)
    assert _requests(venue, "POST", "/fapi/v1/order", newClientOrderId=close.client_order_id)[0].params["reduceOnly"] == "true"
    assert client.positions() == {} and server.is_flat(acct.key)

    # the listenKey's renewal (ccxt renews every 20 min) and deletion (ccxt never deletes it)
    _on_worker(client, "listenKey PUT", lambda rest, pro: pro.keep_alive_listen_key({"type": "future"}))
    _on_worker(client, "listenKey DELETE", lambda rest, pro: rest.fapiPrivateDeleteListenKey())

    # a futures market stream (the live client reads none; ccxt.pro's are pointed all the same)
    async def ticker(rest: Any, pro: Any) -> float:
        watch = asyncio.ensure_future(pro.watch_ticker(FUT))
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(server.set_price("BTC/USDT", 61_234.5), venue.loop))
        return float((await asyncio.wait_for(watch, 5))["last"])

    assert _on_worker(client, "futures ticker", ticker) == 61_234.5

    used = {r.split(" ", 1)[0] + " " + urlsplit(r.split(" ", 1)[1]).path for r in reached}
    for endpoint in ("GET /api/v3/exchangeInfo", "GET /api/v3/time", "GET /fapi/v1/exchangeInfo",
                     "GET /fapi/v1/positionSide/dual", "POST /fapi/v1/leverage", "POST /fapi/v1/order",
                     "POST /fapi/v1/algoOrder", "GET /fapi/v1/algoOrder", "DELETE /fapi/v1/algoOrder",
                     "GET /fapi/v1/openOrders", "GET /fapi/v1/openAlgoOrders",
                     "DELETE /fapi/v1/allOpenOrders", "GET /fapi/v1/userTrades", "GET /fapi/v3/positionRisk",
                     "GET /fapi/v3/account", "POST /fapi/v1/listenKey", "PUT /fapi/v1/listenKey",
                     "DELETE /fapi/v1/listenKey", "WS /ws-api/v3", "WS /fstream/private/ws"):  # fmt: skip
        assert endpoint in used, f"{endpoint} not used: {sorted(used)}"
    assert any(u.startswith("WS /fstream/market/ws/") for u in used), sorted(used)
    assert {urlsplit(r.split(" ", 1)[1]).netloc for r in reached} == {local}


# --------------------------------------------------------------------------- error classes


def test_futures_errors_keep_binance_classes_on_a_local_host(
    venue: VenueThread, connect: Any, reached: list[str]
) -> None:
    """ccxt picks error classes by host; on the local one the live client's ccxt picks them by
    path, as for fapi.binance.com: the same class, so the same outcome as against Binance."""
    rest_url = venue.server.rest_url
    client, _ = connect(rest_url=rest_url, ws_url=venue.server.ws_url, futures={"BTC/USDT": 3})
    fapi = {k: client.worker.rest.get_exceptions_by_url("https://fapi.binance.com/fapi/v1/order", k) for k in ("exact", "broad")}
    assert fapi == {k: client.worker.rest.get_exceptions_by_url(f"{rest_url}/fapi/v1/order", k) for k in ("exact", "broad")}
    assert client.worker.rest.get_exceptions_by_url(f"{rest_url}/api/v3/order", "exact") == \
        client.worker.rest.get_exceptions_by_url("https://api.binance.com/api/v3/order", "exact")

    def fails(what: str, fn: Callable[[Any, Any], Any]) -> Exception:
        try:
            _on_worker(client, what, fn)
        except Exception as exc:
            return exc
        raise AssertionError(f"{what}: no error")

    cases: list[tuple[int, type[Exception], Callable[[Any, Any], Any]]] = [
        # no position to reduce
        (-2022, ccxt.InvalidOrder, lambda rest, pro: rest.create_order(FUT, "market", "sell", 0.002, None, {"reduceOnly": True})),
        # 5 BTC at 3x needs ~108 000 USDT of margin
        (-2019, ccxt.InsufficientFunds, lambda rest, pro: rest.create_order(FUT, "market", "buy", 5, None, {})),
        # a conditional type sent to the plain order endpoint (ccxt itself routes it to algoOrder)
        (-4120, ccxt.InvalidOrder, lambda rest, pro: rest.fapiPrivatePostOrder(
            {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.002", "stopPrice": "1000"})),
    ]  # fmt: skip
    for code, cls, fn in cases:
        exc = fails(str(code), fn)
        assert type(exc) is cls and str(code) in str(exc), exc
    _control(rest_url, "fault", {"kind": "filter", "endpoint": "POST /fapi/v1/order", "filter": "NOTIONAL"})
    exc = fails("-1013", lambda rest, pro: rest.create_order(FUT, "market", "buy", 0.002, None, {}))
    assert type(exc) is ccxt.BadRequest and "-1013" in str(exc)

    # and through the client's gate: refusals, final but for the margin
    outcomes = {}
    for code, args in ((-2019, (FUT, "market", "buy", 5, None, {})),
                       (-2022, (FUT, "market", "sell", 0.002, None, {"reduceOnly": True}))):  # fmt: skip
        with pytest.raises(LiveCallError) as err:
            _via_gate(client, "create_order", *args)
        assert err.value.c.code == code
        outcomes[code] = (err.value.c.outcome, err.value.c.retryable)
    assert outcomes == {-2019: (Outcome.REFUSED, True), -2022: (Outcome.REFUSED, False)}
