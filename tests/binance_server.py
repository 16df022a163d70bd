"""A local server that speaks enough of Binance's spot market-data protocol for ccxt, offline.

It owns the fake exchange side of the Binance source tests and of offline end-to-end runs:

* websocket streams on ``/ws``, ``/ws/<anything>`` (raw events; ccxt connects to ``/ws/0``)
  and ``/stream``, ``/stream?streams=a/b`` (combined form ``{"stream": ..., "data": ...}``),
  with the JSON control methods ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
  ``SET_PROPERTY``/``GET_PROPERTY`` (``combined``) and their acks ``{"result": null, "id": N}``;
* ``<symbol>@ticker`` (``24hrTicker``, every field Binance sends) and ``<symbol>@miniTicker``;
* websocket ping frames every ``ping_interval_s`` that the client must answer with a pong
  (a client silent for ``pong_timeout_s`` is disconnected, as Binance does), and pongs for
  the client's pings;
* REST ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo``, ``/api/v3/klines``,
  ``/api/v3/ticker/24hr``, ``/api/v3/ticker/bookTicker``, ``/api/v3/ticker/price`` with
  Binance's error bodies (``{"code": -1121, "msg": "Invalid symbol."}``).

The markets come from ``tests/data/binance_markets.json`` (ccxt ``load_markets()`` form; the raw
exchangeInfo entry of each market is its ``info``), or from a raw exchangeInfo JSON.

Tests drive it in-process (``await server.burst(...)``, ``server.stall(...)``, ``await
server.pause()``...); ``python tests/binance_server.py --port N --scenario steady`` runs it
standalone and prints one line with its URLs when it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

logger = logging.getLogger(__name__)

DEFAULT_MARKETS_FILE = Path(__file__).resolve().parent / "data" / "binance_markets.json"

# Rough mid prices (USDT) to start each pair's random walk from; anything else starts at 1.0.
REFERENCE_PRICES: dict[str, float] = {
    "BTC": 65000.0, "ETH": 3200.0, "SOL": 150.0, "BNB": 580.0, "XRP": 0.52, "ADA": 0.45,
    "DOGE": 0.12, "AVAX": 28.0, "DOT": 6.2, "LINK": 14.0, "LTC": 72.0, "TRX": 0.12,
    "POL": 0.45, "ATOM": 6.5, "NEAR": 5.2, "UNI": 7.5, "ETC": 21.0, "FIL": 4.2, "APT": 7.8,
    "ARB": 0.75, "OP": 1.6, "SUI": 1.1, "INJ": 20.0, "BCH": 380.0,
}

INTERVALS_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
    "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
    "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
    "3d": 259_200_000, "1w": 604_800_000,
}

DAY_MS = 86_400_000
WS_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fmt(x: float) -> str:
    return f"{x:.8f}"


def _q(x: float) -> float:
    """A price as the wire carries it (8 decimals), so what we send is what a client parses."""
    return float(f"{x:.8f}")


@dataclass(slots=True)
class MarketState:
    """One pair's live book top and rolling 24h statistics, as the ticker stream reports them."""

    market_id: str  # BTCUSDT
    symbol: str  # BTC/USDT
    tick: float  # PRICE_FILTER tickSize
    step: float  # LOT_SIZE stepSize
    mid: float
    bid: float = 0.0
    ask: float = 0.0
    last: float = 0.0
    last_qty: float = 0.0
    bid_qty: float = 1.0
    ask_qty: float = 1.0
    open: float = 0.0  # price 24h ago
    high: float = 0.0
    low: float = 0.0
    base_volume: float = 0.0
    quote_volume: float = 0.0
    first_trade_id: int = 1_000_000
    last_trade_id: int = 1_000_000
    stalled_until: float = 0.0  # monotonic; no steady updates before this

    def quote(self, rng: random.Random) -> None:
        """Put bid/ask one tick apart around ``mid`` and trade at one of them."""
        self.bid = _q(max(self.tick, math.floor(self.mid / self.tick) * self.tick))
        self.ask = _q(self.bid + self.tick)
        self.trade(self.ask if rng.random() < 0.5 else self.bid, rng)

    def trade(self, price: float, rng: random.Random) -> None:
        qty = round(rng.uniform(1.0, 500.0)) * self.step
        price = _q(price)
        self.last = price
        self.last_qty = qty
        self.bid_qty = round(rng.uniform(1, 200)) * self.step * 10
        self.ask_qty = round(rng.uniform(1, 200)) * self.step * 10
        self.high = max(self.high, price)
        self.low = min(self.low, price) if self.low > 0 else price
        self.base_volume += qty
        self.quote_volume += qty * price
        self.last_trade_id += 1

    def ticker_event(self, now_ms: int) -> dict[str, Any]:
        change = self.last - self.open
        vwap = self.quote_volume / self.base_volume if self.base_volume > 0 else self.last
        return {
            "e": "24hrTicker",
            "E": now_ms,
            "s": self.market_id,
            "p": _fmt(change),
            "P": f"{(change / self.open * 100.0) if self.open > 0 else 0.0:.3f}",
            "w": _fmt(vwap),
            "x": _fmt(self.open),
            "c": _fmt(self.last),
            "Q": _fmt(self.last_qty),
            "b": _fmt(self.bid),
            "B": _fmt(self.bid_qty),
            "a": _fmt(self.ask),
            "A": _fmt(self.ask_qty),
            "o": _fmt(self.open),
            "h": _fmt(self.high),
            "l": _fmt(self.low),
            "v": _fmt(self.base_volume),
            "q": _fmt(self.quote_volume),
            "O": now_ms - DAY_MS,
            "C": now_ms - 1,
            "F": self.first_trade_id,
            "L": self.last_trade_id,
            "n": self.last_trade_id - self.first_trade_id + 1,
        }

    def mini_ticker_event(self, now_ms: int) -> dict[str, Any]:
        return {
            "e": "24hrMiniTicker",
            "E": now_ms,
            "s": self.market_id,
            "c": _fmt(self.last),
            "o": _fmt(self.open),
            "h": _fmt(self.high),
            "l": _fmt(self.low),
            "v": _fmt(self.base_volume),
            "q": _fmt(self.quote_volume),
        }


@dataclass(eq=False)
class Connection:
    """One websocket client: its subscriptions and whether it gets the combined-stream form."""

    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    combined: bool
    path: str
    streams: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_pong: float = field(default_factory=time.monotonic)
    pongs: int = 0

    async def send(self, text: str) -> None:
        if self.ws.closed:
            return
        async with self.lock:  # aiohttp frames must not interleave across tasks
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(text)


def _load_exchange_info_symbols(path: Path) -> list[dict[str, Any]]:
    """Raw exchangeInfo symbol entries from a ccxt markets file or an exchangeInfo JSON."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("symbols"), list):
        return [s for s in data["symbols"] if isinstance(s, dict)]
    if isinstance(data, dict):
        out = []
        for m in data.values():
            if isinstance(m, dict) and isinstance(m.get("info"), dict) and m.get("spot", True):
                out.append(m["info"])
        return out
    raise ValueError(f"{path}: expected a ccxt markets object or an exchangeInfo object")


def _filter(entry: dict[str, Any], kind: str, key: str, default: float) -> float:
    for f in entry.get("filters", []):
        if f.get("filterType") == kind and key in f:
            return float(f[key])
    return default


class BinanceServer:
    """The in-process fake exchange: start it, point ccxt at ``ws_url``/``rest_url``, drive it."""

    def __init__(
        self,
        markets_file: str | Path = DEFAULT_MARKETS_FILE,
        *,
        host: str = "127.0.0.1",
        seed: int = 7,
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 60.0,
    ) -> None:
        self.host = host
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self._rng = random.Random(seed)
        self._exchange_info_symbols = _load_exchange_info_symbols(Path(markets_file))
        self.markets: dict[str, MarketState] = {}  # by market id
        for entry in self._exchange_info_symbols:
            base = str(entry.get("baseAsset", ""))
            quote = str(entry.get("quoteAsset", ""))
            mid = REFERENCE_PRICES.get(base, 1.0) if quote == "USDT" else 1.0
            m = MarketState(
                market_id=str(entry["symbol"]),
                symbol=f"{base}/{quote}",
                tick=_filter(entry, "PRICE_FILTER", "tickSize", 1e-8),
                step=_filter(entry, "LOT_SIZE", "stepSize", 1e-8),
                mid=mid,
            )
            m.open = m.high = m.low = mid
            m.base_volume = 5e8 / mid
            m.quote_volume = 5e8
            m.quote(self._rng)
            self.markets[m.market_id] = m
        self._by_symbol = {m.symbol: m for m in self.markets.values()}
        self.connections: set[Connection] = set()
        self.connections_total = 0
        self.subscribe_requests: list[list[str]] = []
        self.rest_requests: list[tuple[str, dict[str, str]]] = []
        self.events_sent: Counter[str] = Counter()  # market id -> ticker events sent
        self.paused = False
        # Kline data set controls (off by default): open-time ranges [start, end) in ms with no
        # candle at all, as after an exchange outage; and, when not None, how many more klines
        # requests are answered before every further one gets a 503 (a drop mid-download).
        self.kline_holes: list[tuple[int, int]] = []
        self.klines_fail_after: int | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._steady: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- lifecycle

    @property
    def ws_url(self) -> str:
        """Base URL for ccxt's ``urls['api']['ws']['spot']`` (ccxt appends ``/<n>``)."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def stream_url(self) -> str:
        """Base URL of the combined-stream endpoint (events wrapped as ``{stream, data}``)."""
        return f"ws://{self.host}:{self.port}/stream"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API (``/api/v3/...`` lives under it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def symbols(self) -> list[str]:
        return [m.symbol for m in self.markets.values()]

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/{tail:.*}", self._ws_handler)
        app.router.add_get("/stream", self._ws_handler)
        app.router.add_get("/stream/{tail:.*}", self._ws_handler)
        app.router.add_get("/api/v3/ping", self._rest_ping)
        app.router.add_get("/api/v3/time", self._rest_time)
        app.router.add_get("/api/v3/exchangeInfo", self._rest_exchange_info)
        app.router.add_get("/api/v3/klines", self._rest_klines)
        app.router.add_get("/api/v3/uiKlines", self._rest_klines)
        app.router.add_get("/api/v3/ticker/24hr", self._rest_ticker_24hr)
        app.router.add_get("/api/v3/ticker/bookTicker", self._rest_book_ticker)
        app.router.add_get("/api/v3/ticker/price", self._rest_price)
        return app

    async def start(self, port: int = 0) -> None:
        """Listen on ``host:port`` (0 = a free port, read it back from ``self.port``)."""
        self._runner = web.AppRunner(self._app(), handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen(port)

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, port)
        await self._site.start()
        server = self._site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        await self.stop_steady()
        for t in list(self._tasks):
            t.cancel()
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BinanceServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- controls

    def market(self, symbol: str) -> MarketState:
        """A pair by unified symbol (``BTC/USDT``) or market id (``BTCUSDT``)."""
        m = self._by_symbol.get(symbol) or self.markets.get(symbol.upper())
        if m is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        return m

    def subscribed_ids(self) -> set[str]:
        """Market ids some open connection is subscribed to (ticker or miniTicker)."""
        out: set[str] = set()
        for c in self.connections:
            for s in c.streams:
                sym, _, _kind = s.partition("@")
                out.add(sym.upper())
        return out

    async def wait_subscribed(self, symbols: list[str], timeout: float = 10.0) -> None:
        """Wait until every pair in ``symbols`` has a subscriber."""
        wanted = {self.market(s).market_id for s in symbols}
        deadline = time.monotonic() + timeout
        while not wanted <= self.subscribed_ids():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not subscribed in {timeout} s: {sorted(wanted - self.subscribed_ids())}")
            await asyncio.sleep(0.02)

    async def tick(self, symbol: str) -> dict[str, Any]:
        """Move one pair's price one random step and send its ticker; returns the event."""
        m = self.market(symbol)
        m.mid = max(m.tick * 2, m.mid * math.exp(self._rng.gauss(0.0, 0.0003)))
        m.quote(self._rng)
        return await self._emit(m)

    async def set_price(self, symbol: str, last: float, bid: float | None = None, ask: float | None = None) -> dict[str, Any]:
        """Set a pair's last (and optionally bid/ask) exactly and send its ticker now."""
        m = self.market(symbol)
        m.mid = last
        m.bid = _q(bid if bid is not None else last - m.tick)
        m.ask = _q(ask if ask is not None else last + m.tick)
        m.trade(last, self._rng)
        return await self._emit(m)

    async def burst(self, symbols: list[str] | None = None, n: int = 50) -> dict[str, float]:
        """Send ``n`` updates per pair back to back, round robin, each a new last price.

        Every update raises the pair's price by one tick, so the final value is the highest;
        returns ``{symbol: final last}``.
        """
        pairs = [self.market(s) for s in (symbols or self.symbols)]
        for _ in range(n):
            for m in pairs:
                m.mid = _q(m.last + m.tick)
                m.bid = _q(m.mid - m.tick)
                m.ask = _q(m.mid + m.tick)
                m.trade(m.mid, self._rng)
                await self._emit(m)
        return {m.symbol: m.last for m in pairs}

    def stall(self, symbol: str | None, seconds: float) -> None:
        """No steady updates for ``symbol`` (None = every pair) during ``seconds``."""
        until = time.monotonic() + seconds
        targets = self.markets.values() if symbol is None else [self.market(symbol)]
        for m in targets:
            m.stalled_until = until

    async def send_malformed(self, kind: str = "json") -> None:
        """Send one bad frame to every connection.

        ``json``: truncated JSON; ``text``: not JSON at all; ``no_bid``: a 24hrTicker of a
        subscribed pair without ``b``/``a``; ``zero_price``: one with ``b`` = ``"0"``;
        ``no_symbol``: a 24hrTicker without ``s``.
        """
        for c in list(self.connections):
            sub = sorted(c.streams)
            market_id = sub[0].partition("@")[0].upper() if sub else next(iter(self.markets))
            event = self.market(market_id).ticker_event(_now_ms())
            if kind == "json":
                text = '{"e":"24hrTicker","E":' + str(_now_ms()) + ',"s":"BTCUSDT","c":"6500'
            elif kind == "text":
                text = "garbage frame: not json"
            elif kind == "no_bid":
                event.pop("b")
                event.pop("a")
                text = self._frame(c, event)
            elif kind == "zero_price":
                event["b"] = "0.00000000"
                text = self._frame(c, event)
            elif kind == "no_symbol":
                event.pop("s")
                text = self._frame(c, event)
            else:
                raise ValueError(f"unknown malformed kind {kind!r}")
            await c.send(text)

    async def send_unknown_symbol(self, market_id: str = "FOOUSDT") -> None:
        """Send a well-formed 24hrTicker for a pair nobody subscribed to (or that does not exist)."""
        ref = next(iter(self.markets.values()))
        event = ref.ticker_event(_now_ms())
        event["s"] = market_id
        for c in list(self.connections):
            await c.send(self._frame(c, event, stream=f"{market_id.lower()}@ticker"))

    async def drop_connections(self, abrupt: bool = False) -> int:
        """Close every websocket: a close frame (1001 going away) or, ``abrupt``, a TCP reset."""
        conns = list(self.connections)

        async def close(c: Connection) -> None:
            if abrupt and c.transport is not None:
                c.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await c.ws.close(code=1001, message=b"server going away")

        await asyncio.gather(*(close(c) for c in conns))
        self.connections.difference_update(conns)
        return len(conns)

    async def pause(self) -> None:
        """Refuse new connections (closed port), drop current ones, answer REST with 503."""
        self.paused = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.drop_connections()

    async def resume(self) -> None:
        """Accept connections again on the same port."""
        if self._site is None:
            await self._listen(self.port)
        self.paused = False

    def start_steady(self, rate_hz: float = 4.0) -> None:
        """Send ``rate_hz`` ticker updates per second for every subscribed, non-stalled pair."""
        if self._steady is None or self._steady.done():
            self._steady = asyncio.get_running_loop().create_task(self._steady_loop(rate_hz))

    async def stop_steady(self) -> None:
        if self._steady is not None:
            self._steady.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._steady
            self._steady = None

    async def _steady_loop(self, rate_hz: float) -> None:
        period = 1.0 / rate_hz
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            for market_id in sorted(self.subscribed_ids()):
                m = self.markets.get(market_id)
                if m is not None and m.stalled_until <= now:
                    await self.tick(market_id)
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # ----------------------------------------------------------------- websocket

    def _frame(self, c: Connection, event: dict[str, Any], stream: str | None = None) -> str:
        if c.combined:
            name = stream or f"{str(event.get('s', '')).lower()}@ticker"
            return json.dumps({"stream": name, "data": event}, separators=(",", ":"))
        return json.dumps(event, separators=(",", ":"))

    async def _emit(self, m: MarketState) -> dict[str, Any]:
        now = _now_ms()
        full = m.ticker_event(now)
        lower = m.market_id.lower()
        raw_full = raw_mini = None
        for c in list(self.connections):
            if f"{lower}@ticker" in c.streams:
                if c.combined:
                    await c.send(self._frame(c, full, f"{lower}@ticker"))
                else:
                    raw_full = raw_full or json.dumps(full, separators=(",", ":"))
                    await c.send(raw_full)
                self.events_sent[m.market_id] += 1
            if f"{lower}@miniTicker" in c.streams:
                mini = m.mini_ticker_event(now)
                if c.combined:
                    await c.send(self._frame(c, mini, f"{lower}@miniTicker"))
                else:
                    raw_mini = raw_mini or json.dumps(mini, separators=(",", ":"))
                    await c.send(raw_mini)
        return full

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if self.paused:
            raise web.HTTPServiceUnavailable()
        combined = request.path.startswith("/stream")
        ws = web.WebSocketResponse(autoping=False, timeout=2.0)
        await ws.prepare(request)
        conn = Connection(ws=ws, transport=request.transport, combined=combined, path=request.path)
        if combined:
            conn.streams.update(s for s in request.query.get("streams", "").split("/") if "@" in s)
        else:
            tail = request.match_info.get("tail", "")
            conn.streams.update(s for s in tail.split("/") if "@" in s)
        self.connections.add(conn)
        self.connections_total += 1
        try:
            await self.serve_frames(conn, self._on_request, binary_error=True)
        finally:
            self.connections.discard(conn)
        return ws

    async def serve_frames(
        self, conn: Connection, on_text: Callable[[Connection, str], Awaitable[None]] | None = None,
        *, binary_error: bool = False,
    ) -> None:
        """One websocket's receive loop, for every stream this server and the exchange serve:
        text frames to ``on_text``, pings answered, pongs counted and refreshing ``last_pong``
        (``_ping_loop`` closes a client silent for ``pong_timeout_s``, as Binance does)."""
        pinger = asyncio.get_running_loop().create_task(self._ping_loop(conn))
        ws = conn.ws
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and on_text is not None:
                    await on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                    conn.pongs += 1
                elif msg.type == WSMsgType.BINARY and binary_error:
                    await conn.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON: binary frame"}, "id": None}))
        finally:
            pinger.cancel()

    async def _ping_loop(self, conn: Connection) -> None:
        # Binance pings every 20 s and disconnects a client that has not ponged for a minute.
        while not conn.ws.closed:
            await asyncio.sleep(self.ping_interval_s)
            if time.monotonic() - conn.last_pong > self.pong_timeout_s:
                logger.info("closing %s: no pong for %.1f s", conn.path, self.pong_timeout_s)
                await conn.ws.close(code=1008, message=b"pong timeout")
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                async with conn.lock:
                    await conn.ws.ping(str(_now_ms()).encode())

    @property
    def pongs_received(self) -> int:
        return sum(c.pongs for c in self.connections)

    async def _on_request(self, conn: Connection, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError as exc:
            await conn.send(json.dumps({"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}, "id": None}))
            return
        if not isinstance(req, dict):
            await conn.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected an object"}, "id": None}))
            return
        req_id = req.get("id")
        method = req.get("method")
        params = req.get("params", [])
        if method not in WS_METHODS:
            msg = f"Invalid request: unknown variant `{method}`, expected one of {', '.join(f'`{m}`' for m in WS_METHODS)}"
            await conn.send(json.dumps({"error": {"code": 2, "msg": msg}, "id": req_id}))
            return
        if not isinstance(params, list) or not all(isinstance(p, str | bool) for p in params):
            await conn.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: params must be an array"}, "id": req_id}))
            return
        result: Any = None
        if method == "SUBSCRIBE":
            streams = [p for p in params if isinstance(p, str)]
            conn.streams.update(streams)
            self.subscribe_requests.append(streams)
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(p for p in params if isinstance(p, str))
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(conn.streams)
        elif method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined" or not isinstance(params[1], bool):
                await conn.send(json.dumps({"error": {"code": 0, "msg": "Unknown property"}, "id": req_id}))
                return
            conn.combined = params[1]
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                await conn.send(json.dumps({"error": {"code": 0, "msg": "Unknown property"}, "id": req_id}))
                return
            result = conn.combined
        await conn.send(json.dumps({"result": result, "id": req_id}))

    # ----------------------------------------------------------------- REST

    def _json(self, body: Any, status: int = 200) -> web.Response:
        return web.json_response(body, status=status, headers={"x-mbx-used-weight-1m": "1"})

    def _error(self, code: int, msg: str, status: int = 400) -> web.Response:
        return self._json({"code": code, "msg": msg}, status=status)

    def _record(self, request: web.Request) -> web.Response | None:
        self.rest_requests.append((request.path, dict(request.query)))
        if self.paused:
            return self._error(-1001, "Internal error; unable to process your request. Please try again.", 503)
        return None

    def _symbol_param(self, request: web.Request) -> MarketState | web.Response:
        market_id = request.query.get("symbol")
        if not market_id:
            return self._error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        m = self.markets.get(market_id)
        if m is None:
            return self._error(-1121, "Invalid symbol.")
        return m

    async def _rest_ping(self, request: web.Request) -> web.Response:
        return self._record(request) or self._json({})

    async def _rest_time(self, request: web.Request) -> web.Response:
        return self._record(request) or self._json({"serverTime": _now_ms()})

    async def _rest_exchange_info(self, request: web.Request) -> web.Response:
        refused = self._record(request)
        if refused:
            return refused
        entries = self._exchange_info_symbols
        wanted: set[str] | None = None
        if "symbol" in request.query:
            wanted = {request.query["symbol"]}
        elif "symbols" in request.query:
            try:
                wanted = set(json.loads(request.query["symbols"]))
            except ValueError:
                return self._error(-1100, "Illegal characters found in parameter 'symbols'.")
        if wanted is not None:
            if not wanted <= set(self.markets):
                return self._error(-1121, "Invalid symbol.")
            entries = [e for e in entries if e["symbol"] in wanted]
        return self._json({
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": entries,
        })

    def kline(self, m: MarketState, interval_ms: int, open_time: int) -> list[Any]:
        """One candle, a pure function of (pair, interval, open time): repeat calls agree."""
        def close_at(t: int) -> float:
            wave = 0.03 * math.sin(2 * math.pi * t / (interval_ms * 240.0))
            noise = random.Random(f"{m.market_id}:{interval_ms}:{t}").uniform(-1.0, 1.0)
            return max(m.tick, round(m.mid * (1.0 + wave + 0.004 * noise) / m.tick) * m.tick)

        r = random.Random(f"{m.market_id}:{interval_ms}:{open_time}:hl")
        o = close_at(open_time - interval_ms)
        c = close_at(open_time)
        h = max(o, c) * (1.0 + r.uniform(0.0, 0.002))
        low = min(o, c) * (1.0 - r.uniform(0.0, 0.002))
        vol = r.uniform(10.0, 1000.0) * 1e4 / max(c, 1e-9) * (interval_ms / 60_000)
        trades = r.randint(100, 5000)
        return [
            open_time, _fmt(o), _fmt(h), _fmt(low), _fmt(c), _fmt(vol), open_time + interval_ms - 1,
            _fmt(vol * c), trades, _fmt(vol / 2), _fmt(vol * c / 2), "0",
        ]

    async def _rest_klines(self, request: web.Request) -> web.Response:
        refused = self._record(request)
        if refused:
            return refused
        m = self._symbol_param(request)
        if isinstance(m, web.Response):
            return m
        interval = request.query.get("interval")
        if interval is None:
            return self._error(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        interval_ms = INTERVALS_MS.get(interval)
        if interval_ms is None:
            return self._error(-1120, "Invalid interval.")
        try:
            limit = int(request.query.get("limit", "500"))
            start = int(request.query["startTime"]) if "startTime" in request.query else None
            end = int(request.query["endTime"]) if "endTime" in request.query else None
        except ValueError:
            return self._error(-1100, "Illegal characters found in a parameter.")
        limit = max(1, min(limit, 1000))
        if self.klines_fail_after is not None:
            if self.klines_fail_after <= 0:
                return self._error(-1001, "Internal error; unable to process your request. Please try again.", 503)
            self.klines_fail_after -= 1
        now = _now_ms()
        current_open = now - now % interval_ms  # the still-forming candle, as Binance returns it
        last_open = current_open if end is None else min(current_open, end - end % interval_ms)

        def exists(t: int) -> bool:
            return not any(a <= t < b for a, b in self.kline_holes)

        if start is not None:  # the next `limit` candles that exist, as Binance skips a hole
            first_open = -(-start // interval_ms) * interval_ms
            found = (t for t in range(first_open, last_open + 1, interval_ms) if exists(t))
            opens = list(itertools.islice(found, limit))
        else:
            opens = [t for t in (last_open - i * interval_ms for i in range(limit - 1, -1, -1)) if exists(t)]
        return self._json([self.kline(m, interval_ms, t) for t in opens])

    def _ticker_24hr_rest(self, m: MarketState) -> dict[str, Any]:
        e = m.ticker_event(_now_ms())
        return {
            "symbol": m.market_id, "priceChange": e["p"], "priceChangePercent": e["P"],
            "weightedAvgPrice": e["w"], "prevClosePrice": e["x"], "lastPrice": e["c"],
            "lastQty": e["Q"], "bidPrice": e["b"], "bidQty": e["B"], "askPrice": e["a"],
            "askQty": e["A"], "openPrice": e["o"], "highPrice": e["h"], "lowPrice": e["l"],
            "volume": e["v"], "quoteVolume": e["q"], "openTime": e["O"], "closeTime": e["C"],
            "firstId": e["F"], "lastId": e["L"], "count": e["n"],
        }

    async def _rest_ticker_24hr(self, request: web.Request) -> web.Response:
        refused = self._record(request)
        if refused:
            return refused
        if "symbol" not in request.query:
            return self._json([self._ticker_24hr_rest(m) for m in self.markets.values()])
        m = self._symbol_param(request)
        return m if isinstance(m, web.Response) else self._json(self._ticker_24hr_rest(m))

    async def _rest_book_ticker(self, request: web.Request) -> web.Response:
        refused = self._record(request)
        if refused:
            return refused

        def one(m: MarketState) -> dict[str, str]:
            return {"symbol": m.market_id, "bidPrice": _fmt(m.bid), "bidQty": _fmt(m.bid_qty),
                    "askPrice": _fmt(m.ask), "askQty": _fmt(m.ask_qty)}

        if "symbol" not in request.query:
            return self._json([one(m) for m in self.markets.values()])
        m = self._symbol_param(request)
        return m if isinstance(m, web.Response) else self._json(one(m))

    async def _rest_price(self, request: web.Request) -> web.Response:
        refused = self._record(request)
        if refused:
            return refused
        if "symbol" not in request.query:
            return self._json([{"symbol": m.market_id, "price": _fmt(m.last)} for m in self.markets.values()])
        m = self._symbol_param(request)
        return m if isinstance(m, web.Response) else self._json({"symbol": m.market_id, "price": _fmt(m.last)})


# --------------------------------------------------------------------- CLI scenarios


async def _run_scenario(server: BinanceServer, scenario: str, rate_hz: float, stop: asyncio.Event) -> None:
    """``steady``: ticks only; ``burst``: steady plus a 50-update burst every 5 s; ``flaky``:
    steady plus a dropped connection every 10 s; ``idle``: acks and REST only, no ticks."""
    if scenario != "idle":
        server.start_steady(rate_hz)
    period = {"burst": 5.0, "flaky": 10.0}.get(scenario)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period or 3600.0)
        if stop.is_set():
            break
        subscribed = [server.markets[i].symbol for i in sorted(server.subscribed_ids())]
        if scenario == "burst" and subscribed:
            await server.burst(subscribed, 50)
        elif scenario == "flaky":
            await server.drop_connections()


async def _main_async(args: argparse.Namespace) -> None:
    server = BinanceServer(args.markets, host=args.host, seed=args.seed, ping_interval_s=args.ping_interval)
    await server.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # One line on stdout tells a supervising test (or a person) where to point the feed.
    print(f"binance-server ready ws={server.ws_url} rest={server.rest_url} port={server.port}", flush=True)
    try:
        await _run_scenario(server, args.scenario, args.rate, stop)
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Local Binance-protocol market-data server (offline tests and demos).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port; printed at start)")
    p.add_argument("--scenario", choices=("steady", "burst", "flaky", "idle"), default="steady")
    p.add_argument("--rate", type=float, default=4.0, help="ticker updates per second per subscribed pair")
    p.add_argument("--markets", default=str(DEFAULT_MARKETS_FILE), help="ccxt markets JSON or exchangeInfo JSON")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--ping-interval", type=float, default=20.0, help="seconds between websocket pings")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_main_async(args))


if __name__ == "__main__":
    main()
