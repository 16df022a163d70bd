"""The console's keys as an operator expects them (console/guards.py, console/actions.py),
driven by Textual's Pilot on the FakeBackend: a key that cannot act says why in one line and
sends nothing; P and E stop and resume new entries; a confirm dialog checks again when `y`
confirms it and says "nothing to do" when what it asked about is gone; an ack that found
nothing to do is not a green ok; the header shows the day's and the total PnL and NO ENTRIES."""

from __future__ import annotations

import pytest

from console.model import Ack
from console.screens.confirm import ConfirmScreen
from console.screens.main import MainScreen
from tests.console_fakes import FakeBackend, btc_state, eth_state, portfolio_msg, screen_text
from tests.test_console_pilot import SMALL, WIDE, build, events, notifications, ready, wait_for

pytestmark = pytest.mark.timeout(60)


async def test_a_disabled_key_says_why_in_one_line_and_sends_nothing() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        app.model.apply_pair(btc_state(mode="HALTED"))
        app.repaint_now()
        await pilot.pause()
        assert app.screen.active_bindings["p"].enabled is False  # dimmed in the footer
        await pilot.press("p")
        await pilot.pause(0.1)
        assert notifications(app) == ["BTC/USDT is HALTED: re-arm first (r)"]
        assert backend.commands == []  # nothing was sent
        await pilot.press("r")  # nothing is halted as a whole: r has nothing to re-arm
        await pilot.pause(0.1)
        assert notifications(app)[-1] == "nothing to re-arm: no pair is HALTED"
        app.model.apply_pair(btc_state(position=None))
        app.repaint_now()
        await pilot.press("f")
        await pilot.pause(0.1)
        assert notifications(app)[-1] == "BTC/USDT has no open position: nothing to flatten"
        assert backend.commands == [] and isinstance(app.screen, MainScreen)


async def test_an_enabled_key_says_nothing_of_the_kind() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("p")
        await wait_for(pilot, lambda: backend.commands == [("pause", "BTC/USDT")], "pause sent")
        await pilot.press("j", "k")  # navigation keys act: no refusal line
        await pilot.pause(0.1)
        assert not any("re-arm" in n or "nothing" in n for n in notifications(app))


async def test_p_stops_new_entries_and_e_resumes_them_after_a_confirm() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("E")  # not stopped: nothing to resume, no dialog
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen) and backend.commands == []
        assert notifications(app)[-1] == "new entries are not stopped: nothing to resume (P stops them)"

        await pilot.press("P")  # no confirm: stopping entries only ever lowers risk
        await wait_for(pilot, lambda: backend.commands == [("stop_entries", None)], "stop_entries sent")
        await wait_for(pilot, lambda: any(t.startswith("stop_entries: ok") for t in events(app)), "its ack")

        app.model.apply_portfolio(portfolio_msg(entries_stopped=True))  # what the engine publishes
        app.repaint_now()
        await pilot.pause()
        assert "NO ENT" in screen_text(app).splitlines()[0]
        await pilot.press("P")
        await pilot.pause(0.1)
        assert notifications(app)[-1] == "new entries are already stopped (flatten all): E resumes them"
        assert backend.commands == [("stop_entries", None)]

        await pilot.press("E")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "resume_entries"
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.commands[-1] == ("resume_entries", None), "resume sent")


async def test_a_confirm_checks_again_and_says_nothing_to_do_when_the_position_is_gone() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "flatten"
        app.model.apply_pair(btc_state(position=None))  # a stop closed it while the dialog was open
        await pilot.press("y")
        await pilot.pause(0.1)
        assert backend.commands == []
        line = "Flatten BTC/USDT: nothing to do — BTC/USDT is already flat"
        assert events(app)[-1] == line and notifications(app)[-1] == line
        assert app.model.events[-1].level == "info"


async def test_flatten_all_says_it_stops_entries_and_goes_on_when_only_entries_are_left() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("F")
        assert isinstance(app.screen, ConfirmScreen)
        assert "stop new entries on every pair until you resume them (E)" in app.screen.body
        app.model.apply_pair(btc_state(position=None))
        app.model.apply_pair(eth_state(position=None))  # flat, entries still allowed: F stops them
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.commands == [("flatten_all", None)], "flatten_all sent")

        app.model.apply_portfolio(portfolio_msg(entries_stopped=True))
        app.repaint_now()
        await pilot.pause(0.1)
        await pilot.press("F")  # flat and stopped: nothing left for F
        await pilot.pause(0.1)
        assert notifications(app)[-1] == "no open position: nothing to flatten"
        assert backend.commands == [("flatten_all", None)]


async def test_an_ack_that_found_nothing_to_do_is_not_a_green_ok() -> None:
    noop = Ack("flatten", True, "nothing to do: BTC/USDT is already flat", 9.0, noop=True)
    backend = FakeBackend(acks={"flatten": noop})
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("f", "y")
        await wait_for(pilot, lambda: any(t.startswith("flatten BTC/USDT:") for t in events(app)), "the ack")
        line = next(t for t in events(app) if t.startswith("flatten BTC/USDT:"))
        assert line == "flatten BTC/USDT: nothing to do (9 ms) — nothing to do: BTC/USDT is already flat"
        assert next(e for e in app.model.events if e.text == line).level == "info"


async def test_rearm_confirm_says_pairs_return_to_their_mode_and_rechecks() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        app.model.apply_portfolio(portfolio_msg(halted=True))
        app.repaint_now()
        await pilot.pause()
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen) and "returns to its mode before the halt" in app.screen.body
        app.model.apply_portfolio(portfolio_msg(halted=False))  # another console re-armed meanwhile
        await pilot.press("y")
        await pilot.pause(0.1)
        assert backend.commands == []
        assert events(app)[-1] == "Re-arm trading: nothing to do — nothing to re-arm: no pair is HALTED"


@pytest.mark.parametrize("stopped", [False, True])
@pytest.mark.parametrize(("size", "day", "total"), [(WIDE, "Day ", "Total "), (SMALL, "Day ", "Tot ")])
async def test_the_header_shows_the_day_and_the_total_pnl(
    size: tuple[int, int], day: str, total: str, stopped: bool
) -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=size) as pilot:
        await ready(pilot, backend)
        pf = portfolio_msg(daily_pnl=-12.5, unrealised=20.0, halted=stopped, entries_stopped=stopped)
        app.model.apply_portfolio(pf)
        app.repaint_now()
        await pilot.pause()
        top = screen_text(app).splitlines()[0]
        assert f"{day}-12.50" in top and f"{total}+20.21" in top, top  # total: 1.20 - 0.99 + 20.00
        assert "eng" in top and "run" in top.split("eng")[-1], top  # the processes always stay
        badge = "NO ENTRIES" if size == WIDE else "NO ENT"
        assert (badge in top) is stopped and ("HALTED" in top) is stopped


async def test_the_kill_switch_with_nothing_to_kill_says_so() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        for state in (btc_state, eth_state):
            app.model.apply_pair(state(mode="HALTED", position=None))
        app.model.apply_portfolio(portfolio_msg(halted=True))
        app.model.set_child("engine", state="running")
        app.repaint_now()
        await pilot.press("ctrl+k")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen) and backend.kills == 0
        assert notifications(app)[-1] == "nothing to kill: every pair is HALTED and flat, and the engine runs"
