"""Round trips from the fills the console holds, their performance, and their CSV export.

Owns ``round_trips`` (closed trades built by the backtest's own ``TradeBook``, so a round trip,
its PnL after fees and its exit reason are counted exactly as the backtest report counts
them), ``performance`` (per pair and in total, by ``engine.backtest.metrics``: win rate, net
PnL, profit factor, average hold, with the report's definitions), ``write_csv`` and
``exports_dir``. No Textual here.

The console holds the book's latest fills (the attach snapshot's, at most 200) and every fill
since. Fills that close a position opened before the oldest of them cannot make a round trip
(the entry is not known): they are left out and counted (``RoundTrips.skipped``). Which those
are follows from each pair's position now: the position before the oldest fill is the one
now minus every fill since.

An exit whose closing fill belongs to the pair's protective stop at the exchange (its client
order id is the one the core derives from ``symbol|protect|opened_ts#n``,
engine/core/protect.py) is reported as ``exchange_stop``; the core books it as ``stop``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.backtest.metrics import Figures, compute
from engine.backtest.result import BacktestResult, RunMeta, Trade
from engine.backtest.trades import TradeBook
from engine.core.models import Fill, Position, Side
from engine.core.orders import client_order_id
from engine.core.portfolio import QTY_DECIMALS
from engine.wire.schema import FillMsg
from feed.datadir import default_data_dir

PROTECT_IDS = 64  # protective stop ids tried per position (one per placement or replacement)
CSV_FIELDS = [f.name for f in dataclasses.fields(Trade)] + ["entry_time", "exit_time", "hold_s"]


@dataclass(slots=True)
class RoundTrips:
    """The closed round trips (oldest exit first) and what the fills could not tell."""

    trades: list[Trade] = field(default_factory=list)
    open: dict[str, Trade] = field(default_factory=dict)  # positions open now, with a known entry
    skipped: int = 0  # fills closing a position opened before the oldest fill held
    fills: int = 0  # fills used
    since_ms: int | None = None  # the oldest fill's time


@lru_cache(maxsize=1024)
def protective_ids(symbol: str, opened_ts: int) -> frozenset[str]:
    """The client order ids the core gives the protective stops of the position of
    ``symbol`` opened at ``opened_ts`` (engine/core/protect.py ``_place``)."""
    key = f"{symbol}|protect|{opened_ts}"
    return frozenset(client_order_id(f"{key}#{n}") for n in range(1, PROTECT_IDS + 1))


def _signed(f: FillMsg) -> float:
    return f.qty if f.side == "buy" else -f.qty


def _flat(qty: float) -> bool:
    return round(qty, QTY_DECIMALS) == 0.0


def round_trips(fills: Iterable[FillMsg], positions: Mapping[str, float]) -> RoundTrips:
    """Round trips from ``fills`` (oldest first) given each pair's signed position now."""
    fills = list(fills)
    held: dict[str, float] = dict.fromkeys({f.symbol for f in fills}, 0.0)
    for f in fills:
        held[f.symbol] -= _signed(f)
    for sym in held:  # the position before the oldest fill
        held[sym] = round(held[sym] + positions.get(sym, 0.0), QTY_DECIMALS)
    book = TradeBook()
    out = RoundTrips(since_ms=fills[0].ts if fills else None)
    for f in fills:
        if not _flat(held[f.symbol]):  # closes a position opened before the fills we hold
            held[f.symbol] = round(held[f.symbol] + _signed(f), QTY_DECIMALS)
            out.skipped += 1
            continue
        side = Side.BUY if f.side == "buy" else Side.SELL
        fill = Fill(f.fill_id, f.order_id, f.symbol, side, f.qty, f.price, f.fee, f.ts, f.reason)
        opened = book.open.get(f.symbol)
        entry_ts = opened.entry_ts if opened is not None else 0
        before = len(book.trades)
        book.on_fill(fill, Position(f.symbol))
        out.fills += 1
        if len(book.trades) > before:
            trade = book.trades[-1]
            if trade.exit_reason == "stop" and f.order_id in protective_ids(f.symbol, entry_ts):
                trade.exit_reason = "exchange_stop"
    out.trades = sorted(book.trades, key=lambda t: t.exit_ts)
    for sym, t in book.open.items():
        out.open[sym] = Trade(
            sym, t.side, abs(t.held), t.entry_ts, t.entry, 0, 0.0, t.fees, 0.0, "end"
        )
    return out


def performance(
    trades: list[Trade], symbols: list[str], capital: float
) -> tuple[Figures, list[Figures]]:
    """(total, per pair) by the backtest's metrics over ``trades``; pairs with no trade too."""
    start = min((t.entry_ts for t in trades), default=0)
    end = max((t.exit_ts for t in trades), default=0)
    meta = RunMeta("", list(symbols), "", start, end, capital, 0.0, 0.0, 0)
    summary = compute(BacktestResult(meta, trades=trades))
    return summary.portfolio, summary.pairs


def utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000.0))


def exports_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/multipar-console/exports`` (``~/.local/share/...`` when unset)."""
    return default_data_dir(environ).parent / "exports"


def _cell(x: object) -> object:
    """Floats to 12 significant digits: 59370.4, not the average's 59370.40000000001."""
    return f"{x:.12g}" if isinstance(x, float) else x


def write_csv(trades: list[Trade], directory: Path, now_s: float) -> Path:
    """Write ``trades`` (oldest exit first) to a new ``trades-YYYYmmdd-HHMMSS.csv`` in
    ``directory`` (made private: 0700, the file 0600); its path. Raises ``OSError``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = "trades-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now_s))
    for n in range(100):
        path = directory / (stem + (f"-{n}" if n else "") + ".csv")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_FIELDS)
            for t in trades:
                row = [_cell(getattr(t, name)) for name in CSV_FIELDS[:-3]]
                hold = (t.exit_ts - t.entry_ts) / 1000.0
                w.writerow([*row, utc(t.entry_ts), utc(t.exit_ts), f"{hold:g}"])
        return path
    raise FileExistsError(f"{directory}: {stem}*.csv all taken")
