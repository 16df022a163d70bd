"""A pseudo-terminal the console benchmarks run ``multipar-console`` in, acting as the terminal.

Owns ``PtyTerminal`` (spawns a program on a pty of a fixed size, reads everything it writes,
counts bytes and frames, sends keys) and ``Screen`` (just enough of a VT100 to know what is on
the screen: cursor moves, text, erase; colours are skipped).

Frames are counted exactly: the terminal answers Textual's DECRQM query for synchronized output
(mode 2026) with "supported", so Textual wraps every screen update in ``ESC[?2026h`` …
``ESC[?2026l``, one pair per frame, as it does on kitty, WezTerm, iTerm2 or Windows Terminal.

Reading is cheap on purpose: while ``track_screen`` is off, output is only counted and kept in a
backlog that ``screen()`` replays later, so the reader costs little CPU while the console's own
CPU is measured.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence

SYNC_QUERY = b"\x1b[?2026$p"
SYNC_REPLY = b"\x1b[?2026;2$y"  # DECRPM: mode 2026 recognised, currently reset
SYNC_END = b"\x1b[?2026l"
KEY_CTRL_K = b"\x0b"

_TOKEN = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])"  # CSI: params, final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (title, colours): ignored
    r"|\x1b[P^_][^\x1b]*(?:\x1b\\)?"  # DCS/PM/APC: ignored
    r"|\x1b[()][0-~]"  # charset selection: ignored
    r"|\x1b[@-~]"  # other two-byte escapes: ignored
    r"|([\x00-\x1f])"  # control characters
    r"|([^\x00-\x1f\x1b]+)"  # printable text
)


_COMPLETE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[P^_][^\x1b]*\x1b\\|[()][0-~]"
    r"|[@-OQ-Z\\`-~])"
)


class Screen:
    """The visible character grid, updated from the program's output."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.x = self.y = 0
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        cut = text.rfind("\x1b")
        if cut >= 0 and not _COMPLETE.match(text, cut):
            # an escape sequence split across reads: keep it for the next one
            self._pending, text = text[cut:], text[:cut]
        for m in _TOKEN.finditer(text):
            if m.group(4) is not None:
                self._text(m.group(4))
            elif m.group(3) is not None:
                self._control(m.group(3))
            elif m.group(2) is not None:
                self._csi(m.group(1), m.group(2))

    def _text(self, s: str) -> None:
        row = self.grid[min(self.y, self.rows - 1)]
        cols = self.cols
        x = self.x
        if s.isascii():
            n = len(s)
            if x + n > cols:  # line wrap is off in Textual: the last column is overwritten
                s = s[: max(0, cols - x)]
                n = len(s)
            row[x : x + n] = s
            self.x = min(x + n, cols - 1) if n else x
            return
        for ch in s:
            w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
            if unicodedata.combining(ch):
                continue
            if x < cols:
                row[x] = ch
                if w == 2 and x + 1 < cols:
                    row[x + 1] = ""
            x = min(x + w, cols)
        self.x = min(x, cols - 1)

    def _control(self, c: str) -> None:
        if c == "\r":
            self.x = 0
        elif c == "\n":
            self.y = min(self.y + 1, self.rows - 1)
        elif c == "\b":
            self.x = max(self.x - 1, 0)

    def _csi(self, params: str, final: str) -> None:
        if params.startswith(("?", ">", "<", "=")):
            return  # private modes (cursor, mouse, sync output): no effect on the grid
        nums = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []

        def arg(i: int, default: int) -> int:
            return nums[i] if len(nums) > i and nums[i] > 0 else default

        if final in "Hf":
            self.y = min(arg(0, 1), self.rows) - 1
            self.x = min(arg(1, 1), self.cols) - 1
        elif final == "K":
            mode = nums[0] if nums else 0
            row = self.grid[self.y]
            if mode == 0:
                row[self.x :] = [" "] * (self.cols - self.x)
            elif mode == 1:
                row[: self.x + 1] = [" "] * (self.x + 1)
            else:
                row[:] = [" "] * self.cols
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode in (2, 3):
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
            elif mode == 0:
                self._csi("0", "K")
                for r in range(self.y + 1, self.rows):
                    self.grid[r] = [" "] * self.cols
        elif final == "A":
            self.y = max(self.y - arg(0, 1), 0)
        elif final == "B":
            self.y = min(self.y + arg(0, 1), self.rows - 1)
        elif final == "C":
            self.x = min(self.x + arg(0, 1), self.cols - 1)
        elif final == "D":
            self.x = max(self.x - arg(0, 1), 0)
        elif final == "G":
            self.x = min(arg(0, 1), self.cols) - 1
        elif final == "d":
            self.y = min(arg(0, 1), self.rows) - 1

    def text(self) -> str:
        return "\n".join("".join(r).rstrip() for r in self.grid)

    def lines(self) -> list[str]:
        return ["".join(r) for r in self.grid]


class PtyTerminal:
    """``argv`` running on a pty of ``cols`` × ``rows``; this object is its terminal."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cols: int,
        rows: int,
        env: Mapping[str, str],
        cwd: str,
    ) -> None:
        self.cols, self.rows = cols, rows
        self.started = time.monotonic()
        winsize = struct.pack("HHHH", rows, cols, 0, 0)
        pid, fd = pty.fork()
        if pid == 0:  # the child: only async-signal-safe-ish work between fork and exec
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
                os.chdir(cwd)
                os.execve(argv[0], list(argv), dict(env))
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, winsize)
        self.screen_model = Screen(cols, rows)
        self.track_screen = True
        self._backlog: list[bytes] = []
        self._tail = b""
        self.bytes_total = 0
        self.frames_total = 0
        self.eof = False
        self.exit_status: int | None = None

    # -- reading ------------------------------------------------------------------------
    def pump(self, timeout_s: float = 0.05) -> int:
        """Read whatever the program wrote within ``timeout_s``; returns the bytes read."""
        if self.eof:
            time.sleep(timeout_s)
            return 0
        got = 0
        wait = timeout_s
        while True:
            r, _, _ = select.select([self.fd], [], [], wait)
            if not r:
                return got
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:  # EIO: the program closed the terminal
                data = b""
            if not data:
                self.eof = True
                return got
            got += len(data)
            self._take(data)
            wait = 0.0  # drain what is there, then return

    def _take(self, data: bytes) -> None:
        self.bytes_total += len(data)
        joined = self._tail + data
        self.frames_total += joined.count(SYNC_END)
        if SYNC_QUERY in joined:
            os.write(self.fd, SYNC_REPLY)
        self._tail = data[-(len(SYNC_END) - 1) :]
        if self.track_screen:
            if self._backlog:
                self._flush_backlog()
            self.screen_model.feed(data)
        else:
            self._backlog.append(data)

    def _flush_backlog(self) -> None:
        data, self._backlog = b"".join(self._backlog), []
        self.screen_model.feed(data)

    def screen(self) -> str:
        if self._backlog:
            self._flush_backlog()
        return self.screen_model.text()

    def wait_for(
        self, pred: Callable[[str], bool], timeout_s: float, poll_s: float = 0.01
    ) -> float | None:
        """Read until ``pred(screen)`` holds; the monotonic time it first held, or None."""
        deadline = time.monotonic() + timeout_s
        self.track_screen = True
        if pred(self.screen()):
            return time.monotonic()
        while time.monotonic() < deadline and not self.eof:
            if self.pump(poll_s) and pred(self.screen()):
                return time.monotonic()
        return None

    def drain_for(self, seconds: float) -> None:
        """Keep reading (so the program never blocks on a full pty) for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump(min(0.05, max(0.0, end - time.monotonic())))

    # -- writing ------------------------------------------------------------------------
    def send(self, keys: bytes) -> float:
        """Type ``keys``; returns the monotonic time they were written."""
        os.write(self.fd, keys)
        return time.monotonic()

    # -- the process ---------------------------------------------------------------------
    def alive(self) -> bool:
        if self.exit_status is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.exit_status = status
        return False

    def wait_exit(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            self.pump(0.05)
        return not self.alive()

    def close(self) -> None:
        """SIGTERM (the console's orderly shutdown), then SIGKILL if it lingers."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            if not self.wait_exit(10.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.wait_exit(5.0)
        with contextlib.suppress(OSError):
            os.close(self.fd)
