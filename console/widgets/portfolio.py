"""The portfolio bar: how much risk is on, at a glance.

Owns ``PortfolioBar``: the exposure gauge (used $ / max $, %), the correlation gauge
(correlated open positions / max), account figures and a compact correlation matrix of the
active pairs. Below 4 rows or 100 columns it folds into two lines, the matrix becoming the
most correlated couples. Every figure is the engine's ``PortfolioMsg`` (the correlated count is
the cluster its risk check used, HALTED its verdict); the safe list's caps only fill the gauges
until the engine's first snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from console.model import ConsoleModel
from console.widgets.base import ModelWidget
from console.widgets.palette import Palette, fmt_usd, pad_between


@dataclass(frozen=True, slots=True)
class RiskCaps:
    """The safe list's portfolio caps, used until the engine reports its own."""

    exposure_max_usd: float
    correlated_max: int
    corr_threshold: float


def gauge(fraction: float | None, width: int, palette: Palette) -> Text:
    """A bar ``width`` cells wide; green under 70 %, amber under 90 %, red above."""
    f = 0.0 if fraction is None else max(0.0, min(1.0, fraction))
    filled = round(f * width)
    style = palette.up if f < 0.7 else palette.warn if f < 0.9 else palette.error
    out = Text(no_wrap=True)
    out.append("█" * filled, style)
    out.append("░" * (width - filled), palette.muted)
    return out


def short_symbol(symbol: str) -> str:
    return symbol.split("/", 1)[0][:5]


class PortfolioBar(ModelWidget):
    """Exposure and correlation gauges, account figures and the correlation matrix."""

    def __init__(self, model: ConsoleModel, caps: RiskCaps, *, id: str | None = None) -> None:
        super().__init__(model, id=id, classes="portfolio-bar")
        self.caps = caps

    def _figures(self) -> tuple[float | None, float, int, int]:
        pf = self.model.portfolio
        if pf is None:
            return None, self.caps.exposure_max_usd, 0, self.caps.correlated_max
        return pf.exposure_used, pf.exposure_max, pf.correlated_used, pf.correlated_max

    def _threshold(self) -> float:
        """The engine's link threshold once it spoke; the safe list's before."""
        pf = self.model.portfolio
        t = pf.corr.threshold if pf is not None and pf.corr is not None else None
        return t if t is not None else self.caps.corr_threshold

    def _corr(self) -> tuple[list[str], list[list[float | None]]]:
        pf = self.model.portfolio
        return ([], []) if pf is None or pf.corr is None else (pf.corr.symbols, pf.corr.matrix)

    def _corr_pairs(self) -> list[tuple[str, str, float]]:
        """The strongest couples: the engine's top links of all pairs (wire version 2), else
        the shown matrix's couples by |ρ|."""
        pf = self.model.portfolio
        if pf is not None and pf.corr is not None and pf.corr.links:
            return [(k.a, k.b, k.rho) for k in pf.corr.links]
        syms, matrix = self._corr()
        out = []
        for i, a in enumerate(syms):
            row = matrix[i] if i < len(matrix) else []
            for j in range(i + 1, len(syms)):
                v = row[j] if j < len(row) else None
                if v is not None:
                    out.append((a, syms[j], v))
        out.sort(key=lambda t: (-abs(t[2]), t[0], t[1]))
        return out

    def _matrix(self, rows: int) -> list[Text]:
        """Up to ``rows`` lines: a header and one row per symbol; ρ at or over the threshold
        (the engine's live link, ``CorrelationTracker.correlated_with``) in amber."""
        pal = self.palette
        all_syms, matrix = self._corr()
        syms = all_syms[: max(0, rows - 1)]
        if not syms:
            return [Text("ρ  waiting for correlations", pal.muted)]
        head = Text("ρ     ", pal.muted)
        for s in syms:
            head.append(f"{short_symbol(s):>6}", pal.muted)
        lines = [head]
        for i, a in enumerate(syms):
            line = Text(f"{short_symbol(a):<6}", pal.muted)
            row = matrix[i] if i < len(matrix) else []
            for j in range(len(syms)):
                v = row[j] if j < len(row) else None
                if i == j:
                    line.append(f"{'·':>6}", pal.muted)
                elif v is None:
                    line.append(f"{'—':>6}", pal.muted)
                else:
                    hot = v >= self._threshold()
                    line.append(f"{v:>6.2f}", pal.warn if hot else pal.text)
            lines.append(line)
        return lines

    def render(self) -> Text:
        pal = self.palette
        pf = self.model.portfolio
        width = self.size.width or 80
        height = self.size.height or 4
        used, exp_max, cused, cmax = self._figures()
        positions = pf.positions if pf is not None else 0
        exp_frac = None if used is None or not exp_max else used / exp_max
        corr_frac = cused / cmax if cmax else None
        compact = height < 4 or width < 100

        if compact:
            l1 = Text(no_wrap=True, overflow="ellipsis")
            l1.append("Exp ", pal.muted)
            l1.append_text(gauge(exp_frac, 10, pal))
            l1.append(f" {fmt_usd(used)}/{exp_max:,.0f}")
            l1.append(f" {exp_frac * 100:.0f}%" if exp_frac is not None else "", pal.muted)
            l1.append("  Corr ", pal.muted)
            l1.append_text(gauge(corr_frac, 4, pal))
            l1.append(f" {cused}/{cmax}")
            l1.append("  Pos ", pal.muted)
            l1.append(str(positions))
            l2 = Text("ρ ", pal.muted, no_wrap=True, overflow="ellipsis")
            pairs = self._corr_pairs()
            if not pairs:
                l2.append("waiting for correlations", pal.muted)
            for a, b, v in pairs:
                l2.append(f"{short_symbol(a)}·{short_symbol(b)} ")
                l2.append(f"{v:.2f}  ", pal.warn if v >= self._threshold() else pal.text)
            lines = [l1, l2][: max(1, height)]
            for line in lines:
                line.truncate(width, overflow="ellipsis")
            return Text("\n").join(lines)

        gauge_w = 24
        left: list[Text] = []
        l1 = Text(no_wrap=True)
        l1.append("Exposure    ", pal.muted)
        l1.append_text(gauge(exp_frac, gauge_w, pal))
        l1.append(f"  {fmt_usd(used)} / {fmt_usd(exp_max)} USD")
        if exp_frac is not None:
            l1.append(f"  {exp_frac * 100:.1f}%", Style(bold=True))
        left.append(l1)
        l2 = Text(no_wrap=True)
        l2.append("Correlated  ", pal.muted)
        l2.append_text(gauge(corr_frac, gauge_w, pal))
        l2.append(f"  {cused} / {cmax} open in one cluster")
        left.append(l2)
        l3 = Text(no_wrap=True)
        for label, value, signed in (
            ("cash", pf.cash if pf is not None else None, False),
            ("realised", pf.realised if pf is not None else None, True),
            ("unrealised", pf.unrealised if pf is not None else None, True),
            ("fees", pf.fees if pf is not None else None, False),
        ):
            l3.append(f"{label} ", pal.muted)
            l3.append(fmt_usd(value, signed=signed), pal.sign(value) if signed else pal.text)
            l3.append("   ")
        l3.append("positions ", pal.muted)
        l3.append(str(positions), Style(bold=True))
        left.append(l3)
        if self.model.halted:
            left.append(
                Text(" HALTED: kill switch engaged; press r to re-arm ", pal.badge("HALTED"))
            )
        matrix = self._matrix(height)
        lines = []
        for i in range(height):
            lt = left[i] if i < len(left) else Text()
            rt = matrix[i] if i < len(matrix) else Text()
            lines.append(pad_between(lt, rt, width))
        return Text("\n").join(lines)
