"""The decision log and the operator event log.

Owns ``DecisionLog`` (every risk decision, approved and rejected, with its reasons; optionally
one pair's only, for the detail screen) and ``EventLog`` (command acks and failures, fills,
feed and process changes). Both are ``LogView``s over the model's bounded deques: they follow
the newest lines that fit, newest at the bottom (O(visible lines) per repaint, whatever the
history length), and focused they scroll, search and copy a line (``console/widgets/logview.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.actions import SkipAction
from textual.binding import Binding, BindingType

from console.model import EventLine
from console.reasons import action_words, exit_reason, fmt_reason
from console.widgets.base import ModelWidget
from console.widgets.logview import LogView
from console.widgets.palette import Palette, fmt_price, fmt_qty
from engine.wire.schema import DecisionMsg

_ENTER_LOG = "up/down, pgup/pgdn, home/end; / search, n/N; c copies a line; escape leaves"
# The board's keys into its logs (console/screens/main.py) and the detail screen's (its
# decision log only); the app's actions are console/log_actions.py's. Priority: they act when
# the key arrives, before the next one is routed (console/log_actions.py says why).
DETAIL_LOG_BINDINGS: list[BindingType] = [
    Binding(
        "d",
        "app.focus_log('decisions')",
        "Decisions",
        show=False,
        priority=True,
        id="log.decisions",
        tooltip=f"Enter the decision log: {_ENTER_LOG}",
    ),
    Binding(
        "slash",
        "app.search_log",
        "Search",
        key_display="/",
        show=False,
        priority=True,
        id="log.search_decisions",
        tooltip="Search the decision log (n / N: next / previous match)",
    ),
]
BOARD_LOG_BINDINGS: list[BindingType] = [
    *DETAIL_LOG_BINDINGS,
    Binding(
        "e",
        "app.focus_log('events')",
        "Events",
        show=False,
        priority=True,
        id="log.events",
        tooltip=f"Enter the event log: {_ENTER_LOG}",
    ),
    Binding(
        "L",
        "app.show_logs",
        "Logs",
        key_display="L",
        show=False,
        priority=True,
        id="logs.open",
        tooltip="The log files (daemon, feed, engine, console), followed live",
    ),
]


def hms_ms(ts_ms: int) -> str:
    """UTC time of day of a wire timestamp in ms."""
    return time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000.0))


def decision_line(d: DecisionMsg, palette: Palette, with_symbol: bool = True) -> Text:
    """One decision as the engine sent it: what it was (``entry long``, ``exit long: stop``),
    the reasons are its failed checks (``reasons``, prices in the console's format); the
    signal's type and confidence unless the engine made the exit itself (a stop, a flatten)."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(hms_ms(d.ts) + " ", palette.muted)
    if with_symbol:
        line.append(f"{d.symbol:<10}", Style(bold=True))
    line.append(f"{action_words(d):<11} ")
    if d.approved:
        line.append("✓ APPROVED ", palette.up + Style(bold=True))
        line.append(f"{fmt_qty(d.qty)} @ {fmt_price(d.price)}")
    else:
        line.append("✗ REJECTED ", palette.down + Style(bold=True))
        reasons = [fmt_reason(r, d.price or d.signal.entry) for r in d.reasons]
        line.append("; ".join(reasons) or "no reason given", palette.warn)
    sig = d.signal
    if sig.type and exit_reason(d) in (None, "signal"):
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


class DecisionLog(LogView, ModelWidget):
    """Risk decisions, newest at the bottom; one pair's only when ``symbol`` is set."""

    TITLE = "Decisions"
    EMPTY = "no decisions yet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "enter",
            "open_selected",
            "Open",
            id="log.open",
            tooltip="Open the selected decision: its checks and reasons",
        ),
    ]

    def log_rows(self) -> Sequence[DecisionMsg]:
        decisions = self.model.decisions
        if self.symbol is None:
            return decisions
        return [d for d in decisions if d.symbol == self.symbol]  # bounded by the deque (500)

    def row_text(self, row: DecisionMsg, palette: Palette) -> Text:
        return decision_line(row, palette, self.symbol is None)

    def action_open_selected(self) -> None:
        """Enter: the selected decision's own screen, where the app has one."""
        opener = getattr(self.app, "open_decision", None)
        row = self.selected_row()
        if opener is None or row is None:
            raise SkipAction()
        opener(row, self.symbol)

    def log_title(self, rows: Sequence[DecisionMsg], palette: Palette) -> Text:
        title = Text("Decisions", palette.accent)
        if self.symbol is not None:
            title.append(f" · {self.symbol}", palette.accent)
        approved = sum(1 for d in rows if d.approved)
        title.append(f"  approved {approved} · rejected {len(rows) - approved}", palette.muted)
        return title


class EventLog(LogView, ModelWidget):
    """Operator events: command acks with elapsed ms, failures, fills, process changes."""

    TITLE = "Events"
    EMPTY = "no events yet"

    def log_rows(self) -> Sequence[EventLine]:
        return self.model.events

    def row_text(self, row: EventLine, palette: Palette) -> Text:
        return event_line(row, palette)
