"""The daemon under systemd's notify protocol, with a datagram socket standing in for systemd.

``Type=notify``: the daemon sends ``READY=1`` (with its pid) once its control socket answers,
``WATCHDOG=1`` at half of ``WATCHDOG_USEC``, and ``STOPPING=1`` on SIGTERM, then exits 0.
The stand-in reads nothing until the daemon is healthy: a full notify queue must never block
the daemon (it drops the message instead).
A watchdog meant for another pid (``WATCHDOG_PID``) is not pinged.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.ctl import request
from console.daemon import wire as dwire
from console.daemon.systemd import Notify
from tests.test_daemon_process import start_daemon

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sy-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def receive(sock: socket.socket, seconds: float) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return got


def test_ready_watchdog_and_stopping(short_dir: Path) -> None:
    path = short_dir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        env = dict(os.environ, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="400000")
        rd = start_daemon(short_dir, env=env)
        try:
            got = receive(systemd, 1.5)
            ready = [m for m in got if "READY=1" in m]
            assert len(ready) == 1 and f"MAINPID={rd.proc.pid}" in ready[0], got
            info = rd.info()
            assert info is not None  # daemon.json was written before READY
            assert request(info.endpoints.daemon_ctl, dwire.STATUS, 2.0) is not None
            pings = [m for m in got if m == "WATCHDOG=1"]
            assert len(pings) >= 3, got  # every 0.2 s
            rd.proc.send_signal(signal.SIGTERM)
            assert rd.proc.wait(15) == 0
            assert "STOPPING=1" in receive(systemd, 0.5) + got
        finally:
            rd.stop()


def test_no_socket_no_watchdog_for_another_pid() -> None:
    n = Notify({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert not n.enabled and n.watchdog_s == 0.0
    n.ready("x")
    n.ping()
    assert n.sent == []
    assert Notify({"WATCHDOG_USEC": "1000000"}).watchdog_s == 1.0
