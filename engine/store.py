"""The engine's durable state: one SQLite file holding the account, open positions, orders,
fills, every risk decision, pair modes, the equity curve and operator-visible events.

Owns the schema (versioned with ``PRAGMA user_version``, migrated on open), the durability
settings (WAL, ``synchronous=FULL``) and the idempotency rules: a decision key is stored once,
a client order id is executed once. The store persists what the portfolio computes; it does no
PnL math. Every write method commits before it returns, so the caller can publish afterwards.
See docs/storage.md.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from engine.models import Decision, Fill, PairMode, Position, Side

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000  # the console reads (and, on a kill fallback, writes) while the engine runs

ORDER_STATUS_FILLED = "filled"


class StoreError(Exception):
    """The store cannot be opened or written; the message is one line naming the file."""


_SCHEMA_V1 = """
CREATE TABLE account (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    capital     REAL    NOT NULL,
    cash        REAL    NOT NULL,
    realised    REAL    NOT NULL,
    fees        REAL    NOT NULL,
    updated_ts  INTEGER NOT NULL
);
CREATE TABLE positions (
    symbol      TEXT    PRIMARY KEY,
    qty         REAL    NOT NULL CHECK (qty <> 0),
    entry       REAL    NOT NULL,
    stop_loss   REAL    NOT NULL,
    take_profit REAL    NOT NULL,
    realised    REAL    NOT NULL,
    fees        REAL    NOT NULL,
    opened_ts   INTEGER NOT NULL,
    updated_ts  INTEGER NOT NULL
);
CREATE TABLE orders (
    order_id     TEXT    PRIMARY KEY,
    decision_key TEXT,
    symbol       TEXT    NOT NULL,
    side         TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    qty          REAL    NOT NULL,
    status       TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    ts           INTEGER NOT NULL
);
CREATE INDEX orders_decision_key ON orders (decision_key);
CREATE TABLE fills (
    fill_id  TEXT    PRIMARY KEY,
    order_id TEXT    NOT NULL REFERENCES orders (order_id),
    symbol   TEXT    NOT NULL,
    side     TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    qty      REAL    NOT NULL,
    price    REAL    NOT NULL,
    fee      REAL    NOT NULL,
    ts       INTEGER NOT NULL,
    reason   TEXT    NOT NULL
);
CREATE INDEX fills_order_id ON fills (order_id);
CREATE INDEX fills_symbol_ts ON fills (symbol, ts);
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL UNIQUE,
    symbol      TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    approved    INTEGER NOT NULL CHECK (approved IN (0, 1)),
    qty         REAL,
    price       REAL,
    signal_type TEXT    NOT NULL,
    confidence  REAL,
    entry       REAL,
    stop_loss   REAL,
    take_profit REAL,
    reasoning   TEXT    NOT NULL,
    signal_ts   INTEGER NOT NULL,
    checks_json TEXT    NOT NULL
);
CREATE INDEX decisions_symbol_ts ON decisions (symbol, ts);
CREATE INDEX decisions_ts ON decisions (ts);
CREATE TABLE pair_modes (
    symbol TEXT    PRIMARY KEY,
    mode   TEXT    NOT NULL CHECK (mode IN ('ACTIVE', 'PAUSED', 'REDUCING', 'HALTED')),
    reason TEXT    NOT NULL,
    ts     INTEGER NOT NULL
);
CREATE TABLE equity (
    id         INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,
    equity     REAL    NOT NULL,
    cash       REAL    NOT NULL,
    exposure   REAL    NOT NULL,
    realised   REAL    NOT NULL,
    unrealised REAL    NOT NULL,
    fees       REAL    NOT NULL
);
CREATE INDEX equity_ts ON equity (ts);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    ts      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX events_ts ON events (ts);
"""

_TABLES_V1 = frozenset(
    {"account", "positions", "orders", "fills", "decisions", "pair_modes", "equity", "events"}
)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)


# MIGRATIONS[n] turns a version n-1 file into version n; append, never edit a shipped step.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_to_1}
assert max(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the open file to SCHEMA_VERSION in one write transaction; return the version found."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found == SCHEMA_VERSION:
        return found  # the usual open: no write lock, so it never waits for a running engine
    conn.execute("BEGIN IMMEDIATE")  # re-read inside the lock: two processes may open a new file
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: store schema version {found} is newer than this program's "
                f"{SCHEMA_VERSION} (upgrade multipar-console or use another store file)"
            )
        if found == 0:
            foreign = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            if foreign:
                raise StoreError(
                    f"{path}: SQLite file with tables {', '.join(sorted(foreign)[:5])} is not a "
                    "multipar-console store (pass another store path)"
                )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version}")  # pragma takes no parameters
        conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):  # the original error says more
            conn.execute("ROLLBACK")
        raise
    if found < SCHEMA_VERSION:
        log.info("store %s migrated from schema %d to %d", path, found, SCHEMA_VERSION)
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _finite(what: str, x: float) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise StoreError(f"{what} must be a finite number, got {x!r}")
    return float(x)


def _side(x: Side | str) -> str:
    try:
        return Side(x).value
    except ValueError:
        raise StoreError(f"side must be 'buy' or 'sell', got {x!r}") from None


class Store:
    """One SQLite connection to one store file. Not shared between threads."""

    def __init__(self, path: str | Path, *, verify: bool = True) -> None:
        """Open (creating the schema if the file is new). ``verify`` runs ``PRAGMA quick_check``
        so a damaged file is refused at start rather than at the first fill."""
        self.path = Path(path)
        self.equity_dropped = 0  # equity points refused for a non-finite value
        name = str(self.path)
        if not self.path.parent.is_dir():
            raise StoreError(
                f"{name}: directory {self.path.parent} does not exist (create it first)"
            )
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{name}: not a regular file (pass the path of a store file)")
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves
            self._conn = sqlite3.connect(name, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{name}: cannot open: {_one_line(exc)}") from None
        try:
            self._configure(verify)
            migrate(self._conn, name)
        except StoreError:
            self._conn.close()
            raise
        except sqlite3.OperationalError as exc:  # locked, busy, unreadable: the file may be fine
            self._conn.close()
            raise StoreError(f"{name}: cannot open store: {_one_line(exc)}") from None
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(
                f"{name}: not a usable SQLite store ({_one_line(exc)}); "
                "move it aside and restart, or pass another store path"
            ) from None

    def _configure(self, verify: bool) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # still durable (rollback journal), but readers may now wait on the writer
            log.warning(
                "store %s: journal_mode is %s, not wal (filesystem without shm?)", self.path, mode
            )
        c.execute("PRAGMA synchronous = FULL")  # fsync every commit: a fill must survive power loss
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
            raise StoreError(f"{self.path}: {op} failed: {_one_line(exc)}") from None
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
                raise StoreError(f"{self.path}: {op} failed: {_one_line(exc)}") from None
            raise

    def _read(self, op: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._db(op)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {op} failed: {_one_line(exc)}") from None

    def schema_version(self) -> int:
        return int(self._read("schema_version", "PRAGMA user_version")[0][0])

    # ---- account ------------------------------------------------------------------------

    def init_account(self, capital: float, ts: int) -> None:
        """Create the account row with cash = capital, once; later calls change nothing."""
        capital = _finite("capital", capital)
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

    def record_decision(self, d: Decision) -> bool:
        """Store a decision, approved or not. False if its key is already stored (idempotent)."""
        s = d.signal
        checks = json.dumps([[c.name, bool(c.ok), c.reason] for c in d.checks])
        with self._write("record_decision") as c:
            cur = c.execute(
                "INSERT INTO decisions (key, symbol, ts, action, approved, qty, price, signal_type, "
                "confidence, entry, stop_loss, take_profit, reasoning, signal_ts, checks_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (
                    d.key,
                    d.symbol,
                    int(d.ts),
                    d.action,
                    int(bool(d.approved)),
                    d.qty,
                    d.price,
                    str(s.type),
                    s.confidence,
                    s.entry,
                    s.stop_loss,
                    s.take_profit,
                    s.reasoning,
                    int(s.ts),
                    checks,
                ),
            )
            return cur.rowcount == 1

    def has_decision(self, key: str) -> bool:
        return bool(self._read("has_decision", "SELECT 1 FROM decisions WHERE key = ?", (key,)))

    def recent_decisions(self, symbol: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, in the shape of the ``decision`` wire message (without v/seq)."""
        if limit <= 0:
            return []
        cols = (
            "id, key, symbol, ts, action, approved, qty, price, signal_type, confidence, entry, "
            "stop_loss, take_profit, reasoning, signal_ts, checks_json"
        )
        if symbol is None:
            rows = self._read(
                "recent_decisions",
                f"SELECT {cols} FROM decisions ORDER BY ts DESC, id DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._read(
                "recent_decisions",
                f"SELECT {cols} FROM decisions WHERE symbol = ? ORDER BY ts DESC, id DESC LIMIT ?",
                (symbol, limit),
            )
        out = []
        for (
            did,
            key,
            sym,
            ts,
            action,
            approved,
            qty,
            price,
            stype,
            conf,
            entry,
            sl,
            tp,
            reasoning,
            sts,
            checks_json,
        ) in rows:
            out.append(
                {
                    "id": did,
                    "key": key,
                    "symbol": sym,
                    "ts": ts,
                    "action": action,
                    "approved": bool(approved),
                    "qty": qty,
                    "price": price,
                    "signal": {
                        "type": stype,
                        "confidence": conf,
                        "entry": entry,
                        "stop_loss": sl,
                        "take_profit": tp,
                        "reasoning": reasoning,
                        "ts": sts,
                    },
                    "checks": [[n, bool(ok), r] for n, ok, r in json.loads(checks_json)],
                }
            )
        return out

    # ---- executions ---------------------------------------------------------------------

    def record_execution(
        self, fill: Fill, position: Position, account: dict[str, float], decision_key: str | None
    ) -> bool:
        """Store one filled order atomically: the order, its fill, the pair's position after it
        (deleted when flat) and the account's cash/realised/fees after it.

        Returns False and changes nothing if ``fill.order_id`` is already stored, so a restart
        that replays a decision never executes it twice.
        """
        side = _side(fill.side)
        qty = _finite("fill qty", fill.qty)
        price = _finite("fill price", fill.price)
        fee = _finite("fill fee", fill.fee)
        if qty <= 0 or price <= 0:
            raise StoreError(
                f"fill {fill.fill_id}: qty and price must be > 0, got {qty!r} @ {price!r}"
            )
        if position.symbol != fill.symbol:
            raise StoreError(
                f"fill {fill.fill_id}: position symbol {position.symbol!r} != fill symbol {fill.symbol!r}"
            )
        try:
            cash = _finite("account cash", account["cash"])
            realised = _finite("account realised", account["realised"])
            fees = _finite("account fees", account["fees"])
        except KeyError as exc:
            raise StoreError(
                f"account dict has no {exc.args[0]!r} (needs cash, realised, fees)"
            ) from None
        pos_vals = [
            _finite(f"position {n}", getattr(position, n))
            for n in ("qty", "entry", "stop_loss", "take_profit", "realised", "fees")
        ]
        ts = int(fill.ts)
        with self._write("record_execution") as c:
            if c.execute("SELECT 1 FROM orders WHERE order_id = ?", (fill.order_id,)).fetchone():
                return False  # the transaction commits nothing
            c.execute(
                "INSERT INTO orders (order_id, decision_key, symbol, side, qty, status, reason, ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fill.order_id,
                    decision_key,
                    fill.symbol,
                    side,
                    qty,
                    ORDER_STATUS_FILLED,
                    fill.reason,
                    ts,
                ),
            )
            c.execute(
                "INSERT INTO fills (fill_id, order_id, symbol, side, qty, price, fee, ts, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fill.fill_id, fill.order_id, fill.symbol, side, qty, price, fee, ts, fill.reason),
            )
            if position.qty == 0.0:
                # flat: the pair's realised PnL lives on in account.realised and in the fills
                c.execute("DELETE FROM positions WHERE symbol = ?", (fill.symbol,))
            else:
                c.execute(
                    "INSERT INTO positions (symbol, qty, entry, stop_loss, take_profit, realised, "
                    "fees, opened_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (symbol) DO UPDATE SET qty = excluded.qty, entry = excluded.entry, "
                    "stop_loss = excluded.stop_loss, take_profit = excluded.take_profit, "
                    "realised = excluded.realised, fees = excluded.fees, "
                    "opened_ts = excluded.opened_ts, updated_ts = excluded.updated_ts",
                    (fill.symbol, *pos_vals, int(position.opened_ts), ts),
                )
            cur = c.execute(
                "UPDATE account SET cash = ?, realised = ?, fees = ?, updated_ts = ? WHERE id = 1",
                (cash, realised, fees, ts),
            )
            if cur.rowcount != 1:
                raise StoreError(
                    f"{self.path}: record_execution before init_account (no account row)"
                )
        return True

    def has_order(self, order_id: str) -> bool:
        return bool(self._read("has_order", "SELECT 1 FROM orders WHERE order_id = ?", (order_id,)))

    def load_positions(self) -> dict[str, Position]:
        """Open positions only (a flat pair has no row)."""
        rows = self._read(
            "load_positions",
            "SELECT symbol, qty, entry, stop_loss, take_profit, realised, fees, opened_ts "
            "FROM positions ORDER BY symbol",
        )
        return {r[0]: Position(*r) for r in rows}

    def fills(self, symbol: str | None = None) -> list[Fill]:
        """Oldest first (insertion order), so replaying them rebuilds the account."""
        cols = "fill_id, order_id, symbol, side, qty, price, fee, ts, reason"
        if symbol is None:
            rows = self._read("fills", f"SELECT {cols} FROM fills ORDER BY rowid")
        else:
            rows = self._read(
                "fills", f"SELECT {cols} FROM fills WHERE symbol = ? ORDER BY rowid", (symbol,)
            )
        return [
            Fill(f, o, s, Side(side), q, p, fee, ts, r) for f, o, s, side, q, p, fee, ts, r in rows
        ]

    def orders(self) -> list[dict[str, Any]]:
        """Every order, oldest first."""
        rows = self._read(
            "orders",
            "SELECT order_id, decision_key, symbol, side, qty, status, reason, ts FROM orders ORDER BY rowid",
        )
        keys = ("order_id", "decision_key", "symbol", "side", "qty", "status", "reason", "ts")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # ---- pair modes ---------------------------------------------------------------------

    def set_mode(self, symbol: str, mode: PairMode, reason: str, ts: int) -> None:
        self.set_modes({symbol: mode}, reason, ts)

    def set_modes(self, modes: dict[str, PairMode], reason: str, ts: int) -> None:
        """Set several pairs' modes in one transaction (kill: all HALTED or none)."""
        try:
            rows = [(sym, PairMode(m).value, reason, int(ts)) for sym, m in modes.items()]
        except ValueError as exc:
            raise StoreError(
                f"set_modes: {_one_line(exc)} (known: ACTIVE, PAUSED, REDUCING, HALTED)"
            ) from None
        with self._write("set_modes") as c:
            c.executemany(
                "INSERT INTO pair_modes (symbol, mode, reason, ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (symbol) DO UPDATE SET mode = excluded.mode, reason = excluded.reason, "
                "ts = excluded.ts",
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
                _finite(n, v)
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

    def equity_curve(self, since_ts: int = 0) -> list[dict[str, Any]]:
        """Equity points with ts >= since_ts, oldest first."""
        rows = self._read(
            "equity_curve",
            "SELECT ts, equity, cash, exposure, realised, unrealised, fees FROM equity "
            "WHERE ts >= ? ORDER BY ts, id",
            (int(since_ts),),
        )
        keys = ("ts", "equity", "cash", "exposure", "realised", "unrealised", "fees")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def record_event(self, ts: int, kind: str, message: str) -> None:
        """An operator-visible event: kill, fallback, rearm, restart, ..."""
        with self._write("record_event") as c:
            c.execute(
                "INSERT INTO events (ts, kind, message) VALUES (?, ?, ?)", (int(ts), kind, message)
            )

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        if limit <= 0:
            return []
        rows = self._read(
            "recent_events",
            "SELECT ts, kind, message FROM events ORDER BY ts DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [{"ts": ts, "kind": k, "message": m} for ts, k, m in rows]
