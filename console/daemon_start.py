"""Starting a book's daemon from a console: its command line, its process, waiting for it.

Owns ``start_daemon``: the daemon runs ``python -m console.daemon`` with the console's options,
minus every option that may carry a credential (``--ws-url``, ``--rest-url``, also when given
through ``--feed-arg``): those reach it through its environment, never its argv, which every
local user can read. It starts in a session of its own, so the terminal's hang-up never reaches
it; its stdout and stderr (early failures only: it logs to ``daemon.log``) go to
``daemon.out``. ``start_daemon`` waits for its ``daemon.json``, or says why it did not come.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from console.options import APP_NAME

DAEMON_START_TIMEOUT_S = 20.0


def daemon_argv(argv: Sequence[str], extra: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The daemon's command line from the console's (options that may carry credentials go to
    its environment instead) and those variables."""
    from feed.private import split_secret_options

    clean, secrets = split_secret_options(list(argv))
    rest, feed_args = _take_feed_args(clean)  # --feed-arg=--ws-url=URL is a credential too
    feed_clean, feed_secrets = split_secret_options(feed_args)
    secrets = {**feed_secrets, **secrets}
    feed = [f"--feed-arg={a}" for a in feed_clean]
    return [sys.executable, "-m", "console.daemon", *rest, *feed, *extra, "--quiet"], secrets


def _take_feed_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` without its ``--feed-arg`` options, and their values in order."""
    rest: list[str] = []
    values: list[str] = []
    it = iter(argv)
    for token in it:
        if token.startswith("--feed-arg="):
            values.append(token.split("=", 1)[1])
        elif token == "--feed-arg":
            values.append(next(it, ""))
        else:
            rest.append(token)
    return rest, values


def spawn_daemon(
    argv: Sequence[str], extra: Sequence[str], out_dir: Path
) -> subprocess.Popen[bytes]:
    """Start a daemon in a session of its own (a hang-up of this terminal never reaches it);
    its stdout/stderr (early failures only: it logs to daemon.log) go to ``daemon.out``."""
    from console.daemon.service import child_env
    from feed.private import private_file

    cmd, secrets = daemon_argv(argv, extra)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    out = out_dir / "daemon.out"
    private_file(out, create=True)
    with open(out, "ab", buffering=0) as f:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
            env=child_env(secrets),
            close_fds=True,
            start_new_session=True,
        )


def _last_words(home: Path) -> str:
    from console.daemon.childproc import last_log_line

    for name in ("daemon.out", "daemon.log"):
        line = last_log_line(home / name, limit=1000)  # the whole line: its end says what to do
        if line:
            return line.removeprefix(f"{APP_NAME}: ")
    return ""


def start_daemon(argv: Sequence[str], extra: Sequence[str], home: Path, owned: bool) -> Any:
    """Start a daemon whose home is ``home``: (its ``DaemonInfo``, its process if ``owned``),
    or (an exit code, why it did not start)."""
    from console.daemon.home import BookHome, wait_for_daemon

    proc = spawn_daemon(argv, extra, home)
    info = wait_for_daemon(
        BookHome(home), proc.pid, DAEMON_START_TIMEOUT_S, alive=lambda: proc.poll() is None
    )
    if info is None:
        code = proc.poll()
        if code is None:
            proc.terminate()
        words = _last_words(home)
        why = f"exit {code}" if code is not None else f"not ready in {DAEMON_START_TIMEOUT_S:.0f} s"
        return code or 1, f"the daemon did not start ({why}){': ' + words if words else ''}"
    return info, (proc if owned else None)
