"""A reload's added pair warms off the engine loop (issue 17): its history is asked on a worker
thread (``engine.node.warmup.ask_history``), so while the feed is slow to answer, the ``reload``
command returns at once and the other pairs' ticks are handled and decided; once the answer is
in, a loop turn warms the new pair. In process: a real EngineNode on a real SQLite file and a
real run copy, its sockets never bound; the history source blocks on BNB/USDT until released."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from engine.core.candles import Candle
from engine.core.config import read_safe_list
from engine.node.reload_run import PENDING_NAME, digest
from engine.node.service import Endpoints, EngineNode
from feed.wire import Tick, encode_tick
from tests.core_harness import FakeClock

BTC, BNB = "BTC/USDT", "BNB/USDT"
MIN = 60_000
PAIR = "{tier: STABLE, strategy: momentum, max_position_size_usd: 500}"
BASE = f"""version: 1
portfolio: {{capital_usd: 10000, correlation_groups: []}}
engine: {{timeframe: 1m, history_candles: 40}}
pairs:
  {BTC}: {PAIR}
  ETH/USDT: {PAIR}
"""


class SlowHistory:
    """Answers at once, except for BNB/USDT: it waits for ``release``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.release = threading.Event()
        self.asked: list[str] = []

    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        self.asked.append(symbol)
        if symbol == BNB:
            assert self.release.wait(30)
        start = (self.clock.ms // MIN - limit) * MIN
        return [Candle(start + i * MIN, 100.0 + i % 7, 101.0 + i % 7, 99.0 + i % 7, 100.5 + i % 7, 10.0, 5)
                for i in range(limit)]  # fmt: skip


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[EngineNode, FakeClock, SlowHistory, Path]]:
    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    run_copy = tmp_path / "safe_list.yaml"
    run_copy.write_text(BASE, encoding="utf-8")
    _, cfg = read_safe_list(run_copy)
    clock = FakeClock()
    history = SlowHistory(clock)
    n = EngineNode(cfg, tmp_path / "book.sqlite", ends, clock=clock, history=history, context=ctx,
                   config_path=run_copy)  # fmt: skip
    try:
        yield n, clock, history, run_copy
    finally:
        history.release.set()
        n.close()
        ctx.term()


def test_other_pairs_are_decided_while_the_added_pair_waits_for_its_history(
    node: tuple[EngineNode, FakeClock, SlowHistory, Path],
) -> None:
    n, clock, history, run_copy = node
    text = BASE + f"  {BNB}: {PAIR}\n"
    run_copy.with_name(PENDING_NAME).write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    ack = n._reload.handle({"id": "r1", "cmd": "reload", "digest": digest(text)})
    blocked = time.monotonic() - t0
    assert ack.ok, ack.message
    assert blocked < 1.0, f"the reload command held the loop {blocked:.2f} s"  # BNB's history never came
    assert BNB in n.core.pairs and BNB in n._reload.warming
    # BTC trades on through several candle closes while BNB's history is still being waited for
    decided_before = n.core.pairs[BTC].candles.last_closed
    for seq in range(1, 200):
        clock.advance(1_000)
        px = 60_000.0 + seq
        n.on_message(BTC.encode(), encode_tick(Tick(BTC, seq, clock.ms, 0, px, px + 1.0, px + 0.5, 1.0, 1e6)))
        n.tick_timers()
    btc = n.core.pairs[BTC]
    assert btc.ticks == 199 and btc.candles.last_closed is not None and btc.candles.last_closed != decided_before
    assert btc.signal is not None  # decided on its closed candles meanwhile
    assert BNB in n._reload.warming and n.core.pairs[BNB].candles.last_closed is None
    history.release.set()  # the slow answer comes in: a loop turn warms BNB
    end = time.monotonic() + 10
    while n._reload.warming and time.monotonic() < end:
        n.tick_timers()
        time.sleep(0.01)
    assert not n._reload.warming and history.asked.count(BNB) == 1
    assert n.core.pairs[BNB].candles.last_closed is not None  # warmed on its history
