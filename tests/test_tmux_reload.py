"""The safe list edited while the demo trades, as an operator does it (issue 17): ``multipar-console
--demo`` inside tmux on a copy of the shipped safe list. ``C`` previews, ``y`` applies: BNB/USDT's
pane appears with live prices; a broken file keeps the safe list in force and says why; after the
kill switch a reload keeps every pair HALTED and a pair added then starts HALTED too.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store_seed import seed_open_position
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
    pytest.mark.timeout(90),
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
]

BASE = (ROOT / "safe_list.yaml").read_text(encoding="utf-8")
PAIR = "\n  {sym}:\n    tier: VOLATILE\n    strategy: breakout\n    max_position_size_usd: 1000\n"


@pytest.fixture
def demo() -> Iterator[tuple[Demo, Path]]:
    home = Path(tempfile.mkdtemp(prefix="mpr-", dir="/tmp"))
    (home / "xdg").mkdir(mode=0o700)
    cfg = home / "safe_list.yaml"
    cfg.write_text(BASE)
    tmux = TmuxSession([*console_entry(), "--demo", "--config", str(cfg), "--seed", "5"],
                       width=160, height=48, env=private_env(home), cwd=ROOT, socket_dir=home)  # fmt: skip
    made = Demo(tmux, home)
    yield made, cfg
    tmux.close()
    cleanup_pids(made)
    shutil.rmtree(home, ignore_errors=True)


def bnb_price(screen: str) -> float | None:
    for i, line in enumerate(screen.splitlines()):
        if "BNB/USDT" in line:
            near = " ".join(screen.splitlines()[i : i + 3]).replace("BNB/USDT", " ")
            for tok in re.findall(r"\d[\d,]*\.\d+", near):
                if 290 <= float(tok.replace(",", "")) <= 870:
                    return float(tok.replace(",", ""))
    return None


def test_add_a_pair_keep_a_broken_file_out_and_halts_survive(demo: tuple[Demo, Path]) -> None:
    d, cfg = demo
    t = d.tmux
    d.wait_started()

    cfg.write_text(BASE + PAIR.format(sym="BNB/USDT"))
    t.send_keys("C")
    t.wait_for(lambda s: "Reload the safe list?" in s and "+ BNB/USDT" in s, timeout_s=10.0)
    t.send_keys("y")
    first = t.wait_for(lambda s: bnb_price(s) is not None, timeout_s=15.0)
    p1 = bnb_price(first)
    t.wait_for(lambda s: bnb_price(s) not in (None, p1), timeout_s=15.0)  # live: the price moves

    cfg.write_text(BASE.replace("capital_usd: 10000 ", "capital_usd: [1] ") + PAIR.format(sym="BNB/USDT"))
    t.send_keys("C")
    t.wait_for("not reloaded, the safe list in force is kept", timeout_s=10.0)
    assert "Reload the safe list?" not in t.capture()

    t.send_keys("C-k")
    t.wait_for(kill_dialog_open, timeout_s=3.0)
    t.send_keys("y")
    t.wait_for(lambda s: all("HALTED" in row(s, sym) for sym in [*SYMBOLS, "BNB/USDT"]), timeout_s=5.0)
    cfg.write_text(BASE + PAIR.format(sym="BNB/USDT") + PAIR.format(sym="XRP/USDT"))
    t.send_keys("C")
    t.wait_for(lambda s: "Reload the safe list?" in s and "+ XRP/USDT" in s and "HALTED" in s, timeout_s=10.0)
    t.send_keys("y")
    t.wait_for(lambda s: all("HALTED" in row(s, sym) for sym in [*SYMBOLS, "BNB/USDT", "XRP/USDT"]), timeout_s=15.0)
    quit_console(d)
    d.assert_nothing_left()


def test_a_removed_pair_with_a_position_is_reducing_until_flat_then_gone() -> None:
    home = Path(tempfile.mkdtemp(prefix="mpr-", dir="/tmp"))
    (home / "xdg").mkdir(mode=0o700)
    cfg = home / "safe_list.yaml"
    cfg.write_text(BASE)
    seed_open_position(home / "paper.sqlite")  # a paper book holding BTC/USDT, stops far away
    tmux = TmuxSession([*console_entry(), "--demo", "--config", str(cfg), "--seed", "5", "--db", str(home / "paper.sqlite")],
                       width=160, height=48, env=private_env(home), cwd=ROOT, socket_dir=home)  # fmt: skip
    d = Demo(tmux, home)
    try:
        t = d.tmux
        d.wait_started()
        cfg.write_text(BASE.replace("  BTC/USDT:\n    enabled: true", "  BTC/USDT:\n    enabled: false"))
        t.send_keys("C")
        t.wait_for(lambda s: "Reload the safe list?" in s and "- BTC/USDT: has a position: REDUCING" in s, timeout_s=10.0)
        t.send_keys("y")
        t.wait_for(lambda s: "REDUCING" in row(s, "BTC/USDT"), timeout_s=10.0)
        time.sleep(3.0)  # not flat: it stays, REDUCING
        assert "REDUCING" in row(t.capture(), "BTC/USDT")
        t.send_keys("f")  # BTC/USDT is the selected pane: flatten it
        t.wait_for("Flatten BTC/USDT", timeout_s=3.0)
        t.send_keys("y")
        t.wait_for(lambda s: "BTC/USDT" not in s.split("Decisions")[0], timeout_s=15.0)  # its pane is gone
        with sqlite3.connect(f"file:{home / 'paper.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
            assert conn.execute("SELECT symbol FROM positions").fetchall() == []
        quit_console(d)
        d.assert_nothing_left()
    finally:
        tmux.close()
        cleanup_pids(d)
        shutil.rmtree(home, ignore_errors=True)
