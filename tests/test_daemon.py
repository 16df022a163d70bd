"""The bridge (real PUB/SUB over ipc), and a daemon with the real feed and engine and a console
attached to it over its control socket: command round trips through the daemon, command
timeouts, the kill switch and its fallback on a stopped engine, a second console, status.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from console import preflight
from console.bridge import Bridge
from console.client import DaemonClient
from console.daemon.home import BookHome
from console.daemon.service import Daemon
from console.model import ConsoleModel
from console.rundir import Endpoints
from engine.core.config import load_safe_list
from engine.wire import commands as engine_wire
from engine.wire.schema import HeartbeatMsg
from feed import wire as feed_wire
from tests.console_fakes import pair_msg
from tests.procs import alive, until
from tests.store_seed import seed_open_position

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mpb-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def engine_beat(seq: int) -> bytes:
    return engine_wire.pack_map(
        HeartbeatMsg(kind="engine", pid=1, ts=time.time_ns(), seq=seq).to_wire()
    )


def new_model() -> ConsoleModel:
    cfg = load_safe_list(ROOT / "safe_list.yaml")
    meta = {s: {"tier": p.tier.value, "strategy": p.strategy} for s, p in cfg.pairs.items()}
    return ConsoleModel(cfg.active_symbols(), meta)


# -- bridge -------------------------------------------------------------------------------
class TestBridge:
    """Malformed input is counted and dropped; the bridge keeps going."""

    async def test_malformed_messages_are_counted_not_raised(self, short_dir: Path) -> None:
        eps = Endpoints.ipc(short_dir)
        ctx = zmq.Context()
        eng = ctx.socket(zmq.PUB)
        feed = ctx.socket(zmq.PUB)
        eng.bind(eps.engine_pub)
        feed.bind(eps.feed_pub)
        model = new_model()
        bridge = Bridge(eps, model)
        bridge.watch({"BTC/USDT"})
        bridge.start()
        try:
            # slow joiner: beat until the bridge hears both publishers
            deadline = time.monotonic() + 10
            while not {"engine", "feed"} <= set(bridge.last_beat) and time.monotonic() < deadline:
                eng.send_multipart([b"_hb", engine_beat(1)])
                feed.send_multipart(
                    [b"_hb", feed_wire.encode_map({"seq": 1, "kind": "feed", "pid": 2})]
                )
                await asyncio.sleep(0.05)
            assert bridge.beat_pid == {"engine": 1, "feed": 2}
            base_bad = bridge.bad_messages
            bad_frames: list[list[bytes]] = [
                [b"pair", b"\xc1\xc1 not msgpack"],  # undecodable
                [b"pair", msgpack.packb({"symbol": "BTC/USDT"})],  # no version
                [b"pair", msgpack.packb([1, 2, 3])],  # not a map
                [b"pair"],  # one frame
                [b"pair", engine_wire.pack({}), b"extra"],  # three frames
                [b"pair-nonsense", engine_wire.pack({"seq": 1})],  # unknown topic (under "pair")
                # a pair's fast topic carrying another pair (the bridge watches BTC/USDT)
                [b"view:BTC/USDT", engine_wire.pack_map(pair_msg("ETH/USDT", seq=1).to_wire())],
                [b"pair", engine_wire.pack({"seq": 9, "symbol": 42})],  # not a PairStateMsg
                [b"order", engine_wire.pack({"seq": 1, "symbol": "BTC/USDT"})],  # fields missing
                [b"_hb", engine_wire.pack({"seq": 2, "kind": "engine"})],  # no pid, no ts
            ]
            for frames in bad_frames:
                eng.send_multipart(frames)
            feed.send_multipart([b"_status", b"\x00garbage"])
            # then good ones, with a sequence jump of 3 on topic pair
            for seq in (1, 2, 6):
                m = pair_msg("BTC/USDT", mode="PAUSED", seq=seq)
                m.bid, m.ask = 100.0 + seq, 101.0 + seq
                eng.send_multipart([b"pair", engine_wire.pack_map(m.to_wire())])
            pv = model.pairs["BTC/USDT"]
            await until(lambda: pv.state.seq == 6, what="the good pair messages")
            assert bridge.bad_messages - base_bad == len(bad_frames) + 1
            assert bridge.gaps["engine:pair"] == 3
            assert bridge.marks["BTC/USDT"] == (106.0, 107.0)
            assert pv.state.mode == "PAUSED" and pv.updates == 3
            assert bridge._task is not None and not bridge._task.done()  # still draining
        finally:
            await bridge.stop()
            ctx.destroy(linger=0)

    async def test_drains_a_burst_in_order(self, short_dir: Path) -> None:
        eps = Endpoints.ipc(short_dir)
        ctx = zmq.Context()
        eng = ctx.socket(zmq.PUB)
        eng.setsockopt(zmq.SNDHWM, 100_000)
        eng.bind(eps.engine_pub)
        model = new_model()
        bridge = Bridge(eps, model)
        bridge.start()
        try:
            deadline = time.monotonic() + 10
            while "engine" not in bridge.last_beat and time.monotonic() < deadline:
                eng.send_multipart([b"_hb", engine_beat(0)])
                await asyncio.sleep(0.05)
            n = 20_000
            for i in range(1, n + 1):
                m = pair_msg(SYMBOLS[i % 3], last=1.5 + i, seq=i)
                if i % 2:
                    m.closes = None  # as the engine does between sparkline updates
                eng.send_multipart([b"pair", engine_wire.pack_map(m.to_wire())])
            last = model.pairs[SYMBOLS[n % 3]]
            await until(lambda: last.state.seq == n, what="the whole burst")
            assert last.state.last == 1.5 + n
            assert bridge.gaps.get("engine:pair", 0) == 0 and bridge.bad_messages == 0
        finally:
            await bridge.stop()
            ctx.destroy(linger=0)


# -- the daemon against the real children, a console attached -----------------------------
class Attached:
    """A daemon and one console attached to it (the same loop; real sockets and processes)."""

    def __init__(self, daemon: Daemon, client: DaemonClient, model: ConsoleModel) -> None:
        self.daemon, self.client, self.model = daemon, client, model

    # what the tests used to ask the backend
    @property
    def supervisor(self) -> Any:
        return self.daemon.supervisor

    @property
    def bridge(self) -> Bridge:
        assert self.client.bridge is not None
        return self.client.bridge

    @property
    def db_path(self) -> Path:
        return self.daemon.db_path

    async def command(self, cmd: str, symbol: str | None = None) -> Any:
        return await self.client.command(cmd, symbol)

    async def kill(self) -> Any:
        return await self.client.kill()


def make_daemon(d: Path, *, db: Path | None = None, **kw: Any) -> Daemon:
    home = BookHome.at(d / "run")
    validated = preflight.validate(ROOT / "safe_list.yaml")
    cfg_copy = preflight.write_run_copy(validated, home.path)
    return Daemon(
        validated.cfg,
        cfg_copy,
        home,
        db or home.path / "demo.sqlite",
        "DEMO",
        "sim",
        ["--source", "sim", "--seed", "11"],
        [],
        **kw,
    )


@contextlib.asynccontextmanager
async def attached(d: Path, **kw: Any) -> AsyncIterator[Attached]:
    daemon = make_daemon(d, **kw)
    await daemon.start()
    client = DaemonClient(daemon.endpoints, "DEMO")
    model = new_model()
    try:
        await client.start(model)
        ok = await daemon.wait_ready(30) and await client.wait_ready(30)
        assert ok, daemon.logs.engine.read_text(errors="replace")[-3000:]
        yield Attached(daemon, client, model)
    finally:
        await client.stop()
        await daemon.stop()
        pids = daemon.supervisor.all_pids() if daemon.supervisor else []
        assert pids and not any(alive(p) for p in pids), "a child outlived daemon.stop()"


@pytest.fixture
async def running(short_dir: Path) -> AsyncIterator[tuple[Attached, ConsoleModel]]:
    async with attached(short_dir) as a:
        yield a, a.model


def db_state(db: Path) -> tuple[dict[str, str], list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        modes = dict(conn.execute("SELECT symbol, mode FROM pair_modes"))
        positions = conn.execute("SELECT symbol, qty FROM positions").fetchall()
    return modes, positions


async def test_command_round_trip(running: tuple[Attached, ConsoleModel]) -> None:
    backend, model = running
    ack = await backend.command("ping")
    assert ack.ok and ack.cmd == "ping" and 0 < ack.elapsed_ms < 1000
    ack = await backend.command("pause", "ETH/USDT")
    assert ack.ok and ack.modes["ETH/USDT"] == "PAUSED" and ack.halted is None, ack
    await until(
        lambda: model.pairs["ETH/USDT"].state.mode == "PAUSED", what="PAUSED via the bridge"
    )
    ack = await backend.command("pause", "DOGE/USDT")
    assert not ack.ok and "DOGE/USDT" in ack.message
    ack = await backend.command("resume", "ETH/USDT")
    assert ack.ok and ack.modes["ETH/USDT"] == "ACTIVE"
    bad = await backend.command("launch_rockets")
    assert not bad.ok and "unknown command" in bad.message
    # the bridge heard both children and every pair
    await until(
        lambda: all(model.pairs[s].state.last for s in SYMBOLS), what="prices for every pair"
    )
    await until(lambda: model.portfolio is not None, what="the portfolio")
    assert not model.halted
    assert backend.bridge is not None and backend.bridge.bad_messages == 0


async def test_command_times_out_on_a_stopped_engine_and_recovers(
    running: tuple[Attached, ConsoleModel],
) -> None:
    backend, _ = running
    assert backend.supervisor is not None
    pid = backend.supervisor.pid("engine")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        ack = await backend.command("pause", "BTC/USDT")
        took = time.monotonic() - t0
        assert not ack.ok and ack.message == "engine did not answer in 1.0 s"
        assert 0.9 <= took < 3.0  # the timeout, not a hang (slack for a loaded CI machine)
    finally:
        os.kill(pid, signal.SIGCONT)
    ack = await backend.command("ping")
    assert ack.ok, ack  # a fresh DEALER reaches the resumed engine at once
    # The pause the console gave up on reached the engine late and expired: not applied.
    assert ack.modes["BTC/USDT"] == "ACTIVE", ack


async def test_a_command_to_a_dead_engine_is_never_delivered_to_its_successor(
    running: tuple[Attached, ConsoleModel],
) -> None:
    backend, _ = running
    sup = backend.supervisor
    assert sup is not None
    dead = sup.pid("engine")
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    await until(lambda: sup.state("engine") == "restarting", what="the death noticed")
    ack = await backend.command("pause", "BTC/USDT")
    assert not ack.ok and ack.message == "engine did not answer in 1.0 s"
    await until(lambda: sup.pid("engine") not in (None, dead), what="the restart")
    fresh = sup.pid("engine")
    await until(
        lambda: backend.bridge.beat_pid.get("engine") == fresh, what="the new engine's beat"
    )  # type: ignore[union-attr]
    ack = await backend.command("ping")
    assert ack.ok and ack.modes["BTC/USDT"] == "ACTIVE", ack  # the pause was not queued for it


async def test_kill_switch_acknowledged_by_the_engine(
    running: tuple[Attached, ConsoleModel],
) -> None:
    backend, model = running
    t0 = time.monotonic()
    ack = await backend.kill()
    assert ack.ok and not ack.fallback and ack.halted is True, ack
    assert time.monotonic() - t0 < 1.0
    assert set(ack.modes.values()) == {"HALTED"}
    await until(
        lambda: all(model.pairs[s].state.mode == "HALTED" for s in SYMBOLS),
        what="HALTED on the model",
    )
    await until(lambda: model.portfolio is not None and model.portfolio.halted, what="halted")
    await until(
        lambda: any(e.text == "kill switch: all pairs HALTED" for e in model.events),
        what="the engine's kill notice",
    )
    modes, positions = db_state(backend.db_path)
    assert modes == dict.fromkeys(SYMBOLS, "HALTED") and positions == []


async def test_kill_fallback_on_a_stopped_engine(short_dir: Path) -> None:
    db = short_dir / "paper.sqlite"
    seed_open_position(db)
    async with attached(short_dir, db=db) as backend:
        model = backend.model
        await until(lambda: model.pairs["BTC/USDT"].has_position, what="the recovered position")
        await until(lambda: "BTC/USDT" in backend.daemon.bridge.marks, what="a BTC price")  # type: ignore[union-attr]
        assert backend.supervisor is not None
        hung = backend.supervisor.pid("engine")
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)

        t0 = time.monotonic()
        ack = await backend.kill()
        took = time.monotonic() - t0
        assert ack.ok and ack.fallback and ack.halted is True, ack
        assert (
            ack.message
            == "engine hung: daemon flattened 1 position from the store, all pairs HALTED"
        )
        assert took < 2.0, f"fallback took {took:.2f} s"
        assert not alive(hung)
        modes, positions = db_state(db)
        assert positions == []
        assert modes == dict.fromkeys(SYMBOLS, "HALTED")
        with sqlite3.connect(db) as conn:
            (reason,) = conn.execute(
                "SELECT reason FROM fills WHERE symbol = 'BTC/USDT' ORDER BY ts DESC"
            ).fetchone()
        assert reason == "kill-fallback"
        assert any("daemon flattened 1 position from" in e.text for e in model.events)

        # the engine comes back by itself, reads HALTED and the flat book from the store
        await until(
            lambda: backend.supervisor.pid("engine") not in (None, hung), what="engine restart"
        )  # type: ignore[union-attr]
        fresh = backend.supervisor.pid("engine")
        await until(
            lambda: backend.bridge.beat_pid.get("engine") == fresh, what="the new engine's beat"
        )  # type: ignore[union-attr]
        ack = await backend.command("ping")
        assert ack.ok and set(ack.modes.values()) == {"HALTED"}
        await until(lambda: not model.pairs["BTC/USDT"].has_position, what="flat on the model")


async def test_kill_with_no_engine_heartbeat_skips_the_wait(short_dir: Path) -> None:
    """An engine silent for more than 3 s is not asked: the fallback starts at once."""
    async with attached(short_dir, hung_after_s=0.5) as backend:
        pid = backend.supervisor.pid("engine")  # type: ignore[union-attr]
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        await until(
            lambda: backend.daemon.engine_hung(), timeout_s=5, what="the engine to fall silent"
        )
        t0 = time.monotonic()
        ack = await backend.kill()
        assert ack.fallback and ack.ok
        assert time.monotonic() - t0 < 0.9  # no 1 s wait for an ack
        assert ack.message.startswith("engine hung: daemon flattened 0 positions")


def test_child_command_lines(short_dir: Path) -> None:
    backend = make_daemon(short_dir)
    feed = backend.feed_argv(["--source", "sim"])
    assert feed[:3] == [sys.executable, "-m", "feed"]
    assert feed[feed.index("--symbols") + 1] == "BTC/USDT,ETH/USDT,SOL/USDT"
    assert feed[feed.index("--tiers") + 1] == "BTC/USDT=STABLE,ETH/USDT=STABLE,SOL/USDT=VOLATILE"
    eng = backend.engine_argv(["--timeframe", "15s"])
    assert eng[eng.index("--cmd") + 1] == backend.endpoints.engine_cmd
    assert eng[-2:] == ["--timeframe", "15s"]
