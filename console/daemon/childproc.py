"""One child process's ties to the console: dying with it, and its last words.

Owns ``pdeathsig_preexec`` (on Linux a console that is SIGKILLed takes its children with it,
``PR_SET_PDEATHSIG``) and ``last_log_line`` (why a child exited, from the end of its log, for
the status line). The supervisor (console/daemon/supervisor.py) uses both.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGKILL the child when the console dies.

    libc and prctl are resolved here, in the parent, so the forked child only calls a function
    pointer (no imports or allocation between fork and exec). The signal fires when the forking
    *thread* exits, so children must be spawned from the event-loop (main) thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        log.warning("prctl unavailable: children rely on explicit stop only")
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the console died before prctl took effect
            os._exit(1)

    return preexec


def last_log_line(path: Path, limit: int = 160) -> str:
    """The child's last words (why it exited), shortened for the status line."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    last = next((ln for ln in reversed(lines) if ln), "")
    return last if len(last) <= limit else last[: limit - 1] + "…"
