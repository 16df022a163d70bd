"""The candle data directory: where downloaded history lives, in freqtrade's layout.

Owns the layout, the reading and the writing of candle files, so ``multipar-console download``
writes what the backtest reads and a user's freqtrade data directory is read as it is:

* the directory: ``$XDG_DATA_HOME/multipar-console/data`` (``~/.local/share/...`` when unset),
  one subdirectory per exchange (``binance/``), as freqtrade's ``user_data/data/binance``;
* file names as freqtrade builds them: ``BTC_USDT-1m.parquet`` (the pair with ``/ . : @ $ +``
  and spaces made ``_``, a dash, the timeframe with ``M`` (month) written ``Mo``); candles that
  are not spot go under ``futures/`` with their type: ``futures/BTC_USDT_USDT-1h-futures.feather``;
* the columns ``date, open, high, low, close, volume`` in that order (freqtrade renames them by
  position), ``date`` a UTC timestamp of the candle's open; any timestamp unit, an integer of
  epoch milliseconds, Parquet or Feather (Arrow IPC, freqtrade's default) are read;
* writing is atomic (a temporary file in the same directory, then a rename), in the format of
  the file already there, else Parquet;
* a gap is a run of missing candles between a file's first and last: ``find_gaps``.

``load_candles`` is what a backtest calls; ``list_data`` says what a directory holds.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from feed.errors import FeedError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

APP_DIR = "multipar-console"
DEFAULT_EXCHANGE = "binance"
COLUMNS = ("date", "open", "high", "low", "close", "volume")  # freqtrade's, in its order
PRICE_COLUMNS = COLUMNS[1:]
FORMATS = ("parquet", "feather")  # read and written; the first is the default for new files
SPOT = "spot"
FUTURES_DIR = "futures"  # freqtrade: every candle type but spot lives there
# freqtrade's misc.pair_to_filename: these characters become "_".
_PAIR_CHARS = re.compile(r"[/ .@$+:]")
# <pair>-<timeframe>[-<candle type>].<ext>, as freqtrade's IDataHandler._OHLCV_REGEX.
_FILE_RE = re.compile(
    r"^(?P<pair>[A-Za-z0-9_-]+?)-(?P<tf>\d+[A-Za-z]{1,2})(?:-(?P<ctype>[A-Za-z_]+))?"
    r"\.(?P<ext>parquet|feather)$"
)
_TF_RE = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TS_DIVISOR = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}


class DataError(FeedError, ValueError):
    """A candle file or directory that cannot be used; one line naming it and what to do."""


# -- where ------------------------------------------------------------------------------------


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/multipar-console/data`` (``~/.local/share/...`` when unset or relative)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME", "")
    if not base or not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(base) / APP_DIR / "data"


def _has_candle_files(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return any(_FILE_RE.match(p.name) for p in path.iterdir())
    return False


def exchange_dir(data_dir: str | os.PathLike[str] | None = None, exchange: str = DEFAULT_EXCHANGE) -> Path:
    """The directory holding ``exchange``'s candle files.

    ``data_dir`` (default: ``default_data_dir()``) may be the data root (``.../data``, files in
    ``.../data/binance``) or the exchange directory itself, as freqtrade's ``--datadir
    user_data/data/binance``: a directory named after the exchange, or one that holds candle
    files and has no exchange subdirectory, is used as it is.
    """
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if base.name == exchange:
        return base
    sub = base / exchange
    if sub.is_dir():
        return sub
    if base.is_dir() and (_has_candle_files(base) or _has_candle_files(base / FUTURES_DIR)):
        return base
    return sub


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


def timeframe_to_ms(timeframe: str) -> int:
    """``1s``, ``5m``, ``1h``, ``1d``, ``1w`` in milliseconds (a month has no fixed length)."""
    m = _TF_RE.match(timeframe)
    if not m or int(m.group(1)) <= 0:
        raise DataError(f"timeframe {timeframe!r} is not like 1s, 1m, 15m, 1h, 1d or 1w")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def candle_filename(pair: str, timeframe: str, *, candle_type: str = SPOT, fmt: str = FORMATS[0]) -> str:
    """The file's path relative to the exchange directory, as freqtrade names it."""
    if fmt not in FORMATS:
        raise DataError(f"candle file format {fmt!r}: expected one of {', '.join(FORMATS)}")
    name = f"{pair_to_filename(pair)}-{timeframe_to_file(timeframe)}"
    if candle_type != SPOT:
        return f"{FUTURES_DIR}/{name}-{candle_type}.{fmt}"
    return f"{name}.{fmt}"


def find_candle_file(
    pair: str,
    timeframe: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    candle_type: str = SPOT,
) -> Path | None:
    """The existing file for ``pair``/``timeframe`` (Parquet first, then Feather), or None."""
    base = exchange_dir(data_dir, exchange)
    for fmt in FORMATS:
        path = base / candle_filename(pair, timeframe, candle_type=candle_type, fmt=fmt)
        if path.is_file():
            return path
    return None


def candle_path(
    pair: str,
    timeframe: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    candle_type: str = SPOT,
) -> Path:
    """Where ``pair``/``timeframe`` is stored: the existing file, else a new Parquet file."""
    found = find_candle_file(pair, timeframe, data_dir=data_dir, exchange=exchange, candle_type=candle_type)
    if found is not None:
        return found
    return exchange_dir(data_dir, exchange) / candle_filename(pair, timeframe, candle_type=candle_type)


# -- candles ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles: open times ``start_ms`` (the first missing) to ``end_ms`` (exclusive)."""

    start_ms: int
    end_ms: int
    tf_ms: int

    @property
    def missing(self) -> int:
        return (self.end_ms - self.start_ms) // self.tf_ms

    def __str__(self) -> str:
        return f"{fmt_ts(self.start_ms)} → {fmt_ts(self.end_ms)} ({self.missing:,} candles)"


def find_gaps(ts: np.ndarray, tf_ms: int, start_ms: int | None = None, end_ms: int | None = None) -> list[Gap]:
    """Runs of missing candles between consecutive open times of ``ts`` (sorted, unique), only
    those inside ``[start_ms, end_ms)`` when given (clipped to it)."""
    if len(ts) < 2:
        return []
    idx = np.flatnonzero(np.diff(ts) > tf_ms)
    gaps = []
    for i in idx:
        a, b = int(ts[i]) + tf_ms, int(ts[i + 1])
        if start_ms is not None:
            a = max(a, start_ms)
        if end_ms is not None:
            b = min(b, end_ms)
        if b > a:
            gaps.append(Gap(a, b, tf_ms))
    return gaps


def fmt_ts(ms: int | None) -> str:
    """``2024-01-01 00:00`` (UTC; seconds shown only when not zero)."""
    if ms is None:
        return "-"
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if dt.second else "%Y-%m-%d %H:%M")


def _empty_f64() -> np.ndarray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, eq=False, slots=True)
class Candles:
    """One pair's candles, oldest first, unique open times: numpy arrays of equal length.

    ``ts`` is the open time in epoch milliseconds (int64); prices and volume are float64.
    """

    pair: str
    timeframe: str
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    open: np.ndarray = field(default_factory=_empty_f64)
    high: np.ndarray = field(default_factory=_empty_f64)
    low: np.ndarray = field(default_factory=_empty_f64)
    close: np.ndarray = field(default_factory=_empty_f64)
    volume: np.ndarray = field(default_factory=_empty_f64)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def first_ts(self) -> int | None:
        return int(self.ts[0]) if len(self.ts) else None

    @property
    def last_ts(self) -> int | None:
        return int(self.ts[-1]) if len(self.ts) else None

    @property
    def tf_ms(self) -> int:
        return timeframe_to_ms(self.timeframe)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (self.ts, self.open, self.high, self.low, self.close, self.volume)

    def between(self, start_ms: int | None = None, end_ms: int | None = None) -> Candles:
        """The candles that open in ``[start_ms, end_ms)`` (views, no copy)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.ts, start_ms, side="left"))
        hi = len(self.ts) if end_ms is None else int(np.searchsorted(self.ts, end_ms, side="left"))
        return Candles(self.pair, self.timeframe, *(c[lo:hi] for c in self.columns()), path=self.path)

    def gaps(self, start_ms: int | None = None, end_ms: int | None = None) -> list[Gap]:
        return find_gaps(self.ts, self.tf_ms, start_ms, end_ms)

    def to_frame(self) -> pd.DataFrame:
        """A pandas frame with freqtrade's columns (``date`` UTC) plus ``ts`` (ms)."""
        import pandas as pd

        return pd.DataFrame({
            "date": pd.to_datetime(self.ts, unit="ms", utc=True),
            "open": self.open, "high": self.high, "low": self.low,
            "close": self.close, "volume": self.volume, "ts": self.ts,
        })

    def merged(self, other: Candles) -> Candles:
        """Both sets, sorted; where both have a candle at the same open time, ``other``'s wins."""
        if not len(other):
            return self
        cols = [np.concatenate([a, b]) for a, b in zip(self.columns(), other.columns(), strict=True)]
        return Candles(self.pair, self.timeframe, *_sorted_unique(*cols), path=self.path)


def _sorted_unique(ts: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sort by ``ts`` (stable) and keep the last row of each open time."""
    if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        values = tuple(v[order] for v in values)
        keep = np.ones(len(ts), dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]
        ts = ts[keep]
        values = tuple(v[keep] for v in values)
    return (ts, *values)


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
    m = _FILE_RE.match(p.name)
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
    ts, *values = _sorted_unique(ts, *values)
    return Candles(pair, timeframe, ts, *values, path=p)


def load_candles(
    pair: str,
    timeframe: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    exchange: str = DEFAULT_EXCHANGE,
    start_ms: int | None = None,
    end_ms: int | None = None,
    candle_type: str = SPOT,
) -> Candles:
    """``pair``'s ``timeframe`` candles that open in ``[start_ms, end_ms)`` from the data directory.

    Reads ours or freqtrade's files (Parquet or Feather). Raises DataError when there is no file,
    naming where it looked and the command that downloads it.
    """
    path = find_candle_file(pair, timeframe, data_dir=data_dir, exchange=exchange, candle_type=candle_type)
    if path is None:
        where = exchange_dir(data_dir, exchange) / candle_filename(pair, timeframe, candle_type=candle_type)
        legacy = [where.with_suffix(s) for s in (".json", ".json.gz")]
        hint = (
            "convert it: freqtrade convert-data --format-from json --format-to feather"
            if any(q.exists() for q in legacy)
            else f"run: multipar-console download --pairs {pair} --timeframe {timeframe}"
        )
        raise DataError(f"{where.with_suffix('')}.parquet|.feather: no {pair} {timeframe} candles ({hint})")
    candles = read_candle_file(path, pair=pair, timeframe=timeframe)
    if start_ms is None and end_ms is None:
        return candles
    return candles.between(start_ms, end_ms)


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


# -- listing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataInfo:
    """One candle file: what it holds and where its candles are missing."""

    pair: str
    timeframe: str
    candle_type: str
    path: Path
    format: str
    rows: int
    first_ts: int | None
    last_ts: int | None
    gaps: tuple[Gap, ...]
    error: str | None = None  # the file could not be read: why

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)


def _candle_files(base: Path) -> Iterator[tuple[Path, re.Match[str], str]]:
    for directory, spot in ((base, True), (base / FUTURES_DIR, False)):
        if not directory.is_dir():
            continue
        for p in sorted(directory.iterdir()):
            m = _FILE_RE.match(p.name)
            if m is None or not p.is_file():
                continue
            ctype = m.group("ctype") or SPOT
            if ctype == "trades" or (spot and ctype != SPOT) or (not spot and ctype == SPOT):
                continue
            yield p, m, ctype


def list_data(data_dir: str | os.PathLike[str] | None = None, exchange: str = DEFAULT_EXCHANGE) -> list[DataInfo]:
    """Every candle file of ``exchange`` in the data directory, with its range, rows and gaps.

    A file that cannot be read is listed with ``error`` set, not raised.
    """
    out = []
    for path, m, ctype in _candle_files(exchange_dir(data_dir, exchange)):
        pair = pair_from_filename(m.group("pair"))
        tf = timeframe_from_file(m.group("tf"))
        try:
            names = _column_names(path)
            date_col = _pick_columns(path, names, ("date",))
            ts = _dates_to_ms(path, _read_table(path, date_col).column(0).drop_null())
            (ts,) = _sorted_unique(ts.astype(np.int64, copy=False))
            try:
                gaps = tuple(find_gaps(ts, timeframe_to_ms(tf)))
            except DataError:  # 1M: months have no fixed length
                gaps = ()
            out.append(DataInfo(pair, tf, ctype, path, m.group("ext"), len(ts),
                                int(ts[0]) if len(ts) else None, int(ts[-1]) if len(ts) else None, gaps))
        except DataError as exc:
            out.append(DataInfo(pair, tf, ctype, path, m.group("ext"), 0, None, None, (), str(exc)))
    return out


def describe(info: DataInfo, base: Path | None = None) -> str:
    """One line for a listing."""
    name = info.path.relative_to(base) if base is not None and info.path.is_relative_to(base) else info.path
    kind = "" if info.candle_type == SPOT else f" ({info.candle_type})"
    if info.error:
        return f"{info.pair}{kind} {info.timeframe}: unreadable: {info.error}"
    gaps = f", {len(info.gaps)} gap(s), {info.missing:,} candles missing" if info.gaps else ", no gap"
    return (f"{info.pair}{kind} {info.timeframe}: {info.rows:,} candles, {fmt_ts(info.first_ts)} → "
            f"{fmt_ts(info.last_ts)} UTC{gaps} [{name}]")


def as_mapping(info: DataInfo) -> dict[str, Any]:
    """A JSON-friendly view of ``info``."""
    return {
        "pair": info.pair, "timeframe": info.timeframe, "candle_type": info.candle_type,
        "path": str(info.path), "format": info.format, "rows": info.rows,
        "first_ts": info.first_ts, "last_ts": info.last_ts,
        "gaps": [[g.start_ms, g.end_ms] for g in info.gaps], "error": info.error,
    }
