"""The live client's worker thread: one asyncio loop owning the ccxt clients and every request.

Owns ``LiveWorker`` (its thread, its loop, placing and looking up orders; the streams and the
poller are ``live_streams``, the rate gate ``live_rest``). The engine thread never waits on it for an order:
``submit`` / ``lookup`` hand it an ``OrderSpec`` and return; what the venue says comes back as
execution events through the ``emit`` callback (the client queues them for the engine thread).

Placing an order (the core journaled it before):

1. ``create_order(symbol, 'market', side, qty, None, {'clientOrderId': cid})`` (sent as
   ``newClientOrderId``; ``newOrderRespType`` FULL, so the answer carries the fills).
2. A definite refusal (-2010, -1013, InvalidOrder, 429/418...) -> ``OrderRejected``.
3. An ambiguous outcome (timeout, reset, 5xx, -1006/-1007) -> look the id up first
   (``fetch_order(None, symbol, {'clientOrderId': cid})``), again with back-off while the lookup
   itself is ambiguous. Found -> follow it. "Does not exist" (-2013) is believed only once the
   request's ``recvWindow`` has run out (until then the first request may still land) -> resend
   with the same id (at most ``MAX_RESENDS`` times). Never a second create otherwise.

Order state comes from the private streams, with REST polling as the safety net
(``live_streams``); a venue order found by a lookup or a poll is followed here: its trades are
fetched by ``orderId`` when the venue filled more than the trades seen.

USDT-M futures pairs (``LiveConfig.futures``): hedge mode refuses the start, each pair's leverage
is set at start, closes are sent reduce-only.

Rate limits: ccxt's limiter paces requests; a 429 backs every request off for Retry-After
(doubling from 1 s without one); a 418 is a ban (``banned_until_ms``). While backed off or
banned, a new order is refused at once without being sent (``OrderRejected``, retryable) and
other requests wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from engine.core.models import Side
from engine.core.orders import ExecutionEvent, OrderNotFound, OrderRejected
from engine.execution.binance_connect import LiveConfig, build_exchanges
from engine.execution.live_errors import Classified, LiveCallError, Outcome, Scrubber, classify
from engine.execution.live_orders import OrderLedger, Track
from engine.execution.live_rest import LiveStatus, RestGate
from engine.execution.live_streams import UserStreams

log = logging.getLogger("engine.live")

MAX_RESENDS = 3  # creates resent with the same id after the venue said it never saw it
LOOKUP_BACKOFF_MAX_S = 10.0
RECV_MARGIN_S = 1.0  # beyond recvWindow before "does not exist" is believed


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What the worker needs of a core ``Order`` (a copy: the core's object is not shared)."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    reason: str
    created_ms: int
    reduce_only: bool = False  # a close (futures: sent reduce-only)
    order_type: str = "market"  # market | stop (a protective stop: ``trigger``, spot's ``limit``)
    trigger: float = 0.0
    limit: float = 0.0



class LiveStartError(RuntimeError):
    """The worker could not start (markets, credentials, endpoints); one scrubbed line."""


class LiveWorker:
    def __init__(self, cfg: LiveConfig, emit: Callable[[ExecutionEvent], None], time_ms: Callable[[], int],
                 scrub: Scrubber) -> None:  # fmt: skip
        self.cfg = cfg
        self._emit = emit
        self.time_ms = time_ms
        self.scrub = scrub
        self.status = LiveStatus()
        self.api = RestGate(self.status, scrub)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.rest: Any = None
        self.pro: Any = None
        self.ledger: OrderLedger | None = None
        self.markets: dict[str, Any] = {}
        self._ready = threading.Event()
        self._start_error = ""
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.streams: UserStreams | None = None

    # ------------------------------------------------------------------ engine-thread side

    def start(self, timeout_s: float) -> dict[str, Any]:
        """Start the thread, load the markets, open the streams; the loaded markets."""
        self.thread = threading.Thread(target=self._run, name="binance-live", daemon=True)
        self.thread.start()
        if not self._ready.wait(timeout_s):
            self.stop(5.0)
            raise LiveStartError(f"live client: not ready after {timeout_s:g} s (markets not loaded)")
        if self._start_error:
            self.stop(5.0)
            raise LiveStartError(self._start_error)
        return self.markets

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` on the worker loop; False when the worker is not running."""
        loop = self.loop
        if loop is None or loop.is_closed() or self.status.state != "running":
            return False
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    def call(self, coro: Coroutine[Any, Any, Any], timeout_s: float, what: str) -> Any:
        """Run ``coro`` on the worker and wait for it (the engine's kill switch helpers)."""
        loop = self.loop
        if loop is None or loop.is_closed() or self.status.state != "running":
            coro.close()
            raise LiveCallError(Classified(Outcome.REFUSED, f"{what}: the live client is not running"))
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise LiveCallError(Classified(Outcome.AMBIGUOUS, f"{what}: no answer in {timeout_s:g} s")) from None

    def stop(self, timeout_s: float) -> None:
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout_s)
            if self.thread.is_alive():
                log.error("live client: the worker thread did not stop in %g s", timeout_s)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()
            self.status.state = "closed" if self.status.state != "failed" else "failed"

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.rest, self.pro = build_exchanges(self.cfg)
            self.api.rest = self.rest
            for ex in (self.rest, self.pro):
                ex.logger = logging.getLogger("engine.live.ccxt")
            self.markets = await self.rest.load_markets()
            self.pro.set_markets(self.rest.markets, self.rest.currencies)
            self.pro.options["timeDifference"] = self.rest.options.get("timeDifference", 0)
            venue = {s: self.cfg.venue_symbol(s) for s in self.cfg.symbols}
            missing = [v for v in venue.values() if v not in self.markets]
            if missing:
                raise LiveStartError(f"live client: {', '.join(missing)} not listed by the exchange")
            if self.cfg.futures:
                await self._futures_setup()
            self.ledger = OrderLedger({s: self.markets[v] for s, v in venue.items()}, self._emit, self.time_ms)
            self.streams = UserStreams(self)
            await self.streams.start()
            self.status.state = "running"
        except Exception as exc:
            self.status.state = "failed"
            if isinstance(exc, LiveStartError):
                msg = str(exc)
            elif isinstance(exc, LiveCallError):
                msg = f"live client start: {exc.c.reason}"
            else:
                msg = classify(exc, self.scrub, "live client start").reason
            self._start_error = self.scrub(msg)
        finally:
            self._ready.set()
        if self.status.state == "running":
            await self._stop.wait()
        await self._teardown()

    async def _teardown(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ex in (self.pro, self.rest):
            if ex is not None:
                try:
                    await ex.close()
                except Exception as exc:
                    log.warning("live client: closing a ccxt client: %s", self.scrub(exc))
        if self.status.state == "running":
            self.status.state = "closed"

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.status.failed(classify(exc, self.scrub, "live client task") if exc else None)
            log.error("live client: a task failed: %s", self.status.last_error)

    # ------------------------------------------------------------------ requests (loop thread)

    def on_submit(self, spec: OrderSpec) -> None:
        assert self.ledger is not None
        t = self.ledger.track(spec.client_order_id)
        if t is not None:  # submitted twice: the first one's flow answers for both
            log.warning("%s - order %s submitted again: ignored", spec.symbol, spec.client_order_id)
            return
        t = self.ledger.add(self._track(spec))
        t.placing = True
        self.spawn(self._place(t))

    def on_lookup(self, spec: OrderSpec) -> None:
        assert self.ledger is not None
        t = self.ledger.track(spec.client_order_id)
        if t is None:
            t = self.ledger.add(self._track(spec))  # an order of an earlier run (or a lost answer)
            t.last_sent_wall = spec.created_ms / 1000.0
        elif t.done:
            self.ledger.replay(t)
            return
        if t.placing or t.resolving:
            return  # the flow in progress will answer
        t.resolving = True
        self.spawn(self._lookup(t))

    def on_cancel(self, spec: OrderSpec) -> None:
        assert self.ledger is not None
        t = self.ledger.track(spec.client_order_id)
        if t is None:
            t = self.ledger.add(self._track(spec))  # an order of an earlier run
            t.last_sent_wall = spec.created_ms / 1000.0
        elif t.done:
            self.ledger.replay(t)
            return
        self.spawn(self._cancel(t))

    def _track(self, spec: OrderSpec) -> Track:
        stop = spec.order_type == "stop"
        return Track(spec.client_order_id, spec.symbol, Side(spec.side), spec.qty, spec.reason, spec.created_ms,
                     venue_symbol=self.cfg.venue_symbol(spec.symbol), reduce_only=spec.reduce_only,
                     order_type=spec.order_type, conditional=stop and spec.symbol in self.cfg.futures,
                     trigger=spec.trigger, limit=spec.limit)  # fmt: skip

    def _order_params(self, t: Track) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": t.client_order_id}  # sent as newClientOrderId
        if t.reduce_only and t.symbol in self.cfg.futures:
            params["reduceOnly"] = True  # a close can never open or flip a position
        if t.order_type == "stop":
            # spot: STOP_LOSS_LIMIT (a limit ``t.limit`` once ``t.trigger`` trades); USDT-M:
            # STOP_MARKET through the algo service, reduce-only (ccxt 4.5 routes it there)
            params["stopLossPrice"] = t.trigger
        return params

    def _create_args(self, t: Track) -> tuple[str, float | None]:
        """ccxt ``create_order``'s type and price for ``t``."""
        if t.order_type == "stop" and t.symbol not in self.cfg.futures:
            return "limit", t.limit
        return "market", None

    @staticmethod
    def lookup_args(t: Track) -> tuple[str | None, dict[str, Any]]:
        """``fetch_order``/``cancel_order``'s id and params for ``t``: by client id; a USDT-M stop
        in the algo service with ``trigger``; the regular order a stop became, by its venue id."""
        if t.conditional:
            return None, {"clientOrderId": t.client_order_id, "trigger": True}
        if t.triggered and t.venue_id:
            return t.venue_id, {}
        return None, {"clientOrderId": t.client_order_id}

    async def _futures_setup(self) -> None:
        """USDT-M: refuse hedge mode; set each futures pair's leverage from the safe list."""
        first = self.cfg.venue_symbol(next(iter(self.cfg.futures)))
        mode = await self.api.call("futures position mode", "fetch_position_mode", first)
        if mode.get("hedged"):
            raise LiveStartError("the USDT-M futures account is in hedge mode (dual side position): "
                                 "switch it to one-way mode on Binance; the live client trades one-way only")  # fmt: skip
        for sym, lev in self.cfg.futures.items():
            await self.api.call(f"{sym} leverage", "set_leverage", lev, self.cfg.venue_symbol(sym))
        log.info("live client: USDT-M one-way mode; leverage %s",
                 ", ".join(f"{s} {lev}x" for s, lev in self.cfg.futures.items()))  # fmt: skip

    # ------------------------------------------------------------------ placing

    async def _place(self, t: Track) -> None:
        assert self.ledger is not None
        cid = t.client_order_id
        try:
            for attempt in range(MAX_RESENDS + 1):
                t.last_sent_wall = time.time()
                otype, price = self._create_args(t)
                try:
                    o = await self.api.call(f"{t.symbol} create {cid}", "create_order", t.venue_symbol, otype,
                                            t.side.value, t.qty, price, self._order_params(t), create=True)  # fmt: skip
                except LiveCallError as e:
                    c = e.c
                    if c.outcome in (Outcome.REFUSED, Outcome.RATE_LIMITED, Outcome.BANNED, Outcome.NOT_FOUND):
                        self._reject(t, c.reason, c.retryable and c.outcome is not Outcome.NOT_FOUND)
                        return
                    log.warning("%s - order %s: %s: looking it up before anything else", t.symbol, cid, c.reason)
                    found = await self._find(t)
                    if found is None:
                        if attempt < MAX_RESENDS:
                            self.status.resends += 1
                            log.warning("%s - order %s never reached the exchange: sending it again (same id)", t.symbol, cid)
                        continue
                    o = found
                t.placing = False
                await self.follow(t, o)
                return
            self._reject(t, f"not placed: the exchange never saw it after {MAX_RESENDS + 1} attempts", True)
        finally:
            t.placing = False

    def _reject(self, t: Track, reason: str, retryable: bool) -> None:
        assert self.ledger is not None
        self.status.rejects += 1
        t.done = True
        log.warning("%s - order %s refused: %s", t.symbol, t.client_order_id, reason)
        self.ledger.emit(t, OrderRejected(t.client_order_id, self.time_ms(), reason, retryable))

    async def _find(self, t: Track) -> dict[str, Any] | None:
        """The venue's order for ``t``'s client id, or None once the venue says (after the
        request's recvWindow has run out) that it does not exist. Retries while ambiguous."""
        delay = 0.25
        while True:
            self.status.lookups += 1
            oid, params = self.lookup_args(t)
            try:
                o: dict[str, Any] = await self.api.call(f"{t.symbol} lookup {t.client_order_id}", "fetch_order",
                                                        oid, t.venue_symbol, params)  # fmt: skip
                return o
            except LiveCallError as e:
                if e.c.outcome is Outcome.NOT_FOUND:
                    settle = t.last_sent_wall + self.cfg.recv_window_ms / 1000.0 + RECV_MARGIN_S
                    if time.time() >= settle:
                        return None
                    await asyncio.sleep(settle - time.time())  # the first request may still land
                    continue
                self.status.retries += 1
                log.warning("%s - lookup of %s: %s: again in %.2f s", t.symbol, t.client_order_id, e.c.reason, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LOOKUP_BACKOFF_MAX_S)

    async def _lookup(self, t: Track) -> None:
        assert self.ledger is not None
        try:
            o = await self._find(t)
            if o is None:
                if not t.accepted and not t.done:
                    t.done = True
                    self.ledger.emit(t, OrderNotFound(t.client_order_id, self.time_ms()))
                return
            await self.follow(t, o)
        finally:
            t.resolving = False

    async def _cancel(self, t: Track) -> None:
        """Cancel ``t`` at the venue; whatever the answer, the order's state comes from the
        venue (a cancel refused as unknown, -2011, is a stop that filled or never landed: looked up)."""
        assert self.ledger is not None
        oid, params = self.lookup_args(t)
        try:
            o = await self.api.call(f"{t.symbol} cancel {t.client_order_id}", "cancel_order", oid, t.venue_symbol, params)
        except LiveCallError as e:
            log.warning("%s - cancel of %s: %s: looking it up", t.symbol, t.client_order_id, e.c.reason)
            if not (t.placing or t.resolving):
                t.resolving = True
                await self._lookup(t)
            return
        if isinstance(o, dict) and not o.get("status"):
            o = {**o, "status": "canceled"}  # an algo cancel's answer carries no status (code 200)
        await self.follow(t, o)

    async def follow(self, t: Track, o: dict[str, Any]) -> int:
        """Apply a venue order to ``t``, fetching its trades when the venue filled more than
        the trades seen; the number of trades only this REST call found."""
        assert self.ledger is not None
        self.ledger.order(t, o)
        new = 0
        if t.needs_trades and t.venue_id:
            try:
                trades = await self.api.call(f"{t.symbol} trades of {t.client_order_id}", "fetch_my_trades",
                                             t.venue_symbol, None, None, {"orderId": t.venue_id})  # fmt: skip
            except LiveCallError as e:  # the poller asks again
                log.warning("%s - trades of %s: %s", t.symbol, t.client_order_id, e.c.reason)
                trades = []
            for tr in trades:
                if str(tr.get("order") or t.venue_id) == t.venue_id:
                    new += self.ledger.trade(t, tr)
            self.ledger.finish(t)
        self.sync_counters()
        return new

    def sync_counters(self) -> None:
        led = self.ledger
        if led is None:
            return
        self.status.fills, self.status.duplicate_fills = led.fills, led.duplicates
        self.status.fees_unpriced = led.fee_prices.unpriced
        for note in led.notes:
            log.warning("live client: %s", note)
        if led.notes:
            self._price_fee_assets()
        led.notes.clear()

    def _price_fee_assets(self) -> None:
        """Fetch, for the next fills, the price of each fee asset that had none."""
        assert self.ledger is not None
        fp = self.ledger.fee_prices
        for asset, quote in list(fp.missing):
            fp.missing.discard((asset, quote))
            if f"{asset}/{quote}" in self.markets:
                self.spawn(self._fee_price(asset, quote))

    async def _fee_price(self, asset: str, quote: str) -> None:
        assert self.ledger is not None
        try:
            tk = await self.api.call(f"{asset}/{quote} price", "fetch_ticker", f"{asset}/{quote}")
        except LiveCallError as e:
            log.warning("live client: no %s price for fees: %s", asset, e.c.reason)
            return
        price = tk.get("last") or tk.get("close")
        if isinstance(price, int | float):
            self.ledger.fee_prices.set(asset, quote, float(price))

    def set_fee_price(self, asset: str, quote: str, price: float) -> None:
        if self.ledger is not None:
            self.ledger.fee_prices.set(asset, quote, price)
