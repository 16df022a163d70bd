"""The notifier's delivery channels: what one HTTP attempt to a webhook or to Telegram is.

Owns ``Channel`` (where one channel posts, what a log may say of it, its rate limit and the
sending state ``notify.Notifier`` keeps on it), ``TokenBucket`` (that rate limit), and the
outcome of one attempt: ``Channel.post`` returns when the message is delivered, raises
``RetryLater`` when a later attempt may succeed, ``Failed`` when none can. The bodies:

- webhook: ``POST <url>`` with the JSON ``{"id", "kind", "text", "ts", "book"}`` (``ts`` in
  milliseconds since the epoch, ``id`` the outbox row: delivery is at least once, a receiver
  may drop a double by it);
- Telegram: ``POST {api_url}/bot{token}/sendMessage`` with ``{"chat_id", "text"}``, the text
  prefixed by ``[<book file name>]`` and cut to Telegram's 4096 characters.

A 2xx is delivered. A network error, a timeout (the notifier's ``request_timeout_s``), 408,
429 and 5xx are ``RetryLater``, with the delay the server asks for if any (Telegram's
``parameters.retry_after``, else a ``Retry-After`` header in seconds); any other status, a
redirect included (never followed: it would carry the message elsewhere), is ``Failed``. The
errors name the status and the server's description; they may still hold a secret, which the
notifier scrubs. ``open_channels`` reads the channels' secrets from the environment and says
which strings in them to scrub; a log names a webhook by its scheme and host only
(``http_origin``). Logs nothing itself; never imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from engine.core.config_notify import NotifyConfig
from engine.journal.outbox import OutboxRow

TELEGRAM_MAX_TEXT = 4096  # Telegram refuses a longer message
BODY_READ_MAX = 4096  # bytes of a response body read (an error description)


class RetryLater(Exception):
    """An attempt that may succeed later (network, timeout, 408, 429, 5xx)."""

    def __init__(self, error: str, retry_after_s: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after_s = retry_after_s


class Failed(Exception):
    """An attempt no retry can fix (4xx other than 408 and 429, a redirect)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class TokenBucket:
    """``capacity`` messages at once, refilled at ``capacity`` per ``window_s``."""

    def __init__(self, capacity: int, window_s: float, monotonic: Callable[[], float]) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window_s
        self.tokens = float(capacity)
        self._monotonic = monotonic
        self._last = monotonic()

    def _refill(self) -> None:
        now = self._monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def wait_s(self) -> float:
        """0 when a message may go now, else how long until it may."""
        self._refill()
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self) -> None:
        self._refill()
        self.tokens -= 1.0


@dataclass(eq=False)
class Channel:
    name: str  # "webhook" | "telegram"
    url: str  # where to POST: a secret, never logged
    where: str  # what a log line may say about it
    bucket: TokenBucket
    chat_id: str = ""  # telegram's chat
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    deferred_ids: set[int] = field(default_factory=set)
    failing: bool = False  # the last attempt failed: the next success is logged

    def body(self, row: OutboxRow, book_name: str) -> dict[str, Any]:
        """The JSON posted for ``row``; ``book_name`` is the book's file name."""
        if self.name == "telegram":
            text = f"[{book_name}] {row.text}"
            if len(text) > TELEGRAM_MAX_TEXT:
                text = text[: TELEGRAM_MAX_TEXT - 1] + "…"
            return {"chat_id": self.chat_id, "text": text}
        return {
            "id": row.id,
            "kind": row.kind,
            "text": row.text,
            "ts": row.ts_ns // 1_000_000,
            "book": book_name,
        }

    async def post(
        self, session: aiohttp.ClientSession, row: OutboxRow, book_name: str, timeout_s: float
    ) -> None:
        """One HTTP attempt: returns when delivered, raises RetryLater or Failed."""
        try:
            async with asyncio.timeout(timeout_s):
                async with session.post(
                    self.url,
                    json=self.body(row, book_name),
                    allow_redirects=False,  # a redirect would carry the message elsewhere
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        return
                    raw = await resp.content.read(BODY_READ_MAX)
                    retry_after = _retry_after(resp.headers.get("Retry-After"), raw)
        except TimeoutError:
            raise RetryLater(f"no answer within {timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}") from None
        error = f"HTTP {status}{_describe_body(raw)}"
        if status in (408, 429) or status >= 500:
            raise RetryLater(error, retry_after)
        raise Failed(error)


def http_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (what a log may say), None if it is not one."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return None
    return f"{parts.scheme}://{parts.hostname}{port}"


def open_channels(
    cfg: NotifyConfig, environ: Mapping[str, str], new_bucket: Callable[[], TokenBucket]
) -> tuple[list[Channel], list[str], list[tuple[str, str]]]:
    """The channels ``cfg`` configures whose variable ``environ`` holds (read now), with a
    bucket each from ``new_bucket``; the strings in their variables that may be secrets; and
    for each channel off (its variable unset or unusable) a warning to log, as a format and
    the variable's name."""
    channels: list[Channel] = []
    secrets: list[str] = []
    off: list[tuple[str, str]] = []
    if cfg.webhook is not None:
        var = cfg.webhook.url_env
        url = environ.get(var, "").strip()
        where = http_origin(url) if url else None
        if not url:
            off.append(("notify: webhook off: environment variable %s is not set", var))
        elif where is None:
            off.append(
                ("notify: webhook off: environment variable %s does not hold an http(s) URL", var)
            )
        else:
            parts = urlsplit(url)
            secrets.append(url)
            if len(parts.path) > 1:  # e.g. Slack's /services/T…/B…/<secret>
                secrets.append(parts.path)
                # a secret segment echoed alone
                secrets += [segment for segment in parts.path.split("/") if len(segment) >= 6]
            secrets += [
                s or "" for s in (parts.query, parts.fragment, parts.password, parts.username)
            ]
            channels.append(Channel("webhook", url, where, new_bucket()))
    if cfg.telegram is not None:
        var = cfg.telegram.token_env
        token = environ.get(var, "").strip()
        if not token:
            off.append(("notify: telegram off: environment variable %s is not set", var))
        elif any(ch.isspace() or ch in "/?#" for ch in token):
            off.append(
                ("notify: telegram off: environment variable %s does not hold a bot token", var)
            )
        else:
            secrets += [token, quote(token, safe="")]
            chat = cfg.telegram.chat_id
            url = f"{cfg.telegram.api_url}/bot{token}/sendMessage"
            channels.append(
                Channel("telegram", url, f"telegram chat {chat}", new_bucket(), chat_id=chat)
            )
    return channels, secrets, off


def _retry_after(header: str | None, raw: bytes) -> float | None:
    """Telegram's ``parameters.retry_after`` in the JSON body, else a Retry-After in seconds."""
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        value = json.loads(raw)["parameters"]["retry_after"]
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
    if header:
        with contextlib.suppress(ValueError):
            value = float(header.strip())
            if math.isfinite(value):
                return value
    return None


def _describe_body(raw: bytes) -> str:
    """``: <Telegram's description>`` or the body's first line, short; '' when empty."""
    text = raw.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        text = str(json.loads(text)["description"])
    text = " ".join(text.split())[:200]
    return f": {text}" if text else ""
