"""The operator's commands end to end, as a person uses them: ``multipar-console --demo``
inside tmux (tests/test_tmux_demo.py's harness), on a safe list whose policy buys whenever the
book is flat (tests/core_policies.py: ``buy_when_flat``), so every candle would open a position
unless something stops it:

- ``F`` flattens everything and stops new entries: the book stays flat candle after candle
  (each entry refused by the engine, the header says NO ENT) until ``E`` resumes them;
- re-arm after a kill returns each pair to its mode before the kill: a pair the operator had
  paused stays PAUSED, and entries stopped before the kill stay stopped.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_tmux_demo import (
    ROOT,
    SYMBOLS,
    Demo,
    cleanup_pids,
    console_entry,
    kill_dialog_open,
    private_env,
    quit_console,
    row,
)
from tests.tmux_driver import TmuxSession, tmux_available

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
]

PAIR = """
    tier: STABLE
    strategy: policy
    market: spot
    max_position_size_usd: 2000
    params:
      policy: tests.core_policies:buy_when_flat
      stop_atr: 15
      take_profit_atr: 50
"""
SAFE_LIST = f"""
version: 1
portfolio:
  capital_usd: 10000
  max_total_exposure: 0.60
  max_correlated_positions: 3
  risk_per_trade_usd: 5
  atr_multiplier: 3.0
  min_target_cost_multiple: 0
  min_reward_risk: 0
engine:
  timeframe: 1m
  history_candles: 100
pairs:
  BTC/USDT:{PAIR}
  ETH/USDT:{PAIR}
  SOL/USDT:{PAIR}
"""


@pytest.fixture
def demo() -> Iterator[Demo]:
    home = Path(tempfile.mkdtemp(prefix="mpc-", dir="/tmp"))
    (home / "xdg").mkdir(mode=0o700)
    safe_list = home / "buy_when_flat.yaml"
    safe_list.write_text(SAFE_LIST)
    tmux = TmuxSession([*console_entry(), "--demo", "--config", str(safe_list), "--seed", "5"],
                       width=80, height=24, env=private_env(home), cwd=ROOT, socket_dir=home)  # fmt: skip
    made = Demo(tmux, home)
    yield made
    tmux.close()
    cleanup_pids(made)
    shutil.rmtree(home, ignore_errors=True)


def holding(screen: str) -> set[str]:
    """The pairs whose board row shows a position (not "flat")."""
    return {s for s in SYMBOLS if row(screen, s) and "flat" not in row(screen, s)}


def book(demo: Demo, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{demo.db()}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql).fetchall()


def test_flatten_all_stops_entries_until_resumed_and_rearm_restores_each_pairs_mode(demo: Demo) -> None:
    t = demo.tmux
    demo.wait_started()
    t.wait_for(lambda s: bool(holding(s)), timeout_s=15.0)  # the policy buys on a flat book

    # F: flatten all, and no pair opens again
    t.send_keys("F")
    t.wait_for("Flatten all", timeout_s=3.0)
    t.send_keys("y")
    t.wait_for(lambda s: "NO ENT" in s.splitlines()[0] and not holding(s), timeout_s=5.0)
    assert book(demo, "SELECT stopped, reason FROM entries") == [(1, "flatten all")]
    stopped_at = book(demo, "SELECT ts FROM entries")[0][0]
    time.sleep(5.0)  # two candles of 2 s: every one of them would have bought
    screen = t.capture()
    assert not holding(screen) and book(demo, "SELECT symbol FROM positions") == [], screen
    refused = book(demo, f"SELECT approved, checks_json FROM decisions WHERE ts > {stopped_at} AND action = 'open_long'")
    assert refused and all(a == 0 and "new entries stopped by the operator (flatten all)" in c for a, c in refused)

    # pause ETH, kill, re-arm: ETH stays PAUSED, the others ACTIVE, entries still stopped
    t.send_keys("j", "p")
    t.wait_for(lambda s: "PAUSED" in row(s, "ETH/USDT"), timeout_s=3.0)
    t.send_keys("C-k")
    t.wait_for(kill_dialog_open, timeout_s=3.0)
    t.send_keys("y")
    t.wait_for(lambda s: all("HALTED" in row(s, sym) for sym in SYMBOLS), timeout_s=3.0)
    t.send_keys("r")
    t.wait_for("Re-arm trading?", timeout_s=3.0)
    t.send_keys("y")
    t.wait_for(lambda s: "PAUSED" in row(s, "ETH/USDT") and not any("HALTED" in row(s, x) for x in SYMBOLS),
               timeout_s=3.0)  # fmt: skip
    modes = dict(book(demo, "SELECT symbol, mode FROM pair_modes"))  # type: ignore[arg-type]
    assert modes == {"BTC/USDT": "ACTIVE", "ETH/USDT": "PAUSED", "SOL/USDT": "ACTIVE"}, modes
    screen = t.capture()
    assert "NO ENT" in screen.splitlines()[0] and not holding(screen), screen

    # E (confirmed): entries again, on the pairs that may trade
    t.send_keys("E")
    t.wait_for("Resume new entries?", timeout_s=3.0)
    t.send_keys("y")
    screen = t.wait_for(lambda s: "NO ENT" not in s.splitlines()[0] and bool(holding(s)), timeout_s=10.0)
    assert "ETH/USDT" not in holding(screen)
    assert book(demo, "SELECT stopped FROM entries") == [(0,)]
    quit_console(demo)
    demo.assert_nothing_left()
