"""The decision log and the operator event log.

Owns ``DecisionLog`` (every risk decision, approved and rejected, with its reasons; optionally
one pair's only, for the detail screen) and ``EventLog`` (command acks and failures, fills,
feed and process changes). Both draw the newest lines that fit, newest at the bottom, from
the model's bounded deques: O(visible lines) per repaint, whatever the history length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import islice

from rich.style import Style
from rich.text import Text

from console.model import EventLine
from console.widgets.base import ModelWidget
from console.widgets.palette import Palette, fmt_price, fmt_qty
from engine.wire.schema import DecisionMsg


def hms_ms(ts_ms: int) -> str:
    """UTC time of day of a wire timestamp in ms."""
    return time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000.0))


def decision_line(d: DecisionMsg, palette: Palette, with_symbol: bool = True) -> Text:
    """One decision as the engine sent it; the reasons are its failed checks (``reasons``)."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(hms_ms(d.ts) + " ", palette.muted)
    if with_symbol:
        line.append(f"{d.symbol:<10}", Style(bold=True))
    line.append(f"{d.action:<11}")
    if d.approved:
        line.append("✓ APPROVED ", palette.up + Style(bold=True))
        line.append(f"{fmt_qty(d.qty)} @ {fmt_price(d.price)}")
    else:
        line.append("✗ REJECTED ", palette.down + Style(bold=True))
        line.append("; ".join(d.reasons) or "no reason given", palette.warn)
    sig = d.signal
    if sig.type:
        conf = "" if sig.confidence is None else f" {sig.confidence * 100:.0f}%"
        line.append(f"  {sig.type}{conf}", palette.muted)
    return line


EVENT_MARK = {"info": "·", "success": "✓", "warning": "!", "error": "✗"}


def event_line(e: EventLine, palette: Palette) -> Text:
    style = {
        "success": palette.up,
        "warning": palette.warn,
        "error": palette.error,
    }.get(e.level, palette.text)
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(time.strftime("%H:%M:%S", time.gmtime(e.at)) + " ", palette.muted)
    line.append(EVENT_MARK.get(e.level, "·") + " ", style)
    line.append(e.text, style)
    return line


def last_n(items: Iterable[object], n: int) -> list[object]:
    """The newest ``n`` items of a deque, oldest first, without copying the rest."""
    if n <= 0:
        return []
    newest = list(islice(reversed(items), n))  # type: ignore[call-overload]
    newest.reverse()
    return newest


class DecisionLog(ModelWidget):
    """Risk decisions, newest at the bottom; one pair's only when ``symbol`` is set."""

    def render(self) -> Text:
        pal = self.palette
        height = self.size.height or 10
        width = self.size.width or 80
        decisions = self.model.decisions
        title = Text("Decisions", pal.accent)
        if self.symbol is not None:
            title.append(f" · {self.symbol}", pal.accent)
            rows: list[DecisionMsg] = []
            for d in reversed(decisions):  # bounded by the deque's maxlen (500)
                if d.symbol == self.symbol:
                    rows.append(d)
                    if len(rows) >= height - 1:
                        break
            rows.reverse()
        else:
            rows = last_n(decisions, height - 1)  # type: ignore[assignment]
        approved = sum(
            1 for d in decisions if d.approved and (self.symbol is None or d.symbol == self.symbol)
        )
        total = (
            len(decisions)
            if self.symbol is None
            else sum(1 for d in decisions if d.symbol == self.symbol)
        )
        title.append(f"  approved {approved} · rejected {total - approved}", pal.muted)
        lines = [title]
        if not rows:
            lines.append(Text("no decisions yet", pal.muted))
        lines.extend(decision_line(d, pal, self.symbol is None) for d in rows)
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines)


class EventLog(ModelWidget):
    """Operator events: command acks with elapsed ms, failures, fills, process changes."""

    def render(self) -> Text:
        pal = self.palette
        height = self.size.height or 10
        width = self.size.width or 40
        lines = [Text("Events", pal.accent)]
        rows: list[EventLine] = last_n(self.model.events, height - 1)  # type: ignore[assignment]
        if not rows:
            lines.append(Text("no events yet", pal.muted))
        lines.extend(event_line(e, pal) for e in rows)
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines)
