"""The snapshot on attach, in process: the real trading core, publisher, book and codec.

What the engine answers to ``snapshot`` (``engine.node.snapshot.build_snapshot`` through the
reply codec) equals the core and the book field for field; a console that attaches while the
engine trades (the bridge holding the live stream, the snapshot built in the middle of it,
its reply arriving after later messages) ends with every decision and fill once, no gap and
the core's state; and the bridge's sequence rules on synthetic messages (docs/wire.md,
"Snapshot"). The harness is tests/test_wire_contract.py's ``Loop`` (real PUB/SUB over ipc).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.attach import decode_reply
from console.bridge import Bridge
from console.model import ConsoleModel
from console.rundir import Endpoints
from engine.core.config import load_safe_list
from engine.core.events import DecisionMade, FillBooked, Notice
from engine.node.publisher import fill_msg
from engine.node.snapshot import SNAPSHOT_HISTORY, build_snapshot, event_level
from engine.wire import commands as engine_wire
from engine.wire.codec import MAX_LIST
from engine.wire.schema import (
    DecisionMsg,
    FillMsg,
    NoticeMsg,
    OrderMsg,
    PortfolioMsg,
    SignalMsg,
    SnapshotMsg,
)
from tests.console_fakes import pair_msg
from tests.test_wire_contract import (
    ROOT,
    STEP_MS,
    Loop,
    assert_pairs_match,
    assert_portfolio_matches,
    running_loop,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def lp() -> Iterator[Loop]:
    with running_loop("mps-") as loop:
        yield loop


def snapshot(lp: Loop, cmd_id: str = "s1") -> SnapshotMsg:
    """What the node answers (``EngineNode.snapshot_reply``), through the reply codec."""
    snap = build_snapshot(cmd_id, lp.core, lp.publisher, lp.stats, lp.store)
    reply = decode_reply(engine_wire.make_snapshot(snap))
    assert isinstance(reply, SnapshotMsg)
    return reply


def walk(lp: Loop, steps: int, rng: random.Random, px: dict[str, float]) -> None:
    """``steps`` more ticks of the random walk, published as the node does, into the bridge."""
    core = lp.core
    for i in range(steps):
        lp.clock.ms += STEP_MS
        for sym, ps in core.pairs.items():
            px[sym] *= math.exp(rng.gauss(0.0, 0.0015))
            p = px[sym]
            core.on_tick(ps, lp.clock.ms, p * 0.9999, p * 1.0001, p, float(i))
        core.on_timer()
        lp.publisher.publish_due(core, lp.stats, lp.clock.monotonic())
        if i % 100 == 0:
            lp.pump()
    lp.sync()


def attach_console(lp: Loop) -> None:
    """A console that attaches now: a fresh model and bridge, holding the live stream."""
    meta = {s: {"tier": str(p.tier), "strategy": p.strategy} for s, p in lp.cfg.pairs.items()}
    lp.model = ConsoleModel(lp.cfg.active_symbols(), meta, clock=lp.model_clock, wall=lp.model_clock)
    lp.bridge = Bridge(Endpoints.ipc(Path("/tmp")), lp.model, ctx=lp.actx)
    lp.bridge.hold()
    lp.sync()  # it hears the engine's beat first (what starts the backend's request)


def last_seqs(lp: Loop) -> dict[str, int]:
    out: dict[str, int] = {}
    for topic, payload in lp.frames:
        out[topic.decode()] = engine_wire.unpack(payload)["seq"]
    return out


# ---- the engine's answer ----------------------------------------------------------------------


def test_the_snapshot_is_the_core_and_the_book(lp: Loop) -> None:
    lp.drive()
    lp.command("kill")  # journaled notices and exit fills, published too
    lp.command("rearm")
    lp.publish_state()
    snap = snapshot(lp)
    core, store = lp.core, lp.store
    # the sequence number of every topic when it was built = the last one the console received
    assert set(snap.seq) == {t.decode() for t in engine_wire.TOPICS}
    assert {k: v for k, v in snap.seq.items() if v} == last_seqs(lp)

    # every pair and the portfolio, as the live topics carry them (closes included)
    assert [p.symbol for p in snap.pairs] == list(core.pairs)
    assert all(p.closes for p in snap.pairs)
    attach_console(lp)
    assert lp.bridge.apply_snapshot(snap)
    assert_pairs_match(lp)
    assert_portfolio_matches(lp)
    assert {s: pv.state.mode for s, pv in lp.model.pairs.items()} == core.modes()

    # the book's last decisions, fills and events, oldest first
    assert snap.decisions == list(reversed(store.recent_decisions(limit=SNAPSHOT_HISTORY)))
    made = [e.decision for e in lp.tap.of(DecisionMade)]
    assert [d.key for d in snap.decisions] == [d.key for d in made][-SNAPSHOT_HISTORY:]
    assert all(d.id is not None for d in snap.decisions)
    booked = [fill_msg(e.fill) for e in lp.tap.of(FillBooked)]
    assert snap.fills == booked[-SNAPSHOT_HISTORY:] == [fill_msg(f) for f in store.fills()][-SNAPSHOT_HISTORY:]
    live = [(n.ts, n.kind, n.level, n.message) for n in lp.tap.of(Notice)]
    assert [(n.ts, n.kind, n.level, n.message) for n in snap.events] == live  # the same levels
    assert {n.kind for n in snap.events} == {"kill", "rearm"}

    # the model holds the book's logs, marked
    model = lp.model
    assert list(model.decisions) == snap.decisions and list(model.fills) == snap.fills
    texts = [e.text for e in model.events]
    held = sum(1 for p in snap.pairs if p.position is not None)
    assert texts[-1] == (  # the newest line: in view after the book's
        f"attached: {held} open position{'s' * (held != 1)}, {len(snap.decisions)} decisions, "
        f"{len(snap.fills)} fills, {len(snap.events)} events recovered from the book"
    )
    assert len(texts) == 1 + len(snap.fills) + len(snap.events)
    assert all(t.startswith("[book] ") for t in texts[:-1])
    assert "[book] kill switch: all pairs HALTED" in texts
    book_at = [e.at for e in model.events][:-1]
    assert book_at == sorted(book_at)  # at their own time, oldest first


def test_the_snapshot_keeps_to_its_limits(lp: Loop) -> None:
    """Only the latest 200 of each; every list far below the schema's limit; string cut."""
    lp.drive()
    for i in range(SNAPSHOT_HISTORY + 5):
        lp.store.record_event(lp.clock.ms + i, "note", "x" * (5000 if i == 0 else 10))
    snap = snapshot(lp)
    assert len(snap.events) == SNAPSHOT_HISTORY < MAX_LIST
    assert len(snap.decisions) <= SNAPSHOT_HISTORY and len(snap.fills) <= SNAPSHOT_HISTORY
    assert [e.ts for e in snap.events] == sorted(e.ts for e in snap.events)
    assert snap.events[-1].ts == lp.clock.ms + SNAPSHOT_HISTORY + 4
    long = lp.store.recent_events(limit=SNAPSHOT_HISTORY + 50)[-1]
    assert len(long["message"]) == 5000  # in the book; dropped from the snapshot by the limit
    cut = build_snapshot("s", lp.core, lp.publisher, lp.stats, lp.store, limit=SNAPSHOT_HISTORY + 50)
    assert max(len(e.message) for e in cut.events) == 4096  # still decodable
    assert isinstance(decode_reply(engine_wire.make_snapshot(cut)), SnapshotMsg)


def test_event_levels_from_the_book() -> None:
    assert event_level("kill") == event_level("kill-fallback") == "error"
    assert event_level("rearm") == "info" and event_level("anything") == "info"
    assert event_level("exit_blocked") == "warning"


def test_the_snapshot_does_not_disturb_the_live_sparkline(lp: Loop) -> None:
    """Building a snapshot sends no closes on behalf of the live stream."""
    lp.drive()
    before = {s: (st.closes_sent_at, st.closes_sent_for) for s, st in lp.stats.items()}
    snapshot(lp)
    assert {s: (st.closes_sent_at, st.closes_sent_for) for s, st in lp.stats.items()} == before


# ---- attaching while the engine trades ----------------------------------------------------------


def test_attach_mid_stream_no_gap_no_double(lp: Loop) -> None:
    rng = random.Random(11)
    px = {"BTC/USDT": 36_000.0, "ETH/USDT": 2_000.0, "SOL/USDT": 56.0}
    lp.drive()
    for sym, ps in lp.core.pairs.items():
        px[sym] = ps.last
    attach_console(lp)
    walk(lp, 400, rng, px)  # published before the snapshot: held
    held_before = len(lp.bridge._held or [])
    assert held_before > 0
    snap = snapshot(lp)
    decided_at_snapshot = len(lp.tap.of(DecisionMade))
    lp.command("kill")  # after the snapshot: notices, exit fills, modes
    walk(lp, 400, rng, px)  # also before the reply arrives: held
    assert lp.bridge.apply_snapshot(snap)
    assert lp.bridge.snapshot_dropped > 0  # what the snapshot already held
    lp.command("rearm")
    walk(lp, 400, rng, px)
    lp.publish_state()

    model, bridge = lp.model, lp.bridge
    assert bridge.gaps == {} and bridge.bad_messages == 0
    made = [e.decision.key for e in lp.tap.of(DecisionMade)]
    shown = [d.key for d in model.decisions]
    assert len(shown) == len(set(shown))  # no double
    after = len(made) - decided_at_snapshot
    assert shown == made[-(min(decided_at_snapshot, SNAPSHOT_HISTORY) + after) :]  # no gap
    booked = [e.fill.fill_id for e in lp.tap.of(FillBooked)]
    assert [f.fill_id for f in model.fills] == booked[-len(model.fills) :]
    assert len(model.fills) == min(len(booked), 500)
    fill_lines = [e.key for e in model.events if e.key.startswith("fill:")]
    assert len(fill_lines) == len(set(fill_lines))  # each fill once in the event log
    notices = [e.text for e in model.events if "kill switch: all pairs HALTED" in e.text]
    assert len(notices) == 1  # published after the snapshot: live, not from the book
    assert_pairs_match(lp)
    assert_portfolio_matches(lp)


# ---- the bridge's sequence rules on synthetic messages -----------------------------------------


def _model() -> ConsoleModel:
    cfg = load_safe_list(ROOT / "safe_list.yaml")
    meta = {s: {"tier": p.tier.value, "strategy": p.strategy} for s, p in cfg.pairs.items()}
    return ConsoleModel(cfg.active_symbols(), meta)


def _frame(topic: bytes, msg: object) -> list[bytes]:
    return [topic, engine_wire.pack_map(msg.to_wire())]  # type: ignore[attr-defined]


def _decision(seq: int) -> DecisionMsg:
    sig = SignalMsg("BUY", 0.9, 100.0, 90.0, 120.0, "t", 1)
    return DecisionMsg(f"BTC/USDT|{seq}", "BTC/USDT", seq, "open_long", True, sig, 1.0, 100.0, seq=seq)


def _portfolio() -> PortfolioMsg:
    return PortfolioMsg(1e4, 1e4, 1e4, 0.0, 0.0, 0.0, 0.0, 0.0, 1e3, 2, False, 0)


def _snap(seq: dict[str, int], **kw: object) -> SnapshotMsg:
    return SnapshotMsg("s1", _portfolio(), seq=seq, **kw)  # type: ignore[arg-type]


def test_bridge_drops_what_the_snapshot_holds_and_counts_a_gap_after_it() -> None:
    model = _model()
    bridge = Bridge(Endpoints.ipc(Path("/tmp")), model)
    bridge.hold()
    for seq in (1, 2, 3, 4, 5):  # arrive before the reply: held
        bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", last=100.0 + seq, seq=seq)))
    for seq in (1, 2, 3):
        bridge.dispatch("engine", _frame(b"decision", _decision(seq)))
    order = OrderMsg("o1", "BTC/USDT", "buy", 1.0, "rejected", "signal", message="no", seq=1)
    bridge.dispatch("engine", _frame(b"order", order))
    assert model.pairs["BTC/USDT"].updates == 0 and not model.decisions  # nothing applied yet

    book = [_decision(1), _decision(2)]
    snap = _snap(
        {"pair": 3, "portfolio": 0, "decision": 2, "order": 1, "fill": 7, "event": 0, "_hb": 9},
        pairs=[pair_msg("BTC/USDT", last=103.0)],
        decisions=book,
        fills=[FillMsg("f7", "o", "BTC/USDT", "buy", 1.0, 100.0, 0.1, 5, "signal")],
        events=[NoticeMsg(4, "kill", "error", "kill switch: all pairs HALTED")],
    )
    assert bridge.apply_snapshot(snap)
    assert not bridge.holding and bridge.snapshots == 1
    pv = model.pairs["BTC/USDT"]
    assert pv.state.seq == 5 and pv.state.last == 105.0  # 1-3 dropped, 4 and 5 applied
    assert pv.updates == 3  # the snapshot's, then 4 and 5
    assert [d.key for d in model.decisions] == ["BTC/USDT|1", "BTC/USDT|2", "BTC/USDT|3"]
    assert model.pairs["BTC/USDT"].order == order  # orders are not in a snapshot: kept
    assert bridge.snapshot_dropped == 3 + 2
    assert bridge.gaps == {}

    # live: one already in the snapshot, then a jump
    bridge.dispatch("engine", _frame(b"fill", FillMsg("f7", "o", "BTC/USDT", "buy", 1.0, 100.0, 0.1, 5, seq=7)))
    assert len(model.fills) == 1 and bridge.snapshot_dropped == 6  # f7 at seq 7: not twice
    bridge.dispatch("engine", _frame(b"fill", FillMsg("f10", "o", "BTC/USDT", "sell", 1.0, 101.0, 0.1, 6, seq=10)))
    assert [f.fill_id for f in model.fills] == ["f7", "f10"]
    assert bridge.gaps == {"engine:fill": 2}  # 8 and 9 never came
    bridge.dispatch("engine", _frame(b"decision", _decision(6)))
    assert bridge.gaps == {"engine:fill": 2, "engine:decision": 2}  # held 3 was the last: 4, 5 lost
    bridge.dispatch("engine", _frame(b"event", NoticeMsg(9, "rearm", "info", "re-armed", seq=1)))
    assert bridge.gaps == {"engine:fill": 2, "engine:decision": 2}  # event seq 0 -> 1: no gap
    assert [e.text for e in model.events][-1] == "re-armed"


def test_bridge_ignores_a_snapshot_it_did_not_hold_for_and_restarts_with_a_new_engine() -> None:
    from engine.wire.schema import HeartbeatMsg

    model = _model()
    started: list[int] = []
    bridge = Bridge(Endpoints.ipc(Path("/tmp")), model, on_new_engine=started.append)
    bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", seq=1)))
    assert started == [0]  # it spoke before it beat: its snapshot is asked for at once
    assert not bridge.apply_snapshot(_snap({"pair": 5}))  # live already applied: not rewound
    assert model.pairs["BTC/USDT"].state.seq == 1

    beat = HeartbeatMsg("engine", 41, 1, seq=1)
    bridge.dispatch("engine", _frame(b"_hb", beat))
    assert started == [0, 41]
    bridge.hold()
    bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", seq=2)))
    bridge.dispatch("engine", _frame(b"_hb", HeartbeatMsg("engine", 41, 2, seq=2)))
    assert started == [0, 41] and bridge.last_beat  # beats are never held; same engine
    assert bridge.apply_snapshot(_snap({"pair": 9}))
    assert bridge.snapshot_dropped == 1  # seq 2 <= 9

    # a new engine: its numbers start again; the old floors must not drop them
    bridge.hold()
    bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", seq=10)))  # the old one's
    bridge.dispatch("engine", _frame(b"_hb", HeartbeatMsg("engine", 42, 3, seq=1)))
    assert started == [0, 41, 42] and bridge._held == []  # what was kept for 41 is superseded
    bridge.release()  # no snapshot from 42: live as it comes
    bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", last=7.0, seq=1)))
    assert model.pairs["BTC/USDT"].state.last == 7.0


def test_an_engine_that_speaks_before_it_beats_is_asked_once() -> None:
    """Its first beats can be lost to the slow joiner: its first message of any kind asks for
    the snapshot, and the snapshot's pid makes its later beat no new engine."""
    from engine.wire.schema import HeartbeatMsg

    model = _model()
    started: list[int] = []
    bridge = Bridge(Endpoints.ipc(Path("/tmp")), model, on_new_engine=started.append)
    bridge.hold()
    bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", seq=1)))
    bridge.dispatch("engine", _frame(b"pair", pair_msg("BTC/USDT", seq=2)))
    assert started == [0]  # asked once, at the first message
    assert bridge.apply_snapshot(_snap({"pair": 1}, pid=77))
    bridge.dispatch("engine", _frame(b"_hb", HeartbeatMsg("engine", 77, 1, seq=1)))
    assert started == [0]  # the same engine: not asked again
    assert model.pairs["BTC/USDT"].state.seq == 2 and bridge.snapshot_dropped == 1
