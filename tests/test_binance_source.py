"""BinanceSource against a local server that speaks Binance's protocol, through the real ccxt.pro.

Every test runs ccxt's own websocket and REST code against ``tests/binance_server.py`` on
127.0.0.1 and a free port: bursts across many pairs, dropped connections and outages, stalls,
malformed frames, closed-candle history, URL options and environment variables, and finally the
real ``python -m feed --source binance`` process decoded from its PUB socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro
import pytest
import zmq
import zmq.asyncio

from feed.binance import ENV_REST_URL, ENV_WS_URL, BinanceSource
from feed.errors import SourceConfigError, UnknownSymbolError
from feed.wire import (
    STATUS_CONNECTED,
    STATUS_RECONNECTING,
    STATUS_STALE,
    STATUS_STOPPED,
    TOPIC_STATUS,
    decode_map,
    decode_tick,
    message_parts,
)

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:  # the server module sits next to this file
    sys.path.insert(0, str(_TESTS_DIR))

from binance_server import BinanceServer  # noqa: E402

ROOT = _TESTS_DIR.parent
MARKETS_FILE = _TESTS_DIR / "data" / "binance_markets.json"
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]

pytestmark = pytest.mark.timeout(20)


@dataclass
class RecordingPublisher:
    """Implements feed.source.Publisher by remembering every call, with its monotonic time."""

    ticks: list[tuple[float, str, int, float, float, float, float, float]] = field(default_factory=list)
    statuses: list[tuple[float, str, str | None, int | None]] = field(default_factory=list)

    def publish_tick(self, symbol: str, ts_exchange_ms: int, bid: float, ask: float, last: float,
                     base_volume: float = 0.0, quote_volume: float = 0.0) -> None:
        self.ticks.append((time.monotonic(), symbol, ts_exchange_ms, bid, ask, last, base_volume, quote_volume))

    def set_status(self, state: str, last_error: str | None = None, reconnects: int | None = None) -> None:
        self.statuses.append((time.monotonic(), state, last_error, reconnects))

    @property
    def state(self) -> str | None:
        return self.statuses[-1][1] if self.statuses else None

    def states(self, since: float = 0.0) -> list[str]:
        return [s for t, s, _, _ in self.statuses if t >= since]

    def last_price(self) -> dict[str, float]:
        return {sym: last for _, sym, _, _, _, last, _, _ in self.ticks}

    def ticks_of(self, symbol: str, since: float = 0.0) -> int:
        return sum(1 for t, sym, *_ in self.ticks if sym == symbol and t >= since)


async def wait_until(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Poll ``pred`` until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic()


@pytest.fixture
async def server() -> AsyncIterator[BinanceServer]:
    srv = BinanceServer(MARKETS_FILE)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def make_source(srv: BinanceServer, symbols: list[str] = PAIRS, **kw: Any) -> BinanceSource:
    kw.setdefault("markets_file", MARKETS_FILE)
    return BinanceSource(symbols, ws_url=srv.ws_url, rest_url=srv.rest_url, **kw)


@contextlib.asynccontextmanager
async def running(source: BinanceSource, pub: RecordingPublisher) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(pub, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 5.0)
        await source.close()


# --------------------------------------------------------------------------- bursts


async def test_burst_across_20_pairs_publishes_every_pair_and_its_final_price(server: BinanceServer) -> None:
    """20 pairs x 50 updates back to back: our loop ends with every pair's final price; the
    plain ``await watch_tickers`` loop, on the same burst over its own socket, does not."""
    symbols = server.symbols[:20]
    source = make_source(server, symbols)
    pub = RecordingPublisher()

    naive = ccxt.pro.binance({"enableRateLimit": True, "options": {"watchTickers": {"name": "ticker"}, "defaultType": "spot"}})
    naive.urls["api"]["ws"]["spot"] = server.ws_url
    naive.set_markets(json.loads(MARKETS_FILE.read_text()))
    naive_last: dict[str, float] = {}
    naive_updates = 0

    async def plain_loop() -> None:
        nonlocal naive_updates
        while True:
            for sym, t in (await naive.watch_tickers(symbols)).items():
                naive_last[sym] = t["last"]
                naive_updates += 1

    plain = asyncio.create_task(plain_loop())
    try:
        async with running(source, pub):
            await server.wait_subscribed(symbols)
            await wait_until(lambda: server.connections_total == 2 and len(server.subscribe_requests) == 2,
                             "both clients subscribed")
            final = await server.burst(symbols, 50)
            await wait_until(lambda: all(pub.last_price().get(s) == final[s] for s in symbols),
                             "every pair's final price published")
            await asyncio.sleep(0.3)  # let the plain loop drain whatever it is going to see
    finally:
        plain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plain
        await naive.close()

    assert {sym for _, sym, *_ in pub.ticks} == set(symbols)
    assert source.bad_messages == 0
    for _, _sym, ts, bid, ask, last, bv, qv in pub.ticks:
        assert 0 < bid < ask and last > 0 and bv > 0 and qv > 0
        assert abs(ts - time.time() * 1000) < 60_000  # the exchange's event time, in ms
    # The plain loop sees one ticker per wake-up: most of the 1000 updates and finals are lost.
    matched = sum(naive_last.get(s) == final[s] for s in symbols)
    assert naive_updates < 20 * 50
    assert matched < len(symbols), f"plain loop matched {matched} finals, saw {naive_updates} updates"


async def test_one_socket_one_subscribe_on_the_full_ticker_stream(server: BinanceServer) -> None:
    symbols = server.symbols[:12]
    source = make_source(server, symbols)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(symbols)
        await server.tick("ETH/USDT")
        await wait_until(lambda: pub.ticks_of("ETH/USDT") > 0, "an ETH tick")
        assert server.connections_total == 1
        assert len(server.subscribe_requests) == 1
        assert sorted(server.subscribe_requests[0]) == sorted(f"{server.market(s).market_id.lower()}@ticker" for s in symbols)
        assert [c.path for c in server.connections] == ["/ws/0"]  # ccxt appends the stream index
        assert pub.state == STATUS_CONNECTED


async def test_combined_stream_form_is_understood(server: BinanceServer) -> None:
    """Pointed at the combined endpoint, events arrive as {"stream", "data"} and still publish."""
    source = BinanceSource(PAIRS, ws_url=server.stream_url, rest_url=server.rest_url, markets_file=MARKETS_FILE)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        assert all(c.combined for c in server.connections)
        event = await server.set_price("SOL/USDT", 151.23, bid=151.22, ask=151.24)
        await wait_until(lambda: pub.last_price().get("SOL/USDT") == 151.23, "SOL at 151.23")
    tick = [t for t in pub.ticks if t[1] == "SOL/USDT"][-1]
    assert tick[2:6] == (event["E"], 151.22, 151.24, 151.23)
    assert tick[6] == float(event["v"]) and tick[7] == float(event["q"])


# --------------------------------------------------------------------------- resilience


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "tcp-reset"])
async def test_dropped_connection_reconnects_and_resubscribes(server: BinanceServer, abrupt: bool) -> None:
    source = make_source(server)
    pub = RecordingPublisher()
    server.start_steady(10.0)
    async with running(source, pub):
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected")
        dropped_at = time.monotonic()
        assert await server.drop_connections(abrupt=abrupt) == 1
        await wait_until(lambda: STATUS_RECONNECTING in pub.states(dropped_at), "reconnecting")
        back = await wait_until(lambda: pub.states(dropped_at)[-1:] == [STATUS_CONNECTED], "connected again")
        await wait_until(lambda: all(pub.ticks_of(s, back) > 0 for s in PAIRS), "ticks for every pair after")
    assert server.connections_total == 2
    assert len(server.subscribe_requests) == 2
    assert source.reconnects >= 1
    reconnecting = [s for s in pub.statuses if s[1] == STATUS_RECONNECTING]
    assert reconnecting[0][2] and "NetworkError" in reconnecting[0][2]  # last_error says why
    assert reconnecting[0][3] == 1  # reconnect count travels with the status
    assert pub.statuses[-1][1] == STATUS_STOPPED


async def test_outage_then_data_resumes_within_5s_of_server_return(server: BinanceServer) -> None:
    """Server down (connections refused), then back: data again within 5 s, default backoff."""
    source = make_source(server)
    pub = RecordingPublisher()
    server.start_steady(10.0)
    async with running(source, pub):
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected")
        await server.pause()
        # wait for a few refused dials, so the backoff has grown
        await wait_until(lambda: source.reconnects >= 3, "three failed attempts")
        assert pub.state == STATUS_RECONNECTING
        assert "Cannot connect" in (pub.statuses[-1][2] or "") or "Connect" in (pub.statuses[-1][2] or "")
        await server.resume()
        back = time.monotonic()
        resumed = await wait_until(lambda: pub.ticks_of("BTC/USDT", back) > 0, "BTC ticks after the outage")
        assert resumed - back < 5.0
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected after the outage")
    assert pub.statuses[-2][3] is not None and pub.statuses[-2][3] >= 3


async def test_stall_all_goes_stale_then_connected(server: BinanceServer) -> None:
    source = make_source(server, stale_after_s=0.6)
    pub = RecordingPublisher()
    server.start_steady(10.0)
    async with running(source, pub):
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected")
        stalled = time.monotonic()
        server.stall(None, 1.5)
        await wait_until(lambda: pub.state == STATUS_STALE, "stale", timeout=5)
        assert "no market data" in (pub.statuses[-1][2] or "")
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected again", timeout=5)
        states = pub.states(stalled)
    assert states[0] == STATUS_STALE and states[-1] == STATUS_CONNECTED and STATUS_RECONNECTING not in states
    assert server.connections_total == 1  # a short silence does not reopen the socket


async def test_stall_one_pair_goes_stale_naming_it_while_others_flow(server: BinanceServer) -> None:
    source = make_source(server, stale_after_s=0.6)
    pub = RecordingPublisher()
    server.start_steady(10.0)
    async with running(source, pub):
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected")
        server.stall("ETH/USDT", 1.6)
        went_stale = await wait_until(lambda: pub.state == STATUS_STALE, "stale", timeout=5)
        error = pub.statuses[-1][2] or ""
        assert "ETH/USDT" in error and "BTC/USDT" not in error
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected again", timeout=5)
        recovered = time.monotonic()
    assert pub.ticks_of("BTC/USDT", went_stale) > 0 and pub.ticks_of("SOL/USDT", went_stale) > 0
    assert any(t[1] == "ETH/USDT" and went_stale <= t[0] <= recovered for t in pub.ticks)


async def test_silent_socket_is_reopened_after_stale_reconnect_s(server: BinanceServer) -> None:
    """A socket that stays open but silent (half-open TCP) is closed and dialled again."""
    source = make_source(server, stale_after_s=0.4, stale_reconnect_s=1.0)
    pub = RecordingPublisher()
    server.start_steady(10.0)
    async with running(source, pub):
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected")
        server.stall(None, 2.0)
        await wait_until(lambda: server.connections_total >= 2, "a second connection", timeout=6)
        await wait_until(lambda: pub.state == STATUS_CONNECTED and pub.ticks_of("BTC/USDT", time.monotonic() - 0.3) > 0,
                         "data on the new socket", timeout=8)
    states = pub.states()
    assert STATUS_STALE in states and STATUS_RECONNECTING in states
    assert source.reconnects >= 1
    assert any("no market data" in (s[2] or "") for s in pub.statuses if s[1] == STATUS_RECONNECTING)


async def test_no_data_ever_reports_stale(server: BinanceServer) -> None:
    """Subscribed but nothing ever arrives: stale (not silently 'nothing')."""
    source = make_source(server, stale_after_s=0.4, stale_reconnect_s=30.0)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        await wait_until(lambda: pub.state == STATUS_STALE, "stale", timeout=5)
    assert pub.ticks == []


# --------------------------------------------------------------------------- bad input


async def test_malformed_frames_and_unknown_pairs_are_counted_and_streaming_goes_on(server: BinanceServer) -> None:
    source = make_source(server)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        await server.set_price("BTC/USDT", 65000.0)
        await wait_until(lambda: pub.ticks_of("BTC/USDT") == 1, "first tick")
        for n, kind in enumerate(["json", "text", "no_symbol", "no_bid", "zero_price"], start=1):
            await server.send_malformed(kind)
            await wait_until(lambda n=n: source.bad_messages == n, f"{kind} counted")
        await server.send_unknown_symbol("FOOUSDT")
        await server.send_unknown_symbol("ETHBTC")  # a real Binance pair we did not ask for
        await wait_until(lambda: source.unknown_symbols == 2, "unknown pairs counted")
        await server.set_price("BTC/USDT", 65001.5)
        await server.set_price("ETH/USDT", 3201.25)
        await wait_until(lambda: pub.last_price().get("ETH/USDT") == 3201.25, "ETH tick after the garbage")
        assert pub.last_price()["BTC/USDT"] == 65001.5
        assert pub.state == STATUS_CONNECTED
    assert source.bad_messages == 5
    assert source.reconnects == 0 and server.connections_total == 1
    assert all(t[3] > 0 and t[4] > 0 for t in pub.ticks)  # nothing malformed reached the publisher
    assert "FOOUSDT" not in source.exchange.tickers  # dropped before ccxt stored it


async def test_configured_symbol_not_on_binance_is_rejected_not_fatal(server: BinanceServer) -> None:
    source = make_source(server, ["BTC/USDT", "NOPE/USDT"])
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(["BTC/USDT"])
        await server.tick("BTC/USDT")
        await wait_until(lambda: pub.ticks_of("BTC/USDT") > 0, "BTC tick")
    assert source.symbols == ["BTC/USDT"]
    assert source.rejected_symbols == ["NOPE/USDT"]


async def test_no_valid_symbol_stops_with_a_reason(server: BinanceServer) -> None:
    source = make_source(server, ["NOPE/USDT"])
    pub = RecordingPublisher()
    async with running(source, pub) as task:
        await asyncio.wait_for(task, 5.0)
    assert pub.statuses[-1][1] == STATUS_STOPPED
    assert "NOPE/USDT" in (pub.statuses[-1][2] or "")
    assert server.connections_total == 0


def test_bad_configuration_is_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="ws://"):
        BinanceSource(PAIRS, ws_url="http://127.0.0.1:1/ws")
    with pytest.raises(SourceConfigError, match="http://"):
        BinanceSource(PAIRS, rest_url="ftp://127.0.0.1:1")
    bad = tmp_path / "markets.json"
    bad.write_text("{not json")
    with pytest.raises(SourceConfigError, match=r"markets\.json: line 1: not JSON"):
        BinanceSource(PAIRS, markets_file=bad)
    bad.write_text('["BTC/USDT"]')
    with pytest.raises(SourceConfigError, match="exchangeInfo"):
        BinanceSource(PAIRS, markets_file=bad)
    bad.write_text('{"BTC/USDT": {"id": "BTCUSDT", "symbol": "BTC/USDT"}}')
    with pytest.raises(SourceConfigError, match="not usable as Binance markets"):
        BinanceSource(PAIRS, markets_file=bad)
    with pytest.raises(SourceConfigError, match="cannot read"):
        BinanceSource(PAIRS, markets_file=tmp_path / "missing.json")
    with pytest.raises(SourceConfigError, match="no symbols"):
        BinanceSource([])
    with pytest.raises(SourceConfigError, match="at most 200"):
        BinanceSource([f"C{i:03d}/USDT" for i in range(201)])


# --------------------------------------------------------------------------- history


async def test_history_returns_closed_candles_oldest_first(server: BinanceServer) -> None:
    source = make_source(server)
    try:
        before = time.time_ns() // 1_000_000
        candles = await source.history("BTC/USDT", 60, 10)
        after = time.time_ns() // 1_000_000
    finally:
        await source.close()
    assert len(candles) == 10
    stamps = [c[0] for c in candles]
    assert stamps == list(range(stamps[0], stamps[0] + 10 * 60_000, 60_000))  # oldest first, no gap
    # the still-forming candle is dropped: the newest is the last closed one
    assert stamps[-1] in {before - before % 60_000 - 60_000, after - after % 60_000 - 60_000}
    assert all(c[0] + 60_000 <= after for c in candles)
    m = server.market("BTC/USDT")
    for c in candles:
        row = server.kline(m, 60_000, c[0])
        assert c[1:] == [float(x) for x in row[1:6]]
        assert c[3] <= min(c[1], c[4]) <= max(c[1], c[4]) <= c[2]
    klines = [q for p, q in server.rest_requests if p == "/api/v3/klines"]
    assert klines and klines[0]["symbol"] == "BTCUSDT" and klines[0]["interval"] == "1m"
    assert klines[0]["limit"] == "11"  # one extra for the forming candle
    assert not any(p == "/api/v3/exchangeInfo" for p, _ in server.rest_requests)


async def test_history_pages_beyond_1000_and_other_timeframes(server: BinanceServer) -> None:
    source = make_source(server)
    try:
        long = await source.history("ETH/USDT", 60, 1500)
        hourly = await source.history("SOL/USDT", 3600, 5)
        assert await source.history("SOL/USDT", 60, 0) == []
        with pytest.raises(SourceConfigError, match="no 7 s candles"):
            await source.history("SOL/USDT", 7, 5)
        with pytest.raises(UnknownSymbolError):
            await source.history("NOPE/USDT", 60, 5)
    finally:
        await source.close()
    assert len(long) == 1500
    assert [c[0] for c in long] == list(range(long[0][0], long[0][0] + 1500 * 60_000, 60_000))
    assert sum(1 for p, _ in server.rest_requests if p == "/api/v3/klines") >= 3
    assert len(hourly) == 5 and all(b[0] - a[0] == 3_600_000 for a, b in itertools.pairwise(hourly))
    assert hourly[-1][0] + 3_600_000 <= time.time() * 1000


async def test_history_while_streaming_uses_the_exchange_clock(server: BinanceServer) -> None:
    source = make_source(server)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        await server.tick("BTC/USDT")
        await wait_until(lambda: pub.ticks_of("BTC/USDT") > 0, "a tick")
        candles = await source.history("BTC/USDT", 60, 3)
    assert len(candles) == 3
    assert not any(p == "/api/v3/time" for p, _ in server.rest_requests)  # offset came from ticks


# --------------------------------------------------------------------------- URLs


def test_url_keys_for_default_testnet_and_overrides() -> None:
    live = BinanceSource(PAIRS)
    assert live.exchange.urls["api"]["ws"]["spot"] == "wss://stream.binance.com:9443/ws"
    assert live.exchange.urls["api"]["public"] == "https://api.binance.com/api/v3"
    test = BinanceSource(PAIRS, testnet=True)
    assert test.exchange.urls["api"]["ws"]["spot"] == "wss://stream.testnet.binance.vision/ws"
    assert test.exchange.urls["api"]["public"] == "https://testnet.binance.vision/api/v3"
    over = BinanceSource(PAIRS, ws_url="ws://10.0.0.5:9000/ws/", rest_url="http://10.0.0.5:9001/api/v3/", testnet=True)
    urls = over.exchange.urls["api"]
    assert urls["ws"]["spot"] == urls["ws"]["margin"] == "ws://10.0.0.5:9000/ws"
    assert urls["public"] == urls["private"] == "http://10.0.0.5:9001/api/v3"
    assert urls["v1"] == "http://10.0.0.5:9001/api/v1"
    assert over.exchange.options["watchTickers"]["name"] == "ticker"


async def test_env_vars_route_ccxt_to_the_local_server(server: BinanceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """No URL arguments, no markets file: env vars send ccxt's REST and websocket to us."""
    monkeypatch.setenv(ENV_WS_URL, server.ws_url)
    monkeypatch.setenv(ENV_REST_URL, server.rest_url)
    source = BinanceSource(PAIRS)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        await server.set_price("ETH/USDT", 3333.33)
        await wait_until(lambda: pub.last_price().get("ETH/USDT") == 3333.33, "ETH tick via env URLs")
    assert ("/api/v3/exchangeInfo", {}) in server.rest_requests  # load_markets over our REST
    assert not any("fapi" in p or "dapi" in p or "sapi" in p for p, _ in server.rest_requests)
    # explicit arguments win over the environment
    other = BinanceSource(PAIRS, ws_url="ws://127.0.0.1:1/ws")
    assert other.exchange.urls["api"]["ws"]["spot"] == "ws://127.0.0.1:1/ws"


async def test_markets_load_retries_until_rest_is_up(server: BinanceServer) -> None:
    await server.pause()
    source = BinanceSource(PAIRS, ws_url=server.ws_url, rest_url=server.rest_url, backoff_max_s=1.0)
    pub = RecordingPublisher()
    async with running(source, pub):
        await wait_until(lambda: source.reconnects >= 2, "market load retried")
        assert pub.state == STATUS_RECONNECTING
        await server.resume()
        server.start_steady(10.0)
        await wait_until(lambda: pub.state == STATUS_CONNECTED, "connected after REST came back")


async def test_exchange_info_markets_file_is_accepted(server: BinanceServer, tmp_path: Path) -> None:
    info_file = tmp_path / "exchangeInfo.json"
    markets = json.loads(MARKETS_FILE.read_text())
    info_file.write_text(json.dumps({"timezone": "UTC", "symbols": [m["info"] for m in markets.values()]}))
    source = make_source(server, markets_file=info_file)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        await server.tick("SOL/USDT")
        await wait_until(lambda: pub.ticks_of("SOL/USDT") > 0, "SOL tick")
    assert source.exchange.markets["SOL/USDT"]["precision"]["price"] == 0.01
    assert not any(p == "/api/v3/exchangeInfo" for p, _ in server.rest_requests)


# --------------------------------------------------------------------------- the server itself


async def test_server_speaks_binance_control_protocol_and_pings(server: BinanceServer) -> None:
    """The fake's own contract, checked with a plain websocket client (not ccxt)."""
    server.ping_interval_s = 0.2
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url, autoping=False) as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@ticker"], "id": 7})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 7}
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
        assert await ws.receive_json(timeout=5) == {"result": ["btcusdt@ticker"], "id": 8}
        await ws.send_json({"method": "NOPE", "id": 9})
        reply = await ws.receive_json(timeout=5)
        assert reply["id"] == 9 and reply["error"]["code"] == 2
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.PING
        await ws.pong(msg.data)
        await server.set_price("BTC/USDT", 64000.5)
        event = await ws.receive_json(timeout=5)
        while event.get("e") != "24hrTicker":  # skip anything else in flight
            event = await ws.receive_json(timeout=5)
        assert set("EspPwxcQbBaAohlvqOCFLn") <= set(event) and event["c"] == "64000.50000000"
        await ws.send_json({"method": "SET_PROPERTY", "params": ["combined", True], "id": 10})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 10}
        await server.set_price("BTC/USDT", 64001.0)
        wrapped = await ws.receive_json(timeout=5)
        assert wrapped["stream"] == "btcusdt@ticker" and wrapped["data"]["c"] == "64001.00000000"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.rest_url}/api/v3/klines", params={"symbol": "NOPE", "interval": "1m"}) as r:
            assert r.status == 400 and (await r.json())["code"] == -1121
        async with http.get(f"{server.rest_url}/api/v3/time") as r:
            assert abs((await r.json())["serverTime"] - time.time() * 1000) < 5000


async def test_ccxt_answers_server_pings(server: BinanceServer) -> None:
    server.ping_interval_s = 0.2
    server.pong_timeout_s = 1.0  # a client that does not pong is cut off after this
    source = make_source(server)
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(PAIRS)
        await wait_until(lambda: server.pongs_received >= 8, "pongs for 8 pings", timeout=8)
    assert server.connections_total == 1 and source.reconnects == 0


# --------------------------------------------------------------------------- end to end


def _short_dir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="mpbn-", dir="/tmp"))


async def test_feed_process_streams_binance_from_the_local_server(server: BinanceServer) -> None:
    """The real ``python -m feed --source binance`` with URL options, decoded from its PUB socket."""
    run_dir = _short_dir()
    pub_ep, rep_ep = f"ipc://{run_dir}/feed.pub", f"ipc://{run_dir}/feed.rep"
    server.start_steady(10.0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "feed", "--source", "binance", "--symbols", ",".join(PAIRS),
        "--pub", pub_ep, "--rep", rep_ep, "--ws-url", server.ws_url, "--rest-url", server.rest_url,
        "--markets-file", str(MARKETS_FILE), "--stale-after", "2", "--log-file", str(run_dir / "feed.log"),
        cwd=ROOT, env={**os.environ, ENV_WS_URL: "", ENV_REST_URL: ""},
    )
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub_ep)
    seen: dict[str, int] = {}
    states: list[str] = []

    async def read_until(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                log = (run_dir / "feed.log").read_text() if (run_dir / "feed.log").exists() else ""
                raise AssertionError(f"timed out waiting for {what}; feed log:\n{log[-2000:]}")
            if await sub.poll(100):
                topic, payload = message_parts(await sub.recv_multipart())
                if topic == TOPIC_STATUS:
                    states.append(decode_map(payload)["state"])
                elif not topic.startswith(b"_"):
                    tick = decode_tick(topic, payload)
                    seen[tick.symbol] = seen.get(tick.symbol, 0) + 1

    try:
        await read_until(lambda: all(seen.get(s, 0) >= 3 for s in PAIRS), "ticks for every pair")
        await read_until(lambda: STATUS_CONNECTED in states, "status connected")
        from feed.history import request_history

        candles = await asyncio.to_thread(request_history, rep_ep, "BTC/USDT", 60, 5, 5.0)
        assert len(candles) == 5 and candles[-1][0] + 60_000 <= time.time() * 1000
        states.clear()
        await server.drop_connections()
        await read_until(lambda: STATUS_RECONNECTING in states, "status reconnecting")
        await read_until(lambda: states[-1:] == [STATUS_CONNECTED], "status connected again")
        proc.send_signal(signal.SIGTERM)
        await read_until(lambda: STATUS_STOPPED in states, "status stopped")
        assert await asyncio.wait_for(proc.wait(), 10.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        sub.close()
        ctx.term()


async def test_server_cli_steady_scenario_serves_ccxt() -> None:
    """``python tests/binance_server.py --port 0 --scenario steady`` as the feed's exchange."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(_TESTS_DIR / "binance_server.py"), "--port", "0", "--scenario", "steady", "--rate", "5",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10.0)).decode()
        assert line.startswith("binance-server ready"), line
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        source = BinanceSource(["BTC/USDT", "ETH/USDT"], ws_url=fields["ws"], rest_url=fields["rest"])
        pub = RecordingPublisher()
        async with running(source, pub):
            await wait_until(lambda: pub.ticks_of("BTC/USDT") >= 3 and pub.ticks_of("ETH/USDT") >= 3,
                             "steady ticks from the CLI server")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
