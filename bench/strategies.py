"""How the safe list's strategies trade on the simulated market: the figures behind the defaults.

    python -m bench.strategies                       # the repo's safe_list.yaml, 3 seeds x 14 days
    python -m bench.strategies --days 30 --seeds 5
    python -m bench.strategies --config my.yaml --data-dir out/   # also write the candles as a
                                                                  # download-format data dir

The candles are the simulated market's history (feed/sim: the same model the demo streams) at
1-minute candles, one run per seed, every run through ``run_backtest`` (the trading core that
trades live). Per pair and strategy it prints what a trader asks before believing a default:
round trips, win rate, net PnL after fees, fees as a share of the trades' gross movement
(sum of |PnL before fees|), median and mean hold in candles, how exits happened, which rule
set the entries' sizes, and the signals the risk pipeline refused, by check.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
T_END = 1_735_689_600.0  # 2025-01-01 00:00 UTC: history ends here (any fixed time will do)


def sim_candles(symbols: list[str], days: int, seed: int, timeframe_s: int = 60,
                tiers: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """``days`` of the simulated market's history per symbol: (n, 6) ts, o, h, l, c, v."""
    from feed.sim.source import SimSource

    src = SimSource(symbols, seed=seed, tiers=tiers, clock=lambda: T_END)
    n = days * 86_400 // timeframe_s
    return {s: np.asarray(src.history_sync(s, timeframe_s, n), dtype=np.float64) for s in symbols}


@dataclass(slots=True)
class PairFigures:
    trades: int = 0
    wins: int = 0
    net: float = 0.0
    fees: float = 0.0
    gross_moves: float = 0.0  # sum of |PnL before fees|
    holds: list[float] = field(default_factory=list)  # candles
    exits: Counter[str] = field(default_factory=Counter)
    size_rules: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def fee_share(self) -> float:
        return self.fees / self.gross_moves if self.gross_moves > 0 else 0.0

    @property
    def median_hold(self) -> float:
        return statistics.median(self.holds) if self.holds else 0.0


def size_rules(book: Path) -> dict[str, Counter[str]]:
    """Per symbol, which rule set the size of each approved entry (read from the run's book)."""
    import json

    out: dict[str, Counter[str]] = {}
    with sqlite3.connect(f"file:{book}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT symbol, checks_json FROM decisions WHERE approved = 1 AND action LIKE 'open_%'"
        ).fetchall()
    for symbol, checks in rows:
        for name, _ok, reason in json.loads(checks):
            if name == "sizing":
                rule = reason.split(" set by ", 1)[1].split(" ", 1)[0] if " set by " in reason else "?"
                out.setdefault(symbol, Counter())[rule.rstrip("$")] += 1
    return out


def figures(result: Any, book: Path, timeframe_s: int) -> dict[str, PairFigures]:
    """Per pair figures of one backtest result (and its book)."""
    out: dict[str, PairFigures] = {}
    for t in result.trades:
        f = out.setdefault(t.symbol, PairFigures())
        f.trades += 1
        f.wins += t.pnl > 0
        f.net += t.pnl
        f.fees += t.fees
        f.gross_moves += abs(t.pnl + t.fees)
        f.holds.append((t.exit_ts - t.entry_ts) / (timeframe_s * 1000))
        f.exits[t.exit_reason] += 1
    for r in result.rejections:
        out.setdefault(r.symbol, PairFigures()).refused[r.check] += 1
    for symbol, rules in size_rules(book).items():
        out.setdefault(symbol, PairFigures()).size_rules.update(rules)
    return out


def run(config: Path, days: int, seeds: list[int], data_dir: Path | None = None) -> dict[str, PairFigures]:
    from engine.backtest.runner import run_backtest
    from engine.core.config import load_safe_list

    cfg = load_safe_list(config)
    symbols = cfg.active_symbols()
    tiers = {s: str(cfg.pairs[s].tier) for s in symbols}
    total: dict[str, PairFigures] = {}
    for seed in seeds:
        candles = sim_candles(symbols, days, seed, tiers=tiers)
        if data_dir is not None:
            write_datadir(candles, data_dir / f"seed{seed}")
        with tempfile.TemporaryDirectory(prefix="bench-strategies-") as d:
            book = Path(d) / "book.sqlite"
            res = run_backtest(cfg, candles, book, timeframe_s=60, config_name=str(config))
            for sym, f in figures(res, book, 60).items():
                t = total.setdefault(sym, PairFigures())
                t.trades += f.trades
                t.wins += f.wins
                t.net += f.net
                t.fees += f.fees
                t.gross_moves += f.gross_moves
                t.holds += f.holds
                t.exits.update(f.exits)
                t.size_rules.update(f.size_rules)
                t.refused.update(f.refused)
    return total


def write_datadir(candles: dict[str, np.ndarray], root: Path) -> None:
    """The candles as a download-format data dir (binance/BTC_USDT-1m.parquet, freqtrade's layout)."""
    from feed.candlefiles import candle_filename, write_candle_file
    from feed.candles import Candles

    (root / "binance").mkdir(parents=True, exist_ok=True)
    for symbol, rows in candles.items():
        c = Candles(symbol, "1m", rows[:, 0].astype(np.int64), *(rows[:, i].copy() for i in range(1, 6)))
        write_candle_file(root / "binance" / candle_filename(symbol, "1m"), c)


def table(total: dict[str, PairFigures], strategies: dict[str, str]) -> str:
    head = (f"{'pair':<10} {'strategy':<15} {'trades':>6} {'win%':>5} {'net $':>9} {'fees $':>8} "
            f"{'fee share':>9} {'hold med':>8} {'hold avg':>8}  exits / size set by / refused")
    lines = [head, "-" * len(head)]
    for sym, f in total.items():
        win = 100.0 * f.wins / f.trades if f.trades else 0.0
        avg = statistics.fmean(f.holds) if f.holds else 0.0
        exits = ", ".join(f"{k} {v}" for k, v in f.exits.most_common())
        rules = ", ".join(f"{k} {v}" for k, v in f.size_rules.most_common())
        refused = ", ".join(f"{k} {v}" for k, v in f.refused.most_common())
        lines.append(
            f"{sym:<10} {strategies.get(sym, '?'):<15} {f.trades:>6} {win:>5.0f} {f.net:>9.2f} "
            f"{f.fees:>8.2f} {f.fee_share:>9.0%} {f.median_hold:>8.0f} {avg:>8.0f}  "
            f"{exits or '-'} / {rules or '-'} / {refused or '-'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "safe_list.yaml")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, help="also write the candles here (download format)")
    args = ap.parse_args(argv)
    from engine.core.config import load_safe_list

    cfg = load_safe_list(args.config)
    total = run(args.config, args.days, list(range(1, args.seeds + 1)), args.data_dir)
    strategies = {s: cfg.pairs[s].strategy for s in cfg.active_symbols()}
    print(f"{args.config.name}: simulated market, 1m candles, {args.seeds} seeds x {args.days} days")
    print(table(total, strategies))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
