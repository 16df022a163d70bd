"""Publish what is watched (issue 16, point 3): a pair's fast state goes out on ``view:SYM`` only
while someone subscribes to it; every pair goes out on ``pair`` once a second, and at once when its
mode or position changes.

In process, a real EngineNode (real SQLite, its XPUB never bound) on a clock the test moves; the
subscriptions are the frames libzmq's XPUB hands the node. The console side (a real engine process,
a real Bridge, the real app scrolled with its keys) is ``tests/test_watch_console.py``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.node.service import Endpoints, EngineNode
from engine.wire.commands import TOPIC_PAIR, view_topic
from engine.wire.schema import Message
from feed.wire import encode_tick_fields
from tests.core_harness import FakeClock

SYMBOLS = [f"C{i:03d}/USDT" for i in range(6)]


class _NoHistory:
    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        return []


def _cfg(symbols: list[str]) -> SafeList:
    pair = {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": dict.fromkeys(symbols, pair),
    })


class _Sent:
    """What the node published, by topic, in order."""

    def __init__(self, node: EngineNode) -> None:
        self.log: list[tuple[bytes, Message]] = []
        real = node.publisher.send

        def send(topic: bytes, msg: Message) -> None:
            self.log.append((topic, msg))
            real(topic, msg)

        node.publisher.send = send  # type: ignore[method-assign]

    def count(self) -> Counter[bytes]:
        return Counter(t for t, _ in self.log)

    def of(self, topic: bytes) -> list[Message]:
        return [m for t, m in self.log if t == topic]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[EngineNode, FakeClock]]:
    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    clock = FakeClock()
    n = EngineNode(_cfg(SYMBOLS), tmp_path / "book.sqlite", ends, clock=clock, history=_NoHistory(), context=ctx)
    try:
        yield n, clock
    finally:
        n.close()
        ctx.term()


def _run(n: EngineNode, clock: FakeClock, seconds: float, seq: dict[str, int]) -> None:
    """Every pair ticks every 20 ms and the loop's timers run after each round, for ``seconds``."""
    for _ in range(int(seconds * 50)):
        clock.advance(20)
        for i, sym in enumerate(SYMBOLS):
            seq[sym] = seq.get(sym, 0) + 1
            p = 100.0 + i + (seq[sym] % 7) * 0.01  # every tick moves the price: every pair is dirty
            n.on_message(sym.encode(), encode_tick_fields(seq[sym], clock.ms, 0, p, p + 0.01, p))
        n.tick_timers()


def test_only_watched_pairs_get_their_fast_state_and_every_pair_gets_one_a_second(
    node: tuple[EngineNode, FakeClock],
) -> None:
    n, clock = node
    sent = _Sent(n)
    seq: dict[str, int] = {}
    watched, other = SYMBOLS[1], SYMBOLS[4]
    n.publisher.on_subscription(b"\x01" + TOPIC_PAIR)  # a console: the roll-call ...
    n.publisher.on_subscription(b"\x01" + view_topic(watched))  # ... and one pane in view
    _run(n, clock, 0.5, seq)  # the roll-call's first round (its phases spread over a second)
    sent.log.clear()
    _run(n, clock, 5.0, seq)
    c = sent.count()
    assert n.publisher.watched == {watched} and n.counters()["watched_pairs"] == 1
    assert 40 <= c[view_topic(watched)] <= 51  # 10 Hz, every change (a tick each 20 ms)
    assert c[view_topic(other)] == 0  # nobody shows it: no fast state at all
    rollcall = Counter(m.symbol for m in sent.of(TOPIC_PAIR))  # type: ignore[attr-defined]
    assert set(rollcall) == set(SYMBOLS)
    assert all(4 <= k <= 5 for k in rollcall.values()), rollcall  # at most once a second, each
    assert all(m.closes is None for m in sent.of(TOPIC_PAIR))  # type: ignore[attr-defined]

    # The console scrolls: the other pair in view, the first one out.
    n.publisher.on_subscription(b"\x00" + view_topic(watched))
    n.publisher.on_subscription(b"\x01" + view_topic(other))
    sent.log.clear()
    _run(n, clock, 0.02, seq)
    first = sent.of(view_topic(other))
    assert len(first) == 1 and first[0].closes  # type: ignore[attr-defined]  # at once, sparkline too
    _run(n, clock, 2.0, seq)
    c = sent.count()
    assert c[view_topic(watched)] == 0 and c[view_topic(other)] >= 16
    assert n.publisher.watched == {other}


def test_a_mode_change_goes_out_on_the_roll_call_at_once(node: tuple[EngineNode, FakeClock]) -> None:
    """The daemon and off-screen panes live on ``pair``: what the operator acts on does not wait
    for the pair's second."""
    n, clock = node
    sent = _Sent(n)
    seq: dict[str, int] = {}
    _run(n, clock, 1.5, seq)
    sym = SYMBOLS[2]
    sent.log.clear()
    ack = n.handle({"id": "1", "cmd": "pause", "symbol": sym})
    assert ack.ok
    _run(n, clock, 0.06, seq)  # within one scan of the roll-call
    mine = [m for m in sent.of(TOPIC_PAIR) if m.symbol == sym]  # type: ignore[attr-defined]
    assert mine and mine[0].mode == "PAUSED"  # type: ignore[attr-defined]


def test_a_prefix_subscription_watches_every_pair_it_covers(node: tuple[EngineNode, FakeClock]) -> None:
    """b"" (a tool that takes everything) watches every pair; ``view:C00`` the pairs it covers; a
    full topic only its pair (``view:C001/USDT`` is not a prefix of another one here)."""
    n, clock = node
    pub = n.publisher
    seq: dict[str, int] = {}
    for frame, want in (
        (b"\x01", set(SYMBOLS)),
        (b"\x00", set()),
        (b"\x01view:C00", set(SYMBOLS)),
        (b"\x00view:C00", set()),
        (b"\x01view:C001/USDT", {"C001/USDT"}),
        (b"\x01view:NOPE/USDT", {"C001/USDT"}),
        (b"\x07junk", {"C001/USDT"}),  # not a subscription frame: ignored
        (b"", {"C001/USDT"}),
    ):
        pub.on_subscription(frame)
        _run(n, clock, 0.02, seq)
        assert pub.watched == want, frame


class _CountingStats(dict):  # type: ignore[type-arg]
    """The node's per-pair stats, counting how many pairs a roll-call scan looks up."""

    looked = 0

    def __getitem__(self, key: str) -> object:
        self.looked += 1
        return super().__getitem__(key)


def test_a_roll_call_scan_costs_what_it_sends_not_the_number_of_pairs(
    node: tuple[EngineNode, FakeClock],
) -> None:
    """Between refreshes, with no event, a scan looks at no pair at all (at 1,000 pairs the scan of
    every pair's signature, 20 times a second, cost more than the messages it sent)."""
    n, clock = node
    seq: dict[str, int] = {}
    _run(n, clock, 1.5, seq)  # every pair out once, phases spread
    pub = n.publisher
    stats = _CountingStats(n.stats)
    now = clock.monotonic()
    pub._roll_call(n.core, stats, now)  # whatever is due now goes out ...
    due = min(st.last_publish for st in n.stats.values()) + 1.0  # ... and the next refresh is later
    assert due > now
    stats.looked = 0
    sent0 = pub.sent
    pub._roll_call(n.core, stats, now + (due - now) / 3)  # nothing due, nothing changed
    assert stats.looked == 0 and pub.sent == sent0
    # an event names a pair: only that one is looked at, and it goes out only if it changed
    sym = SYMBOLS[3]
    pub._rc_touched.add(sym)
    pub._roll_call(n.core, stats, now + 2 * (due - now) / 3)
    assert stats.looked == 1 and pub.sent == sent0
    from engine.core.models import PairMode

    n.core.pairs[sym].mode = PairMode.PAUSED  # named by the next event: it changed, so it goes out
    pub._rc_touched.add(sym)
    stats.looked = 0
    pub._roll_call(n.core, stats, now + 5 * (due - now) / 6)
    assert stats.looked == 1 and pub.sent == sent0 + 1


def test_a_change_no_event_names_still_goes_out_with_the_pair_s_next_refresh(
    node: tuple[EngineNode, FakeClock],
) -> None:
    """The fast path follows the core's events; anything else that changes what the operator acts
    on (here a mode set behind the commands' back) rides on the pair's refresh, within a second."""
    n, clock = node
    sent = _Sent(n)
    seq: dict[str, int] = {}
    _run(n, clock, 1.5, seq)
    sym = SYMBOLS[0]
    from engine.core.models import PairMode

    n.core.pairs[sym].mode = PairMode.PAUSED  # no ModesChanged
    sent.log.clear()
    _run(n, clock, 1.02, seq)
    mine = [m for m in sent.of(TOPIC_PAIR) if m.symbol == sym]  # type: ignore[attr-defined]
    assert len(mine) == 1 and mine[0].mode == "PAUSED"  # type: ignore[attr-defined]


def test_the_roll_call_follows_pairs_added_and_removed(node: tuple[EngineNode, FakeClock]) -> None:
    """A reload changes the core's pairs: a removed one is no longer called, an added one is at
    once (here the pairs dict is edited as the reload leaves it)."""
    n, clock = node
    sent = _Sent(n)
    seq: dict[str, int] = {}
    _run(n, clock, 1.5, seq)
    gone = SYMBOLS[5]
    ps = n.core.pairs.pop(gone)
    sent.log.clear()
    _run(n, clock, 2.0, seq)
    called = Counter(m.symbol for m in sent.of(TOPIC_PAIR))  # type: ignore[attr-defined]
    assert gone not in called and set(called) == set(SYMBOLS[:5])
    n.core.pairs[gone] = ps  # back, as a pair never called: due at once
    n.stats[gone].last_publish = -1e9
    sent.log.clear()
    _run(n, clock, 0.06, seq)
    assert [m.symbol for m in sent.of(TOPIC_PAIR)].count(gone) == 1  # type: ignore[attr-defined]


def test_above_its_budget_the_roll_call_calls_each_pair_less_often_and_keeps_its_rate(tmp_path: Path) -> None:
    """750 pairs against a budget of 500 states a second: each pair once every 1.5 s, phases
    spread over the period, so no second carries more than the budget (a thousand pairs cost the
    engine 500 states a second, not 1,000)."""
    from engine.wire.liveness import ROLLCALL_PER_S, pair_refresh_s

    symbols = [f"C{i:03d}/USDT" for i in range(750)]
    period = pair_refresh_s(len(symbols))
    assert period == 1.5
    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    clock = FakeClock()
    n = EngineNode(_cfg(symbols), tmp_path / "book.sqlite", ends, clock=clock, history=_NoHistory(), context=ctx)
    try:
        sent = _Sent(n)
        pub = n.publisher
        t0 = clock.monotonic()
        times = [t0 + k * 0.05 for k in range(int(9.0 / 0.05))]  # a scan every 50 ms for 9 s
        for t in times:
            pub._roll_call(n.core, n.stats, t)
            if t < t0 + 3.0:
                sent.log.clear()  # the first round (every pair at once) and one more period
        calls = Counter(m.symbol for m in sent.of(TOPIC_PAIR))  # type: ignore[attr-defined]
        # 6 s after the first 3 s: four periods
        assert set(calls) == set(symbols) and set(calls.values()) <= {4, 5}, Counter(calls.values())
        assert sum(calls.values()) <= 6.0 * ROLLCALL_PER_S * 1.02
        # the budget holds second by second: the states the scans of any one second send
        per_scan = []
        for t in times:
            before = len(sent.log)
            pub._roll_call(n.core, n.stats, t + 9.0)
            per_scan.append(len(sent.log) - before)
        assert max(sum(per_scan[k : k + 20]) for k in range(len(per_scan) - 20)) <= ROLLCALL_PER_S * 1.05
    finally:
        n.close()
        ctx.term()
