"""SIGHUP/SIGTERM always end the console, even when the terminal restore hangs.

After an SSH drop the pty is gone; Textual's output thread can die on it and the app's own
shutdown then blocks the event loop on a full queue (seen here once, a console left running
with its children already stopped). ``serve`` stops the children first and then gives the
terminal FORCE_EXIT_AFTER_S before leaving without it. This runs ``serve`` in a subprocess
with an app whose shutdown blocks the loop thread exactly like that.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cli import FORCE_EXIT_AFTER_S

ROOT = Path(__file__).resolve().parent.parent

STUCK = f"""
import asyncio, sys, threading
sys.path.insert(0, {str(ROOT)!r})
from console.cli import serve

class Backend:
    async def stop(self):
        print("children stopped", flush=True)

class StuckApp:
    async def run_async(self):
        self._done = asyncio.Event()
        print("ready", flush=True)
        await self._done.wait()
    async def shutdown(self):
        threading.Event().wait()  # a blocking write to a vanished terminal: the loop is stuck
    def exit(self):
        self._done.set()

sys.exit(asyncio.run(serve(StuckApp(), Backend())))
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_signal_exits_even_if_the_terminal_restore_hangs(sig: signal.Signals) -> None:
    p = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(sig)
        assert p.stdout.readline().strip() == "children stopped"
        t0 = time.monotonic()
        code = p.wait(timeout=FORCE_EXIT_AFTER_S + 10)
        took = time.monotonic() - t0
        assert code == 128 + sig
        assert FORCE_EXIT_AFTER_S - 0.5 <= took <= FORCE_EXIT_AFTER_S + 5
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


CLEAN = f"""
import asyncio, os, signal, sys, time
sys.path.insert(0, {str(ROOT)!r})
from console.cli import FORCE_EXIT_AFTER_S, serve

class Backend:
    async def stop(self):
        pass

class App:
    async def run_async(self):
        self._done = asyncio.Event()
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        await self._done.wait()
    async def shutdown(self):
        self._done.set()
    def exit(self):
        self._done.set()

code = asyncio.run(serve(App(), Backend()))
time.sleep(FORCE_EXIT_AFTER_S + 1)  # the process lives on (tests run serve in-process)
print("survived", code, flush=True)
"""


@pytest.mark.timeout(30)
def test_the_watchdog_is_cancelled_once_the_terminal_is_released() -> None:
    p = subprocess.run(
        [sys.executable, "-c", CLEAN],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["ready", "survived", str(128 + signal.SIGTERM)]
