"""A replay never drops: flow control at the publisher's high-water mark, the tail visible in the
status (``last_seq``, ``finished``), bounded memory. Real feed process, ipc sockets, temp dirs."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from feed.publisher import TickPublisher
from feed.wire import (
    STATUS_STALE,
    TOPIC_HEARTBEAT,
    TOPIC_STATUS,
    decode_map,
    decode_tick,
    message_parts,
)

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
CANDLES = 20_000  # per pair
WARMUP = 500  # candles per pair served as history, not replayed
TICKS_PER_PAIR = 4 * (CANDLES - WARMUP)
DEADLINE_S = 40.0  # generous: the machine is shared with other test runs
# What the feed process may hold above a bare interpreter with the same imports (python, zmq,
# numpy, pandas, pyarrow: ~110 MB here) for this file: its compact columns (58,500 replayed
# candles x 66 B + 234,000 x 4 B of time order: ~5 MB), the loader's transient copies (about
# twice that, plus one 16k-row pandas chunk: ~20 MB) and the socket's queue (10,000 messages
# of ~250 B: ~3 MB), x2 for the allocator. Before the compact form it held 136 MB more.
RSS_BOUND_KB = 60_000
PAUSE_S = 3.0  # the subscriber starts reading this late; heartbeats are 1 s apart
# Subscribed in the engine's way: its symbols and _status, not _hb.
TICK_TOPICS = [p.encode() for p in PAIRS] + [TOPIC_STATUS]


def write_candles(path: Path, n: int = CANDLES) -> Path:
    """3 x n one-minute candles, a random walk per pair, rows interleaved in time order."""
    rng = np.random.default_rng(11)
    ts = 1_600_000_020_000 - 1_600_000_020_000 % 60_000 + np.arange(n, dtype=np.int64) * 60_000
    blocks = []
    for k, base in enumerate((30_000.0, 2_000.0, 50.0)):
        c = base * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
        o = np.concatenate([[base], c[:-1]])
        h = np.maximum(o, c) * 1.0004
        lo = np.minimum(o, c) * 0.9996
        v = rng.uniform(10, 200, n)
        blocks.append(np.column_stack([ts, np.full(n, k), o, h, lo, c, v]))
    rows = np.stack(blocks, axis=1).reshape(-1, 7)
    with path.open("w") as f:
        f.write("ts,symbol,open,high,low,close,volume\n")
        for r in rows.tolist():
            f.write(f"{int(r[0])},{PAIRS[int(r[1])]},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r},{r[6]!r}\n")
    return path


def vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


class Proc:
    """A child process, killed (and reaped) at the end whatever happens."""

    def __init__(self, argv: list[str], **kw: Any) -> None:
        self.p = subprocess.Popen(argv, cwd=ROOT, env=env(), **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout)
        return self.p.returncode


def sub_socket(endpoint: str, topics: list[bytes], rcvhwm: int = 1000) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    for t in topics:
        sock.setsockopt(zmq.SUBSCRIBE, t)
    sock.connect(endpoint)
    return sock


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop(signal.SIGKILL)


class TestFeedProcess:
    def test_slow_late_subscriber_gets_every_tick_and_the_final_seq(
        self, feed_ipc_dir: Path, procs: list[Proc]
    ) -> None:
        """3 x 20k candles at --speed 0 into a subscriber that starts reading 3 s late (as an
        engine warming up) and then sleeps between receives: every tick arrives, in order, no
        gap; the final status names the last sequence numbers; heartbeats keep flowing to a
        heartbeat subscriber while the tick subscriber holds the replay back."""
        csv = write_candles(feed_ipc_dir / "c.csv")
        pub, rep = f"ipc://{feed_ipc_dir}/feed.pub", f"ipc://{feed_ipc_dir}/feed.rep"
        log = feed_ipc_dir / "feed.log"
        ticks = sub_socket(pub, TICK_TOPICS)  # connected before the feed binds: nothing missed
        beats = sub_socket(pub, [TOPIC_HEARTBEAT])
        # A bare interpreter with the feed's imports, beside it: the memory baseline.
        baseline = Proc([sys.executable, "-c", (
            "import zmq, zmq.asyncio, numpy, pandas, feed.__main__, feed.publisher, feed.history, "
            "feed.replay; print(next(l.split()[1] for l in open('/proc/self/status') "
            "if l.startswith('VmHWM:')))")], stdout=subprocess.PIPE)
        procs.append(baseline)
        feed = Proc([sys.executable, "-m", "feed", "--source", "replay", "--replay-file", str(csv),
                     "--symbols", ",".join(PAIRS), "--speed", "0", "--warmup", str(WARMUP),
                     "--pub", pub, "--rep", rep, "--log-file", str(log)])
        procs.append(feed)
        last = dict.fromkeys(PAIRS, 0)
        last_te = 0
        out_of_order: list[Any] = []
        hb: list[dict[str, Any]] = []
        final: dict[str, Any] | None = None
        received = 0
        try:
            deadline = time.monotonic() + DEADLINE_S
            assert ticks.poll(int(DEADLINE_S * 1000)), "nothing from the feed"
            held_from = time.time_ns()
            time.sleep(PAUSE_S)  # late: the replay must wait, not drop
            held_to = time.time_ns()
            while final is None and time.monotonic() < deadline:
                while beats.poll(0):
                    hb.append(decode_map(beats.recv_multipart()[1]))
                if not ticks.poll(100):
                    continue
                topic, payload = message_parts(ticks.recv_multipart())
                if topic == TOPIC_STATUS:
                    status = decode_map(payload)
                    if status.get("finished"):
                        final = status
                    continue
                t = decode_tick(topic, payload)
                if t.seq != last[t.symbol] + 1 or t.ts_exchange < last_te:
                    out_of_order.append((t.symbol, t.seq, last[t.symbol], t.ts_exchange, last_te))
                last[t.symbol], last_te = t.seq, t.ts_exchange
                received += 1
                if received % 4_000 == 0:
                    time.sleep(0.01)  # slow: ~0.6 s of sleeps over the file
            while beats.poll(0):
                hb.append(decode_map(beats.recv_multipart()[1]))
            assert final is not None, f"no final status; got {received} ticks, last {last}"
            peak_kb = vm_hwm_kb(feed.p.pid)
        finally:
            ticks.close(linger=0)
            beats.close(linger=0)
        assert feed.stop() == 0
        base_out, _ = baseline.p.communicate(timeout=30)
        base_kb = int(base_out)

        assert not out_of_order, out_of_order[:5]
        assert last == dict.fromkeys(PAIRS, TICKS_PER_PAIR)
        assert received == 3 * TICKS_PER_PAIR
        assert final["state"] == STATUS_STALE and final["last_seq"] == last
        assert final["published"] == received
        text = log.read_text()
        waits = re.search(r"finished: (\d+) ticks published .* \((\d+) times\)", text)
        assert waits, text[-2000:]
        assert int(waits[1]) == received and int(waits[2]) > 0  # flow control did hold it back
        # Heartbeats went on while the tick subscriber held the replay (it takes no _hb): sent
        # during the hold, not queued behind it (their ts is the moment they left).
        seqs = [m["seq"] for m in hb]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 3
        assert len([m for m in hb if held_from <= m["ts"] <= held_to]) >= 2, (hb, held_from, held_to)
        gaps_s = [(b["ts"] - a["ts"]) / 1e9 for a, b in itertools.pairwise(hb)]
        assert max(gaps_s) < 2.0, gaps_s  # 1 s apart
        assert peak_kb - base_kb < RSS_BOUND_KB, (peak_kb, base_kb)


class TestPublisherNoDrop:
    """TickPublisher in-process: with nodrop a full subscriber refuses the send, nothing is lost."""

    async def test_refuses_at_the_high_water_mark_and_resends(self, feed_ipc_dir: Path) -> None:
        endpoint = f"ipc://{feed_ipc_dir}/pub"
        pub = TickPublisher(endpoint, "replay", hwm=50, symbols=["BTC/USDT", "ETH/USDT"], nodrop=True)
        sub = sub_socket(endpoint, [b"BTC/USDT", TOPIC_STATUS, TOPIC_HEARTBEAT], rcvhwm=50)
        try:
            stop = asyncio.Event()
            housekeeping = asyncio.create_task(pub.run(stop))
            assert await asyncio.wait_for(pub.wait_for_subscriber(stop), 20)
            stop.set()  # from here every send is explicit: the order on the wire is known
            await asyncio.wait_for(housekeeping, 5)
            while sub.poll(200):  # the status sent on subscribing
                sub.recv_multipart()
            assert pub.publish_tick("ETH/USDT", 1, 10.0, 10.1, 10.05)  # no subscriber: no wait
            sent = 0
            while pub.publish_tick("BTC/USDT", 1_000 + sent, 100.0, 100.5, 100.2):
                sent += 1
                assert sent < 200_000, "never refused"
            assert pub.refused == 1 and pub.published == sent + 1
            pub._publish_heartbeat()  # refused too: kept due, not lost
            pub.set_status(STATUS_STALE, "done")
            pub.mark_finished()
            assert pub._hb_due and pub._status_due
            wire: list[Any] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (wire and wire[-1][0] == "status"):
                if sub.poll(50):
                    topic, payload = message_parts(sub.recv_multipart())
                    if topic == TOPIC_STATUS:
                        wire.append(("status", decode_map(payload)))
                    elif topic == TOPIC_HEARTBEAT:
                        wire.append(("hb", decode_map(payload)))
                    else:
                        wire.append(("tick", decode_tick(topic, payload).seq))
                elif pub.published == sent + 1:  # read: room again for the refused tick
                    pub.publish_tick("BTC/USDT", 1_000 + sent, 100.0, 100.5, 100.2)
                else:
                    pub.send_due()
        finally:
            pub.close()
            sub.close(linger=0)
        assert [x[1] for x in wire[:-2]] == list(range(1, sent + 2))  # every tick once, in order
        assert wire[-2][0] == "hb"
        status = wire[-1][1]
        assert status["state"] == STATUS_STALE and status["finished"] is True
        assert status["last_seq"] == {"BTC/USDT": sent + 1, "ETH/USDT": 1}
        assert status["published"] == sent + 2

    async def test_live_publisher_never_refuses(self, feed_ipc_dir: Path) -> None:
        endpoint = f"ipc://{feed_ipc_dir}/pub"
        pub = TickPublisher(endpoint, "sim", hwm=50, symbols=["BTC/USDT"])
        sub = sub_socket(endpoint, [b""], rcvhwm=50)
        stop = asyncio.Event()
        housekeeping = asyncio.create_task(pub.run(stop))
        try:
            assert await asyncio.wait_for(pub.wait_for_subscriber(stop), 20)
            assert all(pub.publish_tick("BTC/USDT", 1_000 + i, 100.0, 100.5, 100.2)
                       for i in range(20_000))  # a slow subscriber loses ticks; never waits
            assert pub.refused == 0 and pub.published == 20_000
            pub.mark_finished()
            assert pub.last_seq() == {"BTC/USDT": 20_000}
        finally:
            stop.set()
            await asyncio.wait_for(housekeeping, 5)
            pub.close()
            sub.close(linger=0)
