"""The read-only book check (engine/journal/check.py) and where it runs: the console refuses a
bad book before anything of the run exists, the engine before it opens the file. Every bad
file is left exactly as it was: same bytes, same mtime, no file created beside it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from console.cli import main
from engine.core.models import Side
from engine.core.orders import Order
from engine.journal.check import check_book
from engine.journal.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    StoreError,
    _migrate_to_1,
    expected_tables,
)
from engine.journal.store import Store
from tests.store_seed import seed_open_position

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"
ROOT_USER = os.geteuid() == 0

pytestmark = pytest.mark.timeout(60)


# -- files -----------------------------------------------------------------------------------
def book(d: Path, name: str = "book.sqlite") -> Path:
    """A real book with an open position and some events, closed (no -wal left)."""
    p = d / name
    seed_open_position(p)
    with Store(p) as s:
        for i in range(300):
            s.record_event(i, "kill", "x" * 100)
    return p


def sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as c:
        for st in statements:
            c.execute(st)


def foreign(d: Path) -> Path:
    p = d / "other.sqlite"
    sql(
        p,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO users VALUES (1, 'ana')",
    )
    return p


def truncated(d: Path) -> Path:
    p = book(d)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def truncated_on_a_page(d: Path) -> Path:
    """Cut on a page boundary: only the header's page count says pages are missing."""
    p = book(d)
    data = p.read_bytes()
    p.write_bytes(data[: (len(data) // 4096 // 2) * 4096])
    return p


def damaged(d: Path) -> Path:
    p = book(d)
    data = bytearray(p.read_bytes())
    data[(10 - 1) * 4096] = 0xFF  # page 10's b-tree page type
    p.write_bytes(bytes(data))
    return p


def newer(d: Path) -> Path:
    p = book(d)
    sql(p, f"PRAGMA user_version = {SCHEMA_VERSION + 1}", "PRAGMA journal_mode = DELETE")
    return p


def missing_table(d: Path) -> Path:
    p = book(d)
    sql(p, "DROP TABLE equity", "PRAGMA journal_mode = DELETE")
    return p


def missing_columns(d: Path) -> Path:
    """Version 2 on the label, version 1 tables inside (orders without its v2 columns)."""
    p = d / "v1-as-v2.sqlite"
    with closing(sqlite3.connect(p, isolation_level=None)) as c:
        _migrate_to_1(c)
        c.execute("PRAGMA user_version = 2")
    return p


def negative_version(d: Path) -> Path:
    p = d / "neg.sqlite"
    sql(p, "PRAGMA user_version = -7")
    return p


def not_sqlite(d: Path) -> Path:
    p = d / "notes.sqlite"
    p.write_text("pairs:\n  BTC/USDT: {}\n" * 20)
    return p


def short_header(d: Path) -> Path:
    p = d / "short.sqlite"
    p.write_bytes(b"SQLite format 3\x00\x10\x00\x02\x02")
    return p


def zero_bytes(d: Path) -> Path:
    p = d / "empty.sqlite"
    p.touch()
    return p


def directory(d: Path) -> Path:
    p = d / "a-directory.sqlite"
    p.mkdir()
    (p / "inside").write_text("x")
    return p


def fifo(d: Path) -> Path:
    p = d / "pipe.sqlite"
    os.mkfifo(p)
    return p


def dangling_link(d: Path) -> Path:
    p = d / "link.sqlite"
    p.symlink_to(d / "gone.sqlite")
    return p


BAD: dict[str, tuple[Callable[[Path], Path], str]] = {
    "directory": (directory, "is a directory, not a book file (pass a file path with --db)"),
    "fifo": (fifo, "is not a regular file"),
    "dangling link": (dangling_link, "symbolic link to a missing file"),
    "zero bytes": (zero_bytes, "empty file (0 bytes), not a book (delete it to start a new book"),
    "not SQLite": (not_sqlite, "not an SQLite database, so not a book"),
    "short header": (short_header, "truncated: 20 bytes, shorter than an SQLite header"),
    "truncated": (truncated, "truncated: "),
    "truncated on a page": (truncated_on_a_page, "truncated: "),
    "damaged": (damaged, "damaged: Page 10: btreeInitPage() returns error code 11"),
    "newer schema": (newer, f"book schema version {SCHEMA_VERSION + 1} is newer than this program's {SCHEMA_VERSION} (upgrade"),
    "another program": (foreign, "SQLite database of another program (tables users), not a multipar-console book (pass another --db)"),
    "negative version": (negative_version, "SQLite database of another program (schema version -7)"),
    "missing table": (missing_table, f"book schema version {SCHEMA_VERSION} without table(s) equity: damaged"),
    "missing columns": (missing_columns, "without column(s) orders.avg_price, orders.fees, orders.filled_qty"),
}  # fmt: skip


def snapshot(d: Path, p: Path) -> tuple[object, ...]:
    """Everything the check must not change: the file (bytes, mtime, mode) and the directory."""
    listing = sorted(x.name for x in d.iterdir())
    if p.is_symlink() or not p.exists() or not p.is_file():
        st = os.lstat(p) if p.is_symlink() or p.exists() else None
        return listing, None if st is None else (st.st_mode, st.st_mtime_ns)
    st = p.stat()
    return listing, p.read_bytes(), st.st_mtime_ns, st.st_mode


@pytest.fixture
def d(tmp_path: Path) -> Path:
    """Each test's own directory: what is in it is part of what must not change."""
    return tmp_path


# -- the check ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_refused_with_one_line_and_left_as_it_was(d: Path, case: str) -> None:
    make, expected = BAD[case]
    p = make(d)
    before = snapshot(d, p)
    with pytest.raises(StoreError) as exc:
        check_book(p)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(f"{p}: "), text
    assert expected in text, text
    assert text.endswith(")"), text  # what to do, in brackets, last
    assert snapshot(d, p) == before


@pytest.mark.skipif(ROOT_USER, reason="root reads and writes any file whatever its mode")
def test_an_unreadable_book_is_refused(d: Path) -> None:
    p = book(d)
    p.chmod(0o000)
    try:
        with pytest.raises(StoreError, match="cannot be read: permission denied"):
            check_book(p)
    finally:
        p.chmod(0o600)


@pytest.mark.skipif(ROOT_USER, reason="root reads and writes any file whatever its mode")
def test_a_read_only_book_is_refused(d: Path) -> None:
    p = book(d)
    p.chmod(0o400)
    before = snapshot(d, p)
    with pytest.raises(StoreError, match="is read-only"):
        check_book(p)
    assert snapshot(d, p) == before


@pytest.mark.parametrize(
    ("denied", "expected"),
    [
        (os.R_OK, "cannot be read: permission denied (give this user read and write access"),
        (
            os.W_OK,
            "is read-only, and the engine writes every order and fill to it (make it writable",
        ),
        (os.W_OK | os.X_OK, "is not writable, and the book's -wal and -shm files live there"),
    ],
)
def test_permissions_as_another_user_would_see_them(
    d: Path, monkeypatch: pytest.MonkeyPatch, denied: int, expected: str
) -> None:
    """Root passes every access check, so the refusals are also shown with os.access answering
    as it would for an unprivileged user: no read, no write, a directory it cannot write."""
    p = book(d)
    real = os.access
    target = d if denied == os.W_OK | os.X_OK else p

    def access(path: object, mode: int, **kw: object) -> bool:
        if Path(str(path)) == target and mode & denied:
            return False
        return real(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    before = snapshot(d, p)
    with pytest.raises(StoreError) as exc:
        check_book(p)
    assert expected in str(exc.value) and str(exc.value).startswith(f"{p}: ")
    assert snapshot(d, p) == before


def test_a_new_book_needs_a_writable_directory(d: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode, **kw: Path(str(path)) != d and real(path, mode, **kw)
    )
    with pytest.raises(StoreError, match="is not writable, and a new book is created there"):
        check_book(d / "new.sqlite")


def test_a_missing_file_is_a_new_book_and_nothing_is_created(d: Path) -> None:
    check_book(d / "new.sqlite")
    check_book(d / "not-yet" / "new.sqlite")  # whoever starts the engine creates the directory
    assert list(d.iterdir()) == []


def test_good_books_pass_untouched(d: Path) -> None:
    """A closed book, an older known version, an empty SQLite database: no file is written,
    not even a -wal or -shm beside it."""
    good = book(d)
    v1 = d / "v1.sqlite"
    with closing(sqlite3.connect(v1, isolation_level=None)) as c:
        _migrate_to_1(c)
        c.execute("PRAGMA user_version = 1")
    empty_db = d / "vacuumed.sqlite"
    sql(empty_db, "VACUUM")
    for p in (good, v1, empty_db):
        before = snapshot(d, p)
        check_book(p)
        assert snapshot(d, p) == before, p


def test_a_book_in_use_passes(d: Path) -> None:
    """An engine holds the book open (its -wal has pages): checked through the WAL, untouched."""
    p = book(d)
    with Store(p) as s:
        s.record_event(1, "kill", "while open")
        assert Path(f"{p}-wal").stat().st_size > 0
        data, mtime = p.read_bytes(), p.stat().st_mtime_ns
        check_book(p)
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtime


def test_expected_tables_follow_the_migrations() -> None:
    v1, v2 = expected_tables(1), expected_tables(2)
    assert set(v1) == set(v2) == {
        "account", "positions", "orders", "fills", "decisions", "pair_modes", "equity", "events"
    }  # fmt: skip
    assert v2["orders"] - v1["orders"] == {
        "filled_qty", "avg_price", "fees", "updated_ts", "message", "stop_loss", "take_profit"
    }  # fmt: skip
    with pytest.raises(ValueError):
        expected_tables(SCHEMA_VERSION + 1)


def test_version_4_types_orders_and_a_version_3_book_keeps_its_orders_as_market(tmp_path: Path) -> None:
    """Step 4 adds an order's type and a stop's trigger; a version 3 order reads back as the
    market order it was, and a stop order round-trips."""
    assert expected_tables(4)["orders"] - expected_tables(3)["orders"] == {"order_type", "trigger_price"}
    old = tmp_path / "v3.sqlite"
    with closing(sqlite3.connect(old, isolation_level=None)) as c:
        for step in (1, 2, 3):
            MIGRATIONS[step](c)
        c.execute("PRAGMA user_version = 3")
        c.execute("INSERT INTO orders (order_id, symbol, side, qty, reason, decision_key, ts, status) "
                  "VALUES ('mp-old', 'BTC/USDT', 'buy', 0.01, 'signal', 'k', 5, 'accepted')")  # fmt: skip
    with Store(old) as s:
        assert s.schema_version() == SCHEMA_VERSION
        (o,) = s.open_orders()
        assert (o.client_order_id, o.order_type, o.trigger) == ("mp-old", "market", 0.0)
        stop = Order("mp-stop", "BTC/USDT", Side.SELL, 0.01, "stop", "BTC/USDT|protect|5", 6,
                     order_type="stop", trigger=95_000.5)  # fmt: skip
        assert s.record_order(stop)
        got = {x.client_order_id: x for x in s.open_orders()}["mp-stop"]
        assert (got.order_type, got.trigger, got.reason) == ("stop", 95_000.5, "stop")


# -- the console refuses before anything of the run exists ------------------------------------
@pytest.mark.parametrize("case", ["another program", "zero bytes", "damaged", "directory"])
def test_the_console_refuses_a_bad_book_before_the_run_exists(
    d: Path, capsys: pytest.CaptureFixture[str], console_root_logging: None, case: str
) -> None:
    make, expected = BAD[case]
    p = make(d)
    before = snapshot(d, p)
    run_dir = d / "run"
    assert (
        main(["--demo", "--config", str(SAFE_LIST), "--db", str(p), "--run-dir", str(run_dir)]) == 2
    )
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"multipar-console: {p}: "), lines
    assert expected in lines[0]
    assert not run_dir.exists()  # no run directory, no log, no socket, no child
    assert snapshot(d, p) == before


def test_a_demo_run_dir_with_a_bad_book_is_refused_too(
    d: Path, capsys: pytest.CaptureFixture[str], console_root_logging: None
) -> None:
    """--demo keeps its book in the run directory: a reused --run-dir may hold a bad one."""
    run_dir = d / "run"
    run_dir.mkdir(mode=0o700)
    bad = run_dir / "demo.sqlite"
    bad.write_text("not a book")
    assert main(["--demo", "--config", str(SAFE_LIST), "--run-dir", str(run_dir)]) == 2
    assert f"multipar-console: {bad}: not an SQLite database" in capsys.readouterr().err
    assert sorted(x.name for x in run_dir.iterdir()) == ["demo.sqlite"]


def test_the_paper_default_book_is_checked(
    d: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    console_root_logging: None,
) -> None:
    state = d / "state"
    default = state / "multipar-console" / "paper.sqlite"
    default.parent.mkdir(parents=True)
    default.touch()
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    assert main(["--config", str(SAFE_LIST), "--run-dir", str(d / "run")]) == 2
    assert f"multipar-console: {default}: empty file (0 bytes)" in capsys.readouterr().err
    assert default.stat().st_size == 0 and not (d / "run").exists()


def test_multipar_console_with_a_foreign_database_exits_2_with_one_line(d: Path) -> None:
    """The real command: one line, exit 2, no run directory (so no child), the file untouched."""
    p = foreign(d)
    before = snapshot(d, p)
    run_dir = d / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(d), XDG_STATE_HOME=str(d / "state"))
    r = subprocess.run(
        [sys.executable, "-m", "console", "--db", str(p), "--demo", "--config", str(SAFE_LIST),
         "--run-dir", str(run_dir)],
        cwd=d, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"multipar-console: {p}: SQLite database of another program (tables users), "
        "not a multipar-console book (pass another --db)"
    ]
    assert not run_dir.exists()
    assert snapshot(d, p) == before


# -- the engine checks too, and says it with exit 2 --------------------------------------------
def test_the_engine_refuses_a_foreign_database_without_writing_to_it(d: Path) -> None:
    p = foreign(d)
    before = snapshot(d, p)
    ipc = f"ipc://{d}"
    r = subprocess.run(
        [sys.executable, "-m", "engine", "--config", str(SAFE_LIST), "--db", str(p),
         "--feed-pub", f"{ipc}/a", "--feed-rep", f"{ipc}/b", "--pub", f"{ipc}/c", "--cmd", f"{ipc}/d"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"{p}: SQLite database of another program")
    assert snapshot(d, p) == before  # the WAL switch used to rewrite its header
