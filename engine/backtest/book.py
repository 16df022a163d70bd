"""The backtest's book: what a run gives the trading core instead of the engine's durable journal.

Owns ``BacktestBook`` (the engine's journal without fsync, one SQLite transaction for the whole
run, the equity curve written in bulk). The run's clock is engine/backtest/clock.py; the replay
that drives both is engine/backtest/runner.py.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.backtest.held import FLUSH_EQUITY, FLUSH_FACTS, EquityRow, HeldFacts
from engine.journal.rows import (
    INSERT_DECISION,
    INSERT_FILL,
    INSERT_ORDER,
    UPDATE_ACCOUNT,
    UPDATE_ORDER,
    UPSERT_POSITION,
)  # fmt: skip
from engine.journal.schema import StoreError, one_line
from engine.journal.store import Store

__all__ = ["FLUSH_EQUITY", "FLUSH_FACTS", "BacktestBook", "EquityRow"]


class BacktestBook(HeldFacts, Store):
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
        Store.__init__(self, path, verify=False, durable=False)
        HeldFacts.__init__(self, str(self.path))  # the facts held, compiled (engine/backtest/held.py)
        conn = self._conn
        self._at_open = (
            frozenset(r[0] for r in conn.execute("SELECT key FROM decisions")),
            frozenset(r[0] for r in conn.execute("SELECT order_id FROM orders")),
            frozenset(r[0] for r in conn.execute("SELECT fill_id FROM fills")),
            bool(conn.execute("SELECT 1 FROM account WHERE id = 1").fetchall()),
        )
        self._keys_at_open()
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
                if self.equity_rows:  # the points still held (a run writes them before it closes)
                    self.flush_equity()
                self._flush("close")
                for _name, sql in self._indexes:
                    conn.execute(sql)
                conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the commit (a full disk): the run's book keeps nothing
            self._fail("close", exc)
            raise StoreError(f"{self.path}: close failed: {one_line(exc)}") from None
        finally:
            self.is_open = False
            Store.close(self)

    def init_account(self, capital: float, ts: int) -> None:
        super().init_account(capital, ts)
        self._has_account = True

    def flush_equity(self) -> None:
        rows = self.equity_rows
        if self.equity_not_finite:  # never in practice (counted as each point is held)
            rows = [r for r in rows if all(math.isfinite(v) for v in r[1:])]
        self.equity_dropped += len(self.equity_rows) - len(rows)
        with self._write("record_equity") as c:
            c.executemany(
                "INSERT INTO equity (ts, equity, cash, exposure, realised, unrealised, fees) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self.equity_rows.clear()
        self.equity_not_finite = 0
