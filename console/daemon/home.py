"""Where a book's daemon lives, and how a console finds it.

Owns ``BookHome``: one private directory (mode 0700) per book, at
``$XDG_RUNTIME_DIR/multipar-console/book-<hash>`` (``/tmp/multipar-console-$UID/book-<hash>``
when that is unset or unusable), the hash naming the book's absolute path. It holds the
daemon's sockets (``feed.pub feed.rep engine.pub engine.cmd daemon.pub daemon.ctl``), the logs
(``daemon.log feed.log engine.log console.log``), ``pids.json``, the validated copy of the safe
list the engine runs on, and ``daemon.json``: the running daemon's pid, book, mode and
endpoints, written (0600, atomically) once its control socket is bound and removed when it
stops. ``find_daemon(book)`` reads it back and checks the pid is alive, so a daemon killed with
``kill -9`` leaves nothing that looks like a running one. The lock that makes the daemon the
only process trading the book sits beside the book itself (``booklock.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.rundir import (
    APP_DIR,
    MAX_IPC_PATH,
    Endpoints,
    LogFiles,
    RunDirError,
    _usable_private_dir,
    runs_root,
)

DAEMON_FILE = "daemon.json"
HOME_PREFIX = "book-"
DAEMON_FILE_VERSION = 1


def book_key(book: Path) -> str:
    """A short stable name for a book: its absolute path hashed (the path may be long)."""
    real = os.path.realpath(Path(book).expanduser().absolute())
    return hashlib.sha256(real.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class BookHome:
    path: Path

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints.ipc(self.path)

    @property
    def logs(self) -> LogFiles:
        return LogFiles(self.path / "feed.log", self.path / "engine.log", self.path / "console.log")

    @property
    def daemon_log(self) -> Path:
        return self.path / "daemon.log"

    @property
    def pids(self) -> Path:
        return self.path / "pids.json"

    @property
    def daemon_file(self) -> Path:
        return self.path / DAEMON_FILE

    @classmethod
    def for_book(cls, book: Path, *, root: Path | None = None, create: bool = True) -> BookHome:
        """The book's home under ``root`` (default ``runs_root()``); made 0700 when ``create``."""
        base = root if root is not None else runs_root()
        path = base / f"{HOME_PREFIX}{book_key(book)}"
        if len(str(path / "daemon.ctl")) + len("ipc://") >= MAX_IPC_PATH:
            base = _usable_private_dir(Path(f"/tmp/{APP_DIR}-{os.getuid()}"), create=True)
            path = base / f"{HOME_PREFIX}{book_key(book)}"
        if create:
            _usable_private_dir(path, create=True)
        return cls(path)

    @classmethod
    def at(cls, path: Path, *, create: bool = True) -> BookHome:
        """An explicit home (``--run-dir``)."""
        path = Path(path).absolute()
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            _usable_private_dir(path, create=True)
        return cls(path)


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """What ``daemon.json`` says about a running daemon."""

    pid: int
    book: Path
    mode: str
    source: str
    started_ts: float
    endpoints: Endpoints
    home: Path
    remote: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": DAEMON_FILE_VERSION,
            "pid": self.pid,
            "book": str(self.book),
            "mode": self.mode,
            "source": self.source,
            "started_ts": self.started_ts,
            "endpoints": self.endpoints.as_dict(),
            "remote": self.remote,
        }

    @classmethod
    def from_json(cls, d: Any, home: Path) -> DaemonInfo:
        if not isinstance(d, dict) or d.get("version") != DAEMON_FILE_VERSION:
            raise RunDirError(f"{home / DAEMON_FILE}: not a daemon file of this version")
        try:
            return cls(
                pid=int(d["pid"]),
                book=Path(str(d["book"])),
                mode=str(d["mode"]),
                source=str(d["source"]),
                started_ts=float(d["started_ts"]),
                endpoints=Endpoints.from_dict(d["endpoints"]),
                home=home,
                remote=str(d.get("remote") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{home / DAEMON_FILE}: unreadable ({exc})") from None


def write_daemon_file(home: BookHome, info: DaemonInfo) -> None:
    """``daemon.json`` (0600), replaced atomically so a reader never sees half of it."""
    tmp = home.daemon_file.with_name(f".{DAEMON_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info.to_json(), f)
    os.replace(tmp, home.daemon_file)


def remove_daemon_file(home: BookHome, pid: int) -> None:
    """Remove ``daemon.json`` if it is still ours (a newer daemon's is left alone)."""
    with contextlib.suppress(OSError, RunDirError, ValueError):
        info = read_daemon_file(home)
        if info is not None and info.pid == pid:
            home.daemon_file.unlink()


def read_daemon_file(home: BookHome) -> DaemonInfo | None:
    try:
        text = home.daemon_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunDirError(f"{home.daemon_file}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # being replaced or damaged: no daemon we can talk to
    return DaemonInfo.from_json(data, home.path)


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie counts as gone)?"""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
    except IndexError:
        return True


def candidate_homes(book: Path) -> list[BookHome]:
    """Where a daemon for ``book`` may live: under $XDG_RUNTIME_DIR, then under /tmp (a shell
    without $XDG_RUNTIME_DIR, e.g. ``su``, looks in both)."""
    roots: list[Path] = []
    with contextlib.suppress(RunDirError):
        roots.append(runs_root())
    fallback = Path(f"/tmp/{APP_DIR}-{os.getuid()}")
    if fallback not in roots and fallback.is_dir():
        roots.append(fallback)
    return [BookHome.for_book(book, root=r, create=False) for r in roots]


def find_daemon(book: Path, run_dir: Path | None = None) -> DaemonInfo | None:
    """The live daemon trading ``book`` (or the one in ``run_dir``), or None."""
    homes = [BookHome.at(run_dir, create=False)] if run_dir is not None else candidate_homes(book)
    for home in homes:
        try:
            info = read_daemon_file(home)
        except RunDirError:
            continue
        if info is not None and pid_alive(info.pid):
            return info
    return None


def wait_for_daemon(
    home: BookHome, pid: int, timeout_s: float, alive: Any = None
) -> DaemonInfo | None:
    """Wait until the daemon ``pid`` has written its file (None if it exits or time runs out)."""
    deadline = time.monotonic() + timeout_s
    check = alive if alive is not None else (lambda: pid_alive(pid))
    while time.monotonic() < deadline:
        with contextlib.suppress(RunDirError):
            info = read_daemon_file(home)
            if info is not None and info.pid == pid:
                return info
        if not check():
            return None
        time.sleep(0.02)
    return None
