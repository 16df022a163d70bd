"""Every attached console follows a reload (issue 17): a real daemon (sim feed, real engine), the
real app attached through ``DaemonClient`` (console A), and a second console (B, a bare
``DaemonClient``) that previews and applies the reload as its ``C`` key does. Console A never
asked for anything: the daemon's ``config`` topic reaches its bridge, and A's board gains the
added pair's pane, shows the new config version, then loses the pane when B removes that flat
pair again."""

from __future__ import annotations

import gc
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.app import make_app
from console.client import DaemonClient
from console.model import ConsoleModel
from engine.core.config import load_safe_list
from tests.console_fakes import SMALL
from tests.procs import until
from tests.test_daemon_process import start_daemon

pytestmark = pytest.mark.timeout(120)

BASE = (Path(__file__).resolve().parents[1] / "safe_list.yaml").read_text(encoding="utf-8")
BNB = "\n  BNB/USDT:\n    tier: VOLATILE\n    strategy: breakout\n    max_position_size_usd: 1000\n"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rf-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def _reload_from(client: DaemonClient) -> dict:  # type: ignore[type-arg]
    """What console B's ``C`` then ``y`` send: the preview, then the previewed digest."""
    m, _ = await client._request_map("reload_preview", None, 10.0)
    assert m is not None and m["ok"], m
    m, _ = await client._request_map("reload", None, 30.0, confirm=m["digest"])
    assert m is not None and m["ok"], m
    return m


def frozen(obj: object) -> bool:
    """In the collector's permanent generation (``gc.freeze``): tracked, in no generation."""
    return gc.is_tracked(obj) and all(o is not obj for o in gc.get_objects())


async def test_a_console_that_did_not_reload_follows_the_one_that_did(short_dir: Path) -> None:
    cfg = short_dir / "safe_list.yaml"
    cfg.write_text(BASE, encoding="utf-8")
    rd = start_daemon(short_dir, "--config", str(cfg))
    clients: list[DaemonClient] = []
    try:
        info = rd.info()
        assert info is not None
        a = DaemonClient(info.endpoints, info.mode)
        b = DaemonClient(info.endpoints, info.mode)
        clients += (a, b)
        app = make_app(a, load_safe_list(cfg))
        app.animation_level = "none"
        async with app.run_test(size=SMALL):
            assert await a.wait_ready(30)
            await b.start(ConsoleModel(list(load_safe_list(cfg).active_symbols()), {}))
            board = app.screen
            assert "BNB/USDT" not in board.panes
            cfg.write_text(BASE + BNB, encoding="utf-8")
            await _reload_from(b)
            await until(lambda: "BNB/USDT" in board.panes, timeout_s=20, what="A's BNB/USDT pane")
            await until(lambda: app.model.config_version == 2, what="A's config version")
            await until(lambda: app.model.pairs["BNB/USDT"].state.ticks > 0, timeout_s=20, what="BNB prices on A")
            app.repaint_now()
            assert "v2" in str(board.header.render())
            # the board as it now stands is kept out of the collector's full passes, BNB's pane too
            await until(lambda: frozen(board.panes["BNB/USDT"]), what="the new pane frozen with the heap")
            bnb = weakref.ref(board.panes["BNB/USDT"])
            cfg.write_text(BASE, encoding="utf-8")  # BNB removed again, flat: its pane goes
            await _reload_from(b)
            await until(lambda: "BNB/USDT" not in board.panes, timeout_s=20, what="A's BNB/USDT pane gone")
            # ... and the removed pane is collected before the heap is frozen again: not kept
            # frozen for the console's life (a collection by the test could not free it then)
            await until(lambda: gc.get_freeze_count() > 0, what="the heap frozen again after the removal")
            gc.collect()
            assert bnb() is None, "the removed pane was frozen with the heap: never collected"
            assert app.model.config_version == 3
            assert a.bridge is not None and a.bridge.bad_messages == 0
    finally:
        for c in clients:  # also when an assertion failed (a context left to the collector hangs it)
            await c.stop()
        gc.unfreeze()
        rd.stop()


def test_the_bridge_hands_a_config_message_on_and_drops_a_malformed_one(tmp_path: Path) -> None:
    from console.bridge import Bridge
    from console.rundir import Endpoints
    from engine.wire import commands as engine_wire

    ends = Endpoints(*(f"ipc://{tmp_path}/{n}" for n in ("fp", "fr", "p", "c")))
    bridge = Bridge(ends, ConsoleModel(["BTC/USDT"], {}))
    heard: list[dict] = []  # type: ignore[type-arg]
    bridge.on_config = heard.append
    good = {"v": 1, "ts": 1, "version": 2, "digest": "ab", "pairs": ["BTC/USDT"], "trigger": "x", "ok": True,
            "result": "", "lines": []}  # fmt: skip
    bridge.dispatch("daemon", [b"config", engine_wire.pack(good)])
    bridge.dispatch("daemon", [b"config", engine_wire.pack({**good, "version": "2"})])
    assert [m["version"] for m in heard] == [2] and bridge.bad_messages == 1
