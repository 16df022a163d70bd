"""The notification outbox: messages for the operator, kept in the book until they are sent.

Owns ``Outbox``, one SQLite connection to the book's ``outbox`` table (docs/storage.md). The
daemon's notifier (console/daemon/notify.py) adds a row per message and channel, then sends
the due rows and marks each sent, to be retried, or failed. Rows survive a restart: what a
daemon could not send, the next one sends (at least once: a row sent just before a crash,
whose mark was lost, is sent again; its ``id`` lets a receiver drop the double).

The engine writes the same file at the same time, so every write is its own short
``BEGIN IMMEDIATE … COMMIT`` (nothing is ever held while a message is on the network) and a
lock held by the engine's commit is waited for ``BUSY_TIMEOUT_MS`` at most. Error text stored
here is one line with every URL redacted (``feed.private.redact_text``); the caller removes the
secrets it knows of (a bot token in a path) before it hands the text over. One ``Outbox`` is
used by the thread that opened it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

from engine.journal.files import create_book, make_private
from engine.journal.schema import StoreError, migrate, one_line
from feed.private import redact_text

BUSY_TIMEOUT_MS = 2000  # short: the notifier retries later; the engine's commits come first
MAX_TEXT = 8000  # characters of a message kept (Telegram itself takes 4096)
MAX_ERROR = 300  # characters of an error kept

PENDING, SENT, FAILED = "pending", "sent", "failed"


class OutboxRow(NamedTuple):
    """One message for one channel, as ``due`` returns it."""

    id: int
    ts_ns: int
    kind: str
    text: str
    channel: str
    attempts: int
    next_ns: int


def clean_error(error: str) -> str:
    """An error as stored: one line, URLs redacted, at most ``MAX_ERROR`` characters."""
    line = redact_text(" ".join(str(error).split()))
    return line if len(line) <= MAX_ERROR else line[: MAX_ERROR - 1] + "…"


class Outbox:
    """The book's ``outbox`` table over its own connection (WAL, busy timeout 2 s)."""

    def __init__(self, path: str | Path) -> None:
        """Open the book (created if missing, migrated if older, as ``Store`` does)."""
        self.path = Path(path)
        name = str(self.path)
        if not self.path.parent.is_dir():
            raise StoreError(f"{name}: directory {self.path.parent} does not exist")
        if not self.path.exists():
            create_book(self.path)
        make_private(self.path)
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                name, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{name}: cannot open: {one_line(exc)}") from None
        try:
            c = self._conn
            c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            c.execute("PRAGMA journal_mode = WAL")  # the book's mode already; no-op then
            c.execute("PRAGMA synchronous = FULL")  # as the Store: a queued message survives
            make_private(self.path)
            migrate(c, name)
        except StoreError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"{name}: cannot open the outbox: {one_line(exc)}") from None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self, op: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: outbox {op} on a closed outbox")
        return self._conn

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One short write transaction; every sqlite error becomes a one-line StoreError."""
        conn = self._db(op)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # the original error says more
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: outbox {op} failed: {one_line(exc)}") from None
            raise

    def _read(self, op: str, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            return self._db(op).execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: outbox {op} failed: {one_line(exc)}") from None

    # ---- writes -------------------------------------------------------------------------

    def add(self, kind: str, text: str, channels: Iterable[str], ts_ns: int) -> list[int]:
        """One pending row per channel, due at once; returns their ids (one transaction)."""
        text = text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
        with self._write("add") as c:
            return [
                int(
                    c.execute(
                        "INSERT INTO outbox (ts_ns, kind, text, channel, status, attempts, "
                        "next_ns) VALUES (?, ?, ?, ?, 'pending', 0, ?)",
                        (ts_ns, kind, text, channel, ts_ns),
                    ).lastrowid
                    or 0
                )
                for channel in channels
            ]

    def mark_sent(self, id: int, now_ns: int) -> None:
        """The row was delivered (one more attempt)."""
        with self._write("mark_sent") as c:
            c.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_ns = ? "
                "WHERE id = ? AND status = 'pending'",
                (now_ns, id),
            )

    def mark_retry(self, id: int, now_ns: int, next_ns: int, error: str) -> None:
        """The attempt failed and may succeed later: due again at ``next_ns``."""
        del now_ns  # the attempt's time: kept in the signature for symmetry and logs
        with self._write("mark_retry") as c:
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_ns = ?, last_error = ? "
                "WHERE id = ? AND status = 'pending'",
                (next_ns, clean_error(error), id),
            )

    def mark_failed(self, id: int, error: str) -> None:
        """The attempt failed and no retry can help (or the retries ran out)."""
        with self._write("mark_failed") as c:
            c.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? "
                "WHERE id = ? AND status = 'pending'",
                (clean_error(error), id),
            )

    def prune(self, before_ns: int) -> int:
        """Delete sent and failed rows older than ``before_ns``; returns how many."""
        with self._write("prune") as c:
            cur = c.execute(
                "DELETE FROM outbox WHERE status IN ('sent', 'failed') AND ts_ns < ?", (before_ns,)
            )
            return cur.rowcount

    # ---- reads --------------------------------------------------------------------------

    def due(self, now_ns: int, limit: int, channel: str | None = None) -> list[OutboxRow]:
        """Pending rows due by ``now_ns`` (of one channel, or all), oldest first."""
        where = "status = 'pending' AND next_ns <= ?" + (" AND channel = ?" if channel else "")
        params: tuple[object, ...] = (now_ns, channel, limit) if channel else (now_ns, limit)
        rows = self._read(
            "due",
            "SELECT id, ts_ns, kind, text, channel, attempts, next_ns FROM outbox "
            f"WHERE {where} ORDER BY id LIMIT ?",
            params,
        )
        return [OutboxRow(*r) for r in rows]  # type: ignore[arg-type]

    def next_due_ns(self, channel: str | None = None) -> int | None:
        """When the next pending row (of one channel, or any) is due; None when none is."""
        where = "status = 'pending'" + (" AND channel = ?" if channel else "")
        params: tuple[object, ...] = (channel,) if channel else ()
        [(value,)] = self._read(
            "next_due_ns", f"SELECT MIN(next_ns) FROM outbox WHERE {where}", params
        )
        return None if value is None else int(value)  # type: ignore[call-overload]

    def pending_count(self, channel: str | None = None) -> int:
        """Rows not yet sent nor failed."""
        where = "status = 'pending'" + (" AND channel = ?" if channel else "")
        params: tuple[object, ...] = (channel,) if channel else ()
        [(n,)] = self._read("pending_count", f"SELECT COUNT(*) FROM outbox WHERE {where}", params)
        return int(n)  # type: ignore[call-overload]

    def rows(self) -> list[dict[str, object]]:
        """Every row, oldest first (for tests and inspection)."""
        cols = ("id", "ts_ns", "kind", "text", "channel", "status", "attempts", "next_ns")
        cols += ("sent_ns", "last_error")
        got = self._read("rows", f"SELECT {', '.join(cols)} FROM outbox ORDER BY id", ())
        return [dict(zip(cols, r, strict=True)) for r in got]
