"""Drive a program inside a detached tmux session: fixed size, send keys, read the screen.

``TmuxSession`` starts ``tmux -L SOCKET new-session -d -x W -y H`` on a private server socket
(so tests never touch the user's tmux), and ``wait_for`` polls ``capture-pane`` until a text
or predicate matches or the deadline passes, then fails with the last screen shown.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


class TmuxTimeout(AssertionError):
    """``wait_for`` ran past its deadline; the message carries the last captured screen."""


class TmuxSession:
    def __init__(
        self,
        command: Sequence[str],
        *,
        width: int = 80,
        height: int = 24,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        socket_dir: Path | None = None,
    ) -> None:
        self.width, self.height = width, height
        self.name = f"mp-{uuid.uuid4().hex[:8]}"
        self._env = dict(env if env is not None else os.environ)
        if socket_dir is not None:
            self._env["TMUX_TMPDIR"] = str(socket_dir)  # the tmux server socket lives here
        self._env.pop("TMUX", None)
        self._cwd = str(cwd) if cwd is not None else None
        # ``exec`` so the pane's process is the program itself: its pid is the pane pid
        shell_cmd = "exec " + " ".join(shlex.quote(c) for c in command)
        self._tmux(
            "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), shell_cmd
        )
        # keep the pane after the program exits, so its last screen and status can be read
        self._tmux("set-option", "-t", self.name, "remain-on-exit", "on")

    # -- plumbing ------------------------------------------------------------------------
    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.name, *args],
            env=self._env,
            cwd=self._cwd,
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
        )

    # -- what a person does --------------------------------------------------------------
    def send_keys(self, *keys: str, literal: bool = False) -> None:
        """tmux key names (``q``, ``C-k``, ``Enter``) or, with ``literal``, plain text."""
        args = ["send-keys", "-t", self.name, *(("-l",) if literal else ()), *keys]
        self._tmux(*args)

    def capture(self, escapes: bool = False) -> str:
        """The screen as text; with ``escapes``, with its colour/attribute escape sequences."""
        r = self._tmux("capture-pane", "-p", *(("-e",) if escapes else ()), "-t", self.name, check=False)
        return r.stdout

    def wait_for(
        self,
        what: str | Callable[[str], bool],
        timeout_s: float = 15.0,
        interval_s: float = 0.1,
    ) -> str:
        """Poll the screen until ``what`` (a substring or predicate) matches; return the screen."""
        pred = (lambda s: what in s) if isinstance(what, str) else what
        deadline = time.monotonic() + timeout_s
        screen = ""
        while True:
            screen = self.capture()
            if pred(screen):
                return screen
            if time.monotonic() >= deadline:
                label = (
                    repr(what) if isinstance(what, str) else getattr(what, "__name__", "predicate")
                )
                raise TmuxTimeout(
                    f"{label} not on screen after {timeout_s} s; last screen:\n{screen}"
                )
            time.sleep(interval_s)

    # -- the program ---------------------------------------------------------------------
    def pane_pid(self) -> int | None:
        r = self._tmux("display-message", "-p", "-t", self.name, "#{pane_pid}", check=False)
        out = r.stdout.strip()
        return int(out) if out.isdigit() else None

    def pane_dead(self) -> bool:
        r = self._tmux("display-message", "-p", "-t", self.name, "#{pane_dead}", check=False)
        return r.returncode != 0 or r.stdout.strip() == "1"

    def wait_exit(self, timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pane_dead():
                return True
            time.sleep(0.05)
        return False

    def kill_session(self) -> None:
        """What a dropped SSH connection does: the pane's terminal goes away (SIGHUP)."""
        self._tmux("kill-session", "-t", self.name, check=False)

    def close(self) -> None:
        self._tmux("kill-server", check=False)

    def __enter__(self) -> TmuxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
