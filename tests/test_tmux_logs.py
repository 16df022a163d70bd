"""The logs end to end, as a person uses them: ``multipar-console --demo`` inside tmux (the
harness of tests/test_tmux_demo.py), typing as fast as tmux sends keys.

- the event log: ``e``, ``/pid``, Enter highlights the matches (a background colour on the
  word) and selects the newest; no key of the search reaches the board (``p`` would pause a
  pair); ``c`` puts the line in ``copied.txt`` in the daemon's directory, named by the
  notification, and through OSC 52 into tmux's buffer (``set-clipboard on``); on quit the
  console prints one line per log file, each an existing file;
- the log file viewer: ``L`` shows daemon.log, follows a line the test appends to it, ``/``
  searches it, ``c`` copies a line of the file.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_tmux_demo import (
    ROOT,
    Demo,
    cleanup_pids,
    console_command,
    private_env,
    quit_console,
)
from tests.tmux_driver import TmuxSession, tmux_available

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(30),
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
]

HIGHLIGHTED = r"\x1b\[[0-9;]*48;5;\d+[0-9;]*m(?:\x1b\[[0-9;]*m)*"  # a background, then the word


@pytest.fixture
def demo() -> Iterator[Demo]:
    home = Path(tempfile.mkdtemp(prefix="mpl-", dir="/tmp"))
    (home / "xdg").mkdir(mode=0o700)
    tmux = TmuxSession(
        console_command(), width=100, height=30, env=private_env(home), cwd=ROOT, socket_dir=home
    )
    tmux._tmux("set-option", "-s", "set-clipboard", "on")  # OSC 52 -> a tmux buffer
    made = Demo(tmux, home)
    yield made
    tmux.close()
    cleanup_pids(made)
    shutil.rmtree(home, ignore_errors=True)


def tmux_buffer(demo: Demo) -> str:
    return demo.tmux._tmux("show-buffer", check=False).stdout


def whole_history(demo: Demo) -> str:
    """The pane with its scrollback, wrapped lines joined (what the console printed on exit)."""
    t = demo.tmux
    return t._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", t.name, check=False).stdout


def test_search_and_copy_in_the_event_log_then_the_paths_on_exit(demo: Demo) -> None:
    demo.wait_started()
    t = demo.tmux
    t.wait_for("attached to the DEMO daemon (pid", timeout_s=5.0)
    t.send_keys("e", "/")
    t.send_keys("pid", literal=True)  # at once: the prompt is not even composed yet
    t.send_keys("Enter")
    # the newest match selected as typed (another may arrive after: the selection stays)
    screen = t.wait_for(lambda s: re.search(r"/pid \d+/\d+", s) is not None, timeout_s=3.0)
    assert "PAUSED" not in screen  # the p of "pid" never reached the board
    assert re.search(HIGHLIGHTED + "pid", t.capture(escapes=True)), "no highlighted match"
    t.send_keys("c")
    t.wait_for("copied:", timeout_s=3.0)
    copied = demo.run_dir() / "copied.txt"
    line = copied.read_text().rstrip("\n")
    assert "pid" in line and "…" not in line  # the selected match, whole
    assert line.split(" · ", 1)[1] in (demo.run_dir() / "console.log").read_text()
    assert tmux_buffer(demo) == line  # OSC 52 reached the terminal (tmux)
    quit_console(demo)
    printed = whole_history(demo)
    for name in ("daemon", "feed", "engine", "console"):
        m = re.search(rf"{name} log:\s+(\S+)", printed)
        assert m and Path(m.group(1)) == demo.run_dir() / f"{name}.log", printed
        assert Path(m.group(1)).is_file()
    assert re.search(rf"copied:\s+{re.escape(str(copied))}", printed)
    demo.assert_nothing_left()


def test_log_viewer_follows_searches_and_copies(demo: Demo) -> None:
    demo.wait_started()
    t = demo.tmux
    t.send_keys("L")
    t.wait_for("daemon.log", timeout_s=3.0)
    daemon_log = demo.run_dir() / "daemon.log"
    with daemon_log.open("a") as f:  # the daemon's own log, appended by the test: followed
        f.write("2026-01-01 00:00:00,000 INFO tests: a line the test wrote\n")
    t.wait_for("a line the test wrote", timeout_s=3.0)
    t.send_keys("/")
    t.send_keys("supervisor", literal=True)
    t.send_keys("Enter")
    t.wait_for(lambda s: re.search(r"/supervisor \d+/\d+", s) is not None, timeout_s=3.0)
    t.send_keys("N", "c")
    t.wait_for("copied:", timeout_s=3.0)
    line = (demo.run_dir() / "copied.txt").read_text().rstrip("\n")
    assert "supervisor" in line and line in daemon_log.read_text().splitlines()
    assert tmux_buffer(demo) == line
    t.send_keys("Escape")  # clears the search
    time.sleep(0.3)  # a lone escape, not alt+ the next key
    t.send_keys("Escape")  # back to the board
    t.wait_for(lambda s: "daemon.log" not in s and "BTC/USDT" in s, timeout_s=3.0)
    quit_console(demo)
    demo.assert_nothing_left()
