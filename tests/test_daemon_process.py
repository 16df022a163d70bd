"""The daemon as the operator runs it: ``multipar-console daemon`` as a real process with its
real children, and the ``status``, ``stop`` and ``attach`` subcommands against it.

One daemon (module fixture) serves the read-only checks; the tests that stop or degrade it start
their own. Covers: a second daemon on the same book exits 2 with one line; ``status`` exit codes
(0 healthy, 1 degraded, 3 not running) and ``--json``; a hang-up does not stop the daemon; two
consoles attached see the same pause; ``stop --flatten`` closes the position before stopping;
a remote console attaches over tcp with CURVE and a wrong key is refused and counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.client import DaemonClient
from console.daemon import keys as curve_keys
from console.daemon.home import BookHome, read_daemon_file
from tests.procs import alive, until
from tests.store_seed import seed_open_position
from tests.test_daemon import SYMBOLS, new_model

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


def cli(
    *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class RunningDaemon:
    def __init__(self, run: Path, db: Path, proc: subprocess.Popen[str]) -> None:
        self.run, self.db, self.proc = run, db, proc

    @property
    def where(self) -> list[str]:
        return ["--db", str(self.db), "--run-dir", str(self.run)]

    def info(self):  # type: ignore[no-untyped-def]
        return read_daemon_file(BookHome(self.run))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_daemon(
    d: Path, *extra: str, seed_position: bool = False, env: dict[str, str] | None = None
) -> RunningDaemon:
    run, db = d / "run", d / "book.sqlite"
    if seed_position:
        seed_open_position(db)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console.cli",
            "daemon",
            "--source",
            "sim",
            "--seed",
            "11",
            "--timeframe",
            "2s",
            "--db",
            str(db),
            "--run-dir",
            str(run),
            *extra,
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    rd = RunningDaemon(run, db, proc)
    deadline = time.monotonic() + 40  # generous: CI runs this beside other process tests
    last = ""
    while time.monotonic() < deadline and proc.poll() is None:
        info = rd.info() if (run / "daemon.json").exists() else None
        if info is not None:
            r = cli("status", *rd.where)
            if r.returncode == 0:
                return rd
            last = r.stdout
        time.sleep(0.2)
    rd.stop()
    _out, err = proc.communicate(timeout=5)
    raise AssertionError(f"the daemon did not become healthy: {last}\n{err[-2000:]}")


@pytest.fixture(scope="module")
def daemon() -> Iterator[RunningDaemon]:
    d = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    rd = start_daemon(d)
    try:
        yield rd
    finally:
        rd.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dq-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_second_daemon_on_the_same_book_exits_2(daemon: RunningDaemon, short_dir: Path) -> None:
    r = cli(
        "daemon", "--source", "sim", "--db", str(daemon.db), "--run-dir", str(short_dir / "other")
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(daemon.db) in lines[0], r.stderr
    assert f"in use by process {daemon.proc.pid}" in lines[0]
    assert daemon.proc.poll() is None  # the first one trades on


def test_status_healthy_text_and_json(daemon: RunningDaemon) -> None:
    r = cli("status", *daemon.where)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"pid {daemon.proc.pid}" in r.stdout and "health    healthy" in r.stdout
    for sym in SYMBOLS:
        assert sym in r.stdout
    r = cli("status", "--json", *daemon.where)
    assert r.returncode == 0
    st = json.loads(r.stdout)
    assert st["running"] is True and st["health"] == "healthy" and st["pid"] == daemon.proc.pid
    assert {c["name"]: c["state"] for c in st["children"]} == {
        "feed": "running",
        "engine": "running",
    }
    assert all(c["beat_age_s"] < 3 for c in st["children"])
    assert {p["symbol"] for p in st["pairs"]} == set(SYMBOLS)
    assert "safe_list" not in st


def test_status_of_a_book_without_daemon_is_3(short_dir: Path) -> None:
    r = cli("status", "--db", str(short_dir / "none.sqlite"))
    assert r.returncode == 3 and "not running" in r.stdout
    r = cli("status", "--json", "--db", str(short_dir / "none.sqlite"))
    assert r.returncode == 3 and json.loads(r.stdout)["running"] is False
    r = cli("attach", "--db", str(short_dir / "none.sqlite"))
    assert r.returncode == 3 and "no daemon runs for" in r.stderr


def test_a_hangup_does_not_stop_the_daemon(daemon: RunningDaemon) -> None:
    daemon.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert daemon.proc.poll() is None
    assert cli("status", *daemon.where).returncode == 0


async def test_two_consoles_see_the_same_pause(daemon: RunningDaemon) -> None:
    info = daemon.info()
    assert info is not None
    a, b = DaemonClient(info.endpoints, info.mode), DaemonClient(info.endpoints, info.mode)
    ma, mb = new_model(), new_model()
    await a.start(ma)
    await b.start(mb)
    try:
        assert await a.wait_ready(20) and await b.wait_ready(20)
        ack = await a.command("pause", "SOL/USDT")
        assert ack.ok and ack.modes["SOL/USDT"] == "PAUSED", ack
        await until(lambda: mb.pairs["SOL/USDT"].state.mode == "PAUSED", what="the pause in B")
        ack = await b.command("resume", "SOL/USDT")  # commands work from either console
        assert ack.ok
        await until(lambda: ma.pairs["SOL/USDT"].state.mode == "ACTIVE", what="the resume in A")
        # the daemon's children are known at attach, before their next report
        assert ma.children["engine"].state == "running" and mb.children["feed"].pid
    finally:
        await a.stop()
        await b.stop()
    assert daemon.proc.poll() is None  # detaching stopped nothing


def test_status_degraded_then_stop_flatten(short_dir: Path) -> None:
    rd = start_daemon(short_dir, seed_position=True)
    try:
        st = json.loads(cli("status", "--json", *rd.where).stdout)
        pids = {c["name"]: c["pid"] for c in st["children"]}
        btc = next(p for p in st["pairs"] if p["symbol"] == "BTC/USDT")
        assert btc["side"] == "long" and btc["qty"] > 0
        os.kill(pids["feed"], signal.SIGSTOP)  # a feed that stops beating
        try:
            deadline = time.monotonic() + 10
            r = cli("status", *rd.where)
            while r.returncode == 0 and time.monotonic() < deadline:
                time.sleep(0.3)
                r = cli("status", *rd.where)
            assert r.returncode == 1 and "degraded" in r.stdout, r.stdout
            assert "feed" in r.stdout.split("health", 1)[1].splitlines()[0]
        finally:
            os.kill(pids["feed"], signal.SIGCONT)
        r = cli("stop", "--flatten", *rd.where)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "stopping (flat)" in r.stdout and "stopped: daemon pid" in r.stdout
        assert rd.proc.wait(5) == 0
        assert not any(alive(p) for p in pids.values())
        import sqlite3

        with sqlite3.connect(rd.db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM positions").fetchone() == (0,)
        assert not (rd.run / "daemon.json").exists()
        assert cli("status", *rd.where).returncode == 3
    finally:
        rd.stop()


def _free_port_block(n: int = 4) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65533:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


async def test_remote_attach_with_curve(short_dir: Path) -> None:
    keys = short_dir / "keys"
    curve_keys.make_server_keys(keys)
    _, laptop_secret = curve_keys.make_client_keys(keys, "laptop")
    stranger = short_dir / "stranger"
    curve_keys.make_server_keys(stranger)  # a key pair nobody authorised
    port = _free_port_block()
    rd = start_daemon(short_dir, "--listen", f"tcp://127.0.0.1:{port}", "--keys-dir", str(keys))
    try:
        from console.cli import remote_endpoints

        eps = remote_endpoints(f"tcp://127.0.0.1:{port}")
        server = curve_keys.load_public(keys / "server.key")
        pub, sec = curve_keys.load_client_pair(laptop_secret)
        good = DaemonClient(
            eps, "PAPER", secure=lambda s: curve_keys.secure_client(s, server, pub, sec)
        )
        spub, ssec = curve_keys.load_server_pair(stranger)
        bad = DaemonClient(
            eps, "PAPER", secure=lambda s: curve_keys.secure_client(s, server, spub, ssec)
        )
        mg, mb = new_model(), new_model()
        await good.start(mg)
        await bad.start(mb)
        try:
            assert await good.wait_ready(20)
            assert good.last_status is not None and good.last_status.remote.endswith(str(port))
            ack = await good.command("pause", "BTC/USDT")
            assert ack.ok and ack.modes["BTC/USDT"] == "PAUSED"
            await until(lambda: mg.pairs["BTC/USDT"].state.mode == "PAUSED", what="over tcp")
            assert await bad.status() is None and not mb.ingested  # nothing reaches it
        finally:
            await good.stop()
            await bad.stop()
        st = json.loads(cli("status", "--json", *rd.where).stdout)
        assert st["remote"] == f"tcp://127.0.0.1:{port}"
        assert st["counters"]["remote_refused"] >= 1 and st["counters"]["remote_accepted"] >= 1
    finally:
        rd.stop()
    await asyncio.sleep(0)


def test_the_daemon_process_loads_no_textual() -> None:
    code = (
        "import sys, console.daemon.main, console.daemon.gateway; print('textual' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_a_safe_list_longer_than_a_wire_string_still_attaches() -> None:
    """The status carries the safe list line by line: 100 pairs are far beyond 4,096 chars."""
    from console.daemon import wire as dwire
    from engine.core.config import parse_safe_list
    from engine.wire import commands as engine_wire

    base = (ROOT / "safe_list.yaml").read_text()
    text = base + "".join(f"# a long comment line number {i} " + "x" * 60 + "\n" for i in range(100))
    assert len(text) > 2 * 4096
    st = dwire.StatusMsg(
        id="a", pid=1, book="b", mode="PAPER", source="sim", uptime_s=1.0, health="healthy",
        safe_list=text.splitlines(),
    )  # fmt: skip
    back = dwire.StatusMsg.from_wire(engine_wire.unpack(engine_wire.pack_map(st.to_wire())))
    rebuilt = "\n".join(back.safe_list) + "\n"
    assert rebuilt == text
    assert parse_safe_list(rebuilt, "x").active_symbols() == parse_safe_list(base, "y").active_symbols()
