"""Start-up that scales (issue 16): a 300-pair engine, the real engine and feed subprocesses
over real ipc sockets, beats within the supervisor's start-up grace for 300 pairs, keeps
beating through its warm-up (never silent as long as the supervisor's silence limit), and has
every pair warm and priced well inside that grace."""

from __future__ import annotations

import itertools
import time

import pytest

from console.daemon.supervisor import START_GRACE_S, start_grace_for
from engine.wire.liveness import SILENT_AFTER_S
from tests.procs import Subscriber, stack

pytestmark = pytest.mark.timeout(120)

N = 300


def _safe_list(symbols: list[str]) -> str:
    head = """version: 1
portfolio:
  capital_usd: 10000
  max_total_exposure: 0.10
  max_correlated_positions: 2
  correlation_groups: []
  correlation_window: 60
engine:
  timeframe: 1m
  history_candles: 500
pairs:
"""
    body = "".join(
        f"  {s}:\n    enabled: true\n    tier: VOLATILE\n    strategy: momentum\n    market: spot\n"
        "    max_position_size_usd: 100\n"
        for s in symbols
    )
    return head + body


def test_a_300_pair_engine_starts_inside_its_grace() -> None:
    grace = start_grace_for(N)
    assert grace > START_GRACE_S  # the grace grows with the pairs
    symbols = [f"C{i:03d}/USDT" for i in range(N)]
    with stack(_safe_list(symbols)) as s:
        s.start("feed", s.feed_cmd(symbols=symbols, rate=2.0))
        sub = Subscriber(s.engine_pub, [b"_hb", b"pair"])
        try:
            t0 = time.monotonic()
            s.start("engine", s.engine_cmd_line())
            beats: list[float] = []
            phases: set[str] = set()
            priced: set[str] = set()
            running_at = None
            while time.monotonic() - t0 < grace and (running_at is None or len(priced) < N):
                got = sub.recv(0.2)
                if got is None:
                    continue
                topic, m = got
                if topic == b"_hb":
                    beats.append(time.monotonic())
                    phases.add(m["phase"])
                    if m["phase"] == "running" and running_at is None:
                        running_at = time.monotonic() - t0
                elif topic == b"pair" and m.get("last"):
                    priced.add(m["symbol"])
            assert s.procs["engine"].poll() is None, s.log("engine")
            assert beats and beats[0] - t0 < START_GRACE_S  # the first beat well inside even the base grace
            assert running_at is not None, f"not running {grace:.0f} s after start: {phases}"
            assert len(priced) == N, f"{N - len(priced)} pairs never priced"
            assert "warming" in phases  # it beat during its warm-up, not only after
            gaps = [b - a for a, b in itertools.pairwise(beats)]
            assert max(gaps, default=0.0) < SILENT_AFTER_S
        finally:
            sub.close()
