"""The legend of the help screen: every abbreviation, badge and flag the screens show.

Owns ``LEGEND`` (term, meaning), grouped as the screens group them, and ``legend_table``. A
new abbreviation on a screen gets its line here (tests/test_settings.py checks the help shows
each of them).
"""

from __future__ import annotations

from rich.table import Table

LEGEND: tuple[tuple[str, str], ...] = (
    ("ACTIVE", "trading: entries and exits"),
    ("PAUSED", "no new entries; stops still run (p resumes)"),
    ("REDUCING", "exits only until resumed (palette: Reduce-only)"),
    ("HALTED", "kill switch or a mismatch: no trading; r re-arms"),
    ("STALE", "no tick for stale_after_s: no entries until one"),
    ("DEMO PAPER LIVE", "simulated market · paper fills · real orders"),
    ("RSI", "Relative Strength Index 0–100; amber ≥70 or ≤30"),
    ("BB", "place in the Bollinger Bands: 0 lower, 1 upper"),
    ("ATR", "Average True Range: a candle's typical range"),
    ("MA live", "fast / slow moving averages, forming candle"),
    ("CHG ▲▼", "the last price against 24 h ago"),
    ("bid ask spr bp", "best bid, best ask, spread; bp = 0.01 %"),
    ("age", "time since the pair's last tick"),
    ("Signal", "BUY/SELL/HOLD and confidence at the last close"),
    ("APPROVED REJECTED", "the last decision after the risk checks"),
    ("Pos stop tp", "LONG/SHORT qty @ entry; stop loss; take-profit"),
    ("PnL uPnL", "profit and loss; u = unrealised (open position)"),
    ("PF", "profit factor: gross profit / gross loss (T)"),
    ("Eq Day Tot", "equity; PnL of the trading day · since the start"),
    ("NO ENTRIES", "new entries stopped on every pair (F or P): E resumes"),
    ("Exposure Exp", "open notional / the portfolio's exposure cap"),
    ("Correlated Corr", "open in the largest correlated cluster / cap"),
    ("ρ", "correlation of returns; amber: linked (a cluster)"),
    ("feed eng r", "feed and engine processes; r N = reconnects"),
    ("warm silent", "loading history · no heartbeat for N s"),
    ("NOSTR BAN", "live account stream down · exchange ban"),
)


def legend_table() -> Table:
    table = Table(
        title="On the screens", box=None, expand=True, show_header=False, padding=(0, 1)
    )
    table.add_column("Term", style="bold", no_wrap=True)
    table.add_column("Means")
    for term, meaning in LEGEND:
        table.add_row(term, meaning)
    return table
