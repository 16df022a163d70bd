"""The risk pipeline: every signal runs through the same named checks, in a fixed order.

Owns ``RiskContext`` (what the checks may look at), ``RiskEngine`` and the checks
(NautilusTrader style: each returns a ``CheckResult``; all of them run and are recorded
even after a refusal, so a decision shows every reason; approved only if all pass):

1. ``valid_stop``      stop on the losing side of entry, take-profit (if any) on the winning side
2. ``costs``           the target's move from the mid >= min_target_cost_multiple round trips
                       (fees both sides, spread, slippage both sides), and reward / risk after
                       those costs >= min_reward_risk (engine/core/costs.py)
3. ``min_confidence``  confidence >= portfolio.min_confidence
4. ``pair_mode``       entries need ACTIVE, and new entries not stopped by the operator
5. ``data_fresh``      no entries on a STALE pair
6. ``market_type``     spot pairs are long-only
7. ``sizing``          units from risk_per_trade_usd and ATR, capped by the pair's maximum size,
                       cash, leverage and the exchange's maxima, floored to its step and checked
                       against its minimums (engine/core/sizing.py says how); the decision's
                       ``size_rule`` names the rule that set the size
8. ``total_exposure``  open notional + new notional <= max_total_exposure x capital
9. ``correlation``     open positions in the correlated cluster, this one included, <= the max

Exits (closing an existing position: SELL while long, BUY while short) reduce risk, so every
check passes them and says so; they are recorded like any decision. A signal never flips a
position: an exit closes it whole and a later signal may open the other side.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from engine.core.config import PairConfig, SafeList
from engine.core.costs import entry_costs
from engine.core.markets import MarketRules, rules_for
from engine.core.models import CheckResult, Decision, PairMode, Position, Signal, SignalType
from engine.core.sizing import Sizing, size_entry

logger = logging.getLogger(__name__)

OPEN_LONG: Final = "open_long"
OPEN_SHORT: Final = "open_short"
CLOSE_LONG: Final = "close_long"
CLOSE_SHORT: Final = "close_short"
CHECKS: Final = (
    "valid_stop",
    "costs",
    "min_confidence",
    "pair_mode",
    "data_fresh",
    "market_type",
    "sizing",
    "total_exposure",
    "correlation",
)


_PCT_SPECS: Final = (".0%", ".1%", ".2%", ".3%")


def _pct(x: float, near: float, near_texts: list[str]) -> str:
    """``x`` as a percentage, with as many decimals as it takes not to read as ``near``
    (59.96 % is "59.96%", never "60%" beside a minimum of 60 %). ``near_texts``: ``near``
    written with 0 to 3 decimals (``_pct_texts``, kept by the caller)."""
    for digits in range(4):
        text = format(x, _PCT_SPECS[digits])
        if text != near_texts[digits] or x == near:
            return text
    return f"{x:.4%}"


def _pct_texts(x: float) -> list[str]:
    return [format(x, spec) for spec in _PCT_SPECS]


class _HasCorrelatedWith(Protocol):
    def correlated_with(self, symbol: str, among: Iterable[str] | None = None) -> set[str]: ...


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class RiskContext:
    """A consistent view of the account and the pairs at the moment a signal is evaluated."""

    positions: Mapping[str, Position]
    marks: Mapping[str, float]  # latest price per symbol
    atr: Mapping[str, float | None]
    modes: Mapping[str, PairMode]  # missing: ACTIVE
    stale: Mapping[str, bool]  # missing: fresh
    # a CorrelationTracker (asked only among the open positions: O(open) couples at any N) or a
    # callable ``correlated_with(symbol)``; None: configured groups only
    correlated_with: Callable[[str], Iterable[str]] | _HasCorrelatedWith | None
    quotes: Mapping[str, tuple[float, float]]  # (bid, ask)
    equity: float | None  # None: the configured capital
    cash: float | None  # None: no cash cap on spot sizing
    entries_stopped: str  # the operator stopped new entries on every pair: why ("" = allowed)

    def __init__(
        self,
        positions: Mapping[str, Position],
        marks: Mapping[str, float] | None = None,
        atr: Mapping[str, float | None] | None = None,
        modes: Mapping[str, PairMode] | None = None,
        stale: Mapping[str, bool] | None = None,
        correlated_with: Callable[[str], Iterable[str]] | _HasCorrelatedWith | None = None,
        quotes: Mapping[str, tuple[float, float]] | None = None,
        equity: float | None = None,
        cash: float | None = None,
        entries_stopped: str = "",
    ) -> None:
        self.positions = positions
        self.marks = marks if marks is not None else {}
        self.atr = atr if atr is not None else {}
        self.modes = modes if modes is not None else {}
        self.stale = stale if stale is not None else {}
        self.correlated_with = correlated_with
        self.quotes = quotes if quotes is not None else {}
        self.equity = equity
        self.cash = cash
        self.entries_stopped = entries_stopped

    def peers(self, symbol: str, among: set[str] | None = None) -> set[str]:
        """``symbol``'s correlated peers; ``among``: only these matter (the caller intersects)."""
        cw = self.correlated_with
        if cw is None:
            return set()
        if not callable(cw):
            return set(cw.correlated_with(symbol, among))
        return set(cw(symbol))


class RiskEngine:
    """Runs signals through the checks and builds ``Decision`` records."""

    def __init__(self, cfg: SafeList, rules: Mapping[str, MarketRules] | None = None) -> None:
        self.cfg = cfg
        self.pc = cfg.portfolio
        self.rules = dict(rules or {})
        # the minimum confidence as the reasons write it (the config is frozen: a reload
        # builds a new engine)
        self._need_texts = _pct_texts(self.pc.min_confidence)
        self._max_exposure = self.pc.max_exposure_usd  # (a property of the config model: Python)
        self._group_peers: dict[str, set[str]] = {}
        for group in self.pc.correlation_groups:
            for s in group:
                self._group_peers.setdefault(s, set()).update(m for m in group if m != s)

    # ---- public -------------------------------------------------------------------------

    def evaluate(self, signal: Signal, ctx: RiskContext, key: str) -> Decision:
        """Run every check on ``signal``; the decision is approved only if all pass."""
        symbol = signal.symbol
        pair = self.cfg.pairs.get(symbol)
        pos = ctx.positions.get(symbol)
        held = pos.qty if pos is not None else 0.0
        action = self._action(signal.type, held)
        decision = Decision(key=key, symbol=symbol, ts=signal.ts, action=action, signal=signal)
        if signal.type is not SignalType.HOLD:
            logger.info("%s - Signal: %s (confidence: %.0f%%)", symbol, signal.type, signal.confidence * 100)

        if action == "none" or pair is None:
            why = "HOLD is not an order" if action == "none" else f"{symbol} is not in the safe list"
            decision.checks = [CheckResult(name, False, why) for name in CHECKS]
            logger.info("%s - Portfolio REJECTED: %s", symbol, why)
            return decision

        if action in (CLOSE_LONG, CLOSE_SHORT):
            self._fill_exit(decision, abs(held), self._price(signal, ctx), stale=ctx.stale.get(symbol, False))
        else:
            sizing = Sizing()
            long = action == OPEN_LONG
            decision.checks = [
                self._valid_stop(signal, long),
                self._costs(signal, long, ctx),
                self._min_confidence(signal),
                self._pair_mode(symbol, ctx),
                self._data_fresh(symbol, ctx),
                self._market_type(pair, long),
                self._sizing(signal, pair, ctx, held, long, sizing),
                self._total_exposure(ctx, sizing),
                self._correlation(symbol, ctx),
            ]
            decision.qty = sizing.qty
            decision.price = sizing.price
            decision.size_rule = sizing.rule
        decision.approved = all(c.ok for c in decision.checks)
        if decision.approved:
            exposure = self._exposure(ctx)
            added = decision.qty * decision.price if action in (OPEN_LONG, OPEN_SHORT) else 0.0
            logger.info("Portfolio approved (exposure: $%.2f/$%.2f)", exposure + added, self._max_exposure)
        else:
            decision.qty = 0.0
            logger.info("%s - Portfolio REJECTED: %s", symbol, "; ".join(decision.reasons))
        return decision

    def exit_decision(self, signal: Signal, pos: Position, key: str, reason: str = "exit") -> Decision:
        """An approved decision closing ``pos`` whole (stop, take-profit, flatten, kill)."""
        action = CLOSE_LONG if pos.qty > 0 else CLOSE_SHORT
        decision = Decision(key=key, symbol=pos.symbol, ts=signal.ts, action=action, signal=signal)
        price = signal.entry if signal.entry > 0 else pos.entry
        self._fill_exit(decision, abs(pos.qty), price, stale=False, why=reason)
        decision.approved = all(c.ok for c in decision.checks)
        logger.info("%s - %s approved: %s %g", pos.symbol, reason, action, decision.qty)
        return decision

    # ---- helpers ------------------------------------------------------------------------

    @staticmethod
    def _action(kind: SignalType, held: float) -> str:
        if kind is SignalType.BUY:
            return CLOSE_SHORT if held < 0 else OPEN_LONG
        if kind is SignalType.SELL:
            return CLOSE_LONG if held > 0 else OPEN_SHORT
        return "none"

    @staticmethod
    def _price(signal: Signal, ctx: RiskContext) -> float:
        if signal.entry > 0 and math.isfinite(signal.entry):
            return signal.entry
        return ctx.marks.get(signal.symbol, 0.0)

    def _fill_exit(self, decision: Decision, qty: float, price: float, stale: bool, why: str = "exit") -> None:
        ok = f"{why}: reduces risk"
        fresh = f"{why}: allowed on stale data" if stale else f"{why}: data fresh"
        decision.checks = [
            CheckResult("valid_stop", True, f"{why}: no stop needed"),
            CheckResult("costs", True, f"{why}: no target to cover"),
            CheckResult("min_confidence", True, ok),
            CheckResult("pair_mode", True, f"{why}: exits allowed in every mode"),
            CheckResult("data_fresh", True, fresh),
            CheckResult("market_type", True, ok),
            CheckResult("sizing", True, f"{why}: closes {qty:.10g} units"),
            CheckResult("total_exposure", True, f"{why}: lowers exposure"),
            CheckResult("correlation", True, ok),
        ]
        decision.qty = qty
        decision.price = price

    def _exposure(self, ctx: RiskContext) -> float:
        total = 0.0
        marks = ctx.marks
        for s, p in ctx.positions.items():
            if p.qty != 0.0:
                mark = marks.get(s, 0.0)  # (a float default: native arithmetic; see Portfolio.valuation)
                if not mark > 0.0:
                    mark = p.entry
                total += abs(p.qty) * mark
        return total

    # ---- the checks ---------------------------------------------------------------------

    @staticmethod
    def _valid_stop(signal: Signal, long: bool) -> CheckResult:
        e, sl, tp = signal.entry, signal.stop_loss, signal.take_profit
        name = "valid_stop"
        if not (math.isfinite(e) and e > 0):
            return CheckResult(name, False, f"entry {e!r} is not a positive price")
        if not (math.isfinite(sl) and sl > 0):
            return CheckResult(name, False, f"stop loss {sl!r} is missing or not a positive price")
        if long and sl >= e:
            return CheckResult(name, False, f"stop {sl:.8g} must be below entry {e:.8g} for a long")
        if not long and sl <= e:
            return CheckResult(name, False, f"stop {sl:.8g} must be above entry {e:.8g} for a short")
        # tp 0 = no take-profit
        if tp and (not math.isfinite(tp) or (long and tp <= e) or (not long and (tp >= e or tp <= 0))):
            side = "above" if long else "below"
            return CheckResult(name, False, f"take profit {tp:.8g} must be {side} entry {e:.8g}")
        return CheckResult(name, True, f"stop {sl:.8g}, entry {e:.8g}" + (f", target {tp:.8g}" if tp else ""))

    def _costs(self, signal: Signal, long: bool, ctx: RiskContext) -> CheckResult:
        name = "costs"
        e, sl, tp = signal.entry, signal.stop_loss, signal.take_profit
        pc = self.pc
        bid, ask = ctx.quotes.get(signal.symbol, (0.0, 0.0))
        if not (math.isfinite(e) and e > 0 and math.isfinite(sl) and sl > 0):
            return CheckResult(name, False, "no entry and stop to cost")
        if not tp:
            return CheckResult(name, True, "no take-profit (exit on signal): no target to cost")
        c = entry_costs(long, e, bid, ask, sl, tp, pc.taker_fee, pc.slippage_bps / 10_000.0)
        pct = 100.0 / c.mid
        trip = f"round trip {c.round_trip * pct:.3g}%"
        need_k, need_rr = pc.min_target_cost_multiple, pc.min_reward_risk
        if c.gross <= 0 or c.cost_multiple < need_k:
            why = (f"target {c.gross * pct:+.3g}% pays {max(c.cost_multiple, 0.0):.1f}× the {trip} "
                   f"(fees, spread, slippage): needs {need_k:g}×")
            return CheckResult(name, False, why)
        if need_rr > 0 and (c.risk <= 0 or c.reward_risk < need_rr):
            why = (f"reward/risk after costs {max(c.reward_risk, 0.0):.2f} ({c.reward / e * 100:+.3g}% "
                   f"vs {-c.risk / e * 100:+.3g}%): needs {need_rr:g}")
            return CheckResult(name, False, why)
        return CheckResult(name, True, f"target {c.gross * pct:+.3g}% = {c.cost_multiple:.1f}× {trip}; "
                                       f"reward/risk {c.reward_risk:.2f} after costs")

    def _min_confidence(self, signal: Signal) -> CheckResult:
        need = self.pc.min_confidence
        c = signal.confidence
        texts = self._need_texts
        if not (math.isfinite(c) and c >= need):
            return CheckResult("min_confidence", False, f"confidence {_pct(c, need, texts)} below minimum {texts[0]}")
        return CheckResult("min_confidence", True, f"confidence {_pct(c, need, texts)} >= {texts[0]}")

    @staticmethod
    def _pair_mode(symbol: str, ctx: RiskContext) -> CheckResult:
        found = ctx.modes.get(symbol, PairMode.ACTIVE)
        mode = found if isinstance(found, PairMode) else PairMode(found)  # (the enum's call is Python)
        if mode is not PairMode.ACTIVE:
            return CheckResult("pair_mode", False, f"pair is {mode}: no new entries")
        if ctx.entries_stopped:
            return CheckResult("pair_mode", False, ctx.entries_stopped)
        return CheckResult("pair_mode", True, "ACTIVE")

    @staticmethod
    def _data_fresh(symbol: str, ctx: RiskContext) -> CheckResult:
        if ctx.stale.get(symbol, False):
            return CheckResult("data_fresh", False, "data is STALE (no recent tick): no entries")
        return CheckResult("data_fresh", True, "fresh")

    @staticmethod
    def _market_type(pair: PairConfig, long: bool) -> CheckResult:
        if pair.market == "spot" and not long:
            return CheckResult("market_type", False, "spot pair cannot open a short")
        return CheckResult("market_type", True, f"{pair.market} {'long' if long else 'short'}")

    def _sizing(
        self, signal: Signal, pair: PairConfig, ctx: RiskContext, held: float, long: bool, out: Sizing
    ) -> CheckResult:
        return size_entry(
            self.pc, rules_for(signal.symbol, self.rules), pair, self._price(signal, ctx),
            ctx.atr.get(signal.symbol), held, ctx.equity, ctx.cash, out,
        )  # fmt: skip

    def _total_exposure(self, ctx: RiskContext, sizing: Sizing) -> CheckResult:
        current = self._exposure(ctx)
        new = sizing.qty * sizing.price
        total = current + new
        limit = self._max_exposure
        if total > limit + 1e-9:
            return CheckResult("total_exposure", False, f"Total exposure ${total:.2f} would exceed max ${limit:.2f}")
        note = "" if new > 0 else " (nothing sized)"
        return CheckResult("total_exposure", True, f"exposure ${total:.2f}/${limit:.2f}{note}")

    def _correlated(self, symbol: str, ctx: RiskContext, among: set[str] | None = None) -> set[str]:
        """``symbol``'s peers; every caller keeps only the open positions, so the tracker is
        asked ``among`` them: O(open) correlations per check, whatever the number of pairs."""
        return (self._group_peers.get(symbol, set()) | ctx.peers(symbol, among)) - {symbol}

    def largest_open_cluster(self, ctx: RiskContext) -> list[str]:
        """The largest set of open positions the correlation check counts together (the
        gauge shows this, so it never disagrees with the check)."""
        open_syms = {s for s, p in ctx.positions.items() if p.qty != 0.0}
        best: set[str] = set()
        for s in sorted(open_syms):
            cluster = (open_syms & self._correlated(s, ctx, open_syms)) | {s}
            if len(cluster) > len(best):
                best = cluster
        return sorted(best)

    def _correlation(self, symbol: str, ctx: RiskContext) -> CheckResult:
        limit = self.pc.max_correlated_positions
        open_syms = {s for s, p in ctx.positions.items() if p.qty != 0.0}
        peers = self._correlated(symbol, ctx, open_syms)
        worst = (open_syms & peers) | {symbol}
        # an open peer's own cluster grows too: check it so no cluster ever exceeds the max
        for peer in open_syms & peers:
            cluster = (open_syms & self._correlated(peer, ctx, open_syms)) | {peer, symbol}
            if len(cluster) > len(worst):
                worst = cluster
        n = len(worst)
        names = ", ".join(sorted(worst))
        if n > limit:
            return CheckResult("correlation", False, f"{n} correlated positions ({names}) would exceed max {limit}")
        return CheckResult("correlation", True, f"{n}/{limit} correlated ({names})")
