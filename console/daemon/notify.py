"""Notifications while nobody watches: the daemon tells the operator through a webhook or Telegram.

Owns ``Notifier``. The daemon calls ``event(kind, text)`` (a kill, a pair HALTED or STALE, a
child restarted, the feed down for ``feed_down_after_s``, a fill when asked for); the call only
appends to a queue in memory and returns. A background task writes the queue to the book's
outbox (``engine.journal.outbox``, one row per message and channel) on a thread of its own,
never on the event loop (``outbox_writer``), and one task per channel sends the due rows,
oldest first, each attempt a ``channels.Channel.post`` (what is posted, what is retried).

A retryable failure is tried again after 1, 2, 4 … s (capped at 60 s; a delay the server asks
for is honoured instead), up to ``max_attempts`` attempts, then the row is ``failed``; any
other fails at once. After a retryable failure the channel pauses until that row is due again:
a server that is down gets one probe per backoff step, not one per pending message. Each
channel is limited to ``max_per_minute`` messages (a token bucket): a message over the limit
waits in the outbox (counted in ``deferred``), it is never dropped. ``stop()`` delivers what
is due until its deadline (~1 s), then abandons a request in flight; what was not delivered
stays pending in the book, and the next start sends it.

Secrets (the webhook URL, which may carry a token in its user info, query or path, and the bot
token) are read from the environment at construction and never appear in a log line, an error
stored in the book or an exception: every text that may hold one is scrubbed of the known
secret strings and then of URL credentials (``feed.private.redact_text``).

Never imports Textual. ``status()`` feeds the daemon's status output.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from console.daemon.channels import Channel, Failed, RetryLater, TokenBucket, open_channels
from console.daemon.outbox_writer import OutboxWriter
from engine.core.config_notify import NOTIFY_EVENTS, NotifyConfig
from engine.journal.outbox import Outbox, OutboxRow
from engine.journal.schema import StoreError
from feed.private import HIDDEN, redact_text

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
MAX_ATTEMPTS = 8
REQUEST_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 1.0
RETRY_AFTER_CAP_S = 3600.0  # a server asking for more is asked again after an hour
MAX_QUEUED = 10_000  # events in memory not yet in the outbox (the book locked for long)
BATCH = 20  # due rows read per query
IDLE_RECHECK_S = 60.0  # a sender with nothing due looks again at least this often


class Notifier:
    """Sends the daemon's events through the configured channels, from the book's outbox."""

    def __init__(
        self,
        cfg: NotifyConfig,
        book: Path,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        max_attempts: int = MAX_ATTEMPTS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        rate_window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read the channels' secrets from ``environ`` now; a channel whose variable is unset
        (or whose value is unusable) is off, with one warning naming the variable."""
        self.cfg = cfg
        self.book = Path(book)
        self._clock = clock
        self._session_factory = session_factory or functools.partial(
            aiohttp.ClientSession, timeout=aiohttp.ClientTimeout(total=request_timeout_s)
        )
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._max_attempts = max(1, max_attempts)
        self._request_timeout_s = request_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._events = frozenset(cfg.events)
        self._secrets: list[str] = []
        self.sent = 0
        self.retried = 0
        self.failed = 0
        self.deferred = 0  # messages that waited for the rate limit (each counted once)
        self.dropped = 0  # events refused because MAX_QUEUED were waiting in memory
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._senders: list[asyncio.Task[None]] = []
        self._feed_down_since: float | None = None
        self._feed_down_timer: asyncio.TimerHandle | None = None
        self._feed_down_told = False
        self._feed_down_detail = ""
        self._channels, secrets, off = open_channels(
            cfg, environ, lambda: TokenBucket(cfg.max_per_minute, rate_window_s, monotonic)
        )
        for fmt, var in off:
            log.warning(fmt, var)
        for s in secrets:
            if len(s) >= 4 and s not in self._secrets:
                self._secrets.append(s)
        self._secrets.sort(key=len, reverse=True)  # a longer secret first: it may hold a shorter
        self._writer = OutboxWriter(self.book, self.channels, scrub=self.scrub, now_ns=self._now_ns)

    def scrub(self, text: str) -> str:
        """``text`` without any secret this notifier knows of, URL credentials redacted."""
        for s in self._secrets:
            text = text.replace(s, HIDDEN)
        return redact_text(text)

    # ---- the API the daemon uses -------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """At least one channel is configured and has its secret."""
        return bool(self._channels)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels on (configured, with their secret)."""
        return tuple(ch.name for ch in self._channels)

    def event(self, kind: str, text: str) -> None:
        """Queue a message (never blocks, never raises for a delivery problem).

        ``kind`` is one of ``NOTIFY_EVENTS`` (a ValueError otherwise: a programming error);
        kinds not in the safe list's ``notify.events`` are ignored. Call it from the event
        loop's thread.
        """
        if kind not in NOTIFY_EVENTS:
            raise ValueError(
                f"unknown notification kind {kind!r} (known: {', '.join(NOTIFY_EVENTS)})"
            )
        if not self._channels or kind not in self._events:
            return
        if len(self._writer.queue) >= MAX_QUEUED:
            if not self.dropped:
                log.error(
                    "notify: %d messages wait to be written to the book; dropping new ones",
                    len(self._writer.queue),
                )
            self.dropped += 1
            return
        self._writer.put(kind, text, self._now_ns())

    def feed_state(self, up: bool, detail: str = "") -> None:
        """The feed's connection: down for ``feed_down_after_s`` sends one ``feed_down``
        message (with ``detail``); back up after that sends one more. Idempotent; call it
        from the event loop (it sets a timer on it)."""
        loop = asyncio.get_running_loop()
        if not up:
            self._feed_down_detail = detail or self._feed_down_detail
            if self._feed_down_since is None:
                self._feed_down_since = loop.time()
                self._feed_down_timer = loop.call_later(
                    self.cfg.feed_down_after_s, self._feed_down_fire
                )
            return
        if self._feed_down_timer is not None:
            self._feed_down_timer.cancel()
            self._feed_down_timer = None
        if self._feed_down_since is not None and self._feed_down_told:
            lasted = loop.time() - self._feed_down_since
            self.event("feed_down", f"feed back up after {_duration(lasted)} down")
        self._feed_down_since = None
        self._feed_down_told = False
        self._feed_down_detail = ""

    def _feed_down_fire(self) -> None:
        self._feed_down_timer = None
        self._feed_down_told = True
        detail = f": {self._feed_down_detail}" if self._feed_down_detail else ""
        self.event("feed_down", f"feed down for {_duration(self.cfg.feed_down_after_s)}{detail}")

    def status(self) -> dict[str, Any]:
        """Counters for the daemon's status output (no secret)."""
        return {
            "channels": list(self.channels),
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "deferred": self.deferred,
            "dropped": self.dropped,
            "queued": len(self._writer.queue),
        }

    async def start(self) -> None:
        """Start the background tasks (returns at once; the book is opened by them)."""
        if not self._channels or self._run_task is not None:
            return
        self._stopping = False
        self._writer.start()
        self._stop_event = asyncio.Event()
        for ch in self._channels:
            ch.wake = asyncio.Event()
        self._session = self._session_factory()
        log.info("notify: on: %s", ", ".join(ch.where for ch in self._channels))
        loop = asyncio.get_running_loop()
        self._run_task = loop.create_task(
            self._writer.run(lambda: self._stopping, self._pause, self._wake_senders),
            name="notify-outbox",
        )
        self._senders = [
            loop.create_task(self._send_loop(ch), name=f"notify-{ch.name}") for ch in self._channels
        ]
        self._writer.wake.set()  # events queued before start

    async def stop(self) -> None:
        """Stop within ``stop_timeout_s`` (~1 s), however the servers behave.

        Until then the queued events are written to the outbox and what is due is delivered
        (a kill just before a stop still goes out); at the deadline a request in flight is
        abandoned, and every message not delivered stays pending for the next start. A write
        the book holds up (locked by the engine) finishes on the outbox's thread after."""
        if self._run_task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout_s
        self._stopping = True
        if self._feed_down_timer is not None:
            self._feed_down_timer.cancel()
            self._feed_down_timer = None
        self._feed_down_since, self._feed_down_told = None, False
        self._stop_event.set()
        self._writer.wake.set()  # the writer flushes what is queued, then returns
        # until the deadline the senders deliver what is due (a kill just before a stop goes
        # out); then a request still in flight is abandoned and its row stays pending
        tasks = [self._run_task, *self._senders]
        _done, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
        for t in late:
            t.cancel()
        if late:
            await asyncio.wait(late, timeout=0.05)
            if self._run_task in late and (queued := len(self._writer.queue)):
                log.warning("notify: %d messages not written to the book in time: lost", queued)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._session.close(), timeout=max(0.05, deadline - loop.time())
                )
        await self._writer.close(deadline)
        self._run_task, self._senders, self._session = None, [], None
        log.info(
            "notify: stopped (sent %d, retried %d, failed %d, deferred %d)",
            self.sent,
            self.retried,
            self.failed,
            self.deferred,
        )

    # ---- background -------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self._clock() * 1e9)

    def _wake_senders(self) -> None:
        """New rows are in the outbox (or, once ``drained``, none will come): each sender looks."""
        for ch in self._channels:
            ch.wake.set()

    async def _send_loop(self, ch: Channel) -> None:
        outbox, db = await self._writer.opened(), self._writer.call
        while True:
            ch.wake.clear()  # before the query: an event written after it wakes us again
            try:
                rows = await db(outbox.due, self._now_ns(), BATCH, ch.name)
                if not rows:
                    if self._writer.drained:
                        return
                    nxt = await db(outbox.next_due_ns, ch.name)
                    wait = IDLE_RECHECK_S if nxt is None else (nxt - self._now_ns()) / 1e9
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ch.wake.wait(), min(max(wait, 0.0), IDLE_RECHECK_S))
                    continue
                for i, row in enumerate(rows):
                    while (wait := ch.bucket.wait_s()) > 0:
                        new = [r.id for r in rows[i:] if r.id not in ch.deferred_ids]
                        ch.deferred_ids.update(new)
                        self.deferred += len(new)
                        if await self._pause(wait):
                            return  # stopping: the rest waits in the outbox
                    ch.bucket.take()
                    pause = await self._attempt(ch, outbox, row)
                    if pause is not None:  # the channel is failing: wait, then the oldest again
                        if await self._pause(pause):
                            return
                        break
            except StoreError as exc:
                log.warning("notify: %s: outbox: %s", ch.name, self.scrub(str(exc)))
                if await self._pause(2.0):
                    return
            except Exception as exc:  # a bug: say it (scrubbed), keep the channel alive
                log.error("notify: %s: %s: %s", ch.name, type(exc).__name__, self.scrub(str(exc)))
                if await self._pause(2.0):
                    return

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less when stop() begins; True when stopping."""
        if not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), seconds)
        return self._stopping

    async def _attempt(self, ch: Channel, outbox: Outbox, row: OutboxRow) -> float | None:
        """Send one row and record the outcome; the pause the channel takes, if any."""
        attempt = row.attempts + 1
        assert self._session is not None
        try:
            await ch.post(self._session, row, self.book.name, self._request_timeout_s)
        except RetryLater as r:
            error = self.scrub(r.error)
            now = self._now_ns()
            if attempt >= self._max_attempts:
                ch.deferred_ids.discard(row.id)
                await self._writer.call(
                    outbox.mark_failed,
                    row.id,
                    f"{error} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",
                )
                self.failed += 1
                log.warning(
                    "notify: %s: message %d (%s) failed after %d attempts: %s",
                    ch.where,
                    row.id,
                    row.kind,
                    attempt,
                    error,
                )
                ch.failing = True
                return None
            if r.retry_after_s is not None:
                delay = min(max(r.retry_after_s, 0.0), RETRY_AFTER_CAP_S)
            else:
                delay = min(self._backoff_base_s * 2 ** (attempt - 1), self._backoff_cap_s)
            await self._writer.call(outbox.mark_retry, row.id, now, now + int(delay * 1e9), error)
            self.retried += 1
            level = logging.DEBUG if ch.failing else logging.WARNING
            log.log(
                level,
                "notify: %s: attempt %d of message %d failed, next in %.3g s: %s",
                ch.where,
                attempt,
                row.id,
                delay,
                error,
            )
            ch.failing = True
            return delay
        except Failed as f:
            error = self.scrub(f.error)
            ch.deferred_ids.discard(row.id)
            await self._writer.call(outbox.mark_failed, row.id, error)
            self.failed += 1
            log.warning("notify: %s: message %d (%s) failed: %s", ch.where, row.id, row.kind, error)
            return None
        ch.deferred_ids.discard(row.id)
        if ch.failing:
            log.info("notify: %s: delivering again", ch.where)
            ch.failing = False
        try:
            await self._writer.call(outbox.mark_sent, row.id, self._now_ns())
        except StoreError as exc:  # it went: it will go once more (at least once)
            log.warning(
                "notify: %s: message %d sent, not marked: %s",
                ch.where,
                row.id,
                self.scrub(str(exc)),
            )
        self.sent += 1
        return None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    s = round(seconds)
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"
