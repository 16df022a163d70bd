"""Following a log file's tail with bounded memory, as ``tail -F`` does.

Owns ``LogTail``: it reads the last ``max_lines`` lines of a file (seeking back from its end,
never reading more than ``max_tail_bytes``), then, on every ``poll()``, the bytes appended
since. A file replaced under the same name (rotation: its inode changes) is finished from the
old handle, then read from the new one; a file that shrank (truncated in place, logrotate's
``copytruncate``) is read again from its start; a file not there yet is waited for. Each of
these leaves a marker line (``MARK`` first) so the operator sees what happened. Memory is
bounded by ``max_lines`` lines of at most ``max_line`` characters; a burst larger than
``max_burst_bytes`` between two polls is skipped to its last lines (with a marker) instead of
being read whole. No Textual here: the log viewer screen polls it from a timer.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from pathlib import Path
from typing import BinaryIO

MARK = "── "  # the first characters of a line the viewer wrote, not the file
MAX_LINES = 5000
MAX_LINE = 2000  # characters kept of one line; the rest is cut with …
MAX_TAIL_BYTES = 8 << 20  # the most read back from the end when opening
MAX_BURST_BYTES = 8 << 20  # appended between two polls beyond this: skip to the tail
_BLOCK = 64 << 10
_SEEN = 64


class LogTail:
    """The last lines of ``path``, kept up to date by ``poll()``."""

    def __init__(
        self,
        path: Path,
        max_lines: int = MAX_LINES,
        *,
        max_line: int = MAX_LINE,
        max_tail_bytes: int = MAX_TAIL_BYTES,
        max_burst_bytes: int = MAX_BURST_BYTES,
    ) -> None:
        self.path = Path(path)
        self.lines: deque[str] = deque(maxlen=max(1, max_lines))
        self.max_line = max_line
        self.max_tail_bytes = max_tail_bytes
        self.max_burst_bytes = max_burst_bytes
        self.total = 0  # lines taken since opened (markers included); more than kept: dropped
        self._added = 0  # lines put into ``lines``
        self.error = ""  # why the file cannot be read now (strerror: "No such file…"); "" if it can
        self._f: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._pos = 0
        self._partial = b""
        self._opened_once = False
        self._seen = b""  # the last bytes read, ending at _pos: a rewrite in place changes them

    # ------------------------------------------------------------------ public

    def poll(self) -> int:
        """Read what changed since the last call; the number of lines added to ``lines``."""
        before = self._added
        if self._f is None:
            self._open(first=not self._opened_once)
            return self._added - before
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._read_appended()  # the rest of a file renamed away
            self._close()
            self._mark(f"{self.path.name} is gone ({exc.strerror or exc}); waiting for it")
            self.error = str(exc.strerror or exc)
            return self._added - before
        if (st.st_dev, st.st_ino) != self._ident:
            self._read_appended()  # what was written to the old file before the rotation
            self._close()
            self._mark(f"{self.path.name} was replaced (rotated); reading the new file")
            self._open(first=False)
        elif st.st_size < self._pos or not self._same_so_far():
            self._mark(f"{self.path.name} was truncated; reading it from its start")
            self._partial = b""
            self._read_tail(st.st_size)
        else:
            self._read_appended()
        return self._added - before

    def close(self) -> None:
        self._close()

    def _same_so_far(self) -> bool:
        """Do the bytes before ``_pos`` still read as they did? A file truncated and written
        again to at least its old size between two polls does not shrink, but differs here."""
        f = self._f
        if f is None or not self._seen:
            return True
        try:
            return os.pread(f.fileno(), len(self._seen), self._pos - len(self._seen)) == self._seen
        except OSError:
            return True

    # ------------------------------------------------------------------ reading

    def _open(self, *, first: bool) -> None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (kept open between polls, closed by close())
        except OSError as exc:
            self.error = str(exc.strerror or exc)
            return
        self._f = f
        st = os.fstat(f.fileno())
        self._ident = (st.st_dev, st.st_ino)
        self._partial = b""
        if self._opened_once and self.error:
            self._mark(f"{self.path.name} is back")
        self.error = ""
        self._opened_once = True
        if first:
            self._read_tail(st.st_size)
        else:  # a new file after a rotation, or one that appeared: all of it, bounded
            self._pos = 0
            self._read_appended()

    def _read_tail(self, size: int, keep: int | None = None) -> None:
        """The last ``keep`` (default: ``lines.maxlen``) complete lines before ``size``; then
        follow from there. Lines before them are not read, nor counted in ``total``."""
        f = self._f
        assert f is not None
        keep = keep or self.lines.maxlen or 1
        want = keep + 1
        pos, buf = size, b""
        while pos > 0 and buf.count(b"\n") < want and size - pos < self.max_tail_bytes:
            step = min(_BLOCK, pos, self.max_tail_bytes - (size - pos))
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
        if pos > 0:  # the first line read is the end of one that started before: drop it
            buf = buf.split(b"\n", 1)[1] if b"\n" in buf else b""
        self._pos = size
        self._seen = buf[-_SEEN:]
        self._take(buf, keep, count_skipped=False)

    def _read_appended(self) -> None:
        f = self._f
        if f is None:
            return
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError:
            return
        if size <= self._pos:
            return
        if size - self._pos > self.max_burst_bytes:
            self._mark(f"{size - self._pos} bytes written at once: showing only the newest lines")
            self._partial = b""
            self._read_tail(size, keep=max(1, (self.lines.maxlen or 1) - 1))  # the mark stays
            return
        f.seek(self._pos)
        data = f.read(size - self._pos)
        self._pos += len(data)
        self._seen = (self._seen + data)[-_SEEN:]
        self._take(data)

    def _take(self, data: bytes, keep: int | None = None, *, count_skipped: bool = True) -> None:
        """Split into lines, the last ``keep`` kept; an unfinished last line waits for its end
        (bounded)."""
        data = self._partial + data
        *done, rest = data.split(b"\n")
        limit = self.max_line * 4  # bytes: at most 4 per character in UTF-8
        if len(rest) > limit:  # a line that never ends: show what there is
            done.append(rest)
            rest = b""
        self._partial = rest
        skipped = max(0, len(done) - (keep or self.lines.maxlen or 1))  # dropped at once anyway
        for raw in done[skipped:]:
            self._add(raw.rstrip(b"\r").decode("utf-8", errors="replace"))
        if count_skipped:
            self.total += skipped  # counted, never kept

    def _add(self, line: str) -> None:
        if len(line) > self.max_line:
            line = line[: self.max_line - 1] + "…"
        self.lines.append(line)
        self.total += 1
        self._added += 1

    def _mark(self, what: str) -> None:
        self._add(MARK + what)

    def _close(self) -> None:
        if self._f is not None:
            with contextlib.suppress(OSError):
                self._f.close()
        self._f = None
        self._ident = None
        self._seen = b""
