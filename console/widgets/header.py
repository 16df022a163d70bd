"""The one-line status header shown on every screen.

Owns ``StatusHeader``: the mode badge (DEMO / PAPER / LIVE, LIVE in red), the feed's
connection state and reconnect count, the feed and engine processes (running, silent,
restarting in Ns, dead), a NO ENTRIES badge while the operator has stopped new entries, equity,
the day's and the total PnL (coloured; the engine's: the day's start equity is kept in its book,
so both read the same after a crash) and a UTC clock. Long form at 120 columns and more, a
short form below, chosen in ``render()`` from the widget's width; a full line drops the
clock first, then the equity, never the processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.style import Style
from rich.text import Text

from console.model import ChildStatus, ConsoleModel
from console.widgets.base import ModelWidget
from console.widgets.palette import Palette, fmt_usd, pad_between
from engine.wire.liveness import HUNG_AFTER_S

SHORT_NAMES = {"feed": "feed", "engine": "eng"}
FEED_STATE_SHORT = {
    "connected": "conn",
    "reconnecting": "reconn",
    "stale": "stale",
    "stopped": "stopped",
    "unknown": "?",
}


def child_label(child: ChildStatus, now: float, palette: Palette) -> tuple[str, str, Style]:
    """(long, short, style) describing a child process for the header."""
    state = child.state
    if state == "running":
        age = child.beat_age(now)
        # the moment the kill switch stops asking the engine (engine/wire/liveness.py)
        if age is not None and age > HUNG_AFTER_S:
            return f"silent {age:.0f}s", f"silent {age:.0f}s", palette.warn
        if child.phase == "warming":  # loading history; commands are answered between requests
            return "warming up", "warm", palette.muted
        return "running", "run", palette.up
    if state == "restarting":
        left = child.restart_in(now)
        when = "" if left is None else f" in {left:.0f}s"
        return f"restarting{when}", f"restart{when}", palette.warn
    if state == "dead":
        return "dead", "dead", palette.error
    if state == "held":
        return "held (not restarting)", "held", palette.error
    if state == "starting":
        return "starting", "start", palette.muted
    return state, state[:5], palette.muted


class StatusHeader(ModelWidget):
    """Mode, feed, processes, equity, daily PnL and clock, in one line."""

    def __init__(
        self,
        model: ConsoleModel,
        mode: str,
        wall: Callable[[], float],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(model, id=id, classes="status-header")
        self.mode = mode.upper()
        self.wall = wall

    def _feed(self, palette: Palette) -> tuple[str, str, Style]:
        fs = self.model.feed_status
        state = str(fs.get("state") or "unknown")
        reconnects = fs.get("reconnects")
        n = reconnects if type(reconnects) is int else 0
        style = {
            "connected": palette.up,
            "reconnecting": palette.warn,
            "stale": palette.warn,
            "stopped": palette.error,
        }.get(state, palette.muted)
        source = fs.get("source")
        src = f"{source}, " if isinstance(source, str) and source else ""
        return f"{state} ({src}{n} reconnects)", f"{FEED_STATE_SHORT.get(state, state)} r{n}", style

    def render(self) -> Text:
        pal = self.palette
        m = self.model
        now = m.now()
        width = self.size.width or 80
        pf = m.portfolio
        clock = time.strftime("%H:%M:%S", time.gmtime(self.wall()))
        feed_long, feed_short, feed_style = self._feed(pal)
        kids = [(name, *child_label(c, now, pal)) for name, c in m.children.items()]
        equity: float | None = None
        day: float | None = None  # the engine's daily PnL (equity since its trading day's start)
        total: float | None = None  # the engine's: realised - fees + unrealised since the account opened
        pnl_pct: float | None = None
        if pf is not None:
            equity, day, total = pf.equity, pf.daily_pnl, pf.total_pnl
            if pf.capital:
                pnl_pct = day / pf.capital * 100
        no_entries = pf is not None and pf.entries_stopped

        def build(long: bool, with_clock: bool = True, with_equity: bool = True) -> tuple[Text, Text]:
            left = Text(no_wrap=True)
            left.append(f" {self.mode} ", pal.badge(self.mode))
            if m.halted:
                left.append(" ")
                left.append(" HALTED ", pal.badge("HALTED"))
            if no_entries:  # the operator stopped new entries (flatten all, P): E resumes them
                left.append(" ")
                left.append(" NO ENTRIES " if long else " NO ENT ", pal.badge("PAUSED"))
            v = m.venue
            if v is not None:  # a live engine: a ban or a dead user stream is never quiet
                if v.banned_until_ms > self.wall() * 1000:
                    left.append(" ")
                    left.append(" BANNED " if long else " BAN ", pal.badge("HALTED"))
                elif not v.stream_ok:
                    left.append(" ")
                    left.append(" NO STREAM " if long else " NOSTR ", pal.badge("STALE"))
            left.append("  feed " if long else " feed ", pal.muted)
            left.append(feed_long if long else feed_short, feed_style)
            left.append("  │ " if long else " │", pal.muted)
            for name, lo, sh, style in kids:
                left.append(
                    f" {name} " if long else f" {SHORT_NAMES.get(name, name[:4])} ", pal.muted
                )
                left.append(lo if long else sh, style)
            cv = getattr(m, "config_version", 0)
            if cv > 1:  # the safe list was reloaded in this book (v1: as started, not shown)
                left.append(f"  │ config v{cv}" if long else f" │ v{cv}", pal.muted)
            right = Text(no_wrap=True)
            if with_equity:
                right.append("Equity " if long else "Eq ", pal.muted)
                right.append(fmt_usd(equity), Style(bold=True))
            right.append(("  " if long else " ") if with_equity else "", pal.muted)
            right.append("Day ", pal.muted)
            right.append(fmt_usd(day, signed=True), pal.sign(day) + Style(bold=True))
            if long and pnl_pct is not None:
                right.append(f" ({pnl_pct:+.2f}%)", pal.sign(day))
            right.append("  Total " if long else " Tot ", pal.muted)
            right.append(fmt_usd(total, signed=True), pal.sign(total))
            if with_clock:
                right.append("  UTC " if long else " ", pal.muted)
                right.append(clock + ("" if long else "Z"))
            right.append(" ")
            return left, right

        # the first form that fits: the long one from 120 columns, then without the clock, then
        # the short one, without the clock, without the equity (the processes always stay)
        forms = [(True, True, True), (True, False, True)] if width >= 120 else []
        forms += [(False, True, True), (False, False, True), (False, False, False)]
        for form in forms:
            parts = build(*form)
            if parts[0].cell_len + parts[1].cell_len + 1 <= width:
                break
        return pad_between(*parts, width)
