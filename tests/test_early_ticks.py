"""A pair is priced on screen before it is warm, and never decides before it is (issue 16).

In process: a real EngineNode (real SQLite, its sockets bound on ipc), a real PUB socket as the
feed, the warm-up on its own thread as in the engine process, one pair's history held back by
the test. Its live ticks put a price on the engine's ``pair`` topic while it waits; the core
sees none of them (no tick counted, no candle, no decision) until the run loop replays them,
once each, in order, after the history: the candles run on without a double or a hole."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.node.service import Endpoints, EngineNode
from engine.wire.commands import TOPIC_PAIR
from feed.wire import TICK_SEP, encode_tick_fields, tick_fields
from tests.procs import Subscriber

pytestmark = pytest.mark.timeout(60)

FAST, SLOW = "AAA/USDT", "BBB/USDT"
TF_MS = 60_000


class _HeldHistory:
    """60 flat one-minute candles at 100, ending with the last closed minute; SLOW's only
    once the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        if symbol == SLOW:
            self.gate.wait(30.0)
        now = int(time.time() * 1000)
        last = now - now % TF_MS - TF_MS
        return [Candle(last - k * TF_MS, 100.0, 100.02, 99.98, 100.0, 1.0) for k in range(59, -1, -1)]


def _cfg() -> SafeList:
    pair = {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500}
    return SafeList.model_validate({
        "version": 1,
        "portfolio": {"capital_usd": 10000},
        "engine": {"timeframe": "1m", "history_candles": 60},
        "pairs": {FAST: pair, SLOW: pair},
    })


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[EngineNode, _HeldHistory, zmq.Socket[bytes], Subscriber]]:
    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    feed = ctx.socket(zmq.PUB)
    feed.setsockopt(zmq.LINGER, 0)
    feed.bind(ends.feed_pub)
    history = _HeldHistory()
    node = EngineNode(_cfg(), tmp_path / "book.sqlite", ends, history=history, context=ctx)
    node.bind()
    sub = Subscriber(ends.pub, [TOPIC_PAIR])
    try:
        yield node, history, feed, sub
    finally:
        history.gate.set()
        sub.close()
        node.close()
        feed.close(0)
        ctx.term()


def test_a_pair_is_priced_before_it_is_warm_and_decides_only_after(
    rig: tuple[EngineNode, _HeldHistory, zmq.Socket[bytes], Subscriber],
) -> None:
    node, history, feed, sub = rig
    stop = threading.Event()
    warming = threading.Thread(target=node.warm_up, args=(stop.is_set,), daemon=True)
    warming.start()
    seq = 0
    priced: float | None = None
    deadline = time.monotonic() + 20.0
    while priced is None and time.monotonic() < deadline:  # SLOW's history is held back
        seq += 1
        px = 100.0 + (seq % 20) * 0.01
        feed.send(SLOW.encode() + TICK_SEP + encode_tick_fields(seq, int(time.time() * 1000), 0, px, px + 0.01, px))
        got = sub.recv(0.05)
        if got is not None and got[1].get("symbol") == SLOW and (got[1].get("last") or 100.0) != 100.0:
            priced = got[1]["last"]
    assert priced is not None, "the held-back pair never showed a live price during its warm-up"
    assert warming.is_alive() and node.phase == "warming"

    history.gate.set()  # its history arrives: the warm-up ends
    warming.join(20.0)
    assert not warming.is_alive() and node.phase == "running"
    ps = node.core.pairs[SLOW]
    early = node.early_ticks
    assert early is not None and early.shown > 0
    kept = sum(1 for topic, _ in early.kept if topic == SLOW.encode())
    assert kept > 0
    # Warm now, but nothing of its live ticks has reached the core yet: nothing to decide on.
    assert ps.ticks == 0 and node.ticks_total == 0 and ps.candles.forming is None
    assert ps.decision is None and node.core.decisions_total == 0 and not node.core.portfolio.positions.get(SLOW)
    newest = [tick_fields(t, p)[6] for t, p in early.kept if t == SLOW.encode()][-1]
    assert ps.last == newest != 100.0  # still shown: the newest live price, not the history's close

    node.run(lambda: True)  # replays what came during the warm-up, then stops
    assert node.early_ticks is None
    assert ps.ticks == kept and node.ticks_total == kept  # each early tick seen once
    assert node.stats[SLOW].gaps == 0 and ps.candles.late_ticks == 0
    times = [c.ts for c in ps.candles.closed] + [ps.candles.forming.ts]  # type: ignore[union-attr]
    assert all(b - a == TF_MS for a, b in itertools.pairwise(times)), times  # no double, no hole
    assert sum(c.ticks for c in ps.candles.closed) + ps.candles.forming.ticks == kept  # type: ignore[union-attr]
