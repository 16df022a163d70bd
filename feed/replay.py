"""Replay of recorded market data (``--source replay``): a CSV or Parquet file of candles or ticks.

Owns loading and validating the file (pandas, at load time only), turning it into one
time-ordered list of ticks, and pacing them at ``speed`` x real time (0 = as fast as possible).

File shapes (column names are case-insensitive; ``ts`` is epoch s/ms/us/ns or ISO-8601 text):

- candles: ``ts, symbol, open, high, low, close, volume``; ``ts`` is the candle's open time.
  Each candle becomes four ticks at 0, 30, 60 and 90 % of its interval: open, then low and high
  (low first when the candle closed up, high first when it closed down), then close, with a
  ``spread_bps`` spread around each price.
- ticks: ``ts, symbol, bid, ask, last[, volume]``; ``volume`` is taken as the 24h base volume.

History, the choice made here: for a candle file the first ``warmup`` candles of each symbol
(at most half of them) are history: ``history()`` serves them (aggregated to any multiple of the
file's interval) and they are not replayed, so an engine warms up on exactly the candles that
precede the first replayed tick. A tick file has no candles before its first tick, so its
``history()`` is empty.

Start: by default the replay waits for its first tick subscriber (the publisher sees XPUB
subscriptions), so a fast replay is not over before the engine connects; ``wait_for_subscriber=
False`` (CLI ``--no-wait``) starts at once.

Time: every timestamp is shifted by one offset, a whole number of the file's intervals, that
puts the first replayed candle at the next boundary at or after the moment streaming starts
(history served before then is re-placed with it). Ticks therefore carry the file's clock
(candles built from them line up with the file's), never behind the wall clock; at ``speed`` > 1
they run ahead of it. With ``loop`` the file starts again, shifted by its span, so time keeps
moving forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from feed.errors import SourceConfigError, UnknownSymbolError
from feed.source import Publisher
from feed.wire import STATUS_CONNECTED, STATUS_STALE

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

CANDLE_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
TICK_COLUMNS = ("ts", "symbol", "bid", "ask", "last")
TICK_FRACTIONS = (0.0, 0.3, 0.6, 0.9)  # where in a candle its four ticks fall
YIELD_EVERY = 512  # ticks published between yields to the event loop at full speed
MIN_SLEEP_S = 0.002
DAY_MS = 86_400_000


def _ts_to_ms(col: pd.Series, name: str) -> np.ndarray:
    """Epoch seconds / ms / us / ns, or date-time text, to int64 ms since the epoch."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        values = col.to_numpy(dtype="float64")
        if not np.isfinite(values).all():
            raise SourceConfigError(f"{name}: column 'ts' has empty or non-finite values")
        biggest = float(np.abs(values).max()) if len(values) else 0.0
        scale = 1e3 if biggest < 1e11 else 1.0 if biggest < 1e14 else 1e-3 if biggest < 1e17 else 1e-6
        return np.round(values * scale).astype("int64")
    try:
        stamps = pd.to_datetime(col, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        try:
            stamps = pd.to_datetime(col, utc=True, format="mixed")
        except (ValueError, TypeError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SourceConfigError(
                f"{name}: column 'ts' is neither epoch numbers nor dates ({first_line})"
            ) from None
    if stamps.isna().any():
        raise SourceConfigError(f"{name}: column 'ts' has empty values")
    # pandas picks the resolution (s, ms, us, ns) from the text: convert explicitly
    return stamps.dt.as_unit("ms").astype("int64").to_numpy(dtype="int64")


class ReplaySource:
    """The ``replay`` source: ticks from a file of candles or ticks, paced at ``speed``."""

    name = "replay"

    def __init__(
        self,
        path: str | Path,
        symbols: Sequence[str],
        speed: float = 1.0,
        loop: bool = False,
        *,
        warmup: int = 500,
        spread_bps: float = 2.0,
        wait_for_subscriber: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (speed >= 0.0 and math.isfinite(speed)):
            raise SourceConfigError(f"speed {speed!r} must be >= 0 (0 = as fast as possible)")
        if not symbols:
            raise SourceConfigError("no symbols to replay: pass --symbols BTC/USDT,...")
        self.path = Path(path)
        self.symbols = list(symbols)
        self.speed = speed
        self.loop = loop
        self.wait_for_subscriber = wait_for_subscriber
        self._clock = clock
        self._half_spread = spread_bps * 0.5e-4
        self.kind = ""  # "candles" or "ticks"
        self.interval_ms = 0  # the file's candle interval (candle files)
        self.skipped_rows = 0
        self._history: dict[str, np.ndarray] = {}  # symbol -> rows [ts, o, h, l, c, v], unshifted
        self._replay_start: dict[str, int] = {}  # symbol -> its first replayed candle, unshifted
        t0 = time.perf_counter()
        frame = self._read()
        self._build(frame, warmup)
        log.info(
            "replay %s: %d %s rows, %d ticks to replay for %s (%d bad rows skipped) in %.2fs",
            self.path, len(frame), self.kind, len(self._ev_ts), ", ".join(self.symbols),
            self.skipped_rows, time.perf_counter() - t0,
        )

    # -- loading ------------------------------------------------------------------------------

    def _read(self) -> pd.DataFrame:
        import pandas as pd

        name = str(self.path)
        if not self.path.is_file():
            raise SourceConfigError(f"replay file {name} does not exist (pass --replay-file PATH)")
        try:
            if self.path.suffix.lower() in (".parquet", ".pq"):
                frame = pd.read_parquet(self.path)
            else:
                frame = pd.read_csv(self.path)
        except ImportError:
            raise SourceConfigError(
                f"{name}: reading Parquet needs pyarrow or fastparquet, which are not installed; "
                "convert the file to CSV"
            ) from None
        except Exception as exc:  # pandas raises many parser error types
            raise SourceConfigError(f"{name}: cannot read: {type(exc).__name__}: {exc}") from None
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        if {"open", "high", "low", "close"} <= set(frame.columns):
            self.kind, required = "candles", CANDLE_COLUMNS
        elif {"bid", "ask", "last"} <= set(frame.columns):
            self.kind, required = "ticks", TICK_COLUMNS
        else:
            raise SourceConfigError(
                f"{name}: columns {list(frame.columns)} are neither candles "
                f"({', '.join(CANDLE_COLUMNS)}) nor ticks ({', '.join(TICK_COLUMNS)}[, volume])"
            )
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise SourceConfigError(f"{name}: missing column(s) {', '.join(missing)}")
        frame["symbol"] = frame["symbol"].astype(str).str.strip()
        absent = [s for s in self.symbols if not (frame["symbol"] == s).any()]
        if absent:
            have = sorted(frame["symbol"].unique().tolist())[:10]
            raise SourceConfigError(
                f"{name}: no rows for {', '.join(absent)} (the file has: {', '.join(have)})"
            )
        return frame[frame["symbol"].isin(self.symbols)].copy()

    def _clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        name = str(self.path)
        frame["ts"] = _ts_to_ms(frame["ts"], name)
        price_cols = ["open", "high", "low", "close"] if self.kind == "candles" else ["bid", "ask", "last"]
        if "volume" not in frame.columns:
            frame["volume"] = 0.0
        for col in [*price_cols, "volume"]:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        values = frame[price_cols].to_numpy()
        ok = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
        vol = frame["volume"].to_numpy()
        ok &= np.isfinite(vol) & (vol >= 0)
        if self.kind == "candles":
            o, h, lo, c = (frame[k].to_numpy() for k in price_cols)
            ok &= (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c))
        else:
            ok &= frame["bid"].to_numpy() <= frame["ask"].to_numpy()
        self.skipped_rows = int((~ok).sum())
        if self.skipped_rows:
            log.warning("replay %s: skipped %d malformed rows (non-positive, missing, crossed "
                        "or inconsistent prices)", name, self.skipped_rows)
        frame = frame[ok]
        frame = frame.sort_values(["symbol", "ts"], kind="stable")
        return frame.drop_duplicates(["symbol", "ts"], keep="last")

    def _build(self, frame: pd.DataFrame, warmup: int) -> None:
        import numpy as np

        frame = self._clean(frame)
        name = str(self.path)
        per_symbol = {s: g for s, g in frame.groupby("symbol", sort=False)}
        empty = [s for s in self.symbols if s not in per_symbol]
        if empty:
            raise SourceConfigError(f"{name}: no valid rows for {', '.join(empty)}")
        parts: list[tuple[np.ndarray, ...]] = []
        if self.kind == "candles":
            diffs = [np.diff(g["ts"].to_numpy()) for g in per_symbol.values() if len(g) > 1]
            if not diffs:
                raise SourceConfigError(f"{name}: need at least 2 candles of a symbol to tell the interval")
            self.interval_ms = int(np.median(np.concatenate(diffs)))
            if self.interval_ms <= 0:
                raise SourceConfigError(f"{name}: cannot tell the candle interval from 'ts'")
            for k, s in enumerate(self.symbols):
                rows = per_symbol[s][["ts", "open", "high", "low", "close", "volume"]].to_numpy()
                n_hist = min(max(warmup, 0), len(rows) // 2)
                self._history[s] = rows[:n_hist]
                self._replay_start[s] = int(rows[n_hist, 0])
                parts.append(self._candle_ticks(k, rows, n_hist))
            align = self.interval_ms
        else:
            for k, s in enumerate(self.symbols):
                g = per_symbol[s]
                ts = g["ts"].to_numpy(dtype="int64")
                last = g["last"].to_numpy()
                vol = g["volume"].to_numpy()
                parts.append((ts, np.full(len(ts), k), g["bid"].to_numpy(), g["ask"].to_numpy(),
                              last, vol, vol * last))
            align = 1000
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
        if len(cols[0]) == 0:
            raise SourceConfigError(f"{name}: nothing left to replay after the warm-up candles")
        order = np.argsort(cols[0], kind="stable")
        ts, sym, bid, ask, last, bv, qv = (c[order] for c in cols)
        first, end = int(ts[0]), int(ts[-1])
        if self.kind == "candles":  # the last candle ends an interval after its open
            end = int(ts[-1] + self.interval_ms * (1.0 - TICK_FRACTIONS[-1]))
        self._align_ms = align
        self._first_ms = first
        self.span_ms = -(-(end - first + 1) // align) * align  # loop: next pass starts after this
        self._shift_to(self._clock())
        self._ev_ts: list[int] = ts.astype("int64").tolist()
        self._ev_sym: list[int] = sym.astype("int64").tolist()
        self._ev_bid: list[float] = bid.tolist()
        self._ev_ask: list[float] = ask.tolist()
        self._ev_last: list[float] = last.tolist()
        self._ev_bv: list[float] = bv.tolist()
        self._ev_qv: list[float] = qv.tolist()

    def _shift_to(self, now: float) -> None:
        """A whole number of intervals, so candles stay aligned; first replayed tick >= now."""
        align = self._align_ms
        self.offset_ms = -(-(int(now * 1000) - self._first_ms) // align) * align

    def _candle_ticks(self, k: int, rows: np.ndarray, n_hist: int) -> tuple[np.ndarray, ...]:
        """Four ticks per replayed candle, with the 24h rolling volume as the exchange reports it."""
        import numpy as np

        ts = rows[:, 0].astype("int64")
        o, h, lo, c, v = (rows[:, j] for j in range(1, 6))
        # 24h rolling volume at each candle's close, over every candle (history included)
        cum_v = np.concatenate([[0.0], np.cumsum(v)])
        cum_q = np.concatenate([[0.0], np.cumsum(v * c)])
        start = np.searchsorted(ts, ts - DAY_MS + self.interval_ms, side="left")
        idx = np.arange(len(ts))
        before_v = cum_v[idx] - cum_v[start]  # window before this candle
        before_q = cum_q[idx] - cum_q[start]
        sel = slice(n_hist, None)
        ts, o, h, lo, c, v, before_v, before_q = (
            a[sel] for a in (ts, o, h, lo, c, v, before_v, before_q)
        )
        up = c >= o
        prices = np.stack([o, np.where(up, lo, h), np.where(up, h, lo), c], axis=1)
        frac = np.asarray(TICK_FRACTIONS)
        times = ts[:, None] + np.round(frac * self.interval_ms).astype("int64")[None, :]
        done = np.asarray([0.25, 0.5, 0.75, 1.0])[None, :]  # share of the candle's volume so far
        bv = before_v[:, None] + v[:, None] * done
        qv = before_q[:, None] + (v * c)[:, None] * done
        flat_p = prices.ravel()
        n = len(flat_p)
        half = flat_p * self._half_spread
        return (times.ravel(), np.full(n, k), flat_p - half, flat_p + half, flat_p,
                bv.ravel(), qv.ravel())

    # -- streaming ----------------------------------------------------------------------------

    async def run(self, publisher: Publisher, stop: asyncio.Event) -> None:
        publisher.set_status(STATUS_CONNECTED, None, 0)
        wait_for_subscriber = getattr(publisher, "wait_for_subscriber", None)
        if self.wait_for_subscriber and wait_for_subscriber is not None:
            log.info("replay %s: waiting for a tick subscriber before starting", self.path.name)
            if not await wait_for_subscriber(stop):
                return
            # the clock starts now: re-place the first tick at or after this moment
            self._shift_to(self._clock())
        ts, sym, bid, ask, last = self._ev_ts, self._ev_sym, self._ev_bid, self._ev_ask, self._ev_last
        bv, qv = self._ev_bv, self._ev_qv
        names = self.symbols
        publish = publisher.publish_tick
        clock = self._clock
        n = len(ts)
        passes = 0
        since_yield = 0
        pace = 1.0 / (1000.0 * self.speed) if self.speed > 0 else 0.0
        while not stop.is_set():
            shift = self.offset_ms + passes * self.span_ms
            first = ts[0]
            wall0 = clock()
            for i in range(n):
                if pace:
                    delay = wall0 + (ts[i] - first) * pace - clock()
                    if delay > MIN_SLEEP_S:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), delay)
                        since_yield = 0
                if stop.is_set():
                    return
                publish(names[sym[i]], ts[i] + shift, bid[i], ask[i], last[i], bv[i], qv[i])
                since_yield += 1
                if since_yield >= YIELD_EVERY:  # let heartbeats and history requests through
                    since_yield = 0
                    await asyncio.sleep(0)
            passes += 1
            if not self.loop:
                break
            await asyncio.sleep(0)  # a short file in a loop must not starve the event loop
        if stop.is_set():
            return
        log.info("replay %s finished: %d ticks published", self.path, n * passes)
        publisher.set_status(STATUS_STALE, f"replay of {self.path.name} finished", 0)
        await stop.wait()  # stay up: a feed that exits would be restarted and replay again

    async def history(self, symbol: str, timeframe_s: int, limit: int) -> list[list[float]]:
        if symbol not in self.symbols:
            raise UnknownSymbolError(f"{symbol} is not replayed (replaying: {', '.join(self.symbols)})")
        if self.kind != "candles" or limit <= 0:
            return []
        tf = timeframe_s * 1000
        if tf < self.interval_ms or tf % self.interval_ms:
            raise ValueError(
                f"the replay file has {self.interval_ms // 1000}s candles; "
                f"{timeframe_s}s is not a multiple of that"
            )
        rows = self._history[symbol]
        if len(rows) == 0:
            return []
        history_end = self._replay_start[symbol] + self.offset_ms  # where its replay begins
        out: list[list[float]] = []
        for r in rows.tolist():
            ts = int(r[0]) + self.offset_ms
            b = ts - ts % tf
            if out and out[-1][0] == b:
                cur = out[-1]
                cur[2] = max(cur[2], r[2])
                cur[3] = min(cur[3], r[3])
                cur[4] = r[4]
                cur[5] += r[5]
            else:
                out.append([b, r[1], r[2], r[3], r[4], r[5]])
        if out and out[-1][0] + tf > history_end:  # its tail is replayed: not closed yet
            out.pop()
        return out[-limit:]

    async def close(self) -> None:
        return None
