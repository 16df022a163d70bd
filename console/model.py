"""The console's plain state model: what the bridge writes and the widgets read.

Owns ``ConsoleModel`` (per-pair views, portfolio, decision/fill/event logs, feed and child
status), the ``Ack`` returned for operator commands and the ``Backend`` protocol the process
side implements. No Textual here: ingest must stay O(1) and cheap because the bridge calls the
``apply_*`` methods up to thousands of times a second. Ingest only records values and marks
what changed in ``dirty``; the app's single repaint timer decides when to draw.

Call every method from the app's event loop (the bridge runs there): ``take_dirty`` swaps the
set without a lock.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

# Flags in ``dirty`` besides symbols; "@" never starts a symbol (engine.core.config.SYMBOL_RE).
DIRTY_HEADER = "@header"
DIRTY_PORTFOLIO = "@portfolio"
DIRTY_LOG = "@log"  # decision log
DIRTY_EVENTS = "@events"  # operator event log (acks, fills, child status)

MODES = ("ACTIVE", "PAUSED", "REDUCING", "HALTED")
CHILD_STATES = ("starting", "running", "restarting", "dead", "stopped")

DECISIONS_MAXLEN = 500
FILLS_MAXLEN = 500
EVENTS_MAXLEN = 500
# A running child whose last heartbeat is older than this is shown as silent.
HEARTBEAT_SILENT_S = 3.0
# Rate limit for malformed-input warnings: the first few, then one per this many.
_WARN_FIRST = 10
_WARN_EVERY = 1000


def _f(x: Any) -> float | None:
    """A finite float from a wire value, or None (bools, strings and NaN are not numbers)."""
    t = type(x)
    if t is float:
        return x if math.isfinite(x) else None
    if t is int:
        return float(x)
    return None


def _i(x: Any) -> int:
    return x if type(x) is int else 0


def _d(x: Any) -> dict[str, Any] | None:
    return x if type(x) is dict else None


@dataclass(slots=True)
class PairView:
    """Latest engine state of one pair, as published on topic ``pair``."""

    symbol: str
    tier: str = ""
    strategy: str = ""
    mode: str = "ACTIVE"
    stale: bool = False
    last: float | None = None
    bid: float | None = None
    ask: float | None = None
    change_pct: float | None = None
    tick_age_ms: float | None = None
    ticks: int = 0
    gaps: int = 0
    bad: int = 0
    closes: list[float] = field(default_factory=list)
    ind: dict[str, Any] = field(default_factory=dict)
    signal: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    position: dict[str, Any] | None = None
    ts: int = 0  # ns, engine publish time
    seq: int = 0
    received_at: float | None = None  # model clock when the last map arrived; None = no data yet
    updates: int = 0

    def tick_age_s(self, now: float) -> float | None:
        """Age of the latest tick now: the age the engine reported plus time since it arrived."""
        if self.received_at is None or self.tick_age_ms is None:
            return None
        return self.tick_age_ms / 1000.0 + max(0.0, now - self.received_at)

    def is_stale(self, now: float, stale_after_s: float) -> bool:
        """Stale if the engine says so, if no data arrived yet, or the tick aged out since."""
        if self.stale or self.received_at is None:
            return True
        age = self.tick_age_s(now)
        return age is None or age > stale_after_s

    def badge(self, now: float, stale_after_s: float) -> str:
        """The one state word a compact row shows: HALTED > STALE > PAUSED/REDUCING > ACTIVE."""
        if self.mode == "HALTED":
            return "HALTED"
        if self.is_stale(now, stale_after_s):
            return "STALE"
        return self.mode

    @property
    def position_qty(self) -> float:
        p = self.position
        if p is None:
            return 0.0
        return _f(p.get("qty")) or 0.0

    @property
    def has_position(self) -> bool:
        return self.position_qty != 0.0


@dataclass(slots=True)
class PortfolioView:
    """Latest portfolio snapshot (topic ``portfolio``); gauges default to the safe list's caps."""

    capital: float | None = None
    cash: float | None = None
    equity: float | None = None
    realised: float | None = None
    unrealised: float | None = None
    fees: float | None = None
    daily_pnl: float | None = None
    exposure_used: float | None = None
    exposure_max: float | None = None
    correlated_used: int = 0
    correlated_max: int | None = None
    halted: bool = False
    positions: int = 0
    corr_symbols: list[str] = field(default_factory=list)
    corr_matrix: list[list[float | None]] = field(default_factory=list)
    ts: int = 0
    seq: int = 0
    received_at: float | None = None


@dataclass(slots=True)
class DecisionView:
    """One risk decision (topic ``decision``): approved or rejected, with every failed reason."""

    symbol: str
    ts: int  # ms
    action: str
    approved: bool
    qty: float | None = None
    price: float | None = None
    signal_type: str = ""
    confidence: float | None = None
    reasoning: str = ""
    reasons: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    key: str = ""
    id: str = ""


@dataclass(slots=True)
class FillView:
    fill_id: str
    symbol: str
    side: str
    qty: float | None
    price: float | None
    fee: float | None
    ts: int
    reason: str = ""


@dataclass(slots=True)
class EventLine:
    """One operator-facing line of the event log: acks, fills, child restarts, errors."""

    at: float  # wall clock, epoch seconds
    level: str  # info | success | warning | error
    text: str


@dataclass(slots=True)
class ChildStatus:
    """What the supervisor knows of one child process ("feed" or "engine").

    ``next_restart_s`` is the delay announced when the state became "restarting"; the
    countdown runs from ``updated_at``. ``last_beat`` is in the model's clock (monotonic
    seconds in production).
    """

    name: str
    state: str = "starting"
    pid: int | None = None
    restarts: int = 0
    next_restart_s: float | None = None
    last_beat: float | None = None
    message: str = ""
    updated_at: float = 0.0
    beat: dict[str, Any] = field(default_factory=dict)

    def restart_in(self, now: float) -> float | None:
        if self.state != "restarting" or self.next_restart_s is None:
            return None
        return max(0.0, self.next_restart_s - (now - self.updated_at))

    def beat_age(self, now: float) -> float | None:
        return None if self.last_beat is None else max(0.0, now - self.last_beat)


_CHILD_FIELDS = frozenset({"state", "pid", "restarts", "next_restart_s", "last_beat", "message"})


@dataclass
class Ack:
    """The outcome of one operator command, shown within a second of the keystroke.

    ``fallback`` is True when the kill switch had to stop the engine and flatten from the
    store itself. ``modes`` (optional) carries the engine's ack ``modes`` map so the pane can
    show the new mode before the next ``pair`` message arrives.
    """

    cmd: str
    ok: bool
    message: str
    elapsed_ms: float = 0.0
    fallback: bool = False
    modes: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """The process side (supervisor + bridge) as the app sees it."""

    mode: str  # "DEMO" | "PAPER" | "LIVE"

    async def start(self, model: ConsoleModel) -> None:
        """Start children and bridge; from then on keep writing into ``model``."""

    async def command(self, cmd: str, symbol: str | None = None) -> Ack:
        """ping/pause/resume/reduce/flatten/flatten_all/rearm: an ack or a failure within ~1 s."""

    async def kill(self) -> Ack:
        """Kill switch, including the fallback when the engine does not ack."""

    async def stop(self) -> None:
        """Orderly shutdown; idempotent."""


class ConsoleModel:
    """Everything the console shows, as plain objects; widgets read it, the bridge writes it."""

    def __init__(
        self,
        symbols: list[str],
        pair_meta: dict[str, dict[str, Any]],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        stale_after_s: float = 10.0,
    ) -> None:
        self.clock = clock  # ages and heartbeats
        self.wall = wall  # timestamps shown to the operator (epoch seconds)
        self.stale_after_s = stale_after_s
        self.symbols: list[str] = list(symbols)
        self.pair_meta = pair_meta
        self.pairs: dict[str, PairView] = {}
        for s in self.symbols:
            meta = pair_meta.get(s, {})
            self.pairs[s] = PairView(
                symbol=s, tier=str(meta.get("tier", "")), strategy=str(meta.get("strategy", ""))
            )
        self.portfolio = PortfolioView()
        self.decisions: deque[DecisionView] = deque(maxlen=DECISIONS_MAXLEN)
        self.fills: deque[FillView] = deque(maxlen=FILLS_MAXLEN)
        self.events: deque[EventLine] = deque(maxlen=EVENTS_MAXLEN)
        self.feed_status: dict[str, Any] = {"state": "unknown", "reconnects": 0}
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
        self.malformed = 0  # messages dropped or fields ignored because they were malformed
        self.last_malformed = ""
        self.ingested = 0

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

    def _reject(self, topic: str, reason: str) -> None:
        self.malformed += 1
        self.last_malformed = f"{topic}: {reason}"
        if self.malformed <= _WARN_FIRST or self.malformed % _WARN_EVERY == 0:
            log.warning(
                "dropped malformed %s message (%d so far): %s", topic, self.malformed, reason
            )

    def open_positions(self) -> list[str]:
        return [s for s, p in self.pairs.items() if p.has_position]

    @property
    def halted(self) -> bool:
        return self.portfolio.halted or any(p.mode == "HALTED" for p in self.pairs.values())

    # ------------------------------------------------------------------ ingest

    def apply_pair(self, m: dict[str, Any]) -> None:
        sym = m.get("symbol")
        pv = self.pairs.get(sym) if type(sym) is str else None
        if pv is None:
            self._reject("pair", f"symbol {sym!r} is not in the safe list")
            return
        mode = m.get("mode")
        if mode in MODES:
            pv.mode = mode
        elif mode is not None:
            self._reject("pair", f"{sym}: unknown mode {mode!r}")
        pv.stale = m.get("stale") is True
        pv.last = _f(m.get("last"))
        pv.bid = _f(m.get("bid"))
        pv.ask = _f(m.get("ask"))
        pv.change_pct = _f(m.get("change_pct"))
        pv.tick_age_ms = _f(m.get("tick_age_ms"))
        pv.ticks = _i(m.get("ticks"))
        pv.gaps = _i(m.get("gaps"))
        pv.bad = _i(m.get("bad"))
        closes = m.get("closes")
        if type(closes) is list:
            pv.closes = closes  # numbers are checked when drawn (2-4 Hz), not per message
            self.chart_dirty.add(sym)
        pv.ind = _d(m.get("ind")) or {}
        pv.signal = _d(m.get("signal"))
        pv.decision = _d(m.get("decision"))
        pos = _d(m.get("position"))
        pv.position = pos if pos is not None and _f(pos.get("qty")) else None
        pv.ts = _i(m.get("ts"))
        pv.seq = _i(m.get("seq"))
        pv.received_at = self.clock()
        pv.updates += 1
        self.ingested += 1
        self.dirty.add(sym)

    def apply_modes(self, modes: dict[str, Any]) -> None:
        """Modes from a command ack: shown at once, confirmed by the next ``pair`` message."""
        for sym, mode in modes.items():
            pv = self.pairs.get(sym)
            if pv is not None and mode in MODES and pv.mode != mode:
                pv.mode = mode
                self.dirty.add(sym)

    def apply_flat(self, symbols: list[str]) -> None:
        """Positions the console closed itself (kill fallback): flat at once, confirmed later."""
        for sym in symbols:
            pv = self.pairs.get(sym)
            if pv is not None and pv.position is not None:
                pv.position = None
                self.dirty.add(sym)

    def apply_portfolio(self, m: dict[str, Any]) -> None:
        pf = self.portfolio
        pf.capital = _f(m.get("capital"))
        pf.cash = _f(m.get("cash"))
        pf.equity = _f(m.get("equity"))
        pf.realised = _f(m.get("realised"))
        pf.unrealised = _f(m.get("unrealised"))
        pf.fees = _f(m.get("fees"))
        pf.daily_pnl = _f(m.get("daily_pnl"))
        pf.exposure_used = _f(m.get("exposure_used"))
        pf.exposure_max = _f(m.get("exposure_max"))
        pf.correlated_used = _i(m.get("correlated_used"))
        cmax = m.get("correlated_max")
        pf.correlated_max = cmax if type(cmax) is int else None
        pf.halted = m.get("halted") is True
        pf.positions = _i(m.get("positions"))
        corr = _d(m.get("corr"))
        if corr is not None:
            syms = corr.get("symbols")
            matrix = corr.get("matrix")
            if type(syms) is list and type(matrix) is list and len(matrix) == len(syms):
                pf.corr_symbols = [str(s) for s in syms]
                pf.corr_matrix = [
                    [_f(x) for x in row] if type(row) is list else [None] * len(syms)
                    for row in matrix
                ]
            else:
                self._reject("portfolio", "corr.symbols and corr.matrix do not match")
        pf.ts = _i(m.get("ts"))
        pf.seq = _i(m.get("seq"))
        pf.received_at = self.clock()
        self.ingested += 1
        self.dirty.add(DIRTY_PORTFOLIO)
        self.dirty.add(DIRTY_HEADER)

    def apply_decision(self, m: dict[str, Any]) -> None:
        sym = m.get("symbol")
        if type(sym) is not str:
            self._reject("decision", f"symbol {sym!r} is not a string")
            return
        sig = _d(m.get("signal")) or {}
        checks: list[tuple[str, bool, str]] = []
        raw_checks = m.get("checks")
        if type(raw_checks) is list:
            for c in raw_checks:
                if type(c) in (list, tuple) and len(c) == 3:
                    checks.append((str(c[0]), c[1] is True, str(c[2] or "")))
        self.decisions.append(
            DecisionView(
                symbol=sym,
                ts=_i(m.get("ts")),
                action=str(m.get("action") or ""),
                approved=m.get("approved") is True,
                qty=_f(m.get("qty")),
                price=_f(m.get("price")),
                signal_type=str(sig.get("type") or ""),
                confidence=_f(sig.get("confidence")),
                reasoning=str(sig.get("reasoning") or ""),
                reasons=[reason or name for name, ok, reason in checks if not ok],
                checks=checks,
                key=str(m.get("key") or ""),
                id=str(m.get("id") or ""),
            )
        )
        self.ingested += 1
        self.dirty.add(DIRTY_LOG)

    def apply_fill(self, m: dict[str, Any]) -> None:
        sym = m.get("symbol")
        if type(sym) is not str:
            self._reject("fill", f"symbol {sym!r} is not a string")
            return
        fill = FillView(
            fill_id=str(m.get("fill_id") or ""),
            symbol=sym,
            side=str(m.get("side") or ""),
            qty=_f(m.get("qty")),
            price=_f(m.get("price")),
            fee=_f(m.get("fee")),
            ts=_i(m.get("ts")),
            reason=str(m.get("reason") or ""),
        )
        self.fills.append(fill)
        qty = "?" if fill.qty is None else f"{fill.qty:.6g}"
        price = "?" if fill.price is None else f"{fill.price:,.8g}"
        self.add_event(f"fill {sym} {fill.side} {qty} @ {price} ({fill.reason or 'order'})")
        self.ingested += 1

    def apply_feed_status(self, m: dict[str, Any]) -> None:
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
            self.add_event(f"feed {state} (reconnects {_i(m.get('reconnects'))})")
        self.dirty.add(DIRTY_HEADER)

    def apply_heartbeat(self, kind: str, m: dict[str, Any]) -> None:
        child = self.children.get(kind)
        if child is None:
            self._reject("_hb", f"unknown heartbeat kind {kind!r}")
            return
        child.last_beat = self.clock()
        child.beat = m
        pid = m.get("pid")
        if type(pid) is int:
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

    def add_event(self, text: str, level: str = "info") -> None:
        self.events.append(EventLine(self.wall(), level, text))
        log.log(logging.WARNING if level in ("warning", "error") else logging.INFO, "%s", text)
        self.dirty.add(DIRTY_EVENTS)
