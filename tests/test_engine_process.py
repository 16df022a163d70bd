"""The engine subprocess, fed by the real feed subprocess over real ipc sockets."""

from __future__ import annotations

import itertools
import sqlite3
import time

import pytest

from tests.procs import SYMBOLS, Commander, Subscriber, stack

pytestmark = pytest.mark.timeout(90)


def test_engine_publishes_state_for_every_pair_and_answers_commands() -> None:
    with stack() as s:
        s.start("feed", s.feed_cmd())
        sub = Subscriber(s.engine_pub)
        s.start("engine", s.engine_cmd_line())
        try:
            seen: dict[str, list[float]] = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (
                len(seen) == 3 and all(len(set(v)) >= 2 for v in seen.values())
            ):
                got = sub.recv()
                if got and got[0] == b"pair" and got[1].get("last"):  # left out before the first price
                    seen.setdefault(got[1]["symbol"], []).append(got[1]["last"])
            assert set(seen) == set(SYMBOLS), s.log("engine")
            assert all(len(set(v)) >= 2 for v in seen.values()), "prices did not move"

            # Warm-up came from the feed's history: indicators are ready at once. The closes ride on
            # the pair's fast topic (this subscriber holds b"": it watches every pair), never on the
            # roll-call ``pair``.
            _, pair = sub.wait_for(lambda t, m: t == b"view:BTC/USDT" and m["symbol"] == "BTC/USDT" and "closes" in m)
            assert pair["ind"]["rsi"] is not None and pair["ind"]["atr"] is not None
            assert 0 < pair["ind"]["rsi"] < 100
            assert len(pair["closes"]) >= 30
            assert pair["mode"] == "ACTIVE" and pair["stale"] is False

            # the correlations ride along when they moved, at most once a second (wire version 2)
            _, pf = sub.wait_for(lambda t, m: t == b"portfolio" and "corr" in m)
            # safe_list.yaml: 60 % of 10,000
            assert pf["capital"] == 10_000 and pf["exposure_max"] == pytest.approx(6000.0)
            assert pf["corr"]["symbols"] == SYMBOLS and pf["corr"]["version"] == 2

            cmd = Commander(s.engine_cmd)
            assert cmd.send("ping")["ok"] is True
            ack = cmd.send("pause", "ETH/USDT")
            assert ack["ok"] and ack["modes"]["ETH/USDT"] == "PAUSED"
            sub.wait_for(lambda t, m: t == b"pair" and m["symbol"] == "ETH/USDT" and m["mode"] == "PAUSED")
            bad = cmd.send("pause", "DOGE/USDT")
            assert bad["ok"] is False and "unknown symbol" in bad["message"]
            ack = cmd.send("kill")
            assert ack["ok"] and set(ack["modes"].values()) == {"HALTED"}
            assert cmd.send("resume", "BTC/USDT")["ok"] is False  # HALTED needs a re-arm
            cmd.close()
        finally:
            sub.close()
        assert s.stop("engine") == 0
        assert "Engine stopped" in s.log("engine")
        # Modes were stored before the ack: the file says HALTED.
        with sqlite3.connect(s.db) as db:
            modes = dict(db.execute("SELECT symbol, mode FROM pair_modes"))
        assert modes == {sym: "HALTED" for sym in SYMBOLS}


def test_engine_refuses_bad_start_arguments_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Exit 2 with one line naming the option, before any socket is bound."""
    import subprocess
    import sys

    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    base = [sys.executable, "-m", "engine", "--config", "safe_list.yaml", "--feed-pub", f"ipc://{tmp_path}/a",
            "--feed-rep", f"ipc://{tmp_path}/b", "--pub", f"ipc://{tmp_path}/c", "--cmd", f"ipc://{tmp_path}/d"]
    for extra, expect in (
        (["--db", str(tmp_path / "x.sqlite"), "--markets-file", str(bad)], "--markets-file: "),
        (["--db", str(tmp_path / "nodir" / "x.sqlite")], "--db: directory"),
        (["--db", str(tmp_path / "x.sqlite"), "--timeframe", "7x"], "--timeframe: "),
    ):
        r = subprocess.run(base + extra, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expect), r.stderr


def test_the_markets_file_sets_the_engines_lot_steps(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``--markets-file`` reaches the node as its rules: a pair it names gets the exchange's
    steps, a pair it does not name keeps the built-in ones."""
    import json

    import engine.__main__ as engine_main
    import engine.node.service as service
    from engine.core.markets import default_rules
    from engine.journal.store import StoreError

    markets = tmp_path / "markets.json"
    markets.write_text(json.dumps({"BTC/USDT": {"precision": {"amount": 0.001, "price": 0.1}}}))
    given: dict = {}

    class Node:
        def __init__(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
            given.update(kw)
            raise StoreError("stop here")  # after the rules were built

    monkeypatch.setattr(service, "EngineNode", Node)
    monkeypatch.setattr(engine_main.signal, "signal", lambda *_: None)  # not pytest's handlers
    code = engine_main.main([
        "--config", "safe_list.yaml", "--db", str(tmp_path / "x.sqlite"), "--markets-file", str(markets),
        "--feed-pub", "ipc://a", "--feed-rep", "ipc://b", "--pub", "ipc://c", "--cmd", "ipc://d",
    ])  # fmt: skip
    assert code == 1  # a book that cannot be opened now is worth another try
    rules = given["rules"]
    assert rules["BTC/USDT"].amount_step == 0.001 and rules["BTC/USDT"].price_step == 0.1
    assert rules["ETH/USDT"] == default_rules("ETH/USDT")


def test_warm_up_beats_so_a_slow_history_server_never_looks_dead() -> None:
    """No feed answers the history requests (each times out): the engine keeps beating with
    phase "warming" more often than the supervisor's silence limit, then runs."""
    from engine.wire.liveness import HISTORY_REQUEST_TIMEOUT_S, SILENT_AFTER_S

    with stack() as s:
        sub = Subscriber(s.engine_pub, [b"_hb"])
        t0 = time.monotonic()
        s.start("engine", s.engine_cmd_line())
        try:
            beats: list[tuple[float, str]] = []
            deadline = t0 + 3 * HISTORY_REQUEST_TIMEOUT_S + 10
            while time.monotonic() < deadline and not (beats and beats[-1][1] == "running"):
                got = sub.recv(0.2)
                if got is not None:
                    beats.append((time.monotonic(), got[1]["phase"]))
            phases = [p for _, p in beats]
            assert phases.count("warming") >= 2 and phases[-1] == "running", phases  # the first may beat the SUB
            gaps = [b - a for (a, _), (b, _) in itertools.pairwise(beats)]
            assert max(gaps) < SILENT_AFTER_S, gaps
            assert "no history from the feed" in s.log("engine")
        finally:
            sub.close()
        assert s.stop("engine") == 0


def test_a_kill_during_a_slow_warm_up_is_answered_at_once() -> None:
    """History requests time out (no feed): the engine still answers a kill between them,
    halts every pair, and leaves the stored position's exit pending until a first price."""
    from tests.store_seed import seed_open_position

    with stack() as s:
        seed_open_position(s.db)
        s.start("engine", s.engine_cmd_line())
        cmd = Commander(s.engine_cmd)
        try:
            t0 = time.monotonic()
            ack = cmd.send("kill", timeout_s=8.0)
            assert time.monotonic() - t0 < 6.5  # one history request at most, not all three
            assert set(ack["modes"].values()) == {"HALTED"} and ack["halted"] is True
            assert ack["ok"] is False and "BTC/USDT (exit pending: no price yet)" in ack["message"]
        finally:
            cmd.close()
        assert s.stop("engine", timeout=8.0) == 0  # after the history request in flight
