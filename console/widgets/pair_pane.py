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
from textual.widget import Widget

from console.model import ConsoleModel, PairView
from console.reasons import action_words, brief_words, find_decision, fit_words, fmt_reason, hms_ms
from console.widgets.base import ModelWidget
from console.widgets.chart import CloseSparkline
from console.widgets.palette import (
    Palette,
    badge_text,
    fmt_age,
    fmt_duration,
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


ROW_WIDTH = sum(w for _, w, _ in ROW_COLUMNS)  # 74
NARROW_DROPS = frozenset({3, 6})  # below ROW_WIDTH columns: no CHG, no RSI (60 columns fit)
STATS_EVERY = 2  # a full pane's stats follow every 2nd price turn: 2 Hz at 4 Hz


def row_columns(width: int) -> frozenset[int]:
    """The compact row's columns shown at ``width``: all, or all but CHG and RSI."""
    every = frozenset(range(len(ROW_COLUMNS)))
    return every if width >= ROW_WIDTH else every - NARROW_DROPS


def pane_id(symbol: str) -> str:
    """A DOM id for a symbol (ids allow no '/' or ':')."""
    return "pane-" + symbol.replace("/", "-").replace(":", "_")


def rsi_style(rsi: float | None, palette: Palette) -> Style:
    if rsi is None:
        return palette.muted
    if rsi >= 70 or rsi <= 30:
        return palette.warn
    return palette.text


def warming(model: ConsoleModel, pv: PairView) -> str:
    """"warming up: 42/60 candles" while the pair's indicators fill (the engine's count), or
    while the engine loads history before the pair's first state; "" once warm."""
    st = pv.state
    have, need = st.warm_candles, st.warm_need
    if have is not None and need is not None and have < need:
        return f"warming up: {have}/{need} candles"
    if pv.received_at is None and model.children["engine"].phase == "warming":
        return "warming up: loading history"
    return ""


def position_parts(pos: PositionMsg | None) -> tuple[str, float | None, float | None]:
    """(side word, qty, unrealised) of the engine's position; ("", None, None) when flat."""
    if pos is None or pos.qty == 0.0:
        return "", None, None
    return pos.side.upper(), pos.qty, pos.unrealised


class ChangeGated:
    """A text part refreshed only when its text changed: most ticks move no digit that is
    shown, and a refresh sends the part's every line to the terminal. ``draw()`` builds the
    text; the one built to compare is the one ``render()`` hands Textual (built once)."""

    _shown: Text | None = None  # what the terminal shows
    _next: Text | None = None  # built by repaint_changed, not yet rendered

    def draw(self) -> Text:
        raise NotImplementedError

    def render(self) -> Text:
        text = self._next if self._next is not None else self.draw()
        self._next = None
        self._shown = text
        return text

    def repaint_changed(self) -> None:
        text = self.draw()
        if text != self._shown:
            self._next = text
            self.refresh()  # type: ignore[attr-defined]


class PairRow(ChangeGated, ModelWidget):
    """The compact one-line view of a pair: symbol, price, change, badge, RSI, position, uPnL."""

    selected = False

    def draw(self) -> Text:
        assert self.symbol is not None
        pal = self.palette
        pv = self.model.pairs[self.symbol]
        st = pv.state
        badge = pv.badge(self.model.now())
        chg = st.change_pct
        side, qty, upnl = position_parts(st.position)
        rsi = st.ind.rsi
        pos_text = f"{side} {fmt_qty(abs(qty))}" if side and qty is not None else "flat"
        warm = "" if side else warming(self.model, pv)
        if warm:  # "warm 42/60": the candles the indicators have and need
            counts = warm.removeprefix("warming up: ").removesuffix(" candles")
            pos_text = f"warm {counts}" if counts[:1].isdigit() else "warming up"
        badge_word = f" {badge} "
        width = self.size.width or 80
        shown = row_columns(width)
        line = Text(no_wrap=True, overflow="ellipsis")

        def cell(column: int, value: str, style: Style | str = "") -> None:
            if column in shown:
                line.append(_cell(value, column), style)

        cell(0, "▸" if self.selected else "", pal.selected)
        cell(1, pv.symbol, pal.selected if self.selected else Style(bold=True))
        cell(2, fmt_price(st.last), pal.muted if badge == "STALE" else pal.sign(chg))
        cell(3, fmt_pct(chg), pal.sign(chg))
        cell(4, "")
        line.append(badge_word, pal.badge(badge))
        line.append(" " * max(0, ROW_COLUMNS[5][1] - len(badge_word)))
        cell(6, "—" if rsi is None else f"{rsi:.1f}", rsi_style(rsi, pal))
        cell(7, "")
        cell(8, pos_text, pal.text if side else pal.warn if warm else pal.muted)
        cell(9, fmt_usd(upnl, signed=True) if side else "", pal.sign(upnl))
        line.truncate(width, overflow="ellipsis")
        return line


class PairPosLine(ModelWidget):
    """The line under the selected compact row: the position's entry, stop, take-profit and
    age (what the full pane shows and one row cannot), or why a flat pair is not trading."""

    def render(self) -> Text:
        assert self.symbol is not None
        pal = self.palette
        pv = self.model.pairs[self.symbol]
        st = pv.state
        width = self.size.width or 80
        pos = st.position
        side, qty, _ = position_parts(pos)
        if not side or pos is None:
            line = Text("  ", no_wrap=True, overflow="ellipsis")
            warm = warming(self.model, pv)
            if st.exit_pending:
                line.append(f"exit pending: {st.exit_pending}", pal.warn)
            elif warm:
                line.append(warm, pal.warn)
            else:
                line.append("flat", pal.muted)
                sig = st.signal
                if sig is not None and sig.reasoning:
                    line.append(f" · {sig.type} {fmt_reason(sig.reasoning, st.last)}", pal.muted)
            return fit_words(line, width)  # a number in the reason: whole or not at all
        age = None
        if pos.opened_ts > 0:
            age = self.model.wall() - pos.opened_ts / 1000.0
        for long in (True, False):
            line = Text("  ", no_wrap=True, overflow="ellipsis")
            line.append(side, (pal.up if side == "LONG" else pal.down) + Style(bold=True))
            line.append(f" {fmt_qty(None if qty is None else abs(qty))} @ ", pal.text)
            line.append(fmt_price(pos.entry), Style(bold=True))
            line.append("  stop " if long else " SL ", pal.muted)
            line.append(fmt_price(pos.stop_loss))
            line.append("  tp " if long else " TP ", pal.muted)
            line.append(fmt_price(pos.take_profit))
            line.append("  age " if long else " ", pal.muted)
            line.append(fmt_duration(age))
            if st.exit_pending:
                line.append(f"  exit pending: {st.exit_pending}", pal.warn)
            if line.cell_len <= width:
                break
        line.truncate(width, overflow="ellipsis")
        return line


def _cell(value: str, column: int) -> str:
    _, width, right = ROW_COLUMNS[column]
    value = value[:width]
    return value.rjust(width) if right else value.ljust(width)


def row_header(width: int = ROW_WIDTH) -> Text:
    shown = row_columns(width)
    line = Text(no_wrap=True, overflow="ellipsis")
    for i, (title, w, right) in enumerate(ROW_COLUMNS):
        if i in shown:
            line.append(title.rjust(w) if right else title.ljust(w))
    line.truncate(width, overflow="ellipsis")
    return line


class PairRowHeader(Widget):
    """Column titles above the compact rows (only displayed in the compact layout)."""

    def __init__(self) -> None:
        super().__init__(id="pair-row-header")

    def render(self) -> Text:
        return row_header(self.size.width or ROW_WIDTH)


class PairQuote(ChangeGated, ModelWidget):
    """Three lines: tier · strategy and state badges; price and change with tick age; the book."""

    def draw(self) -> Text:
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


class PairStats(ChangeGated, ModelWidget):
    """Indicators, moving averages, last signal and reasoning, position and last decision."""

    def draw(self) -> Text:
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
        l2.append("MA live ", pal.muted)  # the forming candle's preview; the reason: a closed one
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
            if sig is not None and sig.ts:
                l3.append(f" · closed candle {hms_ms(sig.ts)}", pal.muted)
        else:
            l3.append("—", pal.muted)
        warm = warming(self.model, self.model.pairs[self.symbol])
        if st.exit_pending:  # an exit the venue has not filled yet outranks the reasoning
            l4 = Text(
                f"exit pending: {st.exit_pending}", pal.warn, no_wrap=True, overflow="ellipsis"
            )
        elif warm:  # the strategy cannot decide yet: say how far it is
            l4 = Text(warm, pal.warn, no_wrap=True, overflow="ellipsis")
        else:
            reasoning = fmt_reason(sig.reasoning, st.last) if sig is not None else ""
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
            if approved:  # what it was: an entry, or which exit (a refusal: its reasons)
                full = find_decision(self.model.decisions, self.symbol, dec.ts, dec.action)
                l7.append(f" {action_words(full) if full else brief_words(dec.action)}")
            elif dec.reasons:
                l7.append(" " + "; ".join(fmt_reason(r, st.last) for r in dec.reasons), pal.warn)
            else:
                l7.append(f" {brief_words(dec.action)}")
        else:
            l7.append("no decision yet", pal.muted)
        lines = [fit_words(line, width) for line in (l1, l2, l3, l4, l5, l6, l7)]  # numbers whole
        return Text("\n").join(lines)


class PairPane(Vertical):
    """A pair's pane: the compact row or the full quote + sparkline + stats, by layout class."""

    def __init__(self, model: ConsoleModel, symbol: str) -> None:
        super().__init__(id=pane_id(symbol), classes="pair-pane")
        self.model = model
        self.symbol = symbol
        self.row = PairRow(model, symbol, classes="pair-row")
        self.posline = PairPosLine(model, symbol, classes="pair-posline")  # compact, selected
        self.quote = PairQuote(model, symbol, classes="pair-quote")
        self.spark = CloseSparkline(model, symbol, classes="pair-spark")
        self.stats = PairStats(model, symbol, classes="pair-stats")
        self._turns = 0  # repaints, for the stats' slower turn

    def compose(self) -> ComposeResult:
        yield self.row
        yield self.posline
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

    def repaint(self, full: bool = True) -> None:
        """The pair changed: redraw text parts (the sparkline follows the chart cadence).
        ``full`` False: a price turn, the stats (seven lines of live indicators, most of a
        pane's terminal bytes) only every ``STATS_EVERY`` turns."""
        self._turns += 1
        if self.row.display:
            self.row.repaint_changed()
            if self.posline.display:  # the selected row's only
                self.posline.refresh()
        if self.quote.display:
            self.quote.repaint_changed()
            if full or self._turns % STATS_EVERY == 0:
                self.stats.repaint_changed()

    def repaint_chart(self) -> None:
        if self.spark.display:
            self.spark.refresh()

    def text(self) -> str:
        """What the pane shows now, as plain text (for tests and logs)."""
        if self.row.display:
            if self.posline.display and self.has_class("-selected"):
                return self.row.render().plain + "\n" + self.posline.render().plain
            return self.row.render().plain
        return "\n".join(
            [self.quote.render().plain, self.spark.render().plain, self.stats.render().plain]
        )
