"""The daemon of one book: it runs the feed and the engine, and every console talks to it.

Owns ``Daemon``. It supervises the two children (heartbeats, restart with backoff, exit 2 left
dead: ``supervisor.py``), keeps its own model of the book in step with the engine (the bridge
and the engine's snapshot, as a console does: the kill switch's marks and ``status`` read it;
it watches no pane, so it lives on the ``pair`` roll-call, every pair once a second and at once
on a change of mode or position),
and serves consoles on two sockets of the book's home: a control ROUTER, where ``status`` and
``stop`` are answered, ``kill`` runs the kill switch (which needs no engine: it SIGKILLs a hung
one and flattens from the book itself, ``killswitch.py``), and every other command is relayed
to the engine with the console's id on the reply; and a PUB with each child's state (on every
change, and each second for every child) and the daemon's notices. Consoles read the feed's
and the engine's PUB sockets directly. Nothing here imports Textual: a console may come and
go, trading goes on until ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from console.attach import SnapshotSync
from console.bridge import Bridge
from console.daemon import wire as dwire
from console.daemon.control import DaemonControl
from console.daemon.home import BookHome
from console.daemon.killswitch import KillSwitch
from console.daemon.reload import DaemonReload
from console.daemon.supervisor import ChildSpec, Supervisor, start_grace_for
from console.daemon.watch import BookWatch
from console.live import ENV_API_KEY, ENV_API_SECRET
from console.model import ConsoleModel
from console.requester import Requester
from console.rundir import Endpoints
from engine.core.config import SafeList
from engine.wire import commands as engine_wire
from engine.wire import liveness
from engine.wire.schema import AckMsg, NoticeMsg
from feed.private import SECRET_OPTIONS, redact_argv, split_secret_options

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 1.0
KILL_ACK_TIMEOUT_S = 1.0
HUNG_AFTER_S = liveness.HUNG_AFTER_S  # an engine silent this long is not asked: fallback at once
FEED_READY_TIMEOUT_S = 5.0
PUBLISH_EVERY_S = 1.0


def child_env(
    secrets: Mapping[str, str] | None = None, *, drop: Iterable[str] = ()
) -> dict[str, str]:
    """The daemon's environment minus ``drop`` plus ``secrets`` (what ``ps`` must not show:
    it shows argv to every local user, the environment to its owner only); the children
    import the same packages as the daemon, wherever it was started from."""
    env = dict(os.environ)
    for name in drop:
        env.pop(name, None)
    env.update(secrets or {})
    root = str(Path(__file__).resolve().parent.parent.parent)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Daemon(SnapshotSync, KillSwitch, DaemonControl, BookWatch, DaemonReload):
    def __init__(
        self,
        cfg: SafeList,
        cfg_path: Path,
        home: BookHome,
        db_path: Path,
        mode: str,
        source: str,
        feed_args: Sequence[str],
        engine_args: Sequence[str],
        *,
        endpoints: Endpoints | None = None,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        kill_ack_timeout_s: float = KILL_ACK_TIMEOUT_S,
        hung_after_s: float = HUNG_AFTER_S,
        supervisor_options: dict[str, Any] | None = None,
        on_event: Callable[[str, str, str], None] | None = None,
        notifier: Any = None,
        engine_secrets: dict[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.cfg_path = Path(cfg_path)
        self.cfg_text = self.cfg_path.read_text(encoding="utf-8")  # the validated copy
        self.home = home
        self.endpoints = endpoints or home.endpoints
        self.db_path = Path(db_path)
        self.mode = mode
        self.source = source
        self.logs = home.logs
        self.command_timeout_s = command_timeout_s
        self.kill_ack_timeout_s = kill_ack_timeout_s
        self.hung_after_s = hung_after_s
        self._feed_argv = self.feed_argv(feed_args)
        self._feed_secrets = split_secret_options(feed_args)[1]
        # --live: the API key and secret, for the engine's environment only (never the feed's,
        # never an argv); the engine's live client also takes the feed's URL options
        self._engine_secrets = dict(engine_secrets or {})
        self._engine_argv = self.engine_argv(engine_args)
        self._supervisor_options = supervisor_options or {}
        self.on_event = on_event  # (kind, text, level): tests listen here
        self.notifier = notifier  # console/daemon/notify.py Notifier, or None
        # the notifier's secrets (webhook URL, bot token) stay in the daemon's environment only
        n = cfg.notify
        self._private_env = [
            *(SECRET_OPTIONS.values()),
            ENV_API_KEY, ENV_API_SECRET,
            *([n.webhook.url_env] if n.webhook else []),
            *([n.telegram.token_env] if n.telegram else []),
        ]
        self.model = ConsoleModel.for_safe_list(cfg)
        self._watch_fills()
        self._badges: dict[str, str] = {}
        self._model = self.model  # the kill switch's name for it
        self.remote = ""  # the gateway's tcp endpoint, when one listens
        self.gateway: Any = None  # its RemoteGateway (console/daemon/gateway.py): refusals counted
        self.counters: dict[str, int] = {"requests": 0, "bad_requests": 0}
        self.started_at = time.monotonic()
        self._ctx: zmq.asyncio.Context | None = None
        self._engine: Requester | None = None
        self._ctl: zmq.asyncio.Socket | None = None
        self._pub: zmq.Socket[Any] | None = None
        self._pub_seq: dict[bytes, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._kill_lock: asyncio.Lock | None = None
        self.bridge: Bridge | None = None
        self.supervisor: Supervisor | None = None
        self._started = False
        self._stopped = False
        self.stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self.synced = False
        self.on_second: list[Callable[[], None]] = [self._watch_book]
        self.init_reload()  # the config version in force, from the book (console/daemon/reload.py)

    # -- child command lines -------------------------------------------------------------
    def feed_argv(self, extra: Sequence[str]) -> list[str]:
        """The feed's command line; options that may carry credentials (--ws-url, --rest-url)
        are taken out of ``extra``: they reach the feed through its environment."""
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
        """The feed's environment carries its URL options; the engine's none of those variables
        (live: the API key and secret and the URL options; the feed never gets the key)."""
        notify_only = [v for v in self._private_env if v not in SECRET_OPTIONS.values()]
        if name == "feed":
            return child_env(self._feed_secrets, drop=[*notify_only, ENV_API_KEY, ENV_API_SECRET])
        if self._engine_secrets:  # live: the key and secret, and where the exchange is
            return child_env({**self._feed_secrets, **self._engine_secrets}, drop=self._private_env)
        return child_env(drop=self._private_env)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the console sockets, connect to the children, spawn the feed, then the engine."""
        if self._started:
            return
        self._started = True
        self._kill_lock = asyncio.Lock()
        self._ctx = zmq.asyncio.Context()
        children_only = dataclasses.replace(self.endpoints, daemon_pub="")  # not our own PUB
        self.bridge = Bridge(
            children_only, self.model, ctx=self._ctx, on_new_engine=self._on_new_engine
        )
        self.bridge.hold()
        self.bridge.start()
        self._engine = Requester(self._ctx, self.endpoints.engine_cmd, name="engine")
        self._engine.open()
        # a plain socket: publishing is synchronous and never blocks (NOBLOCK, HWM drops)
        pub = zmq.Context.shadow(self._ctx.underlying).socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(self.endpoints.daemon_pub)
        self._pub = pub
        ctl = self._ctx.socket(zmq.ROUTER)
        ctl.setsockopt(zmq.LINGER, 0)
        ctl.bind(self.endpoints.daemon_ctl)
        self._ctl = ctl
        self._spawn(self._serve_ctl(), "ctl")
        self._spawn(self._every_second(), "every-second")
        self.logs.make_private()
        self.supervisor = Supervisor(
            [
                ChildSpec("feed", self._feed_argv, self.logs.feed, self.child_env("feed")),
                ChildSpec("engine", self._engine_argv, self.logs.engine, self.child_env("engine")),
            ],
            self,
            last_beat=self.bridge.last_beat.get,
            pids_path=self.home.pids,
            # the start-up grace grows with the pairs (issue 16); a test may pass its own
            **{"start_grace_s": start_grace_for(len(self.cfg.active_symbols())), **self._supervisor_options},
        )
        env = [f"{k}={v}" for k, v in self._feed_secrets.items()]
        shown = [*self._feed_argv[1:], *(["environment:", *env] if env else [])]
        log.info("starting %s daemon: feed %s", self.mode, " ".join(redact_argv(shown)))
        log.info("engine %s", " ".join(redact_argv(self._engine_argv[1:])))
        self.supervisor.spawn("feed")
        self.supervisor.start_watching()
        self._spawn(self._start_engine_after_feed(), "start-engine")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)  # the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start_engine_after_feed(self) -> None:
        """The engine asks the feed for warm-up history at start: give the feed a head start,
        until the feed's first status (sent at once to a new subscriber, its history server
        already bound) or its first beat (up to a second later), whichever comes first."""
        assert self.bridge is not None and self.supervisor is not None
        deadline = time.monotonic() + FEED_READY_TIMEOUT_S
        while (
            "feed" not in self.bridge.last_beat
            and self.model.feed_status_at is None
            and time.monotonic() < deadline
        ):
            if self._stopped:
                return
            await asyncio.sleep(0.05)
        if not self._stopped and self.supervisor.state("engine") == "stopped":
            self.supervisor.spawn("engine")

    async def wait_ready(self, timeout_s: float = 20.0) -> bool:
        """True once both children beat and the engine's snapshot was applied (or given up on)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            beats = set(self.bridge.last_beat) if self.bridge is not None else set()
            if {"feed", "engine"} <= beats and self.synced:
                return True
            await asyncio.sleep(0.05)
        return False

    async def wait_stopped(self) -> None:
        await self._done.wait()

    def request_stop(self, why: str) -> None:
        """From a signal handler or a ``stop`` command: the orderly stop, once."""
        if self._stop_task is None:
            log.warning("stopping: %s", why)
            self._stop_task = asyncio.get_running_loop().create_task(self.stop(), name="stop")

    async def stop(self) -> None:
        """SIGTERM the children (engine first), ≤ 3 s, SIGKILL the rest, close every socket."""
        if self._stopped:
            await self._done.wait()
            return
        self._stopped = self.stopping = True
        log.info("stopping daemon")
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
        if self.supervisor is not None:
            await self.supervisor.stop()
        self._publish_children()  # consoles see "stopped" before the socket goes
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if self._engine is not None:
            self._engine.close()
        if self.bridge is not None:
            await self.bridge.stop()
        await asyncio.sleep(0.05)  # the last PUB messages leave before the socket closes
        for sock in (self._ctl, self._pub):
            if sock is not None:
                sock.close(linger=0)
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None
        log.info("daemon stopped")
        self._done.set()

    def stop_sync(self) -> None:
        """Last resort when no loop is left (crash paths): the children must not outlive us."""
        if self.supervisor is not None:
            self.supervisor.stop_sync()

    # -- the engine: requests for the kill switch, the snapshot and relayed commands -------
    async def _request_map(
        self,
        cmd: str,
        symbol: str | None,
        timeout_s: float,
        deadline_ns: int | None = None,
        **extra: Any,
    ) -> tuple[dict[str, Any] | None, float]:
        if self._engine is None:
            return None, 0.0
        return await self._engine.request(cmd, symbol, timeout_s, deadline_ns=deadline_ns, **extra)

    async def _send(
        self, cmd: str, symbol: str | None, timeout_s: float
    ) -> tuple[AckMsg | None, float]:
        reply, elapsed = await self._request(cmd, symbol, timeout_s)
        return (reply if isinstance(reply, AckMsg) else None), elapsed

    def _reset_dealer(self) -> None:
        if self._engine is not None and not self._stopped:
            self._engine.reset()

    # -- what consoles see ---------------------------------------------------------------
    def set_child(self, name: str, **fields: Any) -> None:
        """The supervisor's reports: into the daemon's model, and out to every console."""
        prev = self.model.children[name].state if name in self.model.children else None
        self.model.set_child(name, **fields)
        self._publish_child(name)
        state = fields.get("state")
        if state == "restarting" and prev != "restarting":
            self.notify("restart", f"{name} {fields.get('message', 'restarting')}", "warning")
        elif state == "dead" and prev != "dead":
            self.notify(
                "restart", f"{name} DEAD, not restarted: {fields.get('message', '')}", "error"
            )

    def _publish(self, topic: bytes, m: dict[str, Any]) -> None:
        if self._pub is None:
            return
        seq = self._pub_seq.get(topic, 0) + 1
        self._pub_seq[topic] = seq
        m["seq"] = seq
        with contextlib.suppress(zmq.ZMQError):
            self._pub.send_multipart([topic, engine_wire.pack_map(m)], zmq.NOBLOCK)

    def child_msg(self, name: str) -> dwire.ChildMsg:
        c = self.model.children[name]
        now = self.model.clock()
        age = self.bridge.beat_age(name) if self.bridge is not None else None
        return dwire.ChildMsg(
            name=name,
            state=c.state,
            pid=c.pid,
            restarts=c.restarts,
            next_restart_s=c.restart_in(now),
            beat_age_s=age,
            message=c.message,
        )

    def _publish_child(self, name: str) -> None:
        self._publish(dwire.TOPIC_CHILD, self.child_msg(name).to_wire())

    def _publish_children(self) -> None:
        for name in self.model.children:
            self._publish_child(name)

    def _event(self, text: str, level: str, kind: str = "daemon") -> None:
        """A notice for every console (and the notifier), and the daemon's own log."""
        self.model.add_event(text, level=level)
        msg = NoticeMsg(ts=time.time_ns(), kind=kind, level=level, message=text)
        self._publish(dwire.TOPIC_EVENT, msg.to_wire())

    async def _every_second(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_EVERY_S)
            self._publish_children()
            for hook in list(self.on_second):
                try:
                    hook()
                except Exception:
                    log.exception("periodic hook failed")
