"""The backtest's book: what a run gives the trading core instead of the engine's durable journal.

Owns ``BacktestBook`` (the engine's journal without fsync, one SQLite transaction for the whole
run, the equity curve written in bulk). The run's clock is engine/backtest/clock.py; the replay
that drives both is engine/backtest/runner.py.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.models import Decision, Fill, Position
from engine.core.orders import Order
from engine.journal.rows import (
    INSERT_DECISION,
    INSERT_FILL,
    INSERT_ORDER,
    UPDATE_ACCOUNT,
    UPDATE_ORDER,
    UPSERT_POSITION,
    decision_row,
    fill_facts,
    order_row,
    order_update,
)  # fmt: skip
from engine.journal.schema import StoreError, one_line
from engine.journal.store import Store

__all__ = ["BacktestBook", "EquityRow"]


EquityRow = tuple[int, float, float, float, float, float, float]
FLUSH_FACTS = 4_096  # facts held before they are written: memory stays bounded on a long run
FLUSH_EQUITY = 65_536  # equity points held before they are written (a year of 1 m: 8 writes)


class BacktestBook(Store):
    """The run's book: the engine's journal without fsync, the whole run in one SQLite
    transaction (committed by ``close``), and the facts the core writes on every trade
    (decisions, orders, fills, the position and the account after each fill) kept in memory and
    written in bulk: a backtest's book is rerun, never recovered, and a statement per fact cost
    about a fifth of a trade-heavy run.

    **The same answers as the engine's book.** A decision key, a client order id and a fill id
    are each stored once: the keys this book holds (loaded at open, added as each fact is
    accepted) answer what the engine's ``ON CONFLICT DO NOTHING`` answers, and an update of an
    order never journaled raises as the engine's does. A fact is checked as the engine checks
    it, when it is written. The facts reach the tables in their order (a table's rows keep the
    order the engine's would have), before any read of the book, before any other write (an
    event, a pair's mode), every ``FLUSH_FACTS`` facts, and at ``close``; the position and the
    account are written as the last fact left them. The finished book holds what the engine's
    would, row for row (tests/test_backtest_book.py), but for the decisions table's id: the
    engine's counter skips the id of a decision it took back (its order id was taken), this
    book never spends one.

    **A failure voids the run.** A fact that fails where the engine's would fail inside its
    transaction (an order's values, an update of an order never journaled, a fill before the
    account, an SQLite error when the held facts are written) rolls the whole run's transaction
    back and every later write raises ``StoreError``: the book never holds half a run. A fact
    refused by the checks the engine makes before its transaction (a decision's row, a fill's
    values) raises and leaves the run as it was, as the engine's book does. A fact SQLite
    refuses is found when the held facts are written, so the error may surface at a later call
    (the next read, write or ``close``) than the fact's own; the run still ends there, with
    nothing in its book. A savepoint per fact kept the loss to that fact, but SQLite copies
    every page a savepoint touches to a statement journal: half the cost of each write.

    The secondary indexes (by decision key, symbol and time, open status) are dropped inside
    that transaction and built once by ``close``: nothing the core reads during a run uses
    them, and keeping them up to date row by row cost about 8 % of a trade-heavy compiled run.
    A failed run's rollback restores them with the empty tables; a finished book has them all,
    the same as the engine's."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, verify=False, durable=False)
        # the equity curve's points, (ts, equity, cash, exposure, realised, unrealised, fees), held
        # until ``flush_equity`` (every ``FLUSH_EQUITY`` points and at the end); one list for the
        # whole run (the replay reads its last point)
        self.equity_rows: list[EquityRow] = []
        self._failed = ""  # why a fact failed: the run's transaction is gone
        conn = self._conn
        self._at_open = (
            frozenset(r[0] for r in conn.execute("SELECT key FROM decisions")),
            frozenset(r[0] for r in conn.execute("SELECT order_id FROM orders")),
            frozenset(r[0] for r in conn.execute("SELECT fill_id FROM fills")),
            bool(conn.execute("SELECT 1 FROM account WHERE id = 1").fetchall()),
        )
        self._keys_at_open()
        self._pending_clear()
        conn.execute("BEGIN IMMEDIATE")
        self._indexes: list[tuple[str, str]] = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()  # sql IS NULL: the primary keys' and UNIQUE constraints' own, which stay
        for name, _sql in self._indexes:
            conn.execute(f'DROP INDEX "{name}"')

    def _keys_at_open(self) -> None:
        """The keys the tables held at open: what they hold again after a rollback."""
        decisions, orders, fills, account = self._at_open
        self._decision_keys = set(decisions)
        self._order_ids = set(orders)  # journaled, written or not
        self._fill_ids = set(fills)
        self._has_account = account

    def _pending_clear(self) -> None:
        self._decisions: list[tuple[Any, ...]] = []
        self._new_orders: dict[str, list[Any]] = {}  # not yet written: the row, updated in place
        self._order_updates: dict[str, tuple[Any, ...]] = {}  # written orders' latest update
        self._fills: list[tuple[Any, ...]] = []
        self._positions: dict[str, tuple[Any, ...] | None] = {}  # None: flat, the row goes
        self._account: tuple[Any, ...] | None = None
        self._n_pending = 0

    def _refuse(self, op: str) -> None:
        if self._conn is None:
            raise StoreError(f"{self.path}: {op} on a closed store")
        if self._failed:
            raise StoreError(f"{self.path}: {op} refused: an earlier write failed ({self._failed})")

    def _fail(self, op: str, exc: BaseException) -> None:
        """The run's transaction goes: nothing of it stays in the book or in memory."""
        self._failed = f"{op}: {one_line(exc)}"
        self._pending_clear()
        self._keys_at_open()
        conn = self._conn
        if conn is not None and conn.in_transaction:
            conn.execute("ROLLBACK")

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One fact written now, inside the run's transaction, after the facts held."""
        self._refuse(op)
        self._flush(op)
        conn = self._conn
        try:
            yield conn
        except BaseException as exc:
            self._fail(op, exc)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: {op} failed: {one_line(exc)}") from None
            raise

    def _read(self, op: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self._failed:
            self._flush(op)
        return super()._read(op, sql, args)

    def _held(self, op: str) -> None:
        """One more fact held; the held ones are written every ``FLUSH_FACTS``."""
        self._n_pending += 1
        if self._n_pending >= FLUSH_FACTS:
            self._flush(op)

    def _flush(self, op: str) -> None:
        """The facts held, written in their tables' order (an order before its fills)."""
        if not self._n_pending:
            return
        conn = self._conn
        try:
            if self._decisions:
                conn.executemany(INSERT_DECISION, self._decisions)
            if self._new_orders:
                conn.executemany(INSERT_ORDER, self._new_orders.values())
            if self._order_updates:
                conn.executemany(UPDATE_ORDER, self._order_updates.values())
            if self._fills:
                conn.executemany(INSERT_FILL, self._fills)
            gone = [(s,) for s, row in self._positions.items() if row is None]
            if gone:
                conn.executemany("DELETE FROM positions WHERE symbol = ?", gone)
            rows = [row for row in self._positions.values() if row is not None]
            if rows:
                conn.executemany(UPSERT_POSITION, rows)
            if self._account is not None:
                conn.execute(UPDATE_ACCOUNT, self._account)
        except BaseException as exc:
            self._fail(f"{op} (writing the facts held)", exc)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: {op} failed writing the facts held: {one_line(exc)}") from None
            raise
        self._pending_clear()

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        try:
            if conn is not None and conn.in_transaction:
                self._flush("close")
                for _name, sql in self._indexes:
                    conn.execute(sql)
                conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the commit (a full disk): the run's book keeps nothing
            self._fail("close", exc)
            raise StoreError(f"{self.path}: close failed: {one_line(exc)}") from None
        finally:
            super().close()

    # ---- the facts of a trade, held -----------------------------------------------------------

    # A fact's checks fail as the engine's do: those the engine makes before its transaction
    # (a decision's row, a fill's values) raise and leave the run as it was; those it makes
    # inside it (an order's values, an update of an order never journaled, a fill before the
    # account) roll the run back, as a failed write does.

    def record_decision(self, d: Decision, order: Order | None = None) -> bool:
        self._refuse("record_decision")
        row = decision_row(d)
        if d.key in self._decision_keys:
            return False
        if order is not None:
            order_row = self._checked_order_row("record_decision", order)
            if order.client_order_id in self._order_ids:
                return False  # the engine takes the decision back: nothing is stored
            self._hold_order(order_row)
        self._decision_keys.add(d.key)
        self._decisions.append(row)
        self._held("record_decision")
        return True

    def record_order(self, order: Order) -> bool:
        self._refuse("record_order")
        row = self._checked_order_row("record_order", order)
        if order.client_order_id in self._order_ids:
            return False
        self._hold_order(row)
        self._held("record_order")
        return True

    def _checked_order_row(self, op: str, order: Order) -> tuple[Any, ...]:
        """The order's row, checked as the engine checks it inside its transaction: a failure
        voids the run."""
        try:
            return order_row(order)
        except BaseException as exc:
            self._fail(op, exc)
            raise

    def _hold_order(self, row: tuple[Any, ...]) -> None:
        self._order_ids.add(row[0])
        self._new_orders[row[0]] = list(row)

    def _update_held(self, op: str, order: Order) -> None:
        """An order's new status: on its held row, or held for its written one."""
        try:
            update = order_update(order)
            oid = update[-1]
            if oid not in self._order_ids:
                raise StoreError(f"order {oid} was never journaled (record_order first)")
        except BaseException as exc:
            self._fail(op, exc)
            raise
        row = self._new_orders.get(oid)
        if row is None:
            self._order_updates[oid] = update
        else:
            row[7:13] = update[:6]  # status, filled_qty, avg_price, fees, updated_ts, message

    def update_order(self, order: Order) -> None:
        self._refuse("update_order")
        self._update_held("update_order", order)
        self._held("update_order")

    def record_fill(self, fill: Fill, order: Order, position: Position, account: Mapping[str, float]) -> bool:
        self._refuse("record_fill")
        fill_row, _update, pos_row, account_row = fill_facts(fill, order, position, account)
        if fill.fill_id in self._fill_ids:
            return False  # already booked: the engine's INSERT would change nothing either
        self._update_held("record_fill", order)
        if not self._has_account:
            exc = StoreError(f"{self.path}: record_fill before init_account (no account row)")
            self._fail("record_fill", exc)
            raise exc
        self._fill_ids.add(fill.fill_id)
        self._fills.append(fill_row)
        self._positions[fill.symbol] = pos_row
        self._account = account_row
        self._held("record_fill")
        return True

    def has_fill(self, fill_id: str) -> bool:
        return fill_id in self._fill_ids

    def init_account(self, capital: float, ts: int) -> None:
        super().init_account(capital, ts)
        self._has_account = True

    def record_equity(
        self, ts: int, equity: float, cash: float, exposure: float, realised: float, unrealised: float, fees: float
    ) -> None:
        if len(self.equity_rows) >= FLUSH_EQUITY:  # written before the point that would overflow
            self.flush_equity()  # (so the list holds this point after: the replay reads it)
        self.equity_rows.append((int(ts), equity, cash, exposure, realised, unrealised, fees))

    def flush_equity(self) -> None:
        rows = self.equity_rows
        if rows and not np.isfinite(np.array(rows, dtype=float)[:, 1:]).all():  # never in practice
            rows = [r for r in rows if all(math.isfinite(v) for v in r[1:])]
        self.equity_dropped += len(self.equity_rows) - len(rows)
        with self._write("record_equity") as c:
            c.executemany(
                "INSERT INTO equity (ts, equity, cash, exposure, realised, unrealised, fees) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self.equity_rows.clear()
