"""The book's files: created whole, and private (0600) with its -wal and -shm."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from engine.journal.schema import StoreError, migrate, one_line
from feed.private import PrivateFileError, private_file

log = logging.getLogger("engine.journal.store")



def create_book(path: Path) -> None:
    """A new book appears whole: built beside its path (0600, schema written), then linked
    into place, so a crash never leaves an empty file where a book should be (the start
    check refuses an empty file: it cannot tell it from a truncated book)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.new")
    try:
        private_file(tmp, create=True)
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            migrate(conn, str(path))
        finally:
            conn.close()
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    except (OSError, sqlite3.Error, PrivateFileError) as exc:
        raise StoreError(f"{path}: cannot create the book: {one_line(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def make_private(path: Path) -> None:
    """The book (created if missing), its -wal and -shm (if there): 0600, tightened with a
    log line when wider (docs/storage.md); StoreError naming the file when that fails."""
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if note := private_file(f, create=f == path):
                log.warning("store %s", note)
        except PrivateFileError as exc:
            raise StoreError(str(exc)) from None
