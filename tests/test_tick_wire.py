"""The tick on the wire, version 2 (issue 16): the engine node reads the positional array straight
into the core's tick path, still reads the version-1 map of a previous feed, and counts and drops
anything else. In process: a real EngineNode on a real SQLite file, its sockets never bound."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.node.service import Endpoints, EngineNode
from feed.wire import Tick, encode_tick, encode_tick_v1
from tests.core_harness import FakeClock

BTC, ETH = "BTC/USDT", "ETH/USDT"


class _NoHistory:
    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Candle]:
        return []


def _cfg() -> SafeList:
    pair = {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {BTC: pair, ETH: pair},
    })


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[EngineNode, FakeClock]]:
    ctx = zmq.Context()
    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    clock = FakeClock()
    n = EngineNode(_cfg(), tmp_path / "book.sqlite", ends, clock=clock, history=_NoHistory(), context=ctx)
    try:
        yield n, clock
    finally:
        n.close()
        ctx.term()


def test_old_format_ticks_still_decode_beside_new_ones(node: tuple[EngineNode, FakeClock]) -> None:
    """A feed of the previous release (version-1 maps) and a new one (version-2 arrays) on one
    pair: every tick is used, in order, with one sequence, and the quote is the last one's."""
    n, clock = node
    for seq in range(1, 9):
        clock.advance(500)
        bid = 60_000.0 + seq
        tick = Tick(BTC, seq, clock.ms, 0, bid, bid + 1.0, bid + 0.5, 10.0 * seq, 1e6)
        n.on_message(BTC.encode(), (encode_tick_v1 if seq % 2 else encode_tick)(tick))
    ps = n.core.pairs[BTC]
    st = n.stats[BTC]
    assert (n.ticks_total, n.bad_total, st.gaps, st.bad, st.expected_seq) == (8, 0, 0, 0, 9)
    assert (ps.bid, ps.ask, ps.last, ps.ticks) == (60_008.0, 60_009.0, 60_008.5, 8)


def test_a_bad_array_is_counted_and_dropped_and_the_next_good_tick_is_used(
    node: tuple[EngineNode, FakeClock],
) -> None:
    n, clock = node
    clock.advance(500)
    good = [2, 1, clock.ms, 0, 100.0, 100.5, 100.25, 1.0, 1.0]
    bad_arrays = [
        good[:5],  # too short
        [3, *good[1:]],  # a version this engine does not know
        [2, 1, clock.ms, 0, math.nan, 100.5, 100.25, 1.0, 1.0],
        [2, 1, clock.ms, 0, 101.0, 100.5, 100.25, 1.0, 1.0],  # crossed
        [2, "1", clock.ms, 0, 100.0, 100.5, 100.25, 1.0, 1.0],
        [2, 1, clock.ms, 0, 100.0, 100.5, 100.25, -1.0, 1.0],
    ]
    for arr in bad_arrays:
        n.on_message(ETH.encode(), msgpack.packb(arr))
    n.on_message(ETH.encode(), b"\xc1garbage")
    assert (n.bad_total, n.stats[ETH].bad, n.ticks_total) == (len(bad_arrays) + 1, len(bad_arrays) + 1, 0)
    n.on_message(ETH.encode(), msgpack.packb(good))
    assert n.ticks_total == 1 and n.core.pairs[ETH].bid == 100.0
    # an integer price is a legal (named-check) value in the array as in the map
    clock.advance(500)
    n.on_message(ETH.encode(), msgpack.packb([2, 2, clock.ms, 0, 100, 101, 100, 0, 0]))
    assert n.ticks_total == 2 and n.core.pairs[ETH].ask == 101.0 and type(n.core.pairs[ETH].ask) is float
