"""One pane per pair: the compact one-row view and the full pane, with their rendering.

Owns ``PairPane`` (the container the grid lays out), its parts ``PairRow`` (the single row
shown when the terminal is small), ``PairQuote`` (symbol, badges, price, book, tick age),
``PairStats`` (indicators, signal, position, last decision) and the column header of the
compact rows. Colours are computed in ``render()`` from the palette; the only class toggled
here is ``-selected``, on a keystroke, never per tick.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from console.model import ConsoleModel, PairView
from console.widgets.base import ModelWidget
from console.widgets.chart import CloseSparkline
from console.widgets.palette import (
    Palette,
    badge_text,
    fmt_age,
    fmt_num,
    fmt_pct,
    fmt_price,
    fmt_qty,
    fmt_usd,
    pad_between,
    price_decimals,
)
from engine.wire.schema import PositionMsg

# Compact row columns: (title, width, right-aligned); PairRow and its header share them.
ROW_COLUMNS: tuple[tuple[str, int, bool], ...] = (
    ("", 2, False),
    ("PAIR", 10, False),
    ("LAST", 12, True),
    ("CHG", 8, True),
    ("", 1, False),
    ("STATE", 10, False),
    ("RSI", 6, True),
    ("", 2, False),
    ("POSITION", 14, False),
    ("uPnL", 9, True),
)


def pane_id(symbol: str) -> str:
    """A DOM id for a symbol (ids allow no '/' or ':')."""
    return "pane-" + symbol.replace("/", "-").replace(":", "_")


def rsi_style(rsi: float | None, palette: Palette) -> Style:
    if rsi is None:
        return palette.muted
    if rsi >= 70 or rsi <= 30:
        return palette.warn
    return palette.text


def position_parts(pos: PositionMsg | None) -> tuple[str, float | None, float | None]:
    """(side word, qty, unrealised) of the engine's position; ("", None, None) when flat."""
    if pos is None or pos.qty == 0.0:
        return "", None, None
    return pos.side.upper(), pos.qty, pos.unrealised


class PairRow(ModelWidget):
    """The compact one-line view of a pair: symbol, price, change, badge, RSI, position, uPnL."""

    selected = False

    def render(self) -> Text:
        assert self.symbol is not None
        pal = self.palette
        pv = self.model.pairs[self.symbol]
        st = pv.state
        badge = pv.badge(self.model.now())
        chg = st.change_pct
        side, qty, upnl = position_parts(st.position)
        rsi = st.ind.rsi
        pos_text = f"{side} {fmt_qty(abs(qty))}" if side and qty is not None else "flat"
        badge_word = f" {badge} "
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(_cell("▸" if self.selected else "", 0), pal.selected)
        line.append(_cell(pv.symbol, 1), pal.selected if self.selected else Style(bold=True))
        line.append(_cell(fmt_price(st.last), 2), pal.muted if badge == "STALE" else pal.sign(chg))
        line.append(_cell(fmt_pct(chg), 3), pal.sign(chg))
        line.append(_cell("", 4))
        line.append(badge_word, pal.badge(badge))
        line.append(" " * max(0, ROW_COLUMNS[5][1] - len(badge_word)))
        line.append(_cell("—" if rsi is None else f"{rsi:.1f}", 6), rsi_style(rsi, pal))
        line.append(_cell("", 7))
        line.append(_cell(pos_text, 8), pal.text if side else pal.muted)
        line.append(_cell(fmt_usd(upnl, signed=True) if side else "", 9), pal.sign(upnl))
        line.truncate(self.size.width or 80, overflow="ellipsis")
        return line


def _cell(value: str, column: int) -> str:
    _, width, right = ROW_COLUMNS[column]
    value = value[:width]
    return value.rjust(width) if right else value.ljust(width)


def row_header() -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    for title, width, right in ROW_COLUMNS:
        line.append(title.rjust(width) if right else title.ljust(width))
    return line


class PairRowHeader(Static):
    """Column titles above the compact rows (only displayed in the compact layout)."""

    def __init__(self) -> None:
        super().__init__(row_header(), id="pair-row-header")


class PairQuote(ModelWidget):
    """Three lines: tier · strategy and state badges; price and change with tick age; the book."""

    def render(self) -> Text:
        assert self.symbol is not None
        pal = self.palette
        pv = self.model.pairs[self.symbol]
        st = pv.state
        now = self.model.now()
        width = self.size.width or 48
        stale = pv.is_stale(now)

        left = Text()
        left.append(pv.symbol, Style(bold=True))
        left.append(f"  {st.tier} · {st.strategy}", pal.muted)
        badges = Text()
        badges.append_text(badge_text(st.mode, pal))
        if stale and st.mode != "HALTED":
            badges.append(" ")
            badges.append_text(badge_text("STALE", pal))
        line1 = pad_between(left, badges, width)

        chg = st.change_pct
        price = Text()
        price.append(fmt_price(st.last), Style(bold=True) + (pal.muted if stale else pal.sign(chg)))
        arrow = "▲" if (chg or 0) > 0 else "▼" if (chg or 0) < 0 else "•"
        price.append(f"  {arrow} {fmt_pct(chg)}", pal.sign(chg))
        age = pv.tick_age_s(now)
        age_text = Text("age ", pal.muted)
        age_text.append(fmt_age(age), pal.error if stale else pal.text)
        line2 = pad_between(price, age_text, width)

        line3 = Text(no_wrap=True, overflow="ellipsis")
        line3.append("bid ", pal.muted)
        bid, ask = st.bid, st.ask
        line3.append(fmt_price(bid))
        line3.append("  ask ", pal.muted)
        line3.append(fmt_price(ask))
        if bid is not None and ask is not None:
            spread = ask - bid
            mid = (ask + bid) / 2
            line3.append("  spr ", pal.muted)
            line3.append(fmt_price(spread, price_decimals(mid)))
            if mid > 0:
                line3.append(f" ({spread / mid * 1e4:.1f}bp)", pal.muted)
        return Text("\n").join([line1, line2, line3])


class PairStats(ModelWidget):
    """Indicators, moving averages, last signal and reasoning, position and last decision."""

    def render(self) -> Text:
        assert self.symbol is not None
        pal = self.palette
        st = self.model.pairs[self.symbol].state
        width = self.size.width or 48
        ind = st.ind
        rsi, bb_pos, atr = ind.rsi, ind.bb_pos, ind.atr
        ma_fast, ma_slow = ind.ma_fast, ind.ma_slow

        l1 = Text(no_wrap=True, overflow="ellipsis")
        l1.append("RSI ", pal.muted)
        l1.append(fmt_num(rsi, 1), rsi_style(rsi, pal))
        l1.append("   BB ", pal.muted)
        l1.append(
            fmt_num(bb_pos, 2),
            pal.warn if bb_pos is not None and not 0 <= bb_pos <= 1 else pal.text,
        )
        l1.append("   ATR ", pal.muted)
        l1.append(fmt_price(atr, price_decimals(st.last) if st.last else None))

        l2 = Text(no_wrap=True, overflow="ellipsis")
        l2.append("MA ", pal.muted)
        l2.append(fmt_price(ma_fast))
        l2.append(" / ", pal.muted)
        l2.append(fmt_price(ma_slow))
        if ma_fast is not None and ma_slow is not None:
            l2.append(
                "  fast above" if ma_fast > ma_slow else "  fast below",
                pal.up if ma_fast > ma_slow else pal.down,
            )

        sig = st.signal
        stype = sig.type if sig is not None else ""
        conf = sig.confidence if sig is not None else None
        l3 = Text(no_wrap=True, overflow="ellipsis")
        l3.append("Signal ", pal.muted)
        if stype:
            l3.append(
                stype,
                (pal.up if stype == "BUY" else pal.down if stype == "SELL" else pal.muted)
                + Style(bold=True),
            )
            if conf is not None and stype != "HOLD":
                l3.append(f" {conf * 100:.0f}%")
        else:
            l3.append("—", pal.muted)
        if st.exit_pending:  # an exit the venue has not filled yet outranks the reasoning
            l4 = Text(
                f"exit pending: {st.exit_pending}", pal.warn, no_wrap=True, overflow="ellipsis"
            )
        else:
            reasoning = sig.reasoning if sig is not None else ""
            l4 = Text(reasoning, pal.muted, no_wrap=True, overflow="ellipsis")

        pos = st.position
        side, qty, upnl = position_parts(pos)
        l5 = Text(no_wrap=True, overflow="ellipsis")
        l6 = Text(no_wrap=True, overflow="ellipsis")
        l5.append("Pos ", pal.muted)
        if side and pos is not None:
            l5.append(side, (pal.up if side == "LONG" else pal.down) + Style(bold=True))
            l5.append(f" {fmt_qty(None if qty is None else abs(qty))} @ {fmt_price(pos.entry)}")
            l5.append("  stop ", pal.muted)
            l5.append(fmt_price(pos.stop_loss))
            l6.append("uPnL ", pal.muted)
            l6.append(fmt_usd(upnl, signed=True), pal.sign(upnl) + Style(bold=True))
            notional = pos.notional
            if upnl is not None and notional:
                l6.append(f" ({upnl / notional * 100:+.2f}%)", pal.sign(upnl))
            l6.append("  tp ", pal.muted)
            l6.append(fmt_price(pos.take_profit))
        else:
            l5.append("flat", pal.muted)

        dec = st.decision
        l7 = Text(no_wrap=True, overflow="ellipsis")
        l7.append("Last ", pal.muted)
        if dec is not None:
            approved = dec.approved
            l7.append(
                "APPROVED" if approved else "REJECTED",
                (pal.up if approved else pal.down) + Style(bold=True),
            )
            l7.append(f" {dec.action}")
            if not approved and dec.reasons:
                l7.append(": " + "; ".join(dec.reasons), pal.warn)
        else:
            l7.append("no decision yet", pal.muted)
        lines = [l1, l2, l3, l4, l5, l6, l7]
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines)


class PairPane(Vertical):
    """A pair's pane: the compact row or the full quote + sparkline + stats, by layout class."""

    def __init__(self, model: ConsoleModel, symbol: str) -> None:
        super().__init__(id=pane_id(symbol), classes="pair-pane")
        self.model = model
        self.symbol = symbol
        self.row = PairRow(model, symbol, classes="pair-row")
        self.quote = PairQuote(model, symbol, classes="pair-quote")
        self.spark = CloseSparkline(model, symbol, classes="pair-spark")
        self.stats = PairStats(model, symbol, classes="pair-stats")

    def compose(self) -> ComposeResult:
        yield self.row
        yield self.quote
        yield self.spark
        yield self.stats

    @property
    def view(self) -> PairView:
        return self.model.pairs[self.symbol]

    def set_selected(self, selected: bool) -> None:
        """Called on navigation keystrokes only."""
        self.row.selected = selected
        self.set_class(selected, "-selected")
        self.row.refresh()

    def repaint(self) -> None:
        """The pair changed: redraw text parts (the sparkline follows the chart cadence)."""
        if self.row.display:
            self.row.refresh()
        if self.quote.display:
            self.quote.refresh()
            self.stats.refresh()

    def repaint_chart(self) -> None:
        if self.spark.display:
            self.spark.refresh()

    def text(self) -> str:
        """What the pane shows now, as plain text (for tests and logs)."""
        if self.row.display:
            return self.row.render().plain
        return "\n".join(
            [self.quote.render().plain, self.spark.render().plain, self.stats.render().plain]
        )
