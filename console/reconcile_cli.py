"""``multipar-console reconcile``: the book's latest reconciliation with the exchange, for an
operator without the console.

Owns ``reconcile_main``. It reads the book read-only (an SQLite ``mode=ro`` connection, and
``immutable`` when a WAL-mode file has no ``-wal`` beside it, as ``engine.journal.check``
does): it never creates, migrates or writes the book, so it is safe beside a running engine.
It prints the report as text (one block per pair: the book beside the exchange, what was
applied, why the pair waits, the orders that are not ours, the choice made) or, with
``--json``, the report's dict (``ReconcileReport.to_dict``) plus ``age_s``.

Exit codes: 0 nothing waits; 1 a pair waits for the operator's choice, or the last
reconciliation could not ask the exchange; 2 no book, no reconciliation in it, or bad input
(one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from console.options import APP_NAME, default_db_path
from console.reconcile_text import report_text
from engine.core.reconcile_view import ReconcileReport
from engine.journal.reads import BookReads
from engine.journal.schema import StoreError, one_line

EXIT_SETTLED, EXIT_WAITING, EXIT_NO_REPORT = 0, 1, 2
PROG = f"{APP_NAME} reconcile"
_MAGIC = b"SQLite format 3\x00"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        self.exit(EXIT_NO_REPORT, f"{PROG}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="The book's latest reconciliation with the exchange (live books): per "
        "pair the book beside the exchange, what was applied, what waits for a choice, the "
        "orders that are not ours. Reads the book only. Exit 0 nothing waits, 1 a pair waits "
        "for a choice or the exchange could not be asked, 2 no book or no reconciliation.",
    )
    p.add_argument(
        "--db", metavar="PATH", type=Path, help=f"the book (default: {default_db_path()})"
    )
    p.add_argument("--json", action="store_true", help="one JSON object: the report and age_s")
    return p


class _ReadOnlyBook(BookReads):
    """``BookReads`` over a read-only connection: the engine's own queries, no write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        wal = _wal_mode(path)
        immutable = wal and not Path(f"{path}-wal").exists()  # no reader's -shm is created
        uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            self._conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot be opened: {one_line(exc)}") from None

    def _read(self, op: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {op} failed: {one_line(exc)}") from None

    def has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(self._read("tables", sql, (name,)))

    def close(self) -> None:
        self._conn.close()


def _wal_mode(path: Path) -> bool:
    """The file's header says WAL (``StoreError`` when it is no SQLite file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not head.startswith(_MAGIC) or len(head) < 100:
        raise StoreError(f"{path}: not an SQLite database, so not a book (pass another --db)")
    return head[18] == 2 and head[19] == 2


def latest_report(path: Path) -> tuple[int, dict[str, Any]]:
    """The newest reconciliation of the book at ``path`` (its id and dict); ``StoreError``
    with one line when there is no book or no reconciliation in it."""
    if not path.exists():
        raise StoreError(f"{path}: no book there (pass its path with --db)")
    if not path.is_file():
        raise StoreError(f"{path}: not a book file (pass the path of a book file with --db)")
    book = _ReadOnlyBook(path)
    try:
        latest = book.latest_reconciliation() if book.has_table("reconciliations") else None
    finally:
        book.close()
    if latest is None:
        raise StoreError(
            f"{path}: no reconciliation in this book (a live engine reconciles at start)"
        )
    rid, d = latest
    if not isinstance(d, dict):
        raise StoreError(f"{path}: reconciliation {rid} is not a report (damaged?)")
    return rid, d


def reconcile_main(argv: Sequence[str], now: float | None = None) -> int:
    args = build_parser().parse_args(list(argv))
    path = Path(args.db or default_db_path()).expanduser().absolute()
    now_s = time.time() if now is None else now
    try:
        _, d = latest_report(path)
        report = ReconcileReport.from_dict(d)
        if args.json:
            text = json.dumps({**d, "age_s": round(max(0.0, now_s - report.ts / 1000.0), 1)})
        else:
            text = report_text(report, now_s)
    except StoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_NO_REPORT
    except (TypeError, ValueError) as exc:  # a report this program cannot read
        print(f"{PROG}: {path}: unreadable reconciliation: {one_line(exc)}", file=sys.stderr)
        return EXIT_NO_REPORT
    print(text)
    return EXIT_WAITING if report.waiting or not report.ok else EXIT_SETTLED
