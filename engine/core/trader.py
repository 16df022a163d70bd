"""The trading core: ticks, candle closes and operator commands in; journaled facts and
events out. No sockets, no database, no terminal, no wall clock: see ``engine.core.ports``.

Owns ``TradingCore`` and ``PairState`` (what the core holds for one pair besides its
position). The flow of one tick: plausibility (a tick far ahead of the pair's clock must be
confirmed by the next one), forming candle, exits of an open position against the executable
side, and on each candle close: indicators → strategy → signal → risk pipeline → order.
Operator commands (pause, resume, reduce, flatten, flatten all, kill, re-arm) come from
``engine.core.commands``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.core.candles import Candle, CandleBuilder
from engine.core.commands import OperatorCommands
from engine.core.config import SafeList
from engine.core.correlation import CorrelationTracker
from engine.core.events import DecisionMade
from engine.core.execution import ExecutionEngine
from engine.core.markets import MarketRules, default_rules
from engine.core.models import Decision, Indicators, PairMode, Position, Side, Signal, SignalType
from engine.core.operator_state import mark_day, restore
from engine.core.orders import Order, client_order_id
from engine.core.pair import PairRuntime
from engine.core.placement import place_entry
from engine.core.portfolio import Portfolio
from engine.core.ports import Clock, EventSink, ExecutionClient, Journal, NullSink
from engine.core.quality import PriceBand, gap_entry, newest_only
from engine.core.reconcile import Reconciler
from engine.core.risk import RiskContext, RiskEngine
from engine.core.views import PortfolioSummary, policy_state, portfolio_summary

log = logging.getLogger("engine")

SPARKLINE_CLOSES: Final = 60
JUMP_CONFIRM_MIN_MS: Final = 60_000  # a tick this far past the pair's last one needs confirming
JUMP_CONFIRM_TICKS: Final = 3  # ... by this many ticks agreeing with it
JUMP_CONFIRM_S: Final = 1.0  # ... over at least this long
FLUSH_EVERY_S: Final = 0.5
FEED_LATENCY_ALLOWANCE_MS: Final = 2_000  # a candle is closed by the timer this long after its end
EQUITY_EVERY_S: Final = 10.0


@dataclass(slots=True)
class PairState:
    """Everything the core holds for one pair besides its position (kept by the Portfolio)."""

    symbol: str
    runtime: PairRuntime
    candles: CandleBuilder
    mode: PairMode = PairMode.ACTIVE
    bid: float = 0.0
    ask: float = 0.0
    last: float = 0.0
    last_base_volume: float = -1.0
    last_tick_at: float = 0.0  # clock.monotonic() at the latest tick; 0 = never
    last_te: int = 0  # exchange time of the newest accepted tick (ms)
    te_offset_ms: int = 0  # feed clock minus our clock at the latest tick (replays run apart)
    suspect_te: int = 0  # a far jump waiting for confirmation by the ticks after it
    suspect_since: float = 0.0
    suspect_count: int = 0
    ticks: int = 0
    implausible: int = 0  # ticks refused by the plausibility check
    band: PriceBand = field(default_factory=PriceBand)  # quarantines implausible prices
    ind: Indicators = field(default_factory=Indicators)
    signal: Signal | None = None
    decision: Decision | None = None
    dirty: bool = True


class TradingCore(OperatorCommands):
    def __init__(
        self,
        cfg: SafeList,
        *,
        clock: Clock,
        client: ExecutionClient,
        journal: Journal,
        sink: EventSink | None = None,
        rules: Mapping[str, MarketRules] | None = None,
        timeframe_s: int | None = None,
        every_indicator: bool = True,
    ) -> None:
        """``every_indicator`` False: each pair computes only the indicators its strategy reads
        (a backtest; ``PairRuntime``)."""
        self.cfg = cfg
        self.every_indicator = every_indicator
        self.clock = clock
        self.journal = journal
        self.sink = sink or NullSink()
        self.timeframe_s = timeframe_s or cfg.engine.timeframe_s
        self.symbols = cfg.active_symbols()
        pc = cfg.portfolio
        self.stale_after_s = pc.stale_after_s
        self.rules = dict(rules) if rules else {s: default_rules(s) for s in self.symbols}
        self._jump_ms = max(JUMP_CONFIRM_MIN_MS, 5 * self.timeframe_s * 1000)

        journal.init_account(pc.capital_usd, clock.time_ms())
        self.portfolio = Portfolio(pc.capital_usd, pc.day_start_hour_utc)
        self._restore()
        self.risk = RiskEngine(cfg, self.rules)
        self.corr = CorrelationTracker(self.symbols, pc.correlation_window, pc.correlation_threshold, pc.correlation_groups)
        modes = journal.load_modes()
        self.pairs: dict[str, PairState] = {}
        for sym in self.symbols:
            runtime = PairRuntime(sym, cfg.pair(sym), self.timeframe_s, every_indicator)
            runtime.strategy.portfolio_state = self.policy_state
            self.pairs[sym] = PairState(
                sym, runtime, CandleBuilder(self.timeframe_s, history=max(SPARKLINE_CLOSES, 2)),
                mode=modes.get(sym, PairMode.ACTIVE), band=PriceBand(sym, cfg.pair(sym).tier, cfg.data),
            )
        self._outside_quotes: dict[str, tuple[float, float]] = {}  # stored positions of pairs not traded
        self.leaving: dict[str, PairMode] = {}  # removed by a reload, REDUCING until flat (engine/core/reload.py)
        self.execution = ExecutionEngine(client, journal, self.sink, self.portfolio, clock, self.rules, self._changed)
        self.execution.quote = self.quote
        self.execution.restore(journal.open_orders())
        self.reconciler = Reconciler(self)  # live: the book checked against the exchange
        self.decisions_total = 0
        self.portfolio_dirty = True
        self._last_flush = 0.0
        self._last_equity = clock.monotonic()

    # ------------------------------------------------------------------ start-up

    def _restore(self) -> None:
        """Cash, PnL and open positions from the journal: nothing persisted is lost."""
        acct = self.journal.load_account()
        if acct is not None:
            self.portfolio.cash, self.portfolio.realised, self.portfolio.fees = acct["cash"], acct["realised"], acct["fees"]
        self.portfolio.positions.update(self.journal.load_positions())
        if self.portfolio.positions:
            log.info(
                "Recovered %d open position(s) from the store: %s", len(self.portfolio.positions),
                ", ".join(f"{p.symbol} {p.qty:+.12g}@{p.entry:.12g}" for p in self.portfolio.positions.values()),
            )
        restore(self)  # the entries gate and the trading day's start equity (engine/core/operator_state.py)

    def warm_pair(self, symbol: str, candles: list[Candle]) -> int:
        """Seed a pair from history through the live path (indicators and strategy state)."""
        ps = self.pairs[symbol]
        loaded = ps.candles.seed(candles)  # the builder keeps the sparkline's worth
        committed = [(c.ts, c.close) for c in ps.runtime.warm_up(loaded)]
        self.corr.warm(symbol, committed)  # in bulk: only the tail a correlation can still use
        ps.ind = ps.runtime.ind
        last = ps.candles.last_closed
        if last is not None:
            ps.last = ps.last or last.close
            if ps.bid <= 0.0:  # until the first live tick, exits (a kill after a restart) use the last close
                ps.bid = ps.ask = last.close
            ps.last_te = max(ps.last_te, last.ts + self.timeframe_s * 1000 - 1)
        ps.dirty = True
        return len(loaded)

    # ------------------------------------------------------------------ market data

    def on_tick(self, ps: PairState, ts_ms: int, bid: float, ask: float, last: float, base_volume: float) -> bool:
        """The per-tick path, O(1) except on candle close. False: refused as implausible."""
        last_te = ps.last_te
        if last_te and ts_ms > last_te + self._jump_ms and not self._confirm_jump(ps, ts_ms):
            return False
        clock = self.clock
        now = clock.monotonic()
        if not ps.band.admit(bid, ask, last, now, ps.last):
            return False  # quarantined (core/quality.py): moves no price, candle, stop or target
        ps.bid = bid
        ps.ask = ask
        ps.last = last
        ps.ticks += 1
        ps.last_tick_at = now
        if ts_ms > last_te:  # (``_confirm_jump`` never moves ``last_te``)
            ps.last_te = ts_ms
            ps.te_offset_ms = ts_ms - clock.time_ms()
        prev_volume = ps.last_base_volume
        dv = base_volume - prev_volume if prev_volume >= 0.0 else 0.0
        ps.last_base_volume = base_volume
        closed = ps.candles.on_tick(ts_ms, last, dv if dv > 0.0 else 0.0)
        ps.dirty = True
        self.portfolio_dirty = True
        pos = self.portfolio.positions.get(ps.symbol)
        if pos is not None and pos.qty != 0.0:
            self._check_exits(ps, pos)
        if closed:  # most ticks close nothing; after a pause only the newest is decided on
            if len(closed) == 1:
                self.on_candle_close(ps, closed[0])
            else:
                for candle, decide in newest_only(ps.symbol, closed):
                    self.on_candle_close(ps, candle, decide)
        return True

    def _confirm_jump(self, ps: PairState, ts_ms: int) -> bool:
        """A tick far ahead of the pair's clock is believed only when ticks keep agreeing with
        it for ``JUMP_CONFIRM_S`` (a feed back from an outage); a lone stamp hours ahead (a
        corrupt frame) would otherwise freeze the pair's candles until the clock caught up."""
        now = self.clock.monotonic()
        if ps.suspect_count and abs(ts_ms - ps.suspect_te) <= self._jump_ms:
            ps.suspect_count += 1
            ps.suspect_te = max(ps.suspect_te, ts_ms)
            if ps.suspect_count >= JUMP_CONFIRM_TICKS and now - ps.suspect_since >= JUMP_CONFIRM_S:
                log.info("%s - exchange time jumped %.0f s ahead (confirmed by %d ticks)",
                         ps.symbol, (ts_ms - ps.last_te) / 1000, ps.suspect_count)
                ps.suspect_count = 0
                return True
        else:
            ps.suspect_te, ps.suspect_since, ps.suspect_count = ts_ms, now, 1
        ps.implausible += 1
        return False

    def _check_exits(self, ps: PairState, pos: Position) -> None:
        """Stops and take-profits on every tick against the executable side; a pending exit
        is pushed again (it stays until the pair is flat)."""
        if self.execution.exits and self.execution.retry(pos, ps.bid, ps.ask):  # (most ticks: none)
            return
        if pos.qty > 0.0:
            px = ps.bid
            hit = "stop" if pos.stop_loss and px <= pos.stop_loss else "take_profit" if pos.take_profit and px >= pos.take_profit else ""
        else:
            px = ps.ask
            hit = "stop" if pos.stop_loss and px >= pos.stop_loss else "take_profit" if pos.take_profit and px <= pos.take_profit else ""
        if hit == "stop":
            if self.execution.protect.defers(ps.symbol):
                return  # the stop resting at the exchange closes it (live)
        elif self.execution.protect.crossed:
            self.execution.protect.crossed.pop(ps.symbol, None)  # back inside the stop: a new hit starts a new grace
        if hit and not self.execution.is_dust(pos):  # dust: no order can close it (checked on a hit only)
            log.info("%s - %s hit at %g (entry %g, stop %g, target %g)", ps.symbol, hit, px, pos.entry, pos.stop_loss, pos.take_profit)
            self.close_position(ps.symbol, hit, f"{ps.symbol}|{hit}|{pos.opened_ts}")

    def on_candle_close(self, ps: PairState, candle: Candle, decide: bool = True) -> None:
        ps.ind = ps.runtime.on_candle_close(candle)
        if ps.runtime.last_ts != candle.ts:
            return  # refused (bad OHLC or out of order): counted in the runtime, nothing decided
        self.corr.on_close(ps.symbol, candle.ts, candle.close)
        if not decide:
            return  # an older candle of a catch-up: committed, only the newest is decided on
        pos = self.portfolio.positions.get(ps.symbol)
        qty = pos.qty if pos is not None and not self.execution.is_dust(pos) else 0.0  # dust: flat
        signal = ps.runtime.decide(candle, qty)
        if gap_entry(candle, signal, qty):  # a gap candle (no tick) may exit a position, never enter
            signal = ps.runtime.strategy.hold(candle, f"{signal.type} on a gap candle (no tick): no entry")
        ps.signal = signal
        if signal.type is SignalType.HOLD:
            return
        if signal.type is SignalType.SELL and qty <= 0.0 and ps.runtime.cfg.market == "spot":
            # a bearish view on a flat spot pair is no trade, not an order to refuse
            return
        pending = self.execution.open_order(ps.symbol)
        exit_signal = (signal.type is SignalType.SELL and qty > 0.0) or (signal.type is SignalType.BUY and qty < 0.0)
        if pending is not None and not exit_signal:
            # an order whose outcome is not known yet (or still in flight): no new entry
            log.info("%s - %s signal not evaluated: order %s is %s", ps.symbol, signal.type,
                     pending.client_order_id, pending.status)
            return
        if not exit_signal and self.reconciler.blocks(ps.symbol):
            log.info("%s - %s signal not evaluated: waiting for a reconciliation with the exchange",
                     ps.symbol, signal.type)  # fmt: skip
            return
        if not exit_signal:  # an entry's price, stop and target from the fill it can get
            signal = place_entry(signal, ps.runtime.cfg.params, ps.ind.atr, ps.bid, ps.ask)
            ps.signal = signal
            if signal.type is SignalType.HOLD:
                return
        elif ps.bid > 0.0:  # an exit is priced at the executable side, not the candle close
            signal.entry = ps.ask if signal.type is SignalType.BUY else ps.bid
        key = f"{ps.symbol}|{candle.ts}|{signal.type}"
        decision = self.risk.evaluate(signal, self.risk_context(), key)
        decision.ts = self.clock.time_ms()  # when it was decided; the key keeps the candle
        if decision.action in ("close_long", "close_short") and pos is not None:
            if ps.symbol in self.execution.exits:
                return  # an exit is already pending: it stays until the pair is flat
            self._decided(ps.symbol, decision)
            self.execution.close(pos, "signal", key, ps.bid, ps.ask, decision=decision)
            return
        if not (decision.approved and decision.qty > 0.0):
            self._record(ps, decision)
            return
        side = Side.BUY if decision.action == "open_long" else Side.SELL
        order = Order(
            client_order_id(key), ps.symbol, side, decision.qty, "signal", key, decision.ts,
            updated_ts=decision.ts, stop_loss=signal.stop_loss, take_profit=signal.take_profit,
        )
        if self.execution.submit(order, ps.bid, ps.ask, decision):
            self._decided(ps.symbol, decision)

    def _record(self, ps: PairState, decision: Decision) -> bool:
        """Journal a decision that creates no order, then tell the shell."""
        if not self.journal.record_decision(decision):
            return False
        self._decided(ps.symbol, decision)
        self.sink.emit(DecisionMade(decision))
        return True

    def _decided(self, symbol: str, decision: Decision) -> None:
        self.decisions_total += 1
        ps = self.pairs.get(symbol)
        if ps is not None:
            ps.decision = decision
            ps.dirty = True

    # ------------------------------------------------------------------ closing

    def quote(self, symbol: str) -> tuple[float, float]:
        ps = self.pairs.get(symbol)
        if ps is not None:
            return ps.bid, ps.ask
        return self._outside_quotes.get(symbol, (0.0, 0.0))

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        """A price known from elsewhere (the kill fallback's last marks)."""
        ps = self.pairs.get(symbol)
        if ps is None:
            self._outside_quotes[symbol] = (bid, ask)
            return
        ps.bid, ps.ask = bid, ask
        ps.last = ps.last or (bid + ask) / 2

    def close_position(self, symbol: str, reason: str, key: str, *, operator: bool = False) -> str:
        """Close ``symbol``'s whole position: the one path for stop, take-profit, flatten, kill
        and the kill fallback. Returns "flat", "filled", "pending" or "blocked: why"."""
        pos = self.portfolio.positions.get(symbol)
        if pos is None or not pos.is_open or self.execution.is_dust(pos):
            return "flat"  # dust (below the lot step) is flat for trading: no order can close it
        bid, ask = self.quote(symbol)
        decision = None
        if symbol not in self.execution.exits:
            long = pos.qty > 0
            signal = Signal(symbol, SignalType.SELL if long else SignalType.BUY, 1.0, bid if long else ask,
                            reasoning=reason, ts=self.clock.time_ms())
            decision = self.risk.exit_decision(signal, pos, key, reason)
            decision.ts = signal.ts
            self._decided(symbol, decision)
        # the decision is journaled with the exit's first order, in one transaction
        return self.execution.close(pos, reason, key, bid, ask, operator=operator, decision=decision)

    def _changed(self, symbol: str) -> None:
        ps = self.pairs.get(symbol)
        if ps is not None:
            ps.dirty = True
        self.portfolio_dirty = True

    # ------------------------------------------------------------------ timers

    def on_timer(self) -> None:
        """Work that is due by time, not by a tick: candle closes with no tick, exit retries
        and order lookups, the trading day's start equity, the equity curve."""
        now = self.clock.monotonic()
        if now - self._last_flush >= FLUSH_EVERY_S:
            self._last_flush = now
            # close candles whose interval ended with no tick, on each pair's feed clock
            wall_ms = self.clock.time_ms() - FEED_LATENCY_ALLOWANCE_MS
            for ps in self.pairs.values():
                if ps.candles.forming is not None:
                    closed = ps.candles.flush_until(wall_ms + ps.te_offset_ms)
                    if closed:  # (most timers close nothing: no iteration of an empty tuple)
                        for candle, decide in newest_only(ps.symbol, closed):
                            self.on_candle_close(ps, candle, decide)
            if self.portfolio.starts_day(self.clock.time_ms()):  # asked here, compiled: once a timer
                mark_day(self)  # the trading day's start equity, kept in the book
        if self.execution.orders or self.execution.exits:
            self.execution.poll(self.quote)
        protect = self.execution.protect
        if not self.reconciler.blocks_entries:  # (a live start places none before the book is checked)
            protect.sync_all()  # live: every open position's stop rests at the exchange
        if protect.crossed:
            for sym in protect.overdue():  # hit, and no tick since the grace ran out
                pos = self.portfolio.positions.get(sym)
                if pos is not None and pos.is_open:
                    self.close_position(sym, "stop", f"{sym}|stop|{pos.opened_ts}")
        if now - self._last_equity >= EQUITY_EVERY_S:
            self._last_equity = now
            pf = self.portfolio
            equity, exposure, unrealised = pf.valuation(self.marks())
            self.journal.record_equity(self.clock.time_ms(), equity, pf.cash, exposure,
                                       pf.realised, unrealised, pf.fees)

    # ------------------------------------------------------------------ views

    def is_stale(self, ps: PairState, now: float | None = None) -> bool:
        """The one definition of STALE: no tick yet, or none for ``stale_after_s``."""
        now = self.clock.monotonic() if now is None else now
        return ps.last_tick_at == 0.0 or now - ps.last_tick_at > self.stale_after_s

    def marks(self) -> dict[str, float]:
        return {s: p.last for s, p in self.pairs.items() if p.last > 0.0}

    def live_positions(self) -> dict[str, Position]:
        """Open positions that are not dust (what the risk check and the gauge count)."""
        return {s: p for s, p in self.portfolio.positions.items() if not self.execution.is_dust(p)}

    def risk_context(self) -> RiskContext:
        now = self.clock.monotonic()
        marks = self.marks()
        return RiskContext(
            positions=self.live_positions(),
            marks=marks,
            atr={s: p.ind.atr for s, p in self.pairs.items()},
            modes={s: p.mode for s, p in self.pairs.items()},
            stale={s: self.is_stale(p, now) for s, p in self.pairs.items()},
            quotes={s: (p.bid, p.ask) for s, p in self.pairs.items()},
            correlated_with=self.corr,
            equity=self.portfolio.equity(marks),
            cash=self.portfolio.cash,
            entries_stopped=self.entries.refusal(),
        )

    def portfolio_summary(self) -> PortfolioSummary:
        return portfolio_summary(self)

    def policy_state(self, symbol: str) -> dict[str, Any]:
        return policy_state(self, symbol)

    def change_pct(self, ps: PairState) -> float | None:
        price = self.price(ps)
        ref = ps.runtime.reference_close
        return (price / ref - 1.0) * 100.0 if ref and price else None

    @staticmethod
    def price(ps: PairState) -> float:
        last_closed = ps.candles.last_closed
        return ps.last or (last_closed.close if last_closed is not None else 0.0)

    def counters(self) -> dict[str, int]:
        """Counters a shell publishes in its heartbeat."""
        return {
            "decisions": self.decisions_total,
            "fills": self.execution.fills_booked,
            "open_orders": len(self.execution.orders),
            "pending_exits": len(self.execution.exits),
            "unmatched_events": self.execution.unmatched_events,
            "implausible_ticks": sum(p.implausible for p in self.pairs.values()),
            "quarantined_ticks": sum(p.band.quarantined for p in self.pairs.values()),
            "late_ticks": sum(p.candles.late_ticks for p in self.pairs.values()),
            "bad_candles": sum(p.runtime.bad_candles for p in self.pairs.values()),
            "correlation_rejected": self.corr.bad + self.corr.out_of_order,
        }

