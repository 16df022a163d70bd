"""The backtest's results, pinned bit for bit: a speed-up of the core or of the runner must not
change one decision, one fill or one cent of equity.

Each case runs ``run_backtest`` over seeded synthetic candles (3 pairs, a 500-candle warm-up)
with a safe list written out here in full (so a change to the bundled file or to a default
does not move the pin), reads back every decision and fill from the run's book and the equity
curve and trades from its result, and compares the sha256 of their canonical JSON with the
digest recorded below. Floats are compared exactly (``==``, not approximately): the JSON holds
each float's shortest round-trip ``repr``; integers are written as floats so an ``int`` 0 and a
``0.0`` (equal values) give the same digest.

The cases cover the three strategies a safe list can name, futures (shorts), and candles with
gaps (missing candles, a multi-hour hole that the plausibility check must confirm, pairs that
close by the timer). The digests were recorded with the code as it was before the speed work
(3 pairs x 30,000 candles gave the same streams before and after; these smaller runs keep
the test under 10 s), then moved once, on purpose: the backtest had lost a candle's second
extreme when a stop fired at its first, so the candle's high (or low) was wrong from then on
(tests/test_same_engine.py found it). They moved a second time with issue 12, on purpose: the
``costs`` check refuses entries whose target does not pay the round trip, stops are anchored at
the fill at least a floor of ATRs and spreads away, and after a gap only the newest candle is
decided on (the cases' safe list and candles are unchanged).

After a change that is MEANT to change results, print the new digests with
``PYTHONPATH=. python tests/test_backtest_golden.py`` and say in the commit why they moved.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from engine.backtest.runner import run_backtest
from engine.core.config import parse_safe_list

pytestmark = pytest.mark.timeout(60)

SAFE_LIST = """
version: 1
portfolio:
  capital_usd: 10000
  max_total_exposure: 0.10
  max_correlated_positions: 2
  min_confidence: 0.60
  risk_per_trade_usd: 25
  atr_multiplier: 2.0
  correlation_groups: [[BTC/USDT, ETH/USDT]]
  correlation_threshold: 0.80
  correlation_window: 60
  stale_after_s: 10
  taker_fee: 0.001
  slippage_bps: 1.0
engine:
  timeframe: 1m
  history_candles: 500
pairs:
  BTC/USDT:
    tier: STABLE
    strategy: momentum
    max_position_size_usd: 500
    params: &params
      rsi_period: 14
      rsi_overbought: 70.0
      rsi_oversold: 30.0
      bb_period: 20
      bb_std: 2.0
      ma_fast: 9
      ma_slow: 21
      lookback: 20
      atr_period: 14
      stop_atr: 1.5
      take_profit_atr: 3.0
  ETH/USDT:
    tier: STABLE
    strategy: mean_reversion
    max_position_size_usd: 600
    params: *params
  SOL/USDT:
    tier: VOLATILE
    strategy: breakout
    max_position_size_usd: 400
    params: *params
"""

# case: (strategy on every pair, or "mixed" for the one-of-each list; market; candles per pair; gaps)
CASES: dict[str, tuple[str, str, int, bool]] = {
    "mixed_with_gaps": ("mixed", "spot", 12_000, True),
    "momentum": ("momentum", "spot", 8_000, False),
    "mean_reversion": ("mean_reversion", "spot", 8_000, False),
    "breakout": ("breakout", "spot", 8_000, False),
    "futures_shorts": ("mixed", "futures", 8_000, False),
}

# case: (sha256 of the canonical streams, decisions, fills, final equity): the counts and the
# equity only make a failure readable; the digest is the check
GOLDEN: dict[str, tuple[str, int, int, float]] = {
    "mixed_with_gaps": ('f5e6749a4691c4475a0e71e78a50a7bc9b7a24f519a8cc47a1d4c5787bba54db', 1138, 1023, 9333.915205232388),
    "momentum": ('638a3d4fcd01fd3fa1c0ea2783dce97a7697f793dd1a8f985c0ac436c21d9131', 958, 720, 9530.082575424516),
    "mean_reversion": ('5c2b08025faf3d6b7f7ae46b588cf466ba0423f99fdaa2a81bfcc449d1eb0449', 119, 108, 9914.542722074302),
    "breakout": ('3d7d5d7a901a1e72df1da0a63f89957830eb428320dc16078b58e86808c38b9f', 1598, 1113, 9154.40020193694),
    "futures_shorts": ('e21bfcdf579f7a008f0535576fba22ac32c216aae5e43fdc0cb421ff4f72b402', 1069, 948, 9376.350722620607),
}


def candles(n: int, gaps: bool) -> dict[str, np.ndarray]:
    """Random walks of 1-minute candles (seeded); with ``gaps``, some candles are missing."""
    rng = np.random.default_rng(7)
    out = {}
    for symbol, p0, vol in (("BTC/USDT", 60_000.0, 0.002), ("ETH/USDT", 3_000.0, 0.0025), ("SOL/USDT", 150.0, 0.003)):
        ts = 1_700_000_000_000 + np.arange(n) * 60_000
        c = p0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
        o = np.r_[p0, c[:-1]]
        h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, vol / 2, n)))
        lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, vol / 2, n)))
        v = rng.uniform(1, 3, n)
        out[symbol] = np.column_stack([ts, o, h, lo, c, v])
    if gaps:
        holes = {
            "BTC/USDT": [range(3_000, 3_400)],  # 400 minutes: a jump the next ticks must confirm
            "ETH/USDT": [range(2_000, 2_001), range(5_000, 5_004)],  # one, then four candles
            "SOL/USDT": [range(7_000, 7_002), range(9_500, 9_530)],
        }
        for symbol, ranges in holes.items():
            drop = np.concatenate([np.arange(r.start, r.stop) for r in ranges])
            out[symbol] = np.delete(out[symbol], drop, axis=0)
    return out


def safe_list(strategy: str, market: str) -> Any:
    data = yaml.safe_load(SAFE_LIST)
    for pair in data["pairs"].values():
        if strategy != "mixed":
            pair["strategy"] = strategy
        if market == "futures":  # shorts: the bearish signals become entries
            pair.update(market="futures", leverage=2)
    if market == "futures":
        data["portfolio"]["max_total_exposure"] = 0.2
    return parse_safe_list(yaml.safe_dump(data), f"golden-{strategy}-{market}.yaml")


def streams(case: str, tmp: Path) -> dict[str, Any]:
    """Every decision and fill from the run's book, its equity curve, trades and final equity."""
    strategy, market, n, gaps = CASES[case]
    book = tmp / f"{case}.sqlite"
    res = run_backtest(safe_list(strategy, market), candles(n, gaps), book, timeframe_s=60)
    with sqlite3.connect(book) as conn:
        decisions = conn.execute(
            "SELECT key, symbol, ts, action, approved, qty, price, signal_type, confidence, entry, "
            "stop_loss, take_profit, reasoning, signal_ts, checks_json FROM decisions ORDER BY id"
        ).fetchall()
        fills = conn.execute(
            "SELECT fill_id, order_id, symbol, side, qty, price, fee, ts, reason FROM fills ORDER BY rowid"
        ).fetchall()
        book_equity = conn.execute(
            "SELECT ts, equity, cash, exposure, realised, unrealised, fees FROM equity ORDER BY id"
        ).fetchall()
    return {
        "decisions": [[*d[:-1], json.loads(d[-1])] for d in decisions],  # checks: name, ok, reason
        "fills": fills,
        "book_equity": book_equity,
        "equity": [(e.ts, e.equity, e.cash, e.exposure) for e in res.equity],
        "trades": [
            (t.symbol, t.side, t.qty, t.entry_ts, t.entry_price, t.exit_ts, t.exit_price, t.fees, t.pnl, t.exit_reason)
            for t in res.trades
        ],
        "rejections": [(r.ts, r.symbol, r.action, r.check, r.reason) for r in res.rejections],
        "signals": res.signals,
        "final_equity": res.equity[-1].equity,
    }


def _canonical(x: Any) -> Any:
    """Numbers as floats (an int 0 and 0.0 are equal values), -0.0 as 0.0, tuples as lists."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return float(x) if abs(x) < 2**53 else x
    if isinstance(x, float):
        return x + 0.0 if not math.isnan(x) else x
    if isinstance(x, list | tuple):
        return [_canonical(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _canonical(v) for k, v in x.items()}
    raise TypeError(f"no canonical form for {type(x).__name__}")


def digest(s: dict[str, Any]) -> str:
    text = json.dumps(_canonical(s), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def summary(s: dict[str, Any]) -> tuple[str, int, int, float]:
    return digest(s), len(s["decisions"]), len(s["fills"]), s["final_equity"]


@pytest.mark.parametrize("case", list(CASES))
def test_backtest_results_are_unchanged(case: str, tmp_path: Path) -> None:
    got = summary(streams(case, tmp_path))
    assert got == GOLDEN[case], (
        f"{case}: the backtest's results changed (digest, decisions, fills, final equity):\n"
        f"  now    {got}\n  pinned {GOLDEN[case]}"
    )


def test_the_equity_curve_written_in_parts_is_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's book writes its equity points every ``FLUSH_EQUITY`` (memory stays bounded on
    a year); written every 997 points instead of once, the book and the results are the pinned
    ones, bit for bit."""
    from engine.backtest import book as book_mod
    from engine.backtest import held as held_mod

    flushes: list[int] = []
    flush = book_mod.BacktestBook.flush_equity

    def counted(self: book_mod.BacktestBook) -> None:
        flushes.append(len(self.equity_rows))
        flush(self)

    monkeypatch.setattr(held_mod, "FLUSH_EQUITY", 997)  # (the points are held there, compiled)
    monkeypatch.setattr(book_mod.BacktestBook, "flush_equity", counted)
    s = streams("mixed_with_gaps", tmp_path)
    assert len(flushes) > 5 and set(flushes[:-1]) == {997}  # written in parts of 997, the rest at the end
    assert sum(flushes) == len(s["book_equity"])
    assert summary(s) == GOLDEN["mixed_with_gaps"]


def test_computing_every_indicator_gives_the_same_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backtest's pairs compute only the indicators their strategy reads (``Strategy.reads``)
    and ATR; computing every one, as a live engine does for its console, gives the pinned
    results of each strategy, bit for bit."""
    from engine.backtest import runner

    monkeypatch.setattr(runner, "EVERY_INDICATOR", True)
    for case in ("momentum", "mean_reversion", "breakout"):
        assert summary(streams(case, tmp_path)) == GOLDEN[case], case


if __name__ == "__main__":  # print the digests to pin after an intended change of results
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for name in CASES:
            print(f"    {name!r}: {summary(streams(name, Path(d)))!r},")

