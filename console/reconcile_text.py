"""Words and numbers of a reconciliation report, shared by the console's screen and
``multipar-console reconcile``: how a verdict, a choice, an amount and a time read, and the
report as plain text (one block per pair: the book beside the exchange, what was applied, why
the pair waits, the orders that are not ours, the choice). No Textual here.
"""

from __future__ import annotations

import time

from engine.core.reconcile_view import PairCheck, ReconcileReport

NONE = "—"
# what each verdict means for the operator, after its badge
VERDICT_TEXT = {
    "ok": "book and exchange agree",
    "applied": "they agree once facts were applied",
    "mismatch": "HALTED: they differ, your choice",
    "error": "HALTED: the exchange was not asked, your choice",
    "unchecked": "not compared (in flight): the next check will",
}
# what a choice does (the confirm dialogs and the report say the same)
CHOICE_TEXT = {
    "adopt": "adopt the exchange's state into the book",
    "flatten": "flatten at the exchange",
    "keep": "keep the pair halted",
}
CHOICE_KEYS = (("a", "adopt"), ("f", "flatten"), ("k", "keep"))
ORDER = {"mismatch": 0, "error": 0, "applied": 2, "unchecked": 3, "ok": 4}


def fmt_amount(x: float | None) -> str:
    """A quantity as the book and the exchange hold it: every significant digit, no rounding
    that could hide a difference."""
    if x is None:
        return "unknown"
    if x == 0:
        return "0"
    if abs(x) >= 1e9:
        return f"{x:,.0f}"
    text = f"{x:,.10f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{x:.6g}"  # dust: never shown as 0


def fmt_price(x: float | None) -> str:
    if x is None:
        return "unknown"
    if x == 0:
        return NONE
    return f"{x:,.2f}" if abs(x) >= 10 else fmt_amount(x)


def hms(ts_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000.0))


def day_time(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts_ms / 1000.0))


def fmt_age(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} days ago"


def foreign_text(order: str) -> str:
    """An order not ours as listed: ``… (web_1): left alone`` (the engine may say it already)."""
    for said in (": not ours, left alone", ": left alone"):
        if order.endswith(said):
            order = order[: -len(said)]
    return f"{order}: left alone"


def known(p: PairCheck) -> bool:
    """The exchange's state of the pair is known: adopt and flatten are possible (else only
    keep, or ask again)."""
    return p.verdict != "error" and p.venue_qty is not None


def choice_made(p: PairCheck) -> str:
    """``adopt by alice@host at 22:14:05 UTC``, or "" when none was made."""
    if not p.choice:
        return ""
    by = f" by {p.choice_by}" if p.choice_by else ""
    at = f" at {hms(p.choice_ts)} UTC" if p.choice_ts else ""
    return f"{p.choice}{by}{at}"


def shown_order(report: ReconcileReport) -> list[PairCheck]:
    """Pairs waiting for a choice first, then settled ones, applied, unchecked, agreeing."""
    keyed = [
        (0 if p.waiting else ORDER.get(p.verdict, 4) + (1 if p.choice else 0), i, p)
        for i, p in enumerate(report.pairs)
    ]
    return [p for _, _, p in sorted(keyed, key=lambda t: (t[0], t[1]))]


def headline(report: ReconcileReport, now_s: float) -> str:
    """When, why and whether the exchange answered."""
    age = fmt_age(now_s - report.ts / 1000.0)
    asked = "the exchange answered" if report.ok else "the exchange was NOT reached"
    why = f": {report.error}" if report.error else ""
    return f"reconciliation {day_time(report.ts)} ({age}), trigger {report.trigger}: {asked}{why}"


def waiting_line(report: ReconcileReport) -> str:
    waiting = report.waiting
    if not waiting:
        return "nothing waits for a choice"
    n = len(waiting)
    return f"{n} pair{'s' if n > 1 else ''} halted, waiting for a choice: {', '.join(waiting)}"


def pair_text(p: PairCheck) -> list[str]:
    """One pair as plain text lines (``multipar-console reconcile``)."""
    out = [f"{p.symbol}  {p.market}  {p.verdict.upper()}: {VERDICT_TEXT.get(p.verdict, '')}"]
    if p.verdict == "ok" and not (p.foreign_orders or p.notes or p.choice):
        out[0] += f" (qty {fmt_amount(p.book_qty)})"
        return out
    w = max(22, len(fmt_amount(p.book_qty)) + 2, len(fmt_price(p.book_entry)) + 2)
    out.append(f"  {'':<10}{'book':<{w}}exchange")
    out.append(f"  {'qty':<10}{fmt_amount(p.book_qty):<{w}}{fmt_amount(p.venue_qty)}")
    entry = "unknown" if p.venue_qty is None else fmt_price(p.venue_entry or 0.0)
    out.append(f"  {'entry':<10}{fmt_price(p.book_entry):<{w}}{entry}")
    out.append(f"  {'stop':<10}{fmt_price(p.book_stop):<{w}}(its resting orders below)")
    out += _items("orders", [f"book: {o}" for o in p.book_orders] or ["book: none"])
    out += _items("", [f"exchange: {o}" for o in p.venue_orders] or ["exchange: none of ours"])
    out += _items("applied", p.applied)
    out += _items("mismatch", p.mismatches)
    out += _items("not ours", [foreign_text(o) for o in p.foreign_orders])
    out += _items("note", p.notes)
    if p.choice:
        out.append(f"  {'choice':<10}{choice_made(p)}")
    elif p.waiting and not known(p):
        out.append(
            f"  {'choice':<10}none yet: {CHOICE_TEXT['keep']} (the exchange's state is unknown)"
        )
    elif p.waiting:
        keys = " | ".join(CHOICE_TEXT[c] for _, c in CHOICE_KEYS)
        out.append(f"  {'choice':<10}none yet: {keys}")
    return out


def _items(label: str, items: list[str]) -> list[str]:
    return [f"  {(label if i == 0 else ''):<10}{text}" for i, text in enumerate(items)]


def report_text(report: ReconcileReport, now_s: float) -> str:
    lines = [headline(report, now_s), waiting_line(report)]
    for p in shown_order(report):
        lines += ["", *pair_text(p)]
    if not report.pairs:
        lines += ["", "no pair was compared"]
    return "\n".join(lines)
