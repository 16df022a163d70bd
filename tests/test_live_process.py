"""Live trading through the path production takes: the real feed (Binance source) and the real
engine process with ``--live``, both pointed at a local Binance-protocol exchange run as its own
process (tests/binance_exchange.py), the key and secret in the engine's environment only.

A policy buys once. The test waits for the fill in the engine's book, then asks the exchange:
exactly one order carries that client order id (nothing doubled), the fill the book holds is the
exchange's trade, and no log, no stderr and no byte of the book holds the API secret.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, Stack, stack

KEY = "e2eKeyVmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7J"
SECRET = "e2eSecretNhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvq"

CONFIG = """
version: 1
portfolio:
  capital_usd: 10000
  max_total_exposure: 0.5
  min_confidence: 0.0
  risk_per_trade_usd: 5
  atr_multiplier: 3
  min_target_cost_multiple: 0   # one scripted buy: the test is about the order, not the edge
  min_reward_risk: 0
engine: {timeframe: 1m, history_candles: 60}
pairs:
  BTC/USDT:
    tier: STABLE
    strategy: policy
    max_position_size_usd: 200
    params: {policy: "tests.core_policies:buy_when_flat", stop_atr: 20, take_profit_atr: 50}
"""


@pytest.fixture
def exchange() -> Iterator[dict[str, str]]:
    env = dict(os.environ, BINANCE_EXCHANGE_KEY=KEY, BINANCE_EXCHANGE_SECRET=SECRET, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "binance_exchange.py"), "--port", "0", "--rate", "5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "binance-exchange ready" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        urls = dict(re.findall(r"(\w+)=(\S+)", line))
        yield urls
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


def _state(rest: str) -> dict:
    with urllib.request.urlopen(f"{rest}/_test/state", timeout=5) as r:
        return json.loads(r.read())


def _market(orders: list[dict]) -> list[dict]:
    """The exchange's market orders (entries and exits), not the protective stops resting there."""
    return [o for o in orders if o["type"] == "MARKET"]


def _fills(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("SELECT fill_id, order_id, side, qty, price, fee FROM fills").fetchall()
    except sqlite3.OperationalError:
        return []


def _orders(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return c.execute("SELECT order_id, status FROM orders").fetchall()
    except sqlite3.OperationalError:
        return []


def _start(s: Stack, name: str, cmd: list[str], env: dict[str, str]) -> None:
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    s.procs[name] = p


def _start_live(s: Stack, exchange: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The feed (Binance source) and the engine with ``--live``, both pointed at the exchange;
    the key and secret in the engine's environment only. Returns the engine's command line and
    environment, for a restart on the same book."""
    urls = {"MULTIPAR_BINANCE_REST_URL": exchange["rest"], "MULTIPAR_BINANCE_WS_URL": exchange["ws"]}
    base = {k: v for k, v in os.environ.items() if k not in ("MULTIPAR_API_KEY", "MULTIPAR_API_SECRET")}
    feed_env = dict(base, PYTHONPATH=str(ROOT), **urls)
    engine_env = dict(feed_env, MULTIPAR_API_KEY=KEY, MULTIPAR_API_SECRET=SECRET)
    _start(s, "feed", [
        sys.executable, "-m", "feed", "--source", "binance", "--symbols", "BTC/USDT",
        "--pub", s.feed_pub, "--rep", s.feed_rep, "--log-file", str(s.dir / "feed.log"),
    ], feed_env)  # fmt: skip
    engine = s.engine_cmd_line("--live", "--timeframe", "1s")
    _start(s, "engine", engine, engine_env)
    return engine, engine_env


@pytest.mark.timeout(120)
def test_a_live_buy_reaches_the_exchange_once_and_is_booked(exchange: dict[str, str]) -> None:
    with stack(CONFIG) as s:
        _start_live(s, exchange)
        deadline = time.monotonic() + 90
        fills: list[tuple] = []
        while time.monotonic() < deadline and not fills:
            for name, p in s.procs.items():
                if p.poll() is not None:
                    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                    raise AssertionError(f"{name} exited {p.returncode}:\n{s.log(name)[-3000:]}\n{err[-2000:]}")
            fills = _fills(s.db)
            time.sleep(0.3)
        assert fills, "no fill booked:\n" + s.log("engine")[-4000:]
        fill_id, order_id, side, qty, price, fee = fills[0]
        assert side == "buy" and qty > 0 and price > 0 and fee >= 0
        assert fill_id.startswith("binance:"), fill_id  # the exchange's trade id, not an invented one
        st = _state(exchange["rest"])
        ours = [o for o in st["orders"] if o.get("client_order_id") == order_id]
        assert len(ours) == 1, st["orders"]  # placed once
        # the position's stop rests at the exchange, placed right after the entry's fill
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _state(exchange["rest"])["flat"]:
            time.sleep(0.1)
        st = _state(exchange["rest"])
        (stop,) = [o for o in st["orders"] if o["type"] == "STOP_LOSS_LIMIT"]
        assert stop["side"] == "SELL" and float(stop["quantity"]) <= qty, st["orders"]
        assert not st["duplicate_client_ids"]
        time.sleep(1.0)  # the answer, the stream and a poll all report it: still one fill
        assert [f[1] for f in _fills(s.db)] == [order_id]
        assert "LIVE on Binance" in s.log("engine")
        for name in list(s.procs):
            s.stop(name)
        for blob in (s.log("engine"), s.log("feed"), s.db.read_bytes().decode("latin-1")):
            assert SECRET not in blob and KEY not in blob


def _control(rest: str, what: str, body: dict) -> dict:
    """POST to one of the exchange's test-only control endpoints (``/_test/...``)."""
    req = urllib.request.Request(f"{rest}/_test/{what}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _arm(rest: str, fault: dict) -> None:
    assert _control(rest, "fault", fault)["armed"] == fault["kind"]


@pytest.mark.timeout(150)
def test_sigkill_between_sent_and_answered_loses_nothing_and_doubles_nothing(exchange: dict[str, str]) -> None:
    """The exchange takes the order at once and answers 8 s later, its user stream silent; the
    engine is SIGKILLed in between. The restarted engine finds the order journaled, looks it up
    by its client order id, books its fill once, and does not buy again: one order at the
    exchange, one fill in the book."""
    config = CONFIG  # buys while flat: after a restart it buys again only if the first buy was truly lost
    with stack(config) as s:
        _arm(exchange["rest"], {"kind": "delay", "endpoint": "POST /api/v3/order", "delay_s": 8})
        # and a silent user stream: until the answer, only the client's poll (2 s) could tell
        assert _control(exchange["rest"], "mute_user_streams", {"muted": True})["muted"] is True
        engine, engine_env = _start_live(s, exchange)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _state(exchange["rest"])["orders"]:
            time.sleep(0.1)
        orders = _market(_state(exchange["rest"])["orders"])
        assert len(orders) == 1, orders  # taken by the exchange; its answer is still 8 s away
        cid = orders[0]["client_order_id"]
        assert not _fills(s.db)  # not answered yet: nothing booked
        s.stop("engine", signal.SIGKILL)
        _start(s, "engine", engine, engine_env)  # same book
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _fills(s.db):
            time.sleep(0.3)
        fills = _fills(s.db)
        assert [f[1] for f in fills] == [cid], fills  # booked once, under the first order's id
        time.sleep(3)  # candles keep closing: a second buy would show by now
        st = _state(exchange["rest"])
        assert [o["client_order_id"] for o in _market(st["orders"])] == [cid] and not st["duplicate_client_ids"]
        assert len(_fills(s.db)) == 1
        log = s.log("engine")
        assert "looking it up" in log, log[-3000:]
        for name in list(s.procs):
            s.stop(name)
        for blob in (s.log("engine"), s.log("feed"), s.db.read_bytes().decode("latin-1")):
            assert SECRET not in blob


@pytest.mark.timeout(150)
def test_a_live_kill_closes_at_the_exchange_and_is_verified_there(exchange: dict[str, str]) -> None:
    """A live position with its stop resting at the exchange, then the kill on the engine's
    command socket: the command answers at once (closing), the resting stop is cancelled, then
    the exchange takes the closing sell, the book goes flat, and the engine asks the exchange and
    says, in an event the console shows, that nothing is left open."""
    from tests.procs import Commander, Subscriber

    with stack(CONFIG) as s:
        _start_live(s, exchange)
        events = Subscriber(s.engine_pub, [b"event"])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _fills(s.db):
                time.sleep(0.3)
            assert _fills(s.db), s.log("engine")[-3000:]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _state(exchange["rest"])["flat"]:
                time.sleep(0.1)  # the protective stop rests at the exchange
            assert not _state(exchange["rest"])["flat"], s.log("engine")[-3000:]
            cmd = Commander(s.engine_cmd)
            ack = cmd.send("kill", timeout_s=10)
            cmd.close()
            assert ack["ok"] is True and "HALTED" in ack["message"], ack
            _, ev = events.wait_for(lambda t, m: m.get("kind") == "kill_check", timeout_s=30)
            assert "verified at the exchange: no open order" in ev["message"], ev
        finally:
            events.close()
        sides = [f[2] for f in _fills(s.db)]
        assert sides == ["buy", "sell"], sides
        with sqlite3.connect(f"file:{s.db}?mode=ro", uri=True) as c:
            left = c.execute("SELECT qty FROM positions WHERE symbol = 'BTC/USDT'").fetchall()
        assert not left or abs(left[0][0]) < 1e-5  # flat, or dust below BTC's lot step
        st = _state(exchange["rest"])
        kinds = [(o["side"].lower(), o["type"]) for o in st["orders"]]
        assert kinds == [("buy", "MARKET"), ("sell", "STOP_LOSS_LIMIT"), ("sell", "MARKET")], kinds
        assert not st["duplicate_client_ids"]
        assert st["flat"] is True, st  # no open order at the exchange: the stop was cancelled
        log = s.log("engine")
        assert log.index("cancelling the protective stop") < log.index("Filled sell"), log[-3000:]


@pytest.mark.timeout(150)
def test_sigkill_between_journaled_and_sent_places_nothing_twice(exchange: dict[str, str]) -> None:
    """The exchange refuses the first order unexecuted (a 503: it never saw it) and the engine
    is SIGKILLed while its client waits to be sure before resending. The restarted engine finds
    the order journaled, asks the exchange, hears it does not exist, and records it refused; the
    next candle's buy is a new order with a new id. At the exchange: one order, one fill."""
    config = CONFIG  # buys while flat: after a restart it buys again only if the first buy was truly lost
    with stack(config) as s:
        _arm(exchange["rest"], {"kind": "http", "endpoint": "POST /api/v3/order", "status": 503, "execute": False})
        engine, engine_env = _start_live(s, exchange)
        deadline = time.monotonic() + 60
        first = None
        while time.monotonic() < deadline and first is None:
            rows = _orders(s.db)
            first = rows[0][0] if rows else None
            time.sleep(0.05)
        assert first is not None, s.log("engine")[-3000:]  # journaled; its send refused unexecuted
        time.sleep(0.3)
        s.stop("engine", signal.SIGKILL)  # before the client may resend (recvWindow + 1 s)
        assert not _market(_state(exchange["rest"])["orders"])  # the exchange never took it
        _start(s, "engine", engine, engine_env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _fills(s.db):
            time.sleep(0.3)
        fills = _fills(s.db)
        assert len(fills) == 1 and fills[0][1] != first, fills  # a new order, not the first resent
        st = _state(exchange["rest"])
        assert len(_market(st["orders"])) == 1 and not st["duplicate_client_ids"], st["orders"]
        with sqlite3.connect(f"file:{s.db}?mode=ro", uri=True) as c:
            (status,) = c.execute("SELECT status FROM orders WHERE order_id = ?", (first,)).fetchone()
        assert status == "rejected"  # looked up: the exchange never saw it
