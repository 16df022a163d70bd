"""What the core keeps in the book besides positions and modes, so a restart (a crash included)
goes on where it stopped: the operator's global stop of new entries, and the trading day's
start equity (the day's PnL).

Owns ``EntriesGate`` (new entries allowed, or stopped on every pair until the operator resumes
them: a flatten-all stops them, Freqtrade's ``/stopentry`` lesson), ``restore`` (both, from the
journal, at start) and ``mark_day`` (the first mark of a trading day, journaled). The trading
day starts at the safe list's ``portfolio.day_start_hour_utc`` (0: midnight UTC).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.core.trader import TradingCore

log = logging.getLogger("engine")


@dataclass(slots=True)
class EntriesGate:
    """New entries on every pair: allowed, or stopped (``reason``: what stopped them, since ``ts``)."""

    stopped: bool = False
    reason: str = ""
    ts: int = 0

    def refusal(self) -> str:
        """The risk check's reason while stopped; "" while entries are allowed."""
        if not self.stopped:
            return ""
        why = f" ({self.reason})" if self.reason else ""
        return f"new entries stopped by the operator{why}: resume entries first"


def restore(core: TradingCore) -> None:
    """The entries gate and the trading day's start from the book (a new book: neither)."""
    row = core.journal.load_entries()
    core.entries = EntriesGate(*row) if row is not None else EntriesGate()
    if core.entries.stopped:
        log.warning("new entries are stopped (%s) until the operator resumes them", core.entries.reason)
    day = core.journal.load_day_start()
    if day is not None:
        start_ts, equity = day
        if core.portfolio.restore_day(start_ts, equity):
            log.info("trading day since %d: start equity %.2f (from the book)", start_ts, equity)
        else:
            log.info("the trading day's start hour changed: a new day starts at the next mark")


def mark_day(core: TradingCore) -> None:
    """At the first mark of a trading day, take the equity and keep it in the book."""
    pf = core.portfolio
    ts = core.clock.time_ms()
    if not pf.starts_day(ts):  # the equity is read only when a day starts
        return
    equity = pf.equity(core.marks())
    if not math.isfinite(equity):  # never in practice (believed marks): try again at the next timer
        log.warning("trading day start at %d not marked: equity %r", ts, equity)
        return
    pf.mark_day(ts, equity)
    core.journal.record_day_start(pf.day_start_ts, equity, ts)
