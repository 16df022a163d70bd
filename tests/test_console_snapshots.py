"""Snapshot tests of what the operator sees, at 80×24 and 160×48, from deterministic state.

Each class is one screen or situation. Determinism comes from the autouse fixtures: a frozen
clock injected into ``make_app``, no animation, UTC, fixed wire sequence numbers and the
reference board of ``tests/console_fakes.py`` (BTC long and ACTIVE, ETH long and PAUSED, SOL
flat and STALE, a rejected decision). pytest-textual-snapshot needs synchronous tests.
Regenerate with ``pytest tests/test_console_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from tests import console_fakes
from tests.console_fakes import (
    SMALL,
    WIDE,
    FakeBackend,
    FrozenClock,
    btc_state,
    eth_state,
    make_safe_list,
    portfolio_msg,
    sol_state,
)

SnapCompare = Callable[..., bool]


pytestmark = pytest.mark.usefixtures("_deterministic")  # conftest: UTC, fresh sequence numbers


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def app(backend: FakeBackend) -> MultiparApp:
    """The console as the CLI builds it, with the frozen clock and no animation."""
    built = make_app(backend, make_safe_list(), clock=FrozenClock())
    built.animation_level = "none"
    return built


def painted(
    backend: FakeBackend, then: Callable[[MultiparApp], None] | None = None
) -> Callable[[Pilot[Any]], Any]:
    """A run_before that waits for the board, applies ``then`` and paints everything."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, MultiparApp)
        await backend.started.wait()
        if then is not None:
            then(app)
        app.repaint_now()
        await pilot.pause()

    return run_before


def halted(app: MultiparApp) -> None:
    for state in (btc_state, eth_state, sol_state):
        app.model.apply_pair(state(mode="HALTED", position=None, stale=False, tick_age_ms=300))
    app.model.apply_portfolio(portfolio_msg(halted=True))
    app.model.add_event("KILL: ok (85 ms) — halted; 2 positions flattened", "success")


class TestBoard:
    """The main board with the reference state: two open positions, a PAUSED pair, a STALE
    pair and a rejected decision in the log."""

    def test_full_panes_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=WIDE, run_before=painted(backend))

    def test_compact_rows_80x24(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=SMALL, run_before=painted(backend))

    def test_second_pair_selected_80x24(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=SMALL, press=["j"], run_before=painted(backend))


class TestHalted:
    """After the kill switch: every pair HALTED, flat, HALTED badge in the header, re-arm hint."""

    def test_halted_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=WIDE, run_before=painted(backend, halted))


class TestDialogs:
    """Confirm dialogs: default No, the question names what will happen."""

    def test_kill_confirm_80x24(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=SMALL, press=["ctrl+k"], run_before=painted(backend))

    def test_flatten_confirm_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=WIDE, press=["f"], run_before=painted(backend))


class TestDetail:
    """A pair's detail: chart of closes, its indicators and position, its decisions only."""

    def test_detail_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=WIDE, press=["enter"], run_before=painted(backend))

    def test_detail_of_rejected_pair_80x24(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(
            app, terminal_size=SMALL, press=["j", "enter"], run_before=painted(backend)
        )


class TestHelp:
    """The help screen lists every key and the kill switch rules."""

    def test_help_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(
            app, terminal_size=WIDE, press=["question_mark"], run_before=painted(backend)
        )


def feed_down(app: MultiparApp) -> None:
    app.model.apply_feed_status(console_fakes.feed_down_status_map())


def acks(app: MultiparApp) -> None:
    """A burst of acks as toasts: they stay over the logs, clear of the pairs and gauges."""
    for i, sym in enumerate(["BTC/USDT", "ETH/USDT", "SOL/USDT", "ETH/USDT", "BTC/USDT"]):
        app.notify(f"pause {sym}: ok ({11 + i} ms) — pause {sym} done", timeout=60)


class TestFeedDown:
    """A Binance feed that never connected (no network): under the header, since when, how
    many retries, why (the DNS failure first) and that --demo needs no network."""

    def test_feed_down_80x24(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=SMALL, run_before=painted(backend, feed_down))

    def test_feed_down_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=WIDE, run_before=painted(backend, feed_down))


class TestSelectedPosition:
    """After j: on the compact board ETH is selected, its position's entry, stop, take-profit
    and age on the line under its row (the full grid has no row below: BTC stays selected);
    a burst of acks as toasts over the logs only, the oldest dropped to make room."""

    def test_selected_position_with_toasts_80x24(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=SMALL, press=["j"], run_before=painted(backend, acks))

    def test_selected_position_with_toasts_160x48(
        self, snap_compare: SnapCompare, app: MultiparApp, backend: FakeBackend
    ) -> None:
        assert snap_compare(app, terminal_size=WIDE, press=["j"], run_before=painted(backend, acks))
