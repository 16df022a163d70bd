"""The backtest's book holds a trade's facts in memory and writes them in bulk
(engine/backtest/book.py). These tests hold it to the engine's journal (``Store``): the same
answers fact by fact, the same tables at the end, reads that see every fact held, and a run
voided, not half written, when a fact fails."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

import engine.backtest.held as held_mod
from engine.backtest.book import BacktestBook
from engine.core.models import (
    CheckResult,
    Decision,
    Fill,
    PairMode,
    Position,
    Side,
    Signal,
    SignalType,
)
from engine.core.orders import Order, OrderStatus
from engine.journal.rows import ORDER_COLS
from engine.journal.schema import StoreError
from engine.journal.store import Store

pytestmark = pytest.mark.timeout(60)

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
TABLES = {  # every table a trade writes, in a stable order; decisions without their id (below)
    "decisions": "key, symbol, ts, action, approved, qty, price, signal_type, confidence, entry, stop_loss, "
    "take_profit, reasoning, signal_ts, checks_json",
    "orders": ORDER_COLS,
    "fills": "fill_id, order_id, symbol, side, qty, price, fee, ts, reason",
    "positions": "symbol, qty, entry, stop_loss, take_profit, realised, fees, opened_ts, updated_ts",
    "account": "capital, cash, realised, fees, updated_ts",
    "events": "ts, kind, message",
    "pair_modes": "symbol, mode, reason, ts, before_halt",
    "trading_day": "start_ts, equity, marked_ts",
}


def _tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        # a position is its symbol's row: the engine deletes it when flat and inserts it again,
        # so its rowid says nothing (the book reads positions by symbol)
        order = {t: "symbol" if t == "positions" else "rowid" for t in TABLES}
        return {t: conn.execute(f"SELECT {cols} FROM {t} ORDER BY {order[t]}").fetchall() for t, cols in TABLES.items()}


def _decision(rng: random.Random, n: int, key: str) -> Decision:
    symbol = rng.choice(SYMBOLS)
    sig = Signal(symbol, SignalType.BUY, rng.random(), 100.0 + n, 90.0, 120.0, f"cross {n}", 1000 + n)
    ok = rng.random() < 0.7
    checks = [CheckResult("stop_side", True, ""), CheckResult("exposure", ok, "" if ok else f"cap {n}")]
    return Decision(key, symbol, 1000 + n, "open_long", sig, checks, ok, 0.5 + n, 100.0 + n)


def _order(n: int, cid: str, key: str) -> Order:
    return Order(cid, SYMBOLS[n % 3], Side.BUY if n % 2 else Side.SELL, 1.0 + n, "signal", key, 1000 + n,
                 message="m" * (n % 7))  # fmt: skip


class _Script:
    """A seeded stream of journal calls, each applied to both books; every answer compared."""

    def __init__(self, seed: int, engine: Store, run: BacktestBook) -> None:
        self.rng = random.Random(seed)
        self.books = (engine, run)
        self.keys: list[str] = []
        self.orders: dict[str, Order] = {}
        self.fills: list[str] = []
        self.n = 0

    def both(self, call: str, *args: object) -> object:
        answers = [getattr(b, call)(*args) for b in self.books]
        assert answers[0] == answers[1], (call, self.n, answers)
        return answers[0]

    def step(self) -> None:
        rng, n = self.rng, self.n
        self.n += 1
        kind = rng.random()
        if kind < 0.25:  # a decision, maybe with its order; keys and ids are sometimes seen before
            key = rng.choice(self.keys) if self.keys and rng.random() < 0.15 else f"k{n}"
            order = None
            if rng.random() < 0.6:
                cid = rng.choice(list(self.orders)) if self.orders and rng.random() < 0.1 else f"o{n}"
                order = _order(n, cid, key)
            if self.both("record_decision", _decision(rng, n, key), order):
                self.keys.append(key)
                if order is not None:
                    self.orders[order.client_order_id] = order
        elif kind < 0.4:  # an order alone
            cid = rng.choice(list(self.orders)) if self.orders and rng.random() < 0.15 else f"o{n}"
            order = _order(n, cid, "")
            if self.both("record_order", order):
                self.orders[cid] = order
        elif kind < 0.55 and self.orders:  # an order's new status (held, or already written)
            order = self.orders[rng.choice(list(self.orders))]
            order.status = rng.choice([OrderStatus.ACCEPTED, OrderStatus.CANCELLED, OrderStatus.UNKNOWN])
            order.updated_ts, order.message = 2000 + n, "x" * rng.choice([0, 5, 1500])
            self.both("update_order", order)
        elif kind < 0.85 and self.orders:  # a fill (sometimes one booked before), flat or not
            order = self.orders[rng.choice(list(self.orders))]
            fid = rng.choice(self.fills) if self.fills and rng.random() < 0.15 else f"{order.client_order_id}/F{n}"
            order.status, order.filled_qty, order.avg_price = OrderStatus.FILLED, order.qty, 100.0 + n
            fill = Fill(fid, order.client_order_id, order.symbol, order.side, order.qty, 100.0 + n, 0.1, 3000 + n,
                        "signal")  # fmt: skip
            qty = 0.0 if rng.random() < 0.4 else float(n)
            pos = Position(order.symbol, qty=qty, entry=100.0 + n, stop_loss=90.0, take_profit=120.0, opened_ts=n)
            account = {"cash": 1e6 - n, "realised": float(n), "fees": 0.1 * n}
            if self.both("record_fill", fill, order, pos, account):
                self.fills.append(fid)
            self.both("has_fill", fid)
        elif kind < 0.9:  # a write of another table: the facts held go first
            if rng.random() < 0.5:
                self.both("record_event", n, "note", f"event {n}")
            else:
                self.both("set_modes", {rng.choice(SYMBOLS): rng.choice(list(PairMode))}, "operator", n)
        elif kind < 0.95:  # the day's start (the core's timer)
            self.both("record_day_start", n * 1000, 1e6 + n, n)
        else:  # a read mid-run sees every fact held
            self.both("open_orders")
            self.both("load_positions")
            self.both("load_account")
            if self.orders:
                self.both("order", rng.choice(list(self.orders)))
            self.both("fills")


@pytest.mark.parametrize("flush_facts", [1, 7, 4096])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_run_s_book_answers_and_ends_as_the_engine_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, flush_facts: int
) -> None:
    """Six hundred seeded calls (decisions with and without orders, repeated keys and ids,
    updates of held and written orders, fills booked twice, flat and open positions, events,
    modes, the day's start, reads mid-run) through ``Store`` and ``BacktestBook``, the held facts
    written after every fact, every 7 and at the end: every answer the same, every table the
    same row for row at the end."""
    monkeypatch.setattr(held_mod, "FLUSH_FACTS", flush_facts)  # (the facts are held there, compiled)
    engine, run = Store(tmp_path / "engine.sqlite", durable=False), BacktestBook(tmp_path / "run.sqlite")
    script = _Script(seed, engine, run)
    script.both("init_account", 1e6, 0)
    for _ in range(600):
        script.step()
    assert script.fills and len(script.orders) > 50  # the script did trade
    engine.close()
    run.close()
    engine_t, run_t = _tables(tmp_path / "engine.sqlite"), _tables(tmp_path / "run.sqlite")
    for table in TABLES:
        assert run_t[table] == engine_t[table], table
    assert engine_t["orders"] and engine_t["fills"] and engine_t["decisions"]


def test_an_update_of_an_order_never_journaled_voids_the_run(tmp_path: Path) -> None:
    """The engine raises inside its transaction; the run's book rolls the whole run back."""
    path = tmp_path / "run.sqlite"
    run = BacktestBook(path)
    run.init_account(1e6, 0)
    assert run.record_order(_order(1, "o1", ""))
    with pytest.raises(StoreError, match="o9 was never journaled"):
        run.update_order(_order(9, "o9", ""))
    with pytest.raises(StoreError, match=r"refused: an earlier write failed \(update_order: "):
        run.record_order(_order(2, "o2", ""))
    assert not run.has_fill("o1/F1")
    run.close()
    assert not any(_tables(path).values())


def test_a_fact_sqlite_refuses_when_written_voids_the_run_there(tmp_path: Path) -> None:
    """An order type the schema's CHECK refuses is held (the engine's book would refuse it at
    the fact); the write of the facts held finds it, at ``close`` here, and the run's book keeps
    nothing: no half run, and the error names what was being written."""
    path = tmp_path / "run.sqlite"
    run = BacktestBook(path)
    run.init_account(1e6, 0)
    run.record_event(1, "note", "before")
    good, bad = _order(1, "o1", ""), _order(2, "o2", "")
    bad.order_type = "limit"
    assert run.record_order(good) and run.record_order(bad)
    with pytest.raises(StoreError, match="close failed writing the facts held: CHECK constraint failed"):
        run.close()
    assert not any(_tables(path).values())


def test_a_refused_fact_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """A fill with a non-finite price is refused before anything is written, as the engine
    refuses it before its transaction: the run goes on and the book keeps what came before."""
    path = tmp_path / "run.sqlite"
    run = BacktestBook(path)
    run.init_account(1e6, 0)
    order = _order(1, "o1", "")
    assert run.record_order(order)
    bad = Fill("o1/F1", "o1", order.symbol, order.side, 1.0, float("nan"), 0.1, 5, "signal")
    with pytest.raises(StoreError, match="fill price must be a finite number"):
        run.record_fill(bad, order, Position(order.symbol, qty=1.0, entry=1.0), {"cash": 1.0, "realised": 0.0, "fees": 0.0})
    assert not run.has_fill("o1/F1")
    assert run.record_order(_order(2, "o2", ""))
    run.close()
    assert [r[0] for r in _tables(path)["orders"]] == ["o1", "o2"]


def test_equity_points_that_are_not_finite_are_dropped_as_the_engine_drops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's book counts the points it holds with a value that is not finite (as each one
    comes) and drops just those when it writes them, every ``FLUSH_EQUITY`` points and at the
    end: the same curve and the same count as the engine's ``Store``, which refuses each one."""
    monkeypatch.setattr(held_mod, "FLUSH_EQUITY", 4)
    engine, run = Store(tmp_path / "engine.sqlite", durable=False), BacktestBook(tmp_path / "run.sqlite")
    nan, inf = float("nan"), float("inf")
    points = [(1_000 * i, 1e6 + i, 5e5, 100.0, 1.0, 2.0, 0.5) for i in range(11)]
    points[2] = (2_000, nan, 5e5, 100.0, 1.0, 2.0, 0.5)
    points[5] = (5_000, 1e6, 5e5, 100.0, 1.0, 2.0, -inf)
    points[9] = (9_000, 1e308, 1e308, 1e308, 1e308, 1e308, 1e308)  # finite, though their sum is not
    for p in points:
        engine.record_equity(*p)
        run.record_equity(*p)
    engine.close()
    run.close()
    curves = []
    for name in ("engine.sqlite", "run.sqlite"):
        with sqlite3.connect(tmp_path / name) as conn:
            curves.append(conn.execute("SELECT ts, equity, fees FROM equity ORDER BY id").fetchall())
    assert curves[0] == curves[1] and [r[0] for r in curves[1]] == [1_000 * i for i in range(11) if i not in (2, 5)]
    assert engine.equity_dropped == run.equity_dropped == 2 and run.equity_not_finite == 0
