"""The feed's tick publisher: one XPUB socket carrying ticks, heartbeats and connection status.

Owns the per-topic sequence numbers (the receiver counts gaps from them), the receive time
stamped on every tick, the ``_hb`` heartbeat (once a second), the ``_status`` map (on every
change, every 5 s, and at once for a new status subscriber so a late joiner need not wait), and
the seed's ``messages_sent`` counters and log lines. Publishing never blocks. A live source's
slow subscriber loses messages at the high-water mark, and its sequence numbers show it; with
``nodrop`` (a replay, which has no real time to keep) the socket is ``ZMQ_XPUB_NODROP``: at the
high-water mark of any subscriber of a message nothing is sent, ``publish_tick`` returns False
(no sequence number used) and the source sends the tick again later. A heartbeat or status that
finds a subscriber full stays due and is sent at the next chance, ahead of the next tick.

Every status carries ``last_seq``, the last sequence number of every symbol: ticks travel on the
same pipe as the status, ahead of it, so a subscriber that has a lower number when the status
arrives has lost the difference (this is how a lost tail shows). ``finished`` marks the status
after which no tick will follow (a replay at its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import zmq

from feed.wire import (
    HEARTBEAT_INTERVAL_S,
    RESERVED_PREFIX,
    STATUS_CONNECTED,
    STATUS_RECONNECTING,
    STATUS_STALE,
    STATUS_STOPPED,
    TICK_SEP,
    TOPIC_HEARTBEAT,
    TOPIC_STATUS,
    encode_map,
    encode_tick_fields,
)

log = logging.getLogger(__name__)

STATES = (STATUS_CONNECTED, STATUS_RECONNECTING, STATUS_STALE, STATUS_STOPPED)
STATUS_EVERY_S = 5.0
STATS_LOG_EVERY_S = 10.0
_NOBLOCK = int(zmq.NOBLOCK)
FIRST_STATS_LOG_AT = 100  # the seed's "Published 100 total messages"
HOUSEKEEPING_TICK_S = 0.1
REJECT_LOG_EVERY_S = 10.0
CLOSE_LINGER_MS = 200  # bounded: long enough for the final "stopped" status to leave
SECOND_FRAME_TIMEOUT_MS = 1_000


class TickPublisher:
    """Binds the feed's PUB endpoint and implements ``feed.source.Publisher``.

    Call ``await run(stop)`` for heartbeats, periodic status and stats logs, and ``close()`` at
    the end. ``publish_tick`` and ``set_status`` are plain calls, safe on the hot path.
    """

    def __init__(
        self,
        endpoint: str,
        source_name: str,
        hwm: int = 100_000,
        *,
        symbols: Sequence[str] = (),
        ctx: zmq.Context[Any] | None = None,
        nodrop: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.source_name = source_name
        self.symbols = list(symbols)
        self._own_ctx = ctx is None
        self._ctx: zmq.Context[Any] = ctx if ctx is not None else zmq.Context()
        sock = self._ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # see every subscriber's subscribe, not just the first
        sock.setsockopt(zmq.LINGER, 0)
        if nodrop:  # at the high-water mark send raises EAGAIN instead of dropping
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            # A control message's second frame never waits (the room is checked per message, at
            # its first frame); if libzmq ever disagreed, fail the source loudly rather than hang
            # or leave half a message on the socket.
            sock.setsockopt(zmq.SNDTIMEO, SECOND_FRAME_TIMEOUT_MS)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            if self._own_ctx:
                self._ctx.term()
            raise
        self._sock: zmq.Socket[Any] = sock
        self._topics: dict[str, bytes] = {}
        self._seq: dict[str, int] = {}  # per-symbol tick sequence
        self.nodrop = nodrop
        self._hb_seq = 0
        self._hb_due = False
        self._status_seq = 0
        self.finished = False  # set by mark_finished(): no tick will follow
        self._last_te: dict[str, int] = {}
        self.messages_sent: dict[str, int] = {s: 0 for s in self.symbols}
        self.published = 0
        self.rejected = 0
        self.refused = 0  # nodrop: sends refused at a subscriber's high-water mark (resent later)
        self._last_reject_log = -math.inf
        self._last_stats_log = -math.inf
        self._logged_published = 0
        self.state = STATUS_RECONNECTING  # nothing streamed yet
        self.state_since_ns = time.time_ns()  # when ``state`` began (a new state restarts it)
        self.last_error: str | None = None
        self.reconnects = 0
        self._status_due = True
        self._closed = False
        # Set when the first subscriber to ticks (not only _hb/_status) arrives; replay waits on it.
        self.tick_subscriber = asyncio.Event()
        self._pid = os.getpid()
        if self.symbols:
            log.info("Streaming %d symbols: %s", len(self.symbols), ", ".join(self.symbols))

    # -- the hot path -------------------------------------------------------------------------

    def publish_tick(
        self,
        symbol: str,
        ts_exchange_ms: int,
        bid: float,
        ask: float,
        last: float,
        base_volume: float = 0.0,
        quote_volume: float = 0.0,
    ) -> bool:
        """Send one tick; False only with ``nodrop`` when a subscriber is full: nothing was sent
        and no sequence number used, send it again later. True otherwise (a malformed tick is
        counted in ``rejected`` and dropped; after ``close()`` ticks are ignored)."""
        if self._closed:
            return True
        try:
            te = int(ts_exchange_ms)
            bid = float(bid)
            ask = float(ask)
            last = float(last)
            base_volume = float(base_volume or 0.0)
            quote_volume = float(quote_volume or 0.0)
        except (TypeError, ValueError, OverflowError):
            self._reject(symbol, f"non-numeric field (bid={bid!r} ask={ask!r} last={last!r})")
            return True
        # Comparisons are False for NaN, so this one line also refuses NaN prices.
        if not (0.0 < bid <= ask < math.inf and 0.0 < last < math.inf and te >= 0):
            self._reject(symbol, f"invalid quote bid={bid} ask={ask} last={last} te={te}")
            return True
        if not (0.0 <= base_volume < math.inf):
            base_volume = 0.0  # volume is informative only: keep the quote, drop the bad volume
        if not (0.0 <= quote_volume < math.inf):
            quote_volume = 0.0
        topic = self._topics.get(symbol)
        if topic is None:
            if type(symbol) is not str or not symbol or symbol.startswith("_"):
                self._reject(str(symbol), "not a symbol (empty, or a reserved _topic)")
                return True
            topic = self._topics[symbol] = symbol.encode() + TICK_SEP  # the tick frame's head
            if symbol not in self.messages_sent:
                self.messages_sent[symbol] = 0
        seq = self._seq.get(symbol, 0) + 1
        payload = encode_tick_fields(seq, te, time.time_ns(), bid, ask, last, base_volume, quote_volume)
        try:
            # One frame, ``symbol NUL array`` (tick version 3): one send, and one receive for the
            # engine. Refused only with nodrop, at a subscriber's high-water mark (without nodrop
            # XPUB drops instead).
            self._sock.send(topic + payload, _NOBLOCK)
        except zmq.Again:
            self.refused += 1
            return False
        self._seq[symbol] = seq
        self._last_te[symbol] = te
        self.messages_sent[symbol] += 1
        self.published += 1
        if self.published == FIRST_STATS_LOG_AT:
            self._log_stats()
        return True

    def _reject(self, symbol: str, reason: str) -> None:
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_reject_log >= REJECT_LOG_EVERY_S:  # one line per burst, not per tick
            self._last_reject_log = now
            log.warning("dropped a malformed tick for %s: %s (%d dropped so far)",
                        symbol, reason, self.rejected)

    # -- status and heartbeat ------------------------------------------------------------------

    def set_status(
        self, state: str, last_error: str | None = None, reconnects: int | None = None
    ) -> None:
        if state not in STATES:
            raise ValueError(f"unknown feed state {state!r} (known: {', '.join(STATES)})")
        reconnects = self.reconnects if reconnects is None else reconnects
        if (state, last_error, reconnects) == (self.state, self.last_error, self.reconnects):
            return
        if state != self.state:
            log.info("feed status %s -> %s%s", self.state, state,
                     f" ({last_error})" if last_error else "")
            self.state_since_ns = time.time_ns()
        self.state, self.last_error, self.reconnects = state, last_error, reconnects
        self._publish_status()

    def mark_finished(self) -> None:
        """The source has no more ticks (a replay at its end): statuses say ``finished``."""
        if not self.finished:
            self.finished = True
            self._status_due = True

    def last_seq(self) -> dict[str, int]:
        """The last sequence number published on every symbol, 0 for one not published yet."""
        return {**dict.fromkeys(self.symbols, 0), **self._seq}

    def _publish_status(self) -> None:
        if self._closed:
            return
        payload = encode_map({
            "seq": self._status_seq + 1,
            "state": self.state,
            "since": self.state_since_ns,
            "source": self.source_name,
            "last_error": self.last_error,
            "reconnects": self.reconnects,
            "ts": time.time_ns(),
            "symbols": dict(self._last_te),
            "last_seq": self.last_seq(),
            "published": self.published,
            "finished": self.finished,
        })
        try:
            self._sock.send_multipart((TOPIC_STATUS, payload), flags=zmq.NOBLOCK)
        except zmq.Again:  # nodrop: a status subscriber is full; run() or send_due() retries
            self._status_due = True
            return
        self._status_seq += 1
        self._status_due = False

    def _publish_heartbeat(self) -> None:
        payload = encode_map({
            "seq": self._hb_seq + 1,
            "kind": "feed",
            "source": self.source_name,
            "pid": self._pid,
            "ts": time.time_ns(),
            "published": self.published,
        })
        try:
            self._sock.send_multipart((TOPIC_HEARTBEAT, payload), flags=zmq.NOBLOCK)
        except zmq.Again:  # nodrop: a heartbeat subscriber is full; run() or send_due() retries
            self._hb_due = True
            return
        self._hb_seq += 1
        self._hb_due = False

    def send_due(self) -> None:
        """Send a heartbeat or status that is waiting for room (nodrop). A source waiting for a
        full subscriber calls it before each retry, so a beat goes first when room appears."""
        if self._closed:
            return
        if self._hb_due:
            self._publish_heartbeat()
        if self._status_due:
            self._publish_status()

    def _drain_subscriptions(self) -> None:
        """Read XPUB subscribe frames; a new subscriber to ``_status`` gets the status at once."""
        sock = self._sock
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] != b"\x01":
                continue
            topic = frame[1:]
            if TOPIC_STATUS.startswith(topic):
                self._status_due = True
            if not topic.startswith(RESERVED_PREFIX) and not self.tick_subscriber.is_set():
                self.tick_subscriber.set()  # b"" or a symbol prefix: this one wants ticks

    async def wait_for_subscriber(self, stop: asyncio.Event) -> bool:
        """Wait until someone subscribes to ticks (True) or ``stop`` is set (False).

        Not part of the Publisher protocol: a source that must not stream into the void (replay
        at full speed would be over before the engine connects) uses it when present.
        """
        if not self.tick_subscriber.is_set():
            waiters = [asyncio.ensure_future(self.tick_subscriber.wait()),
                       asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
        return self.tick_subscriber.is_set()

    def _log_stats(self) -> None:
        self._last_stats_log = time.monotonic()
        self._logged_published = self.published
        counts = ", ".join(f"{s}: {n}" for s, n in self.messages_sent.items())
        log.info("Published %d total messages (%s)", self.published, counts)

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeats, periodic and on-subscribe status, stats logs; returns when stop is set."""
        now = time.monotonic()
        next_hb = now
        next_status = now + STATUS_EVERY_S
        while not stop.is_set() and not self._closed:
            self._drain_subscriptions()
            now = time.monotonic()
            if now >= next_hb:
                self._hb_due = True
                next_hb += HEARTBEAT_INTERVAL_S
                if now - next_hb > HEARTBEAT_INTERVAL_S:  # starved: do not send a burst of beats
                    next_hb = now + HEARTBEAT_INTERVAL_S
            if self._hb_due:  # nodrop: one that found a subscriber full is retried each turn
                self._publish_heartbeat()
            if self._status_due or now >= next_status:
                self._publish_status()
                next_status = now + STATUS_EVERY_S
            if (
                self.published >= FIRST_STATS_LOG_AT
                and self.published != self._logged_published
                and now - self._last_stats_log >= STATS_LOG_EVERY_S
            ):
                self._log_stats()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HOUSEKEEPING_TICK_S)

    def close(self) -> None:
        """Publish the final ``stopped`` status and close the socket (idempotent)."""
        if self._closed:
            return
        if self.state != STATUS_STOPPED:  # set_status(STOPPED) has already published it
            self.state = STATUS_STOPPED
            self._publish_status()
        if self._status_due and self.nodrop:
            # The last word: a subscriber still full (behind by a high-water mark) misses it
            # rather than keeping the others from it; lossy from here, the socket is closing.
            self._sock.setsockopt(zmq.XPUB_NODROP, 0)
            self._publish_status()
        self._closed = True
        self._log_stats()
        self._sock.close(linger=CLOSE_LINGER_MS)
        if self._own_ctx:
            self._ctx.term()
