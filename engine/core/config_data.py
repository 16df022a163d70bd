"""The safe list's ``data:`` section: when a tick's price is believed (engine/core/quality.py).

A tick whose bid, ask or last lies outside a band around the pair's last confirmed mid is
quarantined until the ticks after it confirm it. The band is a factor: with ``band_pct`` b a
price is plausible between ``ref / (1 + b)`` and ``ref × (1 + b)`` (about ±b). It is the
widest move believed within a minute; after a longer silence it widens with the square root of
the time (a random walk's spread), so a candle backtest of hours or a feed back from an outage
is not quarantined for moving as far as such a stretch of market moves.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# Per tier, the widest move believed within a minute. BTC and ETH (STABLE) move 5 % inside one
# minute about once in years; SOL-like pairs (VOLATILE) 10 %, a meme coin 25 %. A real move
# that large still gets through: the ticks after it confirm it within ``confirm_s``.
class BandPct(_Strict):
    STABLE: float = Field(0.05, ge=0.005, le=1.0)
    VOLATILE: float = Field(0.10, ge=0.005, le=1.0)
    MEME: float = Field(0.25, ge=0.005, le=1.0)

    def of(self, tier: str) -> float:
        return float(getattr(self, str(tier)))


class DataConfig(_Strict):
    """Bad data never trades: the plausible price band and how the market confirms a move."""

    band_pct: BandPct = BandPct()
    # a price outside the band is believed when this many ticks in a row agree with it ...
    confirm_ticks: int = Field(3, ge=2, le=1000)
    # ... over at least this long on the core's clock (the simulated clock in a backtest)
    confirm_s: float = Field(2.0, ge=0.0, le=600.0)
