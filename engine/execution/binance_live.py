"""Live execution on Binance (spot, and USDT-M perpetuals) through ccxt: the core's
``ExecutionClient`` for real money.

Owns ``BinanceLiveClient``, the engine-thread face of ``live_worker.LiveWorker``:

- ``start()`` starts the worker thread (its own asyncio loop, the ccxt REST and stream
  clients), loads the markets and returns ``rules_from_markets`` for the configured symbols
  (give them to the core: the order boundary comes from the exchange, not built-in defaults);
- ``bind`` / ``submit`` / ``lookup`` are the port. ``submit`` and ``lookup`` never block and never
  send from the engine thread: they copy what the worker needs and hand it over. An order the
  client refuses before sending (worker down, above the exchange's maximum quantity or notional)
  is answered with ``OrderRejected`` like any other;
- events come back through a thread-safe queue: ``drain()`` (on the engine thread, each loop
  turn) delivers them to the bound listener, so the core is only ever called on that thread.
  ``wakeup_fd`` is the read end of a pipe the worker writes a byte to after queuing events:
  register it with the engine's ``zmq.Poller`` (``poller.register(client.wakeup_fd, zmq.POLLIN)``)
  and an answer wakes the loop at once instead of at the next poll timeout;
- ``status()`` is a copy of ``LiveStatus`` (ban, back-off, counters, last error; no secret);
- ``open_orders`` / ``cancel_ours`` / ``balances`` / ``positions`` (for the kill switch) run on
  the worker and block the calling thread at most ``call_timeout_s``; they return plain data or
  raise ``LiveClientError``;
- ``venue_view`` (for reconciliation, from a helper thread) runs ``live_account.fetch_view`` on
  the worker the same way and returns a ``VenueView``; it never raises (``error`` says why);
- ``add_symbols`` takes pairs added by a reload in (their rules from the exchange);
- ``close()`` stops the worker (streams, tasks, ccxt sessions) and joins the thread.

Secrets: the key and secret are given by the caller (read from the environment there). Every
error text the client logs, returns or raises goes through a ``Scrubber`` (URL secrets, signed
parameters, and the literal key and secret); ccxt's own log lines go to the ``engine.live.ccxt``
logger with a filter that does the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.core.markets import MarketRules, check_max, price_band, round_price
from engine.core.orders import ExecutionEvent, Order, OrderRejected, is_ours
from engine.core.ports import Clock
from engine.core.reconcile_view import VenueView
from engine.execution.binance_connect import LiveConfig
from engine.execution.binance_rules import rules_from_markets
from engine.execution.live_account import ViewError, fetch_positions, fetch_view
from engine.execution.live_errors import LiveCallError, Outcome, Scrubber, ScrubFilter, classify
from engine.execution.live_rest import LiveStatus
from engine.execution.live_symbols import SymbolsRefused, add_symbols
from engine.execution.live_worker import LiveStartError, LiveWorker, OrderSpec

log = logging.getLogger("engine.live")

# A spot protective stop is a STOP_LOSS_LIMIT: once the stop price trades, a limit this far
# beyond it (within the percent-price band). A gap through the limit leaves it unfilled: the
# core takes over after its grace period (core/protect.py) and closes by market.
STOP_LIMIT_OFFSET = 0.01

__all__ = ["BinanceLiveClient", "LiveClientError", "LiveConfig", "LiveStartError", "LiveStatus", "rules_from_markets"]


def is_close(order: Order) -> bool:
    """Whether ``order`` closes a position (sent reduce-only on futures). The core's ``Order``
    does not say: its entries come from a signal and carry the entry's stop; every exit
    (stop, target, strategy exit, flatten, kill) is built by ``ExecutionEngine.close`` without
    one. A wrong guess is safe one way: an entry sent reduce-only is refused by Binance."""
    return order.reason != "signal" or (order.stop_loss == 0.0 and order.take_profit == 0.0)


class LiveClientError(RuntimeError):
    """A helper call (cancel_ours, open_orders, balances) failed; one scrubbed line."""


class BinanceLiveClient:
    rests_stops = True  # a position's stop rests at Binance (core/protect.py)

    def __init__(self, cfg: LiveConfig, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.scrub = Scrubber((cfg.api_key, cfg.api_secret))
        self._events: queue.SimpleQueue[ExecutionEvent] = queue.SimpleQueue()
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._listener: Callable[[ExecutionEvent], None] | None = None
        self._engine_thread: threading.Thread | None = None
        self.worker = LiveWorker(cfg, self._post, clock.time_ms, self.scrub)
        self.rules: dict[str, MarketRules] = {}
        self._closed = False
        self._filter = ScrubFilter(self.scrub)
        for name in ("engine.live", "engine.live.ccxt"):
            logging.getLogger(name).addFilter(self._filter)

    # ------------------------------------------------------------------ life cycle

    def start(self, timeout_s: float = 30.0) -> dict[str, MarketRules]:
        """Start the worker and load the markets; the exchange's rules for the symbols.
        Raises ``LiveStartError`` (one scrubbed line) when it cannot."""
        markets = self.worker.start(timeout_s)
        venue = {s: self.cfg.venue_symbol(s) for s in self.cfg.symbols}
        rules = rules_from_markets(markets, venue.values())
        self.rules = {s: rules[v] for s, v in venue.items()}
        log.info("live client: %d spot and %d USDT-M pairs, rules from the exchange",
                 len(self.cfg.spot_symbols()), len(self.cfg.futures))  # fmt: skip
        return dict(self.rules)

    def add_symbols(self, added: Mapping[str, int | None], timeout_s: float | None = None) -> dict[str, MarketRules]:
        """Pairs added while trading (a reload): core symbol -> leverage (USDT-M) or None (spot).
        The exchange's rules for them (``live_symbols.add_symbols``); from now on they are
        polled, reconciled and cancelled like the start's. Blocks the calling thread at most
        ``timeout_s`` (default ``call_timeout_s``); raises ``LiveClientError`` (one scrubbed
        line) when the exchange cannot trade one or does not answer: then nothing was added."""
        wait = self.cfg.call_timeout_s if timeout_s is None else timeout_s
        try:
            cfg, rules = self.worker.call(add_symbols(self.worker, dict(added)), wait, "adding pairs")
        except LiveCallError as e:
            raise LiveClientError(self.scrub(e.c.reason)) from None
        except SymbolsRefused as exc:
            raise LiveClientError(self.scrub(str(exc))) from None
        except Exception as exc:
            raise LiveClientError(classify(exc, self.scrub, "adding pairs").reason) from None
        self.cfg = cfg
        self.rules = {**self.rules, **rules}
        return rules

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (an order in flight stays as the journal has it: looked up on restart)."""
        if self._closed:
            return
        self._closed = True
        self.worker.stop(timeout_s)
        if self._engine_thread in (None, threading.current_thread()):
            self.drain()  # what the worker heard before it stopped: facts the book should have
        for fd in (self._rfd, self._wfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for name in ("engine.live", "engine.live.ccxt"):
            logging.getLogger(name).removeFilter(self._filter)

    def __enter__(self) -> BinanceLiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the ExecutionClient port

    def bind(self, listener: Callable[[ExecutionEvent], None]) -> None:
        self._listener = listener
        self._engine_thread = threading.current_thread()

    def submit(self, order: Order, bid: float, ask: float) -> None:
        """Hand a journaled order to the worker; the answer comes through ``drain``.

        A last guard: an order above the exchange's maximum quantity or notional is refused
        here (not retryable). Entries are sized within it by the core's risk pipeline; exits
        do not pass through risk, so this is where they meet it."""
        price = ask if order.side == "buy" else bid
        rules = self.rules.get(order.symbol)
        why = check_max(order.qty, price, rules) if rules is not None else None
        if why is not None:
            self._post(OrderRejected(order.client_order_id, self.clock.time_ms(), f"{order.symbol}: {why}", False))
            return
        if not self.worker.post(self.worker.on_submit, self._spec(order)):
            self._post(OrderRejected(order.client_order_id, self.clock.time_ms(), "not sent: the live client is not running", True))

    def lookup(self, order: Order) -> None:
        """Ask the exchange about ``order`` by its client id; the answer comes through ``drain``.
        Nothing happens when the worker is down (the core asks again later)."""
        if not self.worker.post(self.worker.on_lookup, self._spec(order)):
            log.warning("%s - lookup of %s: the live client is not running", order.symbol, order.client_order_id)

    def cancel(self, order: Order) -> None:
        """Cancel a resting order at the exchange by its client id; the answer (cancelled, or
        what it became) comes through ``drain``. Nothing happens when the worker is down (the
        core asks again)."""
        if not self.worker.post(self.worker.on_cancel, self._spec(order)):
            log.warning("%s - cancel of %s: the live client is not running", order.symbol, order.client_order_id)

    def _spec(self, order: Order) -> OrderSpec:
        limit = 0.0
        if order.order_type == "stop" and order.symbol not in self.cfg.futures:
            limit = self.stop_limit_price(order)
        return OrderSpec(order.client_order_id, order.symbol, order.side, order.qty, order.reason, order.created_ts,
                         is_close(order), order.order_type, order.trigger, limit)  # fmt: skip

    def stop_limit_price(self, order: Order) -> float:
        """A spot stop-limit's limit price: ``STOP_LIMIT_OFFSET`` beyond the stop, on the tick,
        inside the exchange's percent-price band around the stop."""
        rules = self.rules.get(order.symbol)
        sell = order.side == "sell"
        raw = order.trigger * (1.0 - STOP_LIMIT_OFFSET if sell else 1.0 + STOP_LIMIT_OFFSET)
        if rules is None:
            return raw
        band = price_band(rules, order.side, order.trigger)
        if band is not None:
            raw = max(raw, band[0]) if sell else min(raw, band[1])
        return round_price(raw, rules, up=sell)  # towards the stop: stays inside the band

    # ------------------------------------------------------------------ events to the engine thread

    @property
    def wakeup_fd(self) -> int:
        """Readable when events wait for ``drain`` (register it with the engine's poller)."""
        return self._rfd

    def _post(self, event: ExecutionEvent) -> None:
        """Worker side: queue an event, wake the engine loop."""
        self._events.put(event)
        with contextlib.suppress(OSError):  # the pipe is full (already awake) or closed
            os.write(self._wfd, b"\x00")

    def drain(self, limit: int = 10_000) -> int:
        """Deliver queued events to the listener, on the calling (engine) thread; how many."""
        if self._engine_thread is not None and threading.current_thread() is not self._engine_thread:
            raise RuntimeError("BinanceLiveClient.drain must run on the thread that bound the core")
        try:
            while os.read(self._rfd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        n = 0
        while n < limit:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            n += 1
            if self._listener is None:
                log.error("live client: event before bind(): %r", event)
                continue
            self._listener(event)
        return n

    # ------------------------------------------------------------------ what the engine can show

    def status(self) -> LiveStatus:
        return dataclasses.replace(self.worker.status)

    def set_fee_price(self, asset: str, quote: str, price: float) -> None:
        """A fee asset's price (e.g. BNB in USDT from the engine's own ticks), for fee conversion."""
        self.worker.post(self.worker.set_fee_price, asset, quote, price)

    # ------------------------------------------------------------------ kill-switch helpers

    def _call(self, what: str, coro: Any) -> Any:
        try:
            return self.worker.call(coro, self.cfg.call_timeout_s, what)
        except LiveCallError as e:
            raise LiveClientError(self.scrub(e.c.reason)) from None

    def open_orders(self, symbols: Iterable[str]) -> list[dict[str, Any]]:
        """Open orders at the exchange for ``symbols`` (futures: conditional ones too, ``trigger``
        True): plain dicts, ``symbol`` the core's."""
        return self._call("open orders", self._open_orders(list(symbols)))

    def cancel_ours(self, symbols: Iterable[str]) -> dict[str, int]:
        """Cancel every open order OF OURS (client id ``mp-…``) of ``symbols`` (futures:
        conditional ones too), one by one by client id; how many, per symbol. Orders placed
        outside the bot (by hand, another program) are never touched. Verify with
        ``open_orders`` afterwards: an order may land meanwhile."""
        return self._call("cancel ours", self._cancel_ours(list(symbols)))

    def balances(self, market: str = "spot") -> dict[str, dict[str, float]]:
        """Balances that are not zero, ``{asset: {free, used, total}}``: the spot account, or
        the USDT-M futures wallet (``market="future"``)."""
        return self._call("balances", self._balances(market))

    def positions(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """USDT-M positions that are not flat: ``{symbol: {qty (signed), entry, leverage}}``."""
        wanted = [s for s in (symbols if symbols is not None else self.cfg.futures) if s in self.cfg.futures]
        return self._call("positions", self._positions(wanted)) if wanted else {}

    # ------------------------------------------------------------------ reconciliation

    def venue_view(self, symbols: Iterable[str], since_ms: Mapping[str, int], light: bool = False,
                   timeout_s: float | None = None) -> VenueView:  # fmt: skip
        """The exchange's view of ``symbols`` for reconciliation (``live_account``: open orders,
        ours or not; spot balances; USDT-M positions; unless ``light``, our fills since
        ``since_ms[symbol]``, the book's last fill). Runs on the worker; blocks the calling thread
        (not the engine loop's) at most ``timeout_s`` (default ``call_timeout_s``). Never raises:
        a failure is a view with ``error`` set to one scrubbed line."""
        syms = tuple(symbols)
        started = self.clock.time_ms()
        wait = self.cfg.call_timeout_s if timeout_s is None else timeout_s
        try:
            return self.worker.call(fetch_view(self.worker, syms, dict(since_ms), light, started), wait, "venue view")
        except LiveCallError as e:
            why = e.c.reason
        except Exception as exc:  # a bound passed (ViewError), or an answer that could not be read
            why = str(exc) if isinstance(exc, ViewError) else classify(exc, self.scrub, "reading the answer").reason
        why = self.scrub(why if why.startswith("venue view") else f"venue view: {why}")
        log.warning("live client: %s", why)
        return VenueView(self.clock.time_ms(), syms, error=why, light=light, started_ts=started)

    def _kinds(self, sym: str) -> list[dict[str, Any]]:
        return [{}, {"trigger": True}] if sym in self.cfg.futures else [{}]

    async def _open_orders(self, symbols: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in symbols:
            for params in self._kinds(s):
                got = await self.worker.api.call(f"{s} open orders", "fetch_open_orders",
                                                 self.cfg.venue_symbol(s), None, None, params)  # fmt: skip
                for o in got:
                    row = {k: o.get(k) for k in ("id", "clientOrderId", "side", "type", "amount", "filled", "price",
                                                 "status", "timestamp", "reduceOnly")}  # fmt: skip
                    out.append({"symbol": s, "trigger": bool(params), **row})
        return out

    async def _cancel_ours(self, symbols: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in symbols:
            out[s] = 0
            venue = self.cfg.venue_symbol(s)
            for params in self._kinds(s):
                found = await self.worker.api.call(f"{s} open orders", "fetch_open_orders", venue, None, None, params)
                for o in found:
                    cid = str(o.get("clientOrderId") or "")
                    if not is_ours(cid):
                        continue  # not ours: left alone
                    try:
                        await self.worker.api.call(f"{s} cancel {cid}", "cancel_order", None, venue,
                                                   {**params, "clientOrderId": cid})  # fmt: skip
                    except LiveCallError as e:
                        if e.c.outcome is not Outcome.NOT_FOUND:  # -2011: it was gone already
                            raise
                        continue
                    out[s] += 1
        return out

    async def _balances(self, market: str) -> dict[str, dict[str, float]]:
        bal = await self.worker.api.call("balances", "fetch_balance", {"type": market})
        out: dict[str, dict[str, float]] = {}
        for asset, total in (bal.get("total") or {}).items():
            if total:
                out[asset] = {"free": float(bal.get("free", {}).get(asset) or 0.0),
                              "used": float(bal.get("used", {}).get(asset) or 0.0), "total": float(total)}  # fmt: skip
        return out

    async def _positions(self, symbols: list[str]) -> dict[str, dict[str, float]]:
        return await fetch_positions(self.worker, symbols)
