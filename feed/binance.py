"""Live Binance spot market data through ccxt.pro: the feed's ``binance`` source.

Owns ``BinanceSource``: one websocket for every pair (``watch_tickers`` on the full
``<symbol>@ticker`` stream, which carries bid/ask), publishing every pair whose ticker changed
after each wake-up; reconnection with exponential backoff and jitter; the ``stale`` watchdog;
closed-candle history over REST (``fetch_ohlcv``, in ``feed.binance_history``); and the guard that counts and drops frames
ccxt cannot digest (bad JSON, unknown pairs) instead of letting them stop its receive loop.

Where it connects (see docs/binance.md): ccxt's production URLs, its sandbox URLs with
``testnet=True``, or the overrides ``ws_url`` / ``rest_url`` (or the environment variables
``MULTIPAR_BINANCE_WS_URL`` / ``MULTIPAR_BINANCE_REST_URL`` when the arguments are None).
Public data only: no API keys are read, sent or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.pro

from feed.binance_ccxt import (
    GuardedBinance,
    _non_negative,
    _one_line,
    _positive,
    _why,
    load_markets_file,
)
from feed.binance_history import BinanceHistory
from feed.errors import SourceConfigError
from feed.private import ENV_REST_URL, ENV_WS_URL, redact_url
from feed.source import Publisher
from feed.wire import STATUS_CONNECTED, STATUS_RECONNECTING, STATUS_STALE, STATUS_STOPPED

logger = logging.getLogger(__name__)

# ccxt urls['api'] keys replaced by the overrides (spot only: this source streams spot pairs).
WS_URL_KEYS = ("spot", "margin")  # urls['api']['ws'][key] = ws_url
REST_URL_KEYS = {"public": "/api/v3", "private": "/api/v3", "v1": "/api/v1"}  # urls['api'][key] = rest_url + path

_TICKER_EVENTS = frozenset({"24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker"})
_LOG_EVERY = 1000  # after the first few, log one bad frame in this many


class BinanceSource(BinanceHistory):
    """Binance spot tickers for a fixed list of pairs over one ccxt.pro websocket."""

    name = "binance"

    def __init__(
        self,
        symbols: list[str],
        ws_url: str | None = None,
        rest_url: str | None = None,
        testnet: bool = False,
        markets_file: str | os.PathLike[str] | None = None,
        stale_after_s: float = 10.0,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 15.0,
        stale_reconnect_s: float | None = None,
    ) -> None:
        if not symbols:
            raise SourceConfigError("binance: no symbols given; pass e.g. --symbols BTC/USDT,ETH/USDT")
        if not (stale_after_s > 0):
            raise SourceConfigError(f"binance: stale_after_s must be > 0, got {stale_after_s!r}")
        self.symbols: list[str] = list(dict.fromkeys(symbols))
        self.rejected_symbols: list[str] = []
        self.stale_after_s = float(stale_after_s)
        # A connection silent this long is presumed dead (half-open TCP) and reopened.
        self.stale_reconnect_s = float(stale_reconnect_s) if stale_reconnect_s else 3.0 * self.stale_after_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.testnet = testnet

        ws_url = ws_url or os.environ.get(ENV_WS_URL) or None
        rest_url = rest_url or os.environ.get(ENV_REST_URL) or None
        self._exchange = GuardedBinance(
            {
                "enableRateLimit": True,
                "options": {
                    "watchTickers": {"name": "ticker"},  # full 24hrTicker: has bid/ask, miniTicker has not
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},  # one exchangeInfo call, no futures endpoints
                    "fetchCurrencies": False,  # private endpoint; public mode needs none
                },
            }
        )
        if testnet:
            self._exchange.set_sandbox_mode(True)  # ccxt urls['test'] incl. ws: *.testnet.binance.vision
        if ws_url:
            self._set_ws_url(ws_url)
        if rest_url:
            self._set_rest_url(rest_url)
        self.markets_file = str(markets_file) if markets_file else None
        if markets_file:
            markets = load_markets_file(markets_file)
            try:
                self._install_markets(markets)
            except Exception as exc:  # ccxt raises KeyError/TypeError on a market missing fields
                raise SourceConfigError(f"{markets_file}: not usable as Binance markets: {_one_line(exc)}") from None
        per_socket = int(self._exchange.options.get("subscriptionLimitByStream", {}).get("spot", 200))
        if len(self.symbols) > per_socket:  # ccxt would refuse the subscription on every retry
            raise SourceConfigError(f"binance: {len(self.symbols)} symbols; one websocket carries at most {per_socket}")

        self.reconnects = 0
        self.published = 0
        self._bad_tickers = 0
        self._state: str | None = None
        self._last_error: str | None = None
        self._published_key: tuple[str, str | None, int] | None = None
        self._publisher: Publisher | None = None
        self._failures = 0  # consecutive failed attempts, drives the backoff
        self._in_backoff = False
        self._seen: dict[str, Any] = {}  # symbol -> ccxt ticker object last published (identity)
        self._last_update: dict[str, float] = {}  # symbol -> monotonic time of last good tick
        self._last_data = time.monotonic()
        self._clock_offset_ms: int | None = None  # exchange clock minus local clock
        self._closing = False
        logger.info(
            "binance: ws %s rest %s%s",
            redact_url(self._exchange.urls["api"]["ws"]["spot"]),
            redact_url(self._exchange.urls["api"]["public"]),
            " (testnet)" if testnet else "",
        )

    # ------------------------------------------------------------------ configuration

    def _set_ws_url(self, url: str) -> None:
        if urlsplit(url).scheme not in ("ws", "wss"):
            raise SourceConfigError(f"binance: ws url {redact_url(url)!r} (--ws-url / {ENV_WS_URL}) must start with ws:// or wss://")
        for key in WS_URL_KEYS:
            self._exchange.urls["api"]["ws"][key] = url.rstrip("/")

    def _set_rest_url(self, url: str) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise SourceConfigError(
                f"binance: rest url {redact_url(url)!r} (--rest-url / {ENV_REST_URL}) must start with http:// or https://"
            )
        base = url.rstrip("/")
        for suffix in ("/api/v3", "/api"):  # accept the API root as well as the host
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        for key, path in REST_URL_KEYS.items():
            self._exchange.urls["api"][key] = base + path

    def _install_markets(self, markets: Mapping[str, Any] | list[dict[str, Any]]) -> None:
        ex = self._exchange
        if isinstance(markets, list):  # raw exchangeInfo symbols: parse as fetch_markets would
            ex.options["crossMarginPairsData"] = []
            ex.options["isolatedMarginPairsData"] = []
            parsed = [m for m in (ex.parse_market(s) for s in markets) if m is not None]
            ex.set_markets(parsed)
        else:
            ex.set_markets(dict(markets))

    @property
    def exchange(self) -> Any:
        """The underlying ccxt.pro exchange (for inspection in tests and docs)."""
        return self._exchange

    @property
    def bad_messages(self) -> int:
        """Frames and tickers dropped as malformed (bad JSON, missing/non-positive prices)."""
        return self._exchange.frame_errors + self._bad_tickers

    @property
    def unknown_symbols(self) -> int:
        """Ticker events dropped because they name a pair this source does not stream."""
        return int(self._exchange.unknown_symbol_events)

    @property
    def state(self) -> str | None:
        return self._state

    # ------------------------------------------------------------------ status

    def _set_state(self, state: str, last_error: str | None = None) -> None:
        self._state = state
        self._last_error = last_error
        key = (state, last_error, self.reconnects)
        if key != self._published_key and self._publisher is not None:
            self._published_key = key
            self._publisher.set_status(state, last_error, self.reconnects)

    def _backoff_s(self) -> float:
        base = min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, self._failures - 1))
        return min(self.backoff_max_s, base * random.uniform(0.8, 1.2))  # jitter: no lockstep retries

    async def _retry_later(self, exc: BaseException, transient: bool) -> None:
        self._failures += 1
        self.reconnects += 1
        reason = _why(exc)
        delay = self._backoff_s()
        self._set_state(STATUS_RECONNECTING, reason)
        log = logger.warning if transient else logger.error
        log("binance: %s; retry #%d in %.1f s", reason, self.reconnects, delay)
        self._in_backoff = True
        try:
            await asyncio.sleep(delay)
        finally:
            self._in_backoff = False
        # ccxt keeps its own per-URL dial backoff (no jitter, up to 30 s); ours governs alone.
        self._exchange.ws_dial_backoff = {}
        # the next attempt starts now: silence is measured from here
        now = time.monotonic()
        self._last_data = now
        self._last_update = dict.fromkeys(self._last_update, now)

    # ------------------------------------------------------------------ streaming

    async def run(self, publisher: Publisher, stop: asyncio.Event) -> None:
        """Stream ticks into ``publisher`` until ``stop`` is set; never raises on market trouble."""
        self._publisher = publisher
        self._closing = False
        stream = asyncio.create_task(self._stream(), name="binance-stream")
        stopper = asyncio.create_task(stop.wait(), name="binance-stop")
        watchdog = asyncio.create_task(self._watchdog(), name="binance-watchdog")
        try:
            await asyncio.wait({stream, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stream, stopper, watchdog):
                task.cancel()
            for task in (stream, stopper, watchdog):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._set_state(STATUS_STOPPED, self._last_error if self._state != STATUS_CONNECTED else None)

    async def _load_markets(self) -> bool:
        """Markets from the file or ``load_markets()``, retried with backoff; False if none usable."""
        while True:
            try:
                await self._exchange.load_markets()
                break
            except ccxt.NetworkError as exc:
                await self._retry_later(exc, transient=True)
            except ccxt.BaseError as exc:
                await self._retry_later(exc, transient=False)
        markets = self._exchange.markets or {}
        usable = [s for s in self.symbols if s in markets and markets[s].get("spot")]
        self.rejected_symbols = [s for s in self.symbols if s not in usable]
        if self.rejected_symbols:
            logger.error("binance: not Binance spot markets, not streamed: %s", ", ".join(self.rejected_symbols))
        if not usable:
            self._set_state(STATUS_STOPPED, f"no Binance spot market among {', '.join(self.symbols)}")
            return False
        self.symbols = usable
        self._exchange.wanted_ids = frozenset(markets[s]["id"] for s in usable)
        return True

    async def _stream(self) -> None:
        if not await self._load_markets():
            return
        symbols = self.symbols  # the same list object on every call: a new list opens a new socket
        now = time.monotonic()
        self._last_data = now
        self._last_update = dict.fromkeys(symbols, now)
        while not self._closing:
            symbols = self.symbols  # a new list only when add_symbols put it on the same socket
            try:
                await self._exchange.watch_tickers(symbols)
            except ccxt.NetworkError as exc:  # closed, timed out, refused, maintenance, 429/418
                await self._retry_later(exc, transient=True)
                continue
            except ccxt.BaseError as exc:  # e.g. an error reply to the subscription: log, back off
                await self._retry_later(exc, transient=False)
                continue
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._closing or (task is not None and task.cancelling()):
                    raise
                # ccxt cancels its pending futures when a client is closed under us
                await self._retry_later(ccxt.NetworkError("subscription cancelled"), transient=True)
                continue
            except Exception as exc:  # a ccxt bug must not end the feed
                logger.exception("binance: unexpected error from watch_tickers")
                await self._retry_later(exc, transient=False)
                continue
            self._on_wake(symbols)

    def _on_wake(self, symbols: list[str]) -> None:
        """Publish every pair whose ticker object changed since we last looked.

        The value ``watch_tickers`` returns holds only the ticker that woke us; a burst
        updates many pairs per wake-up, and they are all in ``exchange.tickers``.
        """
        tickers = self._exchange.tickers
        now = time.monotonic()
        self._failures = 0
        got_data = False
        for symbol in symbols:
            ticker = tickers.get(symbol)
            if ticker is None or ticker is self._seen.get(symbol):
                continue
            self._seen[symbol] = ticker
            if self._publish(symbol, ticker):
                self._last_update[symbol] = now
                got_data = True
        if got_data:
            self._last_data = now
            if self._state in (None, STATUS_RECONNECTING):
                self._set_state(STATUS_CONNECTED, None)
            elif self._state == STATUS_STALE:
                self._check_stale(now)

    def _publish(self, symbol: str, ticker: Mapping[str, Any]) -> bool:
        bid = ticker.get("bid")
        ask = ticker.get("ask")
        last = ticker.get("last")
        base_volume = ticker.get("baseVolume") or 0.0
        quote_volume = ticker.get("quoteVolume") or 0.0
        info = ticker.get("info")
        ts = info.get("E") if isinstance(info, dict) else None  # event time; ccxt's timestamp is the stats close
        if type(ts) is not int:
            ts = ticker.get("timestamp")
        reason = None
        if not (_positive(bid) and _positive(ask) and _positive(last)):
            reason = f"bid/ask/last {bid!r}/{ask!r}/{last!r} not all positive"
        elif bid > ask:
            reason = f"crossed book bid {bid} > ask {ask}"
        elif type(ts) is not int or ts <= 0:
            reason = f"no exchange timestamp ({ts!r})"
        elif not (_non_negative(base_volume) and _non_negative(quote_volume)):
            reason = f"negative volume {base_volume!r}/{quote_volume!r}"
        if reason is not None:
            self._bad_tickers += 1
            if self._bad_tickers <= 5 or self._bad_tickers % _LOG_EVERY == 0:
                logger.warning("binance: dropped ticker %s: %s (%d so far)", symbol, reason, self._bad_tickers)
            return False
        self._clock_offset_ms = ts - time.time_ns() // 1_000_000
        assert self._publisher is not None
        self._publisher.publish_tick(symbol, ts, float(bid), float(ask), float(last), float(base_volume), float(quote_volume))
        self.published += 1
        return True

    async def _watchdog(self) -> None:
        period = max(0.05, min(1.0, self.stale_after_s / 4.0))
        while True:
            await asyncio.sleep(period)
            self._check_stale(time.monotonic())

    def _check_stale(self, now: float) -> None:
        """``stale`` while any pair (or the whole stream) is silent; back to ``connected`` after."""
        if self._state == STATUS_STOPPED or not self._last_update:
            return
        if self._state == STATUS_RECONNECTING and (self._in_backoff or not self._socket_open()):
            return  # waiting to dial or dialing: "reconnecting" says more than "stale"
        limit = self.stale_after_s
        silent = [s for s, t in self._last_update.items() if now - t > limit]
        if not silent:
            if self._state != STATUS_CONNECTED and now - self._last_data <= limit and self.published:
                self._set_state(STATUS_CONNECTED, None)
            return
        if len(silent) == len(self._last_update):
            self._set_state(STATUS_STALE, f"no market data for over {limit:g} s")
        else:
            names = ", ".join(silent[:5]) + (f" and {len(silent) - 5} more" if len(silent) > 5 else "")
            self._set_state(STATUS_STALE, f"no update for {names} in over {limit:g} s")
        quiet = now - self._last_data
        if quiet > self.stale_reconnect_s:
            self._force_reconnect(f"no market data for {quiet:.0f} s: reopening the websocket")

    def _socket_open(self) -> bool:
        return any(c.connection is not None and not c.closed() for c in (self._exchange.clients or {}).values())

    def _force_reconnect(self, reason: str) -> None:
        logger.warning("binance: %s", reason)
        self._last_data = time.monotonic()  # one forced reconnect per silent period
        for client in list((self._exchange.clients or {}).values()):
            # the path ccxt takes for a missed keepalive: reject waiters with NetworkError, close
            client.on_error(ccxt.RequestTimeout(reason))

    def _restream(self, wanted: list[str]) -> None:
        """Stream ``wanted`` from the next ``watch_tickers`` on the websocket already open: ccxt
        keys a stream by its list of symbols, so the new list is mapped to the current one's
        stream (one SUBSCRIBE on it, no new socket), and only ``wanted``'s events are kept."""
        ex = self._exchange
        by_hash = ex.options.setdefault("streamBySubscriptionsHash", {})
        old = by_hash.get("ticker::" + ",".join(self.symbols))
        if old is not None:
            by_hash["ticker::" + ",".join(wanted)] = old
        markets = ex.markets or {}
        ex.wanted_ids = frozenset(markets[s]["id"] for s in wanted if s in markets)
        self.symbols = wanted

    async def add_symbols(self, symbols: list[str], tiers: Mapping[str, str] | None = None) -> list[str]:
        """Stream more pairs on the websocket already open (a safe list reloaded): ccxt would
        open a new socket for a new list of symbols, so the new list's subscription is mapped to
        the stream the current one uses; the next ``watch_tickers`` sends one SUBSCRIBE on it."""
        ex = self._exchange
        if not ex.markets:
            await self._load_markets()
        markets = ex.markets or {}
        bad = [s for s in symbols if s not in markets or not markets[s].get("spot")]
        if bad:
            raise ValueError(f"not Binance spot markets: {', '.join(bad)}")
        new = [s for s in symbols if s not in self.symbols]
        if not new:
            return []
        per_socket = int(ex.options.get("subscriptionLimitByStream", {}).get("spot", 200))
        if len(self.symbols) + len(new) > per_socket:
            raise ValueError(f"one websocket carries at most {per_socket} symbols")
        now = time.monotonic()
        for s in new:
            self._last_update[s] = now
        self._restream([*self.symbols, *new])
        logger.info("binance: now also streaming %s on the same websocket", ", ".join(new))
        return new

    async def remove_symbols(self, symbols: list[str]) -> list[str]:
        """Stop streaming these pairs (a safe list reloaded, the engine let them go): their
        ticker events are dropped from now on (``wanted_ids``) and the next ``watch_tickers``
        names the remaining list, mapped to the same websocket as ``add_symbols`` does."""
        gone = [s for s in dict.fromkeys(symbols) if s in self.symbols]
        wanted = [s for s in self.symbols if s not in gone]
        if not gone or not wanted:  # the last pair is never dropped: the socket would go
            return []
        for s in gone:
            self._last_update.pop(s, None)
        self._restream(wanted)
        logger.info("binance: no longer streaming %s", ", ".join(gone))
        return gone

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Close the websocket and the HTTP session; safe to call more than once."""
        self._closing = True
        with contextlib.suppress(Exception):
            await self._exchange.close()
