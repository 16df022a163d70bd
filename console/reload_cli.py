"""``multipar-console reload``: the book's daemon re-reads its safe list and applies it.

Owns ``reload_main``. The daemon validates the file it started from (the same validation as
``check-config``), prints the diff and what each change will do, and applies it pair by pair
(console/daemon/reload.py); ``--preview`` stops after the diff. Exit 0 applied (or nothing to
change), 2 refused (a bad file: the old safe list stays in force; or a change that cannot be
made live), 1 the daemon did not answer, 3 no daemon runs for the book.
"""

from __future__ import annotations

import sys

from console import ctl
from console.daemon import wire as dwire

EXIT_OK, EXIT_NO_ANSWER, EXIT_REFUSED, EXIT_NOT_RUNNING = 0, 1, 2, 3
TIMEOUT_S = 30.0


def reload_main(argv: list[str]) -> int:
    p = ctl._book_parser("reload", "Re-read the daemon's safe list, show what changes, apply it pair by pair.")
    p.add_argument("--preview", action="store_true", help="show the diff and what each change will do; change nothing")
    args = p.parse_args(argv)
    book, info = ctl.locate(args)
    if info is None:
        print(f"not running: no daemon for {book}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    cmd = dwire.RELOAD_PREVIEW if args.preview else dwire.RELOAD
    m = ctl.request(info.endpoints.daemon_ctl, cmd, TIMEOUT_S)
    if m is None:
        print(f"daemon pid {info.pid} of {book} did not answer in {TIMEOUT_S:.0f} s", file=sys.stderr)
        return EXIT_NO_ANSWER
    ok = m.get("ok") is True
    lines = [str(x) for x in m.get("preview") or []]
    out = sys.stdout if ok else sys.stderr
    if ok:
        for line in lines:
            print(f"  {line}", file=out)
    print(str(m.get("message", "")), file=out)
    if ok and not args.preview:
        print(f"config v{m.get('version')} ({m.get('digest')})")
    return EXIT_OK if ok else EXIT_REFUSED
