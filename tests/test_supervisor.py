"""The run directory and the supervisor, with real child processes and real ipc sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from console.bridge import Bridge
from console.daemon.supervisor import (
    BACKOFF_S,
    HEALTHY_RESET_S,
    SILENT_AFTER_S,
    ChildSpec,
    Supervisor,
    backoff_delay,
)
from console.model import ConsoleModel
from console.rundir import (
    MAX_IPC_PATH,
    Endpoints,
    RunDirError,
    create_run_dir,
    prune_runs,
    runs_root,
)
from engine.wire import liveness
from tests.procs import alive, until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(90)


class Recorder(ConsoleModel):
    """The real model, also keeping every set_child call in order."""

    def __init__(self) -> None:
        super().__init__(["BTC/USDT"], {})
        self.children_log: list[tuple[str, dict[str, Any]]] = []

    def set_child(self, name: str, **fields: Any) -> None:
        self.children_log.append((name, fields))
        super().set_child(name, **fields)

    def states(self, name: str) -> list[dict[str, Any]]:
        return [f for n, f in self.children_log if n == name]

    def event_texts(self) -> list[str]:
        return [e.text for e in self.events]


@pytest.fixture
def short_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="mps-", dir="/tmp"))
    yield d
    import shutil

    shutil.rmtree(d, ignore_errors=True)


# -- run directory --------------------------------------------------------------------------
class TestRunDir:
    """Where a run lives: private, short enough for ipc, pruned."""

    def test_fresh_run_dir_is_private_with_short_endpoints(self, short_dir: Path) -> None:
        run = create_run_dir(root=short_dir)
        assert run.path.parent == short_dir
        assert run.path.name.startswith("run-") and run.path.name.endswith(f"-{os.getpid()}")
        assert stat.S_IMODE(os.stat(run.path).st_mode) == 0o700
        eps = run.endpoints.as_dict()
        assert set(eps) == {
            "feed_pub", "feed_rep", "engine_pub", "engine_cmd", "daemon_pub", "daemon_ctl"
        }  # fmt: skip
        for ep in eps.values():
            assert ep.startswith(f"ipc://{run.path}/")
            assert len(ep) - len("ipc://") < MAX_IPC_PATH
        assert run.logs.console == run.path / "console.log"
        assert run.logs.feed.parent == run.path and run.pids == run.path / "pids.json"

    def test_root_from_xdg_runtime_dir_is_0700(self, short_dir: Path) -> None:
        xdg = short_dir / "xdg"
        xdg.mkdir(mode=0o755)
        root = runs_root({"XDG_RUNTIME_DIR": str(xdg)})
        assert root == xdg / "multipar-console"
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700

    def test_loose_root_is_tightened(self, short_dir: Path) -> None:
        xdg = short_dir / "xdg"
        (xdg / "multipar-console").mkdir(parents=True, mode=0o777)
        os.chmod(xdg / "multipar-console", 0o777)
        root = runs_root({"XDG_RUNTIME_DIR": str(xdg)})
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700

    def test_too_long_xdg_falls_back_to_tmp(self, short_dir: Path) -> None:
        deep = short_dir / ("x" * 90)
        deep.mkdir()
        root = runs_root({"XDG_RUNTIME_DIR": str(deep)})
        assert root == Path(f"/tmp/multipar-console-{os.getuid()}")
        run = create_run_dir(root=deep)  # explicit long root: the run still gets short paths
        assert len(run.endpoints.engine_cmd) - 6 < MAX_IPC_PATH
        import shutil

        shutil.rmtree(run.path)

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
    def test_refuses_a_root_owned_by_another_user(self, short_dir: Path) -> None:
        theirs = short_dir / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(RunDirError, match="owned by uid 65534"):
            create_run_dir(theirs)

    def test_refuses_a_symlink(self, short_dir: Path) -> None:
        (short_dir / "real").mkdir()
        (short_dir / "link").symlink_to(short_dir / "real")
        with pytest.raises(RunDirError, match="not a directory"):
            create_run_dir(short_dir / "link")

    def test_keeps_the_newest_ten_and_live_runs(self, short_dir: Path) -> None:
        dead_pid = 4_000_000  # above pid_max: never alive
        for i in range(12):
            (short_dir / f"run-20240101-0000{i:02d}-{dead_pid}").mkdir()
        live = short_dir / f"run-20230101-000000-{os.getppid()}"
        live.mkdir()
        (short_dir / "not-a-run").mkdir()
        removed = prune_runs(short_dir, keep=10)
        names = sorted(p.name for p in short_dir.iterdir())
        assert len(removed) == 2
        assert live.exists() and (short_dir / "not-a-run").exists()
        assert f"run-20240101-000000-{dead_pid}" not in names
        assert f"run-20240101-000011-{dead_pid}" in names

    def test_endpoint_overrides_and_limits(self, short_dir: Path) -> None:
        eps = Endpoints.ipc(short_dir)
        tcp = eps.with_overrides(engine_cmd="tcp://10.0.0.5:7003", feed_pub=None)
        assert tcp.engine_cmd == "tcp://10.0.0.5:7003" and tcp.feed_pub == eps.feed_pub
        assert Endpoints.tcp("127.0.0.1", 7000).engine_cmd == "tcp://127.0.0.1:7003"
        with pytest.raises(RunDirError, match="limit"):
            Endpoints.ipc(short_dir / ("y" * 100))
        with pytest.raises(RunDirError, match="not ipc"):
            eps.with_overrides(engine_pub="udp://x")


# -- supervisor -----------------------------------------------------------------------------
def feed_spec(d: Path) -> tuple[ChildSpec, Endpoints]:
    """The real feed on a simulated market, on ipc sockets in ``d``."""
    eps = Endpoints.ipc(d)
    log_file = d / "feed.log"
    argv = [
        sys.executable, "-m", "feed", "--source", "sim", "--symbols", "BTC/USDT", "--seed", "3",
        "--pub", eps.feed_pub, "--rep", eps.feed_rep, "--log-file", str(log_file),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ChildSpec("feed", argv, log_file, env), eps


def test_backoff_schedule() -> None:
    assert [backoff_delay(i) for i in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert BACKOFF_S[0] == 1.0


async def test_killed_child_is_restarted_with_backoff_and_reported(short_dir: Path) -> None:
    spec, eps = feed_spec(short_dir)
    model = Recorder()
    bridge = Bridge(eps, model)
    bridge.start()
    sup = Supervisor(
        [spec], model, last_beat=bridge.last_beat.get, pids_path=short_dir / "pids.json"
    )
    try:
        await sup.start()
        await until(lambda: sup.state("feed") == "running", what="first beat")
        first = sup.pid("feed")
        assert first is not None
        assert json.loads((short_dir / "pids.json").read_text())["children"]["feed"] == first

        os.kill(first, signal.SIGKILL)
        await until(lambda: sup.state("feed") == "restarting", what="death noticed")
        restarting = [f for f in model.states("feed") if f["state"] == "restarting"]
        assert restarting[0]["message"] == "exited with code -9; restarting in 1 s"
        assert restarting[0]["next_restart_s"] == pytest.approx(1.0, abs=0.3)
        # what the screen shows: the child's state and an event line
        assert model.children["feed"].state == "restarting"
        assert "feed restarting: exited with code -9; restarting in 1 s" in model.event_texts()
        t_dead = time.monotonic()
        await until(
            lambda: sup.state("feed") == "running" and sup.pid("feed") != first, what="restart"
        )
        assert time.monotonic() - t_dead >= 0.7  # waited out the backoff, not at once
        second = sup.pid("feed")
        assert sup.restarts("feed") == 1

        os.kill(second, signal.SIGKILL)  # second crash in a row: the wait doubles
        await until(lambda: sup.state("feed") == "restarting", what="second death noticed")
        restarting = [f for f in model.states("feed") if f["state"] == "restarting"]
        assert restarting[-1]["next_restart_s"] == pytest.approx(2.0, abs=0.3)
        await until(
            lambda: sup.state("feed") == "running" and sup.pid("feed") not in (first, second)
        )
        assert sup.restarts("feed") == 2
        history = json.loads((short_dir / "pids.json").read_text())["history"]["feed"]
        assert history[:2] == [first, second] and len(history) == 3
    finally:
        await sup.stop()
        await bridge.stop()
    assert all(not alive(pid) for pid in sup.all_pids())
    assert model.states("feed")[-1]["state"] == "stopped"


async def test_silent_child_is_killed_and_restarted(short_dir: Path) -> None:
    """A stopped (SIGSTOP) feed still runs but beats no more: it is killed and restarted."""
    spec, eps = feed_spec(short_dir)
    model = Recorder()
    bridge = Bridge(eps, model)
    bridge.start()
    sup = Supervisor([spec], model, last_beat=bridge.last_beat.get, silent_after_s=2.5)
    try:
        await sup.start()
        await until(lambda: sup.state("feed") == "running", what="first beat")
        first = sup.pid("feed")
        assert first is not None
        os.kill(first, signal.SIGSTOP)
        await until(lambda: sup.state("feed") == "restarting", what="silence noticed")
        assert not alive(first)  # killed, not left running mute
        why = [f.get("message", "") for f in model.states("feed") if f["state"] == "restarting"]
        assert why[0].startswith("no heartbeat for") and why[0].endswith("restarting in 1 s")
        await until(lambda: sup.state("feed") == "running" and sup.pid("feed") != first)
    finally:
        await sup.stop()
        await bridge.stop()


async def test_exit_reason_comes_from_the_log(short_dir: Path) -> None:
    """A child that fails at start shows its last log line, so the operator sees why."""
    log_file = short_dir / "engine.log"
    argv = [sys.executable, "-c", "import sys; print('lost the exchange'); sys.exit(1)"]
    model = Recorder()
    sup = Supervisor([ChildSpec("engine", argv, log_file)], model)
    try:
        await sup.start()
        await until(lambda: sup.state("engine") == "restarting", what="the failed start")
        msg = model.children["engine"].message
        assert msg == "exited with code 1: lost the exchange; restarting in 1 s"
    finally:
        await sup.stop()


def restart_delays(model: Recorder, name: str) -> list[float]:
    """The wait announced when each restart was scheduled (not the countdown updates after)."""
    return [
        f["next_restart_s"]
        for f in model.states(name)
        if f["state"] == "restarting" and "restarting in" in f.get("message", "")
    ]


async def kill_when_running(sup: Supervisor, name: str, seen: list[int]) -> int:
    """Wait for a new pid of ``name`` to beat, SIGKILL it, wait until the death is noticed."""
    await until(
        lambda: sup.state(name) == "running" and sup.pid(name) not in seen, what="a new beating pid"
    )
    pid = sup.pid(name)
    assert pid is not None
    seen.append(pid)
    os.kill(pid, signal.SIGKILL)
    await until(lambda: sup.state(name) == "restarting", what="the death noticed")
    return pid


def test_a_healthy_run_is_derived_from_the_silence_limit() -> None:
    """Long enough to outlast a silence window, short enough that an engine killed every 20 s
    is back in a second (60 s from spawn let repeated kills walk the wait up to 30 s)."""
    assert HEALTHY_RESET_S == liveness.HEALTHY_AFTER_S == 2 * SILENT_AFTER_S
    assert SILENT_AFTER_S < HEALTHY_RESET_S < 20.0 - BACKOFF_S[0] - 2.0  # 2 s: start to beat


async def test_first_crash_after_a_healthy_run_restarts_after_the_first_step(
    short_dir: Path,
) -> None:
    """Real feed, real heartbeats, shortened timings: two quick crashes grow the wait (0.5 s,
    then 2 s); a run that beats for longer than healthy_reset_s forgives them, so the crash
    after it waits 0.5 s again, not 4 s."""
    spec, eps = feed_spec(short_dir)
    model = Recorder()
    bridge = Bridge(eps, model)
    bridge.start()
    sup = Supervisor(
        [spec], model, last_beat=bridge.last_beat.get, backoff=(0.5, 2.0, 4.0), healthy_reset_s=2.5
    )
    seen: list[int] = []
    try:
        await sup.start()
        await kill_when_running(sup, "feed", seen)  # first crash: first step
        await kill_when_running(sup, "feed", seen)  # beat for an instant: grown
        assert restart_delays(model, "feed") == pytest.approx([0.5, 2.0], abs=0.1)
        await until(lambda: sup.state("feed") == "running" and sup.pid("feed") not in seen)
        await asyncio.sleep(3.5)  # beats for longer than healthy_reset_s
        await kill_when_running(sup, "feed", [])
        t_dead = time.monotonic()
        assert restart_delays(model, "feed") == pytest.approx([0.5, 2.0, 0.5], abs=0.1)
        await until(lambda: sup.state("feed") == "running" and sup.pid("feed") not in seen)
        assert time.monotonic() - t_dead < 0.5 + 5.0  # the first step and a start, no 4 s wait
        assert sup.restarts("feed") == 3
    finally:
        await sup.stop()
        await bridge.stop()


async def test_repeated_quick_crashes_still_back_off(short_dir: Path) -> None:
    """A child that dies at start never beats: every restart waits the next step."""
    argv = [sys.executable, "-c", "import sys; print('no exchange'); sys.exit(1)"]
    model = Recorder()
    sup = Supervisor(
        [ChildSpec("feed", argv, short_dir / "f.log")],
        model,
        backoff=(0.2, 0.4, 0.8, 1.6),
        healthy_reset_s=0.1,
    )
    try:
        await sup.start()
        await until(lambda: len(restart_delays(model, "feed")) >= 4, what="four restarts")
        assert restart_delays(model, "feed")[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6], abs=0.05)
    finally:
        await sup.stop()


async def test_a_healthy_run_counts_from_the_first_beat_not_from_spawn(short_dir: Path) -> None:
    """A child that took long to beat and beat only briefly did not have a healthy run, however
    long ago it was spawned: its crash still grows the wait (it used to reset it)."""
    beats: dict[str, float] = {}
    spec = ChildSpec(
        "feed", [sys.executable, "-c", "import time; time.sleep(60)"], short_dir / "f.log"
    )
    model = Recorder()
    sup = Supervisor(
        [spec],
        model,
        last_beat=beats.get,
        backoff=(0.3, 5.0),
        healthy_reset_s=1.0,
        start_grace_s=30.0,
        silent_after_s=30.0,
    )
    try:
        await sup.start()
        first = sup.pid("feed")
        assert first is not None
        os.kill(first, signal.SIGKILL)  # a failed start: first step
        await until(lambda: sup.pid("feed") not in (None, first), what="the restart")
        await asyncio.sleep(1.5)  # longer than healthy_reset_s since the spawn, and no beat
        t_end = time.monotonic() + 0.4
        while time.monotonic() < t_end:  # then beats, for less than healthy_reset_s
            beats["feed"] = time.monotonic()
            await asyncio.sleep(0.05)
        assert sup.state("feed") == "running"
        os.kill(sup.pid("feed"), signal.SIGKILL)  # type: ignore[arg-type]
        await until(lambda: sup.state("feed") == "restarting", what="the second death")
        assert restart_delays(model, "feed") == pytest.approx([0.3, 5.0], abs=0.1)
    finally:
        await sup.stop()


async def test_the_reset_does_not_wait_for_a_check_inside_the_healthy_window(
    short_dir: Path,
) -> None:
    """Judged when the run ends, from its first and last beat: a run that beat for
    HEALTHY_RESET_S resets the wait even if no check ran while it was healthy (the reset used
    to happen only in a check that saw the child alive past the window)."""
    now = [1000.0]
    spec = ChildSpec(
        "feed", [sys.executable, "-c", "import time; time.sleep(60)"], short_dir / "f.log"
    )
    model = Recorder()
    sup = Supervisor([spec], model, last_beat=lambda _n: now[0], clock=lambda: now[0])

    async def crash() -> None:
        os.kill(sup.pid("feed"), signal.SIGKILL)  # type: ignore[arg-type]
        await until(lambda: sup._children["feed"].proc.poll() is not None)  # type: ignore[union-attr]
        sup.check()  # notices the death, schedules the restart
        now[0] += 100.0  # past any backoff
        sup.check()  # respawns
        assert sup.state("feed") == "starting"

    try:
        sup.spawn("feed")
        for _ in range(3):  # three deaths before a first beat: 1, 2, 4
            await crash()
        assert restart_delays(model, "feed") == [1.0, 2.0, 4.0]
        sup.check()
        assert sup.state("feed") == "running"  # the first beat seen
        now[0] += HEALTHY_RESET_S - 1.0  # beating, but not long enough
        await crash()
        assert restart_delays(model, "feed")[-1] == 8.0
        sup.check()
        now[0] += HEALTHY_RESET_S  # beating long enough; no check in between
        await crash()
        assert restart_delays(model, "feed")[-1] == 1.0
        sup.check()  # and the count starts again from there
        await crash()
        assert restart_delays(model, "feed")[-1] == 2.0
    finally:
        await sup.stop()


async def test_a_configuration_or_book_error_is_not_restarted(short_dir: Path) -> None:
    """Exit 2 is what the engine and the feed say when their configuration or book is wrong:
    no restart can fix that, so the child stays dead, with its last log line on screen."""
    log_file = short_dir / "engine.log"
    why = "/books/paper.sqlite: empty file (0 bytes), not a book (pass another --db)"
    argv = [sys.executable, "-c", f"import sys; print({why!r}, file=sys.stderr); sys.exit(2)"]
    model = Recorder()
    sup = Supervisor([ChildSpec("engine", argv, log_file)], model, backoff=(0.1,))
    try:
        await sup.start()
        await until(lambda: sup.state("engine") == "dead", what="the refusal")
        await asyncio.sleep(1.0)  # ten backoffs: no restart came
        assert sup.state("engine") == "dead" and sup.restarts("engine") == 0
        assert len(sup.all_pids()) == 1
        status = model.children["engine"]
        assert status.message == f"exited with code 2, not restarted: {why}"
        assert status.pid is None and status.next_restart_s is None
        last = model.events[-1]
        assert last.level == "error" and last.text == f"engine dead: {status.message}"
        assert [f["state"] for f in model.states("engine")] == ["starting", "dead"]
    finally:
        await sup.stop()
    assert model.children["engine"].state == "stopped"


async def test_the_real_engine_on_a_foreign_database_is_left_dead(short_dir: Path) -> None:
    """The real engine exits 2 on a book it must not touch; the supervisor does not loop on it."""
    import sqlite3
    from contextlib import closing

    db = short_dir / "other.sqlite"
    with closing(sqlite3.connect(db)) as c:
        c.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        c.commit()
    data = db.read_bytes()
    eps = Endpoints.ipc(short_dir)
    log_file = short_dir / "engine.log"
    argv = [
        sys.executable, "-m", "engine", "--config", str(ROOT / "safe_list.yaml"), "--db", str(db),
        "--feed-pub", eps.feed_pub, "--feed-rep", eps.feed_rep, "--pub", eps.engine_pub,
        "--cmd", eps.engine_cmd, "--log-file", str(log_file),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    model = Recorder()
    sup = Supervisor([ChildSpec("engine", argv, log_file, env)], model, backoff=(0.1,))
    try:
        await sup.start()
        await until(lambda: sup.state("engine") == "dead", timeout_s=30, what="the refusal")
        await asyncio.sleep(0.5)
        assert sup.restarts("engine") == 0 and len(sup.all_pids()) == 1
        assert model.children["engine"].message == (
            f"exited with code 2, not restarted: {db}: SQLite database of another program "
            "(tables users), not a multipar-console book (pass another --db)"
        )
        assert db.read_bytes() == data
    finally:
        await sup.stop()


async def test_stop_kills_a_stopped_child_within_the_deadline(short_dir: Path) -> None:
    spec, _ = feed_spec(short_dir)
    sup = Supervisor([spec], Recorder())
    sup.spawn("feed")
    pid = sup.pid("feed")
    assert pid is not None
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    await sup.stop(timeout_s=3.0)
    assert time.monotonic() - t0 < 5.0
    assert not alive(pid)
    await sup.stop()  # idempotent


def test_children_die_with_a_sigkilled_parent(short_dir: Path) -> None:
    """PR_SET_PDEATHSIG: a console killed with SIGKILL leaves no child behind."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from console.daemon.supervisor import ChildSpec, Supervisor

        class M:
            def set_child(self, name, **f): pass

        async def main():
            spec = ChildSpec("feed", [sys.executable, "-c", "import time; time.sleep(60)"], Path({str(short_dir)!r}) / "c.log")
            sup = Supervisor([spec], M())
            print(sup.spawn("feed"), flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert alive(child)
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()  # type: ignore[union-attr]
