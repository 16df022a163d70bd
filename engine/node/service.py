"""The engine process shell: sockets, the poll loop, command acks, throttled publishing.

Owns ``EngineNode``: a SUB socket on the feed's ticks, a PUB socket for state and events, a
ROUTER socket for operator commands, and one ``TradingCore`` built with the system clock,
the paper execution client and the SQLite journal. It decodes (malformed input is counted and
dropped, never raised), tracks per-topic sequence numbers, hands ticks and commands to the
core and publishes what the core says. It holds no trading rule. A ``snapshot`` command is
answered with the state and the book's recent past (``engine.node.snapshot``) instead of an ack.

The loop is single-threaded and synchronous (``zmq.Poller``): one tick is handled start to
finish before the next, which keeps ordering and the journal's write-before-publish rule simple.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import zmq

from engine.core.config import SafeList
from engine.core.markets import MarketRules, default_rules
from engine.core.ports import Clock, HistorySource
from engine.core.trader import TradingCore
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store
from engine.node.clock import SystemClock
from engine.node.early_ticks import EarlyTicks
from engine.node.history import FeedHistory
from engine.node.kill_check import KillCheck
from engine.node.publisher import StatePublisher
from engine.node.reconcile_run import ReconcileRunner
from engine.node.reload_run import ReloadRunner
from engine.node.snapshot import build_snapshot
from engine.node.tick_in import (
    LATENCY_RING_MASK,
    TopicStats,
    drain_ticks,
    on_message,
    tick_prefixes,
)
from engine.node.warmup import warm_all
from engine.wire.commands import SNAPSHOT, CommandError, make_ack, make_snapshot, parse_command
from engine.wire.liveness import HEARTBEAT_INTERVAL_S
from engine.wire.schema import AckMsg, VenueMsg
from feed.wire import TOPIC_STATUS

log = logging.getLogger("engine")

START_RECONCILE_WAIT_S = 30.0  # a live start waits this long for its reconciliation before ticks


@dataclass(slots=True)
class Endpoints:
    feed_pub: str
    feed_rep: str
    pub: str
    cmd: str


class EngineNode:
    def __init__(
        self,
        cfg: SafeList,
        db_path: Path,
        endpoints: Endpoints,
        *,
        timeframe_s: int | None = None,
        history_limit: int | None = None,
        rules: dict[str, MarketRules] | None = None,
        clock: Clock | None = None,
        history: HistorySource | None = None,
        context: zmq.Context[Any] | None = None,
        live: Any = None,
        config_path: Path | None = None,
    ) -> None:
        """``live``: a started live execution client (engine/execution/binance_live.py); None
        trades on paper. Its events are delivered on this thread, each loop turn.
        ``config_path``: the safe list's run copy, which a ``reload`` replaces."""
        self.cfg = cfg
        self.live = live
        self.endpoints = endpoints
        self.clock = clock or SystemClock()
        self.history_limit = cfg.engine.history_candles if history_limit is None else history_limit
        self.history = history or FeedHistory(endpoints.feed_rep)
        symbols = cfg.active_symbols()
        rules = rules or {s: default_rules(s) for s in symbols}
        pc = cfg.portfolio

        self.ctx = context or zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
        self._tick_prefixes: set[bytes] = set()  # the SUB's tick subscriptions (subscribe_ticks)
        self.left_topics: set[bytes] = set()  # pairs a reload removed: their late ticks are no bad data
        # An XPUB: its subscriptions say which pairs a console shows (``view:`` topics, published
        # only while held; StatePublisher.on_subscription). It sends as a PUB does.
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.publisher = StatePublisher(self.pub)

        self.store = Store(db_path)
        self.core = TradingCore(
            cfg, clock=self.clock, journal=self.store, sink=self.publisher, rules=rules, timeframe_s=timeframe_s,
            client=live if live is not None else PaperExecutionClient(pc.taker_fee, pc.slippage_bps, rules, self.clock),
        )
        # a live kill or flatten-all is verified at the exchange once its orders are answered
        self._kill_check = KillCheck(live, self.core, self._venue_says) if live is not None else None
        # live: the book checked against the exchange at start, on reconnects, every minute
        self._reconcile = ReconcileRunner(live, self.core) if live is not None else None
        self.stats = {sym: TopicStats() for sym in symbols}
        self._reload = ReloadRunner(self, config_path)  # the safe list changed while trading
        # keyed by the topic bytes: no decode per tick
        self._by_topic = {sym.encode(): (ps, self.stats[sym]) for sym, ps in self.core.pairs.items()}
        self.subscribe_ticks()
        self._lat = [0] * (LATENCY_RING_MASK + 1)
        self._lat_i = 0
        self.ticks_total = 0
        self.bad_total = 0
        self.unknown_symbols = 0
        self.commands_bad = 0
        self.commands_expired = 0
        self._last_hb = -1e9
        self.phase = "starting"
        self.feed_state = "unknown"
        self.feed_finished = False  # a replay's feed sent its whole file
        self._bound = False
        self.early_ticks: EarlyTicks | None = None  # what arrived during warm-up, replayed by run()

    def subscribe_ticks(self) -> None:
        """The SUB's tick subscriptions follow the pairs traded (at start, after a reload): one
        per first byte of their symbols (``tick_in.tick_prefixes``)."""
        want = tick_prefixes(self.core.pairs)
        for p in want - self._tick_prefixes:
            self.sub.setsockopt(zmq.SUBSCRIBE, p)
        for p in self._tick_prefixes - want:
            self.sub.setsockopt(zmq.UNSUBSCRIBE, p)
        self._tick_prefixes = want

    # ------------------------------------------------------------------ start-up

    def bind(self) -> None:
        self.pub.bind(self.endpoints.pub)
        self.router.bind(self.endpoints.cmd)
        self.sub.connect(self.endpoints.feed_pub)
        self._bound = True
        core = self.core
        log.info("Trading Profile: %s, %d pairs, timeframe %ss", "LIVE on Binance" if self.live is not None else "paper",
                 len(core.pairs), core.timeframe_s)
        for sym, ps in core.pairs.items():
            pcfg = ps.runtime.cfg
            log.info(" %s: %s (%s) mode=%s", sym, pcfg.strategy, _params_text(pcfg.params), ps.mode)

    def warm_up(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Seed candles and indicators from history so nothing waits for ATR. Between requests
        it beats (a slow history server never gets a healthy engine restarted) and answers
        commands (a kill during a slow warm-up is not left waiting for it)."""
        self.phase = "warming"
        if self.history_limit > 0:
            self._heartbeat(self.clock.monotonic())
            # requests ahead on worker threads, beats once a second (engine/node/warmup.py)
            if not warm_all(self, should_stop, self._log_warm):
                return
        self.phase = "running"

    def _log_warm(self, sym: str, n: int) -> None:
        ind = self.core.pairs[sym].ind
        log.info("%s - warmed up on %d candles (RSI %s, ATR %s)", sym, n, _fmt(ind.rsi), _fmt(ind.atr))

    # ------------------------------------------------------------------ loop

    def run(self, should_stop: Callable[[], bool]) -> None:
        if not self._bound:
            self.bind()
        self.phase = "running"
        self._heartbeat(self.clock.monotonic())  # running is news: consoles ask for a snapshot now
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pub, zmq.POLLIN)  # (un)subscriptions: who watches which pair
        live = self.live
        if live is not None:  # an answer from the exchange wakes the loop at once
            poller.register(live.wakeup_fd, zmq.POLLIN)
            self._start_reconciliation(should_stop)
        if self.early_ticks is not None:  # the warm-up's ticks, in order, before any newer one
            self.early_ticks.replay()
            self.early_ticks = None
        while not should_stop():
            events = dict(poller.poll(timeout=20))
            if live is not None:
                live.drain()  # the venue's events, on this thread: the core is single-threaded
                self._kill_check.poll()
                self._reconcile.poll()
            if self.router in events:
                self._drain_commands()
            if self.sub in events:
                self._drain_ticks()
            if self.pub in events:
                self.publisher.read_subscriptions()
            self.tick_timers()
        self._heartbeat(self.clock.monotonic(), final=True)

    def _start_reconciliation(self, should_stop: Callable[[], bool]) -> None:
        """Live: nothing trades before the book is checked against the exchange. Ticks wait in
        the socket meanwhile; commands are answered (a kill works), heartbeats go on, the
        orders the book held open at shutdown are looked up."""
        assert self._reconcile is not None and self.live is not None
        end = time.monotonic() + START_RECONCILE_WAIT_S
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.live.wakeup_fd, zmq.POLLIN)
        while self._reconcile.runs == 0 and time.monotonic() < end and not should_stop():
            events = dict(poller.poll(timeout=50))
            self.live.drain()
            self.core.execution.poll(self.core.quote)
            self._reconcile.poll()
            if self.router in events:
                self._drain_commands()
            now = self.clock.monotonic()
            if now - self._last_hb >= HEARTBEAT_INTERVAL_S:
                self._heartbeat(now)
        if self._reconcile.runs == 0:
            log.error("the start's reconciliation did not finish in %.0f s: trading goes on, entries wait for it",
                      START_RECONCILE_WAIT_S)  # fmt: skip

    def tick_timers(self) -> None:
        self.core.on_timer()
        if self.core.leaving:  # pairs a reload removed leave once flat
            self._reload.sweep()
        if self._reload.warming:  # a reload's added or rebuilt pairs: their history came in?
            self._reload.poll()
        now = self.clock.monotonic()
        self.publisher.publish_due(self.core, self.stats, now)
        if now - self._last_hb >= HEARTBEAT_INTERVAL_S:
            self._heartbeat(now)

    def _drain_ticks(self) -> None:
        drain_ticks(self)  # the hot path (engine/node/tick_in.py)

    def on_message(self, topic: bytes, payload: bytes) -> None:
        """One message from the feed. Malformed input is counted and dropped, never raised."""
        on_message(self, topic, payload)

    # ------------------------------------------------------------------ commands

    def _drain_commands(self) -> None:
        for _ in range(100):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                self.commands_bad += 1
                continue
            ident, payload = frames[0], frames[-1]
            try:
                m = parse_command(payload)
            except CommandError as exc:
                self.commands_bad += 1
                cmd_id = _peek_id(payload)
                if cmd_id is not None:
                    self._ack(ident, AckMsg(cmd_id, "?", False, str(exc)))
                continue
            if m["cmd"] == SNAPSHOT:
                self.router.send_multipart([ident, self.snapshot_reply(m)])
            else:
                self._ack(ident, self.handle(m))

    def _expired(self, m: dict[str, Any]) -> AckMsg | None:
        """The refusal of a command that arrived after its deadline (a console that gave up
        must not see it run late), except ``kill`` (halting late is always safe)."""
        cmd, symbol = m["cmd"], m.get("symbol")
        deadline = m.get("deadline_ns")
        late_ms = (time.time_ns() - deadline) / 1e6 if deadline is not None else 0.0
        if late_ms <= 0.0 or cmd == "kill":
            return None
        self.commands_expired += 1
        log.warning("command %s %s expired (%.0f ms late)", cmd, symbol or "", late_ms)
        return AckMsg(m["id"], cmd, False, f"expired: arrived {late_ms:.0f} ms after its deadline, not applied")

    def handle(self, m: dict[str, Any]) -> AckMsg:
        """One parsed operator command, unless it expired."""
        cmd, symbol = m["cmd"], m.get("symbol")
        expired = self._expired(m)
        if expired is not None:
            return expired
        if cmd == "reconcile" and symbol is None and self._reconcile is not None:
            self._reconcile.request("command")
            return AckMsg(m["id"], cmd, True, "reconciliation asked of the exchange: the report follows",
                          modes=self.core.modes())  # fmt: skip
        if cmd == "reload":
            return self._reload.handle(m)
        result = self.core.command(cmd, symbol, choice=m.get("choice") or "", who=m.get("who") or "")
        if self._kill_check is not None and cmd in ("kill", "flatten_all"):
            self._kill_check.arm("kill" if cmd == "kill" else "flatten all")
        halted = self.core.portfolio_summary().halted if cmd in ("kill", "rearm") else None
        return AckMsg(m["id"], cmd, result.ok, result.message, modes=self.core.modes(), halted=halted,
                      noop=result.noop)  # fmt: skip

    def snapshot_reply(self, m: dict[str, Any]) -> bytes:
        """The ``snapshot`` command's one frame: the ``SnapshotMsg`` (nothing is published while
        it is built), or an ack refusing it when it arrived after its deadline."""
        expired = self._expired(m)
        if expired is not None:
            return make_ack(expired)
        snap = build_snapshot(m["id"], self.core, self.publisher, self.stats, self.store)
        log.info("snapshot: %d pairs, %d decisions, %d fills, %d events", len(snap.pairs),
                 len(snap.decisions), len(snap.fills), len(snap.events))
        return make_snapshot(snap)

    def _ack(self, ident: bytes, ack: AckMsg) -> None:
        self.router.send_multipart([ident, make_ack(ack)])

    # ------------------------------------------------------------------ heartbeat

    def counters(self) -> dict[str, int]:
        return {
            **self.core.counters(),
            "unknown_symbols": self.unknown_symbols,
            "commands_bad": self.commands_bad,
            "commands_expired": self.commands_expired,
            "gaps": sum(s.gaps for s in self.stats.values()),
            "equity_points_dropped": self.store.equity_dropped,
            "published": self.publisher.sent,
            "watched_pairs": len(self.publisher.watched),
        }

    def _heartbeat(self, now: float, final: bool = False) -> None:
        self._last_hb = now
        self.publisher.heartbeat(self.core, self.phase, self.ticks_total, self.bad_total, self.counters(),
                                 self.latency_percentiles(), final, self._venue())

    def _venue_says(self, message: str, level: str) -> None:
        self.core.notice("kill_check", level, message)  # journaled, then published
        (log.info if level == "info" else log.warning)("%s", message)

    def _venue(self) -> VenueMsg | None:
        """The live client's state for the heartbeat (a ban, a back-off, the user stream)."""
        if self.live is None:
            return None
        st = self.live.status()
        return VenueMsg(st.state, st.banned_until_ms, st.backoff_until_ms, st.stream_ok, st.last_error)

    def latency_percentiles(self) -> dict[str, float] | None:
        """p50/p99/max of feed-publish -> tick-handled latency over the last 4096 ticks, in µs."""
        n = min(self._lat_i, LATENCY_RING_MASK + 1)
        if n == 0:
            return None
        xs = sorted(self._lat[:n])
        return {"n": n, "p50": xs[n // 2] / 1000.0, "p99": xs[min(n - 1, (n * 99) // 100)] / 1000.0, "max": xs[-1] / 1000.0}

    def close(self) -> None:
        self._reload.close()  # history requests of a reload still in flight: abandoned
        if self.live is not None:
            self.live.close()
        for s in (self.sub, self.pub, self.router):
            s.close(linger=0)
        self.store.close()


def _peek_id(payload: bytes) -> str | None:
    try:
        m = msgpack.unpackb(payload, raw=False)
    except Exception:
        return None
    cmd_id = m.get("id") if isinstance(m, dict) else None
    return cmd_id if isinstance(cmd_id, str) and 0 < len(cmd_id) <= 128 else None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _params_text(params: Any) -> str:
    d = params.model_dump(exclude_defaults=True, exclude_none=True)
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "defaults"
