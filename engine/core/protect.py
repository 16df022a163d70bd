"""Protective stops resting at the venue: a live position's stop works even when this host dies.

Owns ``ProtectiveStops``, a part of ``ExecutionEngine`` (it uses the engine's orders, journal
and client). It acts only when the client rests stops (``client.rests_stops``: the live
client); paper trading and backtests watch stops on their own ticks and never come here.

Rules, so that the core's stop and the venue's stop never both sell:

- a pair has at most one protective order (``order_type`` ``stop``, reason ``stop``, its
  ``trigger`` the position's stop). Like any order it is journaled before it is sent; its client
  order id derives from ``symbol|protect|opened_ts#n``;
- it is placed once the position is open (above dust) with a stop and nothing else is in flight
  on the pair (no open entry or exit order, no pending exit): right after the entry's fill;
- it is replaced (cancel, then place) when the position's size or stop changes, and cancelled
  when the position is flat;
- every other exit (take-profit, strategy exit, flatten, kill, the tick stop's fallback) first
  cancels it and is sent only once the venue confirmed the cancel, or the stop filled first and
  the pair is flat. The venue enforces the same: a spot stop locks the base asset (a sell beside
  it is refused for insufficient balance) and a futures stop is reduce-only (it can never open or
  add to a position);
- while it rests, a stop hit on the core's own ticks defers to it for ``STOP_GRACE_MS``; if it has
  not filled by then (a stop-limit gapped through its limit, a venue that lost it), the core
  cancels it and closes by market;
- a refused placement is said once per position and tried again every ``PROTECT_RETRY_MS``;
  until one rests, the core's tick stop is the stop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from engine.core.events import Notice
from engine.core.markets import round_qty_down, rules_for
from engine.core.models import Side
from engine.core.orders import STOP, Order, OrderStatus, client_order_id
from engine.core.ports import JournalError

if TYPE_CHECKING:
    from engine.core.execution import ExecutionEngine

log = logging.getLogger("engine")

STOP_GRACE_MS: Final = 3_000  # a stop hit on our ticks waits this long for the venue's stop to fill
PROTECT_RETRY_MS: Final = 5_000  # a refused protective stop is placed again after this
CANCEL_AGAIN_MS: Final = 5_000  # a cancel with no answer is asked again after this
RESTING_LOOKUP_MS: Final = 30_000  # a resting stop with no news is looked up this often (streams report changes)
RESTING: Final = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


class ProtectiveStops:
    def __init__(self, engine: ExecutionEngine) -> None:
        self.ex = engine
        self.enabled = bool(getattr(engine.client, "rests_stops", False))
        self._retry_at: dict[str, int] = {}  # symbol -> ms before which no new placement
        self._said: set[str] = set()  # placement keys whose refusal was announced
        self._cancel_sent: dict[str, int] = {}  # client order id -> ms the cancel was asked
        self.crossed: dict[str, int] = {}  # symbol -> ms of the first tick of the stop hit now in force

    # ------------------------------------------------------------------ queries

    def order(self, symbol: str) -> Order | None:
        """The pair's protective order while it is open (resting, in flight, or being looked up)."""
        for o in self.ex.orders.values():
            if o.symbol == symbol and o.order_type == STOP:
                return o
        return None

    def resting(self, symbol: str) -> bool:
        o = self.order(symbol)
        return o is not None and o.status in RESTING

    def _wanted(self, symbol: str) -> tuple[float, float] | None:
        """(quantity, stop) the venue should hold for the pair now, or None for nothing."""
        ex = self.ex
        pos = ex.portfolio.positions.get(symbol)
        if pos is None or not pos.is_open or not pos.stop_loss or symbol in ex.exits or ex.open_order(symbol) is not None:
            return None
        qty = round_qty_down(abs(pos.qty), rules_for(symbol, ex.rules))
        return (qty, pos.stop_loss) if qty > 0.0 else None

    # ------------------------------------------------------------------ keeping the venue's stop right

    def sync(self, symbol: str) -> None:
        """Make the venue's protective order match the position: place, replace or cancel it."""
        if not self.enabled:
            return
        want = self._wanted(symbol)
        prot = self.order(symbol)
        if prot is not None:
            if want is None:
                self.cancel(prot, "the position it protects is closing or flat")
            elif prot.trigger != want[1] or abs(prot.remaining - want[0]) > rules_for(symbol, self.ex.rules).amount_step / 2:
                self.cancel(prot, f"replaced: now {want[0]:g} at {want[1]:.8g}")
            return
        if want is None or self.ex.clock.time_ms() < self._retry_at.get(symbol, 0):
            return
        self._place(symbol, *want)

    def sync_all(self) -> None:
        """Timer work: every open position and every protective order."""
        if not self.enabled:
            return
        symbols = {s for s, p in self.ex.portfolio.positions.items() if p.is_open}
        symbols |= {o.symbol for o in self.ex.orders.values() if o.order_type == STOP}
        for s in sorted(symbols):
            self.sync(s)

    def _place(self, symbol: str, qty: float, stop: float) -> None:
        ex = self.ex
        pos = ex.portfolio.positions[symbol]
        now = ex.clock.time_ms()
        key = f"{symbol}|protect|{pos.opened_ts}"
        side = Side.SELL if pos.qty > 0 else Side.BUY
        bid, ask = ex.quote(symbol)
        for n in range(1, 1001):  # ids used before (a restart, a replacement) are skipped
            order = Order(client_order_id(f"{key}#{n}"), symbol, side, qty, "stop", key, now, updated_ts=now,
                          order_type=STOP, trigger=stop)  # fmt: skip
            if ex.journal.record_order(order):
                break
        else:
            log.error("%s - no free client order id for a protective stop", symbol)
            return
        log.info("%s - protective stop: %s %g at %.8g, placed at the exchange", symbol, side, qty, stop)
        ex.send(order, bid, ask)

    def cancel(self, order: Order, why: str) -> None:
        """Ask the venue to cancel ``order`` (again only after ``CANCEL_AGAIN_MS`` without an answer)."""
        now = self.ex.clock.time_ms()
        asked = self._cancel_sent.get(order.client_order_id)
        if asked is not None and now - asked < CANCEL_AGAIN_MS:
            return
        self._cancel_sent[order.client_order_id] = now
        log.info("%s - cancelling the protective stop %s (%s)", order.symbol, order.client_order_id, why)
        try:
            self.ex.client.cancel(order)
        except JournalError:
            raise
        except Exception as exc:  # asked again after CANCEL_AGAIN_MS; the order is looked up meanwhile
            log.warning("%s - cancel of %s failed: %s", order.symbol, order.client_order_id, exc)

    # ------------------------------------------------------------------ what the venue said

    def on_changed(self, order: Order) -> None:
        """After any order of the pair moved: a finished protective order clears the way for
        the exit waiting on it; any change may call for placing, replacing or cancelling."""
        if not self.enabled:
            return
        symbol = order.symbol
        if order.order_type == STOP and not order.is_open:
            self._cancel_sent.pop(order.client_order_id, None)
            self.crossed.pop(symbol, None)
            if order.status is OrderStatus.FILLED:
                log.info("%s - the protective stop filled at the exchange at %.8g", symbol, order.avg_price)
        elif order.order_type == STOP and order.status is OrderStatus.ACCEPTED:
            log.info("%s - protective stop resting at the exchange: %s %g at %.8g", symbol, order.side, order.qty,
                     order.trigger)  # fmt: skip
        ex = self.ex
        pending = ex.exits.get(symbol)
        if pending is not None:
            if self.order(symbol) is None:
                ex.push_exit(symbol)  # the stop is gone (cancelled or filled): the exit may go now
            return
        self.sync(symbol)

    def refused(self, order: Order) -> None:
        """The venue refused a protective stop (or never saw it): the core's tick stop is the
        stop until one rests; placed again after ``PROTECT_RETRY_MS``."""
        now = self.ex.clock.time_ms()
        if order.message == "not found at the venue":  # lost, or cancelled outside the bot: at once
            log.warning("%s - protective stop %s not found at the exchange: placed again", order.symbol,
                        order.client_order_id)  # fmt: skip
            self.sync(order.symbol)
            return
        self._retry_at[order.symbol] = now + PROTECT_RETRY_MS
        if order.decision_key in self._said:
            log.info("%s - protective stop %s refused again: %s", order.symbol, order.client_order_id, order.message)
            return
        self._said.add(order.decision_key)
        text = (f"{order.symbol} protective stop at {order.trigger:.8g} refused by the exchange: {order.message}; "
                f"the engine watches the stop on its ticks and places it again every {PROTECT_RETRY_MS // 1000} s")  # fmt: skip
        log.warning("%s", text)
        self.ex.journal.record_event(now, "protect_refused", text)
        self.ex.sink.emit(Notice(now, "protect_refused", "warning", text))

    # ------------------------------------------------------------------ the core's own stop

    def defers(self, symbol: str) -> bool:
        """A stop hit on the core's ticks: True while the venue's protective stop should close
        it (it rests, or is in flight, for less than ``STOP_GRACE_MS`` since the hit). The
        core drops the pair from ``crossed`` on a tick that does not hit the stop."""
        if not self.enabled or self.order(symbol) is None:
            return False
        now = self.ex.clock.time_ms()
        first = self.crossed.setdefault(symbol, now)
        if first == now:
            log.info("%s - stop hit on our ticks: the protective stop at the exchange closes it "
                     "(the engine closes it itself after %.0f s)", symbol, STOP_GRACE_MS / 1000)  # fmt: skip
        if now - first < STOP_GRACE_MS:
            return True
        log.warning("%s - the protective stop has not filled %.0f s after the stop was hit: closing from here "
                    "(the resting stop is cancelled first)", symbol, (now - first) / 1000)  # fmt: skip
        return False

    def overdue(self) -> list[str]:
        """Timer work: pairs whose stop was hit (on the last tick) longer than ``STOP_GRACE_MS``
        ago and whose venue stop has not closed them; the core closes them itself."""
        now = self.ex.clock.time_ms()
        late = [s for s, first in self.crossed.items() if now - first >= STOP_GRACE_MS and s not in self.ex.exits]
        return [s for s in late if self.defers(s) is False]
