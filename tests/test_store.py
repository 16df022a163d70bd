"""Tests for engine.journal.store: round trips, idempotency (decision key, client order id, fill
id), atomicity, the v1 → v2 migration, durability settings, concurrent readers, damaged files,
and a SIGKILL crash test against a real writer subprocess."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

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
from engine.core.orders import (
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    apply_event,
)
from engine.journal.schema import SCHEMA_VERSION, _migrate_to_1
from engine.journal.store import Store, StoreError
from engine.wire.schema import DecisionMsg, SignalMsg

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
    assert store.schema_version() == SCHEMA_VERSION == 7
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
        "filled_qty",
        "avg_price",
        "fees",
        "updated_ts",
        "message",
        "stop_loss",
        "take_profit",
        "order_type",
        "trigger_price",
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
    assert cols("pair_modes") == ["symbol", "mode", "reason", "ts", "before_halt"]
    assert cols("entries") == ["id", "stopped", "reason", "ts"]
    assert cols("trading_day") == ["id", "start_ts", "equity", "marked_ts"]
    assert "checks_json" in cols("decisions") and "key" in cols("decisions")


def test_reopen_keeps_version_and_data(db: Path) -> None:
    with Store(db) as s:
        s.init_account(1000.0, 1)
    with Store(db) as s:
        assert s.schema_version() == SCHEMA_VERSION
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
    assert not errors and versions == [SCHEMA_VERSION] * 4


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
        assert s.schema_version() == SCHEMA_VERSION and s.load_account() is None


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
    [got] = store.recent_decisions()
    assert isinstance(got, DecisionMsg) and isinstance(got.id, int)
    assert got == DecisionMsg(
        key=d.key,
        symbol="BTC/USDT",
        ts=1000,
        action="open_long",
        approved=True,
        qty=0.012345678901234,
        price=50_000.1,
        signal=SignalMsg(
            "BUY", 0.1 + 0.2, 50_000.1, 49_000.123456789, 1 / 3 * 1e5, "rsi crossed 30", 999
        ),
        checks=[("stop_side", True, ""), ("exposure", True, "")],
        id=got.id,
    )
    # the book gives back the very message a console receives live, and it is valid on the wire
    assert DecisionMsg.from_wire(got.to_wire()) == got
    assert store.orders() == []  # a decision alone creates no order


def test_same_decision_key_twice_is_refused(store: Store) -> None:
    first = make_decision(approved=False)
    assert store.record_decision(first) is True
    again = make_decision(approved=True)  # same key, other content
    assert store.record_decision(again) is False
    [got] = store.recent_decisions()
    assert got.approved is False and got.checks[1] == ("exposure", False, "cap 10% used")
    assert got.reasons == ["cap 10% used"]


def test_recent_decisions_newest_first_filtered_and_limited(store: Store) -> None:
    for i, sym in enumerate(["BTC/USDT", "ETH/USDT", "BTC/USDT", "SOL/USDT", "BTC/USDT"]):
        store.record_decision(make_decision(key=f"{sym}|{i}", symbol=sym, ts=1000 + i))
    assert [d.ts for d in store.recent_decisions()] == [1004, 1003, 1002, 1001, 1000]
    assert [d.ts for d in store.recent_decisions("BTC/USDT")] == [1004, 1002, 1000]
    assert [d.ts for d in store.recent_decisions("BTC/USDT", limit=2)] == [1004, 1002]
    assert store.recent_decisions(limit=0) == []
    assert store.recent_decisions("XRP/USDT") == []


def test_rejected_decision_with_nan_stop_is_still_stored(store: Store) -> None:
    d = make_decision(approved=False, stop=math.nan)
    assert store.record_decision(d)
    assert store.recent_decisions()[0].signal.stop_loss is None


# ---- orders and fills -----------------------------------------------------------------------


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


def _order(
    n: int = 1,
    *,
    symbol: str = "BTC/USDT",
    side: Side = Side.BUY,
    qty: float = 0.1 + 0.2,
    key: str | None = None,
    status: OrderStatus = OrderStatus.NEW,
) -> Order:
    """A journaled-before-sending order; ``updated_ts`` set, so it reads back equal."""
    ts = 1000 + n
    return Order(
        f"o-{n}",
        symbol,
        side,
        qty,
        "signal",
        key or f"{symbol}|{ts}|open_long",
        ts,
        status,
        updated_ts=ts,
        stop_loss=49_000.1,
        take_profit=52_000.7,
    )


def _order_for(f: Fill) -> Order:
    """The order ``f`` fills, as it was journaled before it was sent."""
    return Order(f.order_id, f.symbol, f.side, f.qty, f.reason, f"key-{f.order_id}", f.ts, updated_ts=f.ts)


def _filled(order: Order, f: Fill) -> Order:
    """A copy of ``order`` moved by the fill event, as the execution engine hands it to the store."""
    moved = replace(order)
    apply_event(moved, OrderFilled(order.client_order_id, f))
    return moved


def _book(s: Store, f: Fill, pos: Position, acct: dict[str, float]) -> bool:
    """What the engine does for one order: journal it, then book its fill."""
    order = _order_for(f)
    assert s.record_order(order)
    return s.record_fill(f, _filled(order, f), pos, acct)


def test_decision_and_its_order_are_stored_together(store: Store) -> None:
    d = make_decision()
    o = _order(key=d.key)
    assert store.record_decision(d, o) is True
    assert store.orders() == [o] and store.open_orders() == [o]
    assert [m.key for m in store.recent_decisions()] == [d.key]


def test_decision_whose_order_id_is_stored_stores_neither(store: Store) -> None:
    stored = _order(1)
    assert store.record_order(stored)
    before = snapshot(store)
    d = make_decision(key="BTC/USDT|2000|open_long", ts=2000)
    clash = replace(stored, qty=5.0, decision_key=d.key)  # a new decision, an order id in use
    assert store.record_decision(d, clash) is False
    assert snapshot(store) == before  # neither the decision nor the order
    # the decision was rolled back, not burnt: with a free order id it is stored
    assert store.record_decision(d, _order(2, key=d.key)) is True
    assert [o.client_order_id for o in store.orders()] == ["o-1", "o-2"]


def test_stored_decision_key_with_a_new_order_stores_no_order(store: Store) -> None:
    d = make_decision()
    assert store.record_decision(d, _order(1, key=d.key))
    before = snapshot(store)
    assert store.record_decision(d, _order(2, key=d.key)) is False
    assert snapshot(store) == before


def test_order_and_fill_round_trip(store: Store) -> None:
    store.init_account(10_000.0, 0)
    f = _fill()
    o = _order_for(f)
    o.stop_loss, o.take_profit = 49_000.1, 52_000.7
    assert store.record_order(o) is True  # journaled before it is sent
    assert store.orders() == [o] and store.open_orders() == [o] and store.fills() == []
    apply_event(o, OrderAccepted(o.client_order_id, 1002))
    store.update_order(o)
    assert store.orders() == [o] and store.orders()[0].status is OrderStatus.ACCEPTED
    apply_event(o, OrderFilled(o.client_order_id, f))
    pos = Position("BTC/USDT", f.qty, f.price, 49_000.1, 52_000.7, 0.0, f.fee, f.ts)
    acct = {"cash": 10_000.0 - f.qty * f.price - f.fee, "realised": 0.0, "fees": f.fee}
    assert store.record_fill(f, o, pos, acct) is True
    assert store.has_fill("f-1") and not store.has_fill("f-2")
    assert store.fills() == [f]
    [got] = store.orders()
    assert got == o
    assert (got.status, got.filled_qty, got.avg_price, got.fees, got.updated_ts) == (
        OrderStatus.FILLED, f.qty, f.price, f.fee, f.ts)
    assert (got.decision_key, got.stop_loss, got.take_profit) == ("key-o-1", 49_000.1, 52_000.7)
    assert store.open_orders() == []
    assert store.load_positions() == {"BTC/USDT": pos}
    assert store.load_account() == {"capital": 10_000.0, **acct}


def test_partial_fills_keep_the_order_open_until_filled(store: Store) -> None:
    store.init_account(10_000.0, 0)
    o = _order(1, qty=1.0)
    store.record_order(o)
    first = Fill("f-1a", "o-1", "BTC/USDT", Side.BUY, 0.4, 100.0, 0.04, 1002, "signal")
    second = Fill("f-1b", "o-1", "BTC/USDT", Side.BUY, 0.6, 110.0, 0.066, 1003, "signal")
    apply_event(o, OrderFilled("o-1", first))
    acct = {"cash": 9_959.96, "realised": 0.0, "fees": 0.04}
    assert store.record_fill(first, o, Position("BTC/USDT", 0.4, 100.0), acct)
    [partial] = store.open_orders()
    assert partial.status is OrderStatus.PARTIALLY_FILLED and partial.filled_qty == 0.4
    apply_event(o, OrderFilled("o-1", second))
    acct = {"cash": 9_893.894, "realised": 0.0, "fees": 0.106}
    assert store.record_fill(second, o, Position("BTC/USDT", 1.0, 106.0), acct)
    assert store.open_orders() == [] and store.orders() == [o]
    assert o.status is OrderStatus.FILLED and o.avg_price == pytest.approx(106.0)
    assert [f.fill_id for f in store.fills()] == ["f-1a", "f-1b"]


def test_same_order_id_twice_is_refused_and_changes_nothing(store: Store) -> None:
    o = _order(1)
    assert store.record_order(o) is True
    before = snapshot(store)
    again = replace(o, side=Side.SELL, qty=5.0, status=OrderStatus.FILLED, decision_key="other")
    assert store.record_order(again) is False
    assert snapshot(store) == before


def test_same_fill_id_twice_is_refused_and_changes_nothing(store: Store) -> None:
    store.init_account(10_000.0, 0)
    f = _fill()
    assert _book(store, f, Position("BTC/USDT", f.qty, f.price), {"cash": 1.0, "realised": 0.0, "fees": 2.0})
    before = snapshot(store)
    [o] = store.orders()
    replayed = replace(f, qty=5.0, price=1.0)  # the venue reports the same fill id again
    assert (
        store.record_fill(
            replayed,
            replace(o, message="again"),
            Position("BTC/USDT", 9.0, 1.0),
            {"cash": 7.0, "realised": 8.0, "fees": 9.0},
        )
        is False
    )
    assert snapshot(store) == before


def test_flat_position_row_is_deleted_and_realised_kept_in_account(store: Store) -> None:
    store.init_account(10_000.0, 0)
    buy = _fill(1, Side.BUY, 0.5, 100.0)
    _book(
        store,
        buy,
        Position("BTC/USDT", 0.5, 100.0, 98.0, 104.0, 0.0, 0.05, 1001),
        {"cash": 9949.95, "realised": 0.0, "fees": 0.05},
    )
    sell = _fill(2, Side.SELL, 0.5, 110.0)
    flat = Position("BTC/USDT", 0.0, 100.0, 98.0, 104.0, 5.0, 0.105, 1001)
    _book(store, sell, flat, {"cash": 10_004.895, "realised": 5.0, "fees": 0.105})
    assert store.load_positions() == {}
    assert store.load_account() == {
        "capital": 10_000.0,
        "cash": 10_004.895,
        "realised": 5.0,
        "fees": 0.105,
    }
    assert [f.side for f in store.fills()] == [Side.BUY, Side.SELL]
    assert [o.status for o in store.orders()] == [OrderStatus.FILLED, OrderStatus.FILLED]


def test_fills_filtered_by_symbol_oldest_first(store: Store) -> None:
    store.init_account(10_000.0, 0)
    acct = {"cash": 1.0, "realised": 0.0, "fees": 0.0}
    for n, sym in enumerate(["ETH/USDT", "BTC/USDT", "ETH/USDT"]):
        _book(store, _fill(n, symbol=sym), Position(sym, 1.0, 1.0), acct)
    assert [f.order_id for f in store.fills("ETH/USDT")] == ["o-0", "o-2"]
    assert [f.order_id for f in store.fills()] == ["o-0", "o-1", "o-2"]
    assert [o.client_order_id for o in store.orders()] == ["o-0", "o-1", "o-2"]
    assert set(store.load_positions()) == {"ETH/USDT", "BTC/USDT"}


def test_fill_before_account_is_refused_atomically(store: Store) -> None:
    f = _fill()
    o = _order_for(f)
    store.record_order(o)
    before = snapshot(store)
    with pytest.raises(StoreError, match="init_account"):
        store.record_fill(
            f,
            _filled(o, f),
            Position("BTC/USDT", 1.0, 1.0),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
        )
    # the fill, the position and the order's move to filled were all rolled back
    assert snapshot(store) == before
    assert store.fills() == [] and store.load_positions() == {} and store.open_orders() == [o]


def test_fill_of_an_order_never_journaled_is_refused_and_leaves_nothing(store: Store) -> None:
    """The order row is written before its fill: a fill for an unknown order id is refused."""
    store.init_account(10_000.0, 0)
    before = snapshot(store)
    f = _fill()
    with pytest.raises(StoreError, match="record_fill failed") as ei:
        store.record_fill(
            f,
            _filled(_order_for(f), f),
            Position("BTC/USDT", f.qty, f.price),
            {"cash": 1.0, "realised": 0.0, "fees": 0.0},
        )
    assert "\n" not in str(ei.value)
    assert snapshot(store) == before and not store.has_fill(f.fill_id)


def test_update_of_an_order_never_journaled_raises(store: Store) -> None:
    o = _order(9)
    apply_event(o, OrderRejected(o.client_order_id, 1, "insufficient balance"))
    with pytest.raises(StoreError, match="never journaled"):
        store.update_order(o)
    assert store.orders() == []


def test_open_orders_are_the_non_terminal_ones(store: Store) -> None:
    statuses = list(OrderStatus)
    for n, status in enumerate(statuses):
        assert store.record_order(_order(n, status=status))
    assert [o.status for o in store.orders()] == statuses
    assert [o.status for o in store.open_orders()] == [
        OrderStatus.NEW,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.UNKNOWN,
    ]
    # a refusal or a cancel takes an order off the list, with the venue's reason
    new, accepted = store.open_orders()[:2]
    apply_event(new, OrderRejected(new.client_order_id, 2000, "insufficient balance", retryable=False))
    apply_event(accepted, OrderCancelled(accepted.client_order_id, 2001))
    store.update_order(new)
    store.update_order(accepted)
    assert [o.status for o in store.open_orders()] == [
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.UNKNOWN,
    ]
    got = {o.client_order_id: o for o in store.orders()}
    assert got[new.client_order_id] == new and got[new.client_order_id].message == "insufficient balance"
    assert got[accepted.client_order_id].message == "cancelled"
    assert got[accepted.client_order_id].updated_ts == 2001


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
            "position or order does not belong",
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
def test_bad_fill_values_are_refused(
    store: Store, fill: Fill, pos: Position, acct: dict, match: str
) -> None:
    store.init_account(10_000.0, 0)
    order = _order_for(fill)
    store.record_order(order)
    before = snapshot(store)
    with pytest.raises(StoreError, match=match) as ei:
        store.record_fill(fill, order, pos, acct)
    assert "\n" not in str(ei.value)
    assert snapshot(store) == before


def test_fill_with_another_orders_state_is_refused(store: Store) -> None:
    store.init_account(10_000.0, 0)
    f = _fill(1)
    store.record_order(_order_for(f))
    other = _order(2)
    store.record_order(other)
    before = snapshot(store)
    with pytest.raises(StoreError, match="position or order does not belong"):
        store.record_fill(f, other, Position("BTC/USDT", 1.0), {"cash": 1.0, "realised": 0.0, "fees": 0.0})
    assert snapshot(store) == before


def test_foreign_key_from_fill_to_order_is_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        raw(store).execute(
            "INSERT INTO fills VALUES ('f-x', 'o-missing', 'BTC/USDT', 'buy', 1.0, 1.0, 0.0, 1, 'signal')"
        )


# ---- migrations -----------------------------------------------------------------------------


def _write_v1_store(path: Path, f: Fill, key: str) -> dict[str, float]:
    """A store as version 1 wrote it: an order was stored filled, with its fill, in one go."""
    c = sqlite3.connect(path, isolation_level=None)
    _migrate_to_1(c)
    c.execute("PRAGMA user_version = 1")
    acct = {"cash": 10_000.0 - f.qty * f.price - f.fee, "realised": 0.0, "fees": f.fee}
    c.execute(
        "INSERT INTO account (id, capital, cash, realised, fees, updated_ts) VALUES (1, 10000.0, ?, ?, ?, ?)",
        (acct["cash"], acct["realised"], acct["fees"], f.ts),
    )
    c.execute(
        "INSERT INTO decisions (key, symbol, ts, action, approved, qty, price, signal_type, confidence, "
        "entry, stop_loss, take_profit, reasoning, signal_ts, checks_json) "
        "VALUES (?, 'BTC/USDT', 1000, 'open_long', 1, ?, ?, 'BUY', 0.75, ?, 49000.1, 52000.7, 'v1', 999, ?)",
        (key, f.qty, f.price, f.price, '[["stop_side", true, ""]]'),
    )
    c.execute(
        "INSERT INTO orders (order_id, decision_key, symbol, side, qty, status, reason, ts) "
        "VALUES (?, ?, ?, 'buy', ?, 'filled', ?, ?)",
        (f.order_id, key, f.symbol, f.qty, f.reason, f.ts),
    )
    c.execute(
        "INSERT INTO fills (fill_id, order_id, symbol, side, qty, price, fee, ts, reason) "
        "VALUES (?, ?, ?, 'buy', ?, ?, ?, ?, ?)",
        (f.fill_id, f.order_id, f.symbol, f.qty, f.price, f.fee, f.ts, f.reason),
    )
    c.execute(
        "INSERT INTO positions VALUES ('BTC/USDT', ?, ?, 49000.1, 52000.7, 0.0, ?, ?, ?)",
        (f.qty, f.price, f.fee, f.ts, f.ts),
    )
    c.execute("INSERT INTO pair_modes VALUES ('BTC/USDT', 'PAUSED', 'operator', 5)")
    c.execute(
        "INSERT INTO equity (ts, equity, cash, exposure, realised, unrealised, fees) "
        "VALUES (6, 9999.0, 1.0, 2.0, 0.0, 0.5, 0.25)"
    )
    c.execute("INSERT INTO events (ts, kind, message) VALUES (7, 'kill', 'operator pressed kill')")
    c.close()
    return acct


def test_version_1_store_is_migrated_and_loses_nothing(db: Path) -> None:
    f = _fill()
    key = "BTC/USDT|1000|open_long"
    acct = _write_v1_store(db, f, key)
    with Store(db) as s:
        assert s.schema_version() == SCHEMA_VERSION == 7
        # the filled order now carries its own fill state, from its fill
        assert s.orders() == [
            Order(
                f.order_id,
                f.symbol,
                Side.BUY,
                f.qty,
                "signal",
                key,
                f.ts,
                OrderStatus.FILLED,
                filled_qty=f.qty,
                avg_price=f.price,
                fees=f.fee,
                updated_ts=f.ts,
            )
        ]
        [o] = s.orders()
        assert o.filled_qty == o.qty and o.avg_price == f.price and not o.is_open
        assert s.open_orders() == []
        # and nothing else changed
        assert s.fills() == [f]
        assert s.load_account() == {"capital": 10_000.0, **acct}
        assert s.load_positions() == {
            "BTC/USDT": Position("BTC/USDT", f.qty, f.price, 49_000.1, 52_000.7, 0.0, f.fee, f.ts)
        }
        assert s.load_modes() == {"BTC/USDT": PairMode.PAUSED}
        assert s.equity_curve() == [
            {"ts": 6, "equity": 9999.0, "cash": 1.0, "exposure": 2.0, "realised": 0.0, "unrealised": 0.5,
             "fees": 0.25}
        ]
        assert s.recent_events() == [{"ts": 7, "kind": "kill", "message": "operator pressed kill"}]
        [d] = s.recent_decisions()
        assert (d.key, d.approved, d.qty, d.signal.reasoning, d.checks) == (
            key, True, f.qty, "v1", [("stop_side", True, "")])
        # the idempotency of what v1 stored holds: neither the order nor the fill comes twice
        assert s.record_order(_order_for(f)) is False
        assert s.record_fill(f, o, Position("BTC/USDT", 9.0, 1.0), {"cash": 0.0, "realised": 0.0, "fees": 0.0}) is False
        assert raw(s).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw(s).execute("PRAGMA foreign_key_check").fetchall() == []
    with Store(db) as s:  # a second open finds the current version and migrates nothing
        assert s.schema_version() == SCHEMA_VERSION and len(s.orders()) == 1


# ---- modes, equity, events ------------------------------------------------------------------


def test_modes_persist_across_close_and_reopen(db: Path) -> None:
    with Store(db) as s:
        s.set_modes(
            {"BTC/USDT": PairMode.ACTIVE, "ETH/USDT": PairMode.ACTIVE, "SOL/USDT": PairMode.ACTIVE},
            "start",
            1,
        )
        s.set_modes({"ETH/USDT": PairMode.PAUSED}, "operator", 2)
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
    store.set_modes({"BTC/USDT": PairMode.ACTIVE}, "start", 1)
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
        writer_store.set_modes({"BTC/USDT": PairMode.ACTIVE}, "start", 1)
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
                    # the order commits on its own, before its fill: a reader may see it open
                    _book(
                        s,
                        f,
                        Position("BTC/USDT", n + 1.0, 1.0),
                        {"cash": 1000.0 - n - 1, "realised": 0.0, "fees": 0.0},
                    )
        except BaseException as exc:
            failures.append(exc)

    t = threading.Thread(target=write)
    t.start()
    seen: list[int] = []
    with Store(db) as reader:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fills = len(reader.fills())
            filled = sum(o.status is OrderStatus.FILLED for o in reader.orders())
            acct = reader.load_account()
            if acct is not None:
                # neither the orders nor the account are ever behind the fills read before
                # them: a fill, its order's new state and the account commit together
                assert filled >= fills
                assert 1000.0 - acct["cash"] >= fills
            seen.append(fills)
            if fills == total:
                break
    t.join(20)
    assert not failures
    assert seen[-1] == total and seen == sorted(seen)


# ---- crash test -----------------------------------------------------------------------------


def _stored_ns(db: Path) -> list[int]:
    if not db.exists():
        return []
    with Store(db) as s:
        return [int(o.client_order_id.removeprefix("o-")) for o in s.orders()]


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

    # a final clean run: books the order a kill may have left open, retries the last order
    # (must be refused) and stops by itself
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
        ns = [int(o.client_order_id.removeprefix("o-")) for o in orders]
        assert len(ns) == len(set(ns)), f"seed {seed}: duplicated order id"
        assert ns == list(range(len(ns))), f"seed {seed}: gap in n"
        assert printed <= set(ns), (
            f"seed {seed}: reported but lost: {sorted(printed - set(ns))[:5]}"
        )
        assert len(ns) >= start + 25
        # every order has exactly its one fill, equal to what the writer made for that n
        assert fills == [writer.make_fill(n) for n in ns]
        assert orders == [writer.filled_order(n) for n in ns] and s.open_orders() == []
        # every order's decision was journaled with it, and no decision without its order
        keys = {d.key for d in s.recent_decisions(limit=len(ns) + 10)}
        assert keys == {o.decision_key for o in orders}
        # account and positions equal a replay of the stored fills
        account, positions = writer.new_account(), {}
        for f in fills:
            pos, account = writer.apply_fill(
                positions.get(f.symbol, Position(f.symbol)), account, f
            )
            positions[f.symbol] = pos
        assert s.load_account() == account
        assert s.load_positions() == {sym: p for sym, p in positions.items() if p.is_open}


def test_a_new_book_appears_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built beside its path and linked into place: a failure while creating it leaves no
    empty file behind (the start check would refuse one), and no temporary file either."""
    import engine.journal.files as files

    path = tmp_path / "book.sqlite"

    def broken(conn: object, name: str) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(files, "migrate", broken)
    with pytest.raises(StoreError, match="cannot create the book"):
        Store(path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
    assert path.stat().st_size > 0 and (path.stat().st_mode & 0o777) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".new")]


def test_reloads_are_recorded_append_only_and_give_the_config_version(db: Path) -> None:
    from engine.journal import reloads

    assert reloads.config_version(db) == 1 and reloads.recent(db) == []  # no book: nothing created
    reloads.record(db, 1000, "SIGHUP", 1, "-", False, {}, "bad file")
    reloads.record(db, 2000, "console c1", 2, "abcd", True, {"added": ["BNB/USDT"]}, "added BNB/USDT")
    assert reloads.config_version(db) == 2
    rows = reloads.recent(db)
    assert [(r["trigger"], r["ok"], r["version"]) for r in rows] == [("console c1", True, 2), ("SIGHUP", False, 1)]
    assert rows[0]["diff"] == {"added": ["BNB/USDT"]}


def test_the_rows_store_an_enums_text_for_a_member_or_its_string() -> None:
    """``side_value`` and ``status_value`` read a member's text without the enum's Python
    (``str`` of a StrEnum member): the same text as ``.value``, for a member or its string;
    anything else is refused with the field named."""
    from engine.journal.rows import side_value, status_value

    for side in Side:
        assert side_value(side) == side_value(side.value) == side.value
        assert type(side_value(side)) is str
    for status in OrderStatus:
        assert status_value(status) == status_value(status.value) == status.value
        assert type(status_value(status)) is str
    with pytest.raises(StoreError, match="side must be"):
        side_value("long")


def test_a_decisions_checks_are_stored_as_json_text_whatever_their_reasons() -> None:
    """The checks' text (orjson: compact, UTF-8) reads back as the checks, with non-ASCII
    reasons and, through the standard encoder's escapes, a text orjson refuses."""
    from engine.journal.rows import checks_text

    plain = [["correlation", True, "1/2 correlated (ρ ≤ 0.70)"], ["size", False, ""]]
    assert checks_text(plain) == '[["correlation",true,"1/2 correlated (ρ ≤ 0.70)"],["size",false,""]]'
    odd = [*plain, ["stop", True, "half a pair: \ud800"]]
    assert json.loads(checks_text(odd)) == odd
