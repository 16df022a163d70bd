"""A running feed streams a pair added by a reload (issue 17, point 4): on the Binance source's
websocket already open (one connection, one more SUBSCRIBE, through the real ccxt.pro against the
local Binance-protocol server), in the sim market from the next step with no tick lost on the
other pairs (the real ``python -m feed`` process, its history socket's ``subscribe`` op), and
refused with a reason by a source that cannot (replay). Its ``unsubscribe`` op (the engine let a
removed pair go) stops a pair's stream on both sources, the others' ticks going on gap-free.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from feed.errors import HistoryRefused
from feed.history import HistoryServer, request_history, request_subscribe, request_unsubscribe
from feed.sim import SimSource
from feed.wire import TOPIC_STATUS, decode_tick, message_parts
from tests.test_binance_source import RecordingPublisher, make_source, running, server, wait_until  # noqa: F401

pytestmark = pytest.mark.timeout(30)


async def test_binance_streams_an_added_pair_on_the_same_socket(server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    source = make_source(server, ["BTC/USDT", "ETH/USDT"])
    pub = RecordingPublisher()
    async with running(source, pub):
        await server.wait_subscribed(["BTC/USDT", "ETH/USDT"])
        assert await source.add_symbols(["BNB/USDT"]) == ["BNB/USDT"]
        await server.tick("BTC/USDT")  # wakes the loop: the next watch_tickers carries BNB
        await server.wait_subscribed(["BTC/USDT", "ETH/USDT", "BNB/USDT"])
        await server.tick("BNB/USDT")
        await wait_until(lambda: pub.ticks_of("BNB/USDT") > 0, "a BNB tick")
        await server.tick("ETH/USDT")
        await wait_until(lambda: pub.ticks_of("ETH/USDT") > 0, "an ETH tick after it")
        assert server.connections_total == 1  # the same socket: no reconnect
        assert len(server.subscribe_requests) == 2
        assert "bnbusdt@ticker" in server.subscribe_requests[1]
        with pytest.raises(ValueError, match="not Binance spot markets: NOPE/USDT"):
            await source.add_symbols(["NOPE/USDT"])
        # unsubscribed (the engine let ETH go): its ticker events are no longer published
        assert await source.remove_symbols(["ETH/USDT"]) == ["ETH/USDT"] and source.symbols == ["BTC/USDT", "BNB/USDT"]
        eth, btc = pub.ticks_of("ETH/USDT"), pub.ticks_of("BTC/USDT")
        await server.tick("ETH/USDT")
        await server.tick("BTC/USDT")
        await wait_until(lambda: pub.ticks_of("BTC/USDT") > btc, "a BTC tick after ETH's")
        assert pub.ticks_of("ETH/USDT") == eth and server.connections_total == 1


class _NoAdd:
    name = "replay"
    symbols = ("BTC/USDT",)


def test_sim_history_socket_adds_a_pair_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    async def go() -> None:
        src = SimSource(["BTC/USDT", "ETH/USDT"], seed=3)
        stop = asyncio.Event()
        hs = HistoryServer(f"ipc://{tmp_path}/h.rep", src)
        task = asyncio.create_task(hs.run(stop))
        try:
            got = await asyncio.to_thread(request_subscribe, hs.endpoint, ["BNB/USDT"], {"BNB/USDT": "VOLATILE"})
            assert got == ["BTC/USDT", "ETH/USDT", "BNB/USDT"]
            rows = await asyncio.to_thread(request_history, hs.endpoint, "BNB/USDT", 60, 300)
            assert len(rows) == 300 and 400 < rows[-1][4] < 800
            with pytest.raises(HistoryRefused, match="expected a list"):
                await asyncio.to_thread(request_subscribe, hs.endpoint, [], None)
            got = await asyncio.to_thread(request_unsubscribe, hs.endpoint, ["ETH/USDT", "NOT/USDT"])
            assert got == ["BTC/USDT", "BNB/USDT"]  # a pair not streamed is no error
            got = await asyncio.to_thread(request_subscribe, hs.endpoint, ["ETH/USDT"], None)
            assert got == ["BTC/USDT", "BNB/USDT", "ETH/USDT"]  # streamed again on request
            with pytest.raises(HistoryRefused, match="expected a list"):
                await asyncio.to_thread(request_unsubscribe, hs.endpoint, [])
            hs.source = _NoAdd()  # type: ignore[assignment]  # as the replay source: it has none
            with pytest.raises(HistoryRefused, match="cannot add pairs while running"):
                await asyncio.to_thread(request_subscribe, hs.endpoint, ["XRP/USDT"], None)
            with pytest.raises(HistoryRefused, match="cannot drop pairs while running"):
                await asyncio.to_thread(request_unsubscribe, hs.endpoint, ["BTC/USDT"])
        finally:
            stop.set()
            await task
            await hs.close()

    asyncio.run(go())


def test_the_feed_process_adds_a_pair_without_losing_a_tick_of_the_others(tmp_path: Path) -> None:
    pub_ep, rep_ep = f"ipc://{tmp_path}/f.pub", f"ipc://{tmp_path}/f.rep"
    proc = subprocess.Popen(
        [sys.executable, "-m", "feed", "--source", "sim", "--symbols", "BTC/USDT,ETH/USDT", "--rate", "20",
         "--pub", pub_ep, "--rep", rep_ep],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for t in (b"BTC/USDT", b"ETH/USDT", b"BNB/USDT"):
        sub.setsockopt(zmq.SUBSCRIBE, t)
    sub.connect(pub_ep)
    seqs: dict[str, list[int]] = {}

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if sub.poll(50):
                topic, payload = message_parts(sub.recv_multipart())
                if topic == TOPIC_STATUS:
                    continue
                t = decode_tick(topic, payload)
                seqs.setdefault(t.symbol, []).append(t.seq)

    try:
        for _ in range(100):
            drain(0.1)
            if "BTC/USDT" in seqs:
                break
        assert request_subscribe(rep_ep, ["BNB/USDT"], {"BNB/USDT": "VOLATILE"}) == ["BTC/USDT", "ETH/USDT", "BNB/USDT"]
        drain(1.5)
        assert request_unsubscribe(rep_ep, ["BNB/USDT"]) == ["BTC/USDT", "ETH/USDT"]
        drain(0.3)  # what was published before the request
        bnb, btc = len(seqs["BNB/USDT"]), len(seqs["BTC/USDT"])
        drain(1.0)
    finally:
        proc.terminate()
        proc.wait(5)
        ctx.destroy(linger=0)
    assert len(seqs.get("BNB/USDT", [])) > 5 and seqs["BNB/USDT"][0] == 1
    assert len(seqs["BNB/USDT"]) == bnb and len(seqs["BTC/USDT"]) > btc  # BNB no longer streamed, BTC on
    for sym in ("BTC/USDT", "ETH/USDT"):  # no gap: every number from the first seen to the last
        s = seqs[sym]
        assert s == list(range(s[0], s[0] + len(s))), sym
