"""End to end with the Binance source: ``multipar-console`` (paper, no --demo) pointed at the
local Binance-protocol server through the same URL options a user would give, inside tmux. The
console starts the book's daemon in the background; ``q`` detaches and trading goes on until
``multipar-console stop``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.procs import alive
from tests.test_tmux_demo import (
    SYMBOLS,
    Demo,
    cleanup_pids,
    console_command,
    console_entry,
    prices,
    private_env,
    quit_console,
)
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
    tmux = demo = None
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
        demo.console_pid = tmux.pane_pid()
        assert demo.run_dir().name.startswith("book-")  # the book's home: its daemon's directory
        feed_log = (demo.run_dir() / "feed.log").read_text()
        assert "Streaming 3 symbols" in feed_log
        # the daemon's command line carries no URL: the console moved them to its environment
        daemon_pid = demo.daemon_pid()
        cmdline = Path(f"/proc/{daemon_pid}/cmdline").read_bytes()
        assert b"--ws-url" not in cmdline and urls["ws"].encode() not in cmdline, cmdline
        quit_console(demo)  # q detaches: the daemon, the feed and the engine go on
        traders = demo.daemon_pids()
        assert len(traders) == 3 and all(alive(p) for p in traders)
        r = subprocess.run(
            [*console_entry(), "stop", "--db", str(home / "paper.sqlite")],
            env=private_env(home), cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"stopped: daemon pid {daemon_pid}" in r.stdout
        demo.assert_nothing_left()
    finally:
        if tmux is not None:
            tmux.close()
        if demo is not None:
            cleanup_pids(demo)  # a failed test must not leave a background daemon trading
        server.terminate()
        server.wait(5)
        shutil.rmtree(home, ignore_errors=True)
