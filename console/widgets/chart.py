"""Text-drawn price charts: the one-line sparkline in each pane and the detail screen's chart.

Owns the drawing (closes → Rich Text with block characters, coloured from the palette) and the
two widgets that show it. Both are repainted by the app's chart cadence (2–4 Hz), never per
tick: sparklines are the heaviest output over SSH.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from rich.style import Style
from rich.text import Text

from console.widgets.base import ModelWidget
from console.widgets.palette import DEFAULT_PALETTE, Palette, fmt_price, num, price_decimals

SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def clean_closes(values: Sequence[object]) -> list[float]:
    """Finite numbers only: a malformed close is skipped, never drawn."""
    out: list[float] = []
    for v in values:
        x = num(v)
        if x is not None:
            out.append(x)
    return out


def sparkline(values: Sequence[float], width: int, palette: Palette = DEFAULT_PALETTE) -> Text:
    """The last ``width`` closes as one line of eighth-blocks, green if up over the window."""
    if width <= 0:
        return Text()
    vals = list(values[-width:])
    if len(vals) < 2:
        return Text("·" * min(width, 1), style=palette.muted, no_wrap=True)
    lo, hi = min(vals), max(vals)
    span = hi - lo
    top = len(SPARK_LEVELS) - 1
    if span <= 0:
        chars = SPARK_LEVELS[top // 2] * len(vals)
    else:
        chars = "".join(SPARK_LEVELS[round((v - lo) / span * top)] for v in vals)
    style = palette.up if vals[-1] >= vals[0] else palette.down
    return Text(chars, style=style, no_wrap=True, overflow="crop")


def close_chart(
    values: Sequence[float], width: int, height: int, palette: Palette = DEFAULT_PALETTE
) -> list[Text]:
    """A candle chart drawn from closes, with a price axis.

    Each candle's body spans the previous close to this close (green up, red down), drawn in
    half-cells; one blank column separates candles when the width allows.
    """
    if height <= 0 or width <= 0:
        return []
    vals = list(values)
    if len(vals) < 2:
        msg = Text("waiting for candles…", style=palette.muted)
        return [msg] + [Text() for _ in range(height - 1)]
    lo, hi = min(vals), max(vals)
    if hi == lo:  # a flat market still gets a visible band
        pad = abs(hi) * 0.001 or 1.0
        lo, hi = lo - pad, hi + pad
    decimals = price_decimals(hi)
    labels = [fmt_price(hi, decimals), fmt_price((hi + lo) / 2, decimals), fmt_price(lo, decimals)]
    axis_w = max(len(s) for s in labels) + 2
    plot_w = max(1, width - axis_w)
    # Two columns per candle (body + gap) when they fit, else one, else the newest that fit.
    per = 2 if plot_w >= 2 * (len(vals) - 1) else 1
    vals = vals[-(plot_w // per + 1) :]
    halves = height * 2 - 1
    span = hi - lo

    def level(v: float) -> int:
        return round((v - lo) / span * halves)

    candles: list[tuple[int, int, Style]] = []
    for prev, cur in pairwise(vals):
        a, b = level(prev), level(cur)
        candles.append((min(a, b), max(a, b), palette.up if cur >= prev else palette.down))
    mid_row = height // 2
    lines: list[Text] = []
    for r in range(height):
        if r == 0:
            label = labels[0]
        elif r == height - 1:
            label = labels[2]
        elif r == mid_row and height >= 5:
            label = labels[1]
        else:
            label = ""
        line = Text(
            label.rjust(axis_w - 2) + " ┤" if label else " " * (axis_w - 1) + "│",
            style=palette.muted,
        )
        bottom = (height - 1 - r) * 2  # half-level of this row's lower half
        run, run_style = "", None  # one span per run of a colour: 3-4x fewer bytes to send
        for lo_l, hi_l, style in candles:
            low_half = lo_l <= bottom <= hi_l
            high_half = lo_l <= bottom + 1 <= hi_l
            ch = "█" if low_half and high_half else "▄" if low_half else "▀" if high_half else " "
            if ch != " " and style != run_style:
                if run:
                    line.append(run, run_style)
                run, run_style = "", style
            run += ch + " " if per == 2 else ch  # a blank cell or gap takes any colour
        if run:
            line.append(run, run_style)
        line.no_wrap = True
        lines.append(line)
    return lines


CHART_MIN_ROWS = 4  # a pane with this many rows for its closes draws the chart, not a sparkline


class CloseSparkline(ModelWidget):
    """One pane's recent closes: a sparkline on one row, the candle chart when the board gives
    the pane room (console/screens/fit.py)."""

    def render(self) -> Text:
        assert self.symbol is not None
        pv = self.model.pairs[self.symbol]
        height = self.size.height
        if height >= CHART_MIN_ROWS:
            closes = clean_closes(pv.closes)
            return Text("\n").join(close_chart(closes, self.size.width, height, self.palette))
        return sparkline(clean_closes(pv.closes), self.size.width, self.palette)


class CloseChart(ModelWidget):
    """The detail screen's chart of one pair's closes."""

    def render(self) -> Text:
        assert self.symbol is not None
        pv = self.model.pairs[self.symbol]
        lines = close_chart(
            clean_closes(pv.closes), self.size.width, self.size.height, self.palette
        )
        return Text("\n").join(lines)
