"""``multipar-console download``: candle history for the safe list's pairs into the data directory.

The glue between the command line and ``feed.download``: the options, the safe list (its active
pairs and ``engine.timeframe`` when ``--pairs``/``--timeframe`` are not given), the dates, the
progress bar, the summary per pair and the exit code: 0 done (gaps reported are not errors),
1 the exchange failed after the retries (what was fetched is kept: run again to continue),
2 bad input, 130 interrupted (what was fetched is kept). See docs/backtesting.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from console.options import APP_NAME
from engine.core.config import SYMBOL_RE, ConfigError, default_path, load_safe_list
from feed.datadir import (
    DEFAULT_EXCHANGE,
    DataError,
    default_data_dir,
    describe,
    exchange_dir,
    list_data,
)
from feed.download import DEFAULT_DAYS, DownloadConfigError
from feed.download_report import PairResult, ProgressBar
from feed.download_run import download_pairs
from feed.private import ENV_REST_URL


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 0 < days <= 36_500:
        raise argparse.ArgumentTypeError(f"{value!r}: expected more than 0 days")
    return days


def _date_ms(value: str) -> int:
    """``YYYY-MM-DD`` (or an ISO date-time; UTC unless it says otherwise) as epoch ms."""
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2024-01-31") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{APP_NAME} download",
        description=(
            "Download Binance spot candles for the safe list's pairs (or --pairs) into the data "
            "directory, in freqtrade's layout (binance/BTC_USDT-1m.parquet). Incremental: only "
            "missing candles are fetched; run it again after an interruption to continue. Gaps "
            "in the exchange's data are reported, never filled."
        ),
    )
    p.add_argument("--config", metavar="PATH", type=Path,
                   help="safe list (default: $MULTIPAR_SAFE_LIST, ./safe_list.yaml, the bundled one)")
    p.add_argument("--pairs", metavar="LIST",
                   help="comma-separated pairs, e.g. BTC/USDT,ETH/USDT (default: the safe list's active pairs)")
    p.add_argument("--timeframe", metavar="TF",
                   help="candle interval: 1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w "
                   "(default: the safe list's engine.timeframe)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--days", metavar="N", type=_days,
                      help=f"the last N days (default: extend the file, or {DEFAULT_DAYS} days for a new pair)")
    when.add_argument("--from", dest="start", metavar="YYYY-MM-DD", type=_date_ms,
                      help="from this date (00:00 UTC)")
    p.add_argument("--to", dest="end", metavar="YYYY-MM-DD", type=_date_ms,
                   help="up to this date, excluded (00:00 UTC); default: now (only closed candles)")
    p.add_argument("--data", metavar="DIR", type=Path,
                   help=f"data directory (default: {default_data_dir()}); a freqtrade "
                   "user_data/data or user_data/data/binance directory works as it is")
    p.add_argument("--rest-url", metavar="URL",
                   help=f"Binance REST URL, e.g. a local test server (credentials: ${ENV_REST_URL} instead)")
    p.add_argument("--markets-file", metavar="PATH", type=Path,
                   help="markets JSON, so no exchangeInfo call is needed")
    p.add_argument("--retries", metavar="N", type=int, default=5,
                   help="retries of a failed request, with backoff (default: 5)")
    p.add_argument("--list", action="store_true",
                   help="list what the data directory holds (pairs, ranges, gaps) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"{APP_NAME} download: {message}", file=sys.stderr)
    return code


def _list(data: Path | None) -> int:
    base = exchange_dir(data, DEFAULT_EXCHANGE)
    infos = list_data(data, DEFAULT_EXCHANGE)
    if not infos:
        print(f"{base}: no candle files")
        return 0
    print(f"{base}:")
    for info in infos:
        print("  " + describe(info, base))
    return 0


def download_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if args.list:
        return _list(args.data)
    if args.end is not None and args.start is None:
        return _fail("--to needs --from (or use --days N for the last N days)")
    if args.start is not None and args.end is not None and args.end <= args.start:
        return _fail("--to must be after --from")
    if args.retries < 0:
        return _fail(f"--retries {args.retries}: expected 0 or more")

    pairs: list[str] = []
    if args.pairs is not None:
        pairs = [s.strip().upper() for s in args.pairs.split(",") if s.strip()]
        bad = [s for s in pairs if not SYMBOL_RE.match(s)]
        if bad or not pairs:
            shown = ", ".join(repr(s) for s in bad) or repr(args.pairs)
            return _fail(f"--pairs {shown}: expected BASE/QUOTE pairs separated by commas, e.g. BTC/USDT,ETH/USDT")
    timeframe = args.timeframe
    if not pairs or timeframe is None or args.config is not None:
        path = args.config if args.config is not None else default_path()
        try:
            cfg = load_safe_list(path)
        except ConfigError as exc:
            for line in exc.problems:
                print(line, file=sys.stderr)
            return 2
        pairs = pairs or cfg.active_symbols()
        if timeframe is None:
            timeframe = cfg.engine.timeframe
            source = f"{path}: engine.timeframe {timeframe!r}"
        else:
            source = f"--timeframe {timeframe!r}"
    else:
        source = f"--timeframe {timeframe!r}"

    progress = ProgressBar(enabled=False if args.quiet else None)
    data_base = exchange_dir(args.data, DEFAULT_EXCHANGE)

    def show(result: PairResult) -> None:
        print(result.summary(data_base), flush=True)

    # Retries are told on stderr as they happen (the progress line is cleared first).
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter(f"{APP_NAME} download: %(message)s"))
    dl_log = logging.getLogger("feed.download")
    dl_log.addHandler(notes)
    dl_log.setLevel(logging.WARNING)
    dl_log.propagate = False
    try:
        report = asyncio.run(download_pairs(
            pairs, timeframe, start_ms=args.start, end_ms=args.end, days=args.days,
            data_dir=args.data, rest_url=args.rest_url, markets_file=args.markets_file,
            progress=progress, retries=args.retries, on_result=show,
        ))
    except DownloadConfigError as exc:
        message = str(exc)
        if message.startswith("timeframe"):
            message = f"{source}: {message.partition(': ')[2]}"
        return _fail(message)
    except DataError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"{APP_NAME} download: interrupted; what was fetched is stored, run again to continue",
              file=sys.stderr)
        return 130
    finally:
        dl_log.removeHandler(notes)
        dl_log.propagate = True
    if report.error:
        return _fail(f"{report.error}; what was fetched is stored, run again to continue", 1)
    total = sum(r.added for r in report.results)
    gaps = sum(len(r.gaps) for r in report.results)
    print(f"done: {len(report.results)} pair(s), +{total:,} candles"
          + (f", {gaps} gap(s) in the exchange's data left empty" if gaps else "")
          + f" [{data_base}]")
    return 0
