"""Orders from decision to fill: journal first, then send, then apply what the venue answers.

Owns ``ExecutionEngine``: the one place an order is created, journaled, handed to the
execution client, moved by the client's events, and booked into the portfolio when it fills.
It also owns the one implementation of closing a position (``close``): stop, take-profit,
strategy exit, flatten, kill and the kill fallback all come here.

Rules that keep money safe:

- An order is in the journal (with its client order id) before ``client.submit`` is called.
- A client that raises leaves the order UNKNOWN: it is looked up by its client order id
  (``client.lookup``) before anything else happens on that pair; nothing is resent blind.
- A fill is booked once: the journal refuses a fill id it already holds.
- An exit stays pending until the position is flat: refused, it is retried with back-off on
  the next ticks; a refusal that can never pass is said once and waits for the operator
  (flatten or kill try again). A remainder below the lot step ("dust", e.g. what a buy leaves
  when Binance takes its fee in the asset bought) ends the exit: it stays in the book and the
  equity, but for trading the pair is flat (``is_dust``).
- Live, a position's stop also rests at the venue (``core/protect.py``): every other exit
  cancels it first and goes out once the venue confirmed the cancel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from engine.core.events import DecisionMade, FillBooked, Notice, OrderUpdated
from engine.core.markets import MarketRules, round_qty_down, rules_for
from engine.core.models import Decision, Fill, Position, Side
from engine.core.orders import (
    STOP,
    ExecutionEvent,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderNotFound,
    OrderRejected,
    OrderStatus,
    OrderTransitionError,
    apply_event,
    client_order_id,
)
from engine.core.portfolio import Portfolio
from engine.core.ports import Clock, EventSink, ExecutionClient, Journal, JournalError
from engine.core.protect import RESTING, RESTING_LOOKUP_MS, ProtectiveStops

log = logging.getLogger("engine")

RETRY_FIRST_MS: Final = 200  # a refused exit is tried again after this, doubling up to RETRY_MAX_MS
RETRY_MAX_MS: Final = 5_000
LOOKUP_EVERY_MS: Final = 1_000  # an order of unknown outcome is looked up at most this often
QUIET_ORDER_MS: Final = 5_000  # an open order with no news this long is looked up too


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class PendingExit:
    """A position that must be closed; it stays until the pair is flat."""

    symbol: str
    reason: str  # stop | take_profit | signal | flatten | kill | kill-fallback
    key: str  # decision key; each attempt's client order id derives from key#attempt
    attempts: int = 0
    next_try_ms: int = 0
    blocked: str = ""  # a refusal no retry can fix; cleared when the operator acts
    last_error: str = ""
    waiting: str = ""  # what the exit waits for that is no error (the resting stop's cancel)
    decision: Decision | None = None  # journaled with the first order

    def __init__(
        self,
        symbol: str,
        reason: str,
        key: str,
        attempts: int = 0,
        next_try_ms: int = 0,
        blocked: str = "",
        last_error: str = "",
        waiting: str = "",
        decision: Decision | None = None,
    ) -> None:
        self.symbol, self.reason, self.key, self.attempts = symbol, reason, key, attempts
        self.next_try_ms, self.blocked, self.last_error = next_try_ms, blocked, last_error
        self.waiting, self.decision = waiting, decision


class ExecutionEngine:
    def __init__(
        self,
        client: ExecutionClient,
        journal: Journal,
        sink: EventSink,
        portfolio: Portfolio,
        clock: Clock,
        rules: Mapping[str, MarketRules],
        on_change: Callable[[str], None],
    ) -> None:
        self.client = client
        self.journal = journal
        self.sink = sink
        self.portfolio = portfolio
        self.clock = clock
        self.rules = rules
        self._on_change = on_change  # the core marks the pair dirty
        self.orders: dict[str, Order] = {}  # open orders by client order id
        self.exits: dict[str, PendingExit] = {}
        self._looked_up: dict[str, int] = {}  # cid -> last lookup ms
        self.unmatched_events = 0  # events about orders we do not hold (counted, logged)
        self.fills_booked = 0
        self.last_fill: dict[str, Fill] = {}
        # the latest (bid, ask) of a pair; the core binds its own (exits pushed by an answer)
        self.quote: Callable[[str], tuple[float, float]] = lambda symbol: (0.0, 0.0)
        client.bind(self.on_event)
        self.protect = ProtectiveStops(self)

    # ------------------------------------------------------------------ queries

    def open_order(self, symbol: str) -> Order | None:
        """The pair's open entry or exit order (a resting protective stop is not one)."""
        for o in self.orders.values():
            if o.symbol == symbol and o.order_type != STOP:
                return o
        return None

    def restore(self, orders: list[Order]) -> None:
        """Orders the journal holds as open (after a restart): look each one up first."""
        for o in orders:
            # whatever the book last said (new, accepted, partly filled), the venue may have
            # moved since: ask it before anything else happens on the pair
            o.status = OrderStatus.UNKNOWN
            o.message = "outcome unknown after a restart"
            self.orders[o.client_order_id] = o
            log.warning("%s - order %s (%s) was open at shutdown: looking it up", o.symbol, o.client_order_id, o.reason)

    # ------------------------------------------------------------------ sending

    def submit(self, order: Order, bid: float, ask: float, decision: Decision | None = None) -> bool:
        """Journal (with its decision, in one transaction), then send. False when the journal
        already holds it: it was decided or sent before and is never sent again."""
        stored = self.journal.record_decision(decision, order) if decision is not None else self.journal.record_order(order)
        if not stored:
            return False
        if decision is not None:
            self.sink.emit(DecisionMade(decision))
        self.send(order, bid, ask)
        return True

    def send(self, order: Order, bid: float, ask: float) -> None:
        """Hand a journaled order to the client (an exception leaves it UNKNOWN, looked up)."""
        self.orders[order.client_order_id] = order
        self.sink.emit(OrderUpdated(order.copy()))
        try:
            self.client.submit(order, bid, ask)
        except JournalError:
            raise  # the book could not record the answer: stop rather than trade on memory
        except Exception as exc:  # the request may have reached the venue: never resend blind
            if order.is_open and order.status is OrderStatus.NEW:
                order.status = OrderStatus.UNKNOWN
                order.message = f"{type(exc).__name__}: {exc}"
                order.updated_ts = self.clock.time_ms()
                self.journal.update_order(order)
                self.sink.emit(OrderUpdated(order.copy()))
            log.warning("%s - order %s outcome unknown (%s): looking it up before anything else",
                        order.symbol, order.client_order_id, order.message)

    # ------------------------------------------------------------------ closing positions

    def close(
        self, pos: Position, reason: str, key: str, bid: float, ask: float, *,
        operator: bool = False, decision: Decision | None = None,
    ) -> str:
        """Start (or push) the exit of ``pos``; returns "filled", "pending", "blocked: why".
        A new exit's ``decision`` is journaled with its first order (one transaction), or on
        its own when no order can go out now."""
        ex = self.exits.get(pos.symbol)
        if ex is None:
            ex = self.exits[pos.symbol] = PendingExit(pos.symbol, reason, key, decision=decision)
        elif operator:
            # the operator acts: a back-off or a blocked exit is tried again now
            ex.reason, ex.blocked, ex.next_try_ms = reason, "", 0
        elif reason == "stop" and ex.reason != "stop":
            ex.reason = reason  # the stop's fallback takes over an exit still waiting
        self._attempt(ex, pos, bid, ask)
        if ex.decision is not None:  # no order went out: the decision is a fact all the same
            if self.journal.record_decision(ex.decision):
                self.sink.emit(DecisionMade(ex.decision))
            ex.decision = None
        if not pos.is_open or (pos.symbol not in self.exits and self.is_dust(pos)):
            return "filled"
        return f"blocked: {ex.blocked}" if ex.blocked else "pending"

    def retry(self, pos: Position, bid: float, ask: float) -> bool:
        """Push the pair's pending exit on a tick; False when it has none."""
        ex = self.exits.get(pos.symbol)
        if ex is None:
            return False
        self._attempt(ex, pos, bid, ask)
        return True

    def push_exit(self, symbol: str) -> None:
        """Try the pair's pending exit now (what it waited for has happened)."""
        ex, pos = self.exits.get(symbol), self.portfolio.positions.get(symbol)
        if ex is not None and pos is not None and pos.is_open:
            self._attempt(ex, pos, *self.quote(symbol))

    def _attempt(self, ex: PendingExit, pos: Position, bid: float, ask: float) -> None:
        now = self.clock.time_ms()
        if ex.blocked or now < ex.next_try_ms or self.open_order(ex.symbol) is not None:
            return
        prot = self.protect.order(ex.symbol) if self.protect.enabled else None
        if prot is not None:  # one seller at a time: the resting stop goes first
            ex.waiting = "cancelling the resting stop first"
            self.protect.cancel(prot, f"{ex.reason} exit")
            return
        ex.waiting = ""
        if not (bid > 0.0 and ask > 0.0):
            ex.last_error = "no price yet"
            return
        rules = rules_for(ex.symbol, self.rules)
        qty = round_qty_down(abs(pos.qty), rules)
        if qty <= 0.0:  # below the lot step: no order can close it; the exit is over
            self._dust_left(ex.symbol, pos)
            return
        while True:  # a restart may meet ids already used: take the next attempt's id
            ex.attempts += 1
            cid = client_order_id(f"{ex.key}#{ex.attempts}")
            side = Side.SELL if pos.qty > 0 else Side.BUY
            order = Order(cid, ex.symbol, side, qty, ex.reason, ex.key, now, updated_ts=now)
            decision, ex.decision = ex.decision, None
            if self.submit(order, bid, ask, decision):
                return
            # the decision key was stored before (a restart meets the same stop): the order alone
            if decision is not None and self.submit(order, bid, ask):
                return
            ex.decision = decision  # this id was taken: try the next one
            if ex.attempts > 1000:
                self._block(ex, "no free client order id")
                return

    def _block(self, ex: PendingExit, why: str) -> None:
        ex.blocked = why
        log.warning("%s - %s exit not filled: %s (waiting for the operator: flatten or kill)", ex.symbol, ex.reason, why)
        self.sink.emit(Notice(self.clock.time_ms(), "exit_blocked", "warning", f"{ex.symbol} {ex.reason} exit not filled: {why}"))
        self._on_change(ex.symbol)

    def poll(self, quote: Callable[[str], tuple[float, float]]) -> None:
        """Timer work: retry due exits, look up orders of unknown outcome."""
        now = self.clock.time_ms()
        for o in list(self.orders.values()):
            # unknown outcome, or open with no news for a while (an answer the venue lost); a
            # resting stop has no news for hours: the streams report it, a lookup only now and then
            quiet, every = (RESTING_LOOKUP_MS, RESTING_LOOKUP_MS) if o.status in RESTING and o.order_type == STOP \
                else (QUIET_ORDER_MS, LOOKUP_EVERY_MS)
            due = o.status is OrderStatus.UNKNOWN or now - (o.updated_ts or o.created_ts) >= quiet
            if due and now - self._looked_up.get(o.client_order_id, -every) >= every:
                self._looked_up[o.client_order_id] = now
                try:
                    self.client.lookup(o)
                except JournalError:
                    raise
                except Exception as exc:
                    log.warning("%s - lookup of %s failed: %s", o.symbol, o.client_order_id, exc)
        for ex in list(self.exits.values()):
            pos = self.portfolio.positions.get(ex.symbol)
            if pos is None or not pos.is_open:
                del self.exits[ex.symbol]
                continue
            if not ex.blocked and now >= ex.next_try_ms:
                bid, ask = quote(ex.symbol)
                self._attempt(ex, pos, bid, ask)

    # ------------------------------------------------------------------ answers

    def on_event(self, event: ExecutionEvent) -> None:
        cid = event.client_order_id
        order = self.orders.get(cid)
        if order is None:
            self.unmatched_events += 1
            log.warning("execution event for an order we do not hold: %r", event)
            return
        if isinstance(event, OrderFilled) and self.journal.has_fill(event.fill.fill_id):
            log.warning("%s - fill %s already booked: ignored", order.symbol, event.fill.fill_id)
            return
        try:
            changed = apply_event(order, event)
        except OrderTransitionError as exc:
            self.unmatched_events += 1
            log.error("%s", exc)
            return
        if not changed:
            return
        if isinstance(event, OrderFilled):
            self._book(order, event)
        elif not isinstance(event, OrderAccepted) or order.order_type == STOP:
            # ACCEPTED is not journaled for a market order: NEW and ACCEPTED are both looked up
            # after a crash, so the write (an fsync) would buy no safety on the order path; a
            # protective stop's is (the book says which stop rests at the exchange)
            self.journal.update_order(order)
        if not order.is_open:
            self.orders.pop(cid, None)
            self._looked_up.pop(cid, None)
        self.sink.emit(OrderUpdated(order.copy()))
        if isinstance(event, OrderRejected | OrderNotFound):
            if order.order_type == STOP:
                self.protect.refused(order)
            else:
                self._refused(order, event)
        self._on_change(order.symbol)
        self.protect.on_changed(order)

    def _book(self, order: Order, event: OrderFilled) -> None:
        fill = event.fill
        pos = self.portfolio.apply_fill(fill)
        if order.reason == "signal" and order.stop_loss and pos.is_open and (pos.qty > 0) == (fill.side is Side.BUY):
            pos.stop_loss, pos.take_profit = order.stop_loss, order.take_profit
        pf = self.portfolio
        self.journal.record_fill(fill, order, pos, {"cash": pf.cash, "realised": pf.realised, "fees": pf.fees})
        self.fills_booked += 1
        self.last_fill[fill.symbol] = fill
        log.info("%s - Filled %s %g @ %.8g (fee %.4f, %s); position %+g",
                 fill.symbol, fill.side, fill.qty, fill.price, fill.fee, fill.reason, pos.qty)
        if not pos.is_open:
            self.exits.pop(fill.symbol, None)
        elif fill.symbol in self.exits and self.is_dust(pos):
            self._dust_left(fill.symbol, pos)  # an exit that left less than a lot: it is done
        self.sink.emit(FillBooked(fill, pos.copy()))

    # ------------------------------------------------------------------ reconciliation

    def book_missed(self, fill: Fill) -> str:
        """Book a fill of ours the exchange reported and the book missed (a reconciliation);
        what it was ("" when the book already holds it or no order of ours is known)."""
        if self.journal.has_fill(fill.fill_id):
            return ""
        order = self.orders.get(fill.order_id)
        if order is not None:  # an open order: its fill, as if the stream had said it
            self.on_event(OrderFilled(order.client_order_id, fill))
            return f"{order.reason}, order {order.client_order_id} was open"
        order = self.journal.order(fill.order_id)
        if order is None:
            log.error("%s - a fill of %s, an order the book never held: not booked", fill.symbol, fill.order_id)
            return ""
        # a finished order (cancelled or filled in the book): the fill is a fact all the same
        total = order.filled_qty + fill.qty
        order.avg_price = (order.avg_price * order.filled_qty + fill.price * fill.qty) / total
        order.filled_qty, order.fees, order.updated_ts = total, order.fees + fill.fee, fill.ts
        if total >= order.qty * (1.0 - 1e-9):
            order.status = OrderStatus.FILLED
        self._book(order, OrderFilled(order.client_order_id, fill))
        self.sink.emit(OrderUpdated(order.copy()))
        self._on_change(order.symbol)
        return f"{order.reason}, order {order.client_order_id} was {order.status} in the book"

    def book_adjustment(self, symbol: str, side: Side, qty: float, price: float, reason: str) -> Fill:
        """A bookkeeping fill (never sent): the book takes a quantity the exchange says it holds
        (a reconciliation's "adopt"), at ``price``, no fee; journaled like any fill, so cash,
        positions and PnL keep adding up to the equity."""
        now = self.clock.time_ms()
        key = f"{symbol}|{reason}|{now}"
        cid = client_order_id(key)
        order = Order(cid, symbol, side, qty, reason, key, now, status=OrderStatus.FILLED, filled_qty=qty,
                      avg_price=price, updated_ts=now)  # fmt: skip
        self.journal.record_order(order)
        fill = Fill(f"adjust:{cid}", cid, symbol, side, qty, price, 0.0, now, reason)
        self._book(order, OrderFilled(cid, fill))
        self.sink.emit(OrderUpdated(order.copy()))
        return fill

    def is_dust(self, pos: Position) -> bool:
        """A remainder no order can trade: below the pair's lot step (e.g. what is left when
        Binance took a buy's fee in the asset bought). Kept in the book and in the equity,
        but for trading the pair is flat: no stop fires on it, no exit waits for it."""
        qty = abs(pos.qty)
        if qty == 0.0:
            return False
        rules = rules_for(pos.symbol, self.rules)
        if qty >= 2.0 * rules.amount_step:
            return False  # at least one step whatever the float rounding: no Decimal needed (hot)
        return round_qty_down(qty, rules) <= 0.0

    def _dust_left(self, symbol: str, pos: Position) -> None:
        self.exits.pop(symbol, None)
        log.info("%s - %g left below the lot step after the exit: kept in the book as dust, "
                 "not tradable", symbol, pos.qty)  # fmt: skip
        self._on_change(symbol)

    def _refused(self, order: Order, event: OrderRejected | OrderNotFound) -> None:
        ex = self.exits.get(order.symbol)
        retryable = not isinstance(event, OrderRejected) or event.retryable
        log.warning("%s - order %s not filled: %s", order.symbol, order.client_order_id, order.message)
        if ex is None:
            return  # an entry: the decision stands as refused; the next signal decides again
        ex.last_error = order.message
        if not retryable:
            self._block(ex, order.message)
            return
        delay = min(RETRY_FIRST_MS * (2 ** min(ex.attempts - 1, 10)), RETRY_MAX_MS)
        ex.next_try_ms = self.clock.time_ms() + delay
