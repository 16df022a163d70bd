"""ZeroMQ bridge from the children's PUB sockets to the console's model.

Owns three SUB sockets: the engine's PUB (its topics by name, and the ``view:`` topic of each pair
``watch()`` names: the panes in view), the daemon's PUB (its children and notices:
``console/daemon/wire.py``; a reload's outcome on ``config`` goes to ``on_config``, so every
attached console follows the safe list in force) and the feed's PUB (only ``_hb`` and
``_status``: the console never needs ticks). One task awaits ``poll()`` and then drains each
ready socket with ``NOBLOCK`` (twice as fast as one await per message) and hands each message
to ``dispatch``. Engine messages are decoded into the typed messages of ``engine.wire.schema``
(``from_wire`` checks every field); the feed's control maps stay feed-owned
(``feed.wire.decode_map``); the routes and decoders are ``console/bridge_routes.py``. A malformed message (undecodable, unversioned, a field missing or
of the wrong type or range) is counted in ``bad_messages`` and dropped, never raised; per-topic
sequence gaps are counted in ``gaps``. The bridge also keeps each child's last heartbeat time
(for the supervisor) and each pair's last bid/ask (the marks the kill-switch fallback
flattens at).

Attach without a gap or a double (docs/wire.md, "Snapshot"): while ``hold()`` is on, engine
messages other than heartbeats are decoded and kept, not applied. ``apply_snapshot`` hands the
engine's ``SnapshotMsg`` to the model, then replays the kept messages; from then on a message on
a topic the snapshot carries (pair, portfolio, decision, fill, event, reconcile) whose ``seq``
is at or below the snapshot's is already in it and is dropped (``snapshot_dropped``), and the
first one above it counts a gap when it is not the next number (a ``view:`` topic counts gaps from
the first message after its subscription: it was not followed before). ``release()`` gives up waiting (no
snapshot came) and applies what was kept. A new engine pid in a heartbeat clears the floors,
discards what was kept for the previous engine and calls ``on_new_engine``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from console.bridge_routes import (
    ENGINE_TOPICS,
    SNAPSHOT_TOPICS,
    BadMessage,
    Held,
    StateSink,
    decode_engine,
    decode_feed,
    view_message,
)
from console.daemon import wire as daemon_wire
from console.rundir import Endpoints
from engine.wire import commands as engine_wire
from engine.wire.schema import (
    HeartbeatMsg,
    Message,
    NoticeMsg,
    PairStateMsg,
    SchemaError,
    SnapshotMsg,
)
from feed import wire as feed_wire

__all__ = ["SNAPSHOT_TOPICS", "BadMessage", "Bridge", "StateSink"]

log = logging.getLogger(__name__)

DRAIN_BATCH = 2000  # messages per socket per wake-up, so a flood cannot starve the UI
HOLD_MAX = 100_000  # messages kept while waiting for a snapshot; beyond, the wait is given up
_LOG_FIRST_BAD = 20


class Bridge:
    """Subscribes to the engine and feed PUB sockets and dispatches to the model."""

    def __init__(
        self,
        endpoints: Endpoints,
        model: StateSink,
        *,
        ctx: zmq.asyncio.Context | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_new_engine: Callable[[int], None] | None = None,
        secure: Callable[[zmq.Socket[Any]], None] | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._secure = secure  # CURVE client options for a remote attach (console/daemon/keys.py)
        self._model = model
        self._own_ctx = ctx is None
        self._ctx = ctx if ctx is not None else zmq.asyncio.Context()
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._engine_sub: zmq.asyncio.Socket | None = None
        self._feed_sub: zmq.asyncio.Socket | None = None
        self._daemon_sub: zmq.asyncio.Socket | None = None
        self.last_daemon: float | None = None  # clock() of the daemon's last message
        self.bad_messages = 0
        self.messages = 0
        self.gaps: dict[str, int] = {}  # "engine:pair" -> messages lost by sequence number
        self._last_seq: dict[str, int] = {}
        self.last_beat: dict[str, float] = {}  # "feed"/"engine" -> clock() of the last _hb
        self.beat_pid: dict[str, int] = {}
        self._asked = False  # a snapshot was asked for before the engine's first beat
        self.marks: dict[str, tuple[float, float]] = {}  # symbol -> last (bid, ask)
        self.on_new_engine = on_new_engine  # called with the pid of an engine's first beat
        self._held: list[Held] | None = None  # engine messages kept until the snapshot
        self._floors: dict[str, int] = {}  # sequence key -> the applied snapshot's seq
        self.snapshot_dropped = 0  # live messages the snapshot already held
        self.snapshots = 0  # snapshots applied
        self._routes: dict[bytes, tuple[type[Message], str, Callable[[Any], None]]] = {
            topic: (cls, seq_key, getattr(model, method))
            for topic, (cls, seq_key, method) in ENGINE_TOPICS.items()
        }
        self.watched: set[str] = set()  # pairs whose fast state (``view:``) is subscribed
        self.views: dict[str, int] = {}  # ``view:`` messages received per pair (bench and tests)
        # the daemon's ``config`` topic (a reload's outcome): the console follows an applied one
        self.on_config: Callable[[dict[str, Any]], None] | None = None

    def watch(self, symbols: set[str] | frozenset[str] | list[str]) -> None:
        """Follow exactly these pairs' fast state (the panes in view, the pair in detail): the
        engine publishes a pair on ``view:SYM`` only while someone holds that topic; every pair
        still arrives once a second on ``pair``. Callable before ``start()``."""
        new = set(symbols)
        old, self.watched = self.watched, new
        sock = self._engine_sub
        if sock is None:
            return  # start() subscribes to what is watched then
        for sym in old - new:
            sock.setsockopt(zmq.UNSUBSCRIBE, engine_wire.view_topic(sym))
        for sym in new - old:
            self._last_seq.pop("engine:view:" + sym, None)  # not followed until now: no gap to count
            sock.setsockopt(zmq.SUBSCRIBE, engine_wire.view_topic(sym))

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect (before the children bind is fine: ZeroMQ reconnects) and start draining."""
        if self._task is not None:
            return
        # the engine's topics by name (not b"": that would watch every pair), and the watched views
        eng = self._sub(
            self._endpoints.engine_pub,
            *engine_wire.TOPICS,
            *(engine_wire.view_topic(sym) for sym in self.watched),
        )
        eng.setsockopt(zmq.RCVHWM, 100_000)
        feed = self._sub(
            self._endpoints.feed_pub, feed_wire.TOPIC_HEARTBEAT, feed_wire.TOPIC_STATUS
        )
        self._engine_sub, self._feed_sub = eng, feed
        if self._endpoints.daemon_pub:
            self._daemon_sub = self._sub(self._endpoints.daemon_pub, b"")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bridge")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sock in (self._engine_sub, self._feed_sub, self._daemon_sub):
            if sock is not None:
                sock.close(linger=0)
        self._engine_sub = self._feed_sub = self._daemon_sub = None
        if self._own_ctx:
            self._ctx.term()

    def _sub(self, endpoint: str, *topics: bytes) -> zmq.asyncio.Socket:
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        if self._secure is not None:
            self._secure(sock)
        for topic in topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        sock.connect(endpoint)
        return sock

    # -- snapshot ------------------------------------------------------------------------
    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold(self) -> None:
        """Keep engine messages (heartbeats excepted) until ``apply_snapshot`` or ``release``."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Stop waiting for a snapshot: apply what was kept, in order."""
        held, self._held = self._held, None
        for item in held or ():
            self._deliver(*item)

    def apply_snapshot(self, snap: SnapshotMsg) -> bool:
        """The model gets the snapshot, then the kept messages newer than it. False (nothing
        applied) when the bridge is not holding: the live stream already went past it."""
        if self._held is None:
            log.warning("snapshot %s ignored: the live stream was not held for it", snap.id)
            return False
        self._model.apply_snapshot(snap)
        self.snapshots += 1
        if snap.pid:  # its first heartbeat is not a new engine
            self.beat_pid["engine"] = snap.pid
        for p in snap.pairs:
            self._mark(p)
        self._floors = {}
        for topic, key in SNAPSHOT_TOPICS.items():
            n = snap.seq.get(topic)
            if n is not None:
                self._floors[key] = n
                self._last_seq[key] = n  # a first live number above n + 1 counts a gap
        for topic, n in snap.seq.items():
            if topic.startswith("view:"):  # older fast states of a pair are in the snapshot too
                self._floors["engine:" + topic] = n
        self.release()
        return True

    def _deliver(self, seq_key: str, msg: Any, apply: Callable[[Any], None]) -> None:
        floor = self._floors.get(seq_key)
        if floor is not None:
            if 0 < msg.seq <= floor:
                self.snapshot_dropped += 1
                return
            del self._floors[seq_key]  # one topic's numbers only rise (a new engine: new floors)
        self._track_seq(seq_key, msg.seq)
        if type(msg) is PairStateMsg:
            self._mark(msg)
        try:
            apply(msg)
        except Exception as exc:  # the model choked on a decodable but odd message: drop, count
            self._bad("engine", f"{type(exc).__name__}: {exc}")

    def _mark(self, msg: PairStateMsg) -> None:
        bid, ask = msg.bid, msg.ask
        if bid is not None and ask is not None and bid > 0.0 and ask > 0.0:
            self.marks[msg.symbol] = (bid, ask)

    def beat_age(self, kind: str) -> float | None:
        """Seconds since the last heartbeat of ``kind``, or None if none was ever seen."""
        t = self.last_beat.get(kind)
        return None if t is None else self._clock() - t

    # -- the loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._engine_sub is not None and self._feed_sub is not None
        poller = zmq.asyncio.Poller()
        poller.register(self._engine_sub, zmq.POLLIN)
        poller.register(self._feed_sub, zmq.POLLIN)
        # sync views of the same sockets: a NOBLOCK recv without a Future per message
        drains = {
            self._engine_sub: ("engine", zmq.Socket.shadow(self._engine_sub.underlying)),
            self._feed_sub: ("feed", zmq.Socket.shadow(self._feed_sub.underlying)),
        }
        if self._daemon_sub is not None:
            poller.register(self._daemon_sub, zmq.POLLIN)
            drains[self._daemon_sub] = ("daemon", zmq.Socket.shadow(self._daemon_sub.underlying))
        while True:
            try:
                ready = await poller.poll()
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ETERM:
                    return
                log.warning("bridge poll failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            for sock, _ in ready:
                source, sync = drains[sock]  # type: ignore[index]
                for _ in range(DRAIN_BATCH):
                    try:
                        frames = sync.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.dispatch(source, frames)
            if ready:
                await asyncio.sleep(0)  # let the UI paint between batches

    def dispatch(self, source: str, frames: list[bytes]) -> None:
        """Decode one multipart message from ``source`` ("engine"/"feed") and apply it."""
        self.messages += 1
        try:
            if len(frames) != 2:
                raise BadMessage(f"{len(frames)} frames, expected [topic, payload]")
            topic, payload = frames
            if source == "engine":
                self._dispatch_engine(topic, decode_engine(payload))
            elif source == "daemon":
                self._dispatch_daemon(topic, decode_engine(payload))
            else:
                self._dispatch_feed(topic, decode_feed(payload))
        except BadMessage as exc:
            self._bad(source, str(exc))
        except Exception as exc:  # the model choked on a decodable but odd map: drop, count
            self._bad(source, f"{type(exc).__name__}: {exc}")

    def _bad(self, source: str, why: str) -> None:
        self.bad_messages += 1
        if self.bad_messages <= _LOG_FIRST_BAD or self.bad_messages % 1000 == 0:
            log.warning(
                "dropped malformed %s message (%d so far): %s", source, self.bad_messages, why
            )

    def _track_seq(self, key: str, seq: Any) -> None:
        if type(seq) is not int or seq <= 0:
            return  # 0: the message carried none
        last = self._last_seq.get(key)
        if last is not None and seq > last + 1:
            self.gaps[key] = self.gaps.get(key, 0) + seq - last - 1
        # seq <= last: the producer restarted and counts from 1 again; not a loss
        self._last_seq[key] = seq

    def _dispatch_engine(self, topic: bytes, m: dict[str, Any]) -> None:
        route = self._routes.get(topic)
        cls: type[Message]
        apply: Callable[[Any], None] | None
        if route is not None:
            cls, seq_key, apply = route
        elif topic.startswith(engine_wire.TOPIC_VIEW):
            msg = view_message(topic, m)
            self.views[msg.symbol] = self.views.get(msg.symbol, 0) + 1
            self._hold_or_deliver("engine:" + topic.decode(), msg, self._model.apply_pair)
            return
        elif topic == engine_wire.TOPIC_HEARTBEAT:
            cls, seq_key, apply = HeartbeatMsg, "engine:_hb", None
        else:
            raise BadMessage(f"unknown engine topic {topic[:40]!r}")
        try:
            msg: Any = cls.from_wire(m)  # every field checked; SchemaError names the bad one
        except SchemaError as exc:
            raise BadMessage(f"{topic[:40]!r}: {exc}") from None
        if apply is None:
            self._track_seq(seq_key, msg.seq)
            self._beat("engine", msg.pid, msg.phase, msg.venue)
            return
        self._hold_or_deliver(seq_key, msg, apply)

    def _hold_or_deliver(self, seq_key: str, msg: Any, apply: Callable[[Any], None]) -> None:
        if "engine" not in self.beat_pid and not self._asked and self.on_new_engine is not None:
            # the engine speaks before we heard it beat (its first beats can be lost to the
            # slow joiner): ask for its snapshot now rather than at its next beat
            self._asked = True
            self.on_new_engine(0)
        held = self._held
        if held is not None:
            if len(held) < HOLD_MAX:
                held.append((seq_key, msg, apply))
                return
            log.warning("%d messages held without a snapshot: applying them", len(held))
            self.release()
        self._deliver(seq_key, msg, apply)

    def _dispatch_feed(self, topic: bytes, m: dict[str, Any]) -> None:
        if topic == feed_wire.TOPIC_HEARTBEAT:
            self._track_seq("feed:_hb", m.get("seq"))
            pid = m.get("pid")
            self._beat("feed", pid if type(pid) is int else None)
        elif topic == feed_wire.TOPIC_STATUS:
            self._track_seq("feed:_status", m.get("seq"))
            self._model.apply_feed_status(m)
        else:
            raise BadMessage(f"unexpected feed topic {topic[:40]!r}")

    def _dispatch_daemon(self, topic: bytes, m: dict[str, Any]) -> None:
        """The daemon's own topics: its children's states and its notices."""
        self.last_daemon = self._clock()
        try:
            if topic == daemon_wire.TOPIC_CHILD:
                c = daemon_wire.ChildMsg.from_wire(m)
                self._track_seq("daemon:_child", c.seq)
                self._model.set_child(
                    c.name,
                    state=c.state,
                    pid=c.pid,
                    restarts=c.restarts,
                    next_restart_s=c.next_restart_s,
                    message=c.message,
                )
            elif topic == daemon_wire.TOPIC_EVENT:
                n = NoticeMsg.from_wire(m)
                self._track_seq("daemon:devent", n.seq)
                self._model.add_event(n.message, n.level)
            elif topic == daemon_wire.TOPIC_CONFIG:
                if type(m.get("version")) is not int or type(m.get("ok")) is not bool:
                    raise BadMessage("config: version or ok missing or of the wrong type")
                if self.on_config is not None:
                    self.on_config(m)
            else:
                raise BadMessage(f"unknown daemon topic {topic[:40]!r}")
        except SchemaError as exc:
            raise BadMessage(f"{topic[:40]!r}: {exc}") from None

    def _beat(self, kind: str, pid: int | None, phase: str = "", venue: Any = None) -> None:
        if kind == "engine" and pid is not None and pid != self.beat_pid.get(kind):
            self._new_engine(pid)
        self.last_beat[kind] = self._clock()
        if pid is not None:
            self.beat_pid[kind] = pid
        self._model.apply_heartbeat(kind, pid, phase, venue)

    def _new_engine(self, pid: int) -> None:
        """An engine beats for the first time: its numbers start again, and what was kept for
        the previous one is superseded by the snapshot the new one will give."""
        self._floors.clear()
        if self._held:
            log.info(
                "new engine %d: %d messages kept for the previous one dropped", pid, len(self._held)
            )
            self._held = []
        if self.on_new_engine is not None:
            self.on_new_engine(pid)
