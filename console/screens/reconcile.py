"""The reconciliation screen: the book beside the exchange, per pair, and the operator's choice.

Owns ``ReconcileScreen`` and ``PairCheckView`` (one pair's block). It shows the engine's latest
``ReconcileReport`` (``console/reconcile_state.py``): a header (when, trigger, whether the
exchange answered, which pairs wait), then one block per pair, the waiting ones first: its
verdict badge, the book's quantity, entry, stop and orders beside the exchange's, what was
applied automatically, why it waits (wrapped on word boundaries, so a number is never cut),
the orders that are not ours (listed, left alone), and the choice made (who, when) or the keys
that make one. ``a`` adopt, ``f`` flatten, ``k`` keep act on the selected pair (up/down), each
after a confirm (``y``), and are sent as the ``reconcile`` command with its ack shown; ``r``
asks for a fresh reconciliation; Escape goes back. The app opens it by itself once per new
report that has pairs waiting (``console/reconcile_actions.py``); ``R`` on the board opens it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from console.model import DIRTY_HEADER, ConsoleModel
from console.reconcile_state import DIRTY_RECONCILE
from console.reconcile_text import (
    CHOICE_KEYS,
    CHOICE_TEXT,
    VERDICT_TEXT,
    choice_made,
    day_time,
    fmt_age,
    fmt_amount,
    fmt_price,
    foreign_text,
    hms,
    known,
    shown_order,
    waiting_line,
)
from console.screens.main import PALETTE_HINT_COLUMNS
from console.widgets.palette import DEFAULT_PALETTE, Palette
from engine.core.reconcile_view import PairCheck

LABEL_WIDTH = 8  # "mismatch", "not ours"
NO_REPORT = (
    "No reconciliation yet. A live engine compares the book with the exchange at start, after "
    "a reconnect and periodically (a paper book has none). r asks for one now."
)


def _palette(widget: Widget) -> Palette:
    return getattr(widget.app, "palette", DEFAULT_PALETTE)


def verdict_style(verdict: str, pal: Palette) -> Any:
    return {
        "ok": pal.badge_active,
        "applied": pal.badge_demo,
        "mismatch": pal.badge_paused,
        "error": pal.badge_halted,
    }.get(verdict, pal.badge_stale)


class PairCheckView(Widget):
    """One pair of the report; reads the model's report at each render."""

    def __init__(self, model: ConsoleModel, symbol: str) -> None:
        super().__init__(classes="rc-pair")
        self.model = model
        self.symbol = symbol

    def check(self) -> PairCheck | None:
        report = self.model.reconcile.report
        return None if report is None else report.pair(self.symbol)

    def set_selected(self, on: bool) -> None:
        self.set_class(on, "-selected")

    def render(self) -> RenderableType:
        p = self.check()
        if p is None:
            return Text("")
        pal = _palette(self)
        title = Text()
        title.append(("▶ " if self.has_class("-selected") else "  ") + p.symbol, style="bold")
        title.append(f"  {p.market}  ", style=pal.muted)
        title.append(f" {p.verdict.upper()} ", style=verdict_style(p.verdict, pal))
        title.append(f"  {VERDICT_TEXT.get(p.verdict, '')}", style=pal.muted)
        quiet = p.verdict == "ok" and not (p.foreign_orders or p.notes or p.choice)
        ack = self.model.reconcile.acks.get(p.symbol)
        if quiet and not ack:
            title.append(f"  qty {fmt_amount(p.book_qty)}", style=pal.muted)
            return title
        return Group(title, self._sides(p, pal), self._lines(p, pal, ack))

    def _sides(self, p: PairCheck, pal: Palette) -> Table:
        """The book's column beside the exchange's."""
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=LABEL_WIDTH, no_wrap=True, style=pal.muted)
        grid.add_column(overflow="fold", min_width=14)
        grid.add_column(overflow="fold", min_width=14)
        grid.add_row("", Text("book", style=pal.accent), Text("exchange", style=pal.accent))
        differs = p.venue_qty is not None and abs(p.venue_qty - p.book_qty) > 0.0
        venue_qty = Text(fmt_amount(p.venue_qty), style=pal.warn if differs else pal.text)
        if p.venue_qty is None:
            venue_qty.stylize(pal.error)
        grid.add_row("qty", Text(fmt_amount(p.book_qty)), venue_qty)
        entry = "unknown" if p.venue_qty is None else fmt_price(p.venue_entry or 0.0)
        grid.add_row("entry", Text(fmt_price(p.book_entry)), Text(entry))
        grid.add_row("stop", Text(fmt_price(p.book_stop)), Text("(in its orders)", style=pal.muted))
        book_orders = Text("\n".join(p.book_orders) or "none")
        venue_orders = Text("\n".join(p.venue_orders) or "none of ours")
        grid.add_row("orders", book_orders, venue_orders)
        return grid

    def _lines(self, p: PairCheck, pal: Palette, ack: str | None) -> Table:
        """Applied, mismatches, orders not ours, notes, then the choice (or its keys)."""
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=LABEL_WIDTH, no_wrap=True, style=pal.muted)
        grid.add_column(ratio=1, overflow="fold")
        for label, items, style in (
            ("applied", p.applied, pal.up),
            ("mismatch", p.mismatches, pal.warn),
            ("not ours", [foreign_text(o) for o in p.foreign_orders], pal.text),
            ("note", p.notes, pal.muted),
        ):
            for i, item in enumerate(items):
                grid.add_row(label if i == 0 else "", Text(item, style=style))
        if p.choice:
            grid.add_row("choice", Text(choice_made(p), style=pal.accent))
        elif p.waiting:
            keys = Text()
            sure = known(p)  # adopt and flatten need the exchange's state
            offered = [(k, CHOICE_TEXT[c]) for k, c in CHOICE_KEYS if sure or c == "keep"]
            if not sure:
                offered.append(("r", "ask the exchange again"))
            for i, (key, what) in enumerate(offered):
                keys.append(" · " if i else "", style=pal.muted)
                keys.append(key, style=pal.accent)
                keys.append(f" {what}")
            grid.add_row("choose", keys)
        if ack:
            failed = "FAILED" in ack
            grid.add_row("sent", Text(ack, style=pal.error if failed else pal.muted))
        return grid


class ReconcileScreen(Screen[None]):
    """The latest reconciliation; the keys settle the selected pair."""

    DEFAULT_CSS = """
    ReconcileScreen #rc-head {
        height: auto;
        padding: 0 1;
        background: $panel;
    }
    ReconcileScreen #rc-pairs {
        height: 1fr;
    }
    ReconcileScreen .rc-pair {
        height: auto;
        padding: 0 1 0 1;
        margin: 0 0 1 0;
        border-left: blank;
    }
    ReconcileScreen .rc-pair.-selected {
        border-left: thick $primary;
        background: $boost;
    }
    ReconcileScreen .rc-empty {
        padding: 1 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "up", "move(-1)", "Up", show=False, id="reconcile.up", tooltip="Select the pair above"
        ),
        Binding(
            "down",
            "move(1)",
            "Down",
            show=False,
            id="reconcile.down",
            tooltip="Select the pair below",
        ),
        Binding(
            "a",
            "choose('adopt')",
            "Adopt",
            show=False,  # the waiting pair's block shows the choices
            id="reconcile.adopt",
            tooltip="Adopt the exchange's state into the book for the selected pair "
            "(confirm with y)",
        ),
        Binding(
            "f",
            "choose('flatten')",
            "Flatten",
            show=False,  # the waiting pair's block shows the choices
            id="reconcile.flatten",
            tooltip="Adopt, then flatten the selected pair's position at the exchange "
            "(confirm with y)",
        ),
        Binding(
            "k",
            "choose('keep')",
            "Keep",
            show=False,  # the waiting pair's block shows the choices
            id="reconcile.keep",
            tooltip="Keep the selected pair HALTED, the mismatch acknowledged (confirm with y)",
        ),
        Binding(
            "r",
            "recheck",
            "Re-check",
            id="reconcile.recheck",
            tooltip="Ask the engine to reconcile with the exchange again now",
        ),
        Binding("escape", "close", "Close", id="reconcile.close", tooltip="Back to the board"),
    ]

    def __init__(self, model: ConsoleModel, wall: Callable[[], float]) -> None:
        super().__init__(classes="reconcile-screen")
        self.model = model
        self.wall = wall
        self.head = Static(id="rc-head")
        self.pairs = VerticalScroll(id="rc-pairs")
        self.views: dict[str, PairCheckView] = {}
        self._order: list[str] | None = None  # the symbols the blocks show, once built
        self.selected: str | None = None

    def compose(self) -> ComposeResult:
        yield self.head
        yield self.pairs
        yield Footer()

    def on_mount(self) -> None:
        self.sync()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(Footer).show_command_palette = event.size.width >= PALETTE_HINT_COLUMNS

    # ------------------------------------------------------------------ painting

    def repaint(self, dirty: set[str], charts: set[str] | None) -> None:
        if not self.pairs.is_mounted:
            return  # pushed this frame: on_mount draws it
        if DIRTY_RECONCILE in dirty:
            self.sync()
        elif DIRTY_HEADER in dirty:  # the report's age
            self.head.update(self.head_text())

    def sync(self) -> None:
        """Blocks for the report's pairs (rebuilt when they change), the header, the selection."""
        report = self.model.reconcile.report
        order = [p.symbol for p in shown_order(report)] if report is not None else []
        if order != self._order:
            self._order = order
            self.pairs.remove_children()
            self.views = {s: PairCheckView(self.model, s) for s in order}
            if self.views:
                self.pairs.mount(*self.views.values())
            else:
                self.pairs.mount(Static(Text(NO_REPORT), classes="rc-empty"))
            if self.selected not in self.views:
                waiting = report.waiting if report is not None else []
                self.selected = waiting[0] if waiting else (order[0] if order else None)
        for view in self.views.values():
            view.set_selected(view.symbol == self.selected)
            view.refresh(layout=True)
        self.head.update(self.head_text())

    def head_text(self) -> Text:
        pal = _palette(self)
        report = self.model.reconcile.report
        out = Text()
        out.append("RECONCILIATION ", style=pal.accent)
        if report is None:
            out.append("with the exchange: none received from the engine")
        else:
            age = self.wall() - report.ts / 1000.0
            when = hms(report.ts) + " UTC" if age < 43_200 else day_time(report.ts)
            out.append(f"{when} ({fmt_age(age)}) · {report.trigger} · ")
            if report.ok:
                out.append("exchange answered", style=pal.up)
            else:
                out.append("exchange NOT reached", style=pal.error)
                out.append(f"\n{report.error}" if report.error else "", style=pal.error)
            out.append("\n")
            out.append(waiting_line(report), style=pal.warn if report.waiting else pal.up)
        recheck = self.model.reconcile.acks.get("")
        if recheck:
            out.append(f"\n{recheck}", style=pal.error if "FAILED" in recheck else pal.muted)
        return out

    # ------------------------------------------------------------------ keys

    def action_move(self, step: int) -> None:
        order = list(self.views)
        if not order:
            return
        i = order.index(self.selected) if self.selected in order else 0
        self.selected = order[max(0, min(len(order) - 1, i + step))]
        for view in self.views.values():
            view.set_selected(view.symbol == self.selected)
            view.refresh()
        self.views[self.selected].scroll_visible(animate=False)

    def action_choose(self, choice: str) -> None:
        check = self.selected_check()
        if check is None:
            self.notify("no pair to settle", severity="warning", markup=False)
            return
        if not check.waiting:
            why = f"settled: {choice_made(check)}" if check.choice else check.verdict
            self.notify(
                f"{check.symbol} waits for no choice ({why})", severity="warning", markup=False
            )
            return
        if choice != "keep" and not known(check):
            self.notify(
                f"the exchange's state of {check.symbol} is unknown: "
                "r asks again, k keeps it halted",
                severity="warning",
                markup=False,
            )
            return
        self.app.choose_reconcile(check, choice)  # type: ignore[attr-defined]

    def action_recheck(self) -> None:
        self.app.recheck_reconcile()  # type: ignore[attr-defined]

    def action_close(self) -> None:
        self.dismiss(None)

    def selected_check(self) -> PairCheck | None:
        report = self.model.reconcile.report
        if report is None or self.selected is None:
            return None
        return report.pair(self.selected)
