"""One trading process per book: a lock file beside the SQLite book.

Owns ``BookLock``. ``BookLock.acquire(book)`` takes an exclusive ``flock`` on ``<book>.lock``
(mode 0600) and writes the holder's pid into it; a second process on the same book gets
``BookLockError`` naming the holder, and refuses to start (two engines on one book would
trade the same account twice). The lock belongs to the open file: it is released when the
holder exits, however it exits (``kill -9`` included), so a stale lock file never blocks a
restart. The process that will host the daemon takes it; today that is the console.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from feed.private import PrivateFileError, private_file


class BookLockError(Exception):
    """The book is in use (or its lock cannot be taken); one line naming the book."""


class BookLock:
    def __init__(self, book: Path, fd: int) -> None:
        self.book = book
        self.path = lock_path(book)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, book: Path) -> BookLock:
        path = lock_path(book)
        try:
            private_file(path, create=True)
            fd = os.open(path, os.O_RDWR)
        except (OSError, PrivateFileError) as exc:
            raise BookLockError(f"{book}: cannot open its lock {path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise BookLockError(
                f"{book}: in use by {who} (stop it first, or pass another --db)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise BookLockError(f"{book}: cannot lock {path}: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(book, fd)

    def release(self) -> None:
        """Give the book up (idempotent); exiting does the same."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> BookLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(book: Path) -> Path:
    return book.with_name(book.name + ".lock")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
