"""End to end, as a person uses it: ``multipar-console --demo`` inside tmux.

Each test starts the real console (which starts a daemon of its own, which starts the real feed
and engine) in a detached tmux session of a fixed size, with a fresh HOME / XDG_RUNTIME_DIR /
XDG_STATE_HOME under /tmp, reads the screen with capture-pane, types keys with send-keys, and
checks afterwards that no process of ours is left: the console (the pane's process), the daemon
and the children it recorded in ``pids.json``, and ``pgrep -f`` on the run directory's path (the
demo's daemon is started with ``--run-dir``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import alive
from tests.store_seed import seed_open_position
from tests.tmux_driver import TmuxSession, TmuxTimeout, tmux_available

ROOT = Path(__file__).resolve().parent.parent
SAFE_LIST = ROOT / "safe_list.yaml"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
# the simulated market's opening prices (feed/sim.py); the screen's prices stay near them
START_PRICE = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}
STARTUP_S = 25.0

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
]


def console_entry() -> list[str]:
    """The installed entry point beside the interpreter if there is one, else ``-m console``."""
    script = Path(sys.executable).with_name("multipar-console")
    return [str(script)] if script.exists() else [sys.executable, "-m", "console"]


def console_command() -> list[str]:
    return [*console_entry(), "--demo", "--config", str(SAFE_LIST), "--seed", "5"]



@dataclass
class Demo:
    """One console run inside tmux, with its private directories."""

    tmux: TmuxSession
    home: Path
    console_pid: int | None = None  # the pane's process (``exec``), once started

    @property
    def runs(self) -> Path:
        return self.home / "xdg" / "multipar-console"

    def run_dir(self, timeout_s: float = 10.0) -> Path:
        """The daemon's directory: the demo's fresh ``run-*``, or the book's home ``book-*``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = sorted(self.runs.glob("run-*")) if self.runs.exists() else []
            found = found or (sorted(self.runs.glob("book-*")) if self.runs.exists() else [])
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no run directory under {self.runs}")

    def pids(self) -> dict[str, object]:
        return json.loads((self.run_dir() / "pids.json").read_text())

    def daemon_pid(self) -> int:
        """The supervisor's process: the daemon."""
        return int(self.pids()["daemon"])  # type: ignore[call-overload]

    def daemon_pids(self) -> set[int]:
        """The daemon and every child it ever started."""
        data = self.pids()
        pids = {self.daemon_pid()}
        for history in data["history"].values():  # type: ignore[union-attr]
            pids.update(int(p) for p in history)
        return pids

    def all_our_pids(self) -> set[int]:
        pids = self.daemon_pids()
        if self.console_pid is not None:
            pids.add(self.console_pid)
        return pids

    def engine_pid(self) -> int:
        pid = self.pids()["children"]["engine"]  # type: ignore[index]
        assert isinstance(pid, int)
        return pid

    def db(self) -> Path:
        seeded = self.home / "paper.sqlite"
        return seeded if seeded.exists() else self.run_dir() / "demo.sqlite"

    def db_state(self) -> tuple[dict[str, str], list[tuple[str, float]]]:
        with sqlite3.connect(self.db(), timeout=5) as conn:
            modes = dict(conn.execute("SELECT symbol, mode FROM pair_modes"))
            positions = conn.execute("SELECT symbol, qty FROM positions").fetchall()
        return modes, positions

    def wait_started(self) -> str:
        """Every pair on screen with a price, and both children recorded."""
        screen = self.tmux.wait_for(lambda s: all(prices(s).get(sym) for sym in SYMBOLS), STARTUP_S)
        self.console_pid = self.tmux.pane_pid()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if all(self.pids()["children"].values()):  # type: ignore[union-attr]
                    return screen
            except (OSError, ValueError, AssertionError):
                pass
            time.sleep(0.05)
        raise AssertionError("pids.json never listed both children")

    def assert_nothing_left(self, timeout_s: float = 10.0) -> None:
        ours = self.all_our_pids()
        run_dir = str(self.run_dir())
        deadline = time.monotonic() + timeout_s
        left: set[int] = set()
        stray = ""
        while time.monotonic() < deadline:
            left = {p for p in ours if alive(p)}
            stray = processes_naming(run_dir)
            if not left and not stray:
                return
            time.sleep(0.1)
        raise AssertionError(f"left running: pids {sorted(left)}; pgrep -f {run_dir}: {stray!r}")


def processes_naming(text: str) -> str:
    """``pgrep -f TEXT`` (or the same scan of /proc where pgrep is missing), minus ourselves."""
    if shutil.which("pgrep"):
        out = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True).stdout.split()
    else:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if text.encode() in (d / "cmdline").read_bytes():
                        out.append(d.name)
                except OSError:
                    pass
    return " ".join(p for p in out if int(p) != os.getpid() and alive(int(p)))


def prices(screen: str) -> dict[str, float]:
    """Per pair, the first number near its name that is a plausible price for it."""
    lines = screen.splitlines()
    found: dict[str, float] = {}
    for sym in SYMBOLS:
        lo, hi = START_PRICE[sym] * 0.5, START_PRICE[sym] * 1.5
        for i, line in enumerate(lines):
            if sym not in line:
                continue
            near = " ".join(lines[i : i + 3]).replace(sym, " ")
            for tok in re.findall(r"\d[\d,]*\.\d+", near):
                x = float(tok.replace(",", ""))
                if lo <= x <= hi:
                    found[sym] = x
                    break
            if sym in found:
                break
    return found


def row(screen: str, symbol: str) -> str:
    """The first screen line naming ``symbol`` (the board's row at 80x24)."""
    return next((ln for ln in screen.splitlines() if symbol in ln), "")


def all_rows_say(word: str) -> Callable[[str], bool]:
    def pred(screen: str) -> bool:
        return all(word in row(screen, sym) for sym in SYMBOLS)

    pred.__name__ = f"every pair row says {word}"
    return pred


def kill_dialog_open(screen: str) -> bool:
    return "KILL SWITCH?" in screen and "y = yes" in screen


def private_env(home: Path) -> dict[str, str]:
    """A clean environment whose HOME, run and state dirs are all under ``home``; a
    256-colour terminal with no COLORTERM, as many SSH clients announce."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home / "xdg"),
        "XDG_STATE_HOME": str(home / "state"),
        "PYTHONPATH": str(ROOT),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


def cleanup_pids(demo: Demo) -> None:
    """Whatever a failed test left, by pid only (never by name)."""
    try:
        ours = demo.all_our_pids()
    except (OSError, ValueError, AssertionError):
        return
    for pid in ours:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def demo_factory() -> Iterator[object]:
    made: list[Demo] = []
    dirs: list[Path] = []

    def make(width: int = 80, height: int = 24, *, open_position: bool = False) -> Demo:
        home = Path(tempfile.mkdtemp(prefix="mpt-", dir="/tmp"))
        dirs.append(home)
        (home / "xdg").mkdir(mode=0o700)
        extra: list[str] = []
        if open_position:  # a paper book holding BTC, so the kill switch has work to do
            seed_open_position(home / "paper.sqlite")
            extra = ["--db", str(home / "paper.sqlite")]
        tmux = TmuxSession(
            [*console_command(), *extra],
            width=width,
            height=height,
            env=private_env(home),
            cwd=ROOT,
            socket_dir=home,
        )
        demo = Demo(tmux, home)
        made.append(demo)
        return demo

    yield make
    for demo in made:
        demo.tmux.close()
        cleanup_pids(demo)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def quit_console(demo: Demo) -> None:
    demo.tmux.send_keys("q")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not demo.tmux.pane_dead():
        if re.search(r"\b(quit|Quit)\b.*\?", demo.tmux.capture()):  # a confirm dialog: answer yes
            demo.tmux.send_keys("y")
        time.sleep(0.1)
    assert demo.tmux.wait_exit(5), "console did not exit after q:\n" + demo.tmux.capture()


@pytest.mark.parametrize(("width", "height"), [(80, 24), (160, 48)])
def test_demo_shows_live_prices_and_quits_clean(demo_factory, width: int, height: int) -> None:  # type: ignore[no-untyped-def]
    demo: Demo = demo_factory(width, height)
    first = prices(demo.wait_started())
    assert set(first) == set(SYMBOLS)
    try:
        demo.tmux.wait_for(
            lambda s: all(prices(s).get(sym, first[sym]) != first[sym] for sym in SYMBOLS),
            timeout_s=5.0,
        )
    except TmuxTimeout as exc:
        raise AssertionError(f"prices did not all move within 5 s (first {first})\n{exc}") from None
    assert "DEMO" in demo.tmux.capture()
    quit_console(demo)
    demo.assert_nothing_left()


@pytest.mark.parametrize("how", ["hangup", "sigterm", "sigkill"])
def test_no_child_outlives_the_console(demo_factory, how: str) -> None:  # type: ignore[no-untyped-def]
    """The demo's daemon belongs to its console. hangup: a dropped SSH session (tmux
    kill-session hangs up the terminal: SIGHUP); sigterm: a service manager stopping it; both
    detach, which stops an owned daemon. sigkill: no cleanup at all by the console (the daemon
    watches its owner's pid; the children die with the daemon)."""
    demo: Demo = demo_factory()
    demo.wait_started()
    ours = demo.all_our_pids()
    console, daemon = demo.console_pid, demo.daemon_pid()
    assert console is not None and alive(console) and console != daemon
    assert len(ours) == 4  # the console, the daemon, the feed and the engine
    if how == "hangup":
        demo.tmux.kill_session()
    else:
        os.kill(console, signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    demo.assert_nothing_left()
    log = (demo.run_dir() / "console.log").read_text()
    daemon_log = (demo.run_dir() / "daemon.log").read_text()
    if how != "sigkill":
        name = "SIGHUP" if how == "hangup" else "SIGTERM"
        assert f"{name} received: orderly shutdown" in log
        assert "detached" in log
        assert "stopping: a console asked" in daemon_log
    else:
        assert f"stopping: its console (pid {console}) is gone" in daemon_log
    assert "daemon stopped" in daemon_log


def test_p_pauses_the_selected_pair(demo_factory) -> None:  # type: ignore[no-untyped-def]
    demo: Demo = demo_factory()
    screen = demo.wait_started()
    assert "PAUSED" not in screen and row(screen, "BTC/USDT").startswith("▸")  # selected
    demo.tmux.send_keys("p")
    demo.tmux.wait_for(lambda s: "PAUSED" in row(s, "BTC/USDT"), timeout_s=3.0)
    assert "PAUSED" not in row(demo.tmux.capture(), "ETH/USDT")
    modes, _ = demo.db_state()
    assert modes.get("BTC/USDT") == "PAUSED" and list(modes.values()).count("PAUSED") == 1, modes
    quit_console(demo)
    demo.assert_nothing_left()


def test_kill_switch_halts_every_pair(demo_factory) -> None:  # type: ignore[no-untyped-def]
    demo: Demo = demo_factory(open_position=True)
    demo.wait_started()
    demo.tmux.wait_for(lambda s: "flat" not in row(s, "BTC/USDT"), timeout_s=10.0)  # the long
    assert demo.db_state()[1] != []
    demo.tmux.send_keys("C-k")
    demo.tmux.wait_for(kill_dialog_open, timeout_s=3.0)
    demo.tmux.send_keys("y")
    t0 = time.monotonic()
    demo.tmux.wait_for(all_rows_say("HALTED"), timeout_s=3.0)
    assert time.monotonic() - t0 < 1.5, "HALTED took more than a second to show"
    modes, positions = demo.db_state()
    assert modes == dict.fromkeys(SYMBOLS, "HALTED") and positions == []
    demo.tmux.wait_for(lambda s: "flat" in row(s, "BTC/USDT"), timeout_s=3.0)
    quit_console(demo)
    demo.assert_nothing_left()


def test_kill_switch_fallback_on_a_stopped_engine(demo_factory) -> None:  # type: ignore[no-untyped-def]
    demo: Demo = demo_factory(open_position=True)
    demo.wait_started()
    demo.tmux.wait_for(lambda s: "flat" not in row(s, "BTC/USDT"), timeout_s=10.0)
    hung = demo.engine_pid()
    os.kill(hung, signal.SIGSTOP)
    demo.tmux.send_keys("C-k")
    demo.tmux.wait_for(kill_dialog_open, timeout_s=3.0)
    t0 = time.monotonic()
    demo.tmux.send_keys("y")
    # the event log line and the notification (both wrap at 80 columns)
    demo.tmux.wait_for(lambda s: "engine hung" in s and "KILL (fallback" in s, timeout_s=3.0)
    # every pair HALTED and the position flat on screen, with the engine still hung
    demo.tmux.wait_for(
        lambda s: all_rows_say("HALTED")(s) and "flat" in row(s, "BTC/USDT"), timeout_s=3.0
    )
    assert time.monotonic() - t0 < 2.0, "the fallback took more than 2 s to show"
    modes, positions = demo.db_state()
    assert positions == [] and modes == dict.fromkeys(SYMBOLS, "HALTED")
    assert not alive(hung)
    # the restarted engine reads HALTED and the flat book back from the store
    demo.tmux.wait_for(
        lambda s: all_rows_say("HALTED")(s) and "flat" in row(s, "BTC/USDT"), timeout_s=15.0
    )
    quit_console(demo)
    demo.assert_nothing_left()


def test_renders_in_256_colours(demo_factory) -> None:  # type: ignore[no-untyped-def]
    """An SSH terminal that announces xterm-256color and no COLORTERM gets 256-colour escapes
    only (no 24-bit colour it might not show), and the coloured parts are still coloured."""
    demo: Demo = demo_factory(160, 48)
    demo.wait_started()
    screen = demo.tmux.capture(escapes=True)
    assert "\x1b[" in screen
    assert re.search(r"\x1b\[[0-9;]*38;5;\d+", screen), "no 256-colour foreground at all"
    assert not re.search(r"[34]8;2;\d+;\d+;\d+", screen), "24-bit colour sent to a 256-colour terminal"
    quit_console(demo)
    demo.assert_nothing_left()
