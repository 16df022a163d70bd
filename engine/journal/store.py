"""The engine's durable state: one SQLite file holding the account, open positions, orders,
fills, every risk decision, pair modes, the equity curve and operator-visible events.

Owns ``Store``, the trading core's ``Journal``: the durability settings (WAL,
``synchronous=FULL``), and the idempotency rules: a decision key is stored once, an order is
stored (before it is sent) once per client order id, a fill once per fill id. The schema and its
migrations live in ``engine.journal.schema``. The store persists what the portfolio computes;
it does no PnL math. Every write method commits before it returns, so the caller can send or
publish afterwards. See docs/storage.md.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.core.models import Decision, Fill, PairMode, Position, Side
from engine.core.orders import Order, OrderStatus
from engine.journal.files import create_book, make_private
from engine.journal.operator_state import OperatorState
from engine.journal.reads import BookReads
from engine.journal.rows import (
    INSERT_DECISION,
    INSERT_FILL,
    INSERT_ORDER,
    ORDER_COLS,
    UPDATE_ACCOUNT,
    UPDATE_ORDER,
    UPSERT_POSITION,
    decision_row,
    fill_facts,
    finite,
    order_row,
    order_update,
)  # fmt: skip
from engine.journal.schema import StoreError, migrate, one_line

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # the console reads (and, on a kill fallback, writes) while the engine runs



class Store(BookReads, OperatorState):
    """One SQLite connection to one store file. Not shared between threads."""

    def __init__(self, path: str | Path, *, verify: bool = True, durable: bool = True) -> None:
        """Open (creating the schema if the file is new). ``verify`` runs ``PRAGMA quick_check``
        so a damaged file is refused at start rather than at the first fill. ``durable=False``
        (a backtest's own book: rerun it rather than fsync it) commits without fsync, with a
        rollback journal instead of WAL."""
        self.path = Path(path)
        self.durable = durable
        self.equity_dropped = 0  # equity points refused for a non-finite value
        name = str(self.path)
        if not self.path.parent.is_dir():
            raise StoreError(
                f"{name}: directory {self.path.parent} does not exist (create it first)"
            )
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{name}: not a regular file (pass the path of a store file)")
        if not self.path.exists():
            create_book(self.path)
        make_private(self.path)  # 0600 before SQLite opens it: its -wal/-shm inherit that
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves
            self._conn = sqlite3.connect(name, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{name}: cannot open: {one_line(exc)}") from None
        try:
            self._configure(verify)
            make_private(self.path)  # WAL on: SQLite gave new -wal/-shm the book's mode; check
            migrate(self._conn, name)
        except StoreError:
            self._conn.close()
            raise
        except sqlite3.OperationalError as exc:  # locked, busy, unreadable: the file may be fine
            self._conn.close()
            raise StoreError(f"{name}: cannot open store: {one_line(exc)}") from None
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(
                f"{name}: not a usable SQLite store ({one_line(exc)}); "
                "move it aside and restart, or pass another store path"
            ) from None

    def _configure(self, verify: bool) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # A backtest's book is one transaction for the whole run, read once it is over: a
        # rollback journal keeps only what the run changed of the pages there before (nothing
        # of a new book) and each page is written once, where WAL writes every page twice (the
        # log, then the checkpoint): 0.5 s of a year's run.
        want = "wal" if self.durable else "truncate"
        mode = c.execute(f"PRAGMA journal_mode = {want}").fetchone()[0]
        if str(mode).lower() != want:
            # still durable (rollback journal), but readers may now wait on the writer; a
            # backtest's book left in WAL (another connection held it) is only slower to commit
            log.warning(
                "store %s: journal_mode is %s, not %s (a filesystem without shm, or another "
                "connection holding the file?)", self.path, mode, want,
            )
        # fsync every commit: a fill must survive power loss (a backtest's book: a rerun does)
        c.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'OFF'}")
        c.execute("PRAGMA foreign_keys = ON")
        if verify:
            result = c.execute("PRAGMA quick_check(1)").fetchone()[0]
            if result != "ok":
                raise StoreError(
                    f"{self.path}: store file is damaged ({' '.join(str(result).split())}); "
                    "move it aside and restart, or pass another store path"
                )

    # ---- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent). The last connection checkpoints the WAL."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self, op: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: {op} on a closed store")
        return self._conn

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on exit; every sqlite error becomes a StoreError."""
        conn = self._db(op)
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now so busy_timeout applies
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {op} failed: {one_line(exc)}") from None
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("store %s: rollback after failed %s", self.path, op)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: {op} failed: {one_line(exc)}") from None
            raise

    def _read(self, op: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._db(op)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {op} failed: {one_line(exc)}") from None

    def schema_version(self) -> int:
        return int(self._read("schema_version", "PRAGMA user_version")[0][0])

    # ---- account ------------------------------------------------------------------------

    def init_account(self, capital: float, ts: int) -> None:
        """Create the account row with cash = capital, once; later calls change nothing."""
        capital = finite("capital", capital)
        with self._write("init_account") as c:
            c.execute(
                "INSERT INTO account (id, capital, cash, realised, fees, updated_ts) "
                "VALUES (1, ?, ?, 0.0, 0.0, ?) ON CONFLICT (id) DO NOTHING",
                (capital, capital, int(ts)),
            )

    def load_account(self) -> dict[str, float] | None:
        rows = self._read(
            "load_account", "SELECT capital, cash, realised, fees FROM account WHERE id = 1"
        )
        if not rows:
            return None
        capital, cash, realised, fees = rows[0]
        return {"capital": capital, "cash": cash, "realised": realised, "fees": fees}

    # ---- decisions ----------------------------------------------------------------------

    def record_decision(self, d: Decision, order: Order | None = None) -> bool:
        """Store a decision, approved or not, and the order it creates in the same transaction.
        False, storing nothing, if its key is already stored (idempotent)."""
        row = decision_row(d)
        with self._write("record_decision") as c:
            cur = c.execute(INSERT_DECISION, row)
            if cur.rowcount != 1:
                return False
            if order is not None and not self._insert_order(c, order):
                c.execute("DELETE FROM decisions WHERE key = ?", (d.key,))
                return False
            return True

    # ---- orders and fills -----------------------------------------------------------------

    def _insert_order(self, c: sqlite3.Connection, o: Order) -> bool:
        return c.execute(INSERT_ORDER, order_row(o)).rowcount == 1

    def record_order(self, order: Order) -> bool:
        """Store a new order before it is sent. False if its client order id is stored."""
        with self._write("record_order") as c:
            return self._insert_order(c, order)

    def update_order(self, order: Order) -> None:
        """Store an order's status change (accepted, rejected, cancelled, unknown)."""
        with self._write("update_order") as c:
            self._update_order(c, order)

    @staticmethod
    def _update_order(c: sqlite3.Connection, o: Order) -> None:
        if c.execute(UPDATE_ORDER, order_update(o)).rowcount != 1:
            raise StoreError(f"order {o.client_order_id} was never journaled (record_order first)")

    def record_fill(self, fill: Fill, order: Order, position: Position, account: Mapping[str, float]) -> bool:
        """Store one fill atomically with its order's new state, the pair's position after it
        (deleted when flat) and the account's cash/realised/fees after it.

        Returns False and changes nothing if ``fill.fill_id`` is already stored, so a fill the
        venue reports twice (or a lookup after a restart) is booked once.
        """
        fill_row, update, pos_row, account_row = fill_facts(fill, order, position, account)
        with self._write("record_fill") as c:
            # one statement where a SELECT then an INSERT took two: fill_id is the primary key,
            # so a fill already stored inserts nothing (rowcount 0)
            if c.execute(INSERT_FILL, fill_row).rowcount != 1:
                return False  # already booked: the transaction commits nothing
            if c.execute(UPDATE_ORDER, update).rowcount != 1:
                raise StoreError(f"order {order.client_order_id} was never journaled (record_order first)")
            if pos_row is None:
                # flat: the pair's realised PnL lives on in account.realised and in the fills
                c.execute("DELETE FROM positions WHERE symbol = ?", (fill.symbol,))
            else:
                c.execute(UPSERT_POSITION, pos_row)
            if c.execute(UPDATE_ACCOUNT, account_row).rowcount != 1:
                raise StoreError(f"{self.path}: record_fill before init_account (no account row)")
        return True

    def has_fill(self, fill_id: str) -> bool:
        return bool(self._read("has_fill", "SELECT 1 FROM fills WHERE fill_id = ?", (fill_id,)))

    def _orders(self, op: str, where: str = "", args: tuple[Any, ...] = ()) -> list[Order]:
        rows = self._read(op, f"SELECT {ORDER_COLS} FROM orders {where} ORDER BY rowid", args)
        return [
            Order(cid, sym, Side(side), qty, reason, key or "", ts, OrderStatus(status), fq, ap, fees, uts, msg, sl, tp,
                  otype, trig)
            for cid, sym, side, qty, reason, key, ts, status, fq, ap, fees, uts, msg, sl, tp, otype, trig in rows
        ]

    def open_orders(self) -> list[Order]:
        """Orders not yet filled, rejected or cancelled: after a restart, each is looked up."""
        return self._orders("open_orders", "WHERE status NOT IN ('filled', 'rejected', 'cancelled')")

    def load_positions(self) -> dict[str, Position]:
        """Open positions only (a flat pair has no row)."""
        rows = self._read(
            "load_positions",
            "SELECT symbol, qty, entry, stop_loss, take_profit, realised, fees, opened_ts "
            "FROM positions ORDER BY symbol",
        )
        return {r[0]: Position(*r) for r in rows}

    # ---- pair modes ---------------------------------------------------------------------

    def set_modes(self, modes: Mapping[str, PairMode], reason: str, ts: int) -> None:
        """Set several pairs' modes in one transaction (kill: all HALTED or none). A pair that
        becomes HALTED keeps the mode it had in ``before_halt`` (a pair with no row was ACTIVE;
        one already HALTED keeps its first); leaving HALTED clears it (``modes_before_halt``)."""
        try:
            rows = [(sym, PairMode(m).value, reason, int(ts)) for sym, m in modes.items()]
        except ValueError as exc:
            raise StoreError(
                f"set_modes: {one_line(exc)} (known: ACTIVE, PAUSED, REDUCING, HALTED)"
            ) from None
        with self._write("set_modes") as c:
            c.executemany(
                "INSERT INTO pair_modes (symbol, mode, reason, ts, before_halt) "
                "VALUES (?1, ?2, ?3, ?4, CASE WHEN ?2 = 'HALTED' THEN 'ACTIVE' END) "
                "ON CONFLICT (symbol) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, "
                "ts = excluded.ts, before_halt = CASE WHEN excluded.mode <> 'HALTED' THEN NULL "
                "WHEN pair_modes.mode = 'HALTED' THEN pair_modes.before_halt ELSE pair_modes.mode END",
                rows,
            )

    def load_modes(self) -> dict[str, PairMode]:
        rows = self._read("load_modes", "SELECT symbol, mode FROM pair_modes ORDER BY symbol")
        return {sym: PairMode(mode) for sym, mode in rows}

    # ---- equity and events --------------------------------------------------------------

    def record_equity(
        self,
        ts: int,
        equity: float,
        cash: float,
        exposure: float,
        realised: float,
        unrealised: float,
        fees: float,
    ) -> None:
        """One point of the equity curve; the caller throttles (e.g. once every few seconds).

        A point with a non-finite value is dropped, logged and counted in ``equity_dropped``:
        it is telemetry, and a bad mark must not stop an engine that holds positions.
        """
        try:
            vals = [
                finite(n, v)
                for n, v in (
                    ("equity", equity),
                    ("cash", cash),
                    ("exposure", exposure),
                    ("realised", realised),
                    ("unrealised", unrealised),
                    ("fees", fees),
                )
            ]
        except StoreError as exc:
            self.equity_dropped += 1
            log.warning("store %s: equity point at %s dropped: %s", self.path, ts, exc)
            return
        with self._write("record_equity") as c:
            c.execute(
                "INSERT INTO equity (ts, equity, cash, exposure, realised, unrealised, fees) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (int(ts), *vals),
            )

    def record_position(self, position: Position) -> None:
        """Store an open position as it is now (a reconciliation that adopts the exchange's
        entry); a fill stores positions itself."""
        vals = [finite(f"position {n}", getattr(position, n))
                for n in ("qty", "entry", "stop_loss", "take_profit", "realised", "fees")]  # fmt: skip
        with self._write("record_position") as c:
            c.execute(
                "UPDATE positions SET qty = ?, entry = ?, stop_loss = ?, take_profit = ?, realised = ?, fees = ? "
                "WHERE symbol = ?", (*vals, position.symbol),
            )

    def record_reconciliation(self, report: Mapping[str, Any], rid: int | None = None) -> int:
        """Store a reconciliation report (a new row, or ``rid``'s rewritten with the operator's
        choices); its id."""
        text = json.dumps(report, separators=(",", ":"), allow_nan=False)
        with self._write("record_reconciliation") as c:
            if rid is not None:
                c.execute("UPDATE reconciliations SET report = ? WHERE id = ?", (text, rid))
                return rid
            cur = c.execute("INSERT INTO reconciliations (ts, trigger, ok, report) VALUES (?, ?, ?, ?)",
                            (int(report["ts"]), str(report["trigger"]), int(bool(report["ok"])), text))  # fmt: skip
            return int(cur.lastrowid or 0)

    def record_event(self, ts: int, kind: str, message: str) -> None:
        """An operator-visible event: kill, fallback, rearm, restart, ..."""
        with self._write("record_event") as c:
            c.execute(
                "INSERT INTO events (ts, kind, message) VALUES (?, ?, ?)", (int(ts), kind, message)
            )
