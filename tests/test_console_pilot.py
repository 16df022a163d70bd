"""Behaviour of the console app driven by Textual's Pilot: every key, its confirm flow and the
ack the operator sees, navigation, the detail and help screens, both layouts, the model's
handling of bad input, and the orderly exit. The backend is the FakeBackend; the clock is frozen.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.pilot import Pilot

import console.actions as console_actions
from console.app import MultiparApp, make_app
from console.model import Ack, Backend, ConsoleModel
from console.screens.confirm import ConfirmScreen
from console.screens.detail import PairDetailScreen
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from engine.wire.schema import IndicatorsMsg
from tests.console_fakes import (
    FROZEN_MS,
    SMALL,
    WIDE,
    FakeBackend,
    FrozenClock,
    btc_state,
    eth_state,
    make_safe_list,
    notice_msg,
    order_msg,
    pair_msg,
    portfolio_msg,
    screen_text,
    sol_state,
)

REPO = Path(__file__).resolve().parent.parent


def build(backend: FakeBackend, clock: FrozenClock | None = None, **kw: object) -> MultiparApp:
    app = make_app(backend, make_safe_list(), clock=clock or FrozenClock(), **kw)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app


async def wait_for(
    pilot: Pilot[None], cond: Callable[[], object], what: str, timeout: float = 10.0
) -> None:
    """Let the app run until ``cond()`` holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.02)


async def ready(pilot: Pilot[None], backend: FakeBackend) -> MultiparApp:
    """Wait for the backend to have delivered the board, then paint it."""
    app = pilot.app
    assert isinstance(app, MultiparApp)
    await wait_for(pilot, backend.started.is_set, "backend.start")
    app.repaint_now()
    await pilot.pause()
    return app


def events(app: MultiparApp) -> list[str]:
    return [e.text for e in app.model.events]


def notifications(app: MultiparApp) -> list[str]:
    return [n.message for n in app._notifications]


async def wait_ack(pilot: Pilot[None], app: MultiparApp, prefix: str) -> str:
    """The event line of the ack that starts with ``prefix``; it must carry elapsed ms."""
    await wait_for(pilot, lambda: any(t.startswith(prefix) for t in events(app)), f"ack {prefix!r}")
    line = next(t for t in events(app) if t.startswith(prefix))
    assert re.search(r": (ok|FAILED) \(\d+ ms\) — ", line), line
    assert line in notifications(app), "the ack must also be shown as a notification"
    return line


def pane_text(app: MultiparApp, symbol: str) -> str:
    return app.main.panes[symbol].text()


# ---------------------------------------------------------------------- board and layout


async def test_three_panes_from_injected_state() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        assert isinstance(backend, Backend)
        assert backend.starts == 1
        assert list(app.main.panes) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
        btc, eth, sol = (pane_text(app, s) for s in app.main.panes)
        assert "ACTIVE" in btc and "LONG 0.0082" in btc and "BUY 72%" in btc
        assert "PAUSED" in eth and "REJECTED" in eth and "correlated positions 2" in eth
        assert "STALE" in sol and "flat" in sol
        text = screen_text(app)
        assert "PAPER" in text and "Equity 10,00" in text and "UTC 22:13:20" in text
        assert "✗ REJECTED" in text and "confidence 0.41 < min 0.60" in text
        assert "Exposure" in text and "Correlated" in text and "0.86" in text
        # full panes: quote + sparkline + stats shown, the compact row hidden
        pane = app.main.panes["BTC/USDT"]
        assert pane.quote.display and pane.spark.display and not pane.row.display
        assert pane.outer_size.height == 21  # 13 rows and a taller chart (console/screens/fit.py)


async def test_compact_layout_at_80x24_is_one_row_per_pair() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        assert app.main.compact
        for sym, pane in app.main.panes.items():
            # one row per pair; the selected one has its position's line under it
            assert pane.outer_size.height == (2 if sym == "BTC/USDT" else 1)
            assert pane.row.display and not pane.quote.display and not pane.spark.display
            row = pane_text(app, sym)
            assert sym in row
        assert re.search(
            r"BTC/USDT\s+36,\d{3}\.\d\d\s+\+1\.23%\s+ACTIVE\s+56\.4\s+LONG 0\.0082\s+\+\d",
            pane_text(app, "BTC/USDT"),
        )
        assert "PAUSED" in pane_text(app, "ETH/USDT")
        assert "STALE" in pane_text(app, "SOL/USDT") and "flat" in pane_text(app, "SOL/USDT")
        lines = screen_text(app).splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert any("PAIR" in line and "uPnL" in line for line in lines)
        assert any("^k KILL" in line for line in lines), (
            "the kill key must be visible at 80 columns"
        )


async def test_layout_switches_on_resize() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        assert app.main.compact
        await pilot.resize_terminal(*WIDE)
        await wait_for(pilot, lambda: not app.main.compact, "the full layout")
        await pilot.pause()
        # 48 rows less header, gauges and footer: 42, half for the panes (a taller chart)
        assert app.main.panes["BTC/USDT"].outer_size.height == 21
        assert app.main.columns == 3


async def test_timer_repaints_ingested_state_without_help() -> None:
    """Ingest only marks dirty; the 12 Hz timer must pick it up on its own."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        app.model.apply_pair(btc_state(last=41_234.56, mode="REDUCING"))
        assert "BTC/USDT" in app.model.dirty
        await wait_for(pilot, lambda: "41,234.56" in screen_text(app), "the new price on screen")
        assert "REDUCING" in pane_text(app, "BTC/USDT")


# ---------------------------------------------------------------------- pause / resume


async def test_pause_sends_command_shows_ack_and_paused_after_state() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        assert app.selected_symbol == "BTC/USDT"
        await pilot.press("p")
        await wait_for(pilot, lambda: backend.commands, "the pause command")
        assert backend.commands == [("pause", "BTC/USDT")]
        line = await wait_ack(pilot, app, "pause BTC/USDT: ok")
        assert "pause BTC/USDT done" in line
        app.model.apply_pair(btc_state(mode="PAUSED"))  # what the engine publishes next
        app.repaint_now()
        await pilot.pause()
        assert "PAUSED" in pane_text(app, "BTC/USDT")
        assert "ACTIVE" not in pane_text(app, "BTC/USDT")


async def test_resume_on_a_paused_pair() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("right")
        assert app.selected_symbol == "ETH/USDT"
        await pilot.press("p")
        await wait_ack(pilot, app, "resume ETH/USDT: ok")
        assert backend.commands == [("resume", "ETH/USDT")]


async def test_ack_modes_show_at_once() -> None:
    backend = FakeBackend(
        acks={"pause": Ack("pause", True, "paused", 3.0, modes={"BTC/USDT": "PAUSED"})}
    )
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("p")
        await wait_ack(pilot, app, "pause BTC/USDT: ok")
        app.repaint_now()
        await pilot.pause()
        assert "PAUSED" in pane_text(app, "BTC/USDT")


async def test_failed_command_is_shown_as_failure() -> None:
    backend = FakeBackend(acks={"pause": Ack("pause", False, "engine refused: unknown pair", 4.0)})
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("p")
        line = await wait_ack(pilot, app, "pause BTC/USDT: FAILED")
        assert "engine refused" in line
        assert app.model.events[-1].level == "error"


async def test_unanswered_command_fails_within_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_actions, "COMMAND_TIMEOUT_S", 0.3)
    backend = FakeBackend(hang=True)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        t0 = time.monotonic()
        await pilot.press("p")
        line = await wait_ack(pilot, app, "pause BTC/USDT: FAILED")
        assert "no ack within 300 ms" in line
        assert time.monotonic() - t0 < 5.0


# ---------------------------------------------------------------------- flatten


async def test_flatten_confirm_yes_sends_flatten() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "flatten"
        assert "Flatten BTC/USDT?" in screen_text(app)
        assert backend.commands == []
        await pilot.press("y")
        await wait_ack(pilot, app, "flatten BTC/USDT: ok")
        assert backend.commands == [("flatten", "BTC/USDT")]
        assert isinstance(app.screen, MainScreen)


@pytest.mark.parametrize("key", ["n", "escape", "enter", "space", "x", "tab"])
async def test_flatten_anything_but_y_cancels(key: str) -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        await pilot.pause(0.1)
        assert backend.commands == []
        assert any("Flatten BTC/USDT: cancelled" in t for t in events(app))


async def test_flatten_is_disabled_on_a_flat_pair_and_the_footer_shows_it() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        assert app.screen.active_bindings["f"].enabled is True
        await pilot.press("right", "right")
        assert app.selected_symbol == "SOL/USDT"
        await pilot.pause()
        assert app.screen.active_bindings["f"].enabled is False
        footer_keys = app.screen.query("FooterKey")
        flatten = [k for k in footer_keys if k.action == "flatten"]
        assert flatten and flatten[0].has_class("-disabled")
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert backend.commands == []


async def test_flatten_all_confirm_yes() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("F")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "flatten_all"
        assert "Flatten all 2 positions?" in screen_text(app)
        await pilot.press("y")
        await wait_ack(pilot, app, "flatten_all: ok")
        assert backend.commands == [("flatten_all", None)]


async def test_flatten_all_disabled_when_flat() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        app.model.apply_pair(btc_state(position=None))
        app.model.apply_pair(eth_state(position=None))
        app.repaint_now()
        await pilot.pause()
        assert app.screen.active_bindings["F"].enabled is False
        await pilot.press("F")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


# ---------------------------------------------------------------------- kill switch


async def test_kill_needs_ctrl_k_then_y() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "kill"
        assert backend.kills == 0
        assert "KILL SWITCH?" in screen_text(app)
        await pilot.press("y")
        line = await wait_ack(pilot, app, "KILL: ok")
        assert "halted; 2 positions flattened" in line
        assert backend.kills == 1
        # the engine's ack says halted: shown at once, before any portfolio message
        assert app.model.halted and app.screen.active_bindings["r"].enabled is True
        assert "HALTED" in screen_text(app).splitlines()[0]
        assert backend.commands == [], "the kill switch goes through Backend.kill, not command()"


@pytest.mark.parametrize("key", ["n", "escape", "enter", "ctrl+k", "ctrl+c", "k", "Y"])
async def test_ctrl_k_then_anything_but_y_does_not_kill(key: str) -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("ctrl+k", key)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        await pilot.pause(0.1)
        assert backend.kills == 0
        assert not any(t.startswith(("KILL:", "KILL (", "KILL switch:")) for t in events(app))
        assert "KILL SWITCH: cancelled" in events(app)


async def test_kill_fallback_ack_is_shown() -> None:
    backend = FakeBackend(hung_engine=True)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("ctrl+k", "y")
        line = await wait_ack(pilot, app, "KILL (fallback")
        assert "the daemon stopped the engine, flattened from the book" in line
        assert "engine silent for 1000 ms" in line and "(1350 ms)" in line
        assert app.model.events[-1].level == "warning"


async def test_ctrl_k_over_another_dialog_replaces_it_with_the_kill_confirm() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "flatten"
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "kill"
        assert len(app.screen_stack) == 2, "the flatten dialog was cancelled, not stacked"
        await pilot.press("y")
        await wait_ack(pilot, app, "KILL: ok")
        assert backend.commands == []


async def test_kill_disabled_when_already_halted_and_flat() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        assert app.screen.active_bindings["ctrl+k"].enabled is True
        for state in (btc_state, eth_state, sol_state):
            app.model.apply_pair(state(mode="HALTED", position=None))
        app.model.apply_portfolio(portfolio_msg(halted=True))
        app.repaint_now()
        await pilot.pause()
        assert app.screen.active_bindings["ctrl+k"].enabled is False
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


# ---------------------------------------------------------------------- re-arm


async def test_rearm_after_halt_with_confirm() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        assert app.screen.active_bindings["r"].enabled is False
        for state in (btc_state, eth_state, sol_state):
            app.model.apply_pair(state(mode="HALTED", position=None))
        app.model.apply_portfolio(portfolio_msg(halted=True))
        app.repaint_now()
        await pilot.pause()
        assert "HALTED" in screen_text(app)
        assert app.screen.active_bindings["r"].enabled is True
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "rearm"
        await pilot.press("y")
        await wait_ack(pilot, app, "rearm: ok")
        assert backend.commands == [("rearm", None)]


async def test_rearm_when_not_halted_does_nothing() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert backend.commands == []


# ---------------------------------------------------------------------- quit


async def test_q_with_open_positions_warns_and_n_stays() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "quit"
        assert "Quit with 2 open position(s)?" in screen_text(app)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen)
        assert app.is_running and backend.stops == 0


async def test_q_with_open_positions_then_y_stops_and_exits() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert backend.stops == 1


async def test_q_when_flat_quits_at_once_and_stops_the_backend() -> None:
    backend = FakeBackend(board=False)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        assert app.model.open_positions() == []
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert backend.stops == 1


async def test_shutdown_is_orderly_and_idempotent() -> None:
    """What the CLI's SIGHUP/SIGTERM handler calls."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await asyncio.gather(app.shutdown(), app.shutdown())
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert backend.stops == 1


async def test_attached_q_detaches_at_once_even_with_positions_open() -> None:
    """Attached to a daemon: q is "Detach" in the footer and never asks: trading goes on."""
    backend = FakeBackend(detaches=True)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        assert app.model.open_positions()
        assert "q Detach" in screen_text(app) and "q Quit" not in screen_text(app)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to detach")
    assert backend.stops == 1 and backend.stop_requests == []


async def test_stop_trading_with_positions_open_is_flatten_then_stop() -> None:
    backend = FakeBackend(detaches=True)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("S")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "stop"
        assert "Flatten 2 position(s), then stop trading?" in screen_text(app)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert backend.stop_requests == [] and app.is_running
        await pilot.press("S", "y")
        await wait_for(pilot, lambda: not app.is_running, "the app to leave once stopping")
    assert backend.stop_requests == [True]


async def test_stop_trading_refused_keeps_the_console() -> None:
    backend = FakeBackend(
        detaches=True, board=False, acks={"stop": Ack("stop", False, "engine did not answer")}
    )
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("S")
        assert "Stop trading?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.stop_requests == [False], "the stop request")
        await pilot.pause(0.1)
        assert app.is_running and backend.stops == 0


# ---------------------------------------------------------------------- navigation


async def test_navigation_in_the_grid() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        seen = []
        for key in ["right", "right", "right", "left", "tab", "tab", "shift+tab", "down", "up"]:
            await pilot.press(key)
            seen.append(app.selected_symbol)
        assert seen == [
            "ETH/USDT", "SOL/USDT", "SOL/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT", "SOL/USDT",
            "SOL/USDT", "SOL/USDT",
        ]  # fmt: skip
        assert app.main.panes["SOL/USDT"].has_class("-selected")
        assert not app.main.panes["BTC/USDT"].has_class("-selected")


async def test_navigation_in_compact_rows() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        seen = []
        for key in ["j", "j", "j", "k", "down", "up", "up"]:
            await pilot.press(key)
            seen.append(app.selected_symbol)
        assert seen == [
            "ETH/USDT",
            "SOL/USDT",
            "SOL/USDT",
            "ETH/USDT",
            "SOL/USDT",
            "ETH/USDT",
            "BTC/USDT",
        ]
        await pilot.press("j")
        app.repaint_now()
        await pilot.pause()
        assert pane_text(app, "ETH/USDT").startswith("▸ ETH/USDT")
        assert not pane_text(app, "BTC/USDT").startswith("▸")


async def test_selection_drives_the_pair_commands() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("j", "f", "y")
        await wait_ack(pilot, app, "flatten ETH/USDT: ok")
        assert backend.commands == [("flatten", "ETH/USDT")]


# ---------------------------------------------------------------------- detail and help


async def test_enter_opens_detail_escape_returns_and_kill_works_there() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("right", "enter")
        assert isinstance(app.screen, PairDetailScreen) and app.screen.symbol == "ETH/USDT"
        app.repaint_now()
        await pilot.pause()
        text = screen_text(app)
        assert "Decisions · ETH/USDT" in text and "correlated positions 2 >= max 2" in text
        assert "BTC/USDT  entry long" not in text, "the detail shows this pair's decisions only"
        assert "┤" in text, "the chart has a price axis"
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "kill"
        await pilot.press("y")
        await wait_ack(pilot, app, "KILL: ok")
        assert isinstance(app.screen, PairDetailScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert backend.kills == 1


async def test_detail_keys_act_on_its_pair() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("enter", "p")
        await wait_ack(pilot, app, "pause BTC/USDT: ok")
        assert isinstance(app.screen, PairDetailScreen)


async def test_help_lists_every_key_and_kill_works_from_it() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for needle in ["^k", "Kill switch", "Pause the selected pair", "Flatten every open position",
                       "Re-arm", "Open the selected pair's detail", "↑, k", "tab", "ctrl+p", "esc"]:  # fmt: skip
            assert needle in text, needle
        await pilot.press("p")  # app keys do not leak through the help screen
        await pilot.pause(0.1)
        assert backend.commands == []
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "kill"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and backend.kills == 0
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_offers_the_actions() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ["KILL switch", "Flatten all positions", "Flatten BTC/USDT", "Pause or resume BTC/USDT",
                      "Re-arm after a halt", "Ping the engine", "Help: every key", "Select SOL/USDT"]:  # fmt: skip
            assert title in titles, title
        await pilot.press("ctrl+p")
        await pilot.press(*"ping the engine")
        await wait_for(pilot, lambda: "Ping the engine" in screen_text(app), "the palette hit")
        await pilot.press("enter")
        await wait_ack(pilot, app, "ping: ok")
        assert backend.commands == [("ping", None)]


# ---------------------------------------------------------------------- model and logging


def test_model_refuses_what_does_not_fit_the_safe_list() -> None:
    """Malformed maps never reach the model (the bridge drops them: tests/test_wire_contract.py);
    well-typed messages about something the console does not know are counted and dropped."""
    clock = FrozenClock()
    model = ConsoleModel(
        ["BTC/USDT"], {"BTC/USDT": {"tier": "STABLE", "strategy": "momentum"}}, clock=clock
    )
    pv = model.pairs["BTC/USDT"]
    assert pv.state.tier == "STABLE" and pv.is_stale(clock()) and pv.badge(clock()) == "STALE"
    model.apply_pair(pair_msg("DOGE/USDT"))
    model.apply_pair(pair_msg("BTC/USDT", mode="WEIRD"))
    model.apply_heartbeat("router", 1)
    model.set_child("engine", colour="red")
    assert model.malformed == 4
    assert "no field" in model.last_malformed
    assert pv.received_at is None and pv.state.last is None and pv.state.mode == "ACTIVE"


def test_closes_survive_a_state_without_them() -> None:
    model = ConsoleModel(["BTC/USDT"], {}, clock=FrozenClock())
    first = pair_msg("BTC/USDT")
    model.apply_pair(first)
    assert model.take_chart_dirty() == {"BTC/USDT"}
    later = pair_msg("BTC/USDT", last=37_000.0)
    later.closes = None  # the engine sends closes at most twice a second
    model.apply_pair(later)
    pv = model.pairs["BTC/USDT"]
    assert pv.closes == first.closes and pv.state.last == 37_000.0
    assert model.take_chart_dirty() == set()


def test_staleness_is_the_engines_verdict_or_its_silence() -> None:
    """STALE = the engine's ``stale`` flag, no state yet, or a state older than PAIR_SILENT_S;
    the console never compares a tick age with the safe list's ``stale_after_s`` itself."""
    from engine.wire.liveness import PAIR_REFRESH_S, PAIR_SILENT_S

    clock = FrozenClock()
    model = ConsoleModel(["BTC/USDT"], {}, clock=clock)
    pv = model.pairs["BTC/USDT"]
    model.apply_pair(pair_msg("BTC/USDT", tick_age_ms=60_000))  # old tick, engine says fresh
    assert not pv.is_stale(clock()) and pv.badge(clock()) == "ACTIVE"
    assert pv.tick_age_s(clock()) == 60.0
    clock.advance(PAIR_SILENT_S - 0.1)
    assert not pv.is_stale(clock())
    clock.advance(0.2)  # the engine republishes every PAIR_REFRESH_S: it is not speaking
    assert PAIR_SILENT_S > PAIR_REFRESH_S and pv.is_stale(clock())
    model.apply_pair(pair_msg("BTC/USDT", stale=True))
    assert pv.badge(clock()) == "STALE"
    model.apply_pair(pair_msg("BTC/USDT", stale=True, mode="HALTED"))
    assert pv.badge(clock()) == "HALTED"


def test_a_pair_s_silence_follows_the_roll_call_s_period_at_any_number_of_pairs() -> None:
    """Above the roll-call's budget the engine refreshes each quiet pair less often than once a
    second (engine/wire/liveness.py); the console waits as many periods before it calls a
    silent pair STALE, and follows a reload that changes the number of pairs."""
    from types import SimpleNamespace

    from console.reload_view import set_pairs
    from engine.wire.liveness import ROLLCALL_PER_S, pair_refresh_s, pair_silent_s

    assert pair_refresh_s(3) == pair_refresh_s(ROLLCALL_PER_S) == 1.0 and pair_refresh_s(1000) == 2.0
    symbols = [f"C{i:03d}/USDT" for i in range(750)]
    clock = FrozenClock()
    model = ConsoleModel(symbols, {}, clock=clock)
    pv = model.pairs[symbols[7]]
    assert pv.silent_after_s == pair_silent_s(750) == 4.5
    model.apply_pair(pair_msg(symbols[7]))
    clock.advance(4.4)  # three periods of 1.5 s not yet missed: a 3-pair console would say STALE
    assert not pv.is_stale(clock())
    clock.advance(0.2)
    assert pv.is_stale(clock())
    # a reload down to two pairs: once a second again, silent after three
    pair = SimpleNamespace(tier="STABLE", strategy="momentum", max_position_size_usd=500)
    cfg = SimpleNamespace(active_symbols=lambda: symbols[:2], pairs=dict.fromkeys(symbols[:2], pair))
    set_pairs(model, cfg)
    assert list(model.pairs) == symbols[:2]
    assert {v.silent_after_s for v in model.pairs.values()} == {3.0}


def test_halted_is_the_engines_and_an_ack_shows_it_at_once() -> None:
    model = ConsoleModel(["BTC/USDT", "ETH/USDT"], {}, clock=FrozenClock())
    model.apply_pair(pair_msg("BTC/USDT", mode="HALTED"))
    assert not model.halted  # one HALTED pair is not the console's to generalise
    model.apply_portfolio(portfolio_msg(halted=True))
    assert model.halted
    model.apply_ack(Ack("rearm", True, "re-armed", modes={"BTC/USDT": "ACTIVE"}, halted=False))
    assert not model.halted and model.pairs["BTC/USDT"].state.mode == "ACTIVE"
    model.apply_ack(Ack("ping", True, "pong"))  # halted None: not said
    assert not model.halted
    model.apply_ack(Ack("kill", True, "halted", fallback=True, halted=True))
    assert model.halted
    model.apply_portfolio(portfolio_msg(halted=False))
    assert not model.halted


def test_orders_and_notices_reach_the_event_log() -> None:
    model = ConsoleModel(["BTC/USDT"], {}, clock=FrozenClock())
    model.apply_order(order_msg("BTC/USDT", "accepted"))
    model.apply_order(order_msg("BTC/USDT", "filled"))
    assert list(model.events) == []  # the fill tells the operator
    assert model.pairs["BTC/USDT"].order is not None
    model.apply_order(
        order_msg("BTC/USDT", "rejected", qty=0.00001, message="qty rounds to 0 at the lot step")
    )
    model.apply_notice(notice_msg("kill switch: all pairs HALTED", "error"))
    model.apply_notice(notice_msg("odd level", "shouting", kind="x"))
    (rejected, kill, odd) = model.events
    assert rejected.level == "error"
    assert rejected.text == (
        "order BTC/USDT buy 1e-05 rejected (signal): qty rounds to 0 at the lot step"
    )
    assert (kill.level, kill.text) == ("error", "kill switch: all pairs HALTED")
    assert odd.level == "info"
    assert model.pairs["BTC/USDT"].order.status == "rejected"  # type: ignore[union-attr]


async def test_missing_values_render_as_dashes() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        bare = pair_msg("BTC/USDT")
        bare.ind = IndicatorsMsg()  # warming up: no indicator yet
        bare.signal = bare.decision = None
        bare.change_pct = None
        app.model.apply_pair(bare)
        app.repaint_now()
        await pilot.pause()
        text = pane_text(app, "BTC/USDT")
        assert "RSI —" in text and "MA live — / —" in text and "Signal —" in text
        assert "no decision yet" in text and "flat" in text


async def test_a_pending_exit_is_shown() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        app.model.apply_pair(btc_state(exit_pending="stop: insufficient balance"))
        app.repaint_now()
        await pilot.pause()
        assert "exit pending: stop: insufficient balance" in pane_text(app, "BTC/USDT")


def test_ingest_is_cheap() -> None:
    """Not a benchmark: a loose bound that catches an accidental O(n) or a widget call."""
    model = ConsoleModel(["BTC/USDT"], {}, clock=time.monotonic)
    m = btc_state()
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        model.apply_pair(m)
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    assert per_call_us < 100, f"apply_pair costs {per_call_us:.1f} µs"
    assert model.take_dirty() >= {"BTC/USDT"}
    assert model.take_dirty() == set()


async def test_events_go_to_the_log_file_not_the_screen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "console.log"
    backend = FakeBackend()
    app = build(backend, log_path=log_path)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("p")
        await wait_ack(pilot, app, "pause BTC/USDT: ok")
    text = log_path.read_text()
    assert "pause BTC/USDT: ok" in text and "engine running" in text
    out = capsys.readouterr()
    assert "pause BTC/USDT" not in out.out and "pause BTC/USDT" not in out.err


def test_docs_keys_md_names_every_binding() -> None:
    doc = (REPO / "docs" / "keys.md").read_text()
    from textual.binding import Binding

    for cls in (MultiparApp, MainScreen, PairDetailScreen, HelpScreen):
        for b in cls.BINDINGS:
            assert isinstance(b, Binding)
            assert b.id and f"`{b.id}`" in doc, f"docs/keys.md lacks binding id {b.id}"
            for key in b.key.split(","):
                assert f"`{key}`" in doc, f"docs/keys.md lacks key {key} ({b.id})"


def test_fakes_are_the_engine_schema_and_docs_name_every_field() -> None:
    """The fakes build the engine's own typed messages (what they send survives the codec), and
    docs/wire.md names every field of every message the console reads."""
    import dataclasses

    from engine.wire import schema

    for msg in (btc_state(), eth_state(), sol_state(), portfolio_msg(), order_msg("BTC/USDT")):
        wire = msg.to_wire()
        assert type(msg).from_wire(wire) == msg
    doc = (REPO / "docs" / "wire.md").read_text()
    published = (
        schema.PairStateMsg, schema.PortfolioMsg, schema.DecisionMsg, schema.OrderMsg,
        schema.FillMsg, schema.NoticeMsg, schema.HeartbeatMsg, schema.AckMsg,
        schema.IndicatorsMsg, schema.SignalMsg, schema.DecisionBriefMsg, schema.PositionMsg,
    )  # fmt: skip
    for cls in published:
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in doc, f"docs/wire.md lacks {cls.__name__}.{f.name}"
    assert FROZEN_MS == 1_700_000_000_000


async def test_bindings_can_be_remapped_by_id() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        app.set_keymap({"pair.flatten": "x", "kill": "ctrl+t"})
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "flatten"
        await pilot.press("n", "ctrl+t")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "kill"
        await pilot.press("escape", "question_mark")
        assert "ctrl+t" in screen_text(app) or "^t" in screen_text(app)


def _style_at(text: Text, needle: str) -> Style:
    """The combined style of the first character of ``needle`` in a rendered line."""
    start = text.plain.index(needle)
    return text.get_style_at_offset(Console(), start)


async def test_header_shows_mode_feed_children_and_pnl() -> None:
    clock = FrozenClock()
    backend = FakeBackend(mode="LIVE")
    app = build(backend, clock)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        header = app.main.header
        line = header.render()
        assert line.plain.startswith(" LIVE ")
        assert _style_at(line, "LIVE").bgcolor == app.palette.badge_live.bgcolor  # red
        assert "feed connected (sim, 0 reconnects)" in line.plain
        assert "Day +4.40" in line.plain
        assert _style_at(line, "+4.40").color == app.palette.up.color

        m = app.model
        m.set_child(
            "engine", state="restarting", next_restart_s=4.0, restarts=1, message="no heartbeat"
        )
        m.set_child("feed", state="dead", message="exit code 1")
        m.apply_feed_status(
            {"state": "reconnecting", "source": "binance", "reconnects": 3, "last_error": "timeout"}
        )
        m.apply_portfolio(portfolio_msg(daily_pnl=-12.5))
        clock.advance(1.2)
        line = header.render()
        assert "engine restarting in 3s" in line.plain
        assert "feed dead" in line.plain
        assert "reconnecting (binance, 3 reconnects)" in line.plain
        assert _style_at(line, "-12.50").color == app.palette.down.color
        assert "feed reconnecting: timeout" in events(app)
        assert "engine restarting: no heartbeat" in events(app)
        assert "feed dead: exit code 1" in events(app)

        m.set_child("engine", state="running", last_beat=clock() - 5.0)
        assert "engine silent 5s" in header.render().plain


async def test_stale_tick_age_is_red() -> None:
    clock = FrozenClock()
    backend = FakeBackend()
    app = build(backend, clock)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        quote = app.main.panes["BTC/USDT"].quote
        fresh = quote.render()
        assert _style_at(fresh, "0.2s").color != app.palette.error.color
        clock.advance(11.0)  # no state for longer than PAIR_SILENT_S: the engine is not speaking
        aged = quote.render()
        assert "age 11s" in aged.plain and "STALE" in aged.plain
        assert _style_at(aged, "11s").color == app.palette.error.color


async def test_backend_start_failure_is_shown_and_the_app_survives() -> None:
    backend = FakeBackend(start_error="engine binary not found")
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await wait_for(
            pilot, lambda: any("backend failed to start" in t for t in events(app)), "the error"
        )
        assert "RuntimeError: engine binary not found" in events(app)[-1]
        assert app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to exit")
    assert backend.stops == 1


async def test_only_panes_in_view_are_repainted_and_hidden_ones_catch_up_on_scroll() -> None:
    """100 pairs with 9 on screen: painting hidden panes was most of the console's CPU."""
    from engine.core.config import Tier

    pairs = tuple((f"C{i:02d}/USDT", Tier.VOLATILE, "momentum", 100.0) for i in range(12))
    backend = FakeBackend(board=False)
    app = make_app(backend, make_safe_list(pairs), clock=FrozenClock())  # type: ignore[arg-type]
    app.animation_level = "none"
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, backend.started.is_set, "backend.start")
        for sym, *_ in pairs:
            app.model.apply_pair(pair_msg(sym, last=100.0))
        app.repaint_now()
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        first, last = pairs[0][0], pairs[-1][0]
        assert first in main._visible_symbols() and last not in main._visible_symbols()
        painted: list[str] = []
        for sym, pane in main.panes.items():
            pane.repaint = lambda full=True, s=sym: painted.append(s)  # type: ignore[method-assign]
        app.model.apply_pair(pair_msg(first, last=101.0))
        app.model.apply_pair(pair_msg(last, last=101.0))
        app._frame()
        app._frame()  # panes take turns: a price change is drawn within two frames
        assert first in painted and last not in painted
        main.select(len(pairs) - 1)  # scrolls the last pane into view
        await pilot.pause()
        await wait_for(pilot, lambda: last in main._visible_symbols(), "the last pane in view")
        app._frame()
        assert last in painted


async def test_prices_repaint_at_4_hz_selected_6_but_a_mode_change_at_once() -> None:
    backend = FakeBackend()
    async with build(backend).run_test(size=WIDE) as pilot:
        app = await ready(pilot, backend)
        main = app.screen
        assert isinstance(main, MainScreen)
        painted: list[str] = []
        for sym, pane in main.panes.items():
            pane.repaint = lambda full=True, s=sym: painted.append(s)  # type: ignore[method-assign]
        for sym in app.model.symbols:  # settle: what the fake board showed before
            app.model.apply_pair(pair_msg(sym))
        app._frame()
        app._frame()
        counts = []
        per_pair: dict[str, int] = {}
        for _ in range(6):
            for sym in app.model.symbols:
                app.model.apply_pair(pair_msg(sym))
            painted.clear()
            app._frame()
            counts.append(len(painted))
            for sym in painted:
                per_pair[sym] = per_pair.get(sym, 0) + 1
        selected = app.selected_symbol
        assert per_pair.pop(selected) == 3  # the selected pane: every 2nd frame (6 Hz)
        assert per_pair == {s: 2 for s in app.model.symbols if s != selected}  # others 4 Hz
        assert max(counts) < len(app.model.symbols)  # they take turns: never all in one frame
        painted.clear()
        app.model.apply_pair(pair_msg("BTC/USDT", mode="PAUSED"))
        app._frame()
        app.model.apply_pair(pair_msg("BTC/USDT", mode="ACTIVE"))
        app._frame()
        assert painted.count("BTC/USDT") == 2  # the operator's change is never held back


async def test_header_shows_a_ban_and_a_dead_user_stream() -> None:
    from engine.wire.schema import VenueMsg

    backend = FakeBackend(mode="LIVE")
    app = build(backend, FrozenClock())
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        header = app.main.header
        m = app.model
        m.apply_heartbeat("engine", 4242, "running", VenueMsg("running"))
        assert "BANNED" not in header.render().plain and "NO STREAM" not in header.render().plain
        until = int((header.wall() + 120) * 1000)
        m.apply_heartbeat("engine", 4242, "running", VenueMsg("running", banned_until_ms=until))
        line = header.render()
        assert "BANNED" in line.plain
        assert _style_at(line, "BANNED").bgcolor == app.palette.badge("HALTED").bgcolor
        m.apply_heartbeat("engine", 4242, "running", VenueMsg("running", stream_ok=False))
        assert "NO STREAM" in header.render().plain and "BANNED" not in header.render().plain
