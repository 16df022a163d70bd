"""What a failed exchange call means, in one secret-free line.

Owns ``Scrubber`` (every error text through ``feed.private.redact_text``, then the literal API
key and secret replaced: ccxt puts the signed URL, and could put anything, in its messages),
``classify`` (a ccxt exception -> ``Outcome``: did the venue refuse the request, say it does not
exist, rate-limit or ban us, or is the outcome unknown?) and ``retry_after_s``.

The default is AMBIGUOUS: only an answer that proves the venue did not act on a request is
treated as a refusal. A 5xx is never a definite answer (Binance: "503 ... execution status
UNKNOWN"), whatever its body says. Binance's codes are read from the body in the message, not
from ccxt's class alone: ccxt picks classes by URL host (a local server degrades them to
``ExchangeError``) and maps -1013 filter failures to ``BadRequest``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import ccxt

from feed.private import HIDDEN, redact_text

MAX_REASON = 240  # a reason is one line for the book and the screen


class Outcome(StrEnum):
    AMBIGUOUS = "ambiguous"  # may or may not have happened: look it up
    REFUSED = "refused"  # the venue did not act on it
    NOT_FOUND = "not_found"  # the venue says the order does not exist
    DUPLICATE = "duplicate"  # the client order id is already in use (open) at the venue
    RATE_LIMITED = "rate_limited"  # 429 / -1003 / -1015: not processed; back off
    BANNED = "banned"  # 418: the IP is banned for a while


@dataclass(frozen=True, slots=True)
class Classified:
    outcome: Outcome
    reason: str  # one line, scrubbed
    retryable: bool = True  # for REFUSED: may the same order pass later?
    code: int | None = None  # Binance's error code, when the body had one
    http: int | None = None  # HTTP status, when known
    retry_after: float | None = None  # seconds, from the Retry-After header


class LiveCallError(Exception):
    """A classified, scrubbed exchange failure (the original is dropped: it may hold secrets)."""

    def __init__(self, c: Classified) -> None:
        super().__init__(c.reason)
        self.c = c


class Scrubber:
    """Makes a text fit for a log, an event or an exception: no URL secret, no key, one line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret that contains the key is hidden whole
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: object, limit: int = MAX_REASON) -> str:
        s = self.hide(str(text))
        s = " ".join(s.split())
        return s if len(s) <= limit else s[: limit - 1] + "…"

    def hide(self, text: str) -> str:
        """``text`` without secrets, its length and lines kept (for log records)."""
        s = redact_text(text)
        s = _SIGNED_PARAM.sub(lambda m: f"{m.group(1)}={HIDDEN}", s)  # a signed body: a=1&signature=...
        s = _SIGNED_JSON.sub(lambda m: f'{m.group(1)}"{HIDDEN}"', s)  # ws-api: "signature": "..."
        for secret in self._secrets:
            s = s.replace(secret, HIDDEN)
        return s


class ScrubFilter(logging.Filter):
    """A logger filter that rewrites every record through a ``Scrubber`` (ccxt's own DEBUG lines
    carry the X-MBX-APIKEY header and signed bodies)."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            msg = f"{record.msg} {record.args}"
        record.msg, record.args = self.scrub.hide(msg), None
        if record.exc_info:  # a traceback may quote a signed URL: keep only its last line
            record.msg += " | " + self.scrub(f"{record.exc_info[0].__name__ if record.exc_info[0] else ''}: {record.exc_info[1]}")
            record.exc_info, record.exc_text = None, None
        return True


_SIGNED_PARAM = re.compile(r"\b(signature|apiKey|api_key|secret|listenKey)=([^&\s\"'<>]+)", re.IGNORECASE)
_SIGNED_JSON = re.compile(r"(\"(?:signature|apiKey|secret|listenKey)\"\s*:\s*)\"[^\"]*\"", re.IGNORECASE)


_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')
_MSG = re.compile(r'"msg"\s*:\s*"((?:[^"\\]|\\.)*)"')
_HTTP = re.compile(r"\b(4\d\d|5\d\d)\b")

# Binance codes whose execution status is unknown (the request may have been acted on)
UNKNOWN_CODES = frozenset({-1000, -1001, -1006, -1007, -1008})
NOT_FOUND_CODES = frozenset({-2013, -2011})  # order does not exist / unknown order (cancel)
RATE_CODES = frozenset({-1003, -1015})  # too much weight / too many new orders
# the same order can never pass: filters, precision, parameters, symbol, key and permissions
FINAL_CODES = frozenset({-1013, -1111, -1100, -1101, -1102, -1103, -1104, -1105, -1106, -1112, -1114,
                         -1115, -1116, -1117, -1121, -1125, -1130, -1131, -2014, -2015, -1022, -1002})  # fmt: skip


def binance_code(text: str) -> tuple[int | None, str]:
    """Binance's ``{"code": N, "msg": "..."}`` inside an error text, if there is one."""
    m = _CODE.search(text)
    msg = _MSG.search(text)
    return (int(m.group(1)) if m else None), (msg.group(1) if msg else "")


def _http(exc: BaseException, text: str) -> int | None:
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, ccxt.DDoSProtection | ccxt.ExchangeNotAvailable | ccxt.RequestTimeout):
        m = _HTTP.search(text)  # ccxt writes "binance 429 Too Many Requests ..." / "... 503 ..."
        return int(m.group(1)) if m else None
    return None


def retry_after_s(headers: Mapping[str, Any] | None) -> float | None:
    """The Retry-After header in seconds (Binance sends seconds on 429 and 418)."""
    if not headers:
        return None
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            try:
                return max(float(v), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def classify(exc: BaseException, scrub: Scrubber, action: str = "") -> Classified:
    """What ``exc`` (raised by a ccxt call) says about the request's fate."""
    raw = str(exc)
    text = scrub(f"{action}{': ' if action else ''}{type(exc).__name__}: {raw}")
    code, msg = binance_code(raw)
    http = _http(exc, raw)
    retry_after = retry_after_s(getattr(exc, "http_headers", None))
    reason = scrub(f"{action}{': ' if action else ''}{msg} ({code})") if code is not None and msg else text

    def out(o: Outcome, retryable: bool = True, why: str = reason) -> Classified:
        return Classified(o, why, retryable, code, http, retry_after)

    if http == 418:
        return out(Outcome.BANNED, why=scrub(f"{action}: IP banned by the exchange (HTTP 418)"))
    if http == 429 or code in RATE_CODES or isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return out(Outcome.RATE_LIMITED, why=scrub(f"{action}: rate limited ({http or code})"))
    if http is not None and http >= 500:
        return out(Outcome.AMBIGUOUS)
    if code in UNKNOWN_CODES:
        return out(Outcome.AMBIGUOUS)
    if code in NOT_FOUND_CODES or isinstance(exc, ccxt.OrderNotFound):
        return out(Outcome.NOT_FOUND)
    if code == -2010 or isinstance(exc, ccxt.DuplicateOrderId | ccxt.InsufficientFunds):
        low = msg.lower() or raw.lower()
        if "duplicate" in low or isinstance(exc, ccxt.DuplicateOrderId):
            return out(Outcome.DUPLICATE)
        return out(Outcome.REFUSED, retryable=True)  # insufficient balance and the like: may pass later
    if code == -1021 or isinstance(exc, ccxt.InvalidNonce):
        return out(Outcome.REFUSED, retryable=True)  # timestamp outside recvWindow: never processed
    if code in FINAL_CODES:
        return out(Outcome.REFUSED, retryable=False)
    if isinstance(exc, ccxt.NetworkError | ccxt.BadResponse | asyncio.TimeoutError | OSError):
        return out(Outcome.AMBIGUOUS)
    if isinstance(exc, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.AuthenticationError | ccxt.ArgumentsRequired
                  | ccxt.NotSupported):  # fmt: skip
        return out(Outcome.REFUSED, retryable=False)
    if code is not None and isinstance(exc, ccxt.ExchangeError):
        return out(Outcome.REFUSED, retryable=True)  # a 4xx with Binance's code: not executed
    return out(Outcome.AMBIGUOUS)
