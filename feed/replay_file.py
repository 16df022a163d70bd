"""A replay file loaded (``--replay-file``): a CSV or Parquet file of candles or ticks as numpy columns.

Owns ``ReplayFile``: reading and validating the file (pandas, at load time only), its kind,
candle interval and history rows, and one time-ordered pass over its ticks (``chunks``).
``feed.replay`` streams it.

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
(at most half of them) are history: ``history_rows`` holds them and they are not replayed, so an
engine warms up on exactly the candles that precede the first replayed tick. A tick file has no
candles before its first tick, so it has no history rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from feed.candle_ticks import TICK_FRACTIONS, VOLUME_DONE, extremes_in_order, volume_before
from feed.errors import SourceConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger("feed.replay")  # the replay's one logger, loading and streaming

CANDLE_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
TICK_COLUMNS = ("ts", "symbol", "bid", "ask", "last")
CHUNK_ROWS = 16_384  # file rows parsed at a time: bounds the loader's transient memory
EMIT_CHUNK = 4_096  # ticks built (and turned into Python numbers) at a time while streaming
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


class ReplayFile:
    """A file of candles or ticks for ``symbols``, loaded into numpy columns, ready to replay."""

    def __init__(
        self,
        path: str | Path,
        symbols: Sequence[str],
        *,
        warmup: int = 500,
        spread_bps: float = 2.0,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.path = Path(path)
        self.symbols = list(symbols)
        self._chunk_rows = chunk_rows
        self._half_spread = spread_bps * 0.5e-4
        self.kind = ""  # "candles" or "ticks"
        self.interval_ms = 0  # the file's candle interval (candle files)
        self.skipped_rows = 0
        self.rows = 0  # rows of the replayed symbols in the file
        self.history_rows: dict[str, np.ndarray] = {}  # symbol -> rows [ts, o, h, l, c, v], unshifted
        self.replay_start: dict[str, int] = {}  # symbol -> its first replayed candle, unshifted
        # The replayed rows of every symbol, concatenated in symbol order: candles (ts, o, h, l,
        # c, v, 24h volume before it, 24h quote volume before it) or ticks (ts, bid, ask, last,
        # volume); "sym" is the symbol's index. A tick's number i counts ticks in that order
        # (candles: 4 per row, i = 4 * row + fraction), and ``order`` lists them in time order.
        self.cols: dict[str, np.ndarray] = {}
        self.order: np.ndarray | None = None
        self.first_ms = 0  # the first replayed tick, unshifted
        self.align_ms = 1000  # shifts of the file's time are whole multiples of this
        self.span_ms = 0  # one pass, rounded up to ``align_ms``: a loop's next pass starts after it
        self._build(self._load(), warmup)

    @property
    def ticks(self) -> int:
        """Ticks in one pass over the file."""
        return 0 if self.order is None else len(self.order)

    def _frames(self) -> Iterator[pd.DataFrame]:
        """The file, ``chunk_rows`` rows at a time (a Parquet file: one record batch at a time)."""
        import pandas as pd

        if self.path.suffix.lower() not in (".parquet", ".pq"):
            with pd.read_csv(self.path, chunksize=self._chunk_rows) as reader:
                yield from reader
            return
        try:
            import pyarrow.parquet as pq
        except ImportError:  # fastparquet, through pandas, if that is what is installed
            yield pd.read_parquet(self.path)
            return
        with pq.ParquetFile(self.path) as pf:
            for batch in pf.iter_batches(batch_size=self._chunk_rows):
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
        self.cols = {key: np.empty(total, dtype="int64" if key == "ts" else "int16" if key == "sym"
                                   else "float64") for key in keys}
        at = 0
        for k, s in enumerate(self.symbols):
            r = rows_of.pop(k)
            h = n_hist[k]
            if self.kind == "candles":
                self.history_rows[s] = np.column_stack([ts[r[:h]].astype("float64"), values[r[:h]]])
                self.replay_start[s] = int(ts[r[h]])
                cols = self._candle_columns(ts[r], values[r], h)
            else:
                cols = (ts[r], *(values[r, j] for j in range(4)))
            end = at + len(r) - h
            self.cols["sym"][at:end] = k
            for key, col in zip((key for key in keys if key != "sym"), cols, strict=True):
                self.cols[key][at:end] = col
            at = end
            del r, cols
        del ts, code, values, ok
        n = len(self.cols["ts"]) * per_row
        if n == 0:
            raise SourceConfigError(f"{name}: nothing left to replay after the warm-up candles")
        self._per_row = per_row
        self._offsets = offsets
        tick_ts = (self.cols["ts"][:, None] + offsets[None, :]).ravel()
        order = np.argsort(tick_ts, kind="stable")  # symbols merged in time order
        self.order = order.astype("int32") if n < 2**31 else order
        first, end = int(tick_ts[order[0]]), int(tick_ts[order[-1]])
        del tick_ts, order
        if self.kind == "candles":  # the last candle ends an interval after its open
            end = int(end + self.interval_ms * (1.0 - TICK_FRACTIONS[-1]))
        self.align_ms = align
        self.first_ms = first
        self.span_ms = -(-(end - first + 1) // align) * align  # loop: next pass starts after this

    def _candle_columns(self, ts: np.ndarray, values: np.ndarray, n_hist: int) -> tuple[np.ndarray, ...]:
        """One symbol's replayed candles (ts, o, h, l, c, v) and the 24h volumes before each one."""

        o, h, lo, c, v = (values[:, j] for j in range(5))
        # 24h rolling volume at each candle's close, over every candle (history included)
        before_v, before_q = volume_before(ts, c, v, self.interval_ms)
        sel = slice(n_hist, None)
        return ts[sel], o[sel], h[sel], lo[sel], c[sel], v[sel], before_v[sel], before_q[sel]

    def chunks(self, size: int = EMIT_CHUNK) -> Iterator[tuple[list[int], list[int], list[float], list[float], list[float],
                                       list[float], list[float]]]:
        """One pass over the file in time order, ``size`` ticks at a time, as Python lists.

        Each chunk is ``(ts_ms, symbol_index, bid, ask, last, base_volume, quote_volume)``;
        ``ts_ms`` is the file's own time (not shifted), ``symbol_index`` indexes ``symbols``.
        """
        import numpy as np

        assert self.order is not None
        cols = self.cols
        per_row = self._per_row
        done = np.asarray(VOLUME_DONE)
        for s in range(0, len(self.order), size):
            idx = self.order[s:s + size]
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
