"""A new safe list applied to a running core, pair by pair, never undoing what the operator set.

Owns ``diff`` (two safe lists compared: pairs added, removed, changed field by field; portfolio,
engine and other sections changed), ``describe`` (what each change will do, the lines a preview
shows), ``refusals`` (changes that cannot be made while trading, each with its reason: the whole
reload is refused, nothing changes) and ``apply`` (the change made on a ``TradingCore``).

Rules (docs/configuration.md, "Reloading the safe list"):

- an added pair gets its own state, starts ACTIVE (HALTED when the book holds it HALTED, or when
  every pair is HALTED: the kill switch holds) and is warmed from history by the shell;
- a removed pair with a position or an order goes REDUCING (no entries; stops and exits run)
  and leaves when flat (``sweep``); a HALTED one stays HALTED; a flat one leaves at once;
- a changed strategy or parameter rebuilds that pair's strategy and indicators (the shell warms
  them from history); its position, orders, mode and candles are untouched;
- a changed size, leverage or tier applies to the next entry; portfolio limits to the next
  decision (a tighter cap blocks entries, it never closes anything);
- PAUSED, REDUCING, HALTED and the stop of new entries are never changed by a reload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.core.candles import Candle, CandleBuilder
from engine.core.config import PairConfig, SafeList
from engine.core.correlation import CorrelationTracker
from engine.core.markets import default_rules
from engine.core.models import PairMode
from engine.core.pair import PairRuntime
from engine.core.quality import PriceBand
from engine.core.risk import RiskEngine

if TYPE_CHECKING:
    from engine.core.trader import PairState, TradingCore

log = logging.getLogger("engine")

REBUILD_FIELDS = ("strategy", "market")  # with any params.*: a new strategy and indicators
# portfolio fields a run cannot change: why, and what to do instead
FIXED_PORTFOLIO = {
    "taker_fee": "paper fills' costs are set for the run",
    "slippage_bps": "paper fills' costs are set for the run",
    "day_start_hour_utc": "the trading day's start is kept in the book",
}
REASON_REMOVED = "reload: removed from the safe list"


@dataclass(slots=True)
class ReloadDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # symbol -> "field: old -> new"
    portfolio: list[str] = field(default_factory=list)  # "field: old -> new"
    engine: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # notify, data: whole sections changed

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.portfolio or self.engine or self.sections)

    def summary(self) -> str:
        parts = [f"+{s}" for s in self.added] + [f"-{s}" for s in self.removed]
        parts += [f"~{s}" for s in self.changed]
        if self.portfolio:
            parts.append(f"portfolio ({len(self.portfolio)})")
        parts += [f"{x.split(':')[0]}" for x in self.engine] + self.sections
        return ", ".join(parts) or "no change"

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed,
                "portfolio": self.portfolio, "engine": self.engine, "sections": self.sections}  # fmt: skip


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def diff(old: SafeList, new: SafeList) -> ReloadDiff:
    """What changes from ``old`` to ``new`` (disabled pairs count as absent)."""
    d = ReloadDiff()
    was, now = set(old.active_symbols()), set(new.active_symbols())
    d.added = [s for s in new.active_symbols() if s not in was]
    d.removed = [s for s in old.active_symbols() if s not in now]
    for s in new.active_symbols():
        if s in was:
            ch = _changes(old.pairs[s].model_dump(mode="json"), new.pairs[s].model_dump(mode="json"))
            if ch:
                d.changed[s] = ch
    d.portfolio = _changes(old.portfolio.model_dump(mode="json"), new.portfolio.model_dump(mode="json"))
    d.engine = _changes(old.engine.model_dump(mode="json"), new.engine.model_dump(mode="json"))
    for section in ("notify", "data"):
        if getattr(old, section) != getattr(new, section):
            d.sections.append(section)
    return d


def _rebuilds(changes: list[str]) -> bool:
    return any(c.startswith(("params.", *(f"{f}:" for f in REBUILD_FIELDS))) for c in changes)


def refusals(d: ReloadDiff, open_positions: set[str]) -> list[str]:
    """Changes a running system cannot make, one line each with the reason and what to do."""
    out = []
    for c in d.engine:
        if c.startswith("timeframe:"):
            out.append(f"engine.{c}: every pair's candles would restart (stop and start the daemon to change it)")
    for c in d.portfolio:
        name = c.split(":", 1)[0]
        if name in FIXED_PORTFOLIO:
            out.append(f"portfolio.{c}: {FIXED_PORTFOLIO[name]} (stop and start the daemon to change it)")
    for section in d.sections:
        why = "notifications are set when the daemon starts" if section == "notify" else "the price bands are set at start"
        out.append(f"{section}: {why} (stop and start the daemon to change this section)")
    for sym, changes in d.changed.items():
        for c in changes:
            if c.startswith("market:") and sym in open_positions:
                out.append(f"pairs.{sym}.{c} with a position open: flatten {sym} first, then reload")
    return out


def describe(d: ReloadDiff, open_positions: set[str], modes: dict[str, str] | None = None, *,
             live: bool = False) -> list[str]:  # fmt: skip
    """What each change will do, one line each: the preview before the operator confirms."""
    modes = modes or {}
    halted_all = bool(modes) and all(m == "HALTED" for m in modes.values())
    lines = []
    for s in d.added:
        start = "HALTED (the kill switch holds: re-arm to trade)" if halted_all else "ACTIVE"
        lines.append(f"+ {s}: subscribed on the feed, warmed from history, starts {start}"
                     + ("; live: its rules from the exchange, no entry before a reconciliation covers it" if live else ""))
    for s in d.removed:
        mode = modes.get(s, "")
        if s in open_positions and mode == "HALTED":
            lines.append(f"- {s}: has a position and stays HALTED; leaves the safe list when flat")
        elif s in open_positions:
            lines.append(f"- {s}: has a position: REDUCING (no entries; stops and exits run), leaves when flat")
        else:
            lines.append(f"- {s}: flat: leaves now")
    for s, changes in d.changed.items():
        what = ", ".join(changes)
        if _rebuilds(changes):
            effect = "strategy and indicators rebuilt from history; position and mode untouched"
        else:
            effect = "applies to the next entry; position and mode untouched"
        lines.append(f"~ {s}: {what}: {effect}")
    for c in d.portfolio:
        lines.append(f"~ portfolio.{c}: applies to the next decision (a tighter limit blocks entries, never closes)")
    for c in d.engine:
        lines.append(f"~ engine.{c}" + ("" if c.startswith("timeframe:") else ": applies to the next warm-up"))
    return lines or ["no change: the file is the safe list in force"]


# -------------------------------------------------------------------------- applying


@dataclass(slots=True)
class Applied:
    """What ``apply`` did; ``warm``: pairs the shell must warm from history (added or rebuilt)."""

    warm: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # removed at once (flat)
    reducing: list[str] = field(default_factory=list)  # removed, leaving when flat

    def message(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.left:
            parts.append(f"removed {', '.join(self.left)}")
        if self.reducing:
            parts.append(f"{', '.join(self.reducing)} REDUCING until flat, then removed")
        return "; ".join(parts)


def _busy(core: TradingCore, sym: str) -> bool:
    """A position (not dust), an order in flight or an exit pending: the pair cannot leave yet."""
    pos = core.portfolio.positions.get(sym)
    if pos is not None and pos.is_open and not core.execution.is_dust(pos):
        return True
    return core.execution.open_order(sym) is not None or sym in core.execution.exits


def busy(core: TradingCore, sym: str) -> bool:
    return _busy(core, sym)


def open_positions(core: TradingCore) -> set[str]:
    return {s for s in core.pairs if _busy(core, s)}


def _new_state(core: TradingCore, sym: str, pcfg: PairConfig, mode: PairMode) -> PairState:
    from engine.core.trader import SPARKLINE_CLOSES, PairState

    runtime = PairRuntime(sym, pcfg, core.timeframe_s, core.every_indicator)
    runtime.strategy.portfolio_state = core.policy_state
    return PairState(sym, runtime, CandleBuilder(core.timeframe_s, history=max(SPARKLINE_CLOSES, 2)),
                     mode=mode, band=PriceBand(sym, pcfg.tier, core.cfg.data))  # fmt: skip


def apply(core: TradingCore, new: SafeList, d: ReloadDiff) -> Applied:
    """Make ``new`` the core's safe list (``refusals`` must be empty). Journaled mode changes
    and a notice; the pairs in ``Applied.warm`` wait for history from the shell."""
    done = Applied()
    leaving = core.leaving
    old_cfg = core.cfg
    # a pair re-added while it was leaving: back to its mode before the reload made it REDUCING
    back = {s: leaving.pop(s) for s in list(leaving) if s in new.active_symbols()}
    for s, mode in back.items():
        if core.pairs[s].mode is PairMode.REDUCING and mode is not PairMode.REDUCING:
            core.set_modes({s: mode}, "reload: back in the safe list")
    kept_old = {s: old_cfg.pairs[s] for s in leaving if s in old_cfg.pairs}
    modes: dict[str, PairMode] = {}
    for s in d.removed:
        if s not in core.pairs:
            continue
        if _busy(core, s):
            ps = core.pairs[s]
            leaving[s] = ps.mode
            kept_old[s] = old_cfg.pairs[s]
            if ps.mode in (PairMode.ACTIVE, PairMode.PAUSED):
                modes[s] = PairMode.REDUCING
            done.reducing.append(s)
        else:
            _drop(core, s)
            done.left.append(s)
    if modes:
        core.set_modes(modes, REASON_REMOVED)
    # the core trades the new list plus the pairs leaving (their old config: exits still decide)
    effective = new.model_copy(update={"pairs": {**new.pairs, **kept_old}}) if kept_old else new
    core.cfg = effective
    core.stale_after_s = new.portfolio.stale_after_s
    book_modes = core.journal.load_modes()
    all_halted = bool(core.pairs) and all(p.mode is PairMode.HALTED for p in core.pairs.values())
    for s in d.added:
        if s in core.pairs:  # re-added while leaving: a changed pair now
            _change(core, s, new.pairs[s], done)
            continue
        core.rules.setdefault(s, default_rules(s))
        mode = PairMode.HALTED if all_halted or book_modes.get(s) is PairMode.HALTED else PairMode.ACTIVE
        core.pairs[s] = _new_state(core, s, new.pairs[s], mode)
        if book_modes.get(s, PairMode.ACTIVE) is not mode:
            core.set_modes({s: mode}, "reload: added" + (" while the kill switch holds" if all_halted else ""))
        done.added.append(s)
        done.warm.append(s)
    for s in d.changed:
        _change(core, s, new.pairs[s], done)
    core.symbols = list(core.pairs)
    core.risk = RiskEngine(effective, core.rules)
    _rebuild_correlations(core)
    for ps in core.pairs.values():
        ps.dirty = True
    core.portfolio_dirty = True
    return done


def _change(core: TradingCore, sym: str, pcfg: PairConfig, done: Applied) -> None:
    ps = core.pairs[sym]
    old = ps.runtime.cfg
    if old == pcfg:
        return
    changes = _changes(old.model_dump(mode="json"), pcfg.model_dump(mode="json"))
    if _rebuilds(changes):
        runtime = PairRuntime(sym, pcfg, core.timeframe_s, core.every_indicator)
        runtime.strategy.portfolio_state = core.policy_state
        ps.runtime = runtime
        ps.ind = runtime.ind
        ps.signal = None
        done.warm.append(sym)
    else:
        ps.runtime.cfg = pcfg
    if pcfg.tier != old.tier:
        band = PriceBand(sym, pcfg.tier, core.cfg.data)
        band.ref, band.ref_at, band.quarantined = ps.band.ref, ps.band.ref_at, ps.band.quarantined
        ps.band = band


def _drop(core: TradingCore, sym: str) -> None:
    core.pairs.pop(sym, None)
    core.leaving.pop(sym, None)
    log.info("%s - removed from the safe list: no longer traded", sym)


def _rebuild_correlations(core: TradingCore) -> None:
    """A tracker over the pairs traded now, refilled with the closes each pair holds."""
    pc = core.cfg.portfolio
    corr = CorrelationTracker(list(core.pairs), pc.correlation_window, pc.correlation_threshold, pc.correlation_groups)
    closes = sorted((c.ts, s, c.close) for s, ps in core.pairs.items() for c in ps.candles.closed)
    for ts, s, close in closes:
        corr.on_close(s, ts, close)
    core.corr = corr


def warm(core: TradingCore, sym: str, candles: list[Candle]) -> int:
    """History into an added pair (its candles too) or a rebuilt one (its strategy and
    indicators only: the candles it holds stay, the history stops where they stop)."""
    ps = core.pairs.get(sym)
    if ps is None:
        return 0
    if ps.candles.last_closed is None:
        return core.warm_pair(sym, candles)
    last = ps.candles.last_closed.ts
    older = [c for c in candles if c.ts <= last]
    newest = older[-1].ts if older else -1
    held = [c for c in ps.candles.closed if c.ts > newest]
    n = len(ps.runtime.warm_up([*older, *held]))
    ps.ind = ps.runtime.ind
    ps.dirty = True
    return n


def sweep(core: TradingCore, only: set[str] | None = None) -> list[str]:
    """Pairs a reload removed that are flat now (and in ``only``, when given: the shell lets a
    pair's flat state be published first) leave. Returns them (the shell unsubscribes)."""
    gone = [s for s in list(core.leaving) if not _busy(core, s) and (only is None or s in only)]
    for s in gone:
        _drop(core, s)
        core.cfg = core.cfg.model_copy(update={"pairs": {k: v for k, v in core.cfg.pairs.items() if k != s}})
        core.notice("reload", "info", f"{s} is flat: removed from the safe list, no longer traded")
    if gone:
        core.symbols = list(core.pairs)
        core.risk = RiskEngine(core.cfg, core.rules)
        _rebuild_correlations(core)
        core.portfolio_dirty = True
    return gone
