"""How the live client reaches Binance: its settings and its two ccxt clients.

Owns ``LiveConfig`` (credentials that never print themselves, market type, endpoints, timing),
``point_at`` (every REST and websocket endpoint ccxt's Binance uses, spot and futures, public
and private, moved to one host, as ``--rest-url`` / ``--ws-url`` do) and ``build_exchanges``:
``ccxt.async_support.binance`` for REST and ``ccxt.pro.binance`` for the private streams, both
with ccxt's rate limiter on, ``recvWindow`` set, and every HTTP failure carrying its status and
headers (``http_status`` / ``http_headers`` on the exception) so a 429/418 and its Retry-After
are known per request, not read from a shared "last response" another request may overwrite.
On a host ccxt does not know, Binance's error classes are chosen by the request's path
(``/fapi/`` USDT-M, ``/api/`` spot) as ccxt chooses them by host name for Binance's own.

Build them on the worker's event loop (ccxt's aiohttp session binds to the running loop).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from feed.private import redact_url

MAX_LEVERAGE = 125


class LiveConfigError(ValueError):
    """Settings the live client cannot start with; one line, no secret."""


@dataclass(frozen=True, slots=True)
class LiveConfig:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    symbols: tuple[str, ...] = ()  # the core's symbols (BTC/USDT)
    # the USDT-M perpetual pairs among them -> leverage (set at start); the others trade spot
    futures: Mapping[str, int] = field(default_factory=dict)
    testnet: bool = False
    rest_url: str | None = None  # one host for every REST endpoint (a local exchange)
    ws_url: str | None = None  # one host for every websocket endpoint
    recv_window_ms: int = 5_000  # a request older than this at Binance is refused unexecuted
    stream_silence_s: float = 2.0  # an open order with no word from the venue this long is polled
    poll_every_s: float = 1.0  # and then this often, until it is finished
    request_timeout_ms: int = 10_000
    call_timeout_s: float = 15.0  # cancel_ours / open_orders / balances from the engine thread
    adjust_time: bool = True  # ccxt measures the venue clock offset (avoids -1021)
    # FULL: the create answer carries the fills; ACK: only the order id (fills from the stream,
    # or from REST polling when the stream is silent)
    order_resp_type: str = "FULL"
    # tests: a last word on each ccxt client once built (point it at a local exchange)
    configure: Callable[[Any], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise LiveConfigError("live trading needs an API key and secret")
        if not self.symbols:
            raise LiveConfigError("live trading needs at least one symbol")
        for sym, lev in self.futures.items():
            if sym not in self.symbols:
                raise LiveConfigError(f"futures pair {sym} is not among the symbols")
            if not sym.endswith("/USDT"):
                raise LiveConfigError(f"futures pair {sym}: only USDT-M perpetuals (*/USDT) are supported")
            if not (isinstance(lev, int) and 1 <= lev <= MAX_LEVERAGE):
                raise LiveConfigError(f"futures pair {sym}: leverage {lev!r} must be 1..{MAX_LEVERAGE}")
        if self.order_resp_type not in ("ACK", "RESULT", "FULL"):
            raise LiveConfigError(f"order_resp_type {self.order_resp_type!r}: expected ACK, RESULT or FULL")
        if not (1 <= self.recv_window_ms <= 60_000):
            raise LiveConfigError(f"recv_window_ms {self.recv_window_ms}: Binance accepts 1..60000")
        for name in ("rest_url", "ws_url"):
            url = getattr(self, name)
            want = ("http", "https") if name == "rest_url" else ("ws", "wss")
            if url and urlsplit(url).scheme not in want:
                raise LiveConfigError(f"{name} {redact_url(url)!r} must start with {' or '.join(w + '://' for w in want)}")

    def venue_symbol(self, symbol: str) -> str:
        """ccxt's symbol for a core symbol: ``BTC/USDT`` spot, ``BTC/USDT:USDT`` the USDT-M perpetual."""
        return f"{symbol}:USDT" if symbol in self.futures else symbol

    def spot_symbols(self) -> list[str]:
        return [s for s in self.symbols if s not in self.futures]

    def __repr__(self) -> str:
        return (f"LiveConfig(symbols={self.symbols!r}, futures={dict(self.futures)!r}, testnet={self.testnet}, "
                "key=***, secret=***)")

    __str__ = __repr__


# where each of Binance's hosts goes on one host: its paths, under a prefix where two hosts
# share paths (spot's stream.binance.com/ws and futures' fstream.binance.com/ws)
_WS_HOST_PREFIX = {"fstream": "/fstream", "dstream": "/dstream"}
# the urls trees ccxt sends requests to (``test``/``demo``/backups: after a sandbox toggle)
ENDPOINT_TREES = ("api", "test", "demo", "apiBackup", "apiBackupDemoTrading")


def _base(url: str, suffixes: tuple[str, ...]) -> tuple[str, str, str]:
    """(scheme, netloc, path prefix) of an option's URL: ``http://h:p``, ``http://h:p/api/v3``,
    ``ws://h:p/ws``, ``wss://proxy/binance/ws`` (prefix ``/binance``) are all accepted."""
    b = urlsplit(url)
    path = b.path.rstrip("/")
    for suffix in suffixes:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return b.scheme, b.netloc, path


def _rehost(url: str, base: tuple[str, str, str], ws: bool) -> str:
    """``url`` on ``base``'s host: its path kept (under ``base``'s prefix, and for a futures
    stream host under ``/fstream`` or ``/dstream``), its query kept."""
    u = urlsplit(url)
    scheme, netloc, prefix = base
    if ws:
        prefix += _WS_HOST_PREFIX.get((u.hostname or "").split(".", 1)[0], "")
    return urlunsplit((scheme, netloc, prefix + u.path, u.query, u.fragment))


def point_at(exchange: Any, rest_url: str | None, ws_url: str | None) -> None:
    """Move every REST and websocket endpoint of a ccxt Binance (every ``http(s)://`` and
    ``ws(s)://`` URL in ``urls['api']``, and in the ``test``/``demo`` trees a sandbox toggle
    would swap in) to the host of ``rest_url`` / ``ws_url``, keeping each endpoint's path:

    - REST ``https://api.binance.com/api/v3`` -> ``REST/api/v3``, ``https://fapi.binance.com/fapi/v1``
      -> ``REST/fapi/v1`` (also ``/fapi/v2``, ``/fapi/v3``, ``/sapi/v1``, ``/dapi/v1``...);
    - websocket ``wss://stream.binance.com:9443/ws`` -> ``WS/ws`` (spot market streams),
      ``wss://ws-api.binance.com:443/ws-api/v3`` -> ``WS/ws-api/v3`` (the spot user stream),
      ``wss://fstream.binance.com/ws`` -> ``WS/fstream/ws``, from which ccxt derives the USDT-M
      streams ``WS/fstream/market/ws``, ``WS/fstream/public/ws`` and the user stream
      ``WS/fstream/private/ws?listenKey=KEY`` (the futures stream host's paths are spot's, so
      on one host they go under ``/fstream``; ``dstream`` under ``/dstream``).

    ``REST`` and ``WS`` are the options' scheme, host and path prefix: a trailing ``/api/v3``
    or ``/api`` (REST) or ``/ws`` or ``/stream`` (websocket) is dropped, so the forms the feed
    takes (``http://h:p``, ``http://h:p/api/v3``, ``ws://h:p/ws``) point the same host."""
    bases: dict[str, tuple[str, str, str]] = {}
    if rest_url:
        rest = _base(rest_url, ("/api/v3", "/api"))
        bases.update(http=rest, https=rest)
    if ws_url:
        ws = _base(ws_url, ("/ws", "/stream"))
        bases.update(ws=ws, wss=ws)

    done: set[int] = set()  # a sandbox toggle's trees share nested dicts: rewrite each once

    def walk(node: dict[str, Any]) -> None:
        if id(node) in done:
            return
        done.add(id(node))
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v)
            elif isinstance(v, str) and (scheme := urlsplit(v).scheme) in bases:
                node[k] = _rehost(v, bases[scheme], ws=scheme.startswith("ws"))

    for tree in ENDPOINT_TREES:
        if isinstance(exchange.urls.get(tree), dict):
            walk(exchange.urls[tree])


def _attach(exc: BaseException, status: int, headers: Mapping[str, Any] | None) -> None:
    try:
        exc.http_status = status  # type: ignore[attr-defined]
        exc.http_headers = dict(headers or {})  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__: classify falls back to the text
        pass


class _HttpFacts:
    """Mixin: the HTTP status and headers of a failed response on the exception itself.
    ccxt calls ``handle_errors`` then ``handle_http_status_code`` back to back (no await
    between them), so the headers stashed by the first are the ones of the second."""

    _stash_headers: Mapping[str, Any] | None = None

    def handle_errors(self, code, reason, url, method, headers, body, response, request_headers, request_body):  # type: ignore[no-untyped-def]
        self._stash_headers = headers
        try:
            return super().handle_errors(code, reason, url, method, headers, body, response, request_headers, request_body)  # type: ignore[misc]
        except Exception as exc:
            _attach(exc, code, headers)
            raise

    def handle_http_status_code(self, code, reason, url, method, body):  # type: ignore[no-untyped-def]
        try:
            return super().handle_http_status_code(code, reason, url, method, body)  # type: ignore[misc]
        except Exception as exc:
            _attach(exc, code, self._stash_headers)
            raise


# the market type of a REST path, for error classes (ccxt knows only Binance's host names)
_PATH_TYPES = {"fapi": "linear", "dapi": "inverse", "eapi": "option", "papi": "portfolioMargin", "api": "spot",
               "sapi": "spot"}  # fmt: skip


class _ErrorsByPath:
    """Mixin: Binance's error classes per market type for any host. ccxt chooses them by URL
    host (``https://fapi.binance.com/`` -> the USDT-M table), so on another host a futures
    -2019 / -2022 / -4120 would be a bare ``ExchangeError``; a URL ccxt does not know is typed
    by its path (``/fapi/`` USDT-M, ``/api/`` and ``/sapi/`` spot...)."""

    def get_exceptions_by_url(self, url, exact_or_broad):  # type: ignore[no-untyped-def]
        found = super().get_exceptions_by_url(url, exact_or_broad)  # type: ignore[misc]
        if found or not url:
            return found
        for segment in urlsplit(url).path.split("/"):  # the first API root: /fapi/v1/order, /proxy/api/v3/...
            kind = _PATH_TYPES.get(segment)
            if kind is not None:
                return self.safe_dict(self.safe_dict(self.exceptions, kind, {}), exact_or_broad, {})  # type: ignore[attr-defined]
        return found


class RestBinance(_ErrorsByPath, _HttpFacts, ccxt_async.binance):  # type: ignore[misc]
    pass


class StreamBinance(_ErrorsByPath, _HttpFacts, ccxt_pro.binance):  # type: ignore[misc]
    pass


def exchange_options(cfg: LiveConfig) -> dict[str, Any]:
    types = ["spot", "linear"] if cfg.futures else ["spot"]  # spot: fee assets' prices (BNB/USDT)
    return {
        "apiKey": cfg.api_key,
        "secret": cfg.api_secret,
        "enableRateLimit": True,
        "timeout": cfg.request_timeout_ms,
        "options": {
            "defaultType": "spot",
            "recvWindow": cfg.recv_window_ms,
            "fetchMarkets": {"types": types},
            "fetchCurrencies": False,
            "fetchMargins": False,  # spot trading needs no margin pairs (two sapi calls, and weight)
            "adjustForTimeDifference": cfg.adjust_time,
            "newOrderRespType": {"market": cfg.order_resp_type, "limit": cfg.order_resp_type},
        },
    }


def build_exchanges(cfg: LiveConfig) -> tuple[RestBinance, StreamBinance]:
    """The REST and the stream client, pointed where ``cfg`` says. Call on the worker loop."""
    rest, pro = RestBinance(exchange_options(cfg)), StreamBinance(exchange_options(cfg))
    for ex in (rest, pro):
        if cfg.testnet:
            ex.set_sandbox_mode(True)
        point_at(ex, cfg.rest_url, cfg.ws_url)
        if cfg.configure is not None:
            cfg.configure(ex)
    return rest, pro
