"""Supervisor of the daemon's children (feed, engine): spawn, watch, restart, stop.

Owns the child processes: each is ``sys.executable -m feed|engine …`` with stdin closed,
stdout/stderr appended to its log file, and (on Linux) ``PR_SET_PDEATHSIG`` so a daemon that
is SIGKILLed never leaves an orphan. A child that exits or falls silent (no heartbeat for
``silent_after_s``) is restarted with backoff 1, 2, 4, 8, 16, 30, 30 … s. A run during which
the child beat for ``healthy_reset_s`` (counted from its first beat) forgives the crashes
before it: the restart after it waits the first step again. A child that exits with code 2
(``EXIT_CONFIG``: its configuration or its book is wrong) is not restarted: a loop cannot fix
it, so it is shown dead with its last log line. Every change is reported through
``model.set_child`` and the current pids are written to ``pids.json`` in the run directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from console.daemon.childproc import last_log_line, pdeathsig_preexec
from engine.wire import liveness

log = logging.getLogger(__name__)

BACKOFF_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# Both derived in engine/wire/liveness.py from the heartbeat interval and the engine's warm-up
# (the first beat may take long: imports on a loaded 2-core machine).
SILENT_AFTER_S = liveness.SILENT_AFTER_S
START_GRACE_S = liveness.START_GRACE_S
# Building a core, opening its book and binding take longer with more pairs (issue 16): the
# grace grows with them (a 1,000-pair engine gets 20 + 1,000 × 0.02 = 40 s for its first beat).
START_GRACE_PER_PAIR_S = 0.02


def start_grace_for(pairs: int) -> float:
    """The start-up grace for a book of ``pairs`` pairs: ``START_GRACE_S`` plus a share per pair."""
    return START_GRACE_S + START_GRACE_PER_PAIR_S * max(0, pairs)
# A run beating this long (from its first beat) resets the backoff: engine/wire/liveness.py.
HEALTHY_RESET_S = liveness.HEALTHY_AFTER_S
# The children's exit status for a bad configuration or book (python -m engine|feed, argparse):
# restarting cannot help, so the child is left dead for the operator.
EXIT_CONFIG = 2
STOP_TIMEOUT_S = 3.0
WATCH_INTERVAL_S = 0.25


class ChildReporter(Protocol):
    """The part of ConsoleModel the supervisor talks to."""

    def set_child(self, name: str, **fields: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child: its name ("feed"/"engine"), argv and log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    state: str = "stopped"  # starting/running/restarting/dead/stopped/held
    started_at: float = 0.0
    first_beat_at: float | None = None  # the first beat of this run the supervisor saw
    restarts: int = 0
    backoff_index: int = 0
    next_restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # every pid this child ever had

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def backoff_delay(index: int, schedule: Sequence[float] = BACKOFF_S) -> float:
    return schedule[min(index, len(schedule) - 1)]


class Supervisor:
    """Starts the children in order, restarts them with backoff, stops them on exit."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        model: ChildReporter,
        *,
        last_beat: Callable[[str], float | None] = lambda _name: None,
        pids_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff: Sequence[float] = BACKOFF_S,
        silent_after_s: float = SILENT_AFTER_S,
        start_grace_s: float = START_GRACE_S,
        healthy_reset_s: float = HEALTHY_RESET_S,
        watch_interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        self._children = {s.name: _Child(s) for s in specs}
        self._model = model
        self._last_beat = last_beat
        self._pids_path = pids_path
        self._clock = clock
        self._backoff = tuple(backoff)
        self._silent_after_s = silent_after_s
        self._start_grace_s = start_grace_s
        self._healthy_reset_s = healthy_reset_s
        self._watch_interval_s = watch_interval_s
        self._preexec = pdeathsig_preexec()
        self._watch_task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- queries -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._children)

    def pid(self, name: str) -> int | None:
        c = self._children[name]
        return c.pid if c.proc is not None and c.proc.poll() is None else None

    def state(self, name: str) -> str:
        return self._children[name].state

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    def all_pids(self) -> list[int]:
        return [pid for c in self._children.values() for pid in c.history]

    # -- lifecycle -----------------------------------------------------------------------
    def spawn(self, name: str) -> int:
        """Start one child now (from the event-loop thread: see pdeathsig_preexec)."""
        c = self._children[name]
        spec = c.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab", buffering=0) as out:
            # the child keeps its own copy of the descriptor; ours closes at once
            c.proc = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=spec.env,
                close_fds=True,
                preexec_fn=self._preexec,  # only a prctl call, resolved beforehand
            )
        c.started_at = self._clock()
        c.state = "starting"
        c.next_restart_at = None
        c.first_beat_at = None
        c.history.append(c.proc.pid)
        log.info("%s started, pid %d", name, c.proc.pid)
        self._write_pids()
        self._report(c, message=f"started, pid {c.proc.pid}")
        return c.proc.pid

    def start_watching(self) -> None:
        if self._watch_task is None:
            self._watch_task = asyncio.get_running_loop().create_task(
                self._watch(), name="supervisor-watch"
            )

    async def start(
        self, *, ready: Callable[[str], bool] | None = None, ready_timeout_s: float = 5.0
    ) -> None:
        """Spawn every child in order; before the next one, wait (bounded) until ``ready(name)``."""
        self._stopping = False
        names = list(self._children)
        for i, name in enumerate(names):
            self.spawn(name)
            if ready is not None and i < len(names) - 1:
                deadline = self._clock() + ready_timeout_s
                while not ready(name) and self._clock() < deadline:
                    if self._children[name].proc.poll() is not None:  # type: ignore[union-attr]
                        break
                    await asyncio.sleep(0.05)
        self.start_watching()

    async def hold(self, name: str, *, reason: str) -> int | None:
        """SIGKILL one child and keep it down (no automatic restart) until ``release``.

        SIGKILL works even on a SIGSTOPped process; returns the pid that was killed.
        """
        c = self._children[name]
        c.state = "held"
        c.next_restart_at = None
        pid = None
        if c.proc is not None and c.proc.poll() is None:
            pid = c.proc.pid
            with contextlib.suppress(ProcessLookupError):
                c.proc.kill()
            await self._reap(c.proc, STOP_TIMEOUT_S)
            log.warning("%s (pid %d) killed: %s", name, pid, reason)
        self._report(c, state="dead", message=reason)
        return pid

    def release(self, name: str) -> int | None:
        """Start a held child again at once, with a fresh backoff (not while stopping)."""
        if self._stopping:
            return None
        c = self._children[name]
        c.backoff_index = 0
        c.restarts += 1
        return self.spawn(name)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every child, wait up to ``timeout_s``, SIGKILL the rest. Idempotent."""
        self._stopping = True
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        procs = self._signal_all_term()
        deadline = time.monotonic() + timeout_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._kill_rest(procs)
        for p in procs:
            await self._reap(p, 1.0)
        self._after_stop()

    def stop_sync(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """The same as ``stop`` without an event loop (atexit, crash paths)."""
        self._stopping = True
        procs = self._signal_all_term()
        deadline = time.monotonic() + timeout_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._kill_rest(procs)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(1.0)
        self._after_stop()

    # -- internals -----------------------------------------------------------------------
    def _signal_all_term(self) -> list[subprocess.Popen[bytes]]:
        procs: list[subprocess.Popen[bytes]] = []
        for c in reversed(list(self._children.values())):  # engine first: it stops trading
            if c.proc is not None and c.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    c.proc.send_signal(signal.SIGTERM)
                    c.proc.send_signal(signal.SIGCONT)  # a SIGSTOPped child must see the TERM
                procs.append(c.proc)
        return procs

    def _kill_rest(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for p in procs:
            if p.poll() is None:
                log.warning("pid %d ignored SIGTERM; sending SIGKILL", p.pid)
                with contextlib.suppress(ProcessLookupError):
                    p.kill()

    def _after_stop(self) -> None:
        for c in self._children.values():
            if c.state != "stopped":
                code = c.proc.poll() if c.proc is not None else None
                c.state = "stopped"
                c.next_restart_at = None
                self._report(c, message="stopped" if code is None else f"stopped (exit {code})")
        self._write_pids()

    @staticmethod
    async def _reap(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _watch(self) -> None:
        while not self._stopping:
            try:
                self.check()
            except Exception:  # a supervisor that dies silently is worse than a logged bug
                log.exception("supervisor check failed")
            await asyncio.sleep(self._watch_interval_s)

    def check(self) -> None:
        """One pass: notice exits and silence, restart when a backoff has elapsed."""
        now = self._clock()
        for name, c in self._children.items():
            if c.state in ("held", "stopped", "dead") or self._stopping:
                continue
            if c.state == "restarting":
                if c.next_restart_at is not None and now >= c.next_restart_at:
                    c.restarts += 1
                    try:
                        self.spawn(name)
                    except (OSError, subprocess.SubprocessError) as exc:  # fork/exec failed
                        self._schedule_restart(c, f"cannot start: {exc}", now)
                else:
                    self._report(c)  # keeps the countdown on screen moving
                continue
            assert c.proc is not None
            code = c.proc.poll()
            if code is not None:
                why = f"exited with code {code}"
                last = last_log_line(c.spec.log_path) if code > 0 else ""
                if code == EXIT_CONFIG:
                    why += ", not restarted"
                    self._give_up(c, f"{why}: {last}" if last else why)
                else:
                    self._schedule_restart(c, f"{why}: {last}" if last else why, now)
                continue
            beat = self._last_beat(name)
            fresh = beat is not None and beat >= c.started_at
            if fresh:
                assert beat is not None
                if c.first_beat_at is None:
                    c.first_beat_at = beat
                if now - beat > self._silent_after_s:
                    self._kill_silent(c, f"no heartbeat for {now - beat:.1f} s", now)
                    continue
                if c.state == "starting":
                    c.state = "running"
                    self._report(c, message=f"running, pid {c.proc.pid}")
            elif now - c.started_at > self._start_grace_s:
                self._kill_silent(c, f"no heartbeat {self._start_grace_s:.0f} s after start", now)

    def _kill_silent(self, c: _Child, why: str, now: float) -> None:
        assert c.proc is not None
        with contextlib.suppress(ProcessLookupError):
            c.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            c.proc.wait(0.5)
        self._schedule_restart(c, why, now)

    def _ran_healthy(self, c: _Child) -> bool:
        """Did the run that just ended beat for ``healthy_reset_s``, from its first beat on?

        Judged when the run ends, from its first and its last beat, so it holds however the
        run ended (exit, kill, silence) and whether or not a check ran inside the window.
        """
        if c.first_beat_at is None:
            return False  # never seen beating: a failed start
        last = self._last_beat(c.spec.name)
        if last is None or last < c.started_at:
            return False
        return last - c.first_beat_at >= self._healthy_reset_s

    def _give_up(self, c: _Child, why: str) -> None:
        """A configuration or book error: leave the child dead, with its last words."""
        c.state = "dead"
        c.next_restart_at = None
        c.first_beat_at = None
        pid = c.proc.pid if c.proc is not None else None
        log.error("%s (pid %s) %s", c.spec.name, pid, why)
        self._report(c, message=why)

    def _schedule_restart(self, c: _Child, why: str, now: float) -> None:
        if self._ran_healthy(c):
            c.backoff_index = 0  # a healthy run forgives the crashes before it
        c.first_beat_at = None  # the run is over; a failed respawn must not count it again
        delay = backoff_delay(c.backoff_index, self._backoff)
        c.backoff_index += 1
        c.state = "restarting"
        c.next_restart_at = now + delay
        pid = c.proc.pid if c.proc is not None else None
        log.warning("%s (pid %s) %s; restarting in %g s", c.spec.name, pid, why, delay)
        # the model turns the state change into an event line: no separate add_event
        self._report(c, message=f"{why}; restarting in {delay:g} s")

    def _report(self, c: _Child, *, state: str | None = None, message: str | None = None) -> None:
        fields: dict[str, Any] = {
            "state": state or c.state,
            "pid": c.pid if c.state in ("starting", "running") else None,
            "restarts": c.restarts,
            "next_restart_s": (
                max(0.0, c.next_restart_at - self._clock())
                if c.next_restart_at is not None
                else None
            ),
            "last_beat": self._last_beat(c.spec.name),
        }
        if message is not None:
            fields["message"] = message
        try:
            self._model.set_child(c.spec.name, **fields)
        except Exception:
            log.exception("model.set_child failed")

    def _write_pids(self) -> None:
        if self._pids_path is None:
            return
        data = {
            "daemon": os.getpid(),
            "children": {n: self.pid(n) for n in self._children},
            "history": {n: list(c.history) for n, c in self._children.items()},
        }
        tmp = self._pids_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self._pids_path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self._pids_path, exc)
