"""The app's part in reconciliation: opening the screen, and the operator's choices as commands.

Owns ``ReconcileActions``, a base of ``OperatorActions``. ``R`` on the board opens the
``ReconcileScreen``; the app's repaint timer calls ``offer_reconcile``, which opens it by
itself once per new report that has pairs waiting for a choice (at attach, from the snapshot's
report, and when a new one arrives), but never over a dialog or the help: it waits for them to
close. A choice (adopt, flatten, keep) asks a confirm (``y``), then goes to the engine as the
``reconcile`` command with the pair, the choice and who made it (``user@host``, recorded in the
book); its ack shows as every command's does, and in the pair's block.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable
from typing import Any

from textual.app import App

from console.model import Ack, ConsoleModel
from console.reconcile_state import DIRTY_RECONCILE
from console.reconcile_text import fmt_amount, fmt_price
from console.screens.detail import PairDetailScreen
from console.screens.main import MainScreen
from console.screens.reconcile import ReconcileScreen
from engine.core.reconcile_view import PairCheck

WHO_MAX = 128  # the wire's limit (engine/wire/commands.py)


def operator() -> str:
    """Who makes a choice, as the book records it: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:WHO_MAX]


def confirm_text(p: PairCheck, choice: str, who: str) -> tuple[str, str]:
    """The confirm dialog's title and body for ``choice`` on pair ``p``: what the book will
    hold (the engine's rule: spot coins held outside the bot are never adopted)."""
    venue = p.venue_qty if p.venue_qty is not None else p.book_qty
    target = venue if p.market == "futures" else min(venue, p.book_qty)
    book = fmt_amount(p.book_qty) + (f" @ {fmt_price(p.book_entry)}" if p.book_entry else "")
    entry = p.venue_entry if p.market == "futures" else None
    after = fmt_amount(target) + (f" @ {fmt_price(entry)}" if entry else "")
    takes = (
        f"the book's {book} becomes {after} (booked at the mark)"
        if target != p.book_qty or (entry and entry != p.book_entry)
        else f"the book keeps {book}"
        + (" (coins held outside the bot are never adopted)" if venue > p.book_qty else "")
    )
    before = p.mode_before or "ACTIVE"
    back = (
        "stays HALTED (it was before the check: re-arm with r)"
        if before == "HALTED"
        else f"returns to {before}"
    )
    record = f" Recorded in the book as {who}."
    if choice == "adopt":
        return (
            f"Adopt the exchange's state for {p.symbol}?",
            f"The book takes the exchange's state: {takes}; the pair {back}.{record}",
        )
    if choice == "flatten":
        return (
            f"Flatten {p.symbol} at the exchange?",
            f"The book takes the exchange's state ({takes}), then the whole position is closed "
            f"at market on the exchange; the pair {back}.{record}",
        )
    return (
        f"Keep {p.symbol} halted?",
        "The mismatch is acknowledged and the pair stays HALTED; re-arm it later (r on the "
        f"board) once it is settled at the exchange.{record}",
    )


class ReconcileActions(App[None]):
    # set by MultiparApp.__init__ / OperatorActions
    model: ConsoleModel
    wall: Callable[[], float]
    _command: Callable[..., Any]
    _confirm: Callable[..., None]

    def action_show_reconcile(self) -> None:
        """R: the reconciliation screen (the one open already, if any)."""
        self.model.reconcile.mark_offered()
        if isinstance(self.screen, ReconcileScreen):
            return
        if any(isinstance(s, ReconcileScreen) for s in self.screen_stack):
            self.notify("the reconciliation screen is open below", markup=False)
            return
        self.push_screen(ReconcileScreen(self.model, self.wall))

    def offer_reconcile(self) -> None:
        """Each frame: a new report with waiting pairs opens the screen, once."""
        rs = self.model.reconcile
        if not rs.offer_due:
            return
        if any(isinstance(s, ReconcileScreen) for s in self.screen_stack):
            rs.mark_offered()  # already open: it shows the new report
            return
        if isinstance(self.screen, MainScreen | PairDetailScreen):  # not over a dialog or help
            self.action_show_reconcile()

    def choose_reconcile(self, check: PairCheck, choice: str) -> None:
        """Confirm ``choice`` for ``check``'s pair, then send it."""
        who = operator()
        title, body = confirm_text(check, choice, who)
        self._confirm(
            f"reconcile_{choice}",
            title,
            body,
            lambda: self._send_reconcile(check.symbol, choice=choice, who=who),
            danger=choice == "flatten",
        )

    def recheck_reconcile(self) -> None:
        """r on the screen: ask the engine for a fresh reconciliation (no confirm: it only
        asks the exchange)."""
        self._send_reconcile(None)

    def _send_reconcile(self, symbol: str | None, **extra: str) -> None:
        key = symbol or ""
        acks = self.model.reconcile.acks
        what = extra.get("choice", "re-check")
        acks[key] = f"{what}: sent, waiting for the engine's answer…"
        self.model.dirty.add(DIRTY_RECONCILE)

        async def run() -> None:
            t0 = time.perf_counter()
            ack: Ack = await self._command("reconcile", symbol, extra)
            elapsed = ack.elapsed_ms or (time.perf_counter() - t0) * 1000.0
            verdict = "ok" if ack.ok else "FAILED"
            acks[key] = f"{what}: {verdict} ({elapsed:.0f} ms) — {ack.message}"
            self.model.dirty.add(DIRTY_RECONCILE)

        self.run_worker(
            run(),
            name=f"command:reconcile:{key}",
            group="commands",
            exclusive=False,
            description=f"send reconcile {key} {what} to the engine and show its ack",
            exit_on_error=False,
        )
