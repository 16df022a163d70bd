"""The engine process: ticks in, decisions and fills out, every step recorded.

Owns the event loop of ``python -m engine``: a SUB socket on the feed's ticks, a PUB socket
for state, a ROUTER socket for operator commands, and the per-tick flow
candle → indicators → (on close) strategy → signal → risk → paper fill → SQLite → publish.

The loop is single-threaded and synchronous (``zmq.Poller``): one tick is handled start to
finish before the next, which keeps ordering and the store's write-before-publish rule simple.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from engine.broker import BrokerError, PaperBroker
from engine.candles import Candle, CandleBuilder
from engine.config import SafeList
from engine.correlation import CorrelationTracker
from engine.markets import MarketRules, default_rules
from engine.models import (
    Decision,
    Fill,
    Indicators,
    PairMode,
    Position,
    Side,
    Signal,
    SignalType,
    client_order_id,
)
from engine.pair import PairRuntime
from engine.portfolio import Portfolio
from engine.risk import RiskContext, RiskEngine
from engine.store import Store
from engine.wire import (
    TOPIC_DECISION,
    TOPIC_FILL,
    TOPIC_HEARTBEAT,
    TOPIC_PAIR,
    TOPIC_PORTFOLIO,
    CommandError,
    make_ack,
    pack,
    parse_command,
)
from feed.history import request_history
from feed.wire import TOPIC_STATUS, WireError, decode_map, decode_tick

log = logging.getLogger("engine")

PAIR_PUBLISH_INTERVAL_S = 0.1  # at most 10 state messages per pair per second (the console paints at 12 Hz)
CLOSES_INTERVAL_S = 0.5  # the sparkline's closes ride along at most twice a second, or on a candle close
PORTFOLIO_PUBLISH_INTERVAL_S = 0.25
HEARTBEAT_INTERVAL_S = 1.0
EQUITY_SNAPSHOT_INTERVAL_S = 10.0
SPARKLINE_CLOSES = 60
MAX_TS_JUMP_MS = 6 * 3600 * 1000  # a tick this far past the last one is corrupt, not news
DRAIN_BATCH = 1000
LATENCY_RING_MASK = 4095  # the last 4096 tick latencies feed the heartbeat's p50/p99  # messages read per socket per loop turn, so commands are never starved


@dataclass(slots=True)
class Endpoints:
    feed_pub: str
    feed_rep: str
    pub: str
    cmd: str


@dataclass(slots=True)
class PairState:
    """Everything the engine holds for one pair besides its position (kept by the Portfolio)."""

    symbol: str
    runtime: PairRuntime
    candles: CandleBuilder
    mode: PairMode = PairMode.ACTIVE
    bid: float = 0.0
    ask: float = 0.0
    last: float = 0.0
    last_base_volume: float = -1.0
    last_tick_mono: float = 0.0  # engine receive time (monotonic s); 0 = never
    last_te: int = 0
    te_offset_ms: int = 0  # feed clock minus our clock at the latest tick (replays run in the past)
    expected_seq: int = 0  # next seq we expect; 0 = none seen yet
    ticks: int = 0
    gaps: int = 0  # messages missed according to sequence numbers
    bad: int = 0  # malformed or implausible messages dropped
    ind: Indicators = field(default_factory=Indicators)
    signal: Signal | None = None
    decision: Decision | None = None
    dirty: bool = True
    last_publish: float = 0.0
    closes_sent_at: float = -1e9  # monotonic s
    closes_sent_for: int = -1  # candle open time of the newest closed candle last sent


class EngineService:
    def __init__(
        self,
        cfg: SafeList,
        db_path: Path,
        endpoints: Endpoints,
        *,
        timeframe_s: int | None = None,
        history_limit: int | None = None,
        rules: dict[str, MarketRules] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        context: zmq.Context | None = None,
    ) -> None:
        self.cfg = cfg
        self.endpoints = endpoints
        self.clock = clock
        self.monotonic = monotonic
        self.timeframe_s = timeframe_s or cfg.engine.timeframe_s
        self.history_limit = cfg.engine.history_candles if history_limit is None else history_limit
        self.symbols = cfg.active_symbols()
        pc = cfg.portfolio
        self.rules = rules or {s: default_rules(s) for s in self.symbols}
        self.stale_after_s = pc.stale_after_s

        self.store = Store(db_path)
        now_ms = int(clock() * 1000)
        self.store.init_account(pc.capital_usd, now_ms)
        self.portfolio = Portfolio(pc.capital_usd)
        self._recover()

        self.broker = PaperBroker(pc.taker_fee, pc.slippage_bps, self.rules)
        self.risk = RiskEngine(cfg, self.rules)
        self.corr = CorrelationTracker(
            self.symbols, pc.correlation_window, pc.correlation_threshold, pc.correlation_groups
        )
        modes = self.store.load_modes()
        self.pairs: dict[str, PairState] = {}
        for sym in self.symbols:
            pcfg = cfg.pair(sym)
            self.pairs[sym] = PairState(
                symbol=sym,
                runtime=PairRuntime(sym, pcfg, self.timeframe_s),
                candles=CandleBuilder(self.timeframe_s, history=max(SPARKLINE_CLOSES, 2)),
                mode=modes.get(sym, PairMode.ACTIVE),
            )
        self._by_topic = {sym.encode(): ps for sym, ps in self.pairs.items()}
        self._topic_seq: dict[bytes, int] = {}
        self._lat = [0] * (LATENCY_RING_MASK + 1)
        self._lat_i = 0
        self.ticks_total = 0
        self.bad_total = 0
        self.unknown_symbols = 0
        self.decisions_total = 0
        self.commands_bad = 0
        self._portfolio_dirty = True
        self._last_portfolio_pub = 0.0
        self._last_hb = 0.0
        self._last_equity = 0.0
        self._last_flush = 0.0
        self.feed_state = "unknown"

        self.ctx = context or zmq.Context.instance()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.setsockopt(zmq.LINGER, 0)
        for sym in self.symbols:
            self.sub.setsockopt(zmq.SUBSCRIBE, sym.encode())
        self.sub.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self._bound = False

    # ------------------------------------------------------------------ start-up

    def _recover(self) -> None:
        """Restore cash, PnL and open positions from the store (nothing persisted is lost)."""
        acct = self.store.load_account()
        if acct is not None:
            self.portfolio.cash = acct["cash"]
            self.portfolio.realised = acct["realised"]
            self.portfolio.fees = acct["fees"]
        for sym, pos in self.store.load_positions().items():
            self.portfolio.positions[sym] = pos
        if self.portfolio.positions:
            log.info(
                "Recovered %d open position(s) from the store: %s",
                len(self.portfolio.positions),
                ", ".join(f"{p.symbol} {p.qty:+.12g}@{p.entry:.12g}" for p in self.portfolio.positions.values()),
            )

    def bind(self) -> None:
        self.pub.bind(self.endpoints.pub)
        self.router.bind(self.endpoints.cmd)
        self.sub.connect(self.endpoints.feed_pub)
        self._bound = True
        log.info("Trading Profile: paper, %d pairs, timeframe %ss", len(self.symbols), self.timeframe_s)
        for sym, ps in self.pairs.items():
            pcfg = self.cfg.pair(sym)
            log.info(" %s: %s (%s) mode=%s", sym, pcfg.strategy, _params_text(pcfg.params), ps.mode)

    def warm_up(self, timeout_s: float = 5.0) -> None:
        """Seed candles and indicators from the feed's history so nothing waits for ATR."""
        if self.history_limit <= 0:
            return
        for sym, ps in self.pairs.items():
            try:
                rows = request_history(
                    self.endpoints.feed_rep, sym, self.timeframe_s, self.history_limit, timeout_s=timeout_s
                )
            except (TimeoutError, WireError, OSError, zmq.ZMQError) as exc:
                log.warning("%s - no history from the feed (%s): indicators warm up live", sym, exc)
                continue
            candles = [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows]
            # Indicators see the whole history; the builder only keeps the sparkline's worth.
            for c in ps.candles.seed(candles):
                ps.ind = ps.runtime.on_candle_close(c)
                self.corr.on_close(sym, c.ts, c.close)
            if ps.candles.closed:
                last = ps.candles.closed[-1]
                ps.last = ps.last or last.close
                if ps.bid <= 0.0:
                    # Until the first live tick, exits (a kill right after a restart) use the last close.
                    ps.bid = ps.ask = last.close
                ps.last_te = last.ts + self.timeframe_s * 1000 - 1
            log.info("%s - warmed up on %d candles (RSI %s, ATR %s)", sym, len(candles), _fmt(ps.ind.rsi), _fmt(ps.ind.atr))

    # ------------------------------------------------------------------ loop

    def run(self, should_stop: Callable[[], bool]) -> None:
        if not self._bound:
            self.bind()
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.router, zmq.POLLIN)
        while not should_stop():
            events = dict(poller.poll(timeout=20))
            if self.router in events:
                self._drain_commands()
            if self.sub in events:
                self._drain_ticks()
            self._timers()
        self._publish_heartbeat(self.monotonic(), final=True)

    def _drain_ticks(self) -> None:
        sub = self.sub
        for _ in range(DRAIN_BATCH):
            # Frame by frame without copies: ~1 µs cheaper per message than recv_multipart.
            try:
                topic = sub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if not topic.more:
                self.bad_total += 1
                continue
            payload = sub.recv(copy=False)  # the rest of a multipart message is already here
            if payload.more:
                while sub.recv(copy=False).more:
                    pass
                self.bad_total += 1
                continue
            self.on_message(topic.bytes, payload.bytes)

    def on_message(self, topic: bytes, payload: bytes) -> None:
        """One message from the feed. Malformed input is counted and dropped, never raised."""
        if topic == TOPIC_STATUS:
            try:
                self.feed_state = str(decode_map(payload).get("state", "unknown"))
            except WireError:
                self.bad_total += 1
            return
        ps = self._by_topic.get(topic)  # keyed by the topic bytes: no decode per tick
        if ps is None:
            try:
                topic.decode()
                self.unknown_symbols += 1
            except UnicodeDecodeError:
                pass
            self.bad_total += 1
            return
        try:
            tick = decode_tick(topic, payload)
        except WireError:
            ps.bad += 1
            self.bad_total += 1
            return
        if ps.last_te and tick.ts_exchange > ps.last_te + MAX_TS_JUMP_MS:
            ps.bad += 1
            self.bad_total += 1
            return
        # Sequence numbers: a jump forward is lost messages; a jump back is a restarted feed.
        exp = ps.expected_seq
        if exp and tick.seq != exp:
            if tick.seq > exp:
                ps.gaps += tick.seq - exp
            else:
                log.info("%s - feed sequence restarted (%d after %d)", ps.symbol, tick.seq, exp - 1)
        ps.expected_seq = tick.seq + 1
        self.on_tick(ps, tick.ts_exchange, tick.bid, tick.ask, tick.last, tick.base_volume)
        # Feed publish -> decision done, on one host's clock: what bench/ reports as latency.
        i = self._lat_i
        self._lat[i & LATENCY_RING_MASK] = time.time_ns() - tick.ts_recv
        self._lat_i = i + 1

    def on_tick(self, ps: PairState, ts_ms: int, bid: float, ask: float, last: float, base_volume: float) -> None:
        """The per-tick path: O(1) except on candle close."""
        ps.bid = bid
        ps.ask = ask
        ps.last = last
        ps.ticks += 1
        self.ticks_total += 1
        ps.last_tick_mono = self.monotonic()
        if ts_ms > ps.last_te:
            ps.last_te = ts_ms
            ps.te_offset_ms = ts_ms - int(self.clock() * 1000)
        dv = base_volume - ps.last_base_volume if ps.last_base_volume >= 0.0 else 0.0
        ps.last_base_volume = base_volume
        closed = ps.candles.on_tick(ts_ms, last, dv if dv > 0.0 else 0.0)
        ps.dirty = True
        self._portfolio_dirty = True
        pos = self.portfolio.positions.get(ps.symbol)
        if pos is not None and pos.qty != 0.0:
            self._check_exits(ps, pos, ts_ms)
        for candle in closed:
            self.on_candle_close(ps, candle)

    def _check_exits(self, ps: PairState, pos: Position, ts_ms: int) -> None:
        """Stops and take-profits are checked on every tick against the executable side."""
        if pos.qty > 0.0:
            px = ps.bid
            hit = "stop" if pos.stop_loss and px <= pos.stop_loss else "take_profit" if pos.take_profit and px >= pos.take_profit else ""
        else:
            px = ps.ask
            hit = "stop" if pos.stop_loss and px >= pos.stop_loss else "take_profit" if pos.take_profit and px <= pos.take_profit else ""
        if hit:
            key = f"{ps.symbol}|{hit}|{pos.opened_ts}"
            log.info("%s - %s hit at %g (entry %g, stop %g, target %g)", ps.symbol, hit, px, pos.entry, pos.stop_loss, pos.take_profit)
            self._close_position(ps, pos, key, hit, ts_ms)

    def on_candle_close(self, ps: PairState, candle: Candle) -> None:
        ps.ind = ps.runtime.on_candle_close(candle)
        self.corr.on_close(ps.symbol, candle.ts, candle.close)
        pos = self.portfolio.positions.get(ps.symbol)
        qty = pos.qty if pos is not None else 0.0
        signal = ps.runtime.strategy.analyze(candle, ps.ind, qty)
        ps.signal = signal
        if signal.type is SignalType.HOLD:
            return
        if signal.type is SignalType.SELL and qty <= 0.0 and ps.runtime.cfg.market == "spot":
            # A bearish view on a flat spot pair is no trade, not an order to refuse: the risk
            # pipeline still rejects spot shorts, but the decision log stays readable.
            return
        # Entries are priced at the executable side, not the candle close.
        if ps.bid > 0.0:
            signal.entry = ps.ask if signal.type is SignalType.BUY else ps.bid
        key = f"{ps.symbol}|{candle.ts}|{signal.type}"
        decision = self.risk.evaluate(signal, self._risk_context(), key)
        self._decide_and_execute(ps, decision, reason="signal")

    def _risk_context(self) -> RiskContext:
        now = self.monotonic()
        marks = self._marks()
        return RiskContext(
            positions=self.portfolio.positions,
            marks=marks,
            atr={s: p.ind.atr for s, p in self.pairs.items()},
            modes={s: p.mode for s, p in self.pairs.items()},
            stale={s: self._is_stale(p, now) for s, p in self.pairs.items()},
            correlated_with=self.corr.correlated_with,
            equity=self.portfolio.equity(marks),
            cash=self.portfolio.cash,
        )

    def _decide_and_execute(self, ps: PairState, decision: Decision, reason: str) -> Fill | None:
        """Record the decision, then fill it if approved: write before publish, at most once."""
        decision.ts = int(self.clock() * 1000)  # when it was decided; the key keeps the candle
        if not self.store.record_decision(decision):
            # debug: a stop that could not be filled meets its own key again on every tick
            log.debug("%s - decision %s already recorded: not executed again", ps.symbol, decision.key)
            return None
        self.decisions_total += 1
        ps.decision = decision
        ps.dirty = True
        fill = None
        if decision.approved and decision.qty > 0.0:
            side = Side.BUY if decision.action in ("open_long", "close_short") else Side.SELL
            fill = self._execute(ps, decision.key, side, decision.qty, reason, decision.signal)
        self._publish(TOPIC_DECISION, _decision_map(decision))
        if fill is not None:
            self._publish(TOPIC_FILL, _fill_map(fill))
        return fill

    def _execute(self, ps: PairState, key: str, side: Side, qty: float, reason: str, signal: Signal | None) -> Fill | None:
        order_id = client_order_id(key)
        if self.store.has_order(order_id):
            return None
        now_ms = int(self.clock() * 1000)
        try:
            fill = self.broker.execute(order_id, ps.symbol, side, qty, ps.bid, ps.ask, now_ms, reason)
        except BrokerError as exc:
            # Refused at the order boundary (e.g. a remainder below the lot step): the decision
            # stays recorded, nothing is filled, and the loop goes on.
            log.warning("%s - order %s not filled: %s", ps.symbol, order_id, exc)
            return None
        pos = self.portfolio.apply_fill(fill)
        if signal is not None and pos.qty != 0.0 and reason == "signal" and (
            (pos.qty > 0.0) == (side is Side.BUY)
        ):
            pos.stop_loss = signal.stop_loss
            pos.take_profit = signal.take_profit
        account = {"cash": self.portfolio.cash, "realised": self.portfolio.realised, "fees": self.portfolio.fees}
        if not self.store.record_execution(fill, pos, account, key):
            log.error("%s - order %s was already stored; in-memory state reloaded", ps.symbol, order_id)
            self._recover()
            return None
        log.info(
            "%s - Filled %s %g @ %.8g (fee %.4f, %s); position %+g",
            ps.symbol, side, fill.qty, fill.price, fill.fee, reason, pos.qty,
        )
        ps.dirty = True
        self._portfolio_dirty = True
        return fill

    def _close_position(self, ps: PairState, pos: Position, key: str, reason: str, ts_ms: int) -> Fill | None:
        """Exit a whole position now (stop, take-profit, flatten, kill). Exits are always allowed."""
        if ps.bid <= 0.0 or ps.ask <= 0.0:
            return None
        signal = Signal(
            ps.symbol,
            SignalType.SELL if pos.qty > 0 else SignalType.BUY,
            1.0,
            ps.bid if pos.qty > 0 else ps.ask,
            reasoning=reason,
            ts=ts_ms,
        )
        decision = self.risk.exit_decision(signal, pos, key, reason)
        return self._decide_and_execute(ps, decision, reason)

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
                    self.router.send_multipart([ident, make_ack(cmd_id, "?", False, str(exc), modes=self._modes())])
                continue
            deadline = m.get("deadline_ns")
            late_ms = (time.time_ns() - deadline) / 1e6 if deadline is not None else 0.0
            if late_ms > 0.0 and m["cmd"] != "kill":
                ok, message = False, f"expired: arrived {late_ms:.0f} ms after its deadline, not applied"
                log.warning("command %s %s expired (%.0f ms late)", m["cmd"], m.get("symbol") or "", late_ms)
            else:
                ok, message = self.handle_command(m["cmd"], m.get("symbol"))
            self.router.send_multipart([ident, make_ack(m["id"], m["cmd"], ok, message, modes=self._modes())])

    def handle_command(self, cmd: str, symbol: str | None) -> tuple[bool, str]:
        """Apply one operator command; the mode change is stored before it is acknowledged."""
        now_ms = int(self.clock() * 1000)
        if cmd == "ping":
            return True, "pong"
        if cmd in ("pause", "resume", "reduce", "flatten"):
            ps = self.pairs.get(symbol or "")
            if ps is None:
                return False, f"unknown symbol {symbol!r}"
            if cmd == "flatten":
                pos = self.portfolio.positions.get(ps.symbol)
                if pos is None or pos.qty == 0.0:
                    return True, f"{ps.symbol} already flat"
                fill = self._close_position(ps, pos, f"{ps.symbol}|flatten|{now_ms}", "flatten", now_ms)
                if fill is None:
                    return False, f"{ps.symbol} could not be flattened (no price yet)"
                return True, f"{ps.symbol} flattened: {fill.side} {fill.qty:g} @ {fill.price:.8g}"
            if ps.mode is PairMode.HALTED:
                return False, f"{ps.symbol} is HALTED: re-arm first"
            target = {"pause": PairMode.PAUSED, "resume": PairMode.ACTIVE, "reduce": PairMode.REDUCING}[cmd]
            self._set_modes({ps.symbol: target}, f"operator {cmd}", now_ms)
            return True, f"{ps.symbol} {target}"
        if cmd == "flatten_all":
            n, failed = self._flatten_all("flatten_all", now_ms)
            if failed:
                return False, f"flattened {n}; could not flatten {', '.join(failed)} (no price yet, or refused at the lot step: see engine.log)"
            return True, f"flattened {n} position(s)"
        if cmd == "kill":
            # Halt first (persisted), so nothing can open while we flatten.
            self._set_modes({s: PairMode.HALTED for s in self.pairs}, "kill switch", now_ms)
            self.store.record_event(now_ms, "kill", "kill switch: all pairs HALTED")
            n, failed = self._flatten_all("kill", now_ms)
            log.warning("KILL SWITCH: %d position(s) flattened, all pairs HALTED", n)
            if failed:
                return False, f"HALTED; could not flatten {', '.join(failed)} (no price yet, or refused at the lot step: see engine.log)"
            return True, f"all pairs HALTED, {n} position(s) flattened"
        if cmd == "rearm":
            halted = {s: PairMode.ACTIVE for s, p in self.pairs.items() if p.mode is PairMode.HALTED}
            self._set_modes(halted, "operator rearm", now_ms)
            self.store.record_event(now_ms, "rearm", f"re-armed {len(halted)} pair(s)")
            return True, f"re-armed {len(halted)} pair(s)"
        return False, f"unhandled command {cmd!r}"

    def _flatten_all(self, reason: str, now_ms: int) -> tuple[int, list[str]]:
        n = 0
        failed = []
        for sym, pos in list(self.portfolio.positions.items()):
            if pos.qty == 0.0:
                continue
            if self._close_position(self.pairs[sym], pos, f"{sym}|{reason}|{now_ms}", reason, now_ms) is None:
                failed.append(sym)
            else:
                n += 1
        return n, failed

    def _set_modes(self, modes: dict[str, PairMode], reason: str, now_ms: int) -> None:
        if not modes:
            return
        self.store.set_modes(modes, reason, now_ms)
        for sym, mode in modes.items():
            self.pairs[sym].mode = mode
            self.pairs[sym].dirty = True
            log.info("%s - mode %s (%s)", sym, mode, reason)
        self._portfolio_dirty = True

    def _modes(self) -> dict[str, str]:
        return {s: str(p.mode) for s, p in self.pairs.items()}

    # ------------------------------------------------------------------ timers and publishing

    def _timers(self) -> None:
        now = self.monotonic()
        if now - self._last_flush >= 0.5:
            self._last_flush = now
            # Close candles whose interval ended with no tick, on the feed's clock (a replay runs
            # in the past), allowing 2 s for feed latency.
            wall_ms = int(self.clock() * 1000) - 2000
            for ps in self.pairs.values():
                if ps.candles.forming is not None:
                    for candle in ps.candles.flush_until(wall_ms + ps.te_offset_ms):
                        self.on_candle_close(ps, candle)
        for ps in self.pairs.values():
            since = now - ps.last_publish
            # Changed pairs publish at up to 20 Hz; quiet ones once a second so tick age and STALE show.
            if (ps.dirty and since >= PAIR_PUBLISH_INTERVAL_S) or since >= 1.0:
                self._publish(TOPIC_PAIR, self.pair_map(ps, now))
                ps.last_publish = now
                ps.dirty = False
        if self._portfolio_dirty and now - self._last_portfolio_pub >= PORTFOLIO_PUBLISH_INTERVAL_S:
            self._publish(TOPIC_PORTFOLIO, self.portfolio_map())
            self._last_portfolio_pub = now
            self._portfolio_dirty = False
        if now - self._last_hb >= HEARTBEAT_INTERVAL_S:
            self._publish_heartbeat(now)
        if now - self._last_equity >= EQUITY_SNAPSHOT_INTERVAL_S:
            self._last_equity = now
            marks = self._marks()
            self.store.record_equity(
                int(self.clock() * 1000),
                self.portfolio.equity(marks),
                self.portfolio.cash,
                self.portfolio.exposure(marks),
                self.portfolio.realised,
                self.portfolio.unrealised(marks),
                self.portfolio.fees,
            )

    def _is_stale(self, ps: PairState, now: float) -> bool:
        return ps.last_tick_mono == 0.0 or now - ps.last_tick_mono > self.stale_after_s

    def _marks(self) -> dict[str, float]:
        return {s: p.last for s, p in self.pairs.items() if p.last > 0.0}

    def _publish(self, topic: bytes, m: dict[str, Any]) -> None:
        seq = self._topic_seq.get(topic, 0) + 1
        self._topic_seq[topic] = seq
        m["seq"] = seq
        # A slow subscriber must never stall trading; its sequence gap shows the loss.
        with contextlib.suppress(zmq.Again):
            self.pub.send_multipart([topic, pack(m)], zmq.NOBLOCK)

    def _publish_heartbeat(self, now: float, final: bool = False) -> None:
        self._last_hb = now
        counts: dict[str, int] = {}
        for p in self.pairs.values():
            counts[str(p.mode)] = counts.get(str(p.mode), 0) + 1
        self._publish(
            TOPIC_HEARTBEAT,
            {
                "kind": "engine",
                "pid": os.getpid(),
                "ts": time.time_ns(),
                "ticks": self.ticks_total,
                "bad": self.bad_total,
                "decisions": self.decisions_total,
                "mode_counts": counts,
                "latency_us": self.latency_percentiles(),
                "final": final,
            },
        )

    def latency_percentiles(self) -> dict[str, float] | None:
        """p50/p99/max of feed-publish -> tick-handled latency over the last 4096 ticks, in µs."""
        n = min(self._lat_i, LATENCY_RING_MASK + 1)
        if n == 0:
            return None
        xs = sorted(self._lat[:n])
        return {
            "n": n,
            "p50": xs[n // 2] / 1000.0,
            "p99": xs[min(n - 1, (n * 99) // 100)] / 1000.0,
            "max": xs[-1] / 1000.0,
        }

    def pair_map(self, ps: PairState, now: float) -> dict[str, Any]:
        pcfg = self.cfg.pair(ps.symbol)
        pos = self.portfolio.positions.get(ps.symbol)
        last_closed = ps.candles.last_closed
        price = ps.last or (last_closed.close if last_closed is not None else 0.0)
        newest = last_closed.ts if last_closed is not None else 0
        closes = None
        if newest != ps.closes_sent_for or now - ps.closes_sent_at >= CLOSES_INTERVAL_S:
            closes = ps.candles.closes(SPARKLINE_CLOSES, include_forming=True)
            ps.closes_sent_for = newest
            ps.closes_sent_at = now
        ind = ps.runtime.preview(price) if price > 0.0 else {}
        ref = ps.runtime.reference_close
        change = (price / ref - 1.0) * 100.0 if ref and price else None
        m: dict[str, Any] = {
            "symbol": ps.symbol,
            "tier": str(pcfg.tier),
            "strategy": pcfg.strategy,
            "mode": str(ps.mode),
            "stale": self._is_stale(ps, now),
            "last": ps.last or None,
            "bid": ps.bid or None,
            "ask": ps.ask or None,
            "change_pct": change,
            "tick_age_ms": int((now - ps.last_tick_mono) * 1000) if ps.last_tick_mono else None,
            "ticks": ps.ticks,
            "gaps": ps.gaps,
            "bad": ps.bad,
            "ind": ind,
            "signal": _signal_map(ps.signal) if ps.signal is not None else None,
            "decision": (
                {
                    "approved": ps.decision.approved,
                    "action": ps.decision.action,
                    "reasons": ps.decision.reasons,
                    "ts": ps.decision.ts,
                }
                if ps.decision is not None
                else None
            ),
            "position": _position_map(pos, price) if pos is not None and pos.qty != 0.0 else None,
            "ts": time.time_ns(),
        }
        if closes is not None:
            m["closes"] = closes
        return m

    def portfolio_map(self) -> dict[str, Any]:
        marks = self._marks()
        now_ms = int(self.clock() * 1000)
        snap = self.portfolio.snapshot(marks)
        self.portfolio.mark_day(now_ms, snap["equity"])
        pc = self.cfg.portfolio
        syms, matrix = self.corr.matrix()
        open_syms = [s for s, p in self.portfolio.positions.items() if p.qty != 0.0]
        correlated_used = max((len(({s} | self.corr.correlated_with(s)) & set(open_syms)) for s in open_syms), default=0)
        snap.update(
            {
                "capital": pc.capital_usd,
                "daily_pnl": self.portfolio.daily_pnl(snap["equity"]),
                "exposure_max": pc.max_exposure_usd,
                "correlated_used": correlated_used,
                "correlated_max": pc.max_correlated_positions,
                "halted": all(p.mode is PairMode.HALTED for p in self.pairs.values()),
                "positions": len(open_syms),
                "corr": {"symbols": syms, "matrix": matrix},
                "ts": time.time_ns(),
            }
        )
        return snap

    def close(self) -> None:
        for s in (self.sub, self.pub, self.router):
            s.close(linger=0)
        self.store.close()


def _peek_id(payload: bytes) -> str | None:
    try:
        import msgpack

        m = msgpack.unpackb(payload, raw=False)
        return m.get("id") if isinstance(m, dict) and isinstance(m.get("id"), str) else None
    except Exception:
        return None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _params_text(params: Any) -> str:
    d = params.model_dump(exclude_defaults=True, exclude_none=True)
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "defaults"


def _signal_map(s: Signal) -> dict[str, Any]:
    return {
        "type": str(s.type),
        "confidence": s.confidence,
        "entry": s.entry,
        "stop_loss": s.stop_loss,
        "take_profit": s.take_profit,
        "reasoning": s.reasoning,
        "ts": s.ts,
    }


def _decision_map(d: Decision) -> dict[str, Any]:
    return {
        "key": d.key,
        "symbol": d.symbol,
        "ts": d.ts,
        "action": d.action,
        "approved": d.approved,
        "qty": d.qty,
        "price": d.price,
        "signal": _signal_map(d.signal),
        "checks": [[c.name, c.ok, c.reason] for c in d.checks],
    }


def _fill_map(f: Fill) -> dict[str, Any]:
    return {
        "fill_id": f.fill_id,
        "order_id": f.order_id,
        "symbol": f.symbol,
        "side": str(f.side),
        "qty": f.qty,
        "price": f.price,
        "fee": f.fee,
        "ts": f.ts,
        "reason": f.reason,
    }


def _position_map(p: Position, mark: float) -> dict[str, Any]:
    return {
        "qty": p.qty,
        "side": "long" if p.qty > 0 else "short",
        "entry": p.entry,
        "stop_loss": p.stop_loss,
        "take_profit": p.take_profit,
        "unrealised": p.unrealised(mark),
        "realised": p.realised,
        "notional": p.notional(mark),
    }
