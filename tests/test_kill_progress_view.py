"""The kill progress panel in the running console (Textual Pilot, FakeBackend, frozen clock):
ctrl+k then y opens it in the decision log's place, the messages the bridge would deliver move
each pair's line, Escape closes it, the palette brings it back; paper, the daemon's fallback
and flatten-all; one snapshot at 80×24 of a live kill half-way."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from console.app import MultiparApp
from console.model import Ack
from console.screens.detail import PairDetailScreen
from console.screens.main import MainScreen
from engine.wire.schema import FillMsg, OrderMsg
from tests import console_fakes
from tests.console_fakes import FROZEN_MS, FakeBackend, notice_msg, screen_text
from tests.test_console_pilot import SMALL, WIDE, build, ready, wait_ack, wait_for

CLOSING_ACK = "all pairs HALTED, 0 position(s) flattened, 2 closing (orders sent)"


class LiveKillBackend(FakeBackend):
    """A live engine's kill: it answers at once, the exchange later."""

    async def kill(self) -> Ack:
        self.kills += 1
        halted = dict.fromkeys(self.model.symbols if self.model else (), "HALTED")
        return Ack("kill", True, CLOSING_ACK, 9.0, modes=halted, halted=True)


def order(symbol: str, cid: str, status: str, *, qty: float = 0.0082, reason: str = "kill",
          avg: float = 0.0, message: str = "") -> OrderMsg:  # fmt: skip
    filled = qty if status == "filled" else 0.0
    return OrderMsg(cid, symbol, "sell", qty, status, reason, "", filled, avg, message, FROZEN_MS)


def fill(symbol: str, cid: str, qty: float, price: float) -> FillMsg:
    return FillMsg(f"{cid}/F1", cid, symbol, "sell", qty, price, 0.01, FROZEN_MS, "kill")


def panel_lines(app: MultiparApp) -> list[str]:
    """The panel as drawn (it sits in the decision log's place)."""
    assert app.main.progress_panel.display and not app.main.decision_log.display
    return [line.rstrip() for line in str(app.main.progress_panel.render()).splitlines()]


def line_of(app: MultiparApp, symbol: str) -> str:
    return next(line for line in panel_lines(app) if line.startswith(symbol))


async def painted(pilot: Pilot[None], app: MultiparApp) -> None:
    app.repaint_now()
    await pilot.pause()


async def test_live_kill_shows_each_pairs_progress_then_escape_closes_it() -> None:
    backend = LiveKillBackend(mode="LIVE")
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        m = app.model
        m.apply_order(order("BTC/USDT", "mp-stop", "accepted", reason="stop"))  # resting stop
        await pilot.press("ctrl+k", "y")
        await wait_ack(pilot, app, "KILL: ok")
        await painted(pilot, app)
        assert isinstance(app.screen, MainScreen)
        lines = panel_lines(app)
        assert lines[0].startswith("KILL SWITCH  0/2 flat · 2 in progress")
        assert lines[1].startswith("ack ok (9 ms) — all pairs HALTED")
        assert line_of(app, "BTC/USDT").split()[:2] == ["BTC/USDT", "cancelling"]
        assert line_of(app, "ETH/USDT").split() == ["ETH/USDT", "HALTED", "LONG", "0.146"]
        assert "SOL/USDT" not in screen_text(app).split("KILL SWITCH")[1], "SOL held nothing"
        assert lines[-1].startswith("exchange  … waiting for the engine's check")
        # the venue answers: the stop cancelled, the closes sent, ETH's refused
        m.apply_order(order("BTC/USDT", "mp-stop", "cancelled", reason="stop"))
        m.apply_order(order("BTC/USDT", "mp-close", "new"))
        m.apply_order(order("ETH/USDT", "mp-eth", "rejected", qty=0.146,
                            message="-2010 Account has insufficient balance"))  # fmt: skip
        await painted(pilot, app)
        btc = line_of(app, "BTC/USDT")
        assert btc.split()[1] == "closing" and btc.endswith("stop cancelled › sell 0.0082 sent")
        eth = line_of(app, "ETH/USDT")
        assert eth.split()[1] == "failed" and "rejected: -2010 Account has" in eth
        # BTC filled; the exchange says what is left
        m.apply_fill(fill("BTC/USDT", "mp-close", 0.0082, 36_512.3))
        m.apply_order(order("BTC/USDT", "mp-close", "filled", avg=36_512.3))
        left = "kill: 1 order(s) still open at the exchange (ETH/USDT)"
        m.apply_notice(notice_msg(left, "error", "kill_check"))
        await painted(pilot, app)
        btc = line_of(app, "BTC/USDT")
        assert btc.split()[1:3] == ["flat", "✓"] and btc.endswith("sell 0.0082 @ 36,512.30")
        text = screen_text(app)
        assert "1/2 flat · 1 failed/blocked" in text
        assert f"exchange  ✗ {left}" in text
        # Escape closes the panel (the kill goes on); the palette brings it back
        await pilot.press("escape")
        assert not app.main.progress_panel.display and app.main.decision_log.display
        assert "KILL SWITCH" not in screen_text(app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Show the kill progress" in titles
        app.show_progress()
        await painted(pilot, app)
        assert "KILL SWITCH  1/2 flat" in screen_text(app)


async def test_paper_kill_is_flat_at_once() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("ctrl+k", "y")
        await wait_ack(pilot, app, "KILL: ok")
        await painted(pilot, app)
        assert line_of(app, "BTC/USDT").split()[1:3] == ["flat", "✓"]
        assert line_of(app, "ETH/USDT").split()[1:3] == ["flat", "✓"]
        lines = panel_lines(app)
        assert lines[0].startswith("KILL SWITCH  2/2 flat  done")
        assert lines[-1] == "exchange  not applicable: paper, nothing rests at an exchange"
        app.model.apply_fill(fill("BTC/USDT", "mp-b", 0.0082, 36_540.0))  # its fill, just after
        await painted(pilot, app)
        assert line_of(app, "BTC/USDT").endswith("LONG 0.0082 › sell 0.0082 @ 36,540.00")


async def test_fallback_kill_progress() -> None:
    backend = FakeBackend(hung_engine=True, mode="LIVE", delay_s=0.5)  # the daemon at work
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("ctrl+k", "y")
        await painted(pilot, app)
        lines = panel_lines(app)
        assert lines[0].startswith("KILL SWITCH  0/2 flat · 2 in progress")
        assert lines[1] == "waiting for the engine's answer…"
        assert line_of(app, "BTC/USDT").split()[1] == "waiting"
        await wait_ack(pilot, app, "KILL (fallback")
        await painted(pilot, app)
        lines = panel_lines(app)
        assert lines[1].startswith("ack fallback ok (1350 ms) — engine silent for 1000 ms")
        assert line_of(app, "BTC/USDT").split()[1] == "HALTED"
        assert any(
            line.startswith("exchange  ! not checked: the daemon's fallback") for line in lines
        )
        # the restarted engine says the book is flat
        app.model.apply_pair(console_fakes.btc_state(mode="HALTED", position=None))
        await painted(pilot, app)
        assert line_of(app, "BTC/USDT").split()[1:3] == ["flat", "✓"]


async def test_flatten_all_progress_and_rearm_ends_the_tracking() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("F", "y")
        await wait_ack(pilot, app, "flatten_all: ok")
        await painted(pilot, app)
        assert panel_lines(app)[0].startswith("FLATTEN ALL  2/2 flat  done")
        assert app.model.tap is not None
        app.model.apply_portfolio(console_fakes.portfolio_msg(halted=True))
        await pilot.press("r", "y")
        await wait_ack(pilot, app, "rearm: ok")
        assert app.model.tap is None


async def test_kill_from_the_detail_screen_shows_on_the_board() -> None:
    backend = LiveKillBackend(mode="LIVE")
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("enter", "ctrl+k", "y")
        await wait_ack(pilot, app, "KILL: ok")
        assert isinstance(app.screen, PairDetailScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), "the board")
        await painted(pilot, app)
        assert "KILL SWITCH  0/2 flat" in screen_text(app)


# ---------------------------------------------------------------------- snapshot


@pytest.mark.usefixtures("_deterministic")
def test_snapshot_live_kill_half_way_80x24(snap_compare: Any) -> None:
    backend = LiveKillBackend(mode="LIVE")
    app = build(backend)

    async def run_before(pilot: Pilot[Any]) -> None:
        await backend.started.wait()
        m = app.model
        m.apply_order(order("BTC/USDT", "mp-stop", "accepted", reason="stop"))
        await pilot.press("ctrl+k", "y")
        await wait_for(pilot, lambda: app.progress is not None and app.progress.ack, "the ack")
        m.apply_order(order("BTC/USDT", "mp-stop", "cancelled", reason="stop"))
        m.apply_order(order("BTC/USDT", "mp-close", "filled", avg=36_512.3))
        m.apply_order(order("ETH/USDT", "mp-eth", "rejected", qty=0.146,
                            message="-2010 Account has insufficient balance"))  # fmt: skip
        app.clear_notifications()
        app.repaint_now()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)
