"""The book's ``reloads`` table: every reload of the safe list, applied or refused.

Owns ``record`` (one row: when, trigger, config version after it, the text's digest, applied or
not, the diff as JSON, the result line), ``config_version`` (the version in force: 1 + the
reloads applied in this book) and ``recent``. Each call opens its own short connection (WAL,
busy timeout 2 s; the book is migrated if older, as the ``Store`` does): the daemon writes here
a few times a day at most, beside the engine's connection. Append-only. docs/storage.md.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from engine.journal.files import create_book, make_private
from engine.journal.schema import StoreError, migrate, one_line

BUSY_TIMEOUT_MS = 2000


def _open(path: Path, create: bool) -> sqlite3.Connection | None:
    name = str(path)
    if not path.exists():
        if not create:
            return None
        create_book(path)
    make_private(path)
    try:
        conn = sqlite3.connect(name, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn, name)
    except sqlite3.Error as exc:
        raise StoreError(f"{name}: cannot record the reload: {one_line(exc)}") from None
    return conn


def record(path: str | Path, ts_ms: int, trigger: str, version: int, digest: str, ok: bool,
           diff: dict[str, Any], result: str) -> None:  # fmt: skip
    conn = _open(Path(path), create=True)
    assert conn is not None
    with closing(conn):
        try:
            conn.execute(
                "INSERT INTO reloads (ts, trigger, version, digest, ok, diff, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts_ms, trigger[:64], version, digest[:64], int(ok), json.dumps(diff, sort_keys=True), result[:4000]),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot record the reload: {one_line(exc)}") from None


def config_version(path: str | Path) -> int:
    """1 + the reloads applied in this book (1 for a new book)."""
    conn = _open(Path(path), create=False)
    if conn is None:
        return 1
    with closing(conn):
        try:
            row = conn.execute("SELECT MAX(version) FROM reloads WHERE ok = 1").fetchone()
        except sqlite3.Error:
            return 1
    return int(row[0]) if row and row[0] else 1


def recent(path: str | Path, n: int = 20) -> list[dict[str, Any]]:
    """The latest ``n`` rows, newest first."""
    conn = _open(Path(path), create=False)
    if conn is None:
        return []
    with closing(conn):
        rows = conn.execute(
            "SELECT ts, trigger, version, digest, ok, diff, result FROM reloads ORDER BY id DESC LIMIT ?", (n,)
        ).fetchall()
    keys = ("ts", "trigger", "version", "digest", "ok", "diff", "result")
    return [{**dict(zip(keys, r, strict=True)), "ok": bool(r[4]), "diff": json.loads(r[5])} for r in rows]
