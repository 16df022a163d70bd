"""The trades screen's drawing: what the round trips cover, their performance, and each trip.

Owns ``coverage_text`` (how many round trips, from which fills, since when; what was left
out), ``performance_table`` (per pair and in total: trades, win rate, net PnL after fees,
profit factor, average hold, fees; formatted as the backtest report formats them) and
``trips_table`` (newest exit first: exit time, pair, side, qty, entry, exit, hold, PnL after
fees, why it closed). Prices use the console's ``fmt_price``.
"""

from __future__ import annotations

import time

from rich.style import Style
from rich.table import Table
from rich.text import Text

from console.reasons import exit_label
from console.roundtrips import RoundTrips
from console.widgets.palette import Palette, fmt_price, fmt_qty
from engine.backtest.metrics import Figures
from engine.backtest.report import duration, money, pct, ratio
from engine.backtest.result import Trade

WIDE = 100  # from this width the tables show every column


def coverage_text(trips: RoundTrips, pal: Palette) -> Text:
    out = Text()
    n = len(trips.trades)
    out.append("Trades", pal.accent)
    out.append(f"  {n} closed", Style(bold=True))
    if trips.open:
        out.append(f" · {len(trips.open)} open ({', '.join(sorted(trips.open))})", pal.muted)
    if trips.since_ms is not None:
        since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(trips.since_ms / 1000.0))
        out.append(f" · from {trips.fills + trips.skipped} fills since {since}", pal.muted)
    else:
        out.append(" · no fill yet", pal.muted)
    if trips.skipped:
        k = trips.skipped
        out.append(
            f" · {k} fill{'s' * (k != 1)} left out (closing positions opened before them)",
            pal.warn,
        )
    return out


def performance_table(total: Figures, pairs: list[Figures], pal: Palette, width: int) -> Table:
    wide = width >= WIDE
    table = Table(box=None, expand=False, padding=(0, 2, 0, 0), header_style=pal.muted)
    table.add_column("pair", no_wrap=True)
    for name in ("trades", "win", "net PnL", "PF", "avg hold", "fees"):
        table.add_column(name, justify="right", no_wrap=True)
    if wide:
        table.add_column("best", justify="right", no_wrap=True)
        table.add_column("worst", justify="right", no_wrap=True)
    for f in [*pairs, total]:
        label = "total" if f.scope == "portfolio" else f.scope
        row = [
            Text(label, Style(bold=True) if f.scope == "portfolio" else pal.text),
            str(f.trades),
            pct(f.win_rate, digits=0),
            Text(money(f.net_pnl) if f.trades else "—", pal.sign(f.net_pnl)),
            ratio(f.profit_factor),
            duration(f.avg_hold_ms),
            money(f.fees, sign=False) if f.trades else "—",
        ]
        if wide:
            row += [money(f.best), money(f.worst)]
        table.add_row(*row)
    return table


def trips_table(trades: list[Trade], pal: Palette, width: int) -> Table:
    """Newest exit first."""
    wide = width >= WIDE
    table = Table(box=None, expand=False, padding=(0, 1, 0, 0), header_style=pal.muted)
    table.add_column("exit (UTC)", no_wrap=True)
    table.add_column("pair", no_wrap=True)
    table.add_column("side", no_wrap=True)
    if wide:
        table.add_column("qty", justify="right", no_wrap=True)
    table.add_column("entry", justify="right", no_wrap=True)
    table.add_column("exit", justify="right", no_wrap=True)
    table.add_column("hold", justify="right", no_wrap=True)
    table.add_column("PnL", justify="right", no_wrap=True)
    table.add_column("why", no_wrap=True, overflow="ellipsis")
    when = "%m-%d %H:%M:%S" if wide else "%H:%M:%S"
    for t in reversed(trades):
        row: list[str | Text] = [
            time.strftime(when, time.gmtime(t.exit_ts / 1000.0)),
            t.symbol,
            Text(t.side if wide else t.side[0].upper(), pal.up if t.side == "long" else pal.down),
        ]
        if wide:
            row.append(fmt_qty(t.qty))
        row += [
            fmt_price(t.entry_price),
            fmt_price(t.exit_price),
            duration(t.exit_ts - t.entry_ts),
            Text(money(t.pnl), pal.sign(t.pnl) + Style(bold=True)),
            exit_label(t.exit_reason),
        ]
        table.add_row(*row)
    return table
