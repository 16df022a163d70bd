"""The terminal summary of a backtest: plain fixed-width text, readable at 80 columns.

Owns ``summary_text`` (the whole summary: the run, a portfolio block, a per-pair table and the
"why not traded" ledger) and the formatters ``html.py`` shares (``money``, ``pct``, ``ratio``,
``duration``, ``when``). A table wider than the width is split into several tables that each
repeat the pair column, so no line is ever longer than ``width``. Colours (ANSI green/red on
signed figures) only with ``color=True``.
"""

from __future__ import annotations

import math
import re
import textwrap
from datetime import UTC, datetime

from engine.backtest.metrics import Figures, Ledger, LedgerRow, Summary, compute
from engine.backtest.result import BacktestResult

DASH = "—"  # undefined
INF = "∞"
LABEL_MAX = 16  # the pair column is cut to this (with "…")


# ---- formatters -------------------------------------------------------------------------------


def _special(x: float | None) -> str | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    if math.isinf(x):
        return INF if x > 0 else "-" + INF
    return None


def money(x: float | None, sign: bool = True) -> str:
    s = _special(x)
    if s is not None:
        return s
    if round(x, 2) == 0:  # type: ignore[arg-type]
        return "0.00"
    return f"{x:+,.2f}" if sign else f"{x:,.2f}"


def pct(x: float | None, sign: bool = False, digits: int = 2) -> str:
    """A fraction as a percentage."""
    s = _special(x)
    if s is not None:
        return s
    if round(x * 100, digits) == 0:  # type: ignore[operator]
        return f"{0:.{digits}f}%"
    return f"{x * 100:+.{digits}f}%" if sign else f"{x * 100:.{digits}f}%"  # type: ignore[operator]


def ratio(x: float | None, sign: bool = False) -> str:
    s = _special(x)
    return s if s is not None else (f"{x:+.2f}" if sign else f"{x:.2f}")


def duration(ms: float | None) -> str:
    if ms is None:
        return DASH
    s = round(ms / 1000)
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3_600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d}d {h:02d}h"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {sec:02d}s" if m else f"{sec}s"


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- layout ---------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]], width: int = 80) -> list[str]:
    """Column 0 left-aligned (cut to LABEL_MAX), the rest right-aligned; split by columns into
    as many tables as needed to stay within ``width``, each repeating column 0."""
    rows = [[cut(r[0], LABEL_MAX), *r[1:]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    groups: list[list[int]] = [[]]
    used = 2 + widths[0]
    for i in range(1, len(headers)):
        cell = 2 + min(widths[i], width - 4 - widths[0])
        if groups[-1] and used + cell > width:
            groups.append([])
            used = 2 + widths[0]
        groups[-1].append(i)
        used += cell
    out: list[str] = []
    for g in groups:
        if out:
            out.append("")

        def line(r: list[str], g: list[int] = g) -> str:
            cells = [cut(r[i], width - 4 - widths[0]).rjust(widths[i]) for i in g]
            return "  " + "  ".join([cut(r[0], widths[0]).ljust(widths[0]), *cells])

        out.append(line(headers).rstrip())
        out.append("  " + "-" * (len(out[-1]) - 2))
        out.extend(line(r).rstrip() for r in rows)
    return [x[:width] for x in out]


def _pairs_block(items: list[tuple[str, str]], width: int) -> list[str]:
    """Label/value items two to a line; a pair that does not fit takes two lines."""
    lw = max(len(k) for k, _ in items)
    col = (width - 4) // 2
    out = []
    padded = [*items, ("", "")] if len(items) % 2 else items
    for a, b in zip(padded[::2], padded[1::2], strict=True):
        cells = [f"{k.ljust(lw)} {v}" if k else "" for k, v in (a, b)]
        if len(cells[0]) <= col and len(cells[1]) <= col:
            out.append(("  " + cells[0].ljust(col) + "  " + cells[1]).rstrip())
        else:
            out += [cut("  " + c, width) for c in cells if c]
    return out


def portfolio_items(f: Figures) -> list[tuple[str, str]]:
    """The portfolio block's label/value pairs, in reading order (two to a line)."""
    dd = f.drawdown
    dd_state = "recovered" if dd.recovery_ts is not None else "not recovered"
    r = DASH
    if f.expectancy_r is not None:
        r = f"{f.expectancy_r:+.2f}R ({f.r_trades} of {f.trades})"
    return [
        ("Net PnL", f"{money(f.net_pnl)} ({pct(f.total_return, True)})"),
        ("Final equity", money(f.end_equity, sign=False)),
        ("Trades", str(f.trades)),
        ("Win rate", pct(f.win_rate)),
        ("Won / lost", f"{f.wins} / {f.losses}"),
        ("Fees", money(f.fees, sign=False)),
        ("Gross profit", money(f.gross_profit)),
        ("Gross loss", money(-f.gross_loss)),
        ("Profit factor", ratio(f.profit_factor)),
        ("Expectancy", f"{money(f.expectancy)} / trade"),
        ("Avg win", money(f.avg_win)),
        ("Avg loss", money(f.avg_loss)),
        ("Best trade", money(f.best)),
        ("Worst trade", money(f.worst)),
        ("Expectancy R", r),
        ("Avg hold", duration(f.avg_hold_ms)),
        ("Max drawdown", f"{money(-dd.usd)} ({pct(-dd.pct, True)})"),
        ("DD duration", f"{duration(dd.duration_ms)} {dd_state}" if dd.usd else DASH),
        ("CAGR", pct(f.cagr, True)),
        ("Calmar", ratio(f.calmar)),
        ("Sharpe", ratio(f.sharpe)),
        ("Sortino", ratio(f.sortino)),
        ("Exposure", pct(f.exposure)),
        ("Longest DD", duration(dd.longest_ms) if dd.longest_ms else DASH),
    ]


PAIR_HEADERS = [
    "Pair", "Trades", "Win%", "Net PnL", "PF", "Exp/trade", "Max DD", "DD time",
    "CAGR", "Sharpe", "Sortino", "Calmar", "Exposure", "Avg hold", "Fees",
]  # fmt: skip


def pair_row(f: Figures) -> list[str]:
    return [
        f.scope,
        str(f.trades),
        pct(f.win_rate, digits=1),
        money(f.net_pnl),
        ratio(f.profit_factor),
        money(f.expectancy),
        pct(-f.drawdown.pct, True),
        duration(f.drawdown.duration_ms) if f.drawdown.usd else DASH,
        pct(f.cagr, True, digits=1),
        ratio(f.sharpe),
        ratio(f.sortino),
        ratio(f.calmar),
        pct(f.exposure, digits=1),
        duration(f.avg_hold_ms),
        money(f.fees, sign=False),
    ]


def ledger_tables(led: Ledger) -> list[tuple[list[str], list[list[str]]]]:
    """Two tables: per pair (decided, approved, refused, the check refusing most), then per
    check (total first, then each pair)."""

    def n(x: int | None) -> str:
        return DASH if x is None else str(x)

    def top(r: LedgerRow) -> str:
        best = max(led.checks, key=lambda c: r.by_check[c], default="")
        return best if best and r.by_check[best] else DASH

    scopes = [*led.rows, led.total]
    first = (
        ["Pair", "Decided", "Approved", "Refused", "Most refused by"],
        [[r.scope, n(r.decided), n(r.approved), str(r.refused), top(r)] for r in scopes],
    )
    second = (
        ["Refused by", "total", *(r.scope for r in led.rows)],
        [
            [c, str(led.total.by_check[c]), *(str(r.by_check[c]) for r in led.rows)]
            for c in led.checks
        ],
    )
    return [first, second] if led.checks else [first]


_SIGNED = re.compile(r"(?<![\w.,:])([+-](?:\d[\d,]*(?:\.\d+)?|∞)[%R]?)")


def _colour(line: str) -> str:
    def paint(m: re.Match[str]) -> str:
        v = m.group(1)
        if re.fullmatch(r"[+-][0.,]*[%R]?", v):
            return v
        return f"\x1b[{32 if v[0] == '+' else 31}m{v}\x1b[0m"

    return _SIGNED.sub(paint, line)


def summary_text(
    result: BacktestResult, *, color: bool = False, width: int = 80, summary: Summary | None = None
) -> str:
    """The terminal summary; ``summary``: figures already computed by ``metrics.compute``."""
    s = summary or compute(result)
    m = result.meta
    head = [
        f"Backtest: {', '.join(m.pairs) or DASH} ({m.timeframe})",
        f"{when(m.start_ms)} → {when(m.end_ms)} UTC, {s.portfolio.days:.1f} days, "
        f"{m.candles:,} candles",
        f"Capital {money(m.capital, sign=False)} USD, fee {m.fee_rate * 100:.3f}%, "
        f"slippage {m.slippage_bps:g} bps"
        + (f", run in {m.elapsed_s:.1f} s" if m.elapsed_s else ""),
    ]
    out = [w for h in head for w in textwrap.wrap(h, width, subsequent_indent="  ")]
    out += ["", "Portfolio (marked equity)", *_pairs_block(portfolio_items(s.portfolio), width)]
    out += ["", "Per pair (drawdown and ratios on closed trades)"]
    rows = [pair_row(f) for f in s.pairs] + [pair_row(s.portfolio)]
    rows[-1][0] = "portfolio"
    out += table(PAIR_HEADERS, rows, width)
    out += ["", "Why not traded: refusals by the first check that refused"]
    for i, (headers, lrows) in enumerate(ledger_tables(s.ledger)):
        out += [""] * bool(i) + table(headers, lrows, width)
    if not s.ledger.total.refused:
        out.append("  No signal was refused.")
    notes = (
        "Sharpe and Sortino: daily returns, x sqrt(365), risk-free 0. Expectancy R: over "
        "the trades whose initial stop is known (n of all). Undefined: —; no losing trade "
        "(or day): ∞."
    )
    out += ["", *textwrap.wrap(notes, width)]
    text = "\n".join(out) + "\n"
    return "\n".join(_colour(x) for x in text.split("\n")) if color else text
