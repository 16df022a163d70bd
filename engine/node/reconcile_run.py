"""When a live engine reconciles its book with the exchange, and where the asking happens.

Owns ``ReconcileRunner``. The core compares (engine/core/reconcile.py); the exchange is asked on
a thread of its own so the engine loop never blocks on the network, and the answer is applied on
the loop. A reconciliation runs:

- at start: entries wait for it; it is asked once the orders the book held open at shutdown have
  been looked up (at most ``START_SETTLE_S``), so the comparison meets the book as it now is;
- after every reconnect of the private stream (what it missed meanwhile);
- every ``PERIODIC_S`` as a light check (open orders and positions/balances, no trade history:
  a few request weights a minute, far inside Binance's limits);
- on the operator's ``reconcile`` command.
A full check asked while a light one is due replaces it; one runs at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from engine.core.orders import OrderStatus
from engine.core.reconcile_view import VenueView

log = logging.getLogger("engine")

PERIODIC_S = 60.0
START_SETTLE_S = 10.0
_RANK = {"periodic": 0, "command": 1, "reconnect": 2, "start": 3}


class ReconcileRunner:
    def __init__(self, live: Any, core: Any, periodic_s: float = PERIODIC_S, settle_s: float = START_SETTLE_S) -> None:
        self.live, self.core = live, core
        self.periodic_s = periodic_s
        self._settle_until = time.monotonic() + settle_s
        self._next_periodic = time.monotonic() + periodic_s
        self._pending: str | None = "start"
        self._thread: threading.Thread | None = None
        self._result: tuple[VenueView, str] | None = None
        self._stream_ok = True
        self.runs = 0
        core.reconciler.expect_start()

    def request(self, trigger: str) -> None:
        if self._pending is None or _RANK[trigger] > _RANK[self._pending]:
            self._pending = trigger

    def poll(self) -> None:
        """Engine loop: apply an answer; start the next question when one is due."""
        result, self._result = self._result, None
        if result is not None:
            view, trigger = result
            self.core.reconciler.apply(view, trigger)
            self.runs += 1
        if self._thread is not None and self._thread.is_alive():
            return
        now = time.monotonic()
        ok = bool(self.live.status().stream_ok)
        if ok and not self._stream_ok:
            self.request("reconnect")
        self._stream_ok = ok
        if now >= self._next_periodic:
            self._next_periodic = now + self.periodic_s
            self.request("periodic")
        trigger = self._pending
        if trigger is None:
            return
        if trigger == "start" and now < self._settle_until and self._unsettled():
            return
        self._pending = None
        symbols = sorted(self.core.pairs)
        since = self.core.journal.last_fill_ts()  # read here: the book's connection is this thread's
        self._thread = threading.Thread(target=self._ask, args=(symbols, since, trigger), name="reconcile", daemon=True)
        self._thread.start()

    def _unsettled(self) -> bool:
        """Orders the book held open at shutdown whose lookups have not been answered yet."""
        return any(o.status in (OrderStatus.UNKNOWN, OrderStatus.NEW) for o in self.core.execution.orders.values())

    def _ask(self, symbols: list[str], since: dict[str, int], trigger: str) -> None:
        try:
            view = self.live.venue_view(symbols, since, light=trigger == "periodic")
        except Exception as exc:  # the client returns errors in the view; this is a last guard
            scrub = getattr(self.live, "scrub", str)
            view = VenueView(ts=int(time.time() * 1000), symbols=tuple(symbols), error=scrub(f"{type(exc).__name__}: {exc}"))
        self._result = (view, trigger)
