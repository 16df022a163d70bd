"""The backtest runner and its command line, on small hand-made and seeded data.

- The intra-candle rule on a hand-made candle: a long whose stop and take-profit both lie
  inside one candle is stopped (the extreme against the position comes first), at the tick that
  crossed the stop; with only the take-profit inside, it takes profit.
- Accounting: at every equity point of the run's book, equity = capital + realised +
  unrealised - fees; the trades' net PnL plus the capital is the final equity; the fills in the
  book sum to the trades' fees.
- The command line: a full run writes result.json (read back), the book and report.html and
  prints the summary; bad input is one line and exit 2.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.backtest.result import BacktestResult
from engine.backtest.runner import MAX_POINTS, run_backtest
from engine.core.config import load_safe_list
from tests.store_seed import seed_open_position

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"
T0 = 1_700_000_000_000 // 3_600_000 * 3_600_000  # a whole hour
MIN = 60_000

pytestmark = pytest.mark.timeout(120)


def btc_only():  # type: ignore[no-untyped-def]
    cfg = load_safe_list(SAFE_LIST)
    pairs = {s: pc.model_copy(update={"enabled": s == "BTC/USDT"}) for s, pc in cfg.pairs.items()}
    return cfg.model_copy(update={"pairs": pairs})


def flat_candles(n: int, price: float = 60_000.0, start: int = T0) -> np.ndarray:
    """Quiet candles: a tiny zig-zag, so indicators are defined and no strategy trades."""
    ts = start + np.arange(n) * MIN
    c = price + np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    o = np.r_[price, c[:-1]]
    return np.column_stack([ts, o, np.maximum(o, c) + 0.5, np.minimum(o, c) - 0.5, c, np.full(n, 2.0)])


def test_a_run_longer_than_the_charts_is_downsampled(tmp_path: Path) -> None:
    """Past ``MAX_POINTS`` candles the price chart and the equity curve keep each bucket's
    extremes: indices computed with numpy, handed to the compiled core as Python ints (a numpy
    int in an ``int`` place is a TypeError there; the golden runs are too short to get here)."""
    n = MAX_POINTS + 3_000
    rows = flat_candles(n)
    res = run_backtest(btc_only(), {"BTC/USDT": rows}, tmp_path / "long.sqlite", warmup=100)
    (series,) = res.series
    assert MAX_POINTS // 2 < len(series.ts) <= MAX_POINTS + 2
    assert series.ts == sorted(series.ts) and all(type(t) is int for t in series.ts)
    assert series.ts[0] == int(rows[100, 0]) and series.ts[-1] == int(rows[-1, 0])
    assert min(series.close) == rows[100:, 4].min() and max(series.close) == rows[100:, 4].max()
    assert 2 <= len(res.equity) <= MAX_POINTS + 400  # buckets' extremes and each day's last point


def fills(book: Path) -> list[tuple[str, str, float]]:
    with sqlite3.connect(book) as conn:
        return conn.execute("SELECT side, reason, price FROM fills ORDER BY ts, rowid").fetchall()


@pytest.mark.parametrize(
    ("low", "high", "reason", "extreme"),
    [
        (58_500.0, 61_500.0, "stop", 58_500.0),  # both inside: the low comes first, stop wins
        (59_500.0, 61_500.0, "take_profit", 61_500.0),  # only the target inside
    ],
)
def test_the_extreme_against_the_position_comes_first(
    tmp_path: Path, low: float, high: float, reason: str, extreme: float
) -> None:
    book = tmp_path / "book.sqlite"
    seed_open_position(book, "BTC/USDT", qty=0.01, price=60_000.0, stop=59_000.0, target=61_000.0)
    rows = flat_candles(1250)  # warm-up is at most half the candles: 600 of 1250
    k = 600  # the first candle after warm-up: nothing is decided before its extremes come
    rows[k, 1:5] = (60_000.0, high, low, 60_000.5)
    res = run_backtest(btc_only(), {"BTC/USDT": rows}, book, timeframe_s=60, warmup=600)
    exits = [f for f in fills(book) if f[0] == "sell"]
    assert exits, fills(book)
    _side, why, price = exits[0]
    assert why == reason
    spread_and_slip = extreme * (1e-4 + 1e-4)  # half of 2 bps spread, 1 bp slippage
    assert abs(price - extreme) <= spread_and_slip + 1e-6, (price, extreme)
    assert res.meta.candles == 650


def test_a_down_candle_holding_a_long_still_sees_its_low_first(tmp_path: Path) -> None:
    book = tmp_path / "book.sqlite"
    seed_open_position(book, "BTC/USDT", qty=0.01, price=60_000.0, stop=59_000.0, target=61_000.0)
    rows = flat_candles(1250)  # warm-up is at most half the candles: 600 of 1250
    rows[600, 1:5] = (60_000.0, 61_500.0, 58_500.0, 59_990.0)  # closed down: replay = high first
    run_backtest(btc_only(), {"BTC/USDT": rows}, book, timeframe_s=60, warmup=600)
    assert [f[1] for f in fills(book) if f[0] == "sell"][:1] == ["stop"]


def walk(n: int, p0: float, vol: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n) * MIN
    c = p0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    o = np.r_[p0, c[:-1]]
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, vol / 2, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, vol / 2, n)))
    return np.column_stack([ts, o, h, lo, c, rng.uniform(1, 3, n)])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, Path]:
    book = tmp_path_factory.mktemp("bt") / "book.sqlite"
    candles = {
        "BTC/USDT": walk(4000, 60_000, 0.002, 1),
        "ETH/USDT": walk(4000, 3_000, 0.0025, 2),
        "SOL/USDT": walk(4000, 150, 0.003, 3),
    }
    return run_backtest(load_safe_list(SAFE_LIST), candles, book, timeframe_s=60), book


def _indexes(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name").fetchall()


def test_the_finished_book_has_the_engines_indexes(
    run: tuple[BacktestResult, Path], tmp_path: Path
) -> None:
    """The run drops the secondary indexes and builds them at the end: the book it leaves has
    every index an engine's book has, and the queries that use them answer."""
    from engine.journal.store import Store

    Store(tmp_path / "engine.sqlite").close()
    _, book = run
    assert _indexes(book) == _indexes(tmp_path / "engine.sqlite")
    assert len([n for n, sql in _indexes(book) if sql]) >= 6
    with sqlite3.connect(book) as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT * FROM fills WHERE symbol = ? AND ts > ?", ("BTC/USDT", 0)).fetchall()
    assert "fills_symbol_ts" in str(plan)


def test_accounting_reconciles_at_every_step(run: tuple[BacktestResult, Path]) -> None:
    res, book = run
    assert len(res.trades) > 20  # something to reconcile
    capital = res.meta.capital
    with sqlite3.connect(book) as conn:
        rows = conn.execute("SELECT equity, realised, unrealised, fees FROM equity").fetchall()
        fill_fees = conn.execute("SELECT COALESCE(SUM(fee), 0) FROM fills").fetchone()[0]
    assert len(rows) >= 3000  # one point per candle time (every 10 s of simulated time)
    for equity, realised, unrealised, fees in rows:
        assert equity == pytest.approx(capital + realised + unrealised - fees, abs=1e-6)
    final = res.equity[-1].equity
    assert capital + sum(t.pnl for t in res.trades) == pytest.approx(final, abs=1e-6)
    assert sum(t.fees for t in res.trades) == pytest.approx(fill_fees, abs=1e-6)
    # the result's curve is the book's: its last point is the marked final equity, and a
    # point's equity is its cash plus what the open positions are worth (spot: long only)
    assert res.equity[-1].equity == pytest.approx(rows[-1][0], abs=1e-6)
    for p in res.equity:
        assert p.exposure >= 0.0 and p.equity >= p.cash - 1e-6


def test_every_refusal_names_its_check(run: tuple[BacktestResult, Path]) -> None:
    res, book = run
    with sqlite3.connect(book) as conn:
        refused = conn.execute(
            "SELECT COUNT(*) FROM decisions WHERE approved = 0 AND action LIKE 'open_%'"
        ).fetchone()[0]
    assert refused == len(res.rejections)
    assert all(r.check and r.check != "unknown" for r in res.rejections)
    assert sum(res.signals.values()) >= len(res.trades)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", "backtest", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _two_pairs_csv(tmp_path: Path) -> Path:
    """1,500 one-minute candles of BTC/USDT and ETH/USDT in one CSV, as ``--file`` reads it."""
    frames = []
    for sym, (p0, vol, seed) in {"BTC/USDT": (60_000, 0.002, 4), "ETH/USDT": (3_000, 0.0025, 5)}.items():
        r = walk(1500, p0, vol, seed)
        frames.append(pd.DataFrame(r, columns=["ts", "open", "high", "low", "close", "volume"]).assign(symbol=sym))
    data = tmp_path / "candles.csv"
    pd.concat(frames).astype({"ts": "int64"}).to_csv(data, index=False)
    return data


def test_the_command_line_writes_the_run_and_prints_the_summary(tmp_path: Path) -> None:
    data = _two_pairs_csv(tmp_path)
    out = tmp_path / "run"
    r = cli("--file", str(data), "--pairs", "BTC/USDT,ETH/USDT", "--timeframe", "1m", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "Why not traded" in r.stdout and "Max drawdown" in r.stdout
    res = BacktestResult.read(out / "result.json")
    assert res.meta.pairs == ["BTC/USDT", "ETH/USDT"] and res.meta.timeframe == "1m"
    assert (out / "book.sqlite").stat().st_size > 0 and (out / "report.html").stat().st_size > 10_000
    assert (out.stat().st_mode & 0o777) == 0o700


def test_a_book_the_disk_refuses_is_one_line_exit_1_and_keeps_nothing(tmp_path: Path) -> None:
    """A full disk, for real: the backtest runs with a file-size limit 16 KiB above an empty
    book's size (SIGXFSZ ignored, so a write past it fails with EFBIG as on a full disk). The
    book is created, the run's facts cannot be written: one line says so, the exit is 1, and the
    book holds no half run."""
    import resource
    import signal as sig

    from engine.journal.store import Store

    Store(tmp_path / "empty.sqlite").close()
    limit = (tmp_path / "empty.sqlite").stat().st_size + 16 * 1024

    data = _two_pairs_csv(tmp_path)
    out = tmp_path / "run"

    def small_disk() -> None:
        sig.signal(sig.SIGXFSZ, sig.SIG_IGN)  # kept across exec: a write past the limit fails
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = ["--file", str(data), "--pairs", "BTC/USDT,ETH/USDT", "--timeframe", "1m", "--out", str(out), "--quiet"]
    r = subprocess.run(
        [sys.executable, "-m", "console.cli", "backtest", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=small_disk,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "the run's book failed, nothing kept" in lines[0], r.stderr
    assert "close failed" in lines[0] and ("full" in lines[0] or "I/O" in lines[0]), lines[0]
    assert not (out / "result.json").exists()
    with sqlite3.connect(out / "book.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM equity").fetchone() == (0,)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--pairs", "DOGE/USDT"], "DOGE/USDT not in"),
        (["--from", "2024-13-01"], "--from '2024-13-01': expected YYYY-MM-DD"),
        (["--file", "/nonexistent.csv"], "/nonexistent.csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    r = cli(*args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], r.stderr


def test_a_tick_file_is_backtested_tick_by_tick(tmp_path: Path) -> None:
    """A recorded session in the replay's tick format: every tick through the core as it was
    recorded (its own bid and ask), candles built from them, the accounting reconciled."""
    rng = np.random.default_rng(9)
    frames = []
    for sym, p0, vol in (("BTC/USDT", 60_000.0, 0.0004), ("ETH/USDT", 3_000.0, 0.0005)):
        n = 20_000
        ts = T0 + np.arange(n) * 1_500 + rng.integers(0, 1_000, n)  # unique, in order
        last = p0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
        frames.append(pd.DataFrame({
            "ts": ts, "symbol": sym, "bid": last * (1 - 1e-4), "ask": last * (1 + 1e-4),
            "last": last, "volume": 1_000 + np.cumsum(rng.uniform(0, 0.1, n)),
        }))  # fmt: skip
    data = tmp_path / "ticks.csv"
    pd.concat(frames).to_csv(data, index=False)
    out = tmp_path / "run"
    r = cli("--file", str(data), "--pairs", "BTC/USDT,ETH/USDT", "--out", str(out), "--quiet", "--no-html")
    assert r.returncode == 0, r.stderr
    res = BacktestResult.read(out / "result.json")
    assert res.meta.candles == 40_000  # ticks, for a tick file
    assert res.trades, "the strategies traded on the candles built from the ticks"
    final = res.equity[-1].equity
    assert res.meta.capital + sum(t.pnl for t in res.trades) == pytest.approx(final, abs=1e-6)
    with sqlite3.connect(out / "book.sqlite") as conn:
        (n_fills,) = conn.execute("SELECT COUNT(*) FROM fills").fetchone()
    assert n_fills >= len(res.trades)
    r = cli("--file", str(data), "--from", "2023-11-15", "--out", str(tmp_path / "o2"))
    assert r.returncode == 2 and "replayed whole" in r.stderr


def test_a_failed_fact_rolls_the_run_back_and_refuses_later_writes(tmp_path: Path) -> None:
    """The backtest book holds the whole run in one transaction with no savepoint per fact: a
    fact that fails (here a real SQLite error, a value it cannot bind) rolls the run back, and
    every later write is refused with the first failure named; the book never holds half a run."""
    from engine.backtest.book import BacktestBook
    from engine.journal.schema import StoreError

    path = tmp_path / "book.sqlite"
    book = BacktestBook(path)
    book.record_event(1, "note", "written before the failure")
    with pytest.raises(StoreError, match="record_event failed"):
        book.record_event(2, "note", object())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"refused: an earlier write failed \(record_event: "):
        book.record_event(3, "note", "after the failure")
    book.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    from engine.journal.store import Store

    Store(tmp_path / "engine.sqlite").close()
    assert _indexes(path) == _indexes(tmp_path / "engine.sqlite")  # the rollback kept them


def test_the_book_s_fill_ids_answer_as_its_table_does(tmp_path: Path) -> None:
    """``has_fill`` (asked on every fill) answers from the ids kept beside the run's book: the
    same answer as a lookup in its fills table, before a fill, after it, for a fill booked twice,
    after a failed fact rolled the run back, and in a book opened again."""
    from engine.backtest.book import BacktestBook
    from engine.core.models import Fill, Position, Side
    from engine.core.orders import Order
    from engine.journal.schema import StoreError

    def table(path: Path) -> set[str]:
        with sqlite3.connect(path) as conn:
            return {r[0] for r in conn.execute("SELECT fill_id FROM fills")}

    def fact(book: BacktestBook, n: int) -> bool:
        order = Order(f"o{n}", "BTC/USDT", Side.BUY, 1.0, "signal", f"k{n}", 1000 + n)
        book.record_order(order)
        fill = Fill(f"o{n}/F1", f"o{n}", "BTC/USDT", Side.BUY, 1.0, 100.0, 0.1, 1000 + n, "signal")
        pos = Position("BTC/USDT", qty=float(n), entry=100.0, opened_ts=1000)
        return book.record_fill(fill, order, pos, {"cash": 1e6 - 100.0 * n, "realised": 0.0, "fees": 0.1 * n})

    path = tmp_path / "book.sqlite"
    book = BacktestBook(path)
    book.init_account(1e6, 0)
    assert not book.has_fill("o1/F1")
    assert fact(book, 1) and book.has_fill("o1/F1")
    fill = Fill("o1/F1", "o1", "BTC/USDT", Side.BUY, 1.0, 100.0, 0.1, 1001, "signal")
    order = Order("o1", "BTC/USDT", Side.BUY, 1.0, "signal", "k1", 1001)
    assert not book.record_fill(fill, order, Position("BTC/USDT", qty=2.0, entry=100.0), {"cash": 0.0, "realised": 0.0, "fees": 0.0})
    book.close()
    assert table(path) == {"o1/F1"}

    again = BacktestBook(path)  # an existing book: its fills are known at open
    assert again.has_fill("o1/F1") and not again.has_fill("o2/F1")
    assert fact(again, 2) and again.has_fill("o2/F1")
    with pytest.raises(StoreError):
        again.record_event(3, "note", object())  # type: ignore[arg-type]  # the run's transaction goes
    assert again.has_fill("o1/F1") and not again.has_fill("o2/F1")  # as the rolled-back table says
    again.close()
    assert table(path) == {"o1/F1"}


def test_the_collectors_settings_come_back_after_runs_even_overlapping_ones(tmp_path: Path) -> None:
    """The replay collects young objects less often and freezes what came before; after a run
    (and after replays that overlap, as the ML environment's episodes on threads may, ending in
    any order) the thresholds are what they were and nothing stays frozen."""
    import gc

    from engine.backtest import runner

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    run_backtest(btc_only(), {"BTC/USDT": flat_candles(400)}, tmp_path / "gc.sqlite", warmup=100)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    a, b = runner._young_collections_rarer(), runner._young_collections_rarer()
    a.__enter__()
    b.__enter__()
    assert gc.get_threshold()[0] == runner.GC_YOUNG
    a.__exit__(None, None, None)  # the first to start ends first: the other still runs
    assert gc.get_threshold()[0] == runner.GC_YOUNG
    b.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
    gc.freeze()  # someone else's frozen objects (the console freezes its start-up) stay frozen
    try:
        theirs = gc.get_freeze_count()
        run_backtest(btc_only(), {"BTC/USDT": flat_candles(400)}, tmp_path / "gc2.sqlite", warmup=100)
        assert gc.get_freeze_count() == theirs and gc.get_threshold() == before
    finally:
        gc.unfreeze()
