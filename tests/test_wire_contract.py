"""The wire contract: the real trading core, through the real publisher, codec and bridge, into
the console's model, and every field the widgets show equals the core's own value.

The core (``engine.core.trader.TradingCore``) runs in process on a fake clock with the real
paper execution client and a real journal; its sink is the engine node's real
``StatePublisher`` on a real ZeroMQ PUB socket (ipc, in a private directory); a SUB socket
hands every frame to the console's real ``Bridge.dispatch``, which decodes it with the typed
schema into a ``ConsoleModel``. Then the model is compared with the core field by field, the
widgets are rendered from it, the kill switch and the re-arm go round the same loop, and the
schema itself is checked: every message survives its codec, a missing field is named, and
hostile maps on every engine topic are counted and dropped without touching the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
import zmq.asyncio

from console.app import make_app
from console.attach import decode_ack, to_ack
from console.bridge import Bridge
from console.model import ConsoleModel
from console.rundir import Endpoints
from console.widgets.palette import fmt_num, fmt_price, fmt_qty, fmt_usd
from engine.core.clock import Clock
from engine.core.config import SafeList, load_safe_list
from engine.core.events import CoreEvent, DecisionMade, FillBooked, Notice, OrderUpdated
from engine.core.markets import default_rules
from engine.core.models import PairMode
from engine.core.trader import TradingCore
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store
from engine.node import publisher as node_publisher
from engine.node.publisher import SPARKLINE_CLOSES, StatePublisher
from engine.node.tick_in import TopicStats
from engine.wire import commands as engine_wire
from engine.wire.codec import MAX_LIST, MAX_STR
from engine.wire.schema import (
    AckMsg,
    DecisionMsg,
    FillMsg,
    HeartbeatMsg,
    Message,
    NoticeMsg,
    OrderMsg,
    PairStateMsg,
    PortfolioMsg,
    SchemaError,
)
from tests.console_fakes import FakeBackend, FrozenClock, screen_text

ROOT = Path(__file__).resolve().parent.parent
START_MS = 1_700_000_000_000
STEP_MS = 50
MAX_STEPS = 40_000

pytestmark = pytest.mark.timeout(120)


class FakeClock(Clock):
    """The core's Clock port, moved by the test."""

    def __init__(self) -> None:
        self.ms = START_MS

    def time_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000.0


class Tap:
    """The core's sink: records every event, then hands it to the real publisher."""

    def __init__(self, publisher: StatePublisher) -> None:
        self.publisher = publisher
        self.events: list[CoreEvent] = []

    def emit(self, event: CoreEvent) -> None:
        self.events.append(event)
        self.publisher.emit(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Loop:
    """Core → StatePublisher → PUB/SUB (ipc) → Bridge.dispatch → ConsoleModel."""

    def __init__(self, run_dir: Path, cfg: SafeList) -> None:
        self.cfg = cfg
        self.clock = FakeClock()
        self.ctx = zmq.Context()
        eps = Endpoints.ipc(run_dir)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 0)  # no silent drop: every frame must arrive
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(eps.engine_pub)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(eps.engine_pub)
        self.publisher = StatePublisher(self.pub)
        self.tap = Tap(self.publisher)
        symbols = cfg.active_symbols()
        rules = {s: default_rules(s) for s in symbols}
        pc = cfg.portfolio
        self.store = Store(run_dir / "book.sqlite")
        self.core = TradingCore(
            cfg,
            clock=self.clock,
            journal=self.store,
            sink=self.tap,
            rules=rules,
            timeframe_s=2,
            client=PaperExecutionClient(pc.taker_fee, pc.slippage_bps, rules, self.clock),
        )
        self.stats = {s: TopicStats() for s in symbols}
        meta = {s: {"tier": str(p.tier), "strategy": p.strategy} for s, p in cfg.pairs.items()}
        self.model_clock = FrozenClock()
        self.model = ConsoleModel(symbols, meta, clock=self.model_clock, wall=self.model_clock)
        self.actx = zmq.asyncio.Context()
        self.bridge = Bridge(eps, self.model, ctx=self.actx)  # dispatch only: never started
        self.frames: list[list[bytes]] = []  # everything the console received, in order
        self._handshake()

    def _handshake(self) -> None:
        """PUB/SUB slow joiner: beat until the SUB hears one."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.publisher.heartbeat(None, "running", 0, 0, {}, None)
            if self.sub.poll(50):
                self.sync()
                return
        raise AssertionError("the SUB never heard the PUB")

    def pump(self) -> None:
        """Dispatch whatever has arrived."""
        while self.sub.poll(0):
            self._dispatch(self.sub.recv_multipart())

    def sync(self) -> None:
        """Everything published so far reaches the model (a heartbeat marks the end)."""
        self.publisher.flush_orders()  # what the node's loop turn does before its state
        self.publisher.heartbeat(self.core, "running", 0, 0, {}, None)
        while True:
            assert self.sub.poll(5000), "a published frame never arrived"
            frames = self.sub.recv_multipart()
            self._dispatch(frames)
            if frames[0] == engine_wire.TOPIC_HEARTBEAT:
                return

    def _dispatch(self, frames: list[bytes]) -> None:
        self.frames.append(frames)
        self.bridge.dispatch("engine", frames)

    def publish_state(self) -> None:
        """Every pair (closes included) and the portfolio now, through the node's builders."""
        now = self.clock.monotonic()
        for sym, ps in self.core.pairs.items():
            st = self.stats[sym]
            st.closes_sent_at = -1e9  # carry the sparkline in this message
            self.publisher.send(
                engine_wire.TOPIC_PAIR, self.publisher.pair_state(self.core, ps, st, now)
            )
        self.publisher.send(engine_wire.TOPIC_PORTFOLIO, self.publisher.portfolio(self.core))
        self.sync()

    def drive(self, seed: int = 7) -> int:
        """A random walk (log-returns sd 0.0015 per tick) until the board has everything the
        widgets show: two open positions, a closed trade, a rejected decision."""
        rng = random.Random(seed)
        px = {"BTC/USDT": 36_000.0, "ETH/USDT": 2_000.0, "SOL/USDT": 56.0}
        core = self.core
        for i in range(MAX_STEPS):
            self.clock.ms += STEP_MS
            for sym, ps in core.pairs.items():
                px[sym] *= math.exp(rng.gauss(0.0, 0.0015))
                p = px[sym]
                core.on_tick(ps, self.clock.ms, p * 0.9999, p * 1.0001, p, float(i))
            core.on_timer()
            self.publisher.publish_due(core, self.stats, self.clock.monotonic())  # throttled
            if i % 200 == 0:
                self.pump()
            if self._complete():
                self.publish_state()
                return i
        raise AssertionError("the random walk never produced a full board")

    def _complete(self) -> bool:
        open_ = [p for p in self.core.portfolio.positions.values() if p.qty != 0.0]
        closed = any(e.position.qty == 0.0 for e in self.tap.of(FillBooked))
        rejected = any(not e.decision.approved for e in self.tap.of(DecisionMade))
        return len(open_) >= 2 and closed and rejected

    def command(self, cmd: str, symbol: str | None = None) -> AckMsg:
        """What the engine node answers (``EngineNode.handle``), through the ack codec."""
        result = self.core.command(cmd, symbol)
        halted = self.core.portfolio_summary().halted if cmd in ("kill", "rearm") else None
        ack = AckMsg("c1", cmd, result.ok, result.message, self.core.modes(), halted)
        return decode_ack(engine_wire.make_ack(ack))

    def close(self) -> None:
        self.sub.close(0)
        self.pub.close(0)
        self.ctx.term()
        self.actx.term()
        self.store.close()


@contextlib.contextmanager
def running_loop(prefix: str = "mpw-") -> Iterator[Loop]:
    """A ``Loop`` on a busy safe list (tests/data) in a short temp dir, closed and removed after."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # ipc paths must stay short
    lp = Loop(d, load_safe_list(ROOT / "tests" / "data" / "busy_safe_list.yaml"))
    try:
        yield lp
    finally:
        lp.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def loop() -> Iterator[Loop]:
    with running_loop() as lp:
        yield lp


# ---- the contract ----------------------------------------------------------------------------


def assert_pairs_match(lp: Loop) -> None:
    core, model = lp.core, lp.model
    now = core.clock.monotonic()
    for sym, ps in core.pairs.items():
        pv = model.pairs[sym]
        st = pv.state
        price = core.price(ps)
        cfg = ps.runtime.cfg
        assert (st.symbol, st.tier, st.strategy) == (sym, str(cfg.tier), cfg.strategy)
        assert st.mode == str(ps.mode)
        assert st.stale is core.is_stale(ps, now)
        assert pv.badge(model.now()) == ("STALE" if st.stale and st.mode != "HALTED" else st.mode)
        assert (st.last, st.bid, st.ask) == (ps.last, ps.bid, ps.ask)
        assert st.change_pct == core.change_pct(ps)
        assert st.tick_age_ms == int((now - ps.last_tick_at) * 1000)
        assert (st.ticks, st.bad) == (ps.ticks, ps.implausible)
        assert pv.closes == ps.candles.closes(SPARKLINE_CLOSES, include_forming=True)
        assert dataclasses.asdict(st.ind) == ps.runtime.preview(price)
        sig = ps.signal
        if sig is None:
            assert st.signal is None, sym
        else:
            assert st.signal is not None, sym
            assert st.signal.type == str(sig.type)
            assert st.signal.confidence == sig.confidence
            assert (st.signal.entry, st.signal.stop_loss, st.signal.take_profit) == (
                sig.entry,
                sig.stop_loss,
                sig.take_profit,
            )
            assert (st.signal.reasoning, st.signal.ts) == (sig.reasoning, sig.ts)
        d = ps.decision
        if d is None:
            assert st.decision is None, sym
        else:
            assert st.decision is not None, sym
            assert (st.decision.approved, st.decision.action) == (d.approved, d.action)
            assert (st.decision.reasons, st.decision.ts) == (d.reasons, d.ts)
        pos = core.portfolio.positions.get(sym)
        if pos is None or pos.qty == 0.0:
            assert st.position is None and not pv.has_position, sym
        else:
            p = st.position
            assert p is not None and pv.has_position, sym
            assert (p.qty, p.side, p.entry) == (
                pos.qty,
                "long" if pos.qty > 0 else "short",
                pos.entry,
            )
            assert (p.stop_loss, p.take_profit) == (pos.stop_loss, pos.take_profit)
            assert p.unrealised == pos.unrealised(price)
            assert (p.realised, p.notional) == (pos.realised, pos.notional(price))
        ex = core.execution.exits.get(sym)
        assert st.exit_pending == (
            (ex.blocked or ex.last_error or ex.reason) if ex is not None else None
        )
    assert sorted(model.open_positions()) == sorted(
        s for s, p in core.portfolio.positions.items() if p.qty != 0.0 and s in core.pairs
    )


def assert_portfolio_matches(lp: Loop) -> None:
    s = lp.core.portfolio_summary()
    pf = lp.model.portfolio
    assert pf is not None
    for name in (
        "capital", "cash", "equity", "realised", "unrealised", "fees", "daily_pnl",
        "exposure_used", "exposure_max", "correlated_max", "halted", "positions",
        "correlated_cluster", "correlated_used", "total_pnl", "day_start_ts", "entries_stopped", "entries_reason",
    ):  # fmt: skip
        assert getattr(pf, name) == getattr(s, name), name
    assert lp.model.halted is s.halted
    # wire version 2 (issue 16): the shown part, open positions first, and the top links of all
    assert pf.corr is not None and pf.corr.version == 2 and pf.corr.pairs == len(lp.core.corr.symbols)
    opened = sorted(s for s, p in lp.core.portfolio.positions.items() if p.qty != 0.0)
    assert pf.corr.symbols[: len(opened)] == opened
    assert (pf.corr.symbols, pf.corr.matrix) == lp.core.corr.matrix(pf.corr.symbols)
    links = lp.core.corr.view([], 0, len(pf.corr.links))[2]
    assert [(k.a, k.b, k.rho) for k in pf.corr.links] == links


def assert_logs_match(lp: Loop) -> None:
    made = [e.decision for e in lp.tap.of(DecisionMade)]
    logged = list(lp.model.decisions)
    assert len(logged) == len(made) > 0
    for d, m in zip(made, logged, strict=True):
        assert (m.key, m.symbol, m.ts, m.action, m.approved) == (
            d.key,
            d.symbol,
            d.ts,
            d.action,
            d.approved,
        )
        assert (m.qty, m.price) == (d.qty, d.price)
        assert m.checks == [(c.name, c.ok, c.reason) for c in d.checks]
        assert m.reasons == d.reasons  # what the decision log shows for a rejection
        assert (m.signal.type, m.signal.confidence, m.signal.reasoning) == (
            str(d.signal.type),
            d.signal.confidence,
            d.signal.reasoning,
        )
    booked = [e.fill for e in lp.tap.of(FillBooked)]
    fills = list(lp.model.fills)
    assert len(fills) == len(booked) > 0
    for f, m in zip(booked, fills, strict=True):
        assert (m.fill_id, m.order_id, m.symbol, m.side) == (
            f.fill_id,
            f.order_id,
            f.symbol,
            str(f.side),
        )
        assert (m.qty, m.price, m.fee, m.ts, m.reason) == (f.qty, f.price, f.fee, f.ts, f.reason)
    fill_lines = [e.text for e in lp.model.events if e.text.startswith("fill ")]
    assert len(fill_lines) == len(booked)
    last_order: dict[str, Any] = {}
    for e in lp.tap.of(OrderUpdated):
        last_order[e.order.symbol] = e.order
    assert last_order
    for sym, o in last_order.items():
        m = lp.model.pairs[sym].order
        assert m is not None
        assert (m.client_order_id, m.side, m.qty, m.status, m.reason) == (
            o.client_order_id,
            str(o.side),
            o.qty,
            str(o.status),
            o.reason,
        )
        assert (m.filled_qty, m.avg_price, m.message, m.decision_key) == (
            o.filled_qty,
            o.avg_price,
            o.message,
            o.decision_key,
        )


def test_the_console_shows_what_the_core_computed(loop: Loop) -> None:
    steps = loop.drive()
    assert steps > 0
    assert loop.bridge.bad_messages == 0 and loop.model.malformed == 0
    assert loop.bridge.gaps == {}, "a frame was lost between the publisher and the bridge"
    assert_pairs_match(loop)
    assert_portfolio_matches(loop)
    assert_logs_match(loop)
    assert loop.bridge.beat_pid["engine"] > 0
    for sym, ps in loop.core.pairs.items():  # the kill fallback's marks
        assert loop.bridge.marks[sym] == (ps.bid, ps.ask)


def test_kill_and_rearm_round_trip(loop: Loop) -> None:
    loop.drive()
    model = loop.model
    assert model.open_positions() and not model.halted
    ack = to_ack(loop.command("kill"), "kill", 5.0)
    assert ack.ok and ack.halted is True
    model.apply_ack(ack)  # what the app does with the ack, before any state message
    assert model.halted
    assert all(model.pairs[s].state.mode == "HALTED" for s in model.symbols)
    loop.sync()  # the events the kill published: notice, exit decisions, orders, fills
    texts = [(e.level, e.text) for e in model.events]
    assert ("error", "kill switch: all pairs HALTED") in texts
    assert any(t.startswith("fill ") and t.endswith("(kill)") for _, t in texts)
    loop.publish_state()
    assert_pairs_match(loop)
    assert_portfolio_matches(loop)
    assert_logs_match(loop)
    assert model.halted and model.open_positions() == []
    assert all(p.mode is PairMode.HALTED for p in loop.core.pairs.values())

    ack = to_ack(loop.command("rearm"), "rearm", 5.0)
    assert ack.ok and ack.halted is False
    model.apply_ack(ack)
    assert not model.halted
    loop.sync()
    lines = [(e.level, e.text) for e in model.events]
    assert ("info", "re-armed 3 pair(s)") in lines
    notices = loop.tap.of(Notice)
    assert len(notices) >= 2 and all((n.level, n.message) in lines for n in notices)
    loop.publish_state()
    assert_pairs_match(loop)
    assert_portfolio_matches(loop)
    assert loop.bridge.bad_messages == 0


async def test_the_widgets_render_the_cores_values(loop: Loop) -> None:
    """The same frames, replayed into the app's own model, drawn by the real widgets."""
    loop.drive()
    backend = FakeBackend(board=False)
    app = make_app(backend, loop.cfg, clock=FrozenClock())
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        while not backend.started.is_set():
            await pilot.pause(0.02)
        bridge = Bridge(Endpoints.ipc(Path("/tmp")), app.model, ctx=loop.actx)
        for frames in loop.frames:
            bridge.dispatch("engine", frames)
        assert bridge.bad_messages == 0
        app.repaint_now()
        await pilot.pause()
        core = loop.core
        for sym, ps in core.pairs.items():
            text = app.main.panes[sym].text()
            ind = app.model.pairs[sym].state.ind
            assert fmt_price(ps.last) in text, sym
            assert f"bid {fmt_price(ps.bid)}  ask {fmt_price(ps.ask)}" in text, sym
            assert f"RSI {fmt_num(ind.rsi, 1)}" in text, sym
            assert str(ps.mode) in text, sym
            if ps.signal is not None:
                assert f"Signal {ps.signal.type}" in text, sym
            pos = core.portfolio.positions.get(sym)
            if pos is not None and pos.qty != 0.0:
                assert f"LONG {fmt_qty(pos.qty)} @ {fmt_price(pos.entry)}" in text, sym
                assert f"stop {fmt_price(pos.stop_loss)}" in text, sym
                assert f"tp {fmt_price(pos.take_profit)}" in text, sym
                upnl = pos.unrealised(core.price(ps))
                assert f"uPnL {fmt_usd(upnl, signed=True)}" in text, sym
            else:
                assert "Pos flat" in text, sym
            if ps.decision is not None:
                assert ("APPROVED" if ps.decision.approved else "REJECTED") in text, sym
        s = core.portfolio_summary()
        screen = screen_text(app)
        assert f"Equity {fmt_usd(s.equity)}" in screen
        assert f"Day {fmt_usd(s.daily_pnl, signed=True)}" in screen
        assert f"{s.correlated_used} / {s.correlated_max} open in one cluster" in screen
        assert f"{fmt_usd(s.exposure_used)} / {fmt_usd(s.exposure_max)} USD" in screen
        assert f"cash {fmt_usd(s.cash)}" in screen
        assert "✗ REJECTED" in screen and "✓ APPROVED" in screen


# ---- the schema: one codec, loud on renames ---------------------------------------------------


def samples(lp: Loop) -> list[Message]:
    """One real message of every published type (and an ack), built by the node's builders."""
    core = lp.core
    ps = next(p for p in core.pairs.values() if p.decision is not None and p.signal is not None)
    pair = lp.publisher.pair_state(core, ps, TopicStats(), core.clock.monotonic())
    with_pos = next(
        s for s, p in core.portfolio.positions.items() if p.qty != 0.0 and s in core.pairs
    )
    pair_pos = lp.publisher.pair_state(
        core, core.pairs[with_pos], TopicStats(), core.clock.monotonic()
    )
    order = next(e.order for e in lp.tap.of(OrderUpdated))
    return [
        pair,
        pair_pos,
        lp.publisher.portfolio(core),
        node_publisher.decision_msg(lp.tap.of(DecisionMade)[-1].decision),
        node_publisher.order_msg(order),
        node_publisher.fill_msg(lp.tap.of(FillBooked)[-1].fill),
        NoticeMsg(core.clock.time_ms(), "kill", "error", "kill switch: all pairs HALTED"),
        HeartbeatMsg("engine", 1, time.time_ns(), mode_counts={"ACTIVE": 3}),
        AckMsg("c1", "kill", True, "halted", core.modes(), True),
    ]


def required_paths(msg: Message, prefix: str = "") -> list[tuple[str, list[str]]]:
    """(dotted name, key path) of every required field, nested messages included."""
    out = []
    for f in dataclasses.fields(msg):  # type: ignore[arg-type]
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        value = getattr(msg, f.name)
        if required:
            out.append((prefix + f.name, [f.name]))
        if isinstance(value, Message):
            out += [(n, [f.name, *p]) for n, p in required_paths(value, prefix + f.name + ".")]
    return out


def test_every_message_survives_its_codec_and_names_a_missing_field(loop: Loop) -> None:
    loop.drive()
    for msg in samples(loop):
        cls = type(msg)
        wire = msg.to_wire()
        assert wire["v"] == 1
        back = cls.from_wire(msgpack.unpackb(msgpack.packb(wire), raw=False))
        assert back == msg, cls.__name__
        paths = required_paths(msg)
        assert paths, cls.__name__
        for name, path in paths:
            broken = msgpack.unpackb(msgpack.packb(wire), raw=False)
            target = broken
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]
            with pytest.raises(SchemaError, match=rf"field {name} is missing"):
                cls.from_wire(broken)


def test_a_renamed_field_fails_on_both_sides() -> None:
    """The engine builds messages by keyword and the console reads attributes: a field
    renamed in the schema breaks a builder or a reader, and an old map is refused by name."""
    wire = PairStateMsg("BTC/USDT", "ACTIVE", False).to_wire()
    wire["sym"] = wire.pop("symbol")
    with pytest.raises(SchemaError, match="field symbol is missing"):
        PairStateMsg.from_wire(wire)
    with pytest.raises(TypeError):
        PairStateMsg(sym="BTC/USDT", mode="ACTIVE", stale=False)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        PairStateMsg("BTC/USDT", "ACTIVE", False).price  # type: ignore[attr-defined]  # noqa: B018


# ---- hostile input -------------------------------------------------------------------------


def _visible(model: ConsoleModel) -> tuple[Any, ...]:
    return (
        {
            s: (pv.state, pv.received_at, pv.updates, tuple(pv.closes), pv.order)
            for s, pv in model.pairs.items()
        },
        model.portfolio,
        model.halted,
        list(model.decisions),
        list(model.fills),
        [(e.level, e.text) for e in model.events],
        {n: (c.state, c.pid, c.last_beat) for n, c in model.children.items()},
    )


# Invalid for every field of every engine message, whatever its type.
NEVER_VALID: tuple[Any, ...] = (
    float("nan"),
    float("inf"),
    float("-inf"),
    "x" * (MAX_STR + 1),
    [0.0] * (MAX_LIST + 1),
    2**63,  # beyond int64 (msgpack carries it as uint64) and beyond any amount
    2**64 - 1,
    b"bytes",
)


def wrong_type(value: Any) -> Any:
    """A value of another type than a good field value (None: optional, no verdict)."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return 1.0
    if isinstance(value, int):
        return 1.5
    if isinstance(value, float):
        return "1.0"
    if isinstance(value, list | dict):
        return "x"
    return None


def hostile_maps(good: dict[str, Any]) -> list[dict[str, Any]]:
    """Variations of one good map that no receiver may accept."""
    out: list[dict[str, Any]] = [{k: v for k, v in good.items() if k != "v"}]
    out += [{**good, "v": v} for v in (1.0, True, "1", 2, None)]
    for key, value in good.items():
        if key in ("v", "seq"):
            continue
        out += [{**good, key: bad} for bad in NEVER_VALID]
        other = wrong_type(value)
        if other is not None:
            out.append({**good, key: other})
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append({**good, key: True})  # a bool is never a number
    return out


def test_hostile_maps_on_every_engine_topic_are_counted_and_dropped(loop: Loop) -> None:
    loop.drive()
    good = {type(m): m.to_wire() for m in samples(loop)}
    topics = {
        engine_wire.TOPIC_PAIR: good[PairStateMsg],
        engine_wire.TOPIC_PORTFOLIO: good[PortfolioMsg],
        engine_wire.TOPIC_DECISION: good[DecisionMsg],
        engine_wire.TOPIC_ORDER: good[OrderMsg],
        engine_wire.TOPIC_FILL: good[FillMsg],
        engine_wire.TOPIC_EVENT: good[NoticeMsg],
        engine_wire.TOPIC_HEARTBEAT: good[HeartbeatMsg],
    }
    pair, portfolio = good[PairStateMsg], good[PortfolioMsg]
    nested = [  # a nested field of the wrong shape or value
        (engine_wire.TOPIC_PAIR, {**pair, "ind": {**pair["ind"], "rsi": float("nan")}}),
        (engine_wire.TOPIC_PAIR, {**pair, "ind": "high"}),
        (engine_wire.TOPIC_PAIR, {**pair, "signal": {"type": 1}}),
        (engine_wire.TOPIC_PAIR, {**pair, "closes": [1.0, float("nan")]}),
        (engine_wire.TOPIC_PAIR, {**pair, "position": {"qty": "1", "side": "long", "entry": 1.0}}),
        (engine_wire.TOPIC_DECISION, {**good[DecisionMsg], "checks": [["stop", True]]}),
        (engine_wire.TOPIC_DECISION, {**good[DecisionMsg], "checks": [["stop", 1, ""]]}),
        (engine_wire.TOPIC_PORTFOLIO, {**portfolio, "corr": {"symbols": [], "matrix": [[1e300]]}}),
        (engine_wire.TOPIC_PORTFOLIO, {**portfolio, "correlated_cluster": [1]}),
        (engine_wire.TOPIC_HEARTBEAT, {**good[HeartbeatMsg], "mode_counts": {"ACTIVE": 1.5}}),
    ]
    model, bridge = loop.model, loop.bridge
    before = _visible(model)
    beats_before = dict(bridge.last_beat)
    bad_before = bridge.bad_messages
    sent = 0
    for topic, m in topics.items():
        frames: list[list[bytes]] = [
            [topic, b"\xc1\xc1 not msgpack"],
            [topic, msgpack.packb([1, 2, 3])],
            [topic, msgpack.packb("a string")],
            [topic, b""],
            [topic, engine_wire.pack_map({"v": 1})],
            [topic],
            [topic, engine_wire.pack_map(m), b"extra"],
        ]
        frames += [[topic, msgpack.packb(h, use_bin_type=True)] for h in hostile_maps(m)]
        frames += [[t, msgpack.packb(h)] for t, h in nested if t == topic]
        for f in frames:
            bridge.dispatch("engine", f)
        sent += len(frames)
    bridge.dispatch("engine", [b"nonsense", engine_wire.pack_map(pair)])  # unknown topic
    sent += 1
    assert bridge.bad_messages - bad_before == sent
    assert _visible(model) == before, "a dropped message changed what the console shows"
    assert bridge.last_beat == beats_before
    # well-typed, but not the console's to show: counted by the model, nothing changes
    for value in ({"symbol": "DOGE/USDT"}, {"mode": "LAUNCHED"}):
        bridge.dispatch("engine", [engine_wire.TOPIC_PAIR, engine_wire.pack_map({**pair, **value})])
    assert model.malformed == 2 and bridge.bad_messages - bad_before == sent
    assert _visible(model) == before
    # and the bridge still takes a good one
    updates = model.pairs[pair["symbol"]].updates
    bridge.dispatch("engine", [engine_wire.TOPIC_PAIR, engine_wire.pack_map(pair)])
    assert model.pairs[pair["symbol"]].updates == updates + 1
