"""An SSH drop, as it happens: the console in tmux, the tmux session killed, trading goes on.

``multipar-console`` (paper, on a replayed market) starts the book's daemon and attaches; the
book holds an open BTC long whose stop sits below a price drop the replay plays ~20 s in. The
tmux session is killed while the position is open (the console gets the hang-up an SSH drop
gives it): the daemon and both children keep running with the same pids, the stop fires with
nobody attached, and ``multipar-console attach`` from a new tmux session shows the same book,
the exit already on screen, within 2 s. ``multipar-console stop`` ends it; nothing is left.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.daemon.home import find_daemon
from tests.procs import alive
from tests.store_seed import seed_open_position
from tests.test_tmux_demo import private_env
from tests.tmux_driver import TmuxSession, tmux_available

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"
DROP_AT_S = 20.0  # replay seconds before BTC falls through the stop

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(90),
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
]


def write_replay(path: Path) -> None:
    """Ticks every 0.25 s for 60 s; BTC drops from 60,000 to 50,000 at ``DROP_AT_S``."""
    t0 = 1_700_000_000.0
    rows = ["ts,symbol,bid,ask,last"]
    for i in range(240):
        t = i * 0.25
        btc = 60_000.0 + (i % 4) if t < DROP_AT_S else 50_000.0 + (i % 4)
        for sym, px in (("BTC/USDT", btc), ("ETH/USDT", 3_000.0 + i % 3), ("SOL/USDT", 150.0)):
            rows.append(f"{t0 + t:.3f},{sym},{px - 0.5},{px + 0.5},{px}")
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def home() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sd-", dir="/tmp"))
    (d / "xdg").mkdir(mode=0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_ssh_drop_keeps_trading_and_the_stop_fires(home: Path) -> None:
    env = private_env(home)
    book = home / "paper.sqlite"
    seed_open_position(book, stop=55_000.0)
    replay = home / "drop.csv"
    write_replay(replay)
    console = [
        sys.executable, "-m", "console.cli", "--config", str(SAFE_LIST), "--db", str(book),
        "--source", "replay", "--replay-file", str(replay), "--speed", "1",
    ]  # fmt: skip
    daemon_pid = 0
    first = TmuxSession(console, env=env, cwd=ROOT, socket_dir=home)
    try:
        screen = first.wait_for(lambda s: "LONG" in s and "BTC/USDT" in s, 25)
        old_env = dict(os.environ)
        os.environ.update({k: env[k] for k in ("XDG_RUNTIME_DIR", "HOME")})
        try:
            info = find_daemon(book)
        finally:
            os.environ.clear()
            os.environ.update(old_env)
        assert info is not None
        daemon_pid = info.pid
        assert "q Detach" in screen, screen
        pids = _children(env, book)
        assert _positions(book) == [("BTC/USDT",)]

        first.kill_session()  # the SSH drop: the console's terminal hangs up
        t_drop = time.monotonic()
        time.sleep(1.0)
        assert alive(daemon_pid) and all(alive(p) for p in pids.values())
        assert _children(env, book) == pids  # nobody restarted
        # the stop fires with no console attached
        deadline = t_drop + DROP_AT_S + 15
        while _positions(book) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _positions(book) == [], "the stop did not fire while detached"
        with sqlite3.connect(book) as conn:
            reasons = [r for (r,) in conn.execute("SELECT reason FROM fills ORDER BY ts")]
        assert reasons and "stop" in reasons[-1].lower(), reasons

        # attach again from a new terminal: the same book, the exit on screen at once
        t0 = time.monotonic()
        with TmuxSession(
            [sys.executable, "-m", "console.cli", "attach", "--db", str(book)],
            env=env, cwd=ROOT, socket_dir=home,
        ) as second:  # fmt: skip
            screen = second.wait_for(
                lambda s: "BTC/USDT" in s and "LONG" not in s and "stop" in s.lower(), 10
            )
            took = time.monotonic() - t0
            assert took < 2.0 + 1.0, f"re-attach took {took:.1f} s"  # 2 s goal, 1 s for tmux
            second.send_keys("q")
            assert second.wait_exit(10)
        assert alive(daemon_pid)  # detaching again stopped nothing
        r = cli(env, "stop", "--db", str(book))
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            alive(daemon_pid) or any(alive(p) for p in pids.values())
        ):
            time.sleep(0.1)
        assert not alive(daemon_pid) and not any(alive(p) for p in pids.values())
    finally:
        first.close()
        if daemon_pid and alive(daemon_pid):
            os.kill(daemon_pid, 15)


def _children(env: dict[str, str], book: Path) -> dict[str, int]:
    import json

    r = cli(env, "status", "--json", "--db", str(book))
    st = json.loads(r.stdout)
    return {c["name"]: c["pid"] for c in st["children"]}


def _positions(book: Path) -> list[tuple[str]]:
    with sqlite3.connect(book, timeout=5) as conn:
        return conn.execute("SELECT symbol FROM positions").fetchall()
