"""The kill switch's progress panel: one line per pair, the ack above, the exchange below.

Owns ``KillProgressPanel``, which the board shows in place of the decision log once the
operator confirms a kill or a flatten-all (``MainScreen.show_progress``) until Escape, and
``pair_line``/``trail``. It draws a ``console.kill_progress.KillProgress``: each pair's stage
(HALTED, cancelling, cancelled, closing, flat ✓, failed, blocked) then its trail (what it held,
each order's latest state, the reason of a failure), the newest step kept when the line is
short. When the pairs do not fit, the flat ones fold into one line: what is not done shows.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from console.kill_progress import (
    CANCELLED,
    CANCELLING,
    CLOSING,
    FLAT,
    PROBLEMS,
    KillProgress,
    OrderStep,
    PairProgress,
)
from console.widgets.palette import DEFAULT_PALETTE, Palette, fmt_price, fmt_qty, pad_between

TITLES = {"kill": "KILL SWITCH", "flatten_all": "FLATTEN ALL"}
STAGE_WIDTH = 12
ARROW = " › "
EXCHANGE = "exchange  "


def step_text(o: OrderStep) -> str:
    """One order as the trail shows it: what it is now."""
    qty = f"{o.side} {fmt_qty(o.qty)}"
    s = o.status
    if s == "cancelled":
        return f"{o.reason or 'order'} cancelled"
    if o.before:
        return f"{o.reason or 'order'} order open"
    if s == "rejected":
        return f"{qty} rejected" + (f": {o.message}" if o.message else "")
    if 0.0 < o.filled_qty < o.qty and s != "filled":
        return f"{o.side} {fmt_qty(o.filled_qty)}/{fmt_qty(o.qty)} @ {fmt_price(o.price)}"
    if s == "filled" or o.filled_qty > 0.0:
        return f"{qty} @ {fmt_price(o.price)}" if o.price > 0.0 else f"{qty} filled"
    if s in ("new", "accepted"):
        return f"{qty} sent"
    if s == "unknown":
        return f"{qty} outcome unknown"
    return f"{qty} {s}"


def trail(p: PairProgress) -> list[str]:
    """What the pair held at the kill, then each of its orders, then a failure's reason."""
    steps = [f"{p.side.upper()} {fmt_qty(p.qty)}"] if p.side else []
    steps += [step_text(o) for o in sorted(p.orders.values(), key=lambda o: o.at)]
    stage = p.stage
    if stage in PROBLEMS and p.why and not _rejected_last(p):  # a rejection says why itself
        steps.append(p.why)
    elif stage == CLOSING and p.exit_pending and not p.orders and " " in p.exit_pending:
        steps.append(f"exit pending: {p.exit_pending}")
    elif stage == FLAT and p.fallback_flat:
        steps.append("closed by the daemon's fallback")
    elif stage == FLAT and not p.orders and p.side:
        steps.append("closed" if p.ack_flat else "no position left")
    return steps


def _rejected_last(p: PairProgress) -> bool:
    last = p.last_order()
    return last is not None and last.status == "rejected" and last.at > p.problem_at


def stage_style(stage: str, pal: Palette) -> Style:
    if stage == FLAT:
        return pal.up + Style(bold=True)
    if stage in PROBLEMS:
        return pal.error
    if stage in (CLOSING, CANCELLING, CANCELLED):
        return pal.warn + Style(bold=True)
    return pal.badge_halted if stage == "HALTED" else pal.muted


def pair_line(p: PairProgress, pal: Palette, width: int, sym_width: int) -> Text:
    """``SYMBOL  stage  held › step › step``; the trail loses its oldest steps first."""
    stage = p.stage
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{p.symbol:<{sym_width}}  ", Style(bold=True))
    line.append(stage, stage_style(stage, pal))
    line.append(" " * max(1, STAGE_WIDTH - len(stage)))
    room = width - line.cell_len
    steps, cut = trail(p), False
    while len(steps) > 1 and len(ARROW.join(["…", *steps] if cut else steps)) > room:
        steps, cut = steps[1:], True
    if cut:
        steps = ["…", *steps]
    for i, s in enumerate(steps):
        if i:
            line.append(ARROW, pal.muted)
        last = i == len(steps) - 1
        line.append(
            s, (stage_style(stage, pal) if stage in PROBLEMS else pal.text) if last else pal.muted
        )
    return line


def wrapped(line: Text, width: int, indent: int, rows: int) -> list[Text]:
    """``line`` word-wrapped over at most ``rows`` rows of ``width``, the later ones indented;
    an ellipsis ends it when it does not fit."""
    plain, out, start = line.plain, [], 0
    while start < len(plain) and len(out) < rows:
        room = width if not out else max(1, width - indent)
        end = len(plain)
        if end - start > room:
            cut = plain.rfind(" ", start, start + room + 1)
            end = cut if cut > start else start + room
        out.append(line[start:end] if not out else Text(" " * indent) + line[start:end])
        start = end
        while start < len(plain) and plain[start] == " ":
            start += 1
    if start < len(plain):
        out[-1] = out[-1][: width - 1] + Text("…")
    return out or [Text("")]


class KillProgressPanel(Widget):
    """The progress of the last kill or flatten-all; hidden until one is confirmed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.progress: KillProgress | None = None
        self.painted = -1  # the progress's version last drawn

    @property
    def palette(self) -> Palette:
        return getattr(self.app, "palette", DEFAULT_PALETTE)

    def show(self, progress: KillProgress) -> None:
        self.progress = progress
        self.painted = -1
        self.repaint()

    @property
    def stale(self) -> bool:
        """Shown, and the progress changed since it was last drawn."""
        return self.display and self.progress is not None and self.progress.version != self.painted

    def repaint(self) -> None:
        """Draw if the progress changed since the last frame (the app's timer calls it)."""
        if self.stale:
            self.refresh()

    def render(self) -> Text:
        kp, pal = self.progress, self.palette
        width = self.size.width or 80
        height = self.size.height or 8
        if kp is None:
            return Text("")
        self.painted = kp.version
        lines = [self._title(kp, pal, width), self._ack_line(kp, pal)]
        rows = list(kp.pairs.values())
        if not rows:
            lines.append(Text("nothing was open: no position, no open order", pal.muted))
        elif len(rows) > height - 3:  # fold the flat ones: what is not done must show
            flat = [p.symbol for p in rows if p.stage == FLAT]
            rows = [p for p in rows if p.stage != FLAT]
            if flat:
                lines.append(Text(f"{FLAT} {len(flat)}: " + ", ".join(flat), pal.up))
        room = max(1, height - len(lines) - 1)  # the exchange line last
        shown = rows if len(rows) <= room else rows[: room - 1]
        sym_width = max((len(p.symbol) for p in shown), default=8)
        more = len(rows) - len(shown)
        spare = room - len(shown) - (1 if more else 0)  # rows left for a failure's reason
        indent = sym_width + 2 + STAGE_WIDTH
        for p in shown:
            extra = min(2, spare) if p.stage in PROBLEMS else 0  # a reason gets 3 rows at most
            line = pair_line(p, pal, width + extra * (width - indent), sym_width)
            parts = wrapped(line, width, indent, 1 + extra)
            spare -= len(parts) - 1
            lines += parts
        if more:
            lines.append(Text(f"+{more} more not flat", pal.warn))
        exchange = self._exchange_line(kp, pal)  # what is left at the exchange: 2 rows if free
        lines += wrapped(
            exchange, width, len(EXCHANGE), 1 + max(0, min(1, height - len(lines) - 1))
        )
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return Text("\n").join(lines)

    @staticmethod
    def _title(kp: KillProgress, pal: Palette, width: int) -> Text:
        n = kp.counts()
        left = Text(TITLES.get(kp.cmd, kp.cmd), pal.error)
        parts = [f"{n['flat']}/{len(kp.pairs)} flat"]
        if n["busy"]:
            parts.append(f"{n['busy']} in progress")
        if n["problem"]:
            parts.append(f"{n['problem']} failed/blocked")
        left.append("  " + " · ".join(parts), pal.text)
        if kp.done:
            left.append("  done", pal.up + Style(bold=True))
        return pad_between(left, Text("esc close", pal.muted), width)

    @staticmethod
    def _ack_line(kp: KillProgress, pal: Palette) -> Text:
        ack = kp.ack
        if ack is None:
            return Text("waiting for the engine's answer…", pal.warn)
        verdict = ("fallback " if ack.fallback else "") + ("ok" if ack.ok else "FAILED")
        style = pal.error if not ack.ok else pal.warn if ack.fallback else pal.up
        line = Text(f"ack {verdict} ({kp.ack_ms:.0f} ms) — ", style)
        line.append(ack.message, pal.muted if ack.ok else pal.error)
        return line

    @staticmethod
    def _exchange_line(kp: KillProgress, pal: Palette) -> Text:
        level, text = kp.exchange()
        mark, style = {
            "info": ("✓ ", pal.up),
            "warning": ("! ", pal.warn),
            "error": ("✗ ", pal.error),
            "pending": ("… ", pal.warn),
        }.get(level, ("", pal.muted))
        line = Text(EXCHANGE, pal.accent)
        line.append(mark + text, style)
        return line
