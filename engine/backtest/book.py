"""The backtest's book: what a run gives the trading core instead of the engine's durable journal.

Owns ``BacktestBook`` (the engine's journal without fsync, one SQLite transaction for the whole
run, the equity curve written once). The run's clock is engine/backtest/clock.py; the replay
that drives both is engine/backtest/runner.py.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.core.models import Fill, Position
from engine.core.orders import Order
from engine.journal.schema import StoreError, one_line
from engine.journal.store import Store

__all__ = ["BacktestBook"]


class BacktestBook(Store):
    """The run's book: the engine's journal without fsync, the equity curve written once, and
    the whole run in one SQLite transaction (committed by ``close``): a backtest's book is
    rerun, never recovered, and a commit per fact cost 5-15 % of a trade-heavy run.

    A fact that fails (an SQLite error, or anything raised while it is written) rolls the whole
    run's transaction back and every later write raises ``StoreError``: the book never holds
    half a fact, and a run whose book failed ends at its next write (the core never carries on
    past a ``JournalError``). A savepoint per fact kept it to that fact instead, but SQLite
    copies every page a savepoint touches to a statement journal: half the cost of each write.

    The secondary indexes (by decision key, symbol and time, open status) are dropped inside
    that transaction and built once by ``close``: nothing the core reads during a run uses them
    (it reads by primary key: ``has_fill``, ``order``), and keeping them up to date row by row
    cost about 8 % of a trade-heavy compiled run. A failed run's rollback restores them with the
    empty tables; a finished book has them all, the same as the engine's.

    ``has_fill``, asked on every fill, answers from the fill ids this book holds, kept beside
    it (loaded at open, added as each fill commits to the run's transaction, dropped with a
    rollback): the same answer as the engine's primary-key lookup, without a query a fill."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, verify=False, durable=False)
        self._equity: list[tuple[Any, ...]] = []
        self._failed = ""  # why a fact failed: the run's transaction is gone
        self._fills_at_open = frozenset(r[0] for r in self._conn.execute("SELECT fill_id FROM fills"))
        self._fill_ids = set(self._fills_at_open)
        self._conn.execute("BEGIN IMMEDIATE")
        self._indexes: list[tuple[str, str]] = self._conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()  # sql IS NULL: the primary keys' and UNIQUE constraints' own, which stay
        for name, _sql in self._indexes:
            self._conn.execute(f'DROP INDEX "{name}"')

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One fact inside the run's transaction."""
        conn = self._db(op)
        if self._failed:
            raise StoreError(f"{self.path}: {op} refused: an earlier write failed ({self._failed})")
        try:
            yield conn
        except BaseException as exc:
            self._failed = f"{op}: {one_line(exc)}"
            if conn.in_transaction:
                conn.execute("ROLLBACK")
                self._fill_ids = set(self._fills_at_open)  # what the rollback left
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: {op} failed: {one_line(exc)}") from None
            raise

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None and conn.in_transaction:
            for _name, sql in self._indexes:
                conn.execute(sql)
            conn.execute("COMMIT")
        super().close()

    def record_fill(self, fill: Fill, order: Order, position: Position, account: Mapping[str, float]) -> bool:
        if fill.fill_id in self._fill_ids:
            return False  # already booked: the engine's INSERT would change nothing either
        booked = super().record_fill(fill, order, position, account)
        if booked:
            self._fill_ids.add(fill.fill_id)
        return booked

    def has_fill(self, fill_id: str) -> bool:
        return fill_id in self._fill_ids

    def record_equity(self, ts: int, *values: float) -> None:  # type: ignore[override]
        self._equity.append((int(ts), *values))

    def equity_at(self, ts: int) -> tuple[float, float, float] | None:
        """``(equity, cash, exposure)`` of the point the core's timer recorded at ``ts`` (its
        last), or None when it recorded none then."""
        last = self._equity[-1] if self._equity else None
        return (last[1], last[2], last[3]) if last is not None and last[0] == ts else None

    def flush_equity(self) -> None:
        rows = [r for r in self._equity if all(math.isfinite(v) for v in r[1:])]
        self.equity_dropped += len(self._equity) - len(rows)
        with self._write("record_equity") as c:
            c.executemany(
                "INSERT INTO equity (ts, equity, cash, exposure, realised, unrealised, fees) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._equity.clear()
