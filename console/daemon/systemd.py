"""systemd's notify protocol, spoken without a library: READY, STOPPING, STATUS and the
watchdog ping, as datagrams to ``$NOTIFY_SOCKET`` (``Type=notify``, ``WatchdogSec=``).

Owns ``Notify``. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op. The watchdog
interval comes from ``$WATCHDOG_USEC`` (only when ``$WATCHDOG_PID`` is unset or ours); the
daemon pings at half of it from its event loop, so a wedged loop stops the pings and systemd
restarts the service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


class Notify:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        owner = env.get("WATCHDOG_PID", "")
        ours = not owner or owner == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and ours else 0.0
        self.sent: list[str] = []  # what was sent, for the log and tests
        self.dropped = 0  # messages the receiver had no room for

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, state: str) -> bool:
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):  # an abstract socket
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                # never block the daemon's loop: a receiver whose queue is full (a stalled
                # systemd, or a test that reads later) costs this message, not trading
                s.setblocking(False)
                s.connect(addr)
                s.send(state.encode())
        except BlockingIOError:
            self.dropped += 1
            return False
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", state.split("\n")[0], exc)
            return False
        self.sent.append(state)
        return True

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def ping(self) -> None:
        with contextlib.suppress(Exception):
            self.send("WATCHDOG=1")
