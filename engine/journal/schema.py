"""The book's schema: the SQLite tables and the migrations between their versions.

Owns ``SCHEMA_VERSION``, one migration function per version (append, never edit a shipped
step), ``migrate``, which brings a file to the current version in one write transaction, and
``expected_tables``, the tables and columns a book of each version has (built by running the
migrations in memory, so it never disagrees with them). docs/storage.md describes every table.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing, suppress
from types import MappingProxyType

from engine.core.ports import JournalError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7


class StoreError(JournalError):
    """The store cannot be opened or written; the message is one line naming the file."""


def one_line(exc: BaseException) -> str:
    """An exception as one line (SQLite's messages can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


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


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Each ``;``-separated statement of ``script``, inside the caller's transaction (SQLite's
    ``executescript`` would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _run(conn, _SCHEMA_V1)


_ORDERS_V2 = """
ALTER TABLE orders ADD COLUMN filled_qty  REAL    NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN avg_price   REAL    NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN fees        REAL    NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN updated_ts  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN message     TEXT    NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN stop_loss   REAL    NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN take_profit REAL    NOT NULL DEFAULT 0;
CREATE INDEX orders_open ON orders (status) WHERE status NOT IN ('filled', 'rejected', 'cancelled');
UPDATE orders SET
    filled_qty = qty,
    avg_price = COALESCE((SELECT SUM(f.qty * f.price) / SUM(f.qty) FROM fills f WHERE f.order_id = orders.order_id), 0),
    fees = COALESCE((SELECT SUM(f.fee) FROM fills f WHERE f.order_id = orders.order_id), 0),
    updated_ts = ts
WHERE status = 'filled'
"""


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Orders are journaled before they are sent: they carry their own fill state, the
    reason a venue refused them, and an entry's protective levels."""
    _run(conn, _ORDERS_V2)


_OUTBOX_V3 = """
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    ts_ns      INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_ns    INTEGER NOT NULL,
    sent_ns    INTEGER,
    last_error TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox (channel, next_ns) WHERE status = 'pending'
"""


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """The notification outbox: one row per message and channel, sent by the daemon
    (console/daemon/notify.py) with retries; rows survive a restart until sent or failed."""
    _run(conn, _OUTBOX_V3)


_ORDERS_V4 = """
ALTER TABLE orders ADD COLUMN order_type    TEXT NOT NULL DEFAULT 'market' CHECK (order_type IN ('market', 'stop'));
ALTER TABLE orders ADD COLUMN trigger_price REAL NOT NULL DEFAULT 0
"""


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    """Protective stops resting at the exchange: an order's type (``market`` or ``stop``) and a
    stop's trigger price. Every order of an older book was a market order."""
    _run(conn, _ORDERS_V4)


_RECONCILIATIONS_V5 = """
CREATE TABLE reconciliations (
    id      INTEGER PRIMARY KEY,
    ts      INTEGER NOT NULL,
    trigger TEXT    NOT NULL,
    ok      INTEGER NOT NULL CHECK (ok IN (0, 1)),
    report  TEXT    NOT NULL
)
"""


def _migrate_to_5(conn: sqlite3.Connection) -> None:
    """Reconciliations of the book with the exchange (live): one row per check, its report as
    JSON (engine/core/reconcile_view.py); the operator's choices are written into it."""
    conn.execute(_RECONCILIATIONS_V5)


_OPERATOR_V6 = """
ALTER TABLE pair_modes ADD COLUMN before_halt TEXT CHECK (before_halt IN ('ACTIVE', 'PAUSED', 'REDUCING'));
CREATE TABLE entries (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    stopped INTEGER NOT NULL CHECK (stopped IN (0, 1)),
    reason  TEXT    NOT NULL,
    ts      INTEGER NOT NULL
);
CREATE TABLE trading_day (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    start_ts  INTEGER NOT NULL,
    equity    REAL    NOT NULL,
    marked_ts INTEGER NOT NULL
)
"""


def _migrate_to_6(conn: sqlite3.Connection) -> None:
    """What the operator set and a restart must keep: each HALTED pair's mode before its halt
    (re-arm restores it; NULL in an older book's rows: re-armed ACTIVE, as before), the global
    stop of new entries (one row), and the trading day's start and its equity (one row), so the
    day's PnL is the same after a crash."""
    _run(conn, _OPERATOR_V6)


_RELOADS_V7 = """
CREATE TABLE reloads (
    id      INTEGER PRIMARY KEY,
    ts      INTEGER NOT NULL,
    trigger TEXT    NOT NULL,
    version INTEGER NOT NULL,
    digest  TEXT    NOT NULL,
    ok      INTEGER NOT NULL CHECK (ok IN (0, 1)),
    diff    TEXT    NOT NULL,
    result  TEXT    NOT NULL
)
"""


def _migrate_to_7(conn: sqlite3.Connection) -> None:
    """The safe list's history: one row per start and per reload (its trigger, the config version
    in force after it, the text's digest, whether it was applied, the diff as JSON and the
    result). Append-only; written by the daemon (engine/journal/reloads.py)."""
    conn.execute(_RELOADS_V7)


# MIGRATIONS[n] turns a version n-1 file into version n; append, never edit a shipped step.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
    5: _migrate_to_5,
    6: _migrate_to_6,
    7: _migrate_to_7,
}
assert max(MIGRATIONS) == SCHEMA_VERSION


@functools.cache
def expected_tables(version: int) -> Mapping[str, frozenset[str]]:
    """Table name -> column names of a book at ``version`` (1 … SCHEMA_VERSION)."""
    if version not in MIGRATIONS:
        raise ValueError(f"no schema version {version}")
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        for step in range(1, version + 1):
            MIGRATIONS[step](conn)
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return MappingProxyType(
            {
                name: frozenset(r[1] for r in conn.execute(f"PRAGMA table_info({name!r})"))
                for name in names
            }
        )


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
