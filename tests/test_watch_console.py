"""A console scrolled to other pairs receives their state (issue 16, point 3), end to end: a real
daemon with its real feed and engine on 16 pairs, the real app attached through ``DaemonClient``,
scrolled with its own keys. The engine sends a pair's fast state (``view:SYM``) only to the consoles
that show it; the daemon's own model (every pair, once a second on ``pair``) stays whole."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.app import make_app
from console.client import DaemonClient
from engine.core.config import load_safe_list
from tests.console_fakes import SMALL
from tests.procs import until
from tests.test_daemon_process import cli, start_daemon

pytestmark = pytest.mark.timeout(120)

SYMBOLS = [f"C{i:03d}/USDT" for i in range(16)]
PAIR = "{enabled: true, tier: VOLATILE, strategy: momentum, market: spot, leverage: 1, max_position_size_usd: 100}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dw-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _safe_list(d: Path) -> Path:
    path = d / "safe_list.yaml"
    lines = ["version: 1", "portfolio:", "  capital_usd: 10000", "  correlation_groups: []",
             "engine:", "  timeframe: 1m", "  history_candles: 60", "pairs:"]  # fmt: skip
    path.write_text("\n".join([*lines, *(f"  {s}: {PAIR}" for s in SYMBOLS)]) + "\n")
    return path


async def test_a_console_scrolled_to_other_pairs_receives_their_state(short_dir: Path) -> None:
    config = _safe_list(short_dir)
    rd = start_daemon(short_dir, "--config", str(config), "--rate", "5")
    try:
        info = rd.info()
        assert info is not None
        client = DaemonClient(info.endpoints, info.mode)
        app = make_app(client, load_safe_list(config))
        app.animation_level = "none"
        first, last = SYMBOLS[0], SYMBOLS[-1]
        async with app.run_test(size=SMALL) as pilot:
            assert await client.wait_ready(30)
            bridge = client.bridge
            assert bridge is not None
            await until(lambda: first in bridge.watched, what="the top panes watched")
            top = set(bridge.watched)
            assert last not in top and len(top) < len(SYMBOLS)  # 80x24: a screenful, not all 16
            await until(lambda: bridge.views.get(first, 0) >= 3, what="the fast state of a pane in view")
            # an off-screen pair: its state once a second on the roll-call, no fast state
            model = app.model
            await until(lambda: model.pairs[last].state.ticks > 0, what="the roll-call of an off-screen pair")
            assert bridge.views.get(last, 0) == 0

            await pilot.press("shift+tab")  # the previous pair, wrapping: the last one, scrolled into view
            await until(lambda: last in bridge.watched and first not in bridge.watched, what="the scroll")
            await until(lambda: bridge.views.get(last, 0) >= 3, what="the fast state of the pane scrolled to")
            assert model.pairs[last].state.ticks > 0 and model.pairs[last].updates > 3
            await asyncio.sleep(0.5)  # what the engine sent before it heard the unsubscription
            before = bridge.views.get(first, 0)
            await asyncio.sleep(1.5)
            assert bridge.views.get(first, 0) == before  # scrolled out: nothing more
            assert bridge.bad_messages == 0
            await client.stop()
        # the daemon's own model (the roll-call only) knows every pair
        st = json.loads(cli("status", "--json", *rd.where).stdout)
        assert sorted(p["symbol"] for p in st["pairs"]) == SYMBOLS
    finally:
        rd.stop()
