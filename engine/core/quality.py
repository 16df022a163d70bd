"""Bad data never trades: the plausible price band of one pair, and the catch-up rule.

Owns ``PriceBand`` and ``newest_only``.

**The band.** Each pair keeps a reference, the mid of its last confirmed tick (until the first
tick, the warm-up's last close). A tick is plausible when its bid, ask and last all lie within
a factor ``1 + band_pct`` of the reference (the safe list's ``data:`` section, per tier: see
engine/core/config_data.py) and its quote is a quote (``0 < bid <= ask``, finite). After more
than ``WIDENS_AFTER_S`` with no confirmed tick the factor is raised to ``sqrt(silence /
WIDENS_AFTER_S)``: a random walk's spread grows with the square root of time, so a backtest
over hour candles or a feed back from an outage is not held up for moving as far as that much
market moves; a print at a five-hundredth of the price would need days of silence.

A tick outside the band is **quarantined**: it moves nothing (bid, ask, last, the forming
candle, stops and take-profits: the core returns before any of them) and is counted. It is
believed only when the market confirms it: ``confirm_ticks`` ticks in a row, each within the
band of the one before (a chain, so a crash still falling confirms), spanning at least
``confirm_s`` on the core's clock. The core's clock, not the ticks' exchange stamps: live, a
corrupt stream cannot confirm itself with made-up stamps, nor a backlog delivered at once; in
a backtest the clock is the simulated one (``SimClock``: each tick's own time), so the rule
reads the same there. The confirming tick re-centres the band and goes through: stops then
trigger on it. A tick inside the band ends the episode (the suspects before it are
forgotten), so sporadic bad prints never add up to a confirmation. Since fills are priced from
the core's bid and ask, which only confirmed ticks move, no fill is ever priced outside the band.

**The catch-up.** When one tick or one timer flush closes several candles (the gap candles of a
feed pause), every one is committed to the indicators, but only the newest is decided on
(``newest_only``); the core never opens an entry on a gap candle (no tick in it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Final

from engine.core.candles import Candle
from engine.core.config_data import DataConfig
from engine.core.models import Signal, SignalType

log = logging.getLogger("engine")

WIDENS_AFTER_S: Final = 60.0  # band_pct is the move believed within this; it widens after
_INF: Final = math.inf

__all__ = ["WIDENS_AFTER_S", "PriceBand", "gap_entry", "newest_only"]


class PriceBand:
    """One pair's plausible price band; ``admit`` says whether a tick is believed."""

    __slots__ = (
        "confirm_s",
        "confirm_ticks",
        "episode",
        "factor",
        "hi",
        "lo",
        "pct",
        "quarantined",
        "ref",
        "ref_at",
        "released",
        "suspect",
        "suspect_n",
        "suspect_since",
        "symbol",
        "tier",
    )

    def __init__(self, symbol: str = "", tier: str = "STABLE", cfg: DataConfig | None = None) -> None:
        cfg = cfg or DataConfig.model_validate({})  # the defaults (typed without the pydantic plugin)
        self.symbol = symbol
        self.tier = str(tier)
        self.pct = cfg.band_pct.of(self.tier)
        self.factor = 1.0 + self.pct
        self.confirm_ticks = cfg.confirm_ticks
        self.confirm_s = cfg.confirm_s
        self.ref = 0.0  # the last confirmed mid; 0: none yet
        self.ref_at = 0.0  # clock.monotonic() when it was confirmed
        self.lo = self.hi = 0.0  # the band around ``ref`` (empty until there is one)
        self.suspect = 0.0  # the latest quarantined mid: the next suspect must agree with it
        self.suspect_n = 0  # suspects in a row agreeing with each other
        self.suspect_since = 0.0
        self.episode = 0  # ticks quarantined since the last believed one
        self.quarantined = 0  # ticks quarantined, all time
        self.released = 0  # moves outside the band the market confirmed

    def recentre(self, mid: float, now: float) -> None:
        """Believe ``mid``: the band re-centres on it and any quarantine episode ends."""
        f = self.factor
        self.ref, self.ref_at, self.lo, self.hi = mid, now, mid / f, mid * f
        self.episode = self.suspect_n = 0

    def admit(self, bid: float, ask: float, last: float, now: float, seed: float = 0.0) -> bool:
        """True: the tick is believed (the band follows it). False: quarantined, counted.
        ``seed``: the price to centre on before the first tick (the warm-up's last close); with
        none, the first valid tick is believed."""
        lo, hi = self.lo, self.hi
        # the hot path, every tick: inside the band (which also means finite, positive, not
        # crossed; NaN fails every comparison)
        if lo < bid <= ask < hi and lo < last < hi:
            mid = (bid + ask) * 0.5
            f = self.factor
            self.ref, self.ref_at, self.lo, self.hi = mid, now, mid / f, mid * f
            if self.episode:
                self.episode = self.suspect_n = 0
            return True
        return self._outside(bid, ask, last, now, seed)

    def _outside(self, bid: float, ask: float, last: float, now: float, seed: float) -> bool:
        lo, hi = self.lo, self.hi
        valid = 0.0 < bid <= ask < _INF and 0.0 < last < _INF
        if not self.ref and (seed > 0.0 or valid):  # no band yet
            if seed > 0.0:
                self.recentre(seed, now)
                return self.admit(bid, ask, last, now)
            self.recentre((bid + ask) * 0.5, now)
            return True
        if valid:
            silence = now - self.ref_at
            if silence > WIDENS_AFTER_S:  # a long silence: the band widens like a walk's spread
                f = self.factor ** math.sqrt(silence / WIDENS_AFTER_S)
                lo, hi = self.ref / f, self.ref * f
                if lo < bid and ask < hi and lo < last < hi:
                    self.recentre((bid + ask) * 0.5, now)
                    return True
            mid = (bid + ask) * 0.5
            f = self.factor
            s = self.suspect
            if self.suspect_n and s / f < bid and ask < s * f and s / f < last < s * f:
                self.suspect_n += 1
                if self.suspect_n >= self.confirm_ticks and now - self.suspect_since >= self.confirm_s:
                    log.warning(
                        "%s - price confirmed by %d ticks over %.1f s: the band re-centres at %.8g "
                        "(was %.8g, %d tick(s) quarantined)", self.symbol, self.suspect_n,
                        now - self.suspect_since, mid, self.ref, self.episode,
                    )
                    self.released += 1
                    self.recentre(mid, now)
                    return True
            else:
                self.suspect_n, self.suspect_since = 1, now
            self.suspect = mid
            what = f"outside the band {lo:.8g} to {hi:.8g} around the confirmed {self.ref:.8g}"
        else:
            what = "not a valid quote (bid above ask, or a price not positive and finite)"
        self.quarantined += 1
        self.episode += 1
        if self.episode == 1:
            log.warning(
                "%s - tick quarantined: bid %r, ask %r, last %r %s (%s, band ±%g %%); it moves "
                "nothing until %d ticks over %g s confirm it", self.symbol, bid, ask, last, what,
                self.tier, self.pct * 100.0, self.confirm_ticks, self.confirm_s,
            )
        return False


def newest_only(symbol: str, closed: tuple[Candle, ...]) -> Iterator[tuple[Candle, bool]]:
    """The candles one tick or one flush closed, oldest first, each with whether to decide on
    it: only the newest. All are committed (indicators stay aligned to time); deciding on each
    gap candle of a catch-up would trade a minute's worth of signals in a millisecond."""
    n = len(closed)
    if n > 1:
        gaps = sum(1 for c in closed if c.ticks == 0)
        log.info("%s - %d gap candle(s) after a feed pause: indicators updated, only the newest "
                 "candle evaluated", symbol, gaps)
    for i, candle in enumerate(closed):
        yield candle, i == n - 1


def gap_entry(candle: Candle, signal: Signal, qty: float) -> bool:
    """``signal`` would open (or add to) a position on a gap candle, one with no tick in it: the
    core never takes it. An exit (a SELL while long, a BUY while short) is not one."""
    t = signal.type
    return not candle.ticks and ((t is SignalType.BUY and qty >= 0.0) or (t is SignalType.SELL and qty <= 0.0))
