"""The console's process backend: children, bridge, commands and the kill switch.

``ProcessBackend`` implements the ``Backend`` protocol the app talks to. It owns the
supervisor (feed and engine processes), the bridge (their PUB sockets into the model) and a
DEALER socket to the engine's command ROUTER. ``kill()`` is the operator's last word: it asks
the engine to halt and flatten, and when the engine does not answer in time (or has stopped
beating) it SIGKILLs the engine, flattens every stored position itself through the engine's
trading core (``engine.node.fallback.flatten_from_store``: the one exit path, the same
execution client), marks every pair HALTED,
and restarts the engine, which comes back halted and flat.

Attach: the bridge holds the engine's live stream from the start; at each engine's first
heartbeat the backend asks it for a ``snapshot`` over the DEALER (``SnapshotMsg``: its state
and the book's recent decisions, fills and events), retrying while the engine starts, and the
bridge applies it and then the stream after it, with no gap and no double (docs/wire.md,
"Snapshot"). When none comes, the bridge is released and the live stream shown as it is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from console.attach import Reply, decode_reply, fetch_snapshot, summary, to_ack
from console.bridge import Bridge
from console.killswitch import KillSwitch
from console.model import Ack
from console.rundir import Endpoints, LogFiles
from console.supervisor import ChildSpec, Supervisor
from engine.core.config import SafeList
from engine.wire import commands as engine_wire
from engine.wire import liveness
from engine.wire.schema import AckMsg, SchemaError
from feed.private import SECRET_OPTIONS, redact_argv, split_secret_options

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 1.0
KILL_ACK_TIMEOUT_S = 1.0
# An engine silent this long is not asked: the fallback runs at once (engine/wire/liveness.py).
HUNG_AFTER_S = liveness.HUNG_AFTER_S
FEED_READY_TIMEOUT_S = 5.0


def _child_env(
    secrets: Mapping[str, str] | None = None, *, drop: Iterable[str] = ()
) -> dict[str, str]:
    """The console's environment minus ``drop`` plus ``secrets`` (what ``ps`` must not show:
    it shows argv to every local user, the environment to its owner only); the children
    import the same packages as the console, wherever it was started from."""
    env = dict(os.environ)
    for name in drop:
        env.pop(name, None)
    env.update(secrets or {})
    root = str(Path(__file__).resolve().parent.parent)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class ProcessBackend(KillSwitch):
    """Runs the feed and engine as child processes and talks to them over ZeroMQ."""

    def __init__(
        self,
        cfg: SafeList,
        cfg_path: Path,
        endpoints: Endpoints,
        db_path: Path,
        mode: str,
        feed_args: Sequence[str],
        engine_args: Sequence[str],
        log: LogFiles,
        *,
        pids_path: Path | None = None,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        kill_ack_timeout_s: float = KILL_ACK_TIMEOUT_S,
        hung_after_s: float = HUNG_AFTER_S,
        supervisor_options: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.cfg_path = Path(cfg_path)
        self.endpoints = endpoints
        self.db_path = Path(db_path)
        self.mode = mode
        self.logs = log
        self.command_timeout_s = command_timeout_s
        self.kill_ack_timeout_s = kill_ack_timeout_s
        self.hung_after_s = hung_after_s
        self._pids_path = pids_path if pids_path is not None else log.feed.parent / "pids.json"
        self._feed_argv = self.feed_argv(feed_args)
        self._feed_secrets = split_secret_options(feed_args)[1]
        self._engine_argv = self.engine_argv(engine_args)
        self._supervisor_options = supervisor_options or {}
        self._ctx: zmq.asyncio.Context | None = None
        self._dealer: zmq.asyncio.Socket | None = None
        self._pending: dict[str, asyncio.Future[Reply | None]] = {}
        self._ack_task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._kill_lock: asyncio.Lock | None = None
        self._model: Any = None
        self.bridge: Bridge | None = None
        self.supervisor: Supervisor | None = None
        self._started = False
        self._stopped = False
        self._stop_task: asyncio.Task[None] | None = None
        self._engine_start: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self.synced = False  # the current engine's snapshot was applied, or given up on

    # -- child command lines -------------------------------------------------------------
    def feed_argv(self, extra: Sequence[str]) -> list[str]:
        """The feed's command line; options that may carry credentials (--ws-url, --rest-url)
        are taken out of ``extra``: they reach the feed through its environment (child_env)."""
        extra, _ = split_secret_options(extra)
        symbols = self.cfg.active_symbols()
        tiers = ",".join(f"{s}={self.cfg.pairs[s].tier.value}" for s in symbols)
        return [
            sys.executable, "-m", "feed",
            "--symbols", ",".join(symbols),
            "--tiers", tiers,
            "--pub", self.endpoints.feed_pub,
            "--rep", self.endpoints.feed_rep,
            "--log-file", str(self.logs.feed),
            *extra,
        ]  # fmt: skip

    def engine_argv(self, extra: Sequence[str]) -> list[str]:
        return [
            sys.executable, "-m", "engine",
            "--config", str(self.cfg_path),
            "--db", str(self.db_path),
            "--feed-pub", self.endpoints.feed_pub,
            "--feed-rep", self.endpoints.feed_rep,
            "--pub", self.endpoints.engine_pub,
            "--cmd", self.endpoints.engine_cmd,
            "--log-file", str(self.logs.engine),
            *extra,
        ]  # fmt: skip

    def child_env(self, name: str) -> dict[str, str]:
        """The feed's environment carries its URL options; the engine's none of those variables."""
        if name == "feed":
            return _child_env(self._feed_secrets)
        return _child_env(drop=SECRET_OPTIONS.values())

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, model: Any) -> None:
        """Connect the bridge, spawn the feed, then (once it beats, ≤ 5 s) the engine."""
        if self._started:
            return
        self._started = True
        self._stopped = False
        self._model = model
        self._kill_lock = asyncio.Lock()
        self._ctx = zmq.asyncio.Context()
        self.bridge = Bridge(
            self.endpoints, model, ctx=self._ctx, on_new_engine=self._on_new_engine
        )
        self.bridge.hold()  # until the first engine's snapshot
        self.bridge.start()
        self._open_dealer()
        self.logs.make_private()  # 0600 before the supervisor opens them for the children
        self.supervisor = Supervisor(
            [
                ChildSpec("feed", self._feed_argv, self.logs.feed, self.child_env("feed")),
                ChildSpec("engine", self._engine_argv, self.logs.engine, self.child_env("engine")),
            ],
            model,
            last_beat=self.bridge.last_beat.get,
            pids_path=self._pids_path,
            **self._supervisor_options,
        )
        env = [f"{k}={v}" for k, v in self._feed_secrets.items()]
        shown = [*self._feed_argv[1:], *(["environment:", *env] if env else [])]
        log.info("starting %s backend: feed %s", self.mode, " ".join(redact_argv(shown)))
        log.info("engine %s", " ".join(redact_argv(self._engine_argv[1:])))
        self.supervisor.spawn("feed")
        self.supervisor.start_watching()
        # the engine asks the feed for warm-up history at start: give the feed a head start
        # without holding up the first paint
        self._engine_start = asyncio.get_running_loop().create_task(
            self._start_engine_after_feed(), name="start-engine"
        )  # kept: the loop holds tasks only weakly

    async def _start_engine_after_feed(self) -> None:
        assert self.bridge is not None and self.supervisor is not None
        deadline = time.monotonic() + FEED_READY_TIMEOUT_S
        while "feed" not in self.bridge.last_beat and time.monotonic() < deadline:
            if self._stopped:
                return
            await asyncio.sleep(0.05)
        if not self._stopped and self.supervisor.state("engine") == "stopped":
            self.supervisor.spawn("engine")

    async def wait_ready(self, timeout_s: float = 20.0) -> bool:
        """True once both children have beaten and the engine's snapshot was applied (or given
        up on), for tests and the CLI's startup log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            beats = set(self.bridge.last_beat) if self.bridge is not None else set()
            if {"feed", "engine"} <= beats and self.synced:
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        """Orderly shutdown: SIGTERM the children, ≤ 3 s, SIGKILL the rest, close sockets.

        Idempotent, and safe to call concurrently (``q`` and a SIGHUP together): every caller
        waits for the one shutdown.
        """
        if not self._started:
            self._stopped = True
            return
        if self._stop_task is None:
            self._stopped = True
            self._stop_task = asyncio.get_running_loop().create_task(
                self._stop(), name="backend-stop"
            )
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        log.info("stopping backend")
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
        if self.supervisor is not None:
            await self.supervisor.stop()
        self._close_dealer()
        if self.bridge is not None:
            await self.bridge.stop()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None
        log.info("backend stopped")

    def stop_sync(self) -> None:
        """Last resort when no loop is left (crash paths): the children must not outlive us."""
        if self.supervisor is not None:
            self.supervisor.stop_sync()

    # -- commands ------------------------------------------------------------------------
    def _open_dealer(self) -> None:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue a command for an engine that is not there
        sock.connect(self.endpoints.engine_cmd)
        self._dealer = sock
        self._ack_task = asyncio.get_running_loop().create_task(self._read_acks(sock), name="acks")

    def _close_dealer(self) -> None:
        if self._ack_task is not None:
            self._ack_task.cancel()
            self._ack_task = None
        if self._dealer is not None:
            self._dealer.close(linger=0)
            self._dealer = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)  # the waiter sees "no ack", never a stray CancelledError
        self._pending.clear()

    def _reset_dealer(self) -> None:
        """Drop every command still queued for a hung engine so a restarted one never runs it."""
        self._close_dealer()
        if not self._stopped:
            self._open_dealer()

    async def _read_acks(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                payload = await sock.recv()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            try:
                reply = decode_reply(payload)
            except (engine_wire.CommandError, SchemaError) as exc:
                log.warning("dropped malformed reply: %s", exc)
                continue
            fut = self._pending.pop(reply.id, None)
            if fut is not None and not fut.done():
                fut.set_result(reply)
            # a reply nobody waits for answers a command that already timed out: drop it

    async def _send(
        self, cmd: str, symbol: str | None, timeout_s: float
    ) -> tuple[AckMsg | None, float]:
        """Send one operator command and wait for the ack with its id; None when none came."""
        reply, elapsed = await self._request(cmd, symbol, timeout_s)
        return (reply if isinstance(reply, AckMsg) else None), elapsed

    async def _request(
        self, cmd: str, symbol: str | None, timeout_s: float
    ) -> tuple[Reply | None, float]:
        """Send one command and wait for the reply with its id; None when none came in time."""
        if self._dealer is None:
            return None, 0.0
        cmd_id = f"c{os.getpid()}-{next(self._ids)}"
        fut: asyncio.Future[Reply | None] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        payload = engine_wire.make_command(
            cmd_id, cmd, symbol, deadline_ns=time.time_ns() + int(timeout_s * 1e9)
        )
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        ack: Reply | None = None
        try:
            while True:  # IMMEDIATE: Again while the engine (re)binds; retry until the deadline
                try:
                    await self._dealer.send(payload, zmq.NOBLOCK)
                    break
                except zmq.Again:
                    if time.perf_counter() >= deadline:
                        raise TimeoutError from None
                    await asyncio.sleep(0.02)
            ack = await asyncio.wait_for(fut, max(0.0, deadline - time.perf_counter()))
        except (TimeoutError, zmq.ZMQError):
            ack = None
        finally:
            self._pending.pop(cmd_id, None)
        return ack, (time.perf_counter() - t0) * 1000.0

    async def command(self, cmd: str, symbol: str | None = None) -> Ack:
        """Send one command and wait ≤ 1 s for its ack."""
        if cmd not in engine_wire.OPERATOR_COMMANDS:
            return Ack(cmd, False, f"unknown command {cmd!r}")
        if cmd in engine_wire.COMMANDS_WITH_SYMBOL and symbol is None:
            return Ack(cmd, False, f"{cmd} needs a pair")
        if cmd == "kill":
            return await self.kill()
        ack, elapsed = await self._send(cmd, symbol, self.command_timeout_s)
        if ack is None:
            self._reset_dealer()
            log.warning(
                "%s%s: engine did not answer in %.1f s",
                cmd,
                f" {symbol}" if symbol else "",
                self.command_timeout_s,
            )
            return Ack(
                cmd, False, f"engine did not answer in {self.command_timeout_s:.1f} s", elapsed
            )
        log.info(
            "%s%s -> ok=%s %s",
            cmd,
            f" {symbol}" if symbol else "",
            ack.ok,
            ack.message,
        )
        return to_ack(ack, cmd, elapsed)

    # -- the snapshot on attach ------------------------------------------------------------
    def _on_new_engine(self, pid: int) -> None:
        """The bridge heard a new engine (its first beat, or any message before one; pid 0 when
        unknown yet): hold its stream and ask for its snapshot."""
        if self._stopped or self.bridge is None:
            return
        self.synced = False
        self.bridge.hold()
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()  # a previous engine's: superseded
        self._snapshot_task = asyncio.get_running_loop().create_task(
            self._sync(pid), name="snapshot"
        )

    async def _sync(self, pid: int) -> None:
        """Engine ``pid``'s snapshot to the bridge; without one, the held stream as it is."""
        snap, why = await fetch_snapshot(self._request, self.command_timeout_s)
        if self._stopped or self.bridge is None:
            return
        if snap is None:
            self.bridge.release()
            self._event(f"no snapshot from the engine ({why}): live stream only", "warning")
        elif self.bridge.apply_snapshot(snap):
            log.info("snapshot of engine %d: %s", pid, summary(snap))
        self.synced = True

    def _event(self, text: str, level: str) -> None:
        if self._model is None:
            return
        try:
            self._model.add_event(text, level=level)
        except Exception:
            log.exception("model.add_event failed")
