"""Replay of recorded market data (``--source replay``): a CSV or Parquet file of candles or ticks.

Owns loading and validating the file (pandas, at load time only), turning it into one
time-ordered stream of ticks, and pacing them at ``speed`` x real time (0 = as fast as possible).

File shapes (column names are case-insensitive; ``ts`` is epoch s/ms/us/ns or ISO-8601 text):

- candles: ``ts, symbol, open, high, low, close, volume``; ``ts`` is the candle's open time.
  Each candle becomes four ticks at 0, 30, 60 and 90 % of its interval: open, then low and high
  (low first when the candle closed up, high first when it closed down), then close, with a
  ``spread_bps`` spread around each price.
- ticks: ``ts, symbol, bid, ask, last[, volume]``; ``volume`` is taken as the 24h base volume.

Memory: the file is read ``CHUNK_ROWS`` rows at a time (a Parquet file one batch at a time) and
kept as numpy columns, one float64/int64 per value: ~64 bytes per candle, ~40 per tick row, plus
a 4- or 8-byte index per replayed tick giving the time order. Ticks are built from them
``EMIT_CHUNK`` at a time while streaming, never held as Python objects for the whole file.

History, the choice made here: for a candle file the first ``warmup`` candles of each symbol
(at most half of them) are history: ``history()`` serves them (aggregated to any multiple of the
file's interval) and they are not replayed, so an engine warms up on exactly the candles that
precede the first replayed tick. A tick file has no candles before its first tick, so its
``history()`` is empty.

Start: by default the replay waits for its first tick subscriber (the publisher sees XPUB
subscriptions), so a fast replay is not over before the engine connects; ``wait_for_subscriber=
False`` (CLI ``--no-wait``) starts at once.

Flow control: a replay has no real time to keep, so it never outruns its subscribers
(``flow_control``: the feed opens its socket with ``ZMQ_XPUB_NODROP``). When a subscriber is a
high-water mark behind, ``publish_tick`` returns False and nothing is sent; the replay waits
(0.5 to 2 ms, the event loop running meanwhile) and sends the same tick again. At ``speed`` 0 it
therefore runs at the pace of its slowest subscriber; at ``speed`` > 0 it lags behind its
schedule while a subscriber is behind and catches up (as fast as the subscriber takes it) after.
When the file is done, the status ``stale`` (``finished``) carries the last sequence number of
every symbol, so a subscriber that has fewer knows it lost the tail.

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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feed.candle_ticks import TICK_FRACTIONS, VOLUME_DONE, extremes_in_order, volume_before
from feed.errors import SourceConfigError, UnknownSymbolError
from feed.source import Publisher
from feed.wire import STATUS_CONNECTED, STATUS_STALE

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

CANDLE_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
TICK_COLUMNS = ("ts", "symbol", "bid", "ask", "last")
YIELD_EVERY = 512  # ticks published between yields to the event loop at full speed
MIN_SLEEP_S = 0.002
CHUNK_ROWS = 16_384  # file rows parsed at a time: bounds the loader's transient memory
EMIT_CHUNK = 4_096  # ticks built (and turned into Python numbers) at a time while streaming
RETRY_MIN_S = 0.0005  # flow control: first wait before sending a refused tick again
RETRY_MAX_S = 0.002  # ... doubling up to this: short, a subscriber frees room in large batches
MAX_NAMES_KEPT = 1_000  # other symbols remembered for the "the file has: ..." error line


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
    flow_control = True  # no real time to keep: wait for slow subscribers rather than drop

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
        self.rows = 0  # rows of the replayed symbols in the file
        self.waits = 0  # flow control: times a tick was refused (a subscriber was full)
        self.waited_s = 0.0  # ... and the time spent waiting
        self._history: dict[str, np.ndarray] = {}  # symbol -> rows [ts, o, h, l, c, v], unshifted
        self._replay_start: dict[str, int] = {}  # symbol -> its first replayed candle, unshifted
        # The replayed rows of every symbol, concatenated in symbol order: candles (ts, o, h, l,
        # c, v, 24h volume before it, 24h quote volume before it) or ticks (ts, bid, ask, last,
        # volume); _sym is the symbol's index. A tick's number i counts ticks in that order
        # (candles: 4 per row, i = 4 * row + fraction), and _order lists them in time order.
        self._cols: dict[str, np.ndarray] = {}
        self._order: np.ndarray | None = None
        t0 = time.perf_counter()
        self._build(self._load(), warmup)
        log.info(
            "replay %s: %d %s rows, %d ticks to replay for %s (%d bad rows skipped) in %.2fs",
            self.path, self.rows, self.kind, self.ticks, ", ".join(self.symbols),
            self.skipped_rows, time.perf_counter() - t0,
        )

    @property
    def ticks(self) -> int:
        """Ticks in one pass over the file."""
        return 0 if self._order is None else len(self._order)

    # -- loading ------------------------------------------------------------------------------

    def _frames(self) -> Iterator[pd.DataFrame]:
        """The file, ``CHUNK_ROWS`` rows at a time (a Parquet file: one record batch at a time)."""
        import pandas as pd

        if self.path.suffix.lower() not in (".parquet", ".pq"):
            with pd.read_csv(self.path, chunksize=CHUNK_ROWS) as reader:
                yield from reader
            return
        try:
            import pyarrow.parquet as pq
        except ImportError:  # fastparquet, through pandas, if that is what is installed
            yield pd.read_parquet(self.path)
            return
        with pq.ParquetFile(self.path) as pf:
            for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
                yield batch.to_pandas()

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of the replayed symbols: (ts ms int64, symbol index int16, float64 values).

        Values are (open, high, low, close, volume) for candles, (bid, ask, last, volume) for
        ticks; a missing or non-numeric value is NaN (a bad row, skipped by ``_build``).
        """
        import numpy as np
        import pandas as pd

        name = str(self.path)
        if not self.path.is_file():
            raise SourceConfigError(f"replay file {name} does not exist (pass --replay-file PATH)")
        wanted = set(self.symbols)
        present: set[str] = set()
        others: set[str] = set()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        value_cols: list[str] = []
        frames = self._frames()
        try:
            while True:
                try:
                    frame = next(frames, None)
                except ImportError:
                    raise SourceConfigError(
                        f"{name}: reading Parquet needs pyarrow or fastparquet, which are not installed; "
                        "convert the file to CSV"
                    ) from None
                except Exception as exc:  # pandas and pyarrow raise many parser error types
                    raise SourceConfigError(f"{name}: cannot read: {type(exc).__name__}: {exc}") from None
                if frame is None:
                    break
                frame.columns = [str(c).strip().lower() for c in frame.columns]
                if not value_cols:
                    value_cols = self._columns(list(frame.columns))
                symbol = frame["symbol"].astype(str).str.strip()
                names = set(symbol.unique().tolist())
                present |= names & wanted
                if len(others) < MAX_NAMES_KEPT:
                    others |= names - wanted
                keep = symbol.isin(self.symbols).to_numpy()
                if not keep.any():
                    continue
                frame = frame[keep]
                code = pd.Categorical(symbol[keep], categories=self.symbols).codes.astype("int16")
                ts = _ts_to_ms(frame["ts"], name)
                values = np.empty((len(frame), len(value_cols)), dtype="float64")
                for j, col in enumerate(value_cols):
                    if col in frame.columns:
                        values[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(
                            dtype="float64", na_value=np.nan)
                    else:  # only "volume" may be absent (a tick file): taken as 0
                        values[:, j] = 0.0
                parts.append((ts, code, values))
                del frame, symbol
        finally:
            frames.close()  # the file, also when a chunk was refused
        if not value_cols:
            raise SourceConfigError(f"{name}: cannot read: the file is empty")
        absent = [s for s in self.symbols if s not in present]
        if absent:
            have = sorted(present | others)[:10]
            raise SourceConfigError(
                f"{name}: no rows for {', '.join(absent)} (the file has: {', '.join(have)})"
            )
        ts = np.concatenate([p[0] for p in parts])
        code = np.concatenate([p[1] for p in parts])
        values = np.concatenate([p[2] for p in parts])
        return ts, code, values

    def _columns(self, columns: list[str]) -> list[str]:
        """Tell candles from ticks by the header; the value columns to read, in order."""
        name = str(self.path)
        if {"open", "high", "low", "close"} <= set(columns):
            self.kind, required = "candles", CANDLE_COLUMNS
        elif {"bid", "ask", "last"} <= set(columns):
            self.kind, required = "ticks", TICK_COLUMNS
        else:
            raise SourceConfigError(
                f"{name}: columns {columns} are neither candles "
                f"({', '.join(CANDLE_COLUMNS)}) nor ticks ({', '.join(TICK_COLUMNS)}[, volume])"
            )
        missing = [c for c in required if c not in columns]
        if missing:
            raise SourceConfigError(f"{name}: missing column(s) {', '.join(missing)}")
        if self.kind == "candles":
            return ["open", "high", "low", "close", "volume"]
        return ["bid", "ask", "last", "volume"]

    def _valid(self, values: np.ndarray) -> np.ndarray:
        """Rows with finite positive prices, a finite volume >= 0, a consistent candle or quote."""
        import numpy as np

        prices = values[:, :-1]
        vol = values[:, -1]
        ok = np.isfinite(prices).all(axis=1) & (prices > 0).all(axis=1)
        ok &= np.isfinite(vol) & (vol >= 0)
        if self.kind == "candles":
            o, h, lo, c = (values[:, j] for j in range(4))
            ok &= (lo <= np.minimum(o, c)) & (h >= np.maximum(o, c))
        else:
            ok &= values[:, 0] <= values[:, 1]
        return ok

    def _build(self, loaded: tuple[np.ndarray, np.ndarray, np.ndarray], warmup: int) -> None:
        import numpy as np

        ts, code, values = loaded
        del loaded
        name = str(self.path)
        self.rows = len(ts)
        ok = self._valid(values)
        self.skipped_rows = int((~ok).sum())
        if self.skipped_rows:
            log.warning("replay %s: skipped %d malformed rows (non-positive, missing, crossed "
                        "or inconsistent prices)", name, self.skipped_rows)
        # Per symbol: its valid rows in time order, the last of equal timestamps kept.
        rows_of: dict[int, np.ndarray] = {}
        for k in range(len(self.symbols)):
            idx = np.flatnonzero(ok & (code == k))
            idx = idx[np.argsort(ts[idx], kind="stable")]
            if len(idx):
                t = ts[idx]
                rows_of[k] = idx[np.append(t[1:] != t[:-1], True)]
        empty = [s for k, s in enumerate(self.symbols) if k not in rows_of]
        if empty:
            raise SourceConfigError(f"{name}: no valid rows for {', '.join(empty)}")
        if self.kind == "candles":
            diffs = [np.diff(ts[r]) for r in rows_of.values() if len(r) > 1]
            if not diffs:
                raise SourceConfigError(f"{name}: need at least 2 candles of a symbol to tell the interval")
            self.interval_ms = int(np.median(np.concatenate(diffs)))
            if self.interval_ms <= 0:
                raise SourceConfigError(f"{name}: cannot tell the candle interval from 'ts'")
            keys = ("ts", "sym", "open", "high", "low", "close", "volume", "before_v", "before_q")
            n_hist = {k: min(max(warmup, 0), len(r) // 2) for k, r in rows_of.items()}
            per_row, offsets = 4, np.round(np.asarray(TICK_FRACTIONS) * self.interval_ms).astype("int64")
            align = self.interval_ms
        else:
            keys = ("ts", "sym", "bid", "ask", "last", "volume")
            n_hist = {k: 0 for k in rows_of}
            per_row, offsets = 1, np.zeros(1, dtype="int64")
            align = 1000
        # Filled symbol by symbol, never two copies of the whole file at once.
        total = sum(len(r) - n_hist[k] for k, r in rows_of.items())
        self._cols = {key: np.empty(total, dtype="int64" if key == "ts" else "int16" if key == "sym"
                                    else "float64") for key in keys}
        at = 0
        for k, s in enumerate(self.symbols):
            r = rows_of.pop(k)
            h = n_hist[k]
            if self.kind == "candles":
                self._history[s] = np.column_stack([ts[r[:h]].astype("float64"), values[r[:h]]])
                self._replay_start[s] = int(ts[r[h]])
                cols = self._candle_columns(ts[r], values[r], h)
            else:
                cols = (ts[r], *(values[r, j] for j in range(4)))
            end = at + len(r) - h
            self._cols["sym"][at:end] = k
            for key, col in zip((key for key in keys if key != "sym"), cols, strict=True):
                self._cols[key][at:end] = col
            at = end
            del r, cols
        del ts, code, values, ok
        n = len(self._cols["ts"]) * per_row
        if n == 0:
            raise SourceConfigError(f"{name}: nothing left to replay after the warm-up candles")
        self._per_row = per_row
        self._offsets = offsets
        tick_ts = (self._cols["ts"][:, None] + offsets[None, :]).ravel()
        order = np.argsort(tick_ts, kind="stable")  # symbols merged in time order
        self._order = order.astype("int32") if n < 2**31 else order
        first, end = int(tick_ts[order[0]]), int(tick_ts[order[-1]])
        del tick_ts, order
        if self.kind == "candles":  # the last candle ends an interval after its open
            end = int(end + self.interval_ms * (1.0 - TICK_FRACTIONS[-1]))
        self._align_ms = align
        self._first_ms = first
        self.span_ms = -(-(end - first + 1) // align) * align  # loop: next pass starts after this
        self._shift_to(self._clock())

    def _shift_to(self, now: float) -> None:
        """A whole number of intervals, so candles stay aligned; first replayed tick >= now."""
        align = self._align_ms
        self.offset_ms = -(-(int(now * 1000) - self._first_ms) // align) * align

    def _candle_columns(self, ts: np.ndarray, values: np.ndarray, n_hist: int) -> tuple[np.ndarray, ...]:
        """One symbol's replayed candles (ts, o, h, l, c, v) and the 24h volumes before each one."""

        o, h, lo, c, v = (values[:, j] for j in range(5))
        # 24h rolling volume at each candle's close, over every candle (history included)
        before_v, before_q = volume_before(ts, c, v, self.interval_ms)
        sel = slice(n_hist, None)
        return ts[sel], o[sel], h[sel], lo[sel], c[sel], v[sel], before_v[sel], before_q[sel]

    def chunks(self) -> Iterator[tuple[list[int], list[int], list[float], list[float], list[float],
                                       list[float], list[float]]]:
        """One pass over the file in time order, ``EMIT_CHUNK`` ticks at a time, as Python lists.

        Each chunk is ``(ts_ms, symbol_index, bid, ask, last, base_volume, quote_volume)``;
        ``ts_ms`` is the file's own time (not shifted), ``symbol_index`` indexes ``symbols``.
        """
        import numpy as np

        assert self._order is not None
        cols = self._cols
        per_row = self._per_row
        done = np.asarray(VOLUME_DONE)
        for s in range(0, len(self._order), EMIT_CHUNK):
            idx = self._order[s:s + EMIT_CHUNK]
            if per_row == 4:
                g, f = idx >> 2, idx & 3
                o, h, lo, c, v = (cols[key][g] for key in ("open", "high", "low", "close", "volume"))
                # open, then the low and the high (low first when it closed up), then close
                last = np.choose(f, (o, *extremes_in_order(o, h, lo, c), c))
                frac = done[f]
                bv = cols["before_v"][g] + v * frac
                qv = cols["before_q"][g] + (v * c) * frac
                half = last * self._half_spread
                bid, ask = last - half, last + half
                ts = cols["ts"][g] + self._offsets[f]
            else:
                bid, ask, last, bv = (cols[key][idx] for key in ("bid", "ask", "last", "volume"))
                qv = bv * last
                ts, g = cols["ts"][idx], idx
            yield (ts.tolist(), cols["sym"][g].tolist(), bid.tolist(), ask.tolist(), last.tolist(),
                   bv.tolist(), qv.tolist())

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
        names = self.symbols
        publish = publisher.publish_tick
        clock = self._clock
        passes = 0
        since_yield = 0
        started = time.monotonic()
        pace = 1.0 / (1000.0 * self.speed) if self.speed > 0 else 0.0
        first = self._first_ms
        while not stop.is_set():
            shift = self.offset_ms + passes * self.span_ms
            wall0 = clock()
            for ts, sym, bid, ask, last, bv, qv in self.chunks():
                for i in range(len(ts)):
                    if pace:
                        delay = wall0 + (ts[i] - first) * pace - clock()
                        if delay > MIN_SLEEP_S:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), delay)
                            since_yield = 0
                    if stop.is_set():
                        return
                    name, te = names[sym[i]], ts[i] + shift
                    # False (never None): a subscriber is full and nothing was sent; wait, resend
                    if publish(name, te, bid[i], ask[i], last[i], bv[i], qv[i]) is False:
                        tick = (name, te, bid[i], ask[i], last[i], bv[i], qv[i])
                        if not await self._resend(publisher, tick, stop):
                            return
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
        elapsed = time.monotonic() - started
        n = self.ticks * passes
        log.info("replay %s finished: %d ticks published in %.1f s (%.0f ticks/s); waited %.1f s "
                 "for subscribers to catch up (%d times)", self.path, n, elapsed,
                 n / max(elapsed, 1e-9), self.waited_s, self.waits)
        finished = getattr(publisher, "mark_finished", None)
        if finished is not None:
            finished()  # the status says no more ticks will come: its last_seq are final
        publisher.set_status(STATUS_STALE, f"replay of {self.path.name} finished", 0)
        await stop.wait()  # stay up: a feed that exits would be restarted and replay again

    async def _resend(self, publisher: Publisher, tick: tuple[Any, ...], stop: asyncio.Event) -> bool:
        """Flow control: send ``tick`` again until a full subscriber makes room; False on stop."""
        publish = publisher.publish_tick
        send_due = getattr(publisher, "send_due", None)  # heartbeat or status waiting for room
        self.waits += 1
        t0 = time.monotonic()
        delay = RETRY_MIN_S
        try:
            while not stop.is_set():
                await asyncio.sleep(delay)
                if send_due is not None:
                    send_due()  # first through the window when it opens: a beat is never starved
                if publish(*tick) is not False:
                    return True
                delay = min(delay * 2, RETRY_MAX_S)
            return False
        finally:
            self.waited_s += time.monotonic() - t0

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
