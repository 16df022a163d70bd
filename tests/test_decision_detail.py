"""Why, for every decision: the decision detail screen, exits named, reasons never cut in a
number, prices formatted as the rest of the screen, the pane's live MA beside the closed
candle's reason, and the line an attach leaves in the event log.

Unit tests of ``console/reasons.py``; Pilot tests through the decision log (Enter on a line,
on the board and on a pair's detail screen) into ``DecisionScreen`` with decisions made by the
real risk pipeline (``tests/trade_fakes.py``); snapshots at 80×24 and 160×48.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.binding import Binding
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from console.model import ConsoleModel
from console.reasons import action_words, exit_reason, fit_words, fmt_reason
from console.screens.decision import DecisionScreen
from console.screens.detail import PairDetailScreen
from console.screens.main import MainScreen
from console.widgets.logs import decision_line
from console.widgets.palette import DEFAULT_PALETTE
from engine.backtest.metrics import check_label
from engine.core.models import PairMode
from engine.core.risk import CHECKS
from engine.wire.schema import SignalMsg, SnapshotMsg
from tests import console_fakes
from tests.console_fakes import (
    FROZEN_MS,
    SMALL,
    WIDE,
    FakeBackend,
    FrozenClock,
    btc_state,
    eth_state,
    make_safe_list,
    portfolio_msg,
    screen_text,
    sol_state,
)
from tests.trade_fakes import entry_decision, exit_decision

pytestmark = pytest.mark.timeout(60)

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def btc_entry() -> Any:
    return entry_decision(
        "BTC/USDT", entry=36420.0, stop=35873.7, target=37512.6, ts=FROZEN_MS - 20_000,
        reasoning="MA9 crossed above MA21 (gap 0.45 ATR), RSI 56.4",
    )  # fmt: skip


def sol_refused() -> Any:
    return entry_decision(
        "SOL/USDT", entry=56.41, stop=55.9, target=57.2, ts=FROZEN_MS - 10_000, confidence=0.55,
        reasoning="20-candle breakout above 56.3 (0.52 ATR)", stale=True, mode=PairMode.PAUSED,
    )  # fmt: skip


def eth_stopped() -> Any:
    return exit_decision("ETH/USDT", "stop", 0.146, 2030.1, FROZEN_MS - 5_000)


# ---------------------------------------------------------------------- words and numbers


def test_exits_are_named_by_what_they_were() -> None:
    assert exit_reason(btc_entry()) is None and action_words(btc_entry()) == "entry long"
    stop = eth_stopped()
    assert exit_reason(stop) == "stop" and action_words(stop) == "exit long: stop"
    for reason, words in (
        ("take_profit", "take-profit"), ("flatten", "flatten"), ("kill", "kill switch"),
        ("reconcile-flatten", "reconcile flatten"), ("flatten_all", "flatten all"),
    ):  # fmt: skip
        assert action_words(exit_decision("BTC/USDT", reason, 0.1, 36_000.0, FROZEN_MS)) == (
            f"exit long: {words}"
        )
    signal_exit = exit_decision("BTC/USDT", "x", 0.1, 36_000.0, FROZEN_MS)
    signal_exit.key = f"BTC/USDT|{FROZEN_MS}|SELL"  # a strategy's: keyed by its candle
    assert action_words(signal_exit) == "exit long: signal"
    line = decision_line(stop, DEFAULT_PALETTE).plain
    assert "exit long: stop" in line and "✓ APPROVED 0.146 @ 2,030.10" in line
    assert "100%" not in line and "SELL" not in line and "close_long" not in line


def test_prices_in_reasons_take_the_consoles_format_and_other_numbers_stay() -> None:
    assert fmt_reason("close 36512.3 at/below lower band 36100.12, RSI 28.3 oversold") == (
        "close 36,512.30 at/below lower band 36,100.12, RSI 28.3 oversold"
    )
    assert fmt_reason("inside the bands (2041.1..2060.25), RSI 45.1") == (
        "inside the bands (2,041.10..2,060.25), RSI 45.1"
    )
    assert fmt_reason("stop 0.00012345 must be below entry 1.2e-05 for a long") == (
        "stop 0.00012345 must be below entry 0.000012000 for a long"
    )
    kept = "target +3% = 12.3× round trip 0.243%; reward/risk 1.62; confidence 72% >= 60%"
    assert fmt_reason(kept) == kept
    assert fmt_reason("0.0137 units ($499.68) set by risk $10/(ATR 146.5201×2)", 36_500.0) == (
        "0.0137 units ($499.68) set by risk $10/(ATR 146.52×2)"
    )
    assert fmt_reason("MA9 crossed above MA21 at 12:30") == "MA9 crossed above MA21 at 12:30"


def test_a_line_too_long_is_never_cut_inside_a_number() -> None:
    rng = random.Random(5)
    words = ["36,512.30", "band", "RSI", "28.3", "0.41", "<", "min", "0.60;", "stale", "14.8", "s"]
    for _ in range(500):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        width = rng.randint(12, 70)
        out = fit_words(Text(text), width).plain
        assert len(out) <= width and (out == text or out.endswith("…"))
        if out == text or len(text.split(" ")[0]) + 2 > width:
            continue
        shown = out.removesuffix("…").rstrip().split(" ")
        whole = text.split(" ")
        assert shown[:-1] == whole[: len(shown) - 1]
        last, was = shown[-1], whole[len(shown) - 1]
        if any(c.isdigit() for c in was):  # a number: whole (its ";" may go), never cut
            assert last in (was, was.rstrip(";")), (text, width, out)
        else:
            assert was.startswith(last)
    assert fit_words(Text("REJECTED correlated positions 2 >= max 2"), 32).plain == (
        "REJECTED correlated positions …"
    )
    assert fit_words(Text("REJECTED correlated positions 2 >= max 2"), 37).plain == (
        "REJECTED correlated positions 2 >= m…"
    )
    assert fit_words(Text("confidence 0.41 < min 0.60"), 25).plain == "confidence 0.41 < min …"


# ---------------------------------------------------------------------- the screens


def build() -> tuple[MultiparApp, FakeBackend]:
    backend = FakeBackend()
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    return app, backend


def with_decisions(app: MultiparApp) -> None:
    app.model.decisions.clear()  # the fakes' board decisions carry made-up checks
    for d in (btc_entry(), sol_refused(), eth_stopped()):
        app.model.apply_decision(d)


async def ready(pilot: Pilot[None], backend: FakeBackend) -> MultiparApp:
    app = pilot.app
    assert isinstance(app, MultiparApp)
    await backend.started.wait()
    with_decisions(app)
    app.repaint_now()
    await pilot.pause()
    return app


def flat(app: MultiparApp) -> str:
    """The screen's text with its lines joined and spaces collapsed (a wrapped reason reads
    whole)."""
    return " ".join(screen_text(app).split())


async def test_enter_on_a_board_log_line_shows_every_check_and_browses() -> None:
    app, backend = build()
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("d", "up", "enter")  # into the decision log; the line above: SOL
        screen = app.screen
        assert isinstance(screen, DecisionScreen) and screen.decision.symbol == "SOL/USDT"
        text = flat(app)
        assert "SOL/USDT entry long ✗ REJECTED" in text and "2/3" in text
        assert "refused by 3 of 9 checks: confidence, pair mode, stale data" in text
        for name in CHECKS:  # every recorded check, passed or not, with its figures
            assert check_label(name) in text
        assert "confidence 55% below minimum 60%" in text
        assert "data is STALE (no recent tick): no entries" in text
        assert "stop 55.90, entry 56.41, target 57.20" in text  # the console's price format
        assert "20-candle breakout above 56.30 (0.52 ATR)" in text
        assert "BUY 55%" in text and "on the candle of 22:13:10 (closed)" in text
        await pilot.press("left")
        assert screen.decision.symbol == "BTC/USDT" and "1/3" in flat(app)
        assert "buys 0.01372 @ 36,420.00" in flat(app)
        await pilot.press("left")  # nothing older: stays, says so
        assert screen.decision.symbol == "BTC/USDT"
        await pilot.press("right", "right")
        assert screen.decision.symbol == "ETH/USDT"
        text = flat(app)
        assert "ETH/USDT exit long: stop ✓ APPROVED" in text and "closes 0.146 @ 2,030.10" in text
        assert "stop exit, made by the engine" in text and "stop loss" in text
        assert "100%" not in text
        await pilot.press("ctrl+k")  # the app's keys work here too
        await pilot.press("n")
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_from_a_pairs_detail_enter_opens_its_decisions_only() -> None:
    app, backend = build()
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("enter")  # BTC's detail
        assert isinstance(app.screen, PairDetailScreen)
        bad_stop = entry_decision(
            "BTC/USDT", entry=36_500.0, stop=36_600.0, target=37_000.0, ts=FROZEN_MS,
            reasoning="MA9 crossed above MA21 (gap 0.45 ATR), RSI 56.4",
        )  # fmt: skip
        app.model.apply_decision(bad_stop)
        await pilot.press("d", "enter")  # its decision log, the newest line
        screen = app.screen
        assert isinstance(screen, DecisionScreen) and screen.symbol == "BTC/USDT"
        text = flat(app)
        assert "2/2" in text and "stop 36,600.00 must be below entry 36,500.00 for a long" in text
        await pilot.press("left")
        assert screen.decision.ts == FROZEN_MS - 20_000 and "1/2" in flat(app)
        await pilot.press("left")
        assert screen.decision.ts == FROZEN_MS - 20_000  # no ETH or SOL decision in between
        await pilot.press("escape")
        assert isinstance(app.screen, PairDetailScreen)


async def test_wrapped_reasons_keep_every_number_whole_at_80_columns() -> None:
    app, backend = build()
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        app.open_decision(app.model.decisions[1], None)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert all(len(line) <= 80 for line in lines)
        text = " ".join(line.strip() for line in lines)
        d = app.model.decisions[1]
        for _, _, reason in d.checks:
            for number in NUMBER.findall(fmt_reason(reason, d.price)):
                assert number in text, f"{number} of {reason!r} is cut or missing"
        assert not any(line.rstrip().endswith("…") for line in lines[1:-1])


async def test_the_pane_says_which_ma_is_live_and_which_candle_the_reason_is_from() -> None:
    app, backend = build()
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        sig = SignalMsg(
            "HOLD", 0.0, 36_512.3, reasoning="close 36512.3 at/below lower band 36100.12, RSI 28.3",
            ts=FROZEN_MS - 60_000,
        )  # fmt: skip
        app.model.apply_pair(btc_state(signal=sig))
        app.model.apply_decision(eth_stopped())
        app.model.apply_pair(eth_state(decision=None))
        app.repaint_now()
        await pilot.pause()
        pane = app.main.panes["BTC/USDT"].text()
        assert re.search(r"MA live 36,\d{3}\.\d\d / 36,\d{3}\.\d\d", pane)
        assert "Signal HOLD · closed candle 22:12:20" in pane
        assert "36,512.30" in pane and "36512.3" not in pane
        assert "Last APPROVED entry long" in pane  # the board's BTC decision, named


async def test_an_attach_says_what_it_recovered_and_the_logs_show_it() -> None:
    app, backend = build()
    backend.board = False
    async with app.run_test(size=SMALL) as pilot:
        await backend.started.wait()
        decisions = [btc_entry(), sol_refused(), eth_stopped()]
        snap = SnapshotMsg(
            id="s1",
            portfolio=portfolio_msg(positions=2),
            pairs=[btc_state(), eth_state(), sol_state()],
            decisions=decisions,
            fills=[console_fakes.fill_msg("BTC/USDT")],
            events=[console_fakes.notice_msg("re-armed 3 pair(s)", "info", "rearm")],
        )
        model: ConsoleModel = app.model
        model.apply_snapshot(snap)
        app.repaint_now()
        await pilot.pause()
        texts = [e.text for e in model.events]
        line = "attached: 2 open positions, 3 decisions, 1 fills, 1 events recovered from the book"
        assert texts[-1] == line and texts[0].startswith("[book] ")
        shown = screen_text(app)
        assert line[:60] in shown  # the newest event line: in view at 80×24
        assert "exit long: stop" in shown  # the recovered decisions are in the decision log
        assert list(model.decisions) == decisions


def test_docs_keys_md_names_the_decision_keys() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "keys.md").read_text()
    assert "## Decision detail" in doc
    for b in DecisionScreen.BINDINGS:
        assert isinstance(b, Binding) and b.id and f"`{b.id}`" in doc, b
        assert all(f"`{k}`" in doc for k in b.key.split(",")), b


# ---------------------------------------------------------------------- snapshots

SnapCompare = Callable[..., bool]


def _opened(backend: FakeBackend, index: int) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = await ready(pilot, backend)  # type: ignore[arg-type]
        app.open_decision(app.model.decisions[index], None)
        await pilot.pause()

    return run_before


@pytest.mark.usefixtures("_deterministic")
class TestDecisionSnapshots:
    def test_refused_entry_80x24(self, snap_compare: SnapCompare) -> None:
        app, backend = build()
        assert snap_compare(app, terminal_size=SMALL, run_before=_opened(backend, 1))

    def test_approved_entry_160x48(self, snap_compare: SnapCompare) -> None:
        app, backend = build()
        assert snap_compare(app, terminal_size=WIDE, run_before=_opened(backend, 0))

    def test_stop_exit_80x24(self, snap_compare: SnapCompare) -> None:
        app, backend = build()
        assert snap_compare(app, terminal_size=SMALL, run_before=_opened(backend, 2))
