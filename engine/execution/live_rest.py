"""Every REST request of the live client, through one rate gate, and what the engine can show.

Owns ``LiveStatus`` (ban, back-off, counters, last error: no secret in any field) and
``RestGate``: one ccxt REST call at a time through ``call`` (ccxt's own limiter, enabled on the
client, paces the weight). A failure becomes a classified, scrubbed ``LiveCallError``.

- 429 (or -1003 / -1015): every request waits out Retry-After (1 s doubling to 60 s without one);
- 418: a ban until Retry-After (2 minutes without one), logged as an error and in the status;
- while backed off or banned, a *create* is refused at once without being sent (a definite
  refusal the core may retry later); lookups, polls and helpers wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from engine.execution.live_errors import Classified, LiveCallError, Outcome, Scrubber, classify

log = logging.getLogger("engine.live")

BAN_DEFAULT_S = 120.0  # 418 without Retry-After: Binance's first ban is 2 minutes
BACKOFF_MAX_S = 60.0


@dataclass(slots=True)
class LiveStatus:
    """What the engine can show about the live client. Written by the worker thread only;
    the engine reads a copy (``BinanceLiveClient.status()``)."""

    state: str = "starting"  # starting | running | failed | closed
    banned_until_ms: int = 0  # a 418: no request until then
    backoff_until_ms: int = 0  # a 429: no request until then
    requests: int = 0  # REST requests sent
    retries: int = 0  # lookups repeated because the venue's answer was ambiguous
    resends: int = 0  # creates resent (same client id) after the venue said it never saw them
    lookups: int = 0  # orders looked up by client id
    polls: int = 0  # open orders polled because the stream was silent or down
    rejects: int = 0
    fills: int = 0
    duplicate_fills: int = 0  # trades reported again by another source (dropped)
    stream_ok: bool = False  # the user stream is subscribed and has not failed since
    stream_reconnects: int = 0  # user-stream failures (each stream counts its own) and reopenings
    stream_misses: int = 0  # trades only REST found
    fees_unpriced: int = 0  # fees booked as 0: their asset had no known price
    last_error: str = ""
    last_error_ms: int = 0

    def banned(self, now_ms: int) -> bool:
        return self.banned_until_ms > now_ms

    def failed(self, c: Classified | None) -> None:
        if c is not None:
            self.last_error = c.reason
            self.last_error_ms = int(time.time() * 1000)


class RestGate:
    def __init__(self, status: LiveStatus, scrub: Scrubber) -> None:
        self.status = status
        self.scrub = scrub
        self.rest: Any = None  # the ccxt REST client, set once built
        self._backoff_until = 0.0  # time.time()
        self._banned_until = 0.0
        self._backoff_s = 0.0

    async def call(self, action: str, name: str, *args: Any, create: bool = False) -> Any:
        """``rest.<name>(*args)`` through the gate; failures become ``LiveCallError``."""
        await self._wait(action, create)
        self.status.requests += 1
        try:
            result = await getattr(self.rest, name)(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            c = classify(exc, self.scrub, action)
            self._rate_facts(c)
            self.status.failed(c)
            raise LiveCallError(c) from None
        self._backoff_s = 0.0
        return result

    async def _wait(self, action: str, create: bool) -> None:
        while True:
            now = time.time()
            until = max(self._banned_until, self._backoff_until)
            if until <= now:
                return
            if create:  # never sent: a definite refusal the core may retry later
                banned = self._banned_until > now
                why = "banned by the exchange (HTTP 418)" if banned else "rate limited (HTTP 429)"
                stamp = time.strftime("%H:%M:%S", time.gmtime(until))
                raise LiveCallError(Classified(Outcome.BANNED if banned else Outcome.RATE_LIMITED,
                                               f"{action}: not sent: {why} until {stamp}Z"))  # fmt: skip
            await asyncio.sleep(min(until - now, 1.0))

    def _rate_facts(self, c: Classified) -> None:
        now = time.time()
        if c.outcome is Outcome.BANNED:
            self._banned_until = max(self._banned_until, now + (c.retry_after or BAN_DEFAULT_S))
            self.status.banned_until_ms = int(self._banned_until * 1000)
            log.error("live client: banned by the exchange until %s UTC (HTTP 418): no request until then",
                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self._banned_until)))  # fmt: skip
        elif c.outcome is Outcome.RATE_LIMITED:
            self._backoff_s = min(max(self._backoff_s * 2, 1.0), BACKOFF_MAX_S)
            wait = c.retry_after if c.retry_after is not None else self._backoff_s
            self._backoff_until = max(self._backoff_until, now + wait)
            self.status.backoff_until_ms = int(self._backoff_until * 1000)
            log.warning("live client: %s: every request waits %.1f s", c.reason, wait)
