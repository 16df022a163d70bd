"""``LogTail``: the last lines of a file, then what is appended, with bounded memory, through
rotation, truncation (also when the file grows back past where it was), a missing file, a
partial last line, a line that never ends and a burst too large to read whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.logtail import MARK, LogTail

pytestmark = pytest.mark.timeout(30)


def lines(n: int, start: int = 0) -> str:
    return "".join(f"line {i}\n" for i in range(start, start + n))


def test_opening_reads_only_the_last_lines_and_bounded_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text(lines(100_000))  # ~1.1 MB
    tail = LogTail(path, 50, max_tail_bytes=4096)
    assert tail.poll() == 50
    assert list(tail.lines) == [f"line {i}" for i in range(99_950, 100_000)]
    small = LogTail(path, 10_000, max_tail_bytes=4096)  # wants more lines than 4 KiB hold
    small.poll()
    assert 0 < len(small.lines) < 500 and small.lines[-1] == "line 99999"
    assert all(ln.startswith("line ") for ln in small.lines)  # no half line at the cut


def test_appends_are_followed_and_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text(lines(3))
    tail = LogTail(path, 5)
    tail.poll()
    with path.open("a") as f:
        f.write("half")
    assert tail.poll() == 0
    with path.open("a") as f:
        f.write(" done\r\n" + lines(6, 10))
    assert tail.poll() == 5  # seven lines, the oldest two dropped at once
    assert list(tail.lines) == ["line 11", "line 12", "line 13", "line 14", "line 15"]
    assert "half done" not in tail.lines and tail.total == 10  # dropped, but counted


def test_rotation_finishes_the_old_file_then_reads_the_new(tmp_path: Path) -> None:
    path = tmp_path / "engine.log"
    path.write_text(lines(2))
    tail = LogTail(path, 100)
    tail.poll()
    os.rename(path, tmp_path / "engine.log.1")
    with (tmp_path / "engine.log.1").open("a") as f:
        f.write("last of the old\n")
    path.write_text("first of the new\n")
    tail.poll()
    got = list(tail.lines)
    assert got[:3] == ["line 0", "line 1", "last of the old"]
    assert got[3].startswith(MARK) and "rotated" in got[3]
    assert got[4:] == ["first of the new"]


@pytest.mark.parametrize("regrown", [False, True])
def test_truncation_reads_again_from_the_start(tmp_path: Path, regrown: bool) -> None:
    """``regrown``: truncated and written past the old size before the next poll."""
    path = tmp_path / "feed.log"
    path.write_text(lines(3))
    tail = LogTail(path, 100)
    tail.poll()
    with path.open("r+") as f:  # in place, as logrotate's copytruncate does
        f.truncate(0)
    if regrown:
        with path.open("a") as f:
            f.write("a new first line, longer than the three before it together\n")
    tail.poll()
    marks = [ln for ln in tail.lines if ln.startswith(MARK)]
    assert len(marks) == 1 and "truncated" in marks[0]
    assert tail.lines[-1] == ("a new first line, longer than the three before it together" if regrown else marks[0])


def test_a_missing_file_is_waited_for_and_a_vanished_one_said(tmp_path: Path) -> None:
    path = tmp_path / "daemon.log"
    tail = LogTail(path, 10)
    assert tail.poll() == 0 and "No such file" in tail.error
    path.write_text(lines(2))
    assert tail.poll() == 2 and tail.error == ""
    path.unlink()
    tail.poll()
    assert "is gone" in tail.lines[-1] and tail.error
    path.write_text("again\n")
    tail.poll()
    assert list(tail.lines)[-2:] == [MARK + "daemon.log is back", "again"]
    tail.close()


def test_memory_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("")
    tail = LogTail(path, 20, max_line=100, max_burst_bytes=10_000)
    tail.poll()
    with path.open("a") as f:
        f.write("y" * 5000)  # a line that never ends
    tail.poll()
    assert len(tail.lines) == 1 and len(tail.lines[0]) == 100 and tail.lines[0].endswith("…")
    with path.open("a") as f:
        f.write("\n" + lines(50_000))  # a burst far above max_burst_bytes
    tail.poll()
    assert len(tail.lines) == 20 and tail.lines[-1] == "line 49999"
    assert any("written at once" in ln for ln in tail.lines)
    assert sum(len(ln) for ln in tail.lines) < 20 * 100
