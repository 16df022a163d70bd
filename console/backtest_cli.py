"""``multipar-console backtest``: the trading core over history, and the report a trader reads.

Owns the command line: which pairs and candles (the data directory that ``download`` fills, or
one file in the replay's formats), the run directory it writes (``result.json``, the run's own
SQLite ``book.sqlite``, ``report.html``), a progress bar on stderr, and the summary printed at
the end. The backtest itself is ``engine.backtest.runner.run_backtest``; the figures
``engine.backtest.metrics``; docs/backtesting.md explains both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from console.options import APP_NAME

RESULTS_DIR = "backtests"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{APP_NAME} backtest",
        description="Run the safe list's strategies over history through the same trading core "
        "that trades live; write result.json, the run's book and an HTML report.",
    )
    p.add_argument(
        "--config", metavar="PATH", type=Path, help="safe list (default: as the console finds it)"
    )
    p.add_argument("--data", metavar="DIR", type=Path, help="data directory (default: download's)")
    p.add_argument(
        "--file",
        metavar="PATH",
        type=Path,
        help="one CSV or Parquet file of candles (ts, symbol, open, high, low, close, volume) instead of --data",
    )
    p.add_argument(
        "--pairs",
        metavar="A/B,C/D",
        help="these pairs only (default: the safe list's active pairs)",
    )
    p.add_argument("--timeframe", metavar="TF", help="candle interval (default: the safe list's)")
    p.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day traded (UTC)")
    p.add_argument(
        "--to", dest="end", metavar="YYYY-MM-DD", help="day after the last one traded (UTC)"
    )
    p.add_argument(
        "--warmup",
        metavar="N",
        type=int,
        help="candles that warm the indicators before --from "
        "(default: the safe list's engine.history_candles)",
    )
    p.add_argument(
        "--spread-bps",
        metavar="X",
        type=float,
        default=2.0,
        help="bid/ask spread around each price (default 2)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="run directory (default: a new one under the data dir's backtests/)",
    )
    p.add_argument("--no-html", action="store_true", help="no HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _fail(msg: str) -> int:
    print(f"{APP_NAME} backtest: {msg}", file=sys.stderr)
    return 2


def _day_ms(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        d = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected YYYY-MM-DD") from None
    return int(d.timestamp() * 1000)


def _rows(ts: np.ndarray, o: Any, h: Any, lo: Any, c: Any, v: Any) -> np.ndarray:
    return np.column_stack([ts.astype("float64"), o, h, lo, c, v])


def _from_data_dir(
    pairs: list[str],
    timeframe: str,
    data: Path | None,
    start: int | None,
    end: int | None,
    warm_ms: int,
) -> dict[str, np.ndarray]:
    from feed.datadir import load_candles

    out = {}
    for pair in pairs:
        c = load_candles(
            pair,
            timeframe,
            data_dir=data,
            start_ms=None if start is None else start - warm_ms,
            end_ms=end,
        )
        out[pair] = _rows(c.ts, c.open, c.high, c.low, c.close, c.volume)
    return out


def _from_file(
    path: Path, pairs: list[str], start: int | None, end: int | None, warm_ms: int
) -> dict[str, np.ndarray]:
    import pandas as pd

    frame = (
        pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    )
    frame.columns = [str(c).lower() for c in frame.columns]
    needed = ("ts", "symbol", "open", "high", "low", "close", "volume")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(needed)})"
        )
    ts = frame["ts"]
    if not np.issubdtype(ts.dtype, np.number):
        ts = pd.to_datetime(ts, utc=True).astype("int64") // 1_000_000
    else:
        ts = ts.astype("int64")
        ts = ts * 1000 if ts.max() < 10**11 else ts // 1000 if ts.max() > 10**14 else ts
    frame = (
        frame.assign(ts=ts)
        .sort_values(["symbol", "ts"], kind="stable")
        .drop_duplicates(["symbol", "ts"], keep="last")
    )
    out = {}
    for pair in pairs:
        g = frame[frame["symbol"] == pair]
        if start is not None:
            g = g[g["ts"] >= start - warm_ms]
        if end is not None:
            g = g[g["ts"] < end]
        if len(g) < 2:
            raise ValueError(f"{path}: fewer than 2 candles of {pair} in the range")
        out[pair] = _rows(g["ts"].to_numpy(), *(g[c].to_numpy(dtype="float64") for c in needed[2:]))
    return out


class Bar:
    """A one-line progress bar on stderr (only when it is a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        rate = done / max(1e-9, time.perf_counter() - self.t0)
        sys.stderr.write(
            f"\r  [{'#' * filled}{'.' * (width - filled)}] {done / total:6.1%}  {rate:,.0f} candle times/s "
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def backtest_main(argv: list[str]) -> int:
    from engine.backtest.runner import run_backtest
    from engine.core.config import ConfigError, default_path, load_safe_list, parse_timeframe
    from feed.datadir import DataError, default_data_dir

    args = build_parser().parse_args(argv)
    cfg_path = args.config or default_path()
    try:
        cfg = load_safe_list(cfg_path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    pairs = (
        [p.strip() for p in args.pairs.split(",") if p.strip()]
        if args.pairs
        else cfg.active_symbols()
    )
    unknown = [p for p in pairs if p not in cfg.pairs]
    if unknown:
        return _fail(
            f"--pairs: {', '.join(unknown)} not in {cfg_path} (add them to the safe list first)"
        )
    if args.pairs:  # the core trades the safe list's active pairs: keep only these active
        cfg = cfg.model_copy(
            update={
                "pairs": {
                    s: (pc if s in pairs else pc.model_copy(update={"enabled": False}))
                    for s, pc in cfg.pairs.items()
                }
            }
        )
        pairs = cfg.active_symbols()
    if not pairs:
        return _fail(f"{cfg_path}: no active pair to backtest")
    timeframe = args.timeframe or cfg.engine.timeframe
    try:
        tf_s = parse_timeframe(timeframe)
        start, end = _day_ms(args.start, "--from"), _day_ms(args.end, "--to")
    except ValueError as exc:
        return _fail(str(exc))
    if start is not None and end is not None and end <= start:
        return _fail("--to must be after --from")
    warmup = cfg.engine.history_candles if args.warmup is None else args.warmup
    warm_ms = warmup * tf_s * 1000
    if args.file is not None and _is_tick_file(args.file):
        if start is not None or end is not None:
            return _fail(f"--file {args.file}: a tick file is replayed whole (no --from/--to)")
        return _run_ticks(args, cfg, cfg_path, tf_s)
    try:
        if args.file is not None:
            candles = _from_file(args.file, pairs, start, end, warm_ms)
            data_name = str(args.file)
        else:
            candles = _from_data_dir(pairs, timeframe, args.data, start, end, warm_ms)
            data_name = str(args.data or default_data_dir())
    except (DataError, ValueError, OSError) as exc:
        return _fail(str(exc))
    if start is not None:  # warm up on exactly the candles before --from
        warmup = min(int(np.searchsorted(candles[p][:, 0], start)) for p in pairs)
    out = _out_dir(args)
    if isinstance(out, int):
        return out
    book = out / "book.sqlite"
    n = sum(len(c) for c in candles.values())
    if not args.quiet:
        print(
            f"backtesting {', '.join(pairs)} on {timeframe} candles: {n:,} candles from {data_name}",
            file=sys.stderr,
        )
    from engine.core.ports import JournalError
    from engine.journal.schema import StoreError, one_line

    try:
        result = run_backtest(
            cfg, candles, book, timeframe_s=tf_s, warmup=warmup, spread_bps=args.spread_bps,
            progress=Bar(not args.quiet), config_name=str(cfg_path), data_name=data_name,
        )  # fmt: skip
    except (StoreError, JournalError) as exc:  # the book failed (a full disk): the run is void
        print(f"{APP_NAME} backtest: the run's book failed, nothing kept: {one_line(exc)}", file=sys.stderr)
        return 1
    return _report(result, out, args.no_html)


def _out_dir(args: argparse.Namespace) -> Path | int:
    from feed.datadir import default_data_dir

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or (args.data or default_data_dir()).parent / RESULTS_DIR / stamp
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=False)
    except OSError as exc:
        return _fail(f"--out {out}: {exc.strerror} (pass a new directory)")
    return out


def _is_tick_file(path: Path) -> bool:
    """A file with bid, ask and last columns is a tick file (the replay's formats)."""
    import pandas as pd

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
        else:
            names = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError):
        return False  # the candle path reports the error
    return {"bid", "ask", "last"} <= {str(n).lower() for n in names}


def _run_ticks(args: argparse.Namespace, cfg: Any, cfg_path: Path, tf_s: int) -> int:
    from engine.backtest.tick_runner import run_tick_backtest
    from feed.errors import FeedError

    out = _out_dir(args)
    if isinstance(out, int):
        return out
    if not args.quiet:
        print(f"backtesting {', '.join(cfg.active_symbols())} on the ticks of {args.file}", file=sys.stderr)
    try:
        result = run_tick_backtest(
            cfg, args.file, out / "book.sqlite", timeframe_s=tf_s,
            progress=Bar(not args.quiet), config_name=str(cfg_path),
        )  # fmt: skip
    except (FeedError, ValueError) as exc:
        return _fail(str(exc))
    return _report(result, out, args.no_html)


def _report(result: Any, out: Path, no_html: bool) -> int:
    from engine.backtest.html import write_html
    from engine.backtest.metrics import compute
    from engine.backtest.report import summary_text

    summary = compute(result)
    result.write(out / "result.json")
    print(summary_text(result, summary=summary))
    lines = [f"result  {out / 'result.json'}", f"book    {out / 'book.sqlite'}"]
    if not no_html:
        html = write_html(result, out / "report.html")
        lines.append(f"report  {html}")
    print("\n".join(lines))
    os.chmod(out, 0o700)
    return 0
