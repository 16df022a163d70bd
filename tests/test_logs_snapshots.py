"""Snapshot tests of the log file viewer (``L``) at 80×24 and 160×48.

The files are written by the test under a temporary directory it changes into, and named by a
relative path (``book/engine.log``), so the path on screen is the same on every run. The clock
is frozen, the time zone UTC. Regenerate with
``pytest tests/test_logs_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from console.logfiles import ConsoleFiles
from tests.console_fakes import SMALL, WIDE, FakeBackend, FrozenClock, make_safe_list

SnapCompare = Callable[..., bool]

ENGINE_LOG = [
    "2023-11-14 22:10:01,104 INFO engine.node: engine 4102 starting: 3 pairs, paper",
    "2023-11-14 22:10:01,377 INFO engine.node.history: warmed BTC/USDT with 120 candles",
    "2023-11-14 22:10:01,402 INFO engine.node.history: warmed ETH/USDT with 120 candles",
    "2023-11-14 22:10:01,431 INFO engine.node.history: warmed SOL/USDT with 120 candles",
    "2023-11-14 22:11:00,012 INFO engine.core.trader: BTC/USDT open_long approved 0.0137 @ 36512.3",
    "2023-11-14 22:11:30,020 WARNING engine.core.quality: SOL/USDT tick quarantined: last 71.2 outside the band 50.6..61.8",
    "2023-11-14 22:12:00,008 INFO engine.core.trader: ETH/USDT open_long rejected: correlated positions 2 >= max 2 (BTC/USDT, ETH/USDT)",
    "2023-11-14 22:12:31,550 WARNING engine.node: feed silent for 5.0 s: SOL/USDT STALE",
    "2023-11-14 22:12:44,901 ERROR engine.execution.paper: order mp-7f3a-0042 rejected: insufficient cash (need 612.40, have 598.11)",
    "Traceback (most recent call last):",
    '  File "engine/execution/paper.py", line 88, in submit',
    "engine.execution.paper.Refused: insufficient cash",
    "── engine.log was replaced (rotated); reading the new file",
    "2023-11-14 22:13:00,003 INFO engine.node: published 3 pairs, 1 portfolio in 0.4 ms",
    "2023-11-14 22:13:20,000 INFO engine.core.trader: SOL/USDT hold: confidence 0.41 < min 0.60",
]


@pytest.fixture(autouse=True)
def _log_files(_deterministic: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """conftest's UTC clock and fresh sequence numbers, and the book's log files."""
    monkeypatch.chdir(tmp_path)
    book = Path("book")
    book.mkdir()
    (book / "engine.log").write_text("\n".join(ENGINE_LOG) + "\n")
    (book / "daemon.log").write_text(
        "2023-11-14 22:10:00,501 INFO console.daemon.service: daemon 4100 started\n"
    )
    yield


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def app(backend: FakeBackend) -> MultiparApp:
    built = make_app(backend, make_safe_list(), clock=FrozenClock())
    built.animation_level = "none"
    built.files = ConsoleFiles.of_daemon_dir(Path("book"))
    built.last_log_file = "engine"
    return built


def viewer(backend: FakeBackend, *keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, MultiparApp)
        await backend.started.wait()
        app.repaint_now()
        await pilot.press("L", *keys)
        app.repaint_now()
        await pilot.pause()

    return run_before


class TestLogViewer:
    """The engine's log followed live: levels coloured, the viewer's marker line, a
    traceback, the newest line whole under the log."""

    def test_following_80x24(self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend) -> None:
        assert snap_compare(app, terminal_size=SMALL, run_before=viewer(backend))

    def test_search_160x48(self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend) -> None:
        """``/warning`` then ``N``: both matches highlighted, the older one selected (the log
        holds still, the title says where), shown whole under the log."""
        keys = ("slash", *"warning", "enter", "N")
        assert snap_compare(app, terminal_size=WIDE, run_before=viewer(backend, *keys))
