"""The simulated market (``--source sim``): correlated random walks with realistic prices.

Owns the price model and the ``sim`` source. The model, in log price, for symbol i:

    log p_i = log P0_i + sigma_i * (beta_i * F + sqrt(1 - beta_i^2) * Y_i)

where F (the market factor) and Y_i (the symbol's own noise) are unit-volatility walks, each
with its own regime: plain walk, trend burst, mean-reverting chop, or a low-volatility squeeze
followed by a breakout. Regimes last a few minutes, so momentum, mean-reversion and breakout
strategies all see their kind of market within a short demo. BTC and ETH load heavily on the
factor (return correlation ~0.8), SOL less, others by tier.

Every random number comes from ``random.Random`` streams seeded by (seed, symbol), drawn once
per step, so the sequence of prices depends on the seed, the symbols' own streams and the step
rate, never on wall-clock timing. Live and history use the same model: history is the model
run at candle scale, shifted so its last close is the price the live path starts from, followed
by candles built from the ticks actually published since the start.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import zlib
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from feed.errors import SourceConfigError, UnknownSymbolError
from feed.source import Publisher
from feed.wire import STATUS_CONNECTED

log = logging.getLogger(__name__)

TIERS = ("STABLE", "VOLATILE", "MEME")

# Log-return volatility per minute of wall time, by tier (a little livelier than the real market
# so a demo shows signals within minutes).
TIER_VOL_PER_MIN = {"STABLE": 0.0012, "VOLATILE": 0.0025, "MEME": 0.006}
TIER_SPREAD_BPS = {"STABLE": 1.0, "VOLATILE": 3.0, "MEME": 12.0}
TIER_BETA = {"STABLE": 0.8, "VOLATILE": 0.6, "MEME": 0.4}

EMIT_PROB = 0.9  # a symbol publishes on 90 % of model steps: per-pair arrival jitter
MAX_RATE = 100_000.0
MAX_BATCH_STEPS = 2_000  # steps emitted before yielding to the event loop
MIN_SLEEP_S = 0.001  # below this, batch steps instead of sleeping per tick (high rates)
MAX_SLEEP_S = 0.25  # bounds how long a set stop event goes unnoticed
HIST_SUBSTEPS = 16  # model steps per history candle (its high/low come from these)
HIST_CHUNK = 250  # history candles generated per deterministic chunk
HIST_MODEL_CANDLE_S = 60.0  # history runs the model at the 1m scale, volatility rescaled to tf
MAX_BAR_SECONDS = 6 * 3600  # 1-second bars of published ticks kept for history (per symbol)
DAY_S = 86_400.0

_STABLECOINS = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "DAI", "TUSD", "USDP", "USD"})

# base: (USD price, 24h quote volume in USD, default tier, beta to the market factor)
_KNOWN: dict[str, tuple[float, float, str, float]] = {
    "BTC": (60_000.0, 1.5e9, "STABLE", 0.92),
    "ETH": (3_000.0, 8.0e8, "STABLE", 0.88),
    "SOL": (150.0, 3.0e8, "VOLATILE", 0.62),
    "BNB": (580.0, 1.0e8, "VOLATILE", 0.70),
    "XRP": (0.55, 1.5e8, "VOLATILE", 0.60),
    "ADA": (0.45, 4.0e7, "VOLATILE", 0.65),
    "AVAX": (30.0, 4.0e7, "VOLATILE", 0.65),
    "LINK": (14.0, 3.0e7, "VOLATILE", 0.65),
    "DOT": (6.0, 2.0e7, "VOLATILE", 0.60),
    "LTC": (75.0, 3.0e7, "VOLATILE", 0.65),
    "TRX": (0.12, 3.0e7, "VOLATILE", 0.40),
    "TON": (6.0, 3.0e7, "VOLATILE", 0.45),
    "NEAR": (5.0, 3.0e7, "VOLATILE", 0.60),
    "ARB": (0.8, 3.0e7, "VOLATILE", 0.60),
    "OP": (1.8, 2.0e7, "VOLATILE", 0.60),
    "SUI": (1.2, 5.0e7, "VOLATILE", 0.55),
    "APT": (8.0, 2.0e7, "VOLATILE", 0.55),
    "POL": (0.5, 2.0e7, "VOLATILE", 0.60),
    "MATIC": (0.5, 2.0e7, "VOLATILE", 0.60),
    "DOGE": (0.12, 1.0e8, "MEME", 0.50),
    "SHIB": (0.000018, 3.0e7, "MEME", 0.45),
    "PEPE": (0.00001, 6.0e7, "MEME", 0.40),
    "WIF": (2.0, 4.0e7, "MEME", 0.40),
    "BONK": (0.00002, 3.0e7, "MEME", 0.40),
    "FLOKI": (0.00015, 2.0e7, "MEME", 0.40),
}


def _unit_hash(text: str) -> float:
    """A number in [0, 1) fixed by the text (crc32: stable across runs, unlike hash())."""
    return zlib.crc32(text.encode()) / 2**32


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """Static parameters of one simulated symbol."""

    symbol: str
    price: float  # start price (quote units)
    tier: str
    sigma_s: float  # log-return volatility per second of wall time
    beta: float  # loading on the market factor
    spread_bps: float  # typical full bid/ask spread
    volume_per_s: float  # mean traded base volume per second
    digits: int  # price decimals (tick size 10^-digits)


def _usd_price(asset: str) -> float:
    if asset in _STABLECOINS:
        return 1.0
    known = _KNOWN.get(asset)
    if known is not None:
        return known[0]
    return 10.0 ** (2.0 * _unit_hash(asset))  # unknown asset: 1 .. 100, fixed by its name


def symbol_profile(symbol: str, tier: str | None = None) -> SymbolProfile:
    """Start price, tier, volatility, beta, spread and volume for ``symbol`` (e.g. BTC/USDT)."""
    pair = symbol.split(":", 1)[0]
    base, sep, quote = pair.partition("/")
    if not sep or not base or not quote:
        raise SourceConfigError(f"symbol {symbol!r} is not BASE/QUOTE, e.g. BTC/USDT")
    known = _KNOWN.get(base)
    if tier is None:
        tier = known[2] if known else "VOLATILE"
    tier = tier.upper()
    if tier not in TIERS:
        raise SourceConfigError(f"{symbol}: tier {tier!r} is not one of {', '.join(TIERS)}")
    price = _usd_price(base) / _usd_price(quote)
    quote_volume_usd = known[1] if known else 10.0 ** (6.0 + 2.0 * _unit_hash(symbol + "#volume"))
    beta = known[3] if known else TIER_BETA[tier]
    digits = max(2, 6 - math.floor(math.log10(price)))
    return SymbolProfile(
        symbol=symbol,
        price=round(price, digits),
        tier=tier,
        sigma_s=TIER_VOL_PER_MIN[tier] / math.sqrt(60.0),
        beta=beta,
        spread_bps=TIER_SPREAD_BPS[tier],
        volume_per_s=quote_volume_usd / _usd_price(base) / DAY_S,
        digits=digits,
    )


class _Walk:
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


class _Model:
    """All symbols stepped together: the shared factor walk plus one idiosyncratic walk each.

    ``dt_model`` is the step in model seconds (regime clocks, drift); ``real_dt`` the wall
    seconds a step stands for (volatility and volume), so history can run the same model at
    candle scale. ``x[k]`` is symbol k's log price relative to its start; ``volume[k]`` the base
    volume traded in the last step.
    """

    def __init__(
        self, profiles: Sequence[SymbolProfile], seed_key: str, dt_model: float, real_dt: float
    ) -> None:
        self.dt = dt_model
        self.sqdt = math.sqrt(dt_model)
        self.factor = _Walk(random.Random(f"{seed_key}/market"))
        self.walks = [_Walk(random.Random(f"{seed_key}/{p.symbol}")) for p in profiles]
        scale = math.sqrt(real_dt / dt_model)
        self.sig = [p.sigma_s * scale for p in profiles]
        self.beta = [p.beta for p in profiles]
        self.gamma = [math.sqrt(max(0.0, 1.0 - p.beta * p.beta)) for p in profiles]
        self.vol_step = [p.volume_per_s * real_dt for p in profiles]
        self.x = [0.0] * len(profiles)
        self.volume = [0.0] * len(profiles)

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
    """

    def __init__(
        self,
        symbols: Sequence[str],
        seed: int = 0,
        rate: float = 4.0,
        tiers: Mapping[str, str] | None = None,
    ) -> None:
        if not symbols:
            raise SourceConfigError("no symbols to simulate: pass --symbols BTC/USDT,...")
        if not (0.0 < rate <= MAX_RATE) or not math.isfinite(rate):
            raise SourceConfigError(f"rate {rate!r} must be in (0, {MAX_RATE:g}] ticks/s per pair")
        tiers = dict(tiers or {})
        unknown = sorted(set(tiers) - set(symbols))
        if unknown:
            raise SourceConfigError(f"tiers name symbols not streamed: {', '.join(unknown)}")
        self.symbols = list(symbols)
        self.seed = seed
        self.rate = rate
        self.profiles = [symbol_profile(s, tiers.get(s)) for s in self.symbols]
        n = len(self.symbols)
        self.step_rate = rate / EMIT_PROB  # so each pair publishes ~rate ticks/s
        dt = 1.0 / self.step_rate
        self.step_dt = dt
        self._model = _Model(self.profiles, f"{seed}/live", dt, dt)
        self._timing = random.Random(f"{seed}/timing")
        self._rngs = [w.rng for w in self._model.walks]
        self._p0 = [p.price for p in self.profiles]
        self._half_spread = [p.spread_bps * 0.5e-4 for p in self.profiles]
        self._digits = [p.digits for p in self.profiles]
        self._tick_size = [10.0 ** -p.digits for p in self.profiles]
        self._decay = 1.0 - dt / DAY_S  # rolling 24h volume as an exponential window
        self.steps = 0
        self.mid = list(self._p0)
        self.ticked = [False] * n
        self.bid = list(self._p0)
        self.ask = list(self._p0)
        self.last = list(self._p0)
        self.base_volume = [p.volume_per_s * DAY_S for p in self.profiles]
        self.quote_volume = [p.volume_per_s * DAY_S * p.price for p in self.profiles]
        self.pending_volume = [0.0] * n  # traded since the symbol last published

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


class _BarLog:
    """1-second bars of one symbol's published ticks (last price), for history after the start."""

    __slots__ = ("c", "h", "l", "o", "t", "v")

    def __init__(self) -> None:
        self.t = array("q")  # bar start, ms
        self.o, self.h, self.l, self.c, self.v = (array("d") for _ in range(5))

    def add(self, ts_ms: int, price: float, volume: float) -> None:
        sec_ms = ts_ms - ts_ms % 1000
        t = self.t
        if t and t[-1] == sec_ms:
            if price > self.h[-1]:
                self.h[-1] = price
            elif price < self.l[-1]:
                self.l[-1] = price
            self.c[-1] = price
            self.v[-1] += volume
            return
        t.append(sec_ms)
        self.o.append(price)
        self.h.append(price)
        self.l.append(price)
        self.c.append(price)
        self.v.append(volume)

    def __len__(self) -> int:
        return len(self.t)

    def drop_oldest(self, n: int) -> None:
        for col in (self.t, self.o, self.h, self.l, self.c, self.v):
            del col[:n]


# Relative candles of one chunk for one symbol: log(o), log(h), log(l), log(c) against the chunk's
# last close, and volume.
_RelCandles = tuple[list[float], list[float], list[float], list[float], list[float]]


class SimSource:
    """The ``sim`` source: streams SimMarket ticks at ~``rate`` per second per pair."""

    name = "sim"

    def __init__(
        self,
        symbols: Sequence[str],
        seed: int = 0,
        rate: float = 4.0,
        tiers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.market = SimMarket(symbols, seed=seed, rate=rate, tiers=tiers)
        self.symbols = list(self.market.symbols)
        self.seed = seed
        self._index = {s: k for k, s in enumerate(self.symbols)}
        self._clock = clock
        # The live path starts here, at the profile prices; history ends here.
        start = clock()
        start_ms = int(start * 1000)
        self._next_t = start  # when the next model step is due
        self._anchor_ms = [start_ms] * len(self.symbols)
        self._anchor_px = [p.price for p in self.market.profiles]
        self._bars = [_BarLog() for _ in self.symbols]
        self._chunks: OrderedDict[tuple[int, int], list[_RelCandles]] = OrderedDict()
        self._chunk_lock = threading.Lock()

    async def run(self, publisher: Publisher, stop: asyncio.Event) -> None:
        m = self.market
        clock = self._clock
        publisher.set_status(STATUS_CONNECTED, None, 0)
        log.info("sim market: seed %s, %.4g ticks/s per pair, %s", self.seed, m.rate,
                 ", ".join(f"{p.symbol} {p.tier} @ {p.price:g}" for p in m.profiles))
        while not stop.is_set():
            now = clock()
            if now - self._next_t > 1.0:  # suspended or starved: resume now rather than burst
                self._next_t = now
            if self.pump(publisher, now, MAX_BATCH_STEPS) >= MAX_BATCH_STEPS:
                await asyncio.sleep(0)
                continue
            delay = self._next_t - clock()
            await asyncio.sleep(min(max(delay, MIN_SLEEP_S), MAX_SLEEP_S))

    def pump(self, publisher: Publisher, until: float, max_steps: int | None = None) -> int:
        """Run every model step scheduled at or before ``until`` (wall seconds) and publish
        its ticks; returns the number of steps. ``run()`` calls it; tests drive it directly
        with a fake clock."""
        m = self.market
        symbols, bars = self.symbols, self._bars
        ticked, bid, ask, last = m.ticked, m.bid, m.ask, m.last
        bv, qv, pending = m.base_volume, m.quote_volume, m.pending_volume
        publish = publisher.publish_tick
        next_t = self._next_t
        n = 0
        while next_t <= until and (max_steps is None or n < max_steps):
            m.step()
            te = int(next_t * 1000)
            for k, sym in enumerate(symbols):
                if ticked[k]:
                    publish(sym, te, bid[k], ask[k], last[k], bv[k], qv[k])
                    bars[k].add(te, last[k], pending[k])
                    pending[k] = 0.0
            next_t += m.next_interval()
            n += 1
        self._next_t = next_t
        self._trim_bars()
        return n

    def _trim_bars(self) -> None:
        for k, bars in enumerate(self._bars):
            if len(bars) > MAX_BAR_SECONDS:
                # Keep the newest half; older history becomes synthetic, ending where bars begin.
                bars.drop_oldest(len(bars) - MAX_BAR_SECONDS // 2)
                self._anchor_ms[k] = bars.t[0]
                self._anchor_px[k] = bars.o[0]

    async def history(self, symbol: str, timeframe_s: int, limit: int) -> list[list[float]]:
        k = self._index.get(symbol)
        if k is None:
            raise UnknownSymbolError(f"{symbol} is not simulated (streaming: {', '.join(self.symbols)})")
        if type(timeframe_s) is not int or timeframe_s < 1:
            raise ValueError(f"timeframe_s must be a positive integer, got {timeframe_s!r}")
        if type(limit) is not int:
            raise ValueError(f"limit must be an integer, got {limit!r}")
        if limit <= 0:
            return []
        live = self._live_candles(k, timeframe_s, limit)
        need = limit - len(live)
        if need <= 0:
            return live
        chunks = (need + HIST_CHUNK - 1) // HIST_CHUNK
        missing = [c for c in range(chunks) if (timeframe_s, c) not in self._chunks]
        if missing:  # generating is CPU work: keep the event loop (and the ticks) moving
            await asyncio.to_thread(self._ensure_chunks, timeframe_s, chunks)
        return self._synthetic_candles(k, timeframe_s, need) + live

    def history_sync(self, symbol: str, timeframe_s: int, limit: int) -> list[list[float]]:
        """``history()`` without an event loop (tests, tools)."""
        return asyncio.run(self.history(symbol, timeframe_s, limit))

    async def close(self) -> None:
        return None

    # -- history: the part after the start, from published ticks ------------------------------

    def _live_candles(self, k: int, timeframe_s: int, limit: int) -> list[list[float]]:
        tf = timeframe_s * 1000
        b0 = self._anchor_ms[k] // tf * tf
        now_b = int(self._clock() * 1000) // tf * tf
        if now_b <= b0:
            return []
        start = max(b0, now_b - limit * tf)
        bars = self._bars[k]
        t, o, h, lo, c, v = bars.t, bars.o, bars.h, bars.l, bars.c, bars.v
        i = bisect_left(t, start)
        prev = c[i - 1] if i > 0 else self._anchor_px[k]
        out: list[list[float]] = []
        n = len(t)
        for b in range(start, now_b, tf):
            end = b + tf
            if i >= n or t[i] >= end:  # no tick in this candle: flat at the previous close
                out.append([b, prev, prev, prev, prev, 0.0])
                continue
            first = prev if b == b0 else o[i]  # the candle holding the start opens at its price
            hi = max(first, h[i])
            low = min(first, lo[i])
            vol = 0.0
            while i < n and t[i] < end:
                if h[i] > hi:
                    hi = h[i]
                if lo[i] < low:
                    low = lo[i]
                vol += v[i]
                i += 1
            prev = c[i - 1]
            out.append([b, first, hi, low, prev, vol])
        return out

    # -- history: the part before the start, from the model at candle scale --------------------

    def _ensure_chunks(self, timeframe_s: int, chunks: int) -> None:
        for c in range(chunks):
            self._chunk(timeframe_s, c)

    def _chunk(self, timeframe_s: int, chunk: int) -> list[_RelCandles]:
        key = (timeframe_s, chunk)
        with self._chunk_lock:
            cached = self._chunks.get(key)
            if cached is None:
                cached = self._chunks[key] = self._make_chunk(timeframe_s, chunk)
                while len(self._chunks) > 64:  # bounded memory across many timeframes
                    self._chunks.popitem(last=False)
            else:
                self._chunks.move_to_end(key)
            return cached

    def _make_chunk(self, timeframe_s: int, chunk: int) -> list[_RelCandles]:
        """HIST_CHUNK candles of every symbol, deterministic in (seed, timeframe, chunk)."""
        profiles = self.market.profiles
        model = _Model(
            profiles,
            f"{self.seed}/history/{timeframe_s}/{chunk}",
            dt_model=HIST_MODEL_CANDLE_S / HIST_SUBSTEPS,
            real_dt=timeframe_s / HIST_SUBSTEPS,
        )
        n = len(profiles)
        cols: list[_RelCandles] = [([], [], [], [], []) for _ in range(n)]
        x, volume = model.x, model.volume
        for _ in range(HIST_CHUNK):
            opens = list(x)
            highs = list(x)
            lows = list(x)
            vols = [0.0] * n
            for _ in range(HIST_SUBSTEPS):
                model.step()
                for k in range(n):
                    xk = x[k]
                    if xk > highs[k]:
                        highs[k] = xk
                    elif xk < lows[k]:
                        lows[k] = xk
                    vols[k] += volume[k]
            for k in range(n):
                o, h, lo, c, v = cols[k]
                o.append(opens[k])
                h.append(highs[k])
                lo.append(lows[k])
                c.append(x[k])
                v.append(vols[k])
        rel: list[_RelCandles] = []
        for k in range(n):  # relative to the chunk's last close, so it can be shifted anywhere
            end = x[k]
            o, h, lo, c, v = cols[k]
            rel.append((
                [val - end for val in o],
                [val - end for val in h],
                [val - end for val in lo],
                [val - end for val in c],
                v,
            ))
        return rel

    def _synthetic_candles(self, k: int, timeframe_s: int, need: int) -> list[list[float]]:
        tf = timeframe_s * 1000
        b0 = self._anchor_ms[k] // tf * tf
        digits = self.market.profiles[k].digits
        end = math.log(self._anchor_px[k])
        newest_first: list[list[float]] = []
        chunk = 0
        while len(newest_first) < need:
            o, h, lo, c, v = self._chunk(timeframe_s, chunk)[k]
            take = min(need - len(newest_first), HIST_CHUNK)
            for j in range(HIST_CHUNK - 1, HIST_CHUNK - 1 - take, -1):
                ts = b0 - (len(newest_first) + 1) * tf
                newest_first.append([
                    ts,
                    round(math.exp(end + o[j]), digits),
                    round(math.exp(end + h[j]), digits),
                    round(math.exp(end + lo[j]), digits),
                    round(math.exp(end + c[j]), digits),
                    v[j],
                ])
            end += o[0]  # this chunk's first open is the previous chunk's last close
            chunk += 1
        newest_first.reverse()
        return newest_first
