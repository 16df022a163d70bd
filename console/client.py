"""A console attached to a book's daemon: the ``Backend`` the app talks to.

Owns ``DaemonClient``. It subscribes to the engine's, the feed's and the daemon's PUB sockets
(the bridge) and sends every command to the daemon's control socket (``Requester``), which
answers ``status``/``stop``, runs ``kill`` through its kill switch and relays the rest to the
engine. On attach it asks the daemon for ``status`` (the children's states at once) and, at
each new engine, for the engine's ``snapshot`` (``SnapshotSync``): the screen shows the book
as it is, then the live stream with no gap and no double. ``stop()`` detaches: trading goes on.
Only a console that owns its daemon (the demo) stops it when it leaves; ``stop_trading`` asks
any daemon to stop (after flattening, if asked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from typing import Any

import zmq
import zmq.asyncio

from console.attach import SnapshotSync, to_ack
from console.bridge import Bridge
from console.daemon import wire as dwire
from console.model import Ack
from console.requester import Requester, Secure
from console.rundir import Endpoints
from engine.wire import commands as engine_wire
from engine.wire import liveness
from engine.wire.schema import AckMsg, SchemaError

log = logging.getLogger(__name__)

# The daemon answers within its own command timeout (1 s); this leaves room for the hop.
COMMAND_TIMEOUT_S = 1.5
# kill: the engine's ack (1 s), else SIGKILL + flatten from the book + restart (~1-2 s)
KILL_TIMEOUT_S = 8.0
# stop with flatten: the positions get 10 s to close
STOP_TIMEOUT_S = 15.0
STATUS_TIMEOUT_S = 2.0
OWNED_STOP_WAIT_S = 8.0
DAEMON_SILENT_S = liveness.HUNG_AFTER_S


class DaemonClient(SnapshotSync):
    """Attach to the daemon at ``endpoints`` (its ``daemon.json``'s, or a remote gateway's)."""

    def __init__(
        self,
        endpoints: Endpoints,
        mode: str,
        *,
        secure: Secure | None = None,
        owned: subprocess.Popen[bytes] | None = None,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        kill_timeout_s: float = KILL_TIMEOUT_S,
        where: str = "",
    ) -> None:
        self.endpoints = endpoints
        self.mode = mode
        self.owned = owned  # the demo's daemon process: stopped when this console leaves
        self.detaches = owned is None
        self.where = where  # "local" or the remote endpoint, for the header and the log
        self.command_timeout_s = command_timeout_s
        self.kill_timeout_s = kill_timeout_s
        self._secure = secure
        self._ctx: zmq.asyncio.Context | None = None
        self._daemon: Requester | None = None
        self._model: Any = None
        self.bridge: Bridge | None = None
        self._started = False
        self._stopped = False
        self._stop_task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self.synced = False
        self.last_status: dwire.StatusMsg | None = None
        self._watching: set[str] = set()  # the pairs on screen (``watch``)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, model: Any) -> None:
        if self._started:
            return
        self._started = True
        self._model = model
        self._ctx = zmq.asyncio.Context()
        self.bridge = Bridge(
            self.endpoints,
            model,
            ctx=self._ctx,
            on_new_engine=self._on_new_engine,
            secure=self._secure,
        )
        self.bridge.hold()  # until the engine's snapshot
        self.bridge.watch(self._watching)
        self.bridge.start()
        self._daemon = Requester(
            self._ctx, self.endpoints.daemon_ctl, name="daemon", secure=self._secure
        )
        self._daemon.open()
        log.info("attached to the daemon at %s", self.endpoints.daemon_ctl)
        status = await self.status()
        if status is None:
            self._event(
                "the daemon does not answer: is it running? (multipar-console status)", "error"
            )
        else:
            for c in status.children:
                model.set_child(
                    c.name,
                    state=c.state,
                    pid=c.pid,
                    restarts=c.restarts,
                    next_restart_s=c.next_restart_s,
                    message=c.message,
                )
            model.add_event(
                f"attached to the {status.mode} daemon (pid {status.pid}) of {status.book}"
            )
        self._watch_task = asyncio.get_running_loop().create_task(
            self._watch_daemon(), name="daemon-watch"
        )

    def watch(self, symbols: set[str]) -> None:
        """The pairs on screen: the bridge follows their fast state (``view:`` topics)."""
        self._watching = set(symbols)
        if self.bridge is not None:
            self.bridge.watch(self._watching)

    async def wait_ready(self, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            beats = set(self.bridge.last_beat) if self.bridge is not None else set()
            if {"feed", "engine"} <= beats and self.synced:
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        """Detach (idempotent); a console that owns its daemon (the demo) stops it first."""
        if not self._started:
            self._stopped = True
            return
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._stop(), name="detach")
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        if self.owned is not None and self.owned.poll() is None:
            await self.stop_trading(flatten=False)
            await self._wait_owned_exit(OWNED_STOP_WAIT_S)
        self._stopped = True
        for task in (self._snapshot_task, self._watch_task):
            if task is not None:
                task.cancel()
        if self._daemon is not None:
            self._daemon.close()
        if self.bridge is not None:
            await self.bridge.stop()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None
        log.info("detached")

    async def _wait_owned_exit(self, timeout_s: float) -> None:
        assert self.owned is not None
        deadline = time.monotonic() + timeout_s
        while self.owned.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.owned.poll() is None:
            log.warning("the demo's daemon did not stop in %.0f s: SIGTERM", timeout_s)
            self.owned.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.owned.wait, 5.0)
        if self.owned.poll() is None:
            self.owned.kill()

    def stop_sync(self) -> None:
        """Crash paths: an owned daemon must not outlive its console (it also watches us)."""
        if self.owned is not None and self.owned.poll() is None:
            self.owned.terminate()

    # -- requests --------------------------------------------------------------------------
    async def _request_map(
        self, cmd: str, symbol: str | None, timeout_s: float, **extra: Any
    ) -> tuple[dict[str, Any] | None, float]:
        if self._daemon is None:
            return None, 0.0
        return await self._daemon.request(cmd, symbol, timeout_s, **extra)

    async def _ack(self, cmd: str, symbol: str | None, timeout_s: float, **extra: Any) -> Ack:
        m, elapsed = await self._request_map(cmd, symbol, timeout_s, **extra)
        if m is None:
            return Ack(cmd, False, f"the daemon did not answer in {timeout_s:.1f} s", elapsed)
        try:
            msg = AckMsg.from_wire(m)
        except SchemaError as exc:
            return Ack(cmd, False, f"unreadable answer: {exc}", elapsed)
        return to_ack(msg, cmd, elapsed)

    async def command(self, cmd: str, symbol: str | None = None, **extra: str) -> Ack:
        """ping/pause/resume/reduce/flatten/flatten_all/rearm through the daemon; ≤ 1.5 s.
        ``extra``: a command's own fields (``reconcile``: ``choice``, ``who``)."""
        if cmd not in engine_wire.OPERATOR_COMMANDS:
            return Ack(cmd, False, f"unknown command {cmd!r}")
        if cmd in engine_wire.COMMANDS_WITH_SYMBOL and symbol is None:
            return Ack(cmd, False, f"{cmd} needs a pair")
        if cmd == "kill":
            return await self.kill()
        ack = await self._ack(cmd, symbol, self.command_timeout_s, **extra)
        log.info(
            "%s%s%s -> ok=%s %s", cmd, f" {symbol}" if symbol else "",
            "".join(f" {k}={v}" for k, v in extra.items()), ack.ok, ack.message,
        )  # fmt: skip
        return ack

    async def kill(self) -> Ack:
        """The daemon's kill switch: it halts and flattens even when the engine hangs."""
        ack = await self._ack("kill", None, self.kill_timeout_s)
        log.warning("kill switch -> ok=%s fallback=%s %s", ack.ok, ack.fallback, ack.message)
        if ack.fallback and ack.flat and self._model is not None:
            self._model.apply_flat(list(ack.flat))
        return ack

    async def stop_trading(self, *, flatten: bool) -> Ack:
        """Ask the daemon to stop feed and engine (and itself); with ``flatten``, once flat."""
        timeout = STOP_TIMEOUT_S if flatten else STATUS_TIMEOUT_S
        return await self._ack(dwire.STOP, None, timeout, flatten=flatten)

    async def status(self) -> dwire.StatusMsg | None:
        m, _ = await self._request_map(dwire.STATUS, None, STATUS_TIMEOUT_S)
        if m is None:
            return None
        try:
            self.last_status = dwire.StatusMsg.from_wire(m)
        except SchemaError as exc:
            log.warning("unreadable status: %s", exc)
            return None
        return self.last_status

    # -- the daemon's liveness -----------------------------------------------------------
    async def _watch_daemon(self) -> None:
        """The daemon publishes every second: say when it falls silent, and when it is back."""
        silent = False
        attached = time.monotonic()
        while not self._stopped:
            await asyncio.sleep(1.0)
            last = self.bridge.last_daemon if self.bridge is not None else None
            now_silent = time.monotonic() - (last or attached) > DAEMON_SILENT_S
            if now_silent and not silent:
                self._event("the daemon is silent: commands may not reach it", "error")
            elif silent and not now_silent:
                self._event("the daemon answers again", "info")
            silent = now_silent

    def _event(self, text: str, level: str) -> None:
        if self._model is not None:
            with contextlib.suppress(Exception):
                self._model.add_event(text, level=level)
