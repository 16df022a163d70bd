"""How the live client reaches Binance: its settings and its two ccxt clients.

Owns ``LiveConfig`` (credentials that never print themselves, market type, endpoints, timing),
``point_at`` (every REST and websocket endpoint ccxt's Binance uses, spot and futures, public
and private, moved to one host, as ``--rest-url`` / ``--ws-url`` do) and ``build_exchanges``:
``ccxt.async_support.binance`` for REST and ``ccxt.pro.binance`` for the private streams, both
with ccxt's rate limiter on, ``recvWindow`` set, and every HTTP failure carrying its status and
headers (``http_status`` / ``http_headers`` on the exception) so a 429/418 and its Retry-After
are known per request, not read from a shared "last response" another request may overwrite.

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
    call_timeout_s: float = 15.0  # cancel_all / open_orders / balances from the engine thread
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


def _rehost(url: str, base: str) -> str:
    """``url`` with the scheme and host of ``base`` (its path kept): every endpoint on one host."""
    u, b = urlsplit(url), urlsplit(base)
    return urlunsplit((b.scheme, b.netloc, u.path, u.query, u.fragment))


def point_at(exchange: Any, rest_url: str | None, ws_url: str | None) -> None:
    """Move every REST (``urls['api'][*]``) and websocket (``urls['api']['ws'][*]``, the
    ws-api included) endpoint of a ccxt Binance to the host of ``rest_url`` / ``ws_url``,
    keeping each endpoint's path (``/api/v3``, ``/fapi/v1``, ``/ws``, ``/ws-api/v3``...)."""

    def walk(node: dict[str, Any], base: str, scheme_ok: tuple[str, ...]) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                if k != "ws":  # the ws tree is handled on its own
                    walk(v, base, scheme_ok)
            elif isinstance(v, str) and urlsplit(v).scheme in scheme_ok:
                node[k] = _rehost(v, base)

    api = exchange.urls["api"]
    if rest_url:
        walk(api, rest_url, ("http", "https"))
    if ws_url and isinstance(api.get("ws"), dict):
        ws = api["ws"]
        for k, v in list(ws.items()):
            if isinstance(v, dict):
                for kk, vv in list(v.items()):
                    if isinstance(vv, str):
                        v[kk] = _rehost(vv, ws_url)
            elif isinstance(v, str):
                ws[k] = _rehost(v, ws_url)


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


class RestBinance(_HttpFacts, ccxt_async.binance):  # type: ignore[misc]
    pass


class StreamBinance(_HttpFacts, ccxt_pro.binance):  # type: ignore[misc]
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
