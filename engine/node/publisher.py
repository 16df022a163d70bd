"""What the engine node publishes, built from the trading core through the typed schema.

Owns ``StatePublisher``: the core's ``EventSink`` (decisions, fills and notices go out as they
happen, after the journal has them; an order's state changes within one loop turn are
coalesced into its latest state, sent at the end of the turn) and the throttled state messages:
the portfolio at most 4× a second, the heartbeat, and each pair's state on two streams (issue 16,
"publish what is watched"):

- ``pair``, the roll-call: every pair once every ``pair_refresh_s(n)`` (so its tick age moves: once a
  second up to 500 pairs, then at most 500 states a second, engine/wire/liveness.py), and at
  once (within ``PAIR_SCAN_S``) when its mode, position, pending exit or decision changed; no
  sparkline closes. What the daemon's model and a console's off-screen pairs live on. Its cost
  grows with what it sends, not with the number of pairs: the refreshes come off a heap ordered
  by when each pair is due, and the "changed" test looks only at the pairs an event named since
  the last scan (a decision, order, fill or mode change) and those with a pending exit. A change
  no event names still goes out with the pair's next refresh.
- ``view:SYM``: a watched pair, each change at most every ``PAIR_PUBLISH_INTERVAL_S`` (10 Hz), the
  closes riding along. Watched = some subscriber holds the topic: the socket is an XPUB and
  ``on_subscription`` reads its (un)subscriptions, so a pair nobody shows costs one roll-call a
  second, not ten full states.

It maps core state to wire fields; every value it sends is computed by the core.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import zmq

from engine.core.events import (
    CoreEvent,
    DecisionMade,
    FillBooked,
    ModesChanged,
    Notice,
    OrderUpdated,
    Reconciled,
)
from engine.core.models import Decision, Fill, Position, Signal
from engine.core.orders import Order
from engine.core.reconcile_view import ReconcileReport
from engine.node.corr_view import CorrelationView
from engine.node.tick_in import TopicStats  # compiled: the tick path reads it every tick
from engine.wire.commands import (
    TOPIC_DECISION,
    TOPIC_EVENT,
    TOPIC_FILL,
    TOPIC_HEARTBEAT,
    TOPIC_ORDER,
    TOPIC_PAIR,
    TOPIC_PORTFOLIO,
    TOPIC_RECONCILE,
    TOPIC_VIEW,
    TOPICS,
    pack_map,
    view_topic,
)
from engine.wire.liveness import pair_refresh_s
from engine.wire.schema import (
    MAX_STR,
    CorrelationMsg,
    DecisionBriefMsg,
    DecisionMsg,
    FillMsg,
    HeartbeatMsg,
    IndicatorsMsg,
    LatencyMsg,
    Message,
    NoticeMsg,
    OrderMsg,
    PairCheckMsg,
    PairStateMsg,
    PortfolioMsg,
    PositionMsg,
    ReconcileMsg,
    SignalMsg,
    VenueMsg,
)

if TYPE_CHECKING:
    from engine.core.execution import PendingExit
    from engine.core.trader import PairState, TradingCore

_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
PAIR_PUBLISH_INTERVAL_S = 0.1  # a watched pair: at most 10 state messages a second (consoles paint at 12 Hz)
PAIR_SCAN_S = 0.05  # the roll-call looks at what is due or changed this often
CLOSES_INTERVAL_S = 0.5  # the sparkline's closes ride along at most twice a second, or on a candle close
PORTFOLIO_PUBLISH_INTERVAL_S = 0.25
SPARKLINE_CLOSES = 60


# ---- core values -> wire messages ------------------------------------------------------------


def signal_msg(s: Signal) -> SignalMsg:
    return SignalMsg(str(s.type), s.confidence, s.entry, s.stop_loss, s.take_profit, s.reasoning, s.ts)


def decision_msg(d: Decision) -> DecisionMsg:
    return DecisionMsg(
        key=d.key, symbol=d.symbol, ts=d.ts, action=d.action, approved=d.approved, signal=signal_msg(d.signal),
        qty=d.qty, price=d.price, checks=[(c.name, c.ok, c.reason) for c in d.checks],
    )


def fill_msg(f: Fill) -> FillMsg:
    return FillMsg(f.fill_id, f.order_id, f.symbol, str(f.side), f.qty, f.price, f.fee, f.ts, f.reason)


def order_msg(o: Order) -> OrderMsg:
    return OrderMsg(
        o.client_order_id, o.symbol, str(o.side), o.qty, str(o.status), o.reason, o.decision_key,
        o.filled_qty, o.avg_price, o.message, o.updated_ts or o.created_ts,
    )


def reconcile_msg(r: ReconcileReport) -> ReconcileMsg:
    """The wire's form of a reconciliation report (strings cut to the schema's limit)."""
    pairs = []
    for p in r.pairs:
        d = p.to_dict()
        for k, v in d.items():
            if isinstance(v, str):
                d[k] = v[: MAX_STR - 1]
            elif isinstance(v, list):
                d[k] = [x[: MAX_STR - 1] for x in v[:100]]
        pairs.append(PairCheckMsg(**d))
    return ReconcileMsg(r.ts, r.trigger, r.ok, r.error[: MAX_STR - 1], pairs)


def _rollcall_sig(ps: PairState, pos: Position | None, ex: PendingExit | None) -> tuple[Any, ...]:
    """What the operator acts on, as the roll-call compares it: a pair whose signature moved goes
    out at once (mode, position, pending exit, decision)."""
    return (ps.mode, pos.qty if pos is not None else 0.0,
            (ex.blocked or ex.last_error or ex.reason) if ex is not None else None, id(ps.decision))  # fmt: skip


def position_msg(p: Position, mark: float) -> PositionMsg:
    return PositionMsg(
        p.qty, "long" if p.qty > 0 else "short", p.entry, p.stop_loss, p.take_profit,
        p.unrealised(mark), p.realised, p.notional(mark), p.opened_ts,
    )


class StatePublisher:
    """The node's PUB socket, as the core's event sink and the state publisher."""

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = sock
        self._seq: dict[bytes, int] = {}
        self._last_portfolio = -1e9
        self._orders: dict[str, Order] = {}  # latest state per order, sent at the end of the turn
        self.sent = 0
        self.corr_view = CorrelationView()  # the correlations a console shows, built when they move
        self._subs: set[bytes] = set()  # topics (prefixes) some subscriber holds, from the XPUB
        self._subs_changed = False
        self.watched: set[str] = set()  # pairs whose ``view:`` topic has a subscriber
        self._views: dict[str, bytes] = {}  # symbol -> its view topic
        self._last_scan = -1e9
        # the roll-call (see _roll_call)
        self._rc_due: list[tuple[float, str]] = []  # heap: (when the pair is next due, symbol)
        self._rc_sync_at = -1e9  # when the heap's pairs were last compared with the core's
        self._rc_touched: set[str] = set()  # pairs an event named since the last scan
        self._rc_all = False  # look at every pair's signature at the next scan (a reconciliation)
        self._rc_exits: set[str] = set()  # pairs with a pending exit at the last scan
        self._rc_phases: dict[str, float] = {}  # the heap's pairs -> their place in the period (0 … <1)
        self._rc_period = pair_refresh_s(0)  # each pair's refresh period, for the heap's pairs

    def send(self, topic: bytes, msg: Message) -> None:
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        m = msg.to_wire()
        m["seq"] = seq
        # A slow subscriber must never stall trading; its sequence gap shows the loss. Two sends
        # with int flags: ``send_multipart`` ORs pyzmq's Flag enums per frame (1.1 µs a message).
        sock = self.sock
        with contextlib.suppress(zmq.Again):
            sock.send(topic, _MORE_NOBLOCK)
            sock.send(pack_map(m), _NOBLOCK)
            self.sent += 1

    def sequence_numbers(self) -> dict[str, int]:
        """The last sequence number sent on every topic (0: none yet), keyed by topic name; the
        ``view:`` topics that carried anything, each by its own name."""
        seq = {t.decode(): self._seq.get(t, 0) for t in TOPICS}
        seq.update((t.decode(), n) for t, n in self._seq.items() if t.startswith(TOPIC_VIEW))
        return seq

    # ---- who watches what -------------------------------------------------------------------

    def read_subscriptions(self, batch: int = 1000) -> None:
        """Read what the XPUB has (the node polls it): every (un)subscription since the last."""
        for _ in range(batch):
            try:
                frame = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.on_subscription(frame)

    def on_subscription(self, frame: bytes) -> None:
        """One frame read from the XPUB: ``\x01topic`` subscribes, ``\x00topic`` unsubscribes
        (the socket passes the first subscriber of a topic and the last one leaving). Anything
        else is ignored."""
        if frame[:1] == b"\x01":
            self._subs.add(frame[1:])
        elif frame[:1] == b"\x00":
            self._subs.discard(frame[1:])
        else:
            return
        self._subs_changed = True

    def _rewatch(self, core: TradingCore, stats: dict[str, TopicStats]) -> None:
        """The watched pairs from the subscriptions: a ``view:SYM`` topic held, or a shorter prefix
        that covers it (``b""`` watches everything). A pair newly watched gets its state, closes
        included, at once."""
        self._subs_changed = False
        watched: set[str] = set()
        for p in self._subs:
            if TOPIC_VIEW.startswith(p):  # "", "v", … "view:": every view topic
                watched = set(core.pairs)
                break
            if not p.startswith(TOPIC_VIEW):
                continue
            sym = p[len(TOPIC_VIEW):].decode("utf-8", "replace")
            if sym in core.pairs:
                watched.add(sym)
            else:  # a partial symbol: every pair it is a prefix of
                watched.update(s for s, t in self._views.items() if t.startswith(p))
        for sym in watched - self.watched:
            st = stats[sym]
            st.last_view = st.closes_sent_at = -1e9
            st.closes_sent_for = -1
            core.pairs[sym].dirty = True
        self.watched = watched

    # ---- EventSink --------------------------------------------------------------------------

    def emit(self, event: CoreEvent) -> None:
        if isinstance(event, DecisionMade):
            self.send(TOPIC_DECISION, decision_msg(event.decision))
            self._rc_touched.add(event.decision.symbol)
        elif isinstance(event, FillBooked):
            self.send(TOPIC_FILL, fill_msg(event.fill))
            self._rc_touched.add(event.fill.symbol)
        elif isinstance(event, OrderUpdated):
            # coalesced per loop turn: a paper order goes new → accepted → filled in one call
            self._orders[event.order.client_order_id] = event.order
            self._rc_touched.add(event.order.symbol)
        elif isinstance(event, Notice):
            self.send(TOPIC_EVENT, NoticeMsg(event.ts, event.kind, event.level, event.message))
        elif isinstance(event, ModesChanged):
            self._rc_touched.update(event.modes)  # the pairs are dirty: their next state carries the mode
        elif isinstance(event, Reconciled):
            self.send(TOPIC_RECONCILE, reconcile_msg(event.report))
            self._rc_all = True  # positions may have been adopted from the venue

    # ---- throttled state --------------------------------------------------------------------

    def flush_orders(self) -> None:
        """The latest state of every order that changed since the last flush."""
        if self._orders:
            orders, self._orders = self._orders, {}
            for order in orders.values():
                self.send(TOPIC_ORDER, order_msg(order))

    def publish_due(self, core: TradingCore, stats: dict[str, TopicStats], now: float) -> None:
        self.flush_orders()
        if not self._views:
            self._views = {sym: view_topic(sym) for sym in core.pairs}
        if self._subs_changed:
            self._rewatch(core, stats)
        pairs = core.pairs
        for sym in self.watched:  # the pairs on someone's screen: every change, 10 Hz at most
            ps = pairs[sym]
            st = stats[sym]
            if ps.dirty and now - st.last_view >= PAIR_PUBLISH_INTERVAL_S:
                self.send(self._views[sym], self.pair_state(core, ps, st, now))
                st.last_view = now
                ps.dirty = False
        if now - self._last_scan >= PAIR_SCAN_S:
            self._last_scan = now
            self._roll_call(core, stats, now)
        if now - self._last_portfolio >= PORTFOLIO_PUBLISH_INTERVAL_S:
            corr = self.corr_view.due(core, now)  # only when it moved, at most once a second
            if core.portfolio_dirty or corr is not None:
                self.send(TOPIC_PORTFOLIO, self.portfolio(core, corr))
                self._last_portfolio = now
                core.portfolio_dirty = False

    def _roll_call(self, core: TradingCore, stats: dict[str, TopicStats], now: float) -> None:
        """Every pair on ``pair`` once every ``pair_refresh_s(n)`` (a second up to 500 pairs), and
        at once when what the operator acts on changed (mode, position, pending exit, decision). A
        pair's first message sets its phase, spread over the period, so a thousand pairs are not
        built in one loop turn.

        O(messages sent), not O(pairs): the due refreshes are popped off a heap, and only the
        pairs an event named since the last scan, or with a pending exit now or then, have their
        signature compared (at 1,000 pairs the full scan cost 0.4 ms twenty times a second)."""
        pairs = core.pairs
        if len(pairs) != len(self._rc_phases) or now - self._rc_sync_at >= self._rc_period:
            self._rc_sync(pairs, stats, now)  # a reload added or removed pairs?
        period = self._rc_period
        positions = core.portfolio.positions
        exits = core.execution.exits
        if self._rc_all:
            look = set(pairs)
            self._rc_all = False
        else:
            look = self._rc_touched | self._rc_exits
            look.update(exits)
        self._rc_touched = set()
        self._rc_exits = set(exits)
        for sym in look:
            ps = pairs.get(sym)
            if ps is None:
                continue
            st = stats[sym]
            if st.last_publish < -1e8:
                continue  # not out yet: the heap has it due now
            sig = _rollcall_sig(ps, positions.get(sym), exits.get(sym))
            if sig != st.rollcall_sig:
                self._rc_send(core, ps, st, now, sig)
                st.last_publish = now  # its heap entry, when popped, finds it not due and moves on
        heap = self._rc_due
        while heap and heap[0][0] <= now:
            sym = heap[0][1]
            ps = pairs.get(sym)
            if ps is None:  # removed by a reload since the heap was built
                heapq.heappop(heap)
                continue
            st = stats[sym]
            if now - st.last_publish >= period:
                first = st.last_publish < -1e8
                self._rc_send(core, ps, st, now, _rollcall_sig(ps, positions.get(sym), exits.get(sym)))
                st.last_publish = now + period * self._rc_phases[sym] if first else now
            heapq.heapreplace(heap, (st.last_publish + period, sym))

    def _rc_send(self, core: TradingCore, ps: PairState, st: TopicStats, now: float, sig: tuple[Any, ...]) -> None:
        self.send(TOPIC_PAIR, self.pair_state(core, ps, st, now, closes=False))
        st.rollcall_sig = sig

    def _rc_sync(self, pairs: dict[str, PairState], stats: dict[str, TopicStats], now: float) -> None:
        """The heap rebuilt when the core's pairs are not the ones it was built for (a reload):
        a pair never sent is due now, the others when their second is up. A pair's first message
        sets its phase, its place in the safe list."""
        self._rc_sync_at = now
        if self._rc_phases.keys() == pairs.keys():
            return
        n = len(pairs)
        self._rc_phases = {sym: i / n for i, sym in enumerate(pairs)}
        self._rc_period = period = pair_refresh_s(n)
        heap = []
        for sym in pairs:
            last = stats[sym].last_publish
            heap.append((now if last < -1e8 else last + period, sym))
        heapq.heapify(heap)
        self._rc_due = heap

    def pair_state(
        self, core: TradingCore, ps: PairState, st: TopicStats, now: float, *, closes: bool = True
    ) -> PairStateMsg:
        """One pair's state. ``closes``: the sparkline's closes when a candle closed or every
        ``CLOSES_INTERVAL_S`` (tracked in ``st``); False never carries them (the roll-call)."""
        pcfg = ps.runtime.cfg
        sent_closes = None
        if closes:
            last_closed = ps.candles.last_closed
            newest = last_closed.ts if last_closed is not None else 0
            if newest != st.closes_sent_for or now - st.closes_sent_at >= CLOSES_INTERVAL_S:
                sent_closes = ps.candles.closes(SPARKLINE_CLOSES, include_forming=True)
                st.closes_sent_for, st.closes_sent_at = newest, now
        price = core.price(ps)
        ind = IndicatorsMsg(**ps.runtime.preview(price)) if price > 0.0 else IndicatorsMsg()
        pos = core.portfolio.positions.get(ps.symbol)
        d = ps.decision
        ex = core.execution.exits.get(ps.symbol)
        mono = core.clock.monotonic()
        rt = ps.runtime
        warming = rt.candles < rt.warmup_need  # the pane says "warming up: n/need candles"
        return PairStateMsg(
            symbol=ps.symbol,
            mode=str(ps.mode),
            stale=core.is_stale(ps, mono),
            tier=str(pcfg.tier),
            strategy=pcfg.strategy,
            last=ps.last or None,
            bid=ps.bid or None,
            ask=ps.ask or None,
            change_pct=core.change_pct(ps),
            tick_age_ms=int((mono - ps.last_tick_at) * 1000) if ps.last_tick_at else None,
            ticks=ps.ticks,
            gaps=st.gaps,
            bad=st.bad + ps.implausible + ps.band.quarantined,
            ind=ind,
            signal=signal_msg(ps.signal) if ps.signal is not None else None,
            decision=DecisionBriefMsg(d.approved, d.action, d.reasons, d.ts) if d is not None else None,
            position=position_msg(pos, price) if pos is not None and pos.qty != 0.0 else None,
            exit_pending=(ex.blocked or ex.last_error or ex.reason) if ex is not None else None,
            closes=sent_closes,
            ts=time.time_ns(),
            warm_candles=rt.candles if warming else None,
            warm_need=rt.warmup_need if warming else None,
        )

    def portfolio(self, core: TradingCore, corr: CorrelationMsg | str | None = "current") -> PortfolioMsg:
        """The core's summary field for field (a name the wire lacks fails here at once).
        ``corr``: the correlations to carry, None to leave them out; by default the latest view
        (engine/node/corr_view.py), as a snapshot carries it."""
        s = core.portfolio_summary()
        c = self.corr_view.current(core) if isinstance(corr, str) else corr
        return PortfolioMsg(**asdict(s), corr=c, ts=time.time_ns())

    def heartbeat(
        self, core: TradingCore | None, phase: str, ticks: int, bad: int, counters: dict[str, int],
        latency: dict[str, float] | None, final: bool = False, venue: VenueMsg | None = None,
    ) -> None:
        modes: dict[str, int] = {}
        if core is not None:
            for p in core.pairs.values():
                modes[str(p.mode)] = modes.get(str(p.mode), 0) + 1
        self.send(TOPIC_HEARTBEAT, HeartbeatMsg(
            kind="engine", pid=os.getpid(), ts=time.time_ns(), phase=phase, ticks=ticks, bad=bad,
            decisions=core.decisions_total if core is not None else 0, mode_counts=modes, counters=counters,
            latency_us=LatencyMsg(**latency) if latency else None, final=final,  # type: ignore[arg-type]
            venue=venue,
        ))
