"""Reconciliation: the book and the exchange agree before anything trades, or the pair waits.

Owns ``Reconciler``, a part of ``TradingCore`` (live only: the shell fetches a ``VenueView``
off the engine loop and hands it to ``apply`` on it). Rules:

- **Facts first.** Trades of our orders the book missed (the engine was down, a stream lost
  them) are booked as fills, once each (the journal refuses a fill id it holds).
- **Then compare, per pair**: the position (spot: the base asset's balance at the exchange may
  be larger than the book's position, coins held outside the bot, which are listed and never
  counted; never smaller. USDT-M: the exchange's position must equal the book's, and its entry
  be within ``ENTRY_TOLERANCE``), the orders (an open order of ours the book does not hold is a
  mismatch; orders without our client id prefix are listed and never touched), and the
  protective stop (missing at the exchange while book and exchange agree: placed again, since a
  stop only ever reduces risk).
- **Fail closed.** A pair with a mismatch, and every pair when the exchange could not be asked,
  is HALTED: no entries; its stops, exits and the kill still work. It trades again only after
  the operator's choice: ``adopt`` (the book takes the exchange's quantity and entry through a
  bookkeeping fill at the mark, so cash + positions = equity still holds), ``flatten`` (adopt,
  then close at the exchange), or ``keep`` (stays HALTED; acknowledged, so ``rearm`` may
  re-arm it). Each choice is recorded in the book with who and when.
- A pair with an order in flight or a fill booked while the exchange was being asked is
  ``unchecked`` (compared next time): its book is ahead of the view.
- Until the first reconciliation after a live start has been applied, no entry is made; a pair
  added by a reload while trading live makes none until a reconciliation has covered it (an
  open order of ours or a futures position already at the exchange is a mismatch: HALTED).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.core.events import Reconciled
from engine.core.markets import rules_for
from engine.core.models import PairMode, Side
from engine.core.reconcile_view import PairCheck, ReconcileReport, VenueView

if TYPE_CHECKING:
    from engine.core.commands import CommandResult
    from engine.core.trader import TradingCore

log = logging.getLogger("engine")

ENTRY_TOLERANCE = 0.005  # a futures entry price within 0.5 % of the book's agrees
IN_FLIGHT_MS = 2_000  # a fill booked this close to the fetch makes the pair inconclusive


class Reconciler:
    def __init__(self, core: TradingCore) -> None:
        self.core = core
        self.report: ReconcileReport | None = None
        self.report_id: int | None = None
        self.blocks_entries = False  # a live start: no entry until the first reconciliation is applied
        self.new_pairs: set[str] = set()  # added live by a reload: no entry until a reconciliation covers them
        # pairs this process halted and nothing halted since (a kill): adopt/flatten may re-activate them
        self.halted_here: set[str] = set()
        latest = core.journal.latest_reconciliation()
        if latest is not None:  # choices and waiting pairs survive a restart
            self.report_id, d = latest
            self.report = ReconcileReport.from_dict(d)

    def expect_start(self) -> None:
        """A live engine starts: entries wait for the first reconciliation."""
        self.blocks_entries = True

    def expect_pairs(self, symbols: list[str]) -> None:
        """Pairs added while trading live: their entries wait for a reconciliation that covers them."""
        self.new_pairs |= set(symbols)

    def blocks(self, symbol: str) -> bool:
        """Whether ``symbol`` may make no entry yet: the start's, or its own first, reconciliation pending."""
        return self.blocks_entries or symbol in self.new_pairs

    def waiting(self) -> set[str]:
        return set(self.report.waiting) if self.report is not None else set()

    # ------------------------------------------------------------------ applying a view

    def apply(self, view: VenueView, trigger: str) -> ReconcileReport:
        core = self.core
        now = core.clock.time_ms()
        report = ReconcileReport(now, trigger, ok=not view.error, error=view.error)
        symbols = sorted(set(view.symbols) | {s for s, p in core.portfolio.positions.items() if p.is_open and s in core.pairs})
        applied = {} if view.error else self._book_missed(view)
        previous = self.report
        for sym in symbols:
            check = self._compare(sym, view, applied.get(sym, []))
            old = previous.pair(sym) if previous is not None else None
            if old is not None and old.choice == "keep" and check.mismatches == old.mismatches:
                check.choice, check.choice_by, check.choice_ts = old.choice, old.choice_by, old.choice_ts
            elif old is not None and old.waiting and check.verdict == "unchecked":
                check = old  # still waiting: a pair in flight keeps its last verdict
            report.pairs.append(check)
        self._halt(report)
        self._store(report, previous)
        self.blocks_entries = False
        self.new_pairs -= set(view.symbols)
        return report

    def _book_missed(self, view: VenueView) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        ex = self.core.execution
        for fill in sorted(view.fills, key=lambda f: f.ts):
            what = ex.book_missed(fill)
            if what:
                line = f"missed fill booked: {fill.side} {fill.qty:g} @ {fill.price:.8g} ({what})"
                out.setdefault(fill.symbol, []).append(line)
                log.warning("%s - reconciliation: %s", fill.symbol, line)
        return out

    def _compare(self, sym: str, view: VenueView, applied: list[str]) -> PairCheck:
        core, ex = self.core, self.core.execution
        pos = core.portfolio.positions.get(sym)
        q = pos.qty if pos is not None and pos.is_open else 0.0
        market = view.markets.get(sym) or (core.cfg.pair(sym).market if sym in core.pairs else "spot")
        prot = ex.protect.order(sym)
        c = PairCheck(sym, market, book_qty=q, book_entry=pos.entry if q else 0.0, book_stop=pos.stop_loss if q else 0.0,
                      book_orders=[_describe(o) for o in ex.orders.values() if o.symbol == sym], applied=list(applied),
                      mode_before=str(core.pairs[sym].mode) if sym in core.pairs else "")  # fmt: skip
        if view.error:
            c.verdict = "error"
            c.mismatches.append(f"the exchange could not be asked: {view.error}")
            return c
        ours = [o for o in view.open_orders if o.symbol == sym and o.ours]
        c.venue_orders = [o.describe() for o in ours]
        c.foreign_orders = [f"{o.describe()}: not ours, left alone" for o in view.open_orders if o.symbol == sym and not o.ours]
        last = ex.last_fill.get(sym)
        in_flight = ex.open_order(sym) is not None or sym in ex.exits
        if in_flight or (last is not None and last.ts >= (view.started_ts or view.ts) - IN_FLIGHT_MS):
            c.verdict = "unchecked"
            c.notes.append("an order was in flight while the exchange was asked: compared next time")
            return c
        step = rules_for(sym, core.rules).amount_step
        held = {o.client_order_id for o in ex.orders.values() if o.symbol == sym}
        for o in ours:
            if o.client_order_id not in held:
                c.mismatches.append(f"an order of ours at the exchange the book does not hold: {o.describe()}")
        if market == "futures":
            pq, pe = view.positions.get(sym, (0.0, 0.0))
            c.venue_qty, c.venue_entry = pq, pe or None
            if abs(pq - q) > step / 2:
                c.mismatches.append(_position_gap(q, pq))
            elif q and pe and pos is not None and abs(pe / pos.entry - 1.0) > ENTRY_TOLERANCE:
                c.mismatches.append(f"entry {pe:.8g} at the exchange, {pos.entry:.8g} in the book "
                                    f"(beyond {ENTRY_TOLERANCE:.1%})")  # fmt: skip
        else:
            base = sym.split("/")[0]
            bal = view.balances.get(base)
            c.venue_qty = bal
            if bal is None:
                c.notes.append(f"the exchange listed no {base} balance")
            elif bal < q - step / 2:
                c.mismatches.append(f"the exchange holds {bal:g} {base}, the book {q:g}: "
                                    f"{q - bal:g} sold or moved outside the bot")  # fmt: skip
            elif bal > q + step / 2:
                c.notes.append(f"{bal - q:g} {base} held outside the bot: not counted, never traded")
        stop_rests = any(o.is_stop for o in ours)
        if not c.mismatches and ex.protect.enabled and q and pos is not None and pos.stop_loss and not ex.is_dust(pos) \
                and not stop_rests:  # fmt: skip
            c.applied.append(f"protective stop at {pos.stop_loss:.8g} missing at the exchange: placed again "
                             "(a stop only reduces risk)")  # fmt: skip
            if prot is not None:
                ex.client.lookup(prot)  # the book's is gone: its lookup says so, then it is placed again
            else:
                ex.protect.sync(sym)
        c.verdict = "mismatch" if c.mismatches else "applied" if c.applied else "ok"
        return c

    def _halt(self, report: ReconcileReport) -> None:
        waiting = {p.symbol: p for p in report.pairs if p.waiting and p.symbol in self.core.pairs}
        halt = {s: PairMode.HALTED for s, p in waiting.items() if self.core.pairs[s].mode is not PairMode.HALTED}
        if halt:
            self.core.set_modes(halt, "reconciliation: " + "; ".join(f"{s}: {waiting[s].mismatches[0]}" for s in halt))
            self.halted_here |= set(halt)

    def _store(self, report: ReconcileReport, previous: ReconcileReport | None) -> None:
        core = self.core
        quiet = report.trigger == "periodic" and not report.worth_showing and previous is not None \
            and not previous.worth_showing  # fmt: skip
        self.report = report
        if not quiet:  # a periodic check that found all well after one that did is not a new row
            self.report_id = core.journal.record_reconciliation(report.to_dict())
        n_wait = len(report.waiting)
        summary = (f"reconciliation ({report.trigger}): " + (f"FAILED: {report.error}; every pair HALTED" if report.error
                   else f"{n_wait} pair(s) HALTED until the operator chooses" if n_wait
                   else f"{sum(p.verdict == 'applied' for p in report.pairs)} pair(s) applied, the rest agree"))  # fmt: skip
        if not quiet:
            level = "error" if report.error or n_wait else "info"
            core.notice("reconcile", level, summary)
        (log.warning if n_wait or report.error else log.info)("%s", summary)
        core.sink.emit(Reconciled(report))

    # ------------------------------------------------------------------ the operator's choice

    def choose(self, symbol: str, choice: str, who: str) -> CommandResult:
        from engine.core.commands import CommandResult

        core = self.core
        check = self.report.pair(symbol) if self.report is not None else None
        if check is None or check.verdict not in ("mismatch", "error"):
            return CommandResult(False, f"{symbol}: nothing to settle (no mismatch in the last reconciliation)")
        if check.verdict == "error" and choice != "keep":
            return CommandResult(False, f"{symbol}: the exchange could not be asked; ask again (r) before adopting")
        now = core.clock.time_ms()
        check.choice, check.choice_by, check.choice_ts = choice, who or "operator", now
        msg = f"{symbol}: {choice} by {check.choice_by}"
        if choice in ("adopt", "flatten"):
            done = self._adopt(check)
            msg += f" ({done})"
            if choice == "flatten":
                outcome = core.close_position(symbol, "reconcile-flatten", f"{symbol}|reconcile-flatten|{now}", operator=True)
                msg += f"; flatten: {outcome}"
            mode = PairMode(check.mode_before) if check.mode_before in PairMode.__members__.values() else PairMode.ACTIVE
            # only a halt this reconciliation made is lifted: a kill since (or a restart) stays
            # HALTED until the operator re-arms
            if symbol in self.halted_here and core.pairs[symbol].mode is PairMode.HALTED and mode is not PairMode.HALTED:
                core.set_modes({symbol: mode}, f"reconciliation settled: {choice}")
            self.halted_here.discard(symbol)
        assert self.report is not None
        self.report_id = core.journal.record_reconciliation(self.report.to_dict(), self.report_id)
        core.notice("reconcile", "info", msg)
        core.sink.emit(Reconciled(self.report))
        return CommandResult(True, msg)

    def _adopt(self, c: PairCheck) -> str:
        """The book takes the exchange's quantity (and entry, futures) for ``c.symbol``."""
        core, ex = self.core, self.core.execution
        pos = core.portfolio.positions.get(c.symbol)
        q = pos.qty if pos is not None and pos.is_open else 0.0
        target = c.venue_qty if c.venue_qty is not None else q
        if c.market != "futures":
            target = min(target, q)  # coins held outside the bot are never adopted
        diff = target - q
        bid, ask = core.quote(c.symbol)
        mark = (bid + ask) / 2 if bid > 0 and ask > 0 else (c.venue_entry or (pos.entry if pos is not None else 0.0))
        parts = []
        if abs(diff) > 0.0:
            price = c.venue_entry if (q == 0.0 and c.venue_entry) else mark
            ex.book_adjustment(c.symbol, Side.BUY if diff > 0 else Side.SELL, abs(diff), price, "reconcile-adopt")
            parts.append(f"book {q:g} → {target:g} at {price:.8g}")
        pos = core.portfolio.positions.get(c.symbol)
        if c.market == "futures" and pos is not None and pos.is_open and c.venue_entry and pos.entry != c.venue_entry:
            pos.entry = c.venue_entry
            core.journal.record_position(pos)
            parts.append(f"entry → {c.venue_entry:.8g}")
        core._changed(c.symbol)
        return ", ".join(parts) or "nothing to change in the book"


def _describe(o: object) -> str:
    kind = getattr(o, "order_type", "market")
    trig = f" stop {o.trigger:.8g}" if kind == "stop" else ""  # type: ignore[attr-defined]
    return f"{o.side} {o.qty:g} {kind}{trig} {o.status} ({o.client_order_id})"  # type: ignore[attr-defined]


def _position_gap(book: float, venue: float) -> str:
    if venue == 0.0:
        return f"the exchange has no position, the book holds {book:+g}: closed outside the bot?"
    if book == 0.0:
        return f"the exchange holds a position of {venue:+g}, the book none: never adopted silently"
    if (venue > 0) != (book > 0):
        return f"the exchange's position {venue:+g} is opposite to the book's {book:+g}"
    if abs(venue) > abs(book):
        return f"the exchange's position {venue:+g} is larger than the book's {book:+g}: never adopted silently"
    return f"the exchange's position {venue:+g} is smaller than the book's {book:+g}: reduced outside the bot?"
