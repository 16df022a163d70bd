"""The feed process (``python -m feed``) for real: subprocess, ipc sockets, signals, exit codes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from feed.errors import HistoryRefused
from feed.history import request_history, request_info
from feed.wire import (
    STATUS_CONNECTED,
    STATUS_STOPPED,
    TOPIC_HEARTBEAT,
    TOPIC_STATUS,
    WireError,
    decode_map,
    decode_tick,
    encode_map,
    message_parts,
)

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
DEADLINE_S = 20.0  # generous: the machine is shared with other test runs


@dataclass
class Feed:
    proc: subprocess.Popen[bytes]
    pub: str
    rep: str
    log: Path
    sub: zmq.Socket[Any]
    started: float
    ticks: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    first_tick_at: float | None = None

    def pump(self, until: Any, timeout: float = DEADLINE_S) -> None:
        """Read the PUB socket until ``until(self)`` is true or the deadline passes."""
        deadline = time.monotonic() + timeout
        while not until(self) and time.monotonic() < deadline:
            if not self.sub.poll(100):
                continue
            while True:
                try:
                    topic, payload = message_parts(self.sub.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
                if topic == TOPIC_HEARTBEAT:
                    self.heartbeats.append(decode_map(payload))
                elif topic == TOPIC_STATUS:
                    self.statuses.append(decode_map(payload))
                else:
                    if self.first_tick_at is None:
                        self.first_tick_at = time.monotonic()
                    tick = decode_tick(topic, payload)  # raises on anything malformed
                    self.ticks[tick.symbol].append(tick)


def feed_argv(pub: str, rep: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "feed", "--pub", pub, "--rep", rep, *extra]


@contextmanager
def running_feed(ipc_dir: Path, *extra: str, source: str = "sim") -> Iterator[Feed]:
    pub, rep = f"ipc://{ipc_dir}/feed.pub", f"ipc://{ipc_dir}/feed.rep"
    log = ipc_dir / "feed.log"
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub)  # before the feed binds: no slow-joiner loss of the first ticks
    argv = feed_argv(pub, rep, "--source", source, "--log-file", str(log), *extra)
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feed = Feed(proc, pub, rep, log, sub, started)
    try:
        yield feed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
        sub.close(linger=0)


def has_ticks(n: int) -> Any:
    return lambda f: all(len(f.ticks[s]) >= n for s in PAIRS)


class TestStreaming:
    """Decodable ticks for every pair with contiguous sequence numbers, heartbeats and status."""

    def test_ticks_heartbeats_status(self, feed_ipc_dir: Path) -> None:
        with running_feed(feed_ipc_dir, "--symbols", ",".join(PAIRS), "--rate", "50", "--seed", "3") as feed:
            # a heartbeat counts what was published when it was sent: wait for one sent after
            # the 180 ticks (under load the ticks can arrive before the beat that counts them)
            feed.pump(
                lambda f: has_ticks(60)(f)
                and len(f.heartbeats) >= 2
                and f.heartbeats[-1]["published"] >= 180
                and f.statuses
            )
            for sym in PAIRS:
                ticks = feed.ticks[sym]
                assert len(ticks) >= 60, f"{sym}: {len(ticks)} ticks"
                seqs = [t.seq for t in ticks]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"{sym}: gap in seq"
                assert all(0 < t.bid < t.ask for t in ticks)
                assert all(abs(t.ts_recv / 1e9 - time.time()) < 60 for t in ticks)
            assert len(feed.heartbeats) >= 2
            hb = feed.heartbeats[-1]
            assert hb["kind"] == "feed" and hb["source"] == "sim" and hb["pid"] == feed.proc.pid
            assert hb["published"] >= 180 and type(hb["ts"]) is int
            hb_seqs = [h["seq"] for h in feed.heartbeats]  # the first may precede our connection
            assert hb_seqs == list(range(hb_seqs[0], hb_seqs[0] + len(hb_seqs)))
            status = feed.statuses[-1]
            assert status["state"] == STATUS_CONNECTED and status["source"] == "sim"
            assert status["last_error"] is None and status["reconnects"] == 0
            assert set(status["symbols"]) <= set(PAIRS)
            assert feed.first_tick_at is not None
            # Start-up to first tick, measured from spawn (the brief's target is < 0.5 s idle).
            assert feed.first_tick_at - feed.started < 5.0
        log = feed.log.read_text()
        assert "Streaming 3 symbols: BTC/USDT, ETH/USDT, SOL/USDT" in log
        assert "Published 100 total messages (BTC/USDT: " in log

    def test_late_subscriber_gets_status_at_once(self, feed_ipc_dir: Path) -> None:
        with running_feed(feed_ipc_dir, "--rate", "5") as feed:
            feed.pump(lambda f: f.statuses)
            late = zmq.Context.instance().socket(zmq.SUB)
            late.setsockopt(zmq.LINGER, 0)
            late.setsockopt(zmq.SUBSCRIBE, TOPIC_STATUS)
            late.connect(feed.pub)
            try:
                # Periodic status is every 5 s; a new subscriber is answered within ~0.1 s.
                assert late.poll(3000), "no status for a late subscriber"
                topic, payload = message_parts(late.recv_multipart())
                assert topic == TOPIC_STATUS and decode_map(payload)["state"] == STATUS_CONNECTED
            finally:
                late.close(linger=0)

    def test_replay_source(self, feed_ipc_dir: Path) -> None:
        csv = feed_ipc_dir / "c.csv"
        lines = ["ts,symbol,open,high,low,close,volume"]
        lines += [f"{1_600_000_000 + 60 * i},BTC/USDT,100,101,99,100.5,3" for i in range(40)]
        csv.write_text("\n".join(lines) + "\n")
        with running_feed(feed_ipc_dir, "--symbols", "BTC/USDT", "--replay-file", str(csv),
                          "--speed", "0", "--warmup", "10", source="replay") as feed:
            feed.pump(lambda f: len(f.ticks["BTC/USDT"]) >= 120 and any(
                s["state"] == "stale" for s in f.statuses))
            assert [t.last for t in feed.ticks["BTC/USDT"][:4]] == [100.0, 99.0, 101.0, 100.5]
            assert len(feed.ticks["BTC/USDT"]) == 120  # 30 replayed candles x 4
            candles = request_history(feed.rep, "BTC/USDT", 60, 500)
            assert len(candles) == 10


class TestHistorySocket:
    """The ROUTER answers history and info, refuses bad requests with a reason, and survives."""

    def test_history_round_trip(self, feed_ipc_dir: Path) -> None:
        with running_feed(feed_ipc_dir, "--rate", "20", "--seed", "5") as feed:
            feed.pump(has_ticks(5))
            info = request_info(feed.rep, timeout_s=DEADLINE_S)
            assert info["ok"] is True and info["source"] == "sim" and info["symbols"] == PAIRS
            for sym in PAIRS:
                candles = request_history(feed.rep, sym, 60, 200, timeout_s=DEADLINE_S)
                assert len(candles) == 200
                now_ms = time.time() * 1000
                assert candles[-1][0] + 60_000 <= now_ms < candles[-1][0] + 180_000
                last = feed.ticks[sym][-1].last
                assert abs(candles[-1][4] / last - 1) < 0.02  # continues into the live price

    def test_refusals(self, feed_ipc_dir: Path) -> None:
        with running_feed(feed_ipc_dir, "--rate", "5") as feed:
            feed.pump(has_ticks(1))
            with pytest.raises(HistoryRefused, match="unknown symbol"):
                request_history(feed.rep, "DOGE/USDT", 60, 10, timeout_s=DEADLINE_S)
            with pytest.raises(HistoryRefused, match="limit"):
                request_history(feed.rep, "BTC/USDT", 60, 0, timeout_s=DEADLINE_S)
            assert issubclass(HistoryRefused, WireError)
            dealer = zmq.Context.instance().socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.connect(feed.rep)
            try:
                bad = [
                    b"\xc1garbage",
                    msgpack.packb({"op": "history"}),  # no version
                    encode_map({"op": "delete"}),
                    encode_map({"op": "history", "symbol": "BTC/USDT", "timeframe_s": "1m", "limit": 5}),
                    encode_map({"op": "history", "symbol": 7, "timeframe_s": 60, "limit": 5}),
                ]
                for payload in bad:
                    dealer.send(payload)
                    assert dealer.poll(int(DEADLINE_S * 1000)), f"no reply to {payload!r}"
                    reply = decode_map(dealer.recv())
                    assert reply["ok"] is False and reply["error"]
                    assert "\n" not in reply["error"]
                # Unanswerable (an extra frame it cannot route back sensibly) is dropped...
                dealer.send_multipart([b"a", b"b", b"c", b"d"])
            finally:
                dealer.close(linger=0)
            # ...and the server still works.
            assert len(request_history(feed.rep, "ETH/USDT", 300, 5, timeout_s=DEADLINE_S)) == 5
            assert feed.proc.poll() is None

    def test_request_times_out_when_nobody_answers(self, feed_ipc_dir: Path) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            request_history(f"ipc://{feed_ipc_dir}/nobody", "BTC/USDT", 60, 10, timeout_s=0.3)
        assert time.monotonic() - started < 5.0


class TestShutdown:
    """A signal stops the feed in order: status 'stopped' goes out and the exit code is 0."""

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    def test_signal_stops_cleanly(self, feed_ipc_dir: Path, sig: signal.Signals) -> None:
        with running_feed(feed_ipc_dir, "--rate", "20") as feed:
            feed.pump(lambda f: has_ticks(3)(f) and f.statuses)
            assert feed.proc.poll() is None
            sent = time.monotonic()
            feed.proc.send_signal(sig)
            code = feed.proc.wait(timeout=DEADLINE_S)
            took = time.monotonic() - sent
            feed.pump(lambda f: f.statuses[-1]["state"] == STATUS_STOPPED, timeout=3.0)
            out, err = feed.proc.communicate(timeout=5)
            assert code == 0, err.decode()
            assert took < 2.0, f"took {took:.2f}s to stop"
            assert feed.statuses[-1]["state"] == STATUS_STOPPED
            assert out == b""  # logs never go to stdout
        assert f"{sig.name} received" in feed.log.read_text()


class TestBadArguments:
    """Bad arguments: one clear line on stderr and exit 2, before binding anything."""

    @pytest.mark.parametrize(
        ("args", "needle"),
        [
            (["--source", "nasdaq"], "--source"),
            (["--source", "sim", "--symbols", "btcusdt"], "BASE/QUOTE"),
            (["--source", "sim", "--symbols", "BTC/USDT,BTC/USDT"], "twice"),
            (["--source", "sim", "--rate", "-4"], "--rate"),
            (["--source", "sim", "--rate", "fast"], "--rate"),
            (["--source", "sim", "--tiers", "BTC/USDT=SAFE"], "--tiers"),
            (["--source", "sim", "--tiers", "DOGE/USDT=MEME"], "DOGE/USDT"),
            (["--source", "replay"], "--replay-file"),
            (["--source", "replay", "--replay-file", "/nonexistent/x.csv"], "does not exist"),
            (["--source", "sim", "--bogus"], "unrecognized"),
            (["--source", "sim", "--log-level", "LOUD"], "--log-level"),
            (["--source", "sim", "--speed", "-1"], "--speed"),
            (["--source", "sim", "--time-scale", "0"], "--time-scale"),
            (["--source", "sim", "--time-scale", "1e6"], "--time-scale"),
        ],
    )
    def test_bad_argument(self, feed_ipc_dir: Path, args: list[str], needle: str) -> None:
        argv = feed_argv(f"ipc://{feed_ipc_dir}/p", f"ipc://{feed_ipc_dir}/r", *args)
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=30,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert needle in err
        assert proc.stdout == b""

    @pytest.mark.parametrize(
        "endpoints",
        [
            ("tcp://127.0.0.1", "ipc://DIR/r"),  # no port
            ("ipc://DIR/same", "ipc://DIR/same"),
            ("ipc://DIR/no/such/dir/p", "ipc://DIR/r"),  # cannot bind
            ("http://example.com", "ipc://DIR/r"),
        ],
    )
    def test_bad_endpoint(self, feed_ipc_dir: Path, endpoints: tuple[str, str]) -> None:
        pub, rep = (e.replace("DIR", str(feed_ipc_dir)) for e in endpoints)
        proc = subprocess.run(feed_argv(pub, rep, "--source", "sim"), cwd=ROOT, capture_output=True,
                              timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1, err


class TestPublisher:
    """TickPublisher in-process on a real socket: sequence numbers, validation, status, close."""

    async def test_seq_validation_status_and_close(self, feed_ipc_dir: Path) -> None:
        import asyncio

        from feed.publisher import TickPublisher

        endpoint = f"ipc://{feed_ipc_dir}/pub"
        pub = TickPublisher(endpoint, "sim", symbols=["BTC/USDT", "ETH/USDT"])
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(endpoint)
        stop = asyncio.Event()
        housekeeping = asyncio.create_task(pub.run(stop))
        try:
            assert await asyncio.wait_for(pub.wait_for_subscriber(stop), DEADLINE_S)
            pub.publish_tick("BTC/USDT", 1_000, 100.0, 100.5, 100.2, 1.0, 100.0)
            pub.publish_tick("BTC/USDT", 1_001, math.nan, 100.5, 100.2)  # dropped, counted
            pub.publish_tick("BTC/USDT", 1_002, 101.0, 100.5, 100.2)  # crossed: dropped
            pub.publish_tick("BTC/USDT", 1_003, 100.0, 100.5, None)  # type: ignore[arg-type]
            pub.publish_tick("_hb", 1_003, 100.0, 100.5, 100.2)  # a reserved topic is no symbol
            pub.publish_tick("ETH/USDT", 1_004, 10, 11, 10)  # ints are fine
            pub.publish_tick("BTC/USDT", 1_005, 100.0, 100.5, 100.4, math.inf, -1.0)  # bad volume zeroed
            pub.set_status(STATUS_CONNECTED)
            pub.set_status(STATUS_CONNECTED)  # no change: not republished
            with pytest.raises(ValueError):
                pub.set_status("sleeping")
            pub.set_status("reconnecting", "socket closed", reconnects=1)
            pub.close()
            pub.publish_tick("BTC/USDT", 1_006, 100.0, 100.5, 100.4)  # after close: ignored
            ticks: list[Any] = []
            states: list[tuple[str, Any, Any]] = []
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline and not (states and states[-1][0] == STATUS_STOPPED):
                if not sub.poll(100):
                    continue
                topic, payload = message_parts(sub.recv_multipart())
                if topic == TOPIC_STATUS:
                    m = decode_map(payload)
                    states.append((m["state"], m["last_error"], m["reconnects"]))
                elif topic != TOPIC_HEARTBEAT:
                    ticks.append(decode_tick(topic, payload))
        finally:
            stop.set()
            await asyncio.wait_for(housekeeping, 5)
            sub.close(linger=0)
        assert [(t.symbol, t.seq, t.ts_exchange) for t in ticks] == [
            ("BTC/USDT", 1, 1_000), ("ETH/USDT", 1, 1_004), ("BTC/USDT", 2, 1_005)]
        assert (ticks[2].base_volume, ticks[2].quote_volume) == (0.0, 0.0)
        assert pub.rejected == 4 and pub.published == 3
        assert pub.messages_sent == {"BTC/USDT": 2, "ETH/USDT": 1}
        assert states[-3:] == [(STATUS_CONNECTED, None, 0), ("reconnecting", "socket closed", 1),
                               (STATUS_STOPPED, "socket closed", 1)]
        assert [s for s in states if s[0] == STATUS_CONNECTED].count((STATUS_CONNECTED, None, 0)) <= 2
