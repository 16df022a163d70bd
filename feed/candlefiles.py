"""Candle files in freqtrade's format: their names, and reading and writing one.

Owns one file of candles, so ``multipar-console download`` writes what the backtest reads and a
user's freqtrade data files are read as they are (where the files live: ``feed.datadir``):

* file names as freqtrade builds them: ``BTC_USDT-1m.parquet`` (the pair with ``/ . : @ $ +``
  and spaces made ``_``, a dash, the timeframe with ``M`` (month) written ``Mo``); candles that
  are not spot go under ``futures/`` with their type: ``futures/BTC_USDT_USDT-1h-futures.feather``;
* the columns ``date, open, high, low, close, volume`` in that order (freqtrade renames them by
  position), ``date`` a UTC timestamp of the candle's open; any timestamp unit, an integer of
  epoch milliseconds, Parquet or Feather (Arrow IPC, freqtrade's default) are read;
* writing is atomic (a temporary file in the same directory, then a rename), in the format of
  the file already there, else Parquet.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from feed.candles import Candles, DataError, sorted_unique

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("date", "open", "high", "low", "close", "volume")  # freqtrade's, in its order
PRICE_COLUMNS = COLUMNS[1:]
FORMATS = ("parquet", "feather")  # read and written; the first is the default for new files
SPOT = "spot"
FUTURES_DIR = "futures"  # freqtrade: every candle type but spot lives there
# freqtrade's misc.pair_to_filename: these characters become "_".
_PAIR_CHARS = re.compile(r"[/ .@$+:]")
# <pair>-<timeframe>[-<candle type>].<ext>, as freqtrade's IDataHandler._OHLCV_REGEX.
FILE_RE = re.compile(
    r"^(?P<pair>[A-Za-z0-9_-]+?)-(?P<tf>\d+[A-Za-z]{1,2})(?:-(?P<ctype>[A-Za-z_]+))?"
    r"\.(?P<ext>parquet|feather)$"
)
_TS_DIVISOR = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}


# -- names ------------------------------------------------------------------------------------


def pair_to_filename(pair: str) -> str:
    """``BTC/USDT`` -> ``BTC_USDT``; ``BTC/USDT:USDT`` -> ``BTC_USDT_USDT`` (freqtrade's rule)."""
    return _PAIR_CHARS.sub("_", pair)


def pair_from_filename(name: str) -> str:
    """The inverse freqtrade applies: the first ``_`` after the base is ``/``, the next ``:``."""
    pair = re.sub(r"^(([A-Za-z\d]{1,10})|^([A-Za-z-]{1,6}))(_)", r"\g<1>/", name, count=1)
    return pair.replace("_", ":", 1)


def timeframe_to_file(timeframe: str) -> str:
    """``1M`` (a month) is written ``1Mo`` so it differs from ``1m`` on case-blind file systems."""
    return timeframe.replace("M", "Mo")


def timeframe_from_file(text: str) -> str:
    return re.sub("1mo", "1M", text, flags=re.IGNORECASE)


def candle_filename(pair: str, timeframe: str, *, candle_type: str = SPOT, fmt: str = FORMATS[0]) -> str:
    """The file's path relative to the exchange directory, as freqtrade names it."""
    if fmt not in FORMATS:
        raise DataError(f"candle file format {fmt!r}: expected one of {', '.join(FORMATS)}")
    name = f"{pair_to_filename(pair)}-{timeframe_to_file(timeframe)}"
    if candle_type != SPOT:
        return f"{FUTURES_DIR}/{name}-{candle_type}.{fmt}"
    return f"{name}.{fmt}"


# -- reading ----------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DataError(f"{path}: not a .parquet or .feather candle file")
    return fmt


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    fmt = _format_of(path)
    try:
        if fmt == "parquet":
            return pq.read_table(path, columns=columns)
        return feather.read_table(path, columns=columns, memory_map=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such candle file (run: multipar-console download)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable {fmt} candle file: {first}") from None


def _column_names(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    try:
        if _format_of(path) == "parquet":
            return list(pq.read_schema(path).names)
        try:  # Feather v2 is an Arrow IPC file: its schema is read without the data
            with pa.ipc.open_file(path) as reader:
                return list(reader.schema.names)
        except pa.ArrowInvalid:  # Feather v1
            return list(feather.read_table(path, memory_map=True).schema.names)
    except FileNotFoundError:
        raise DataError(f"{path}: no such candle file (run: multipar-console download)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (pa.ArrowInvalid, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable {_format_of(path)} candle file: {first}") from None


def _pick_columns(path: Path, names: list[str], wanted: tuple[str, ...]) -> list[str]:
    """The file's columns for ``wanted``: by name, else by position as freqtrade does."""
    lower = {n.lower(): n for n in names}
    if all(w in lower for w in wanted):
        return [lower[w] for w in wanted]
    if len(names) >= len(COLUMNS):
        return [names[COLUMNS.index(w)] for w in wanted]
    raise DataError(
        f"{path}: columns {', '.join(names) or '(none)'}; expected {', '.join(COLUMNS)} "
        "(freqtrade's OHLCV layout)"
    )


def _dates_to_ms(path: Path, col: pa.ChunkedArray) -> np.ndarray:
    """A date column (timestamp of any unit, epoch-ms integers or ISO text) as int64 ms."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_timestamp(t):
        raw = col.cast(pa.int64()).to_numpy()
        div = _TS_DIVISOR[t.unit]
        return raw * 1000 if div is None else raw // div if div > 1 else raw
    if pa.types.is_integer(t):
        return col.cast(pa.int64()).to_numpy()
    if pa.types.is_floating(t):
        return np.round(col.to_numpy()).astype(np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        import pandas as pd

        try:
            stamps = pd.to_datetime(pd.Series(col.to_pylist()), utc=True, format="ISO8601")
        except (ValueError, TypeError):
            raise DataError(f"{path}: column 'date' holds text that is not ISO-8601 dates") from None
        return stamps.astype("datetime64[ms, UTC]").astype("int64").to_numpy()
    raise DataError(f"{path}: column 'date' is {t}; expected a UTC timestamp or epoch milliseconds")


def read_candle_file(path: str | os.PathLike[str], *, pair: str = "", timeframe: str = "") -> Candles:
    """A Parquet or Feather file of freqtrade's layout as ``Candles`` (sorted, one per open time).

    ``pair``/``timeframe`` default to what the file name says. Rows without a date are dropped.
    Raises DataError (one line) when the file cannot be read or lacks the columns.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    p = Path(path)
    m = FILE_RE.match(p.name)
    if m is not None:
        pair = pair or pair_from_filename(m.group("pair"))
        timeframe = timeframe or timeframe_from_file(m.group("tf"))
    names = _column_names(p)
    cols = _pick_columns(p, names, COLUMNS)
    table = _read_table(p, cols)
    date = table.column(0)
    if date.null_count:
        table = table.filter(pc.is_valid(date))
        date = table.column(0)
    ts = _dates_to_ms(p, date).astype(np.int64, copy=False)
    values = []
    for i, name in enumerate(PRICE_COLUMNS, start=1):
        try:
            arr = table.column(i).cast(pa.float64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"{p}: column {name!r} is {table.column(i).type}, not a number") from None
        values.append(np.ascontiguousarray(arr, dtype=np.float64))
    ts, *values = sorted_unique(ts, *values)
    return Candles(pair, timeframe, ts, *values, path=p)


def read_open_times(path: str | os.PathLike[str]) -> np.ndarray:
    """The open times of a candle file (int64 ms, sorted, one per candle), without its prices.

    Raises DataError (one line) when the file cannot be read or has no date column.
    """
    p = Path(path)
    names = _column_names(p)
    date_col = _pick_columns(p, names, ("date",))
    ts = _dates_to_ms(p, _read_table(p, date_col).column(0).drop_null())
    (ts,) = sorted_unique(ts.astype(np.int64, copy=False))
    return ts


# -- writing ----------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_candle_file(path: str | os.PathLike[str], candles: Candles) -> None:
    """Write ``candles`` to ``path`` (format from its suffix) in freqtrade's layout, atomically:
    readers see the old file or the new one, never half of one."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    p = Path(path)
    fmt = _format_of(p)
    utc_ms = pa.timestamp("ms", tz="UTC")
    table = pa.table(
        [pa.array(candles.ts, type=pa.int64()).cast(utc_ms)]
        + [pa.array(c, type=pa.float64()) for c in candles.columns()[1:]],
        names=list(COLUMNS),
    )
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{p.parent}: cannot create the data directory: {exc.strerror or exc} (pass --data DIR)") from None
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        if fmt == "parquet":
            pq.write_table(table, tmp, compression="snappy")
        else:  # as freqtrade's FeatherDataHandler: Arrow IPC, lz4 level 9
            feather.write_feather(table, tmp, compression="lz4", compression_level=9)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DataError(f"{p}: cannot write: {exc.strerror or exc} (check the disk and --data)") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(p.parent)
