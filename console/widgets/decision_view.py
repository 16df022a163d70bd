"""One decision in full: why it was taken or refused, as the engine recorded it.

Owns ``decision_renderable``: the decision's verdict and what it was (an entry, or which exit:
stop, take-profit, signal, flatten, kill, reconcile-flatten, the exchange's protective stop),
its size and price, the strategy's signal (type, confidence, the closed candle it came from,
entry, stop, target) and reasoning, and every risk check the engine recorded with its figures
(approved or refused and why), wrapped on word boundaries so a number is never cut. Prices
in the engine's text are shown with the console's price format (``console/reasons.py``).
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from console.reasons import action_words, exit_label, exit_reason, fmt_reason
from console.widgets.palette import Palette, fmt_price, fmt_qty, fmt_usd
from engine.backtest.metrics import check_label
from engine.core.risk import CHECKS
from engine.wire.schema import DecisionMsg

# What each exit the core makes means, in the operator's words.
EXIT_WHY = {
    "signal": "the strategy's exit signal on a closed candle",
    "stop": "the price crossed the position's stop loss (checked on every tick)",
    "exchange_stop": "the protective stop resting at the exchange filled",
    "take_profit": "the price reached the position's take-profit (checked on every tick)",
    "flatten": "the operator flattened this pair (f)",
    "flatten_all": "the operator flattened every pair (F)",
    "kill": "the kill switch (ctrl+k): every pair halted and flattened",
    "kill-fallback": "the daemon's kill fallback closed it from the book",
    "reconcile-flatten": "the operator chose flatten after a reconciliation with the exchange",
}


def utc_time(ts_ms: int, with_date: bool = True) -> str:
    fmt = "%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M:%S"
    return time.strftime(fmt, time.gmtime(ts_ms / 1000.0))


def _verdict(d: DecisionMsg, pal: Palette) -> Text:
    if d.approved:
        return Text("✓ APPROVED", pal.up + Style(bold=True))
    return Text("✗ REJECTED", pal.down + Style(bold=True))


def _summary(d: DecisionMsg, pal: Palette) -> Text:
    """What was done, or what refused it."""
    out = Text()
    ref = d.price or d.signal.entry
    if d.approved:
        qty, price = d.qty, d.price
        verb = (
            "closes"
            if exit_reason(d) is not None
            else "buys"
            if d.action == "open_long"
            else "sells"
        )
        out.append(f"{verb} {fmt_qty(qty)} @ {fmt_price(price)}")
        if qty and price:
            out.append(f"  (${fmt_usd(abs(qty) * price)})", pal.muted)
        return out
    failed = [check_label(name) for name, ok, _ in d.checks if not ok]
    out.append(f"refused by {len(failed)} of {len(d.checks)} checks: ", pal.warn)
    out.append(", ".join(failed) or "no reason recorded", pal.warn)
    if ref:
        out.append(f"  (signal at {fmt_price(ref)})", pal.muted)
    return out


def _signal(d: DecisionMsg, pal: Palette) -> Table:
    sig = d.signal
    exit_kind = exit_reason(d)
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(style=pal.muted, no_wrap=True, min_width=8)
    grid.add_column(ratio=1)
    kind = Text(sig.type or "—", (pal.up if sig.type == "BUY" else pal.down) + Style(bold=True))
    core_exit = exit_kind is not None and exit_kind != "signal"
    if sig.confidence is not None and sig.type != "HOLD" and not core_exit:
        kind.append(f" {sig.confidence * 100:.0f}%")
    if core_exit:
        kind.append(f"  {exit_label(exit_kind or '')} exit, made by the engine", pal.muted)
    elif sig.ts:
        kind.append(f"  on the candle of {utc_time(sig.ts, False)} (closed)", pal.muted)
    grid.add_row("Signal", kind)
    levels = Text()
    for name, value in (("entry", sig.entry), ("stop", sig.stop_loss), ("target", sig.take_profit)):
        if value:
            levels.append(f"{name} ", pal.muted)
            levels.append(f"{fmt_price(value)}  ")
    if levels.plain and not core_exit:
        grid.add_row("", levels)
    ref = d.price or sig.entry
    if core_exit:
        why = EXIT_WHY.get(exit_kind or "", exit_label(exit_kind or ""))
        grid.add_row("Reason", Text(why))
    else:
        grid.add_row("Reason", Text(fmt_reason(sig.reasoning, ref) or "—"))
    return grid


def _checks(d: DecisionMsg, pal: Palette) -> RenderableType:
    n, passed = len(d.checks), sum(1 for _, ok, _ in d.checks if ok)
    title = Text(f"Risk checks  {passed} passed · {n - passed} refused", pal.accent)
    if n != len(CHECKS):
        title.append(f"  ({n} recorded; the pipeline has {len(CHECKS)})", pal.muted)
    if exit_reason(d) is not None:
        title.append("  (an exit: every check passes it)", pal.muted)
    table = Table(box=None, show_header=False, expand=True, padding=(0, 1, 0, 0))
    table.add_column(no_wrap=True, width=1)
    table.add_column(no_wrap=True, min_width=15)
    table.add_column(ratio=1, overflow="fold")
    ref = d.price or d.signal.entry
    for name, ok, reason in d.checks:
        mark = Text("✓", pal.up) if ok else Text("✗", pal.down + Style(bold=True))
        label = Text(check_label(name), pal.text if ok else pal.down)
        table.add_row(
            mark, label, Text(fmt_reason(reason, ref) or "—", pal.muted if ok else pal.warn)
        )
    if not d.checks:
        table.add_row("", Text("none recorded", pal.muted), "")
    return Group(title, table)


def decision_renderable(d: DecisionMsg, pal: Palette, where: str = "") -> RenderableType:
    """The whole decision; ``where`` says its place in the log being browsed ("5/6")."""
    head = Text()
    head.append(d.symbol, Style(bold=True))
    head.append("  ")
    head.append(action_words(d), Style(bold=True))
    head.append("  ")
    head.append_text(_verdict(d, pal))
    head.append(f"  {utc_time(d.ts)}", pal.muted)
    if where:
        head.append(f"  {where}", pal.muted)
    return Group(head, _summary(d, pal), Text(""), _signal(d, pal), Text(""), _checks(d, pal))
