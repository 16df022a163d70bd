"""Portfolio accounting: cash, net positions, realised PnL, fees, exposure and daily PnL.

Owns ``Portfolio``. Cash-flow accounting with signed quantities (qty > 0 long, < 0 short):
a buy of q at p costs ``q*p + fee`` in cash, a sell receives ``q*p - fee``. Position entry is
the average cost; reducing a position realises ``closed_qty * (price - entry)`` (mirrored for
shorts). So at every step, for any marks::

    equity == cash + Σ qty*mark == capital + realised - fees + unrealised

Rebuilding after a restart is replaying the stored fills through ``apply_fill``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from engine.core.models import Fill, Position, Side

logger = logging.getLogger(__name__)

MS_PER_DAY: Final = 86_400_000
QTY_DECIMALS: Final = 12  # net quantities are rounded here so 0.3 - 0.1 - 0.2 is flat, not 5.5e-17


class Portfolio:
    """The paper (or mirrored live) account of the engine."""

    def __init__(self, capital_usd: float, day_start_hour: int = 0) -> None:
        self.capital = float(capital_usd)
        self._day_offset_ms = int(day_start_hour) * 3_600_000  # the trading day starts this long after 00:00 UTC
        self.cash = float(capital_usd)
        self.positions: dict[str, Position] = {}
        self.realised = 0.0  # fees excluded
        self.fees = 0.0
        self.fills = 0
        self._day: int | None = None  # trading day number of the last mark_day
        self._day_start_equity = float(capital_usd)

    # ---- fills -------------------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> Position:
        """Book one fill: open, add (average entry), reduce, close or flip; return the position."""
        if not (fill.qty > 0 and fill.price > 0 and fill.fee >= 0):
            raise ValueError(
                f"{fill.symbol}: fill {fill.fill_id} has qty {fill.qty!r}, price {fill.price!r}, "
                f"fee {fill.fee!r}: qty and price must be positive, fee not negative"
            )
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        pos = self.positions.get(fill.symbol)
        if pos is None:
            pos = self.positions[fill.symbol] = Position(fill.symbol)

        self.cash -= signed * fill.price + fill.fee
        self.fees += fill.fee
        pos.fees += fill.fee
        self.fills += 1

        old = pos.qty
        new = round(old + signed, QTY_DECIMALS)
        if old == 0.0:
            pos.entry = fill.price
            pos.opened_ts = fill.ts
        elif (old > 0) == (signed > 0):
            # adding: the entry becomes the quantity-weighted average cost
            pos.entry = (abs(old) * pos.entry + fill.qty * fill.price) / (abs(old) + fill.qty)
        else:
            closed = min(fill.qty, abs(old))
            pnl = closed * (fill.price - pos.entry) * (1.0 if old > 0 else -1.0)
            pos.realised += pnl
            self.realised += pnl
            if new == 0.0:
                pos.entry = 0.0
                pos.stop_loss = pos.take_profit = 0.0
                pos.opened_ts = 0
            elif (new > 0) != (old > 0):
                # flipped through zero: the remainder is a fresh position at this price
                pos.entry = fill.price
                pos.opened_ts = fill.ts
                pos.stop_loss = pos.take_profit = 0.0
        pos.qty = new
        return pos

    # ---- queries -----------------------------------------------------------------------

    def valuation(self, marks: Mapping[str, float]) -> tuple[float, float, float]:
        """``(equity, exposure, unrealised)`` in one pass over the open positions, each mark
        the pair's (no mark yet, after a restart: the entry). The same sums, in the same
        order, as ``equity``, ``exposure`` and ``unrealised`` (hot: the timer values the
        account every time; a dict is read with the dict's own primitives)."""
        d: dict[str, float] = marks if isinstance(marks, dict) else dict(marks)
        held = 0.0
        exposure = 0.0
        unrealised = 0.0
        for p in self.positions.values():
            qty = p.qty
            if qty != 0.0:
                # (a float read with a float default: native arithmetic below; an optional
                # narrowed in a conditional expression stayed an object, every operation generic)
                mark = d.get(p.symbol, 0.0)
                if not mark > 0.0:  # no mark (or not a positive one: NaN too): the entry
                    mark = p.entry
                held += qty * mark
                exposure += abs(qty) * mark
                unrealised += qty * (mark - p.entry)
        return self.cash + held, exposure, unrealised

    def unrealised(self, marks: Mapping[str, float]) -> float:
        return self.valuation(marks)[2]

    def equity(self, marks: Mapping[str, float]) -> float:
        return self.valuation(marks)[0]

    def exposure(self, marks: Mapping[str, float]) -> float:
        return self.valuation(marks)[1]

    # ---- daily PnL ---------------------------------------------------------------------

    def _day_of(self, ts_ms: int) -> int:
        return (ts_ms - self._day_offset_ms) // MS_PER_DAY

    def starts_day(self, ts_ms: int) -> bool:
        """Would ``mark_day`` at ``ts_ms`` start a new trading day? (Then it needs the equity.)"""
        return self._day is None or self._day_of(ts_ms) > self._day

    def mark_day(self, ts_ms: int, equity: float) -> bool:
        """Remember equity at the first mark of each trading day (00:00 UTC plus the start
        hour); True when a new day started."""
        day = self._day_of(ts_ms)
        if self._day is None or day > self._day:
            self._day = day
            self._day_start_equity = equity
            return True
        return False

    def restore_day(self, start_ts: int, equity: float) -> bool:
        """The day's start kept in the book (a restart): True when ``start_ts`` begins a trading
        day of this start hour, so the day's PnL goes on from that equity; False (nothing
        changed) when the start hour has changed since, and the next mark starts a new day."""
        if (start_ts - self._day_offset_ms) % MS_PER_DAY:
            return False
        self._day = self._day_of(start_ts)
        self._day_start_equity = float(equity)
        return True

    @property
    def day_start_ts(self) -> int:
        """When the current trading day began (ms); 0 before the first mark."""
        return 0 if self._day is None else self._day * MS_PER_DAY + self._day_offset_ms

    @property
    def day_start_equity(self) -> float:
        return self._day_start_equity

    def daily_pnl(self, current: float | Mapping[str, float]) -> float:
        """Equity now (given, or computed from marks) minus equity at the start of the trading day.

        Before the first ``mark_day`` the day starts at the capital.
        """
        equity = self.equity(current) if isinstance(current, Mapping) else float(current)
        return equity - self._day_start_equity

    def total_pnl(self, unrealised: float | Mapping[str, float]) -> float:
        """Everything the account made since it was opened: realised - fees + unrealised
        (equal to equity minus the capital the account was opened with). ``unrealised`` given,
        or computed from marks."""
        u = self.unrealised(unrealised) if isinstance(unrealised, Mapping) else float(unrealised)
        return self.realised - self.fees + u
