"""A local exchange that speaks Binance's private protocol well enough for real ccxt to trade on it.

``BinanceExchange`` extends ``binance_server.BinanceServer`` (spot market data, the price walk,
``set_price``/``tick``/``start_steady``) with signed trading, a matching engine on the moving
price, user-data streams and fault injection. Spot lives in ``binance_exchange_spot.py`` (its
websocket-API user stream in ``binance_exchange_spot_stream.py``), USDT-M futures in
``binance_exchange_futures.py`` (algo orders, countdownCancelAll and the listenKey stream in
``binance_exchange_futures_algo.py``), the shared checks in ``binance_exchange_core.py``.

Stable API (tests and the live execution client's tests rely on it)
--------------------------------------------------------------------
Start and stop::

    server = BinanceExchange(api_key="test-key", api_secret="test-secret",
                             balances={"USDT": 10_000}, futures_balance=10_000)
    await server.start()            # 127.0.0.1, a free port; or `async with BinanceExchange() as server`
    server.rest_url                 # http://127.0.0.1:PORT      (REST: /api/v3/..., /fapi/v1|v2|v3/...)
    server.ws_url                   # ws://127.0.0.1:PORT/ws     (spot market streams, as binance_server)
    server.ws_api_url               # ws://127.0.0.1:PORT/ws-api/v3   (spot user data: websocket API)
    server.futures_ws_url           # ws://127.0.0.1:PORT/fstream/ws  (ccxt's urls['api']['ws']['linear'])
    server.urls()                   # all of the above in a dict
    await server.stop()

Point ccxt at it (every REST and websocket URL ccxt uses for spot and USDT-M futures, markets
loaded offline from the server's exchangeInfo, error classes mapped as for api.binance.com /
fapi.binance.com)::

    ex = make_ccxt(server, kind="pro")       # "pro" (ccxt.pro.binance), "async" or "sync" (ccxt.binance)
    ex = make_ccxt(server, kind="pro", default_type="swap")   # futures by default
    point_ccxt_at(ex, server.rest_url, ws_base=None, markets=server)  # for an exchange you built
    ... await ex.close()

A pytest fixture: ``exchange_server`` (import it into a test module) yields a started
``BinanceExchange`` with the default key, secret and balances, and stops it after the test.
For synchronous code: ``with ThreadedExchange(**kwargs) as t:`` runs one on a background loop
(``t.server``; ``t.run(coro)`` runs a coroutine such as ``t.server.set_price(...)`` there).
Standalone: ``python tests/binance_exchange.py --port N`` prints one ``binance-exchange ready``
line with the URLs; the key/secret come from ``--api-key``/``--api-secret`` (or the env vars
``BINANCE_EXCHANGE_KEY``/``BINANCE_EXCHANGE_SECRET``); the secret is never printed. A server run
as a process is driven over test-only endpoints (not Binance's, not counted, no auth):
``POST /_test/fault`` (JSON: kind, endpoint, times, options as for ``fault``), ``POST
/_test/price`` ({symbol, price, bid?, ask?}), ``POST /_test/balance`` ({asset, free, api_key?}),
``POST /_test/close_user_streams``, ``POST /_test/mute_user_streams`` ({muted: bool}),
``GET /_test/state`` (exposure, flat, counts, order log,
duplicate client ids, faults fired, auth failures).

Controls::

    await server.set_price("BTC/USDT", 65000.0)  # moves the book; stops trigger, limits fill, events go out
    server.start_steady(rate_hz)                 # the random walk of binance_server (fills follow it)
    server.add_account(key, secret, balances={...}, futures_balance=..., fee_in_bnb=False)
    server.set_balance("USDT", 500, api_key=None)          # spot free balance
    server.spot.fill_parts = 3                   # every order fills in 3 partial fills
    server.spot.sweep_ticks = 1                  # ... each market part one tick worse (walks the book)
    server.auth.clock_offset_ms = 30_000         # the server's clock runs ahead: -1021 for ccxt
    server.limiter.ban_scale = 0.01              # 418 bans 100x shorter than Binance's ladder
    server.limiter.venues["spot"].weight_per_min = 50
    server.futures.dual_side = True              # hedge mode (the live client must refuse it)
    server.futures.countdown_cancels_algo = False  # whether countdownCancelAll also cancels algo orders
    await server.close_user_streams(api_key=None)  # spot ws-api and futures listenKey streams
    server.mute_user_streams(True)               # a silent stream: events dropped, sockets open
    await server.send_malformed_user_event()     # one truncated JSON frame on every user stream
    await server.spot.terminate_subscriptions()  # eventStreamTerminated (spot ws-api)
    await server.futures.expire_listen_key()     # listenKeyExpired, then the stream closes

Faults (each fires on the next matching request, ``times`` times, after ``skip`` matches)::

    server.fault("drop", "POST /api/v3/order")         # order placed, connection closed, no answer
    server.fault("http", "POST /api/v3/order", status=503)   # "Service Unavailable.", not executed
    server.fault("code", "POST /api/v3/order")         # -1007 timeout (HTTP 408), executed
    server.fault("code", "POST /api/v3/order", code=-1006, msg=..., execute=False)
    server.fault("insufficient", "POST /api/v3/order")  # -2010 insufficient balance
    server.fault("filter", "POST /api/v3/order", filter="NOTIONAL")  # -1013 Filter failure: NOTIONAL
    server.fault("delay", "POST /api/v3/order", delay_s=3)  # executed at once, answered late
    server.fault("rate_limit", None, retry_after_s=2)  # 429 + Retry-After; a request before it ends: 418
    server.fault("ban", None, ban_s=5)                 # 418 + Retry-After
    server.fault("partial", "POST /api/v3/order", parts=3)   # the next order fills in 3 parts
    server.fault("close_user_stream", "POST /api/v3/order")  # its user stream dies mid-fill
    (endpoint: "METHOD /path", "/path" (any method), "/fapi/" (prefix), None (any REST request))

Observations::

    server.stats.counts["POST /api/v3/order"]    # requests per endpoint (also "WS <method>")
    server.stats.requests                         # RequestRecord(method, path, params, status, fault, api_key)
    server.stats.orders                           # OrderRecord of every accepted order (spot, futures, futures-algo)
    server.stats.orders_with_client_id(cid); server.stats.duplicate_client_ids()
    server.exposure(api_key=None); server.is_flat(api_key=None)   # open orders (spot, futures, algo), positions
    server.spot.open_orders(api_key=None, symbol=None); server.spot.account(key).balances / .trades
    server.futures.positions(key); server.futures.open_orders(); server.futures.open_algo_orders()
    server.auth.failures[-1022]                   # refused signatures (also -1021, -2014, -2015)
    server.faults.fired                           # [(kind, method, path)]

URLs ccxt 4.5 uses, as ``point_ccxt_at`` maps them (``ccxt_urls``): REST ``public``/``private`` ->
``/api/v3``, ``fapiPublic``/``fapiPrivate`` -> ``/fapi/v1`` (V2, V3 -> ``/fapi/v2``, ``/fapi/v3``);
websocket ``ws.spot`` -> ``/ws`` (market data), ``ws.ws-api.spot`` -> ``/ws-api/v3`` (spot user data:
``userDataStream.subscribe.signature``), ``ws.linear`` -> ``/fstream/ws``, from which ccxt derives
the futures user stream ``/fstream/private/ws?listenKey=KEY`` (and market streams
``/fstream/market/ws/...``); ``/ws/KEY`` and ``/private/ws?listenKey=KEY`` are accepted too.

Not modelled: hedge-mode positions (orders refused with -4061), isolated margin, liquidation,
funding, trailing stops, icebergs, self-trade prevention, cancelReplace/amend, SOR, trading over
the websocket API, spot listenKeys (ccxt 4.5 no longer uses them), MARK_PRICE triggers (the mark
is the last price), the 24 h websocket session limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

from binance_exchange_core import (  # noqa: E402
    MSG_INTERNAL,
    MSG_TIMEOUT,
    MSG_UNEXPECTED,
    ApiError,
    Auth,
    Faults,
    Limiter,
    RequestRecord,
    Stats,
    dec,
)
from binance_exchange_futures import FuturesVenue  # noqa: E402
from binance_exchange_spot import SpotVenue  # noqa: E402
from binance_server import DEFAULT_MARKETS_FILE, BinanceServer, MarketState  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_KEY = "test-api-key-0123456789"
DEFAULT_SECRET = "test-api-secret-0123456789"  # a test value; real secrets never reach this server
DEFAULT_BALANCES = {"USDT": 10_000.0, "BTC": 0.0, "ETH": 0.0, "BNB": 0.0}
FAULT_KINDS_REQUEST = ("drop", "http", "code", "insufficient", "filter", "delay", "rate_limit", "ban")
_UNKNOWN_OUTCOME_CODES = (-1006, -1007)
_RECORD = web.RequestKey("record", RequestRecord)


@dataclass
class RequestContext:
    """What a private handler gets: the request's method, path, parameters and API key."""

    method: str
    path: str
    params: dict[str, str]
    api_key: str
    request: web.Request


Handler = Callable[[RequestContext], Awaitable[Any]]


class BinanceExchange(BinanceServer):
    """The in-process Binance exchange (spot + USDT-M futures); see the module docstring."""

    def __init__(
        self,
        markets_file: str | Path = DEFAULT_MARKETS_FILE,
        *,
        api_key: str = DEFAULT_KEY,
        api_secret: str = DEFAULT_SECRET,
        balances: dict[str, float] | None = None,
        futures_balance: float = 10_000.0,
        host: str = "127.0.0.1",
        seed: int = 7,
        ping_interval_s: float = 20.0,
    ) -> None:
        super().__init__(markets_file, host=host, seed=seed, ping_interval_s=ping_interval_s)
        self.auth = Auth()
        self.limiter = Limiter()
        self.faults = Faults()
        self.stats = Stats()
        self._routes: dict[str, tuple[str, int, bool]] = {}
        self.spot = SpotVenue(self)
        self.futures = FuturesVenue(self)
        self.api_key = api_key
        self.add_account(api_key, api_secret, balances=DEFAULT_BALANCES if balances is None else balances,
                         futures_balance=futures_balance)

    # ------------------------------------------------------------------ accounts and controls

    def add_account(self, api_key: str, api_secret: str, *, balances: dict[str, float] | None = None,
                    futures_balance: float = 0.0, fee_in_bnb: bool = False) -> None:
        self.auth.add(api_key, api_secret, fee_in_bnb=fee_in_bnb)
        acct = self.spot.account(api_key)
        for asset, amount in (balances or {}).items():
            acct.bal(asset)[0] = dec(amount)
        self.futures.account(api_key).wallet = dec(futures_balance)

    def set_balance(self, asset: str, free: float, api_key: str | None = None) -> None:
        self.spot.set_balance(api_key or self.api_key, asset, free)

    def fault(self, kind: str, endpoint: str | None = None, times: int = 1, **opts: Any) -> Any:
        """Arm a fault (see the module docstring and binance_exchange_core.FAULT_KINDS)."""
        return self.faults.add(kind, endpoint, times, **opts)

    async def close_user_streams(self, api_key: str | None = None, abrupt: bool = True) -> int:
        return await self.spot.close_streams(api_key, abrupt) + await self.futures.close_streams(api_key, abrupt)

    def mute_user_streams(self, muted: bool = True) -> None:
        """A silent user stream: events are dropped, sockets stay open and answer pings."""
        self.spot.muted = self.futures.muted = muted

    async def send_malformed_user_event(self, api_key: str | None = None) -> int:
        """One truncated JSON frame on every spot and futures user-data connection of ``api_key``."""
        text = '{"subscriptionId":0,"event":{"e":"executionReport","E":' + str(self.auth.server_time())
        n = await self.spot.send_raw(text, api_key)
        for conn, key in list(self.futures.streams.items()):
            if api_key is None or key == api_key:
                await conn.send('{"e":"ORDER_TRADE_UPDATE","E":')
                n += 1
        return n

    def exposure(self, api_key: str | None = None) -> dict[str, list[str]]:
        """What is still working at the exchange: open spot orders, open futures orders, open
        futures algo orders and non-zero futures positions (``"BTCUSDT -0.010"``), by kind."""
        key = api_key or self.api_key
        return {
            "spot_orders": [f"{o.symbol} {o.client_order_id}" for o in self.spot.open_orders(key)],
            "futures_orders": [f"{o.symbol} {o.client_order_id}" for o in self.futures.open_orders(key)],
            "futures_algo_orders": [f"{a.symbol} {a.client_algo_id}" for a in self.futures.open_algo_orders(key)],
            "futures_positions": [f"{s} {self.futures._q(s, p.amt)}" for s, p in self.futures.positions(key).items()],
        }

    def is_flat(self, api_key: str | None = None) -> bool:
        """No open order (spot, futures, algo) and no futures position: the kill switch's goal."""
        return not any(self.exposure(api_key).values())

    def active_ids(self) -> set[str]:
        """Market ids with something working: the random walk moves these even without subscribers."""
        ids = {o.symbol for o in self.spot.open_orders()} | {o.symbol for o in self.futures.open_orders()}
        ids |= {a.symbol for a in self.futures.open_algo_orders()}
        for acct in self.futures.accounts.values():
            ids |= {s for s, p in acct.positions.items() if p.amt != 0}
        return ids

    async def _steady_loop(self, rate_hz: float) -> None:
        period = 1.0 / rate_hz
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            for market_id in sorted(self.subscribed_ids() | self.active_ids()):
                m = self.markets.get(market_id)
                if m is not None and m.stalled_until <= now:
                    await self.tick(market_id)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # ------------------------------------------------------------------ URLs

    @property
    def ws_api_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws-api/v3"

    @property
    def futures_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/fstream/ws"

    def urls(self) -> dict[str, str]:
        return {"rest": self.rest_url, "ws": self.ws_url, "stream": self.stream_url, "ws_api": self.ws_api_url,
                "futures_ws": self.futures_ws_url, "port": str(self.port)}

    # ------------------------------------------------------------------ app

    def _app(self) -> web.Application:
        app = super()._app()
        app.middlewares.append(self._middleware)
        self.spot.add_routes(app)
        self.futures.add_routes(app)
        app.router.add_get("/fstream/{tail:.*}", self._ws_handler)
        app.router.add_get("/private/ws", self._ws_handler)
        app.router.add_post("/_test/fault", self._control_fault)
        app.router.add_post("/_test/price", self._control_price)
        app.router.add_post("/_test/balance", self._control_balance)
        app.router.add_post("/_test/close_user_streams", self._control_close_streams)
        app.router.add_post("/_test/mute_user_streams", self._control_mute_streams)
        app.router.add_get("/_test/state", self._control_state)
        return app

    # Test-only control endpoints (not Binance's): for a server run as a process (CLI).
    async def _control_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        f = self.fault(body.pop("kind"), body.pop("endpoint", None), int(body.pop("times", 1)), **body)
        return web.json_response({"armed": f.kind})

    async def _control_price(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.set_price(body["symbol"], float(body["price"]), body.get("bid"), body.get("ask"))
        m = self.market(body["symbol"])
        return web.json_response({"symbol": m.symbol, "bid": m.bid, "ask": m.ask, "last": m.last})

    async def _control_balance(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.set_balance(body["asset"], float(body["free"]), body.get("api_key"))
        return web.json_response({})

    async def _control_close_streams(self, request: web.Request) -> web.Response:
        return web.json_response({"closed": await self.close_user_streams()})

    async def _control_mute_streams(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.mute_user_streams(bool(body.get("muted", True)))
        return web.json_response({"muted": self.spot.muted})

    async def _control_state(self, request: web.Request) -> web.Response:
        key = request.query.get("api_key") or self.api_key
        return web.json_response({
            "exposure": self.exposure(key), "flat": self.is_flat(key), "counts": dict(self.stats.counts),
            "orders": [vars(o) for o in self.stats.orders], "duplicate_client_ids": self.stats.duplicate_client_ids(),
            "faults_fired": self.faults.fired, "auth_failures": {str(k): v for k, v in self.auth.failures.items()},
        })

    def route(self, app: web.Application, method: str, path: str, fn: Handler, venue: str, weight: int,
              *, order: bool = False, key_only: bool = False, public: bool = False) -> None:
        """Register a REST endpoint: SIGNED unless ``key_only`` (API key header) or ``public``."""
        self._routes[f"{method} {path}"] = (venue, weight, order)

        async def handler(request: web.Request) -> web.StreamResponse:
            query = request.raw_path.partition("?")[2]
            body = await request.text() if request.can_read_body else ""
            if public:
                params = dict(parse_qsl(query, keep_blank_values=True))
                api_key = ""
            elif key_only:
                api_key = self.auth.key_only(request).api_key
                params = dict(parse_qsl(query, keep_blank_values=True))
                params.update(parse_qsl(body, keep_blank_values=True))
            else:
                acct, params = self.auth.verify(request, query, body)
                api_key = acct.api_key
            rec = request.get(_RECORD)
            if rec is not None:
                rec.params, rec.api_key = params, api_key
            result = await fn(RequestContext(request.method, request.path, params, api_key, request))
            return web.json_response(result)

        app.router.add_route(method, path, handler)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket" or request.path.startswith("/_test/"):
            return await handler(request)
        method, path = request.method, request.path
        endpoint = f"{method} {path}"
        venue, weight, is_order = self._routes.get(endpoint, ("futures" if path.startswith("/fapi") else "spot", 1, False))
        self.stats.counts[endpoint] += 1
        rec = RequestRecord(method, path, {})
        request[_RECORD] = rec
        self.stats.requests.append(rec)
        try:
            if self.paused:
                raise ApiError(-1001, MSG_INTERNAL, 503)
            self.limiter.check(venue, weight, is_order)
            f = self.faults.take(method, path, FAULT_KINDS_REQUEST)
            if f is not None:
                rec.fault = f.kind
                early = await self._fault_before(request, f, venue)
                if early is not None:
                    rec.status = early.status
                    return early
            resp = await handler(request)
            if f is not None and resp.status == 200:
                late = await self._fault_after(request, f, resp)
                rec.status = late.status
                return late
        except ApiError as e:
            resp = e.response()
        rec.status = resp.status
        if venue == "spot":
            resp.headers["X-MBX-USED-WEIGHT-1M"] = str(self.limiter.venues[venue].used)
            if is_order:
                resp.headers["X-MBX-ORDER-COUNT-10S"] = str(len(self.limiter.venues[venue].order_times))
        else:
            resp.headers["X-MBX-USED-WEIGHT-1M"] = str(self.limiter.venues[venue].used)
        return resp

    def _executes(self, f: Any) -> bool:
        if f.execute is not None:
            return bool(f.execute)
        if f.kind in ("drop", "delay"):
            return True
        if f.kind == "code":
            return (f.code if f.code is not None else -1007) in _UNKNOWN_OUTCOME_CODES
        return False

    def _fault_response(self, f: Any) -> web.StreamResponse:
        if f.kind == "http":
            status = f.status or 503
            if f.code is not None:
                return web.json_response({"code": f.code, "msg": f.msg or MSG_INTERNAL}, status=status)
            return web.Response(text=f.msg or {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable.",
                                               504: "Gateway Timeout"}.get(status, "Server Error"), status=status)
        if f.kind == "code":
            code = f.code if f.code is not None else -1007
            msg = f.msg or {-1007: MSG_TIMEOUT, -1006: MSG_UNEXPECTED}.get(code, MSG_INTERNAL)
            return web.json_response({"code": code, "msg": msg}, status=f.status or (408 if code == -1007 else 400 if code < -1100 else 503))
        if f.kind == "insufficient":
            return web.json_response({"code": -2010, "msg": "Account has insufficient balance for requested action."}, status=400)
        if f.kind == "filter":
            return web.json_response({"code": -1013, "msg": f"Filter failure: {f.filter}"}, status=400)
        raise AssertionError(f.kind)

    async def _fault_before(self, request: web.Request, f: Any, venue: str) -> web.StreamResponse | None:
        if f.kind == "rate_limit":
            return self.limiter.force_429(venue, f.retry_after_s).response()
        if f.kind == "ban":
            return self.limiter.force_ban(venue, f.ban_s).response()
        if self._executes(f):
            return None
        if f.kind == "delay":
            await asyncio.sleep(f.delay_s)
            return None
        if f.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        return self._fault_response(f)

    async def _fault_after(self, request: web.Request, f: Any, resp: web.StreamResponse) -> web.StreamResponse:
        if f.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        if f.kind == "delay":
            await asyncio.sleep(f.delay_s)
            return resp
        return self._fault_response(f)

    # ------------------------------------------------------------------ price and streams

    async def _rest_time(self, request: web.Request) -> web.Response:
        return self._record(request) or self._json({"serverTime": self.auth.server_time()})

    async def _emit(self, m: MarketState) -> dict[str, Any]:
        event = await super()._emit(m)
        await self.spot.on_price(m.market_id)
        await self.futures.on_price(m.market_id)
        return event

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("listenKey") or request.match_info.get("tail", "").rsplit("/", 1)[-1]
        if key and key in self.futures.listen_keys:
            return await self.futures.user_stream_handler(request, key)
        if request.path.endswith("/private/ws"):
            raise web.HTTPBadRequest(text='{"code":-1125,"msg":"This listenKey does not exist."}')
        return await super()._ws_handler(request)

    async def stop(self) -> None:
        await self.futures.stop_timers()
        await self.close_user_streams(abrupt=False)
        await super().stop()


# --------------------------------------------------------------------------- ccxt


def ccxt_urls(rest_base: str, ws_base: str) -> dict[str, Any]:
    """ccxt's ``urls['api']`` for Binance spot and USDT-M futures, all on one local host."""
    api = {name: f"{rest_base}/{path}" for name, path in {
        "public": "api/v3", "private": "api/v3", "v1": "api/v1", "sapi": "sapi/v1", "sapiV2": "sapi/v2",
        "sapiV3": "sapi/v3", "sapiV4": "sapi/v4", "fapiPublic": "fapi/v1", "fapiPublicV2": "fapi/v2",
        "fapiPublicV3": "fapi/v3", "fapiPrivate": "fapi/v1", "fapiPrivateV2": "fapi/v2", "fapiPrivateV3": "fapi/v3",
        "fapiData": "futures/data", "dapiPublic": "dapi/v1", "dapiPrivate": "dapi/v1", "dapiPrivateV2": "dapi/v2",
        "dapiData": "futures/data", "eapiPublic": "eapi/v1", "eapiPrivate": "eapi/v1", "papi": "papi/v1", "papiV2": "papi/v2",
    }.items()}
    api["ws"] = {
        "spot": f"{ws_base}/ws", "margin": f"{ws_base}/ws", "linear": f"{ws_base}/fstream/ws",
        "inverse": f"{ws_base}/dstream/ws", "papi": f"{ws_base}/pm/ws",
        "ws-api": {"spot": f"{ws_base}/ws-api/v3", "linear": f"{ws_base}/ws-fapi/v1", "inverse": f"{ws_base}/ws-dapi/v1"},
    }
    return api


def offline_markets(exchange: Any, server: BinanceExchange) -> list[dict[str, Any]]:
    """ccxt market structures parsed by ``exchange.parse_market`` from the server's exchangeInfo."""
    raw = list(server._exchange_info_symbols) + list(server.futures.exchange_info_symbols())
    exchange.options.setdefault("crossMarginPairsData", [])  # set by fetch_markets, read by parse_market
    exchange.options.setdefault("isolatedMarginPairsData", [])
    return [exchange.parse_market(e) for e in raw]


def point_ccxt_at(exchange: Any, rest_base: str, ws_base: str | None = None, markets: BinanceExchange | None = None) -> Any:
    """Point a ccxt Binance instance's REST and websocket URLs at ``rest_base`` (and ``ws_base``,
    default the same host with ws://), map error codes as ccxt does for Binance's own hosts, and
    load the markets from ``markets`` (a BinanceExchange) without a request."""
    rest_base = rest_base.rstrip("/")
    ws_base = (ws_base or rest_base.replace("http://", "ws://").replace("https://", "wss://")).rstrip("/")
    if ws_base.endswith("/ws"):
        ws_base = ws_base[: -len("/ws")]
    urls = dict(exchange.urls)
    urls["api"] = {**exchange.urls.get("api", {}), **ccxt_urls(rest_base, ws_base)}
    exchange.urls = urls
    original = exchange.get_exceptions_by_url

    def exceptions_by_url(url: str | None, exact_or_broad: str) -> dict[str, Any]:
        if url and url.startswith(rest_base + "/"):
            path = url[len(rest_base):]
            kind = "linear" if path.startswith("/fapi") else "inverse" if path.startswith("/dapi") else \
                "option" if path.startswith("/eapi") else "portfolioMargin" if path.startswith("/papi") else "spot"
            return exchange.safe_dict(exchange.safe_dict(exchange.exceptions, kind, {}), exact_or_broad, {})
        return original(url, exact_or_broad)

    exchange.get_exceptions_by_url = exceptions_by_url
    exchange.options["fetchCurrencies"] = False
    if markets is not None:
        exchange.set_markets(offline_markets(exchange, markets))
    return exchange


def make_ccxt(server: BinanceExchange, kind: str = "pro", *, api_key: str | None = None, secret: str | None = None,
              default_type: str = "spot", **config: Any) -> Any:
    """A ccxt Binance client (``kind``: "pro", "async" or "sync") wired to ``server``.

    The secret defaults to the server's default account's (a test value)."""
    if kind == "pro":
        import ccxt.pro as mod
    elif kind == "async":
        import ccxt.async_support as mod
    else:
        import ccxt as mod
    key = api_key or server.api_key
    acct = server.auth.accounts.get(key)
    sec = secret if secret is not None else (acct.secret if acct else "")
    options = {"defaultType": default_type, **config.pop("options", {})}
    ex = mod.binance({"apiKey": key, "secret": sec, "enableRateLimit": True, "timeout": 5000, "options": options, **config})
    return point_ccxt_at(ex, server.rest_url, None, server)


class ThreadedExchange:
    """A BinanceExchange on its own event loop in a background thread, for synchronous code
    (``ccxt.binance``, a client that owns its own loop): ``with ThreadedExchange() as t: t.server``;
    ``t.run(t.server.set_price("BTC/USDT", 60000))`` runs a coroutine on the server's loop."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="binance-exchange", daemon=True)
        self.server: BinanceExchange

    def run(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        async def _await() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(_await(), self.loop).result(timeout)

    def __enter__(self) -> ThreadedExchange:
        self._thread.start()

        async def _start() -> BinanceExchange:
            server = BinanceExchange(**self._kwargs)
            await server.start()
            return server

        self.server = self.run(_start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


try:  # the fixture needs pytest-asyncio, present in the test environment only
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def exchange_server() -> AsyncIterator[BinanceExchange]:
        """A started BinanceExchange on 127.0.0.1 (free port), default account; stopped after the test."""
        server = BinanceExchange()
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
except ImportError:  # pragma: no cover
    pass


# --------------------------------------------------------------------------- CLI


async def _main_async(args: argparse.Namespace) -> None:
    key = args.api_key or os.environ.get("BINANCE_EXCHANGE_KEY") or DEFAULT_KEY
    secret = os.environ.get("BINANCE_EXCHANGE_SECRET") or args.api_secret or DEFAULT_SECRET
    server = BinanceExchange(args.markets, api_key=key, api_secret=secret, host=args.host, seed=args.seed,
                             balances={"USDT": args.usdt, "BTC": 0.0, "ETH": 0.0, "BNB": 0.0}, futures_balance=args.usdt)
    await server.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.rate > 0:
        server.start_steady(args.rate)
    u = server.urls()
    print(f"binance-exchange ready rest={u['rest']} ws={u['ws']} ws_api={u['ws_api']} futures_ws={u['futures_ws']} "
          f"port={server.port} api_key={key}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Local Binance-protocol exchange (spot + USDT-M futures) for offline tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port; printed at start)")
    p.add_argument("--markets", default=str(DEFAULT_MARKETS_FILE))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rate", type=float, default=2.0, help="price-walk updates per second per subscribed pair (0 = still)")
    p.add_argument("--usdt", type=float, default=10_000.0, help="starting USDT, spot and futures")
    p.add_argument("--api-key", default=None)
    p.add_argument("--api-secret", default=None, help="prefer $BINANCE_EXCHANGE_SECRET (argv is visible to ps)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main_async(args))


if __name__ == "__main__":
    main()
