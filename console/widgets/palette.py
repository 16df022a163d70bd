"""Colours and number formats shared by every widget's ``render()``.

Owns ``Palette``: Rich styles derived once from the theme's variables ($primary, $error,
$success, $warning, …), so widgets colour values in ``render()`` instead of toggling CSS
classes per tick, and still follow the theme. Also the trading number formats (prices with
precision by magnitude, signed USD, percentages, ages) so every pane formats alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.color import Color

_EM_DASH = "—"


@dataclass(frozen=True, slots=True)
class Palette:
    """Rich styles for values; built from ``App.get_css_variables()`` on mount and theme change."""

    up: Style
    down: Style
    warn: Style
    error: Style
    accent: Style
    muted: Style
    text: Style
    badge_active: Style
    badge_paused: Style
    badge_reducing: Style
    badge_halted: Style
    badge_stale: Style
    badge_live: Style
    badge_paper: Style
    badge_demo: Style
    selected: Style

    @classmethod
    def from_variables(cls, v: dict[str, str]) -> Palette:
        try:
            bg = Color.parse(v.get("background", "#121212"))
        except Exception:
            bg = Color.parse("#121212")

        def fg(name: str, fallback: str) -> Color:
            try:
                return bg + Color.parse(v.get(name, fallback))
            except Exception:
                return Color.parse(fallback)

        success, error, warning = (
            fg("success", "#4EBF71"),
            fg("error", "#B93C5B"),
            fg("warning", "#FEA62B"),
        )
        primary, foreground = fg("primary", "#0178D4"), fg("foreground", "#E0E0E0")
        muted = fg("foreground-muted", "#A0A0A0")
        dark = Color.parse("#000000").rich_color
        light = Color.parse("#FFFFFF").rich_color

        def on(c: Color, text_color: object) -> Style:
            return Style(color=text_color, bgcolor=c.rich_color, bold=True)  # type: ignore[arg-type]

        return cls(
            up=Style(color=success.rich_color),
            down=Style(color=error.rich_color),
            warn=Style(color=warning.rich_color),
            error=Style(color=error.rich_color, bold=True),
            accent=Style(color=primary.rich_color, bold=True),
            muted=Style(color=muted.rich_color),
            text=Style(color=foreground.rich_color),
            badge_active=on(success, dark),
            badge_paused=on(warning, dark),
            badge_reducing=on(warning, dark),
            badge_halted=on(error, light),
            badge_stale=on(warning, dark),  # a warning, never calm beside a green ACTIVE
            badge_live=on(error, light),
            badge_paper=on(success, dark),
            badge_demo=on(primary, light),
            selected=Style(color=primary.rich_color, bold=True),
        )

    def badge(self, word: str) -> Style:
        return {
            "ACTIVE": self.badge_active,
            "PAUSED": self.badge_paused,
            "REDUCING": self.badge_reducing,
            "HALTED": self.badge_halted,
            "STALE": self.badge_stale,
            "LIVE": self.badge_live,
            "PAPER": self.badge_paper,
            "DEMO": self.badge_demo,
        }.get(word, self.badge_stale)

    def sign(self, x: float | None) -> Style:
        """Green for gains, red for losses, plain for flat or unknown."""
        if x is None or x == 0:
            return self.text
        return self.up if x > 0 else self.down


DEFAULT_PALETTE = Palette.from_variables({})


def num(x: object) -> float | None:
    """A finite float from a wire value, or None; rendering never trusts the wire's types."""
    if type(x) is float:
        return x if math.isfinite(x) else None  # type: ignore[arg-type]
    if type(x) is int:
        return float(x)  # type: ignore[arg-type]
    return None


def price_decimals(x: float) -> int:
    """Decimals that show a price's ticks: 2 for BTC at 65,000, more for coins below 1."""
    ax = abs(x)
    if ax >= 10:
        return 2
    if ax >= 1:
        return 4
    if ax == 0:
        return 2
    return max(2, min(10, 4 - math.floor(math.log10(ax))))


def fmt_price(x: float | None, decimals: int | None = None) -> str:
    if x is None:
        return _EM_DASH
    d = price_decimals(x) if decimals is None else decimals
    return f"{x:,.{d}f}"


def fmt_usd(x: float | None, *, signed: bool = False) -> str:
    if x is None:
        return _EM_DASH
    return f"{x:+,.2f}" if signed else f"{x:,.2f}"


def fmt_pct(x: float | None, decimals: int = 2) -> str:
    if x is None:
        return _EM_DASH
    return f"{x:+.{decimals}f}%"


def fmt_qty(x: float | None) -> str:
    if x is None:
        return _EM_DASH
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 1:
        return f"{x:.4f}".rstrip("0").rstrip(".")
    return f"{x:.8f}".rstrip("0").rstrip(".")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return _EM_DASH
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 600:
        return f"{seconds:.0f}s"
    if seconds < 36000:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def fmt_duration(seconds: float | None) -> str:
    """How long something has lasted: 12s, 3m 12s, 2h 05m, 3d 4h."""
    if seconds is None:
        return _EM_DASH
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fmt_num(x: float | None, decimals: int = 2) -> str:
    if x is None:
        return _EM_DASH
    return f"{x:,.{decimals}f}"


def pad_between(left: Text, right: Text, width: int) -> Text:
    """``left`` then ``right`` flush to the right edge; ``right`` wins when space is short."""
    gap = width - left.cell_len - right.cell_len
    out = left.copy()
    if gap < 1:
        if right.cell_len + 1 >= width:  # not even the right part fits: show what we can of it
            out = right.copy()
            out.truncate(max(0, width), overflow="ellipsis")
            return out
        out.truncate(width - right.cell_len - 1, overflow="ellipsis")
        gap = width - out.cell_len - right.cell_len
    out.append(" " * gap)
    out.append_text(right)
    return out


def badge_text(word: str, palette: Palette) -> Text:
    return Text(f" {word} ", style=palette.badge(word))
