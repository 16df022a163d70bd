"""The console's plain state model: what the bridge writes and the widgets read.

Owns ``ConsoleModel`` (per-pair views, portfolio, decision/fill/event logs, feed and child
status); the values it holds (``PairView``, ``ChildStatus``, ``Ack``, ``Backend``) are in
``console.model_types`` and re-exported here. No Textual here: ingest must stay O(1) and cheap because the bridge calls the
``apply_*`` methods up to thousands of times a second. Ingest only stores the engine's typed
messages (``engine.wire.schema``, already validated by ``from_wire``) and marks what changed in
``dirty``; the app's single repaint timer decides when to draw.

Every fact shown is the engine's: staleness, halted, daily PnL, the correlation gauge, a
decision's reasons. The console adds only what it alone knows: how long ago a message arrived
(a pair whose state is older than ``pair_silent_s(n)`` is shown STALE: the engine is not speaking)
and the state of its own children.

On attach, ``apply_snapshot`` sets everything from the engine's ``SnapshotMsg`` (its state and
the book's recent decisions, fills and events); the bridge holds the live stream until then.

Call every method from the app's event loop (the bridge runs there): ``take_dirty`` swaps the
set without a lock.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from console import eventlog
from console.eventlog import EventLine
from console.model_types import Ack, Backend, ChildStatus, PairView
from console.reconcile_state import ReconcileHolder
from console.venue import venue_news
from engine.wire.liveness import pair_silent_s
from engine.wire.schema import (
    DecisionMsg,
    FillMsg,
    NoticeMsg,
    OrderMsg,
    PairStateMsg,
    PortfolioMsg,
    SnapshotMsg,
)

__all__ = ["Ack", "Backend", "ChildStatus", "ConsoleModel", "PairView"]

log = logging.getLogger(__name__)

# Flags in ``dirty`` besides symbols; "@" never starts a symbol (engine.core.config.SYMBOL_RE).
DIRTY_HEADER = "@header"
DIRTY_PORTFOLIO = "@portfolio"
DIRTY_LOG = "@log"  # decision log
DIRTY_EVENTS = "@events"  # operator event log (acks, fills, orders, notices, child status)

MODES = ("ACTIVE", "PAUSED", "REDUCING", "HALTED")
CHILD_STATES = ("starting", "running", "restarting", "dead", "stopped")
# Order states the operator must read about (engine.core.orders.OrderStatus values).
ORDER_LEVELS = {"rejected": "error", "unknown": "warning", "cancelled": "warning"}

DECISIONS_MAXLEN = 500
FILLS_MAXLEN = 500
EVENTS_MAXLEN = 500
# Rate limit for malformed-input warnings: the first few, then one per this many.
_WARN_FIRST = 10
_WARN_EVERY = 1000


_CHILD_FIELDS = frozenset({"state", "pid", "restarts", "next_restart_s", "last_beat", "message"})


class ConsoleModel(ReconcileHolder):
    """Everything the console shows; widgets read it, the bridge writes it."""

    @classmethod
    def for_safe_list(
        cls,
        cfg: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> ConsoleModel:
        """The model of ``cfg``'s active pairs (a ``SafeList``), as the app and daemon build it."""
        symbols = cfg.active_symbols()
        meta = {
            s: {
                "tier": str(cfg.pairs[s].tier),
                "strategy": cfg.pairs[s].strategy,
                "max_position_size_usd": cfg.pairs[s].max_position_size_usd,
            }
            for s in symbols
        }
        return cls(symbols, meta, clock=clock, wall=wall)

    def __init__(
        self,
        symbols: list[str],
        pair_meta: dict[str, dict[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  # ages and heartbeats
        self.wall = wall  # timestamps shown to the operator (epoch seconds)
        self.symbols: list[str] = list(symbols)
        self.pair_meta = pair_meta
        self.pairs: dict[str, PairView] = {}
        for s in self.symbols:
            meta = pair_meta.get(s, {})
            placeholder = PairStateMsg(
                symbol=s,
                mode="ACTIVE",
                stale=True,
                tier=str(meta.get("tier", "")),
                strategy=str(meta.get("strategy", "")),
            )
            self.pairs[s] = PairView(s, placeholder)
        self.pairs_changed()
        self.portfolio: PortfolioMsg | None = None  # None until the engine's first snapshot
        self.portfolio_at: float | None = None
        # The engine's verdict (``PortfolioMsg.halted``), set at once by a kill/re-arm ack.
        self.halted = False
        self.decisions: deque[DecisionMsg] = deque(maxlen=DECISIONS_MAXLEN)
        self.fills: deque[FillMsg] = deque(maxlen=FILLS_MAXLEN)
        self.events: deque[EventLine] = deque(maxlen=EVENTS_MAXLEN)
        self.feed_status: dict[str, Any] = {"state": "unknown", "reconnects": 0}
        self.venue: Any = None  # a live engine's exchange connection (wire VenueMsg); None: paper
        self.feed_status_at: float | None = None
        self.children: dict[str, ChildStatus] = {
            "feed": ChildStatus("feed"),
            "engine": ChildStatus("engine"),
        }
        self.dirty: set[str] = set(self.symbols) | {
            DIRTY_HEADER,
            DIRTY_PORTFOLIO,
            DIRTY_LOG,
            DIRTY_EVENTS,
        }
        # Symbols whose closes changed: charts repaint these at 2-4 Hz, not at the pane rate.
        self.chart_dirty: set[str] = set(self.symbols)
        self.malformed = 0  # messages dropped because they do not fit the safe list
        self.last_malformed = ""
        self.ingested = 0
        self.tap: Callable[[Any], None] | None = None  # sees each engine message: kill progress

    # ------------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.clock()

    def take_dirty(self) -> set[str]:
        """Hand the repaint timer what changed since its last frame."""
        d = self.dirty
        self.dirty = set()
        return d

    def take_chart_dirty(self) -> set[str]:
        d = self.chart_dirty
        self.chart_dirty = set()
        return d

    def pairs_changed(self) -> None:
        """After the pairs were set or a reload changed them: each pair's silence threshold
        follows their number, as the engine's roll-call period does (engine/wire/liveness.py)."""
        silent = pair_silent_s(len(self.pairs))
        for pv in self.pairs.values():
            pv.silent_after_s = silent

    def _reject(self, topic: str, reason: str) -> None:
        self.malformed += 1
        self.last_malformed = f"{topic}: {reason}"
        if self.malformed <= _WARN_FIRST or self.malformed % _WARN_EVERY == 0:
            log.warning(
                "dropped malformed %s message (%d so far): %s", topic, self.malformed, reason
            )

    def _ingest(self, msg: Any) -> None:
        self.ingested += 1
        if self.tap is not None:
            self.tap(msg)

    def open_positions(self) -> list[str]:
        return [s for s, p in self.pairs.items() if p.has_position]

    # ------------------------------------------------------------------ ingest

    def apply_pair(self, msg: PairStateMsg) -> None:
        sym = msg.symbol
        pv = self.pairs.get(sym)
        if pv is None:
            self._reject("pair", f"symbol {sym[:40]!r} is not in the safe list")
            return
        if msg.mode not in MODES:
            self._reject("pair", f"{sym}: unknown mode {msg.mode[:40]!r}")
            return
        pv.state = msg
        if msg.closes is not None:
            pv.closes = msg.closes  # kept until the next message that carries them
            self.chart_dirty.add(sym)
        pv.received_at = self.clock()
        pv.updates += 1
        self._ingest(msg)
        self.dirty.add(sym)

    def apply_ack(self, ack: Ack) -> None:
        """An ack's modes and halted flag, shown at once; the next messages confirm them."""
        if ack.modes:
            self.apply_modes(ack.modes)
        if ack.halted is not None and ack.halted != self.halted:
            self.halted = ack.halted
            self.dirty.add(DIRTY_HEADER)
            self.dirty.add(DIRTY_PORTFOLIO)

    def apply_modes(self, modes: dict[str, str]) -> None:
        """Modes from a command ack, written into the held state until the next ``pair``."""
        for sym, mode in modes.items():
            pv = self.pairs.get(sym)
            if pv is not None and mode in MODES and pv.state.mode != mode:
                pv.state.mode = mode
                self.dirty.add(sym)

    def apply_flat(self, symbols: list[str]) -> None:
        """Positions the console closed itself (kill fallback): flat at once, confirmed later."""
        for sym in symbols:
            pv = self.pairs.get(sym)
            if pv is not None and pv.state.position is not None:
                pv.state.position = None
                self.dirty.add(sym)

    def apply_portfolio(self, msg: PortfolioMsg) -> None:
        if msg.corr is None and self.portfolio is not None:  # absent: the correlations did not change
            msg.corr = self.portfolio.corr
        self.portfolio = msg
        self.portfolio_at = self.clock()
        self.halted = msg.halted
        self.ingested += 1
        self.dirty.add(DIRTY_PORTFOLIO)
        self.dirty.add(DIRTY_HEADER)

    def apply_decision(self, msg: DecisionMsg) -> None:
        self.decisions.append(msg)
        self.ingested += 1
        self.dirty.add(DIRTY_LOG)

    def apply_fill(self, msg: FillMsg) -> None:
        self.fills.append(msg)
        self.add_event(eventlog.fill_text(msg), key=eventlog.fill_key(msg))
        self._ingest(msg)

    def apply_order(self, msg: OrderMsg) -> None:
        """Keep the pair's latest order; a rejected, unknown or cancelled one is an event."""
        pv = self.pairs.get(msg.symbol)
        if pv is not None:
            pv.order = msg
        level = ORDER_LEVELS.get(msg.status)
        if level is not None:
            why = f": {msg.message}" if msg.message else ""
            self.add_event(
                f"order {msg.symbol} {msg.side} {msg.qty:.6g} {msg.status} ({msg.reason}){why}",
                level,
            )
        self._ingest(msg)

    def apply_notice(self, msg: NoticeMsg) -> None:
        self.add_event(msg.message, eventlog.level_of(msg.level), key=eventlog.notice_key(msg))
        self._ingest(msg)

    def apply_snapshot(self, msg: SnapshotMsg) -> None:
        """The engine's ``SnapshotMsg`` on attach: every pair, the portfolio (and the modes in
        them), the decision and fill logs (replaced: the book holds every decision and fill the
        engine published), the book's fills and events, oldest first, marked ``[book]`` (none
        shown twice), then one line saying what was recovered. The bridge applies the live
        messages that follow it (console/bridge.py)."""
        for p in msg.pairs:
            self.apply_pair(p)
        self.apply_portfolio(msg.portfolio)
        self.decisions.clear()
        self.decisions.extend(msg.decisions)
        self.fills.clear()
        self.fills.extend(msg.fills)
        self.dirty.add(DIRTY_LOG)
        self.events.extend(eventlog.book_lines(msg, {e.key for e in self.events if e.key}))
        self.add_event(eventlog.recovered_text(msg))  # after them: the newest line, in view
        self.apply_reconcile(msg.reconcile)  # console/reconcile_state.py

    def apply_feed_status(self, m: dict[str, Any]) -> None:
        """The feed's ``_status`` map (feed-owned format, ``feed.wire``)."""
        state = m.get("state")
        if type(state) is not str:
            self._reject("_status", f"state {state!r} is not a string")
            return
        prev = self.feed_status.get("state")
        self.feed_status = m
        self.feed_status_at = self.clock()
        if prev not in (state, "unknown") and state != "connected":
            err = m.get("last_error")
            self.add_event(f"feed {state}" + (f": {err}" if err else ""), "warning")
        elif prev not in (state, "unknown"):
            reconnects = m.get("reconnects")
            n = reconnects if type(reconnects) is int else 0
            self.add_event(f"feed {state} (reconnects {n})")
        self.dirty.add(DIRTY_HEADER)

    def apply_heartbeat(self, kind: str, pid: int | None, phase: str = "", venue: Any = None) -> None:
        """A child's heartbeat (``HeartbeatMsg`` from the engine, the feed's ``_hb`` map);
        ``phase`` is the engine's ("warming" while it loads history, then "running");
        ``venue`` a live engine's exchange connection (a ban, the user stream)."""
        child = self.children.get(kind)
        if child is None:
            self._reject("_hb", f"unknown heartbeat kind {kind[:40]!r}")
            return
        if kind == "engine":
            prev, self.venue = self.venue, venue
            if venue is not None:
                for text, level in venue_news(prev, venue, self.wall()):
                    self.add_event(text, level)
                self.dirty.add(DIRTY_HEADER)
        child.last_beat = self.clock()
        child.phase = phase
        if pid is not None:
            child.pid = pid
        if child.state == "starting":  # a beat proves it started; the supervisor owns the rest
            child.state = "running"
        self.dirty.add(DIRTY_HEADER)

    def set_child(self, name: str, **fields: Any) -> None:
        """Supervisor updates: state, pid, restarts, next_restart_s, last_beat, message."""
        child = self.children.get(name)
        if child is None:
            child = self.children[name] = ChildStatus(name)
        prev_state = child.state
        for k, v in fields.items():
            if k in _CHILD_FIELDS:
                setattr(child, k, v)
            else:
                self._reject("set_child", f"{name}: ChildStatus has no field {k!r}")
        child.updated_at = self.clock()
        if child.state != prev_state:
            level = (
                "error"
                if child.state == "dead"
                else "warning"
                if child.state == "restarting"
                else "info"
            )
            extra = f": {child.message}" if child.message else ""
            self.add_event(f"{name} {child.state}{extra}", level)
        self.dirty.add(DIRTY_HEADER)

    def add_event(self, text: str, level: str = "info", *, key: str = "") -> None:
        self.events.append(EventLine(self.wall(), level, text, key))
        log.log(logging.WARNING if level in ("warning", "error") else logging.INFO, "%s", text)
        self.dirty.add(DIRTY_EVENTS)
