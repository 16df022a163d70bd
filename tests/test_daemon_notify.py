"""Notifications from the real daemon process to a held-out webhook receiver that hangs.

The daemon (``multipar-console daemon``, real feed and engine, sim market) is configured with a
``notify:`` webhook whose URL (with a token in it) comes from the environment. The receiver
first hangs on every request; the kill switch fires (kill and HALTED notices are queued).
While it hangs, the engine keeps its tick latency and its heartbeat, and the daemon answers
``status`` at once. Once the receiver answers again, the queued messages arrive. The URL's
token is in no child's environment, no log and no message body.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from aiohttp import web

from console.ctl import request
from console.daemon import wire as dwire
from engine.wire import commands as engine_wire
from engine.wire.schema import HeartbeatMsg
from tests.test_daemon_process import ROOT, cli, start_daemon

pytestmark = pytest.mark.timeout(120)
TOKEN = "s3cr3t-T0KEN-xyz"
ENV = "MULTIPAR_TEST_WEBHOOK"


class Receiver:
    """An aiohttp server in a thread: hangs while ``hang`` is set, else records each JSON."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.got: list[dict[str, Any]] = []
        self.hits = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _hook(self, req: web.Request) -> web.Response:
        self.hits += 1
        while self.hang.is_set():
            await asyncio.sleep(0.05)
        self.got.append(await req.json())
        return web.json_response({"ok": True})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._runner = runner
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> Receiver:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def stop(self) -> None:
        self.hang.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dn-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def engine_beats(endpoint: str, seconds: float) -> list[HeartbeatMsg]:
    ctx = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, engine_wire.TOPIC_HEARTBEAT)
        sub.connect(endpoint)
        beats = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if sub.poll(int(left * 1000) + 1):
                _, payload = sub.recv_multipart()
                beats.append(HeartbeatMsg.from_wire(engine_wire.unpack(payload)))
        return beats
    finally:
        ctx.destroy(linger=0)


def test_a_hanging_webhook_never_slows_trading_and_delivers_later(short_dir: Path) -> None:
    receiver = Receiver().start()
    rd = None
    try:
        cfg = short_dir / "safe_list.yaml"
        cfg.write_text(
            (ROOT / "safe_list.yaml").read_text()
            + f"\nnotify:\n  events: [kill, halted, restart]\n  webhook:\n    url_env: {ENV}\n"
        )
        env = dict(os.environ)
        env[ENV] = f"http://hook:{TOKEN}@127.0.0.1:{receiver.port}/hook?token={TOKEN}"
        receiver.hang.set()
        rd = start_daemon(short_dir, "--config", str(cfg), env=env)
        info = rd.info()
        assert info is not None
        st = json.loads(cli("status", "--json", *rd.where).stdout)
        for child in st["children"]:  # the secret stays in the daemon's own environment
            environ = Path(f"/proc/{child['pid']}/environ").read_bytes()
            assert ENV.encode() not in environ and TOKEN.encode() not in environ

        before = engine_beats(info.endpoints.engine_pub, 2.5)
        kill = request(info.endpoints.daemon_ctl, "kill", 8.0)
        assert kill is not None and kill["ok"], kill
        # the receiver hangs: trading, heartbeats and the control socket carry on
        t0 = time.monotonic()
        m = request(info.endpoints.daemon_ctl, dwire.STATUS, 2.0)
        assert m is not None and time.monotonic() - t0 < 0.5
        during = engine_beats(info.endpoints.engine_pub, 3.0)
        deadline = time.monotonic() + 5
        while receiver.hits == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.hits >= 1 and not receiver.got  # a request is hanging right now
        assert len(during) >= 2
        gaps = [(b.ts - a.ts) / 1e9 for a, b in itertools.pairwise(during)]
        assert max(gaps) < 1.6, gaps
        p99_before = max(b.latency_us.p99 for b in before if b.latency_us) if before else 0.0
        p99_during = max((b.latency_us.p99 for b in during if b.latency_us), default=0.0)
        # the engine's tick latency is its own business. A webhook that held anyone up would
        # show here as seconds (the request hangs until its timeout); a few milliseconds either
        # way are the load of the tests running beside this one (CI once read 2.8 ms before the
        # hang and 11.4 ms during it), so the bound is a quarter of a second or 3x before
        assert p99_during < max(250_000.0, 3 * p99_before), (p99_before, p99_during)

        receiver.hang.clear()  # the receiver answers again: the outbox drains
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {"kill", "halted"} <= {
            g["kind"] for g in receiver.got
        }:
            time.sleep(0.1)
        kinds = [g["kind"] for g in receiver.got]
        assert "kill" in kinds and "halted" in kinds, receiver.got
        assert all(g["book"] == "book.sqlite" for g in receiver.got)
        assert TOKEN not in json.dumps(receiver.got)
        st = json.loads(cli("status", "--json", *rd.where).stdout)
        assert st["counters"]["notify_sent"] >= 2
    finally:
        if rd is not None:
            rd.stop()
        receiver.stop()
    logs = "".join(p.read_text(errors="replace") for p in (short_dir / "run").glob("*.log"))
    assert TOKEN not in logs
    assert re.search(r"notifications on: webhook", logs)
