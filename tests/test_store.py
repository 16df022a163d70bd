"""Tests for engine.journal.store: round trips, idempotency, durability settings, concurrent readers,
damaged files, and a SIGKILL crash test against a real writer subprocess."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from engine.core.models import CheckResult, Decision, Fill, PairMode, Position, Side, Signal, SignalType
from engine.journal.store import SCHEMA_VERSION, Store, StoreError

REPO = Path(__file__).resolve().parents[1]
WRITER = Path(__file__).resolve().parent / "store_writer.py"


def _load_writer() -> ModuleType:
    # by file path: works whether or not tests/ is a package
    spec = importlib.util.spec_from_file_location("store_writer", WRITER)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


writer = _load_writer()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "engine.db"


@pytest.fixture
def store(db: Path):
    s = Store(db)
    yield s
    s.close()


def make_decision(
    key: str = "BTC/USDT|1000|open_long",
    symbol: str = "BTC/USDT",
    ts: int = 1000,
    approved: bool = True,
    stop: float = 49_000.123456789,
) -> Decision:
    sig = Signal(
        symbol, SignalType.BUY, 0.1 + 0.2, 50_000.1, stop, 1 / 3 * 1e5, "rsi crossed 30", ts - 1
    )
    checks = [
        CheckResult("stop_side", True, ""),
        CheckResult("exposure", approved, "" if approved else "cap 10% used"),
    ]
    return Decision(
        key, symbol, ts, "open_long", sig, checks, approved, 0.012345678901234, 50_000.1
    )


def snapshot(s: Store) -> tuple[object, ...]:
    return (
        s.load_account(),
        s.load_positions(),
        s.fills(),
        s.orders(),
        s.recent_decisions(limit=1000),
    )


def raw(s: Store) -> sqlite3.Connection:
    return s._conn  # the tests hold transactions open by hand to prove WAL behaviour


# ---- schema and settings ---------------------------------------------------------------------


def test_schema_version_and_pragmas(store: Store) -> None:
    c = raw(store)
    assert store.schema_version() == SCHEMA_VERSION == 1
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert c.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "account",
        "positions",
        "orders",
        "fills",
        "decisions",
        "pair_modes",
        "equity",
        "events",
    } <= tables

    def cols(t: str) -> list[str]:
        return [r[1] for r in c.execute(f"PRAGMA table_info({t})")]

    assert cols("positions") == [
        "symbol",
        "qty",
        "entry",
        "stop_loss",
        "take_profit",
        "realised",
        "fees",
        "opened_ts",
        "updated_ts",
    ]
    assert cols("orders") == [
        "order_id",
        "decision_key",
        "symbol",
        "side",
        "qty",
        "status",
        "reason",
        "ts",
    ]
    assert cols("fills") == [
        "fill_id",
        "order_id",
        "symbol",
        "side",
        "qty",
        "price",
        "fee",
        "ts",
        "reason",
    ]
    assert cols("pair_modes") == ["symbol", "mode", "reason", "ts"]
    assert "checks_json" in cols("decisions") and "key" in cols("decisions")


def test_reopen_keeps_version_and_data(db: Path) -> None:
    with Store(db) as s:
        s.init_account(1000.0, 1)
    with Store(db) as s:
        assert s.schema_version() == 1
        assert s.load_account() == {"capital": 1000.0, "cash": 1000.0, "realised": 0.0, "fees": 0.0}


def test_parent_directory_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "engine.db"
    with pytest.raises(StoreError, match="does not exist") as ei:
        Store(missing)
    assert str(missing) in str(ei.value)
    assert not missing.parent.exists()  # the store never creates directories


def test_simultaneous_first_opens_create_schema_once(db: Path) -> None:
    errors: list[BaseException] = []
    versions: list[int] = []

    def opener() -> None:
        try:
            with Store(db) as s:
                versions.append(s.schema_version())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors and versions == [1, 1, 1, 1]


# ---- damaged or foreign files ---------------------------------------------------------------


def _one_line_naming(exc: StoreError, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg


def test_non_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    p = tmp_path / "engine.db"
    content = b"this is a CSV, not a database\n" * 200
    p.write_bytes(content)
    with pytest.raises(StoreError, match="not a usable SQLite store") as ei:
        Store(p)
    _one_line_naming(ei.value, p)
    assert p.read_bytes() == content


def test_damaged_store_is_refused(db: Path) -> None:
    with Store(db) as s:
        s.init_account(1000.0, 1)
        for i in range(200):  # enough rows for several b-tree pages
            s.record_event(i, "test", "x" * 100)
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * 4096
    data[2 * 4096 :] = b"\xab" * (len(data) - 2 * 4096)  # keep the header, ruin the pages
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError) as ei:
        Store(db)
    _one_line_naming(ei.value, db)


def test_foreign_sqlite_database_is_refused(db: Path) -> None:
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE trades (id INTEGER)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="not a multipar-console store") as ei:
        Store(db)
    _one_line_naming(ei.value, db)


def test_newer_schema_is_refused(db: Path) -> None:
    Store(db).close()
    c = sqlite3.connect(db)
    c.execute("PRAGMA user_version = 99")
    c.close()
    with pytest.raises(StoreError, match="version 99 is newer") as ei:
        Store(db)
    _one_line_naming(ei.value, db)


def test_empty_file_becomes_a_store(db: Path) -> None:
    db.touch()
    with Store(db) as s:
        assert s.schema_version() == 1 and s.load_account() is None


def test_closed_store_raises_store_error(db: Path) -> None:
    s = Store(db)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.load_modes()
    with pytest.raises(StoreError, match="closed"):
        s.record_event(1, "kill", "x")


# ---- account --------------------------------------------------------------------------------


def test_account_is_created_once(store: Store) -> None:
    assert store.load_account() is None
    store.init_account(10_000.0, 1)
    store.init_account(5.0, 2)  # a restart with another capital must not reset the account
    assert store.load_account() == {
        "capital": 10_000.0,
        "cash": 10_000.0,
        "realised": 0.0,
        "fees": 0.0,
    }


def test_init_account_rejects_non_finite(store: Store) -> None:
    with pytest.raises(StoreError, match="finite"):
        store.init_account(math.nan, 1)
    assert store.load_account() is None


# ---- decisions ------------------------------------------------------------------------------


def test_decision_round_trip_in_wire_shape(store: Store) -> None:
    d = make_decision()
    assert store.record_decision(d) is True
    assert store.has_decision(d.key) and not store.has_decision("other")
    [got] = store.recent_decisions()
    assert isinstance(got["id"], int)
    assert {k: v for k, v in got.items() if k != "id"} == {
        "key": d.key,
        "symbol": "BTC/USDT",
        "ts": 1000,
        "action": "open_long",
        "approved": True,
        "qty": 0.012345678901234,
        "price": 50_000.1,
        "signal": {
            "type": "BUY",
            "confidence": 0.1 + 0.2,
            "entry": 50_000.1,
            "stop_loss": 49_000.123456789,
            "take_profit": 1 / 3 * 1e5,
            "reasoning": "rsi crossed 30",
            "ts": 999,
        },
        "checks": [["stop_side", True, ""], ["exposure", True, ""]],
    }


def test_same_decision_key_twice_is_refused(store: Store) -> None:
    first = make_decision(approved=False)
    assert store.record_decision(first) is True
    again = make_decision(approved=True)  # same key, other content
    assert store.record_decision(again) is False
    [got] = store.recent_decisions()
    assert got["approved"] is False and got["checks"][1] == ["exposure", False, "cap 10% used"]


def test_recent_decisions_newest_first_filtered_and_limited(store: Store) -> None:
    for i, sym in enumerate(["BTC/USDT", "ETH/USDT", "BTC/USDT", "SOL/USDT", "BTC/USDT"]):
        store.record_decision(make_decision(key=f"{sym}|{i}", symbol=sym, ts=1000 + i))
    assert [d["ts"] for d in store.recent_decisions()] == [1004, 1003, 1002, 1001, 1000]
    assert [d["ts"] for d in store.recent_decisions("BTC/USDT")] == [1004, 1002, 1000]
    assert [d["ts"] for d in store.recent_decisions("BTC/USDT", limit=2)] == [1004, 1002]
    assert store.recent_decisions(limit=0) == []
    assert store.recent_decisions("XRP/USDT") == []


def test_rejected_decision_with_nan_stop_is_still_stored(store: Store) -> None:
    d = make_decision(approved=False, stop=math.nan)
    assert store.record_decision(d)
    assert store.recent_decisions()[0]["signal"]["stop_loss"] is None


# ---- executions -----------------------------------------------------------------------------


def _fill(
    n: int = 1,
    side: Side = Side.BUY,
    qty: float = 0.1 + 0.2,
    price: float = 50_000.123456789,
    symbol: str = "BTC/USDT",
    fill_id: str | None = None,
) -> Fill:
    return Fill(
        fill_id or f"f-{n}",
        f"o-{n}",
        symbol,
        side,
        qty,
        price,
        qty * price * 0.001,
        1000 + n,
        "signal",
    )


def test_execution_round_trip(store: Store) -> None:
    store.init_account(10_000.0, 0)
    f = _fill()
    pos = Position("BTC/USDT", f.qty, f.price, 49_000.1, 52_000.7, 0.0, f.fee, f.ts)
    acct = {"cash": 10_000.0 - f.qty * f.price - f.fee, "realised": 0.0, "fees": f.fee}
    assert store.record_execution(f, pos, acct, "BTC/USDT|1000|open_long") is True
    assert store.has_order("o-1") and not store.has_order("o-2")
    assert store.fills() == [f]
    assert store.orders() == [
        {
            "order_id": "o-1",
            "decision_key": "BTC/USDT|1000|open_long",
            "symbol": "BTC/USDT",
            "side": "buy",
            "qty": f.qty,
            "status": "filled",
            "reason": "signal",
            "ts": f.ts,
        },
    ]
    assert store.load_positions() == {"BTC/USDT": pos}
    assert store.load_account() == {"capital": 10_000.0, **acct}


def test_same_order_twice_is_refused_and_changes_nothing(store: Store) -> None:
    store.init_account(10_000.0, 0)
    f = _fill()
    store.record_execution(
        f, Position("BTC/USDT", f.qty, f.price), {"cash": 1.0, "realised": 0.0, "fees": 2.0}, None
    )
    before = snapshot(store)
    replay = _fill(fill_id="f-other", qty=5.0)  # same order id, different everything else
    assert (
        store.record_execution(
            replay, Position("BTC/USDT", 9.0, 1.0), {"cash": 7.0, "realised": 8.0, "fees": 9.0}, "k"
        )
        is False
    )
    assert snapshot(store) == before


def test_flat_position_row_is_deleted_and_realised_kept_in_account(store: Store) -> None:
    store.init_account(10_000.0, 0)
    buy = _fill(1, Side.BUY, 0.5, 100.0)
    store.record_execution(
        buy,
        Position("BTC/USDT", 0.5, 100.0, 98.0, 104.0, 0.0, 0.05, 1001),
        {"cash": 9949.95, "realised": 0.0, "fees": 0.05},
        None,
    )
    sell = _fill(2, Side.SELL, 0.5, 110.0)
    flat = Position("BTC/USDT", 0.0, 100.0, 98.0, 104.0, 5.0, 0.105, 1001)
    store.record_execution(sell, flat, {"cash": 10_004.895, "realised": 5.0, "fees": 0.105}, None)
    assert store.load_positions() == {}
    assert store.load_account() == {
        "capital": 10_000.0,
        "cash": 10_004.895,
        "realised": 5.0,
        "fees": 0.105,
    }
    assert [f.side for f in store.fills()] == [Side.BUY, Side.SELL]


def test_fills_filtered_by_symbol_oldest_first(store: Store) -> None:
    store.init_account(10_000.0, 0)
    acct = {"cash": 1.0, "realised": 0.0, "fees": 0.0}
    for n, sym in enumerate(["ETH/USDT", "BTC/USDT", "ETH/USDT"]):
        store.record_execution(_fill(n, symbol=sym), Position(sym, 1.0, 1.0), acct, None)
    assert [f.order_id for f in store.fills("ETH/USDT")] == ["o-0", "o-2"]
    assert [f.order_id for f in store.fills()] == ["o-0", "o-1", "o-2"]
    assert [o["order_id"] for o in store.orders()] == ["o-0", "o-1", "o-2"]
    assert set(store.load_positions()) == {"ETH/USDT", "BTC/USDT"}


def test_execution_before_account_is_refused_atomically(store: Store) -> None:
    with pytest.raises(StoreError, match="init_account"):
        store.record_execution(
            _fill(),
            Position("BTC/USDT", 1.0, 1.0),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
            None,
        )
    assert store.orders() == [] and store.fills() == [] and store.load_positions() == {}


def test_reused_fill_id_rolls_back_the_whole_execution(store: Store) -> None:
    store.init_account(10_000.0, 0)
    acct = {"cash": 1.0, "realised": 0.0, "fees": 0.0}
    store.record_execution(_fill(1), Position("BTC/USDT", 1.0, 1.0), acct, None)
    before = snapshot(store)
    clash = _fill(2, fill_id="f-1", symbol="ETH/USDT")  # new order, but its fill id exists
    with pytest.raises(StoreError, match="record_execution failed"):
        store.record_execution(
            clash, Position("ETH/USDT", 1.0, 1.0), {"cash": 2.0, "realised": 0.0, "fees": 0.0}, None
        )
    assert not store.has_order("o-2")  # the order inserted before the failing fill is gone too
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("fill", "pos", "acct", "match"),
    [
        (
            _fill(price=math.nan),
            Position("BTC/USDT", 1.0),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
            "fill price",
        ),
        (
            _fill(qty=0.0),
            Position("BTC/USDT", 1.0),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
            "must be > 0",
        ),
        (
            _fill(),
            Position("ETH/USDT", 1.0),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
            "position symbol",
        ),
        (_fill(), Position("BTC/USDT", 1.0), {"cash": 1.0, "fees": 0.0}, "'realised'"),
        (
            _fill(),
            Position("BTC/USDT", math.inf),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
            "position qty",
        ),
        (
            _fill(),
            Position("BTC/USDT", 1.0),
            {"cash": math.nan, "realised": 0.0, "fees": 0.0},
            "account cash",
        ),
    ],
)
def test_bad_execution_values_are_refused(
    store: Store, fill: Fill, pos: Position, acct: dict, match: str
) -> None:
    store.init_account(10_000.0, 0)
    before = snapshot(store)
    with pytest.raises(StoreError, match=match) as ei:
        store.record_execution(fill, pos, acct, None)
    assert "\n" not in str(ei.value)
    assert snapshot(store) == before


def test_foreign_key_from_fill_to_order_is_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        raw(store).execute(
            "INSERT INTO fills VALUES ('f-x', 'o-missing', 'BTC/USDT', 'buy', 1.0, 1.0, 0.0, 1, 'signal')"
        )


# ---- modes, equity, events ------------------------------------------------------------------


def test_modes_persist_across_close_and_reopen(db: Path) -> None:
    with Store(db) as s:
        s.set_modes(
            {"BTC/USDT": PairMode.ACTIVE, "ETH/USDT": PairMode.ACTIVE, "SOL/USDT": PairMode.ACTIVE},
            "start",
            1,
        )
        s.set_mode("ETH/USDT", PairMode.PAUSED, "operator", 2)
        s.set_modes({"BTC/USDT": PairMode.HALTED, "SOL/USDT": PairMode.HALTED}, "kill", 3)
    with Store(db) as s:
        modes = s.load_modes()
        assert modes == {
            "BTC/USDT": PairMode.HALTED,
            "ETH/USDT": PairMode.PAUSED,
            "SOL/USDT": PairMode.HALTED,
        }
        assert all(type(m) is PairMode for m in modes.values())
        reasons = (
            raw(s).execute("SELECT symbol, reason, ts FROM pair_modes ORDER BY symbol").fetchall()
        )
        assert reasons == [
            ("BTC/USDT", "kill", 3),
            ("ETH/USDT", "operator", 2),
            ("SOL/USDT", "kill", 3),
        ]


def test_set_modes_with_unknown_mode_writes_nothing(store: Store) -> None:
    store.set_mode("BTC/USDT", PairMode.ACTIVE, "start", 1)
    with pytest.raises(StoreError, match="known: ACTIVE"):
        store.set_modes({"BTC/USDT": PairMode.HALTED, "ETH/USDT": "FROZEN"}, "kill", 2)  # type: ignore[dict-item]
    assert store.load_modes() == {"BTC/USDT": PairMode.ACTIVE}


def test_equity_round_trip(store: Store) -> None:
    store.record_equity(1000, 10_000.1 + 0.2, 9_000.3, 1_000.0 / 3, -1.5e-9, 0.7, 0.01)
    store.record_equity(2000, 10_001.0, 9_000.0, 1_001.0, 0.0, 1.0, 0.02)
    assert store.equity_curve() == [
        {
            "ts": 1000,
            "equity": 10_000.1 + 0.2,
            "cash": 9_000.3,
            "exposure": 1_000.0 / 3,
            "realised": -1.5e-9,
            "unrealised": 0.7,
            "fees": 0.01,
        },
        {
            "ts": 2000,
            "equity": 10_001.0,
            "cash": 9_000.0,
            "exposure": 1_001.0,
            "realised": 0.0,
            "unrealised": 1.0,
            "fees": 0.02,
        },
    ]
    assert [p["ts"] for p in store.equity_curve(since_ts=1500)] == [2000]
    store.record_equity(3000, 1.0, 1.0, 0.0, 0.0, math.nan, 0.0)  # a bad mark upstream
    assert len(store.equity_curve()) == 2 and store.equity_dropped == 1


def test_events_round_trip_newest_first(store: Store) -> None:
    store.record_event(1, "kill", "operator pressed kill")
    store.record_event(2, "fallback", "no ack in 3 s: flattened 2 positions from the store")
    store.record_event(3, "rearm", "operator re-armed")
    assert [e["kind"] for e in store.recent_events()] == ["rearm", "fallback", "kill"]
    assert store.recent_events(limit=1) == [
        {"ts": 3, "kind": "rearm", "message": "operator re-armed"}
    ]


# ---- concurrent connections -----------------------------------------------------------------


def test_second_connection_reads_while_first_holds_a_write(db: Path) -> None:
    with Store(db) as writer_store:
        writer_store.init_account(1000.0, 1)
        writer_store.set_mode("BTC/USDT", PairMode.ACTIVE, "start", 1)
        w = raw(writer_store)
        w.execute("BEGIN IMMEDIATE")  # the engine mid-transaction: write lock held
        w.execute("UPDATE account SET cash = 1.0")
        w.execute("UPDATE pair_modes SET mode = 'HALTED'")
        t0 = time.monotonic()
        with Store(db) as reader:  # opening must not wait for the writer's lock either
            assert reader.load_account()["cash"] == 1000.0  # type: ignore[index]
            assert reader.load_modes() == {"BTC/USDT": PairMode.ACTIVE}
            assert time.monotonic() - t0 < 2.0  # far below busy_timeout: readers never wait in WAL
            w.execute("COMMIT")
            assert reader.load_account()["cash"] == 1.0  # type: ignore[index]
            assert reader.load_modes() == {"BTC/USDT": PairMode.HALTED}


def test_second_connection_write_waits_for_the_lock(db: Path) -> None:
    """The console's kill fallback writes while the engine may be mid-commit: it waits, not fails."""
    Store(db).close()
    engine_conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    engine_conn.execute("BEGIN IMMEDIATE")  # the engine holds the write lock
    engine_conn.execute("INSERT INTO events (ts, kind, message) VALUES (1, 'engine', 'busy')")

    def commit_later() -> None:
        time.sleep(0.3)
        engine_conn.execute("COMMIT")

    t = threading.Thread(target=commit_later)
    try:
        with Store(db) as console_store:
            t0 = time.monotonic()
            t.start()
            console_store.set_modes({"BTC/USDT": PairMode.HALTED}, "kill fallback", 2)
            assert time.monotonic() - t0 >= 0.25  # it did wait for the engine's commit
            assert console_store.load_modes() == {"BTC/USDT": PairMode.HALTED}
            assert [e["kind"] for e in console_store.recent_events()] == ["engine"]
    finally:
        if t.ident is not None:
            t.join(10)
        engine_conn.close()


def test_reader_thread_sees_monotonic_progress_while_writer_thread_writes(db: Path) -> None:
    Store(db).close()
    total = 150
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with Store(db) as s:  # a Store belongs to the thread that made it
                s.init_account(1000.0, 0)
                for n in range(total):
                    f = _fill(n, qty=1.0, price=1.0)
                    s.record_execution(
                        f,
                        Position("BTC/USDT", n + 1.0, 1.0),
                        {"cash": 1000.0 - n - 1, "realised": 0.0, "fees": 0.0},
                        None,
                    )
        except BaseException as exc:
            failures.append(exc)

    t = threading.Thread(target=write)
    t.start()
    seen: list[int] = []
    with Store(db) as reader:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            orders = len(reader.orders())
            acct = reader.load_account()
            if acct is not None:
                # the account is never behind the orders it read before it: commits are atomic
                assert 1000.0 - acct["cash"] >= orders
            seen.append(orders)
            if orders == total:
                break
    t.join(20)
    assert not failures
    assert seen[-1] == total and seen == sorted(seen)


# ---- crash test -----------------------------------------------------------------------------


def _stored_ns(db: Path) -> list[int]:
    if not db.exists():
        return []
    with Store(db) as s:
        return [int(o["order_id"].removeprefix("o-")) for o in s.orders()]


def _run_writer(db: Path, args: list[str]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _collect(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)


def test_sigkilled_writer_loses_nothing_it_reported(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    printed: set[int] = set()
    kills = 0
    t_start = time.monotonic()
    for round_no in range(10):
        stored = _stored_ns(db)
        assert stored == list(range(len(stored))), f"seed {seed}: gap after round {round_no}"
        start = len(stored)
        proc = _run_writer(db, ["--start", str(start), "--retry-last"])
        lines: list[str] = []
        reader = threading.Thread(target=_collect, args=(proc, lines), daemon=True)
        reader.start()
        if round_no == 0:
            # first round: anywhere, even during interpreter start or schema creation
            time.sleep(rng.uniform(0.02, 0.3))
        else:
            want = rng.randint(1, 60)  # kill after a random number of commits...
            deadline = time.monotonic() + 20
            while len(lines) < want and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.005))  # ...plus a random fraction of one commit
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"seed {seed}: writer exited {proc.returncode} early: {err.strip()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        reader.join(10)
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        got = [int(x) for x in lines]
        assert got == list(range(start, start + len(got))), (
            f"seed {seed}: writer printed out of order"
        )
        printed.update(got)

    # a final clean run: retries the last order (must be refused) and stops by itself
    start = len(_stored_ns(db))
    proc = _run_writer(db, ["--start", str(start), "--count", "25", "--retry-last"])
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, f"seed {seed}: {err}"
    printed.update(int(x) for x in out.split())
    assert kills >= 5
    print(f"crash test: seed {seed}, {kills} kills, {time.monotonic() - t_start:.1f} s")

    with Store(db) as s:
        assert raw(s).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orders, fills = s.orders(), s.fills()
        ns = [int(o["order_id"].removeprefix("o-")) for o in orders]
        assert len(ns) == len(set(ns)), f"seed {seed}: duplicated order id"
        assert ns == list(range(len(ns))), f"seed {seed}: gap in n"
        assert printed <= set(ns), (
            f"seed {seed}: reported but lost: {sorted(printed - set(ns))[:5]}"
        )
        assert len(ns) >= start + 25
        # every order has exactly its one fill, equal to what the writer made for that n
        assert fills == [writer.make_fill(n) for n in ns]
        assert all(s.has_decision(o["decision_key"]) for o in orders)
        # account and positions equal a replay of the stored fills
        account, positions = writer.new_account(), {}
        for f in fills:
            pos, account = writer.apply_fill(
                positions.get(f.symbol, Position(f.symbol)), account, f
            )
            positions[f.symbol] = pos
        assert s.load_account() == account
        assert s.load_positions() == {sym: p for sym, p in positions.items() if p.is_open}
