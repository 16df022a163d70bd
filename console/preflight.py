"""What a run settles before it starts anything: the safe list it trades on and its book.

Owns ``ValidatedSafeList`` (the operator's file, the exact text that was validated, the parsed
``SafeList``), ``write_run_copy`` and ``planned_book``. The engine is given a copy of the
validated text (mode 0600, in the private run directory), never the operator's path: an engine
restarted by the supervisor after someone edited the file into an invalid state still starts,
on what the console validated, instead of exiting in a loop with a position open. The feed gets
its pairs on its command line and reads no safe list. A changed safe list takes effect at the
next start of the console. ``planned_book`` names the book before the run directory exists, so
``engine.journal.check.check_book`` can refuse a bad one before any file of the run is written.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.config import SafeList, read_safe_list

RUN_COPY_NAME = "safe_list.yaml"
DEMO_BOOK_NAME = "demo.sqlite"


@dataclass(frozen=True, slots=True)
class ValidatedSafeList:
    """What the console validated: the file it came from, its exact text, the result."""

    source: Path
    text: str
    cfg: SafeList


def validate(path: Path) -> ValidatedSafeList:
    """Read the file once and validate that text; ``ConfigError`` with one line per problem."""
    text, cfg = read_safe_list(path)
    return ValidatedSafeList(Path(path), text, cfg)


def write_run_copy(validated: ValidatedSafeList, run_dir: Path) -> Path:
    """Write the validated text to ``run_dir/safe_list.yaml`` (0600, atomically); its path.

    ``OSError`` when the run directory cannot take it.
    """
    dest = Path(run_dir) / RUN_COPY_NAME
    write_private(dest, validated.text)
    return dest


def write_private(dest: Path, text: str) -> None:
    """``text`` to ``dest``, mode 0600 whatever the umask, replaced atomically and synced: a
    reader sees the old file or the whole new one. ``OSError`` when the directory cannot take it."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask, and a stale tmp's mode
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def planned_book(
    db: Path | None, *, demo: bool, run_dir: Path | None, default: Path
) -> Path | None:
    """The book a run will open (absolute), or None for a fresh ``--demo`` run directory's.

    ``--db`` wins; paper runs use ``default``; ``--demo`` keeps its book in the run directory,
    which is known already when ``--run-dir`` names it (it may hold an earlier run's book).
    """
    if db is not None:
        return Path(db).expanduser().absolute()
    if not demo:
        return Path(default).expanduser().absolute()
    return Path(run_dir).absolute() / DEMO_BOOK_NAME if run_dir is not None else None


class RunRefused(Exception):
    """A run that must not start: its lines (one problem each) go to stderr, exit 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


@dataclass(frozen=True, slots=True)
class CheckedRun:
    validated: ValidatedSafeList
    source: str  # sim | binance | replay
    book: Path | None  # None: a fresh demo's, in its run directory
    credentials: Any = None  # console.live.Credentials for --live, else None


def check_run(args: Any, default_book: Path, app: str) -> CheckedRun:
    """What the console and the daemon check before anything starts: the safe list (validated
    once; the engine gets that text), the source's options, and the book (read-only). Raises
    ``RunRefused`` with the lines to print."""
    from console.options import safe_list_path
    from engine.core.config import ConfigError
    from engine.journal.check import check_book
    from engine.journal.schema import StoreError

    cfg_path = safe_list_path(args)
    try:
        validated = validate(cfg_path)
    except ConfigError as exc:
        raise RunRefused(list(exc.problems)) from None
    source = args.source or ("sim" if args.demo else "binance")
    if source == "replay" and not args.replay_file:
        raise RunRefused([f"{app}: --source replay needs --replay-file PATH"])
    credentials = None
    if getattr(args, "live", False):
        from console.live import LiveRefused, load_credentials

        if args.demo or source != "binance":
            raise RunRefused([f"{app}: --live trades on Binance: not with --demo or --source {source}"])
        try:
            credentials = load_credentials(args.key_file)
        except LiveRefused as exc:
            raise RunRefused([f"{app}: {exc}"]) from None
    book = planned_book(args.db, demo=args.demo, run_dir=args.run_dir, default=default_book)
    try:
        if book is not None:
            check_book(book)
    except StoreError as exc:
        raise RunRefused([f"{app}: {exc}"]) from None
    return CheckedRun(validated, source, book, credentials)
