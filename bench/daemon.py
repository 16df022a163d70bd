"""The processes of a console run, and a book's daemon started on its own for the benchmarks.

Owns ``RunHome`` (a short private directory under /tmp standing in for HOME, with the XDG
dirs, the run directory and the one environment every process of a run gets), ``Procs`` (the
daemon, feed and engine of one run directory, read from ``daemon.json`` and ``pids.json`` and
each remembered by pid *and* start time, so cleanup signals by pid only and never a pid the
kernel has since given to someone else) and ``DaemonRun`` (``multipar-console daemon`` on a
temp book in its own session, waited for until ``status`` exits 0, stopped with ``stop``).

Since the daemon split (``docs/daemon.md``) a console run is four processes: the console, the
daemon (its own session; a demo's watches the console's pid), and the feed and the engine the
daemon supervises. ``pids.json`` is the daemon's supervisor's: its ``console`` key is the
*daemon's* pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.stack import ROOT, alive, short_tmpdir, start_ticks

ROLES = ("daemon", "feed", "engine")
DAEMON_START_TIMEOUT_S = 60.0


def console_argv() -> list[str]:
    """The installed entry point beside the interpreter, else ``python -m console``."""
    script = Path(sys.executable).with_name("multipar-console")
    return [str(script)] if script.exists() else [sys.executable, "-m", "console"]


class RunHome:
    """A fresh 0700 dir directly under /tmp (ipc paths stay short): HOME, XDG dirs, ``run/``."""

    def __init__(self, prefix: str) -> None:
        self.path = short_tmpdir(prefix)
        (self.path / "xdg").mkdir(mode=0o700)
        self.run_dir = self.path / "run"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.path),
            "XDG_RUNTIME_DIR": str(self.path / "xdg"),
            "XDG_STATE_HOME": str(self.path / "state"),
            "TERM": "xterm-256color",
            "COLORTERM": "truecolor",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }

    def config(self, text: str | None) -> Path:
        """A safe list for the run: ``text`` written here, or the repo's own."""
        if text is None:
            return ROOT / "safe_list.yaml"
        cfg = self.path / "safe_list.yaml"
        cfg.write_text(text)
        return cfg

    def tail(self, name: str, n: int = 3) -> list[str]:
        """The last lines of a log in the run directory (or of a file in the home)."""
        for base in (self.run_dir, self.path):
            with contextlib.suppress(OSError):
                return (base / name).read_text(errors="replace").splitlines()[-n:]
        return []

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class Procs:
    """The daemon, feed and engine of one run directory; every pid ever seen, for cleanup."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.seen: dict[int, int] = {}  # pid -> start time: who that pid was when we saw it

    def note(self, pid: int) -> None:
        if pid not in self.seen and (t := start_ticks(pid)) is not None:
            self.seen[pid] = t

    def current(self) -> dict[str, int]:
        """daemon, feed and engine as the run directory says now (those it names)."""
        pids = _read_json(self.run_dir / "pids.json")
        daemon = _read_json(self.run_dir / "daemon.json").get("pid") or pids.get("daemon")
        out = {"daemon": int(daemon)} if daemon else {}
        out.update({k: int(v) for k, v in (pids.get("children") or {}).items() if v})
        for p in [*out.values(), *(p for h in (pids.get("history") or {}).values() for p in h)]:
            self.note(int(p))
        return out

    def wait(self, timeout_s: float, pump: Any = time.sleep) -> dict[str, int]:
        """Until the daemon, the feed and the engine are all named (what there is at timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            now = self.current()
            if all(now.get(r) for r in ROLES) or time.monotonic() >= deadline:
                return now
            pump(0.05)

    def dead(self) -> list[str]:
        """The roles whose current process is gone."""
        return [k for k, p in self.current().items() if not alive(p)]

    def ours_alive(self) -> list[int]:
        return [p for p, t in self.seen.items() if start_ticks(p) == t]

    def reap(self, grace_s: float) -> list[int]:
        """Give every process we saw ``grace_s`` to exit, then SIGKILL the rest, by pid only
        (SIGCONT first: a SIGSTOPped engine). Returns the pids that had to be killed."""
        self.current()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and self.ours_alive():
            time.sleep(0.05)
        killed = self.ours_alive()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        return killed


class DaemonRun:
    """``multipar-console daemon --source sim`` on a fresh book, in a session of its own."""

    def __init__(
        self,
        *,
        config_text: str | None = None,
        rate: float | None = None,
        timeframe: str = "2s",
        seed: int = 5,
    ) -> None:
        self.home = RunHome("mpd-")
        self.run_dir = self.home.run_dir
        self.db = self.home.path / "book.sqlite"
        args = [
            *console_argv(), "daemon", "--source", "sim", "--db", str(self.db),
            "--run-dir", str(self.run_dir), "--config", str(self.home.config(config_text)),
            "--timeframe", timeframe, "--seed", str(seed), "--quiet",
        ]  # fmt: skip
        if rate is not None:
            args += ["--rate", f"{rate:g}"]
        self.spawned = time.monotonic()
        with open(self.home.path / "daemon.stdout", "ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=self.home.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        self.pid = self.proc.pid
        self.procs = Procs(self.run_dir)
        self.procs.note(self.pid)

    def _ctl(
        self, sub: str, *extra: str, timeout_s: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*console_argv(), sub, *extra, "--run-dir", str(self.run_dir), "--db", str(self.db)],
            cwd=ROOT, env=self.home.env, capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip

    def status(self) -> tuple[int, dict[str, Any]]:
        """``status --json``: its exit code (0 healthy, 1 degraded, 3 not running) and map."""
        r = self._ctl("status", "--json", timeout_s=15.0)
        try:
            data = json.loads(r.stdout)
        except ValueError:
            data = {}
        return r.returncode, data if isinstance(data, dict) else {}

    def wait_healthy(self, timeout_s: float = DAEMON_START_TIMEOUT_S) -> float:
        """Poll ``status`` until it exits 0; the seconds from spawn. Raises with the reason."""
        deadline = self.spawned + timeout_s
        code, data = 3, {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if (self.run_dir / "daemon.json").exists():  # no status process before that
                code, data = self.status()
                if code == 0:
                    self.procs.wait(5.0)
                    return time.monotonic() - self.spawned
            time.sleep(0.25)
        raise RuntimeError(
            f"the daemon is not healthy after {timeout_s:.0f} s (exit {self.proc.poll()}, "
            f"status {code}: {data.get('problems')}); daemon.log: {self.home.tail('daemon.log')}"
            f"; stdout: {self.home.tail('daemon.stdout')}"
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """``multipar-console stop``; its exit code, None when it could not run."""
        try:
            code = self._ctl("stop").returncode
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10.0)
        return code

    def close(self) -> None:
        """Stop it the way an operator would, then any process of ours left, by pid."""
        self.procs.current()
        if self.running():
            self.stop()
        self.procs.reap(5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)
        self.home.remove()

    def __enter__(self) -> DaemonRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
