"""The live client's private streams, and REST polling when they are silent.

Owns ``UserStreams``, run on the worker's loop: for each market type in use (spot, and USDT-M
futures when the safe list has futures pairs) a ``watch_orders`` and a ``watch_my_trades`` task
(ccxt.pro; spot user data over the websocket API, futures over a listenKey stream), and the
poller: an open order with no word from the venue for ``stream_silence_s`` — or every open order
as soon as a stream fails — is polled over REST (``fetch_order`` by client id, then its trades).

ccxt does not reconnect by itself: a failed watch is called again with back-off. A stream can
also die silently (one malformed frame stops ccxt.pro's receive loop, the socket stays open):
a fill that only REST found while the stream was believed healthy reopens the streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from engine.execution.live_errors import LiveCallError, classify
from engine.execution.live_orders import Track

if TYPE_CHECKING:
    from engine.execution.live_worker import LiveWorker

log = logging.getLogger("engine.live")

TICK_S = 0.2  # the poller's period
RESTING_POLL_S = 10.0  # a resting protective stop is polled this often (the core takes over a stop hit after 3 s)
STREAM_READY_S = 5.0  # how long a (re)subscription is waited for at most


class UserStreams:
    def __init__(self, worker: LiveWorker) -> None:
        self.w = worker
        self.types = ["spot"] if worker.cfg.spot_symbols() else []
        if worker.cfg.futures:
            self.types.append("future")
        self._tasks: list[asyncio.Task[Any]] = []
        self._restarting = False
        self._fail_logged = 0

    @property
    def ok(self) -> bool:
        """Subscribed, or delivered since the last failure: believed healthy."""
        return self.w.status.stream_ok

    @ok.setter
    def ok(self, value: bool) -> None:
        self.w.status.stream_ok = value

    async def start(self) -> None:
        # subscribe first, then watch: ccxt's authenticate() returns at once (before the venue
        # confirms) when a concurrent watch has already raised the subscribed flag
        await self.ready(STREAM_READY_S)
        self._open()
        self.w.spawn(self._poller())

    async def ready(self, timeout_s: float) -> None:
        """Wait (a little) for the subscriptions, so the first order's events are not missed;
        REST polling covers them if they are late."""
        try:
            for t in self.types:
                await asyncio.wait_for(self.w.pro.authenticate({"type": t}), timeout_s)
            self.ok = True
        except Exception as exc:
            log.warning("live client: the user stream is not up yet (%s): REST polls meanwhile",
                        classify(exc, self.w.scrub).reason)  # fmt: skip

    def _open(self) -> None:
        self._tasks = [self.w.spawn(self._watch(kind, t)) for t in self.types for kind in ("orders", "trades")]

    async def add_type(self, mtype: str) -> None:
        """A pair of a market type not watched yet was added (a reload): its streams open too."""
        if mtype in self.types:
            return
        self.types.append(mtype)
        try:
            await asyncio.wait_for(self.w.pro.authenticate({"type": mtype}), STREAM_READY_S)
        except Exception as exc:
            log.warning("live client: the %s user stream is not up yet (%s): REST polls meanwhile",
                        mtype, classify(exc, self.w.scrub).reason)  # fmt: skip
        self._tasks += [self.w.spawn(self._watch(kind, mtype)) for kind in ("orders", "trades")]

    async def restart(self) -> None:
        if self._restarting:
            return
        self._restarting = True
        try:
            self.ok = False
            self.w.status.stream_reconnects += 1
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            try:
                await self.w.pro.close()
            except Exception as exc:
                log.warning("live client: closing the user stream: %s", self.w.scrub(exc))
            await self.ready(STREAM_READY_S)
            self._open()
        finally:
            self._restarting = False

    async def _watch(self, kind: str, mtype: str) -> None:
        w = self.w
        led = w.ledger
        assert led is not None
        params = {"type": mtype}
        delay = 0.25
        while True:
            try:
                if kind == "orders":
                    items = await w.pro.watch_orders(None, None, None, params)
                else:
                    items = await w.pro.watch_my_trades(None, None, None, params)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                c = classify(exc, w.scrub, f"user stream ({mtype} {kind})")
                w.status.failed(c)
                self.ok = False
                w.status.stream_reconnects += 1
                if self._fail_logged < 5 or w.status.stream_reconnects % 50 == 0:
                    self._fail_logged += 1
                    log.warning("live client: %s: reconnecting in %.2f s (REST polls open orders meanwhile)",
                                c.reason, delay)  # fmt: skip
                for t in led.active():
                    t.last_news = 0.0  # every open order is due for a poll now
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.25
            self.ok = True
            log.debug("user stream (%s %s): %d update(s)", mtype, kind, len(items))
            for item in items:
                info = item.get("info") or {}
                if kind == "orders":
                    cid, vid = item.get("clientOrderId"), item.get("id")
                else:
                    cid, vid = info.get("C") or info.get("c"), item.get("order")
                t = led.find(cid, item.get("symbol"), vid)
                if t is None or t.done:
                    continue
                if kind == "orders":
                    led.order(t, item)
                else:
                    led.trade(t, item)
            w.sync_counters()

    async def _poller(self) -> None:
        led = self.w.ledger
        assert led is not None
        cfg = self.w.cfg
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for t in led.active():
                if t.placing or t.resolving or not t.accepted:
                    continue
                # a resting stop has nothing to say for hours: polled slowly while the stream is up
                every = RESTING_POLL_S if t.order_type == "stop" and not t.triggered and self.ok else cfg.poll_every_s
                if now - t.last_news >= cfg.stream_silence_s and now - t.last_poll >= every:
                    t.last_poll = now
                    t.resolving = True
                    self.w.spawn(self._poll(t))
            led.prune()

    async def _poll(self, t: Track) -> None:
        w = self.w
        w.status.polls += 1
        try:
            oid, params = w.lookup_args(t)
            o = await w.api.call(f"{t.symbol} poll {t.client_order_id}", "fetch_order", oid, t.venue_symbol, params)
            if await w.follow(t, o) and self.ok:
                w.status.stream_misses += 1
                log.warning("%s - order %s: a fill only REST saw: reopening the user stream", t.symbol, t.client_order_id)
                await self.restart()
        except LiveCallError as e:
            log.warning("%s - poll of %s: %s", t.symbol, t.client_order_id, e.c.reason)
        finally:
            t.resolving = False
