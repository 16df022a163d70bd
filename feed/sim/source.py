"""The ``sim`` source: publishes the model's ticks at a rate, serves history candles."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from feed.errors import UnknownSymbolError
from feed.sim.market import PriceModel, SimMarket
from feed.sim.profiles import (
    HIST_CHUNK,
    HIST_MODEL_CANDLE_S,
    HIST_SUBSTEPS,
    MAX_BAR_SECONDS,
    MAX_BATCH_STEPS,
    MAX_SLEEP_S,
    MIN_SLEEP_S,
)
from feed.source import Publisher
from feed.wire import STATUS_CONNECTED

log = logging.getLogger(__name__)


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
        time_scale: float = 1.0,
    ) -> None:
        self.market = SimMarket(symbols, seed=seed, rate=rate, tiers=tiers, time_scale=time_scale)
        self.symbols = list(self.market.symbols)  # streamed now
        self._names = list(self.market.symbols)  # every symbol modelled, in the market's order
        self._muted: set[str] = set()  # modelled, no longer streamed (``remove_symbols``)
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
        log.info("sim market: seed %s, %.4g ticks/s per pair, %g market s per wall s, %s",
                 self.seed, m.rate, m.time_scale,
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
        symbols, bars, muted = self._names, self._bars, self._muted
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
                    if muted and sym in muted:  # unsubscribed (a safe list reloaded): not streamed
                        continue
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

    def add_symbols(self, symbols: Sequence[str], tiers: Mapping[str, str] | None = None) -> list[str]:
        """Stream more symbols from the next step on, on the same socket (a safe list reloaded);
        the ones added. Their history before now is synthetic, ending at their start price."""
        added = []
        for sym in symbols:
            if sym in self._muted:  # unsubscribed earlier: its model never stopped, stream it again
                self._muted.discard(sym)
                self.symbols.append(sym)
                added.append(sym)
                continue
            if not self.market.add_symbol(sym, (tiers or {}).get(sym)):
                continue
            self._index[sym] = len(self._names)
            self._names.append(sym)
            self.symbols.append(sym)
            self._anchor_ms.append(int(self._clock() * 1000))
            self._anchor_px.append(self.market.profiles[-1].price)
            self._bars.append(_BarLog())
            added.append(sym)
        if added:
            with self._chunk_lock:
                self._chunks.clear()  # chunks hold every symbol's candles: made again with the new ones
            log.info("sim market: now also streaming %s", ", ".join(added))
        return added

    def remove_symbols(self, symbols: Sequence[str]) -> list[str]:
        """Stop streaming these symbols (a safe list reloaded, the engine let them go); the ones
        removed. The model keeps stepping them (the others' prices do not change), unpublished."""
        removed = [s for s in dict.fromkeys(symbols) if s in self.symbols]
        for sym in removed:
            self.symbols.remove(sym)
            self._muted.add(sym)
        if removed:
            log.info("sim market: no longer streaming %s", ", ".join(removed))
        return removed

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
        """HIST_CHUNK candles of every symbol, deterministic in (seed, timeframe, chunk, time
        scale). A candle of ``timeframe_s`` wall seconds holds ``timeframe_s`` x time scale
        market seconds of volatility and volume, as a live candle of that timeframe does."""
        profiles = self.market.profiles
        model = PriceModel(
            profiles,
            f"{self.seed}/history/{timeframe_s}/{chunk}",
            dt_model=HIST_MODEL_CANDLE_S / HIST_SUBSTEPS,
            real_dt=timeframe_s * self.market.time_scale / HIST_SUBSTEPS,
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
