"""Proof of "the same engine": one candle file, two paths, equal decision streams.

Path 1, the full stack as it trades: the replay feed (``python -m feed --source replay --speed
0``, flow-controlled: nothing dropped) → ZeroMQ → the engine process → its book. Path 2:
``run_backtest`` over the same candles in this process. Every decision (its key with the
candle time, action, approval, quantity and each check's name, verdict and reason) must be
equal. The replay shifts the file's clock to now by a whole number of candles; keys are
compared with that shift taken out. Times the engine stamps with its own wall clock (the
decision's, a fill's) are not compared.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.backtest.runner import run_backtest
from engine.core.config import load_safe_list
from tests.procs import ROOT, stack

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
N = 1500  # candles per pair: 500 warm-up, 1,000 traded
T0 = 1_700_000_000_000 // 3_600_000 * 3_600_000
MIN = 60_000

pytestmark = pytest.mark.timeout(180)


def candles() -> dict[str, np.ndarray]:
    out = {}
    for k, (sym, p0, vol) in enumerate(
        (("BTC/USDT", 60_000.0, 0.002), ("ETH/USDT", 3_000.0, 0.0025), ("SOL/USDT", 150.0, 0.003))
    ):
        rng = np.random.default_rng(100 + k)
        ts = T0 + np.arange(N) * MIN
        c = np.round(p0 * np.exp(np.cumsum(rng.normal(0, vol, N))), 2)
        o = np.r_[p0, c[:-1]]
        h = np.round(np.maximum(o, c) * (1 + np.abs(rng.normal(0, vol / 3, N))), 2)
        lo = np.round(np.minimum(o, c) * (1 - np.abs(rng.normal(0, vol / 3, N))), 2)
        v = np.round(rng.uniform(1, 3, N), 3)
        out[sym] = np.column_stack([ts, o, h, lo, c, v])
    return out


def decisions(book: Path) -> list[tuple[Any, ...]]:
    """The book's decisions, read-only and only once the engine created the file: a plain
    connect creates an empty file and holds it open while the engine creates its schema (two
    CI runs under load saw an engine that never wrote a decision in 120 s)."""
    if not book.exists():
        raise sqlite3.OperationalError(f"{book} not created yet")
    conn = sqlite3.connect(f"file:{book}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT key, action, approved, qty, checks_json FROM decisions ORDER BY id").fetchall()
    finally:
        conn.close()


def normalise(rows: list[tuple[Any, ...]], shift: int) -> list[tuple[Any, ...]]:
    out = []
    for key, action, approved, qty, checks in rows:
        # an entry's key is symbol|candle time|BUY/SELL: the candle time, unshifted; an exit's
        # (symbol|stop|opened) names its position by the entry fill's time, which the engine
        # stamps with its own wall clock and the backtest with the candle's: the position is
        # the one opened before, in both streams, so the stamp is left out
        parts = key.split("|")
        if len(parts) == 3 and parts[1].isdigit():
            parts[1] = str(int(parts[1]) - shift)
        elif parts[-1].isdigit():
            parts[-1] = "opened"
        out.append(("|".join(parts), action, approved, round(qty, 12), checks))
    return out


def test_replay_through_the_engine_process_equals_the_backtest(tmp_path: Path) -> None:
    data = candles()
    frame = pd.concat(
        pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"]).assign(symbol=s)
        for s, rows in data.items()
    ).astype({"ts": "int64"})
    csv = tmp_path / "candles.csv"
    frame.to_csv(csv, index=False)
    cfg = load_safe_list(ROOT / "safe_list.yaml")

    backtest_book = tmp_path / "backtest.sqlite"
    run_backtest(cfg, data, backtest_book, timeframe_s=60, warmup=500)
    expected = decisions(backtest_book)
    assert len(expected) >= 10, "the data must make the strategies decide"

    with stack() as s:
        feed = [
            sys.executable, "-m", "feed", "--source", "replay", "--replay-file", str(csv),
            "--speed", "0", "--symbols", ",".join(SYMBOLS), "--pub", s.feed_pub,
            "--rep", s.feed_rep, "--log-file", str(s.dir / "feed.log"),
        ]  # fmt: skip
        s.start("feed", feed)
        s.start("engine", s.engine_cmd_line("--timeframe", "1m"))
        deadline = time.monotonic() + 120
        seen, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:  # until the decisions stop coming for 4 s
            time.sleep(0.5)
            try:
                n = len(decisions(s.db))
            except sqlite3.Error:
                continue
            if n != seen:
                seen, stable_since = n, time.monotonic()
            elif n >= len(expected) and time.monotonic() - stable_since > 4.0:
                break
        s.stop("engine")
        got = decisions(s.db)
        feed_log = s.log("feed")
    assert got, feed_log[-2000:]
    # the replay's shift: a whole number of candles, the same for every key
    first_key = next(k for k, *_ in got if k.split("|")[1].isdigit())
    first_bt = next(k for k, *_ in expected if k.split("|")[1].isdigit())
    shift = int(first_key.split("|")[1]) - int(first_bt.split("|")[1])
    assert shift % MIN == 0
    a, b = normalise(got, shift), normalise(expected, 0)
    assert len(a) == len(b), (len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, f"decision {i} differs:\n engine:   {x}\n backtest: {y}"
