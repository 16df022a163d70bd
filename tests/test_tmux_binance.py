"""End to end with the Binance source: ``multipar-console`` (paper, no --demo) pointed at the
local Binance-protocol server through the same URL options a user would give, inside tmux."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.test_tmux_demo import SYMBOLS, Demo, console_command, prices, private_env, quit_console
from tests.tmux_driver import TmuxSession, TmuxTimeout, tmux_available

ROOT = Path(__file__).resolve().parent.parent
MARKETS = ROOT / "tests" / "data" / "binance_markets.json"

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(90),
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
]


def test_console_shows_binance_prices_from_a_local_server() -> None:
    home = Path(tempfile.mkdtemp(prefix="mpb-", dir="/tmp"))
    (home / "xdg").mkdir(mode=0o700)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "binance_server.py"), "--port", "0", "--scenario", "steady", "--rate", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    tmux = None
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("binance-server ready"), ready
        urls = dict(part.split("=", 1) for part in ready.split()[2:])
        base = [c for c in console_command() if c not in ("--demo", "--seed", "5")]
        cmd = [
            *base,
            "--source", "binance",
            "--ws-url", urls["ws"],
            "--rest-url", urls["rest"],
            "--markets-file", str(MARKETS),
            "--db", str(home / "paper.sqlite"),
        ]
        tmux = TmuxSession(cmd, width=80, height=24, env=private_env(home), cwd=ROOT, socket_dir=home)
        demo = Demo(tmux, home)
        screen = tmux.wait_for(lambda s: all(prices(s).get(sym) for sym in SYMBOLS), 30.0)
        assert "PAPER" in screen and "DEMO" not in screen
        first = prices(screen)
        try:
            tmux.wait_for(lambda s: all(prices(s).get(sym, first[sym]) != first[sym] for sym in SYMBOLS), 10.0)
        except TmuxTimeout as exc:
            raise AssertionError(f"Binance prices did not move (first {first})\n{exc}") from None
        feed_log = (demo.run_dir() / "feed.log").read_text()
        assert "Streaming 3 symbols" in feed_log
        quit_console(demo)
        demo.assert_nothing_left()
    finally:
        if tmux is not None:
            tmux.close()
        server.terminate()
        server.wait(5)
        shutil.rmtree(home, ignore_errors=True)
