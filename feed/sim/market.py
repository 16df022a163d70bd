"""The simulated market's price model: per-symbol walks with regimes, the market factor."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence

from feed.errors import SourceConfigError
from feed.sim.profiles import (
    DAY_S,
    EMIT_PROB,
    MAX_RATE,
    MAX_TIME_SCALE,
    SymbolProfile,
    symbol_profile,
)

log = logging.getLogger(__name__)


class RegimeWalk:
    """A unit-volatility walk in model time whose drift, volatility and pull switch by regime."""

    __slots__ = ("anchor", "drift", "kind", "left", "rng", "theta", "vol", "x")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.x = 0.0
        self.kind = ""
        self.left = self.drift = self.theta = self.anchor = 0.0
        self.vol = 1.0
        self._switch()

    def _switch(self) -> None:
        r = self.rng
        sign = 1.0 if r.random() < 0.5 else -1.0
        if self.kind == "squeeze":  # a squeeze always resolves into a breakout, either way
            self.kind, self.left = "breakout", r.uniform(60.0, 180.0)
            self.drift, self.vol, self.theta = sign * r.uniform(0.25, 0.45), 1.5, 0.0
        else:
            k = r.random()
            if k < 0.30:
                self.kind, self.left = "walk", r.uniform(120.0, 480.0)
                self.drift, self.vol, self.theta = 0.0, 1.0, 0.0
            elif k < 0.60:
                self.kind, self.left = "trend", r.uniform(150.0, 480.0)
                self.drift, self.vol, self.theta = sign * r.uniform(0.05, 0.12), 1.1, 0.0
            elif k < 0.85:
                self.kind, self.left = "chop", r.uniform(240.0, 720.0)
                self.drift, self.vol, self.theta = 0.0, 0.9, 1.0 / r.uniform(20.0, 60.0)
            else:
                self.kind, self.left = "squeeze", r.uniform(180.0, 420.0)
                self.drift, self.vol, self.theta = 0.0, 0.35, 1.0 / 30.0
        self.anchor = self.x

    def step(self, dt: float, sqdt: float) -> float:
        self.left -= dt
        if self.left <= 0.0:
            self._switch()
        pull = min(self.theta * dt, 1.0) * (self.x - self.anchor)
        dx = self.vol * sqdt * self.rng.gauss(0.0, 1.0) + self.drift * dt - pull
        self.x += dx
        return dx


class PriceModel:
    """All symbols stepped together: the shared factor walk plus one idiosyncratic walk each.

    ``dt_model`` is the step in model seconds (regime clocks, drift); ``real_dt`` the market
    seconds a step stands for (volatility and volume), so history can run the same model at
    candle scale; live, both are the step's wall seconds times the time scale. ``x[k]`` is
    symbol k's log price relative to its start; ``volume[k]`` the base volume traded in the
    last step.
    """

    def __init__(
        self, profiles: Sequence[SymbolProfile], seed_key: str, dt_model: float, real_dt: float
    ) -> None:
        self.dt = dt_model
        self.sqdt = math.sqrt(dt_model)
        self.factor = RegimeWalk(random.Random(f"{seed_key}/market"))
        self.walks = [RegimeWalk(random.Random(f"{seed_key}/{p.symbol}")) for p in profiles]
        scale = math.sqrt(real_dt / dt_model)
        self.sig = [p.sigma_s * scale for p in profiles]
        self.beta = [p.beta for p in profiles]
        self.gamma = [math.sqrt(max(0.0, 1.0 - p.beta * p.beta)) for p in profiles]
        self.vol_step = [p.volume_per_s * real_dt for p in profiles]
        self.x = [0.0] * len(profiles)
        self.volume = [0.0] * len(profiles)
        self._seed_key, self._scale, self._real_dt = seed_key, scale, real_dt

    def add(self, p: SymbolProfile) -> None:
        """One more symbol, from now on (its walk seeded by its name, as at the start)."""
        self.walks.append(RegimeWalk(random.Random(f"{self._seed_key}/{p.symbol}")))
        self.sig.append(p.sigma_s * self._scale)
        self.beta.append(p.beta)
        self.gamma.append(math.sqrt(max(0.0, 1.0 - p.beta * p.beta)))
        self.vol_step.append(p.volume_per_s * self._real_dt)
        self.x.append(0.0)
        self.volume.append(0.0)

    def step(self) -> None:
        dt, sqdt = self.dt, self.sqdt
        df = self.factor.step(dt, sqdt)
        x, volume, sig, beta, gamma, vol_step = (
            self.x, self.volume, self.sig, self.beta, self.gamma, self.vol_step
        )
        for k, walk in enumerate(self.walks):
            d = beta[k] * df + gamma[k] * walk.step(dt, sqdt)
            x[k] += sig[k] * d
            # busier when the price moves: volume follows absolute returns
            volume[k] = vol_step[k] * walk.rng.expovariate(1.0) * (0.5 + 0.5 * abs(d) / sqdt)


class SimMarket:
    """The live simulated market, one ``step()`` at a time, independent of any clock.

    After ``step()``, ``ticked[k]`` says whether symbol k publishes on this step and ``bid``,
    ``ask``, ``last``, ``base_volume``, ``quote_volume`` hold its quote. ``mid`` is updated for
    every symbol on every step. ``next_interval()`` gives the jittered wall time to the next step.

    ``time_scale`` is market seconds per wall second: the model (volatility, drift, regime
    clocks, volume, the rolling 24h window) runs that much faster than the wall clock, while the
    steps per wall second stay those of ``rate``. The demo runs at 30, so a 2 s candle holds a
    market minute.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        seed: int = 0,
        rate: float = 4.0,
        tiers: Mapping[str, str] | None = None,
        time_scale: float = 1.0,
    ) -> None:
        if not symbols:
            raise SourceConfigError("no symbols to simulate: pass --symbols BTC/USDT,...")
        if not (0.0 < rate <= MAX_RATE) or not math.isfinite(rate):
            raise SourceConfigError(f"rate {rate!r} must be in (0, {MAX_RATE:g}] ticks/s per pair")
        if not (0.0 < time_scale <= MAX_TIME_SCALE) or not math.isfinite(time_scale):
            raise SourceConfigError(
                f"time scale {time_scale!r} must be in (0, {MAX_TIME_SCALE:g}] market seconds per second"
            )
        tiers = dict(tiers or {})
        unknown = sorted(set(tiers) - set(symbols))
        if unknown:
            raise SourceConfigError(f"tiers name symbols not streamed: {', '.join(unknown)}")
        self.symbols = list(symbols)
        self.seed = seed
        self.rate = rate
        self.time_scale = time_scale
        self.profiles = [symbol_profile(s, tiers.get(s)) for s in self.symbols]
        n = len(self.symbols)
        self.step_rate = rate / EMIT_PROB  # so each pair publishes ~rate ticks/s
        dt = 1.0 / self.step_rate
        self.step_dt = dt  # wall seconds
        market_dt = dt * time_scale  # the market seconds a step stands for
        self._model = PriceModel(self.profiles, f"{seed}/live", market_dt, market_dt)
        self._timing = random.Random(f"{seed}/timing")
        self._rngs = [w.rng for w in self._model.walks]
        self._p0 = [p.price for p in self.profiles]
        self._half_spread = [p.spread_bps * 0.5e-4 for p in self.profiles]
        self._digits = [p.digits for p in self.profiles]
        self._tick_size = [10.0 ** -p.digits for p in self.profiles]
        # rolling 24h (of market time) volume as an exponential window
        self._decay = max(0.0, 1.0 - market_dt / DAY_S)
        self.steps = 0
        self.mid = list(self._p0)
        self.ticked = [False] * n
        self.bid = list(self._p0)
        self.ask = list(self._p0)
        self.last = list(self._p0)
        self.base_volume = [p.volume_per_s * DAY_S for p in self.profiles]
        self.quote_volume = [p.volume_per_s * DAY_S * p.price for p in self.profiles]
        self.pending_volume = [0.0] * n  # traded since the symbol last published

    def add_symbol(self, symbol: str, tier: str | None = None) -> bool:
        """Simulate one more symbol from the next step on (a safe list reloaded); False when it
        is simulated already. The lists grow in place: a running ``pump`` holds them."""
        if symbol in self.symbols:
            return False
        p = symbol_profile(symbol, tier)
        self.symbols.append(symbol)
        self.profiles.append(p)
        self._model.add(p)
        self._rngs.append(self._model.walks[-1].rng)
        self._p0.append(p.price)
        self._half_spread.append(p.spread_bps * 0.5e-4)
        self._digits.append(p.digits)
        self._tick_size.append(10.0 ** -p.digits)
        for prices in (self.mid, self.bid, self.ask, self.last):
            prices.append(p.price)
        self.ticked.append(False)
        self.base_volume.append(p.volume_per_s * DAY_S)
        self.quote_volume.append(p.volume_per_s * DAY_S * p.price)
        self.pending_volume.append(0.0)
        return True

    def next_interval(self) -> float:
        return self.step_dt * (0.5 + self._timing.random())

    def step(self) -> None:
        model = self._model
        model.step()
        self.steps += 1
        decay = self._decay
        x, volume, p0, mid = model.x, model.volume, self._p0, self.mid
        ticked, pending = self.ticked, self.pending_volume
        bv, qv = self.base_volume, self.quote_volume
        for k, rng in enumerate(self._rngs):
            m = p0[k] * math.exp(x[k])
            mid[k] = m
            v = volume[k]
            bv[k] = bv[k] * decay + v
            qv[k] = qv[k] * decay + v * m
            pending[k] += v
            if rng.random() >= EMIT_PROB:
                ticked[k] = False
                continue
            ticked[k] = True
            half = m * self._half_spread[k] * (0.75 + 0.5 * rng.random())
            dg = self._digits[k]
            bid = round(m - half, dg)
            ask = round(m + half, dg)
            if ask <= bid:
                ask = bid + self._tick_size[k]
            self.bid[k] = bid
            self.ask[k] = ask
            self.last[k] = bid if rng.random() < 0.5 else ask  # seller- or buyer-initiated
