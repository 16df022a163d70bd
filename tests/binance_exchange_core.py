"""Shared parts of the local Binance-protocol exchange (see ``binance_exchange.py`` for the API).

Signed-request checks as Binance does them, the request-weight limiter with 429/418 bans, the
fault plan tests drive, the request counters and the order log. Nothing here knows spot from
futures beyond a venue name (``"spot"`` for ``/api``, ``"futures"`` for ``/fapi``).

The API secret is only ever used as an HMAC key: it is never formatted, logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

D0 = Decimal(0)
CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
CLIENT_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"

MSG_INSUFFICIENT = "Account has insufficient balance for requested action."
MSG_DUPLICATE = "Duplicate order sent."
MSG_NO_ORDER = "Order does not exist."
MSG_UNKNOWN_ORDER = "Unknown order sent."
MSG_TIMEOUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
MSG_UNEXPECTED = "An unexpected response was received from the message bus. Execution status unknown."
MSG_INTERNAL = "Internal error; unable to process your request. Please try again."

# Binance's ban ladder after a client keeps sending through a 429: 2 minutes up to 3 days.
BAN_LADDER_S = (120, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 259200)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def dec(x: Any) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(str(x))


def fmt8(x: Decimal | float) -> str:
    """A quantity or price as Binance spot prints it (8 decimals)."""
    return f"{dec(x).quantize(Decimal('0.00000001'), rounding=ROUND_DOWN):f}"


def floor_step(x: Decimal, step: Decimal) -> Decimal:
    return (x / step).to_integral_value(rounding=ROUND_DOWN) * step if step > 0 else x


class ApiError(Exception):
    """A Binance error answer: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response({"code": self.code, "msg": self.msg}, status=self.status, headers=self.headers)


def mandatory(params: dict[str, str], name: str) -> str:
    v = params.get(name)
    if v is None or v == "":
        raise ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return v


def decimal_param(params: dict[str, str], name: str, required: bool = False) -> Decimal | None:
    raw = mandatory(params, name) if required else params.get(name)
    if raw is None or raw == "":
        return None
    try:
        v = Decimal(raw)
    except InvalidOperation:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.") from None
    if not v.is_finite() or v < 0:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")
    return v


def check_client_id(cid: str | None, name: str = "newClientOrderId") -> None:
    if cid is not None and not CLIENT_ID_RE.match(cid):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{CLIENT_ID_RANGE}'.")


# --------------------------------------------------------------------------- auth


@dataclass
class Account:
    """One API key. ``secret`` is private to the HMAC check (its repr hides it)."""

    api_key: str
    secret: str = field(repr=False)
    fee_in_bnb: bool = False


class Auth:
    """Binance's signed-endpoint checks: API key header, recvWindow, timestamp, HMAC-SHA256."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.clock_offset_ms = 0  # added to the server's clock (positive: the server runs ahead)
        self.failures: Counter[int] = Counter()  # error code -> times refused

    def server_time(self) -> int:
        return now_ms() + self.clock_offset_ms

    def add(self, api_key: str, secret: str, **kw: Any) -> Account:
        acct = Account(api_key, secret, **kw)
        self.accounts[api_key] = acct
        return acct

    def key_only(self, request: web.Request) -> Account:
        """USER_STREAM endpoints (listenKey): the key header, no signature."""
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            self.failures[-2014] += 1
            raise ApiError(-2014, "API-key format invalid.", 401)
        acct = self.accounts.get(key)
        if acct is None:
            self.failures[-2015] += 1
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return acct

    def verify(self, request: web.Request, query: str, body: str) -> tuple[Account, dict[str, str]]:
        """Check a SIGNED request; return its account and its parameters (query and body)."""
        acct = self.key_only(request)
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        signature = params.pop("signature", None)
        if "timestamp" not in params or not params["timestamp"]:
            raise ApiError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        try:
            ts = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise ApiError(-1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.") from None
        if recv_window > 60000:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        server = self.server_time()
        if ts >= server + 1000:
            self.failures[-1021] += 1
            raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - ts > recv_window:
            self.failures[-1021] += 1
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        if not signature:
            raise ApiError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        # totalParams: the query string concatenated with the body, each without its signature.
        payload = _strip_signature(query) + _strip_signature(body)
        expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            self.failures[-1022] += 1
            raise ApiError(-1022, "Signature for this request is not valid.")
        return acct, params

    def verify_ws(self, params: dict[str, Any]) -> Account:
        """A websocket-API signed request: params sorted, ``k=v`` joined by ``&``, unencoded."""
        key = params.get("apiKey")
        acct = self.accounts.get(str(key)) if key else None
        if acct is None:
            self.failures[-2015] += 1
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        signature = str(params.get("signature", ""))
        rest = {k: v for k, v in params.items() if k != "signature"}
        try:
            ts = int(rest.get("timestamp", 0))
            recv_window = int(rest.get("recvWindow", 5000))
        except (TypeError, ValueError):
            raise ApiError(-1100, "Illegal characters found in parameter 'timestamp'.") from None
        server = self.server_time()
        if ts >= server + 1000 or server - ts > recv_window:
            self.failures[-1021] += 1
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        payload = "&".join(f"{k}={_ws_str(v)}" for k, v in sorted(rest.items()))
        expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            self.failures[-1022] += 1
            raise ApiError(-1022, "Signature for this request is not valid.")
        return acct


def _ws_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _strip_signature(s: str) -> str:
    if not s:
        return ""
    parts = [p for p in s.split("&") if not p.startswith("signature=")]
    return "&".join(parts)


# --------------------------------------------------------------------------- limits


@dataclass
class VenueLimits:
    """Request weight per minute and the 429 -> 418 escalation of one venue."""

    weight_per_min: int
    orders_per_10s: int
    window_start: float = 0.0
    used: int = 0
    order_times: list[float] = field(default_factory=list)
    limited_until: float = 0.0  # after a 429: any request before this time earns a ban
    banned_until: float = 0.0
    bans: int = 0


class Limiter:
    """Binance's IP limits. ``ban_scale`` shrinks the ban ladder for tests (1.0 = real minutes)."""

    def __init__(self, spot_weight: int = 6000, futures_weight: int = 2400) -> None:
        self.venues = {
            "spot": VenueLimits(spot_weight, 100),
            "futures": VenueLimits(futures_weight, 300),
        }
        self.ban_scale = 1.0

    def _ban(self, v: VenueLimits, now: float) -> ApiError:
        secs = BAN_LADDER_S[min(v.bans, len(BAN_LADDER_S) - 1)] * self.ban_scale
        v.bans += 1
        v.banned_until = now + secs
        return self._banned(v, now)

    def _banned(self, v: VenueLimits, now: float) -> ApiError:
        left = max(1, round(v.banned_until - now + 0.499))
        until_ms = int((time.time() + (v.banned_until - now)) * 1000)
        return ApiError(-1003, f"Way too much request weight used; IP banned until {until_ms}. "
                        "Please use WebSocket Streams for live updates to avoid bans.", 418, {"Retry-After": str(left)})

    def _too_many(self, v: VenueLimits, now: float, retry_after: float) -> ApiError:
        v.limited_until = max(v.limited_until, now + retry_after)
        return ApiError(-1003, f"Too much request weight used; current limit is {v.weight_per_min} request weight per 1 MINUTE. "
                        "Please use WebSocket Streams for live updates to avoid polling the API.", 429,
                        {"Retry-After": str(max(1, round(retry_after + 0.499)))})

    def check(self, venue: str, weight: int, is_order: bool) -> tuple[int, int]:
        """Count a request; raise the 429/418 answer Binance would give. Returns (used, orders)."""
        v = self.venues[venue]
        now = time.monotonic()
        if now < v.banned_until:
            raise self._banned(v, now)
        if now < v.limited_until:  # kept sending through a 429
            v.limited_until = 0.0
            raise self._ban(v, now)
        if now - v.window_start >= 60.0:
            v.window_start = now
            v.used = 0
        v.used += weight
        if v.used > v.weight_per_min:
            raise self._too_many(v, now, 60.0 - (now - v.window_start))
        if is_order:
            v.order_times = [t for t in v.order_times if now - t < 10.0]
            if len(v.order_times) >= v.orders_per_10s:
                raise ApiError(-1015, f"Too many new orders; current limit is {v.orders_per_10s} orders per 10 SECOND.", 429,
                               {"Retry-After": str(max(1, int(10.0 - (now - v.order_times[0]) + 0.999)))})
            v.order_times.append(now)
        return v.used, len(v.order_times)

    def force_429(self, venue: str, retry_after_s: float) -> ApiError:
        v = self.venues[venue]
        return self._too_many(v, time.monotonic(), retry_after_s)

    def force_ban(self, venue: str, seconds: float | None = None) -> ApiError:
        v = self.venues[venue]
        now = time.monotonic()
        if seconds is None:
            return self._ban(v, now)
        v.bans += 1
        v.banned_until = now + seconds
        return self._banned(v, now)

    def reset(self) -> None:
        for v in self.venues.values():
            v.used = 0
            v.order_times.clear()
            v.limited_until = v.banned_until = 0.0
            v.bans = 0


# --------------------------------------------------------------------------- faults

# Kinds a test can inject (see Faults.add):
FAULT_KINDS = (
    "drop",            # close the connection without answering (execute=True: the request took effect)
    "http",            # an HTTP error status with Binance's body for it (default 503; execute=False)
    "code",            # a Binance error code/msg (e.g. -1007, -1006); execute default True
    "insufficient",    # -2010 "Account has insufficient balance for requested action." (not executed)
    "filter",          # -1013 "Filter failure: <filter>" (not executed)
    "delay",           # answer after delay_s (execute=True: the request took effect at once)
    "rate_limit",      # 429 with Retry-After; a request inside the window earns a 418 ban
    "ban",             # 418 with Retry-After (ban_s, or the next step of the ladder)
    "partial",         # the next order fills in `parts` partial fills (distinct trade ids)
    "close_user_stream",  # close the account's user-data streams in the middle of the next order's fills
)


@dataclass
class Fault:
    kind: str
    endpoint: str | None = None  # "POST /api/v3/order", "/api/v3/order", "/fapi/" (prefix) or None (any private)
    times: int = 1
    skip: int = 0  # let this many matching requests through first
    status: int | None = None
    code: int | None = None
    msg: str | None = None
    execute: bool | None = None
    delay_s: float = 0.0
    retry_after_s: float = 2.0
    ban_s: float | None = None
    parts: int = 2
    filter: str = "LOT_SIZE"
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.endpoint is None:
            return True
        ep = self.endpoint
        if " " in ep:
            m, _, p = ep.partition(" ")
            return m.upper() == method and path == p
        return path == ep or (ep.endswith("/") and path.startswith(ep))


class Faults:
    """The fault plan: each fault fires on the next matching request(s), then disarms."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.fired: list[tuple[str, str, str]] = []  # (kind, method, path)

    def add(self, kind: str, endpoint: str | None = None, times: int = 1, **opts: Any) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        f = Fault(kind=kind, endpoint=endpoint, times=times, **opts)
        self.pending.append(f)
        return f

    def clear(self) -> None:
        self.pending.clear()

    def take(self, method: str, path: str, kinds: tuple[str, ...]) -> Fault | None:
        for f in self.pending:
            if f.kind in kinds and f.matches(method, path):
                if f.skip > 0:
                    f.skip -= 1
                    continue
                f.times -= 1
                f.fired += 1
                if f.times <= 0:
                    self.pending.remove(f)
                self.fired.append((f.kind, method, path))
                return f
        return None


# --------------------------------------------------------------------------- records


@dataclass
class RequestRecord:
    method: str
    path: str
    params: dict[str, str]  # without the signature
    status: int = 0
    fault: str | None = None
    api_key: str | None = None
    t: float = field(default_factory=time.monotonic)


@dataclass
class OrderRecord:
    """Every order the exchange accepted (rejections are not orders)."""

    venue: str  # "spot" | "futures" | "futures-algo"
    symbol: str  # market id
    order_id: int
    client_order_id: str
    side: str
    type: str
    quantity: str
    api_key: str
    t_ms: int = field(default_factory=now_ms)


class Stats:
    """Request counters per endpoint and the order log, for assertions."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()  # "POST /api/v3/order" -> n
        self.requests: list[RequestRecord] = []
        self.orders: list[OrderRecord] = []

    def count(self, endpoint: str) -> int:
        return self.counts[endpoint]

    def orders_with_client_id(self, cid: str) -> list[OrderRecord]:
        return [o for o in self.orders if o.client_order_id == cid]

    def duplicate_client_ids(self) -> dict[str, int]:
        c = Counter((o.venue, o.symbol, o.client_order_id) for o in self.orders)
        return {cid: n for (_v, _s, cid), n in c.items() if n > 1}
