"""The safe list changed while trading (issue 17), end to end: ``multipar-console daemon`` as a
real process with its real feed (sim) and engine, edited and reloaded through
``multipar-console reload`` and SIGHUP. One daemon, one sequence of edits: a broken file keeps
the old list (one line, exit 2); a preview changes nothing; an added pair is streamed, warmed and
trades ACTIVE; a removed pair with a position goes REDUCING, keeps its pane until flat, then
leaves (and the feed stops streaming it); after the kill switch an added pair starts HALTED and every HALTED pair stays HALTED;
each reload is a row in the book and the config version moves in ``status``.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console import ctl
from engine.journal import reloads
from feed.history import request_info
from tests.test_daemon_process import RunningDaemon, cli, start_daemon

pytestmark = pytest.mark.timeout(150)

BASE = (Path(__file__).resolve().parents[1] / "safe_list.yaml").read_text(encoding="utf-8")
BNB = """
  BNB/USDT:
    tier: VOLATILE
    strategy: breakout
    max_position_size_usd: 1000
    params: {lookback: 20}
"""


def _status(rd: RunningDaemon) -> dict:  # type: ignore[type-arg]
    r = cli("status", "--json", *rd.where)
    return json.loads(r.stdout)


def _wait(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _modes(rd: RunningDaemon) -> dict[str, str]:
    return {p["symbol"]: p["mode"] for p in _status(rd)["pairs"]}


@pytest.fixture(scope="module")
def edited() -> Iterator[tuple[RunningDaemon, Path]]:
    d = Path(tempfile.mkdtemp(prefix="rl-", dir="/tmp"))
    cfg = d / "safe_list.yaml"
    cfg.write_text(BASE, encoding="utf-8")
    rd = start_daemon(d, "--config", str(cfg), seed_position=True)  # a BTC/USDT long, stops far away
    try:
        yield rd, cfg
    finally:
        rd.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_edits_broken_files_and_halts_across_reloads(edited: tuple[RunningDaemon, Path]) -> None:
    rd, cfg = edited
    assert _status(rd)["config_version"] == 1
    # a broken file: nothing changes, one line naming the file, exit 2
    cfg.write_text(BASE.replace("capital_usd: 10000 ", "capital_usd: [1] "), encoding="utf-8")
    r = cli("reload", *rd.where)
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(cfg) in r.stderr and "portfolio.capital_usd" in r.stderr and "kept" in r.stderr
    assert "Traceback" not in r.stderr and _status(rd)["config_version"] == 1

    # a preview of an added pair changes nothing
    cfg.write_text(BASE + BNB, encoding="utf-8")
    r = cli("reload", "--preview", *rd.where)
    assert r.returncode == 0 and "+ BNB/USDT: subscribed on the feed, warmed from history, starts ACTIVE" in r.stdout
    assert "BNB/USDT" not in _modes(rd)

    # applied: streamed, warmed, its pane, ACTIVE; the version moves
    r = cli("reload", *rd.where)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "added BNB/USDT" in r.stdout and "config v2" in r.stdout
    _wait(lambda: _modes(rd).get("BNB/USDT") == "ACTIVE", "BNB/USDT trading ACTIVE (not STALE)")
    st = _status(rd)
    assert st["config_version"] == 2 and st["health"] == "healthy"

    # removed with its position: REDUCING, still there
    cfg.write_text(BASE.replace("  BTC/USDT:\n    enabled: true", "  BTC/USDT:\n    enabled: false") + BNB, encoding="utf-8")
    r = cli("reload", *rd.where)
    assert r.returncode == 0 and "BTC/USDT REDUCING until flat" in r.stdout, r.stdout + r.stderr
    _wait(lambda: _modes(rd).get("BTC/USDT") == "REDUCING", "BTC/USDT REDUCING")

    # the same file on SIGHUP: no change, the daemon trades on
    rd.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert rd.proc.poll() is None and _status(rd)["config_version"] == 3

    # the kill switch: every pair HALTED, BTC flat and gone; a pair added now starts HALTED
    info = rd.info()
    ack = ctl.request(info.endpoints.daemon_ctl, "kill", 10.0)
    assert ack is not None and ack["ok"], ack
    _wait(lambda: "BTC/USDT" not in _modes(rd), "BTC/USDT flat and removed")
    # the engine let BTC go: the feed was told to stop streaming it (its history socket's info)
    _wait(lambda: "BTC/USDT" not in request_info(info.endpoints.feed_rep)["symbols"], "the feed dropping BTC/USDT")
    cfg.write_text(BASE.replace("  BTC/USDT:\n    enabled: true", "  BTC/USDT:\n    enabled: false")
                   + BNB + BNB.replace("BNB", "XRP"), encoding="utf-8")  # fmt: skip
    r = cli("reload", *rd.where)
    assert r.returncode == 0, r.stdout + r.stderr
    _wait(lambda: _modes(rd).get("XRP/USDT") == "HALTED", "XRP/USDT HALTED")
    assert set(_modes(rd).values()) == {"HALTED"}

    rows = reloads.recent(rd.db)
    assert [(r["trigger"].split()[0], r["ok"]) for r in reversed(rows)] == [
        ("console", False), ("console", True), ("console", True), ("SIGHUP", True), ("console", True),
    ]  # fmt: skip
    assert rows[-1]["diff"] == {} and "portfolio.capital_usd" in rows[-1]["result"]
    assert rows[0]["diff"]["added"] == ["XRP/USDT"] and rows[0]["version"] == 4
