"""The candle data directory: where downloaded history lives, in freqtrade's layout.

Owns the directory and what it holds, so ``multipar-console download`` writes where the backtest
reads and a user's freqtrade data directory is read as it is:

* the directory: ``$XDG_DATA_HOME/multipar-console/data`` (``~/.local/share/...`` when unset),
  one subdirectory per exchange (``binance/``), as freqtrade's ``user_data/data/binance``; a
  freqtrade ``--datadir`` (the root or the exchange directory) is taken as it is;
* which file holds a pair's candles (Parquet first, then Feather; a new one is Parquet);
* ``load_candles``, what a backtest calls; ``list_data``, what a directory holds, with each
  file's range and gaps (a gap is a run of missing candles between a file's first and last).

One file's name, columns, reading and writing: ``feed.candlefiles``; the candles themselves and
``DataError``: ``feed.candles``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feed.candlefiles import (
    FILE_RE,
    FORMATS,
    FUTURES_DIR,
    SPOT,
    candle_filename,
    pair_from_filename,
    read_candle_file,
    read_open_times,
    timeframe_from_file,
)
from feed.candles import Candles, DataError, Gap, find_gaps, fmt_ts, timeframe_to_ms

APP_DIR = "multipar-console"
DEFAULT_EXCHANGE = "binance"


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
        return any(FILE_RE.match(p.name) for p in path.iterdir())
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


# -- files ------------------------------------------------------------------------------------


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
            m = FILE_RE.match(p.name)
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
            ts = read_open_times(path)
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
