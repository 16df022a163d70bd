"""One trading process per book: the lock beside it refuses a second, and dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.daemon.booklock import BookLock, BookLockError, lock_path

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"

pytestmark = pytest.mark.timeout(60)


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    book = tmp_path / "book.sqlite"
    with BookLock.acquire(book):
        assert (lock_path(book).stat().st_mode & 0o777) == 0o600
        with pytest.raises(BookLockError) as err:
            BookLock.acquire(book)
        assert str(err.value) == f"{book}: in use by process {os.getpid()} (stop it first, or pass another --db)"
    BookLock.acquire(book).release()  # released: free again


def test_the_lock_dies_with_its_holder_even_on_sigkill(tmp_path: Path) -> None:
    book = tmp_path / "book.sqlite"
    code = (
        "import sys, time; from pathlib import Path; from console.daemon.booklock import BookLock;"
        f"BookLock.acquire(Path({str(book)!r})); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(BookLockError, match=f"in use by process {child.pid}"):
            BookLock.acquire(book)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 5
        while True:
            try:
                BookLock.acquire(book).release()
                break
            except BookLockError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_second_console_on_the_same_book_exits_2_with_one_line(tmp_path: Path) -> None:
    """The real command against a book another process trades on: one line, exit 2, no child.
    The console's daemon is what takes the lock: its refusal is the console's one line."""
    book = tmp_path / "book.sqlite"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"))
    refused = f"{book}: in use by process {os.getpid()} (stop it first, or pass another --db)"
    with BookLock.acquire(book):
        r = subprocess.run(
            [sys.executable, "-m", "console", "--db", str(book), "--demo", "--config", str(SAFE_LIST),
             "--run-dir", str(tmp_path / "run")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        d = subprocess.run(
            [sys.executable, "-m", "console", "daemon", "--db", str(book), "--demo", "--config",
             str(SAFE_LIST), "--run-dir", str(tmp_path / "run2")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [f"multipar-console: the daemon did not start (exit 2): {refused}"]
    assert d.returncode == 2 and d.stderr.splitlines() == [f"multipar-console: {refused}"], d.stderr
    for run in (tmp_path / "run", tmp_path / "run2"):
        assert not (run / "pids.json").exists()  # no child was started
        assert not (run / "daemon.json").exists()  # nor a daemon left
