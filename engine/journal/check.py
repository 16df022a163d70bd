"""Is this file a book the engine may open? Answered read-only, before anything writes to it.

Owns ``check_book``. Opening a file with ``Store`` already writes to it (the WAL switch rewrites
its header), so a foreign database or a damaged book would be changed before ``Store`` could
refuse it. ``check_book`` looks first, and never writes: it reads the header itself, then asks
SQLite on a read-only connection (``mode=ro``; ``immutable=1`` too when a WAL-mode file has no
``-wal`` beside it, so not even a ``-shm`` file is created). It refuses, with a ``StoreError``
of one line naming the file, what is wrong and what to do:

- not a regular file: a directory, a device, a FIFO, a link to nothing;
- an empty (0-byte) file: the store writes a header the moment it creates a book, so an empty
  file is a truncated book or an accident, and starting a fresh account in it would forget the
  positions it held;
- a file this user cannot read or write, or in a directory where the ``-wal`` and ``-shm``
  files cannot be created;
- not SQLite, truncated (shorter than its header says), damaged (``PRAGMA quick_check``);
- a newer schema (written by a newer program), another program's database (schema version 0
  with tables), a known version missing tables or columns that version has.

A missing file is fine: the engine creates a new book there. So is an empty SQLite database
(version 0, no table) and an older known version (``migrate`` brings it up to date).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

from engine.journal.schema import SCHEMA_VERSION, StoreError, expected_tables, one_line

_MAGIC = b"SQLite format 3\x00"
_HEADER = 100
_RESTORE = "restore it from a backup, or move it aside and pass another --db"
_OTHER = "pass another --db"



def check_book(path: str | Path) -> None:
    """Raise ``StoreError`` when ``path`` is not a book the engine may open; never write."""
    p = Path(path)
    name = str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise StoreError(
                f"{name}: symbolic link to a missing file (fix or remove the link, or {_OTHER})"
            ) from None
        _check_directory(p, new=True)
        return
    except OSError as exc:
        raise StoreError(
            f"{name}: cannot be examined: {exc.strerror or exc} "
            "(check the path and the permissions of its directories)"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{name}: is a directory, not a book file (pass a file path with --db)")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{name}: is not a regular file (pass the path of a book file with --db)")
    if st.st_size == 0:
        raise StoreError(
            f"{name}: empty file (0 bytes), not a book "
            f"(delete it to start a new book there, or {_OTHER})"
        )
    if not os.access(p, os.R_OK):
        raise StoreError(
            f"{name}: cannot be read: permission denied "
            f"(give this user read and write access to it, or {_OTHER})"
        )
    if not os.access(p, os.W_OK):
        raise StoreError(
            f"{name}: is read-only, and the engine writes every order and fill to it "
            f"(make it writable, or {_OTHER})"
        )
    _check_directory(p, new=False)
    wal = _check_header(p, name, st.st_size)
    _check_contents(p, name, immutable=wal and not Path(f"{name}-wal").exists())


def _check_directory(p: Path, *, new: bool) -> None:
    """The engine creates the book (new) or its ``-wal`` and ``-shm`` files in its directory."""
    parent = p.absolute().parent
    if not parent.is_dir():
        return  # created by whoever starts the engine (the console), or refused by it
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "a new book is created there" if new else "the book's -wal and -shm files live there"
        raise StoreError(
            f"{p}: directory {parent} is not writable, and {why} (make it writable, or {_OTHER})"
        )


def _check_header(p: Path, name: str, size: int) -> bool:
    """The first 100 bytes: SQLite's, whole; True when the file is in WAL mode."""
    try:
        with open(p, "rb") as f:
            head = f.read(_HEADER)
    except OSError as exc:
        raise StoreError(f"{name}: cannot be read: {exc.strerror or exc} ({_OTHER})") from None
    if not (head.startswith(_MAGIC) or _MAGIC.startswith(head)):
        raise StoreError(
            f"{name}: not an SQLite database, so not a book (move it aside, or {_OTHER})"
        )
    if len(head) < _HEADER:
        raise StoreError(
            f"{name}: truncated: {size} bytes, shorter than an SQLite header ({_RESTORE})"
        )
    raw_page = int.from_bytes(head[16:18], "big")
    page = 65536 if raw_page == 1 else raw_page
    if page < 512 or page & (page - 1):
        raise StoreError(f"{name}: damaged: page size {raw_page} in its header ({_RESTORE})")
    wal_path = Path(f"{name}-wal")
    wal_has_pages = wal_path.exists() and wal_path.stat().st_size > 0
    counter, valid_for = head[24:28], head[92:96]
    pages = int.from_bytes(head[28:32], "big")
    if not wal_has_pages:  # otherwise the -wal may hold what the file still lacks
        if size % page:
            raise StoreError(
                f"{name}: truncated: {size} bytes is not a whole number of {page}-byte pages "
                f"({_RESTORE})"
            )
        if counter == valid_for and pages * page > size:
            raise StoreError(
                f"{name}: truncated: {size} bytes, its header says {pages * page} bytes ({_RESTORE})"
            )
    return head[18] == 2 and head[19] == 2


def _check_contents(p: Path, name: str, *, immutable: bool) -> None:
    """quick_check, the schema version and the tables, on a read-only connection."""
    uri = f"file:{quote(str(p.absolute()))}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{name}: cannot be opened: {one_line(exc)} ({_OTHER})") from None
    try:
        with contextlib.closing(conn):
            result = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
            if result != "ok":
                detail = " ".join(result.replace("*** in database main ***", "").split())
                raise StoreError(f"{name}: damaged: {detail} ({_RESTORE})")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                r[0]: frozenset(c[1] for c in conn.execute(f"PRAGMA table_info({r[0]!r})"))
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                ).fetchall()
            }
    except sqlite3.OperationalError as exc:  # locked, I/O: the file may be fine
        raise StoreError(
            f"{name}: cannot be read: {one_line(exc)} (is another program using it? try again)"
        ) from None
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        raise StoreError(
            f"{name}: not a usable SQLite database: {one_line(exc)} ({_RESTORE})"
        ) from None
    _check_schema(name, version, tables)


def _check_schema(name: str, version: int, tables: dict[str, frozenset[str]]) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{name}: book schema version {version} is newer than this program's "
            f"{SCHEMA_VERSION} (upgrade multipar-console, or {_OTHER})"
        )
    if version < 0 or (version == 0 and tables):
        what = f"tables {', '.join(sorted(tables)[:5])}" if tables else f"schema version {version}"
        raise StoreError(
            f"{name}: SQLite database of another program ({what}), not a multipar-console book "
            f"({_OTHER})"
        )
    if version == 0:
        return  # an empty SQLite database: the engine creates the schema in it
    expected = expected_tables(version)
    missing = sorted(set(expected) - set(tables))
    if missing:
        raise StoreError(
            f"{name}: book schema version {version} without table(s) {', '.join(missing)}: "
            f"damaged, or not a multipar-console book ({_RESTORE})"
        )
    columns = sorted(f"{t}.{c}" for t, cols in expected.items() for c in cols - tables[t])
    if columns:
        raise StoreError(
            f"{name}: book schema version {version} without column(s) {', '.join(columns[:5])}: "
            f"damaged, or not a multipar-console book ({_RESTORE})"
        )
