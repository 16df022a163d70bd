"""Console start-up at 1,000 pairs (commit 92ab0df): fewer full layouts of the board, no full
GC passes over it. Through the real app on the FakeBackend (``tests/console_fakes.py``):

- ``MainScreen._prefit``: the first layout of the board already has the breakpoint classes and
  the grid's size that ``fit_board`` settles on, so it is the layout that stays;
- ``fit_board`` leaves ``grid_rows`` alone when its cells are unchanged (setting it refreshes
  every pane's widget and lays the board out again);
- a resize event of the size already laid out does not lay the screen out again;
- ``gc.freeze()`` once the board is laid out, ``gc.unfreeze()`` when the screen unmounts.

Layouts are counted with a spy around the real ``Screen._refresh_layout`` (it calls through).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from textual import events
from textual.geometry import Size
from textual.screen import Screen

from console.app import MultiparApp, make_app
from console.screens.fit import fit_board
from console.screens.main import MainScreen
from engine.core.config import Tier
from tests import console_fakes
from tests.console_fakes import SMALL, WIDE, FakeBackend, FrozenClock, make_safe_list
from tests.test_console_pilot import wait_for
from tests.test_console_sizes import painted as settled

pytestmark = pytest.mark.timeout(60)

TWELVE = tuple((f"C{i:02d}/USDT", Tier.STABLE, "momentum", 100.0) for i in range(12))


@pytest.fixture(autouse=True)
def _fresh_sequence_numbers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(console_fakes, "_seq", {})
    yield


@pytest.fixture
def layouts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every full layout of a MainScreen (not a scroll-only one), with the board as it stood
    just before it: the real ``Screen._refresh_layout`` runs after the record is taken."""
    seen: list[dict[str, Any]] = []

    def spy(self: MainScreen, size: Size | None = None, scroll: bool = False) -> None:
        if not (scroll and not self._layout_widgets):
            seen.append({"size": size, "classes": breakpoints(self), "fit": grid_fit(self)})
        Screen._refresh_layout(self, size, scroll)

    monkeypatch.setattr(MainScreen, "_refresh_layout", spy)
    return seen


def build(pairs: tuple[tuple[str, Tier, str, float], ...]) -> tuple[MultiparApp, FakeBackend]:
    backend = FakeBackend(board=False)
    app = make_app(backend, make_safe_list(pairs), clock=FrozenClock())
    app.animation_level = "none"
    return app, backend


def breakpoints(screen: MainScreen) -> set[str]:
    return {c for c in screen.classes if c in ("-narrow", "-medium", "-wide", "-short", "-tall")}


def grid_fit(screen: MainScreen) -> tuple[object, ...]:
    """The grid's rows, height and max height, and the panes' heights, as set on them."""
    grid = screen.grid.styles
    rows = grid.grid_rows
    return (
        tuple((r.value, r.unit) for r in rows) if rows else None,
        str(grid.height),
        str(grid.max_height),
        sorted({str(p.styles.height) for p in screen.panes.values()}),
    )


# size, pairs, breakpoint classes, the grid's (pane rows, height) fit_board settles on
CASES = [
    (WIDE, TWELVE, {"-wide", "-tall"}, (13, "26")),  # 4 rows of 3: two shown, the grid scrolls
    ((120, 36), TWELVE, {"-medium", "-tall"}, (13, "26")),  # 6 rows of 2: two shown
    (WIDE, console_fakes.PAIRS, {"-wide", "-tall"}, (21, "21")),  # one row of taller panes
    (SMALL, TWELVE, {"-narrow", "-short"}, (13, "auto")),  # compact: the stylesheet's sizes
]


@pytest.mark.parametrize(
    ("size", "pairs", "classes", "grid"),
    CASES,
    ids=["160x48-12", "120x36-12", "160x48-3", "80x24-12"],
)
async def test_the_first_layout_is_the_one_that_stays(
    layouts: list[dict[str, Any]],
    size: tuple[int, int],
    pairs: Any,
    classes: set[str],
    grid: tuple[int, str],
) -> None:
    app, backend = build(pairs)
    async with app.run_test(size=size) as pilot:
        await backend.started.wait()
        await settled(pilot, app)
        main = app.main
        assert not main.problems.display  # prefit's guess: no problem bar
        assert breakpoints(main) == classes
        settled_fit = grid_fit(main)
        fit_board(main)  # what fit_board computes for the board as laid out: nothing new
        assert grid_fit(main) == settled_fit
        assert (settled_fit[0][0][0], settled_fit[1]) == grid
        first = layouts[0]  # the first layout of the board, as the spy saw it just before
        assert first["size"] == Size(*size)
        assert first["classes"] == classes, "breakpoint classes set before the first layout"
        assert first["fit"] == settled_fit, "the grid sized before the first layout"


def count_pane_refreshes(main: MainScreen) -> list[str]:
    """Every ``refresh`` of a pane or of a widget in it, from now on (calls through)."""
    refreshed: list[str] = []
    for pane in main.panes.values():
        for w in (pane, *pane.children):

            def counting(*a: Any, _real: Any = w.refresh, _w: Any = w, **k: Any) -> Any:
                refreshed.append(type(_w).__name__)
                return _real(*a, **k)

            w.refresh = counting  # type: ignore[method-assign]
    return refreshed


async def test_fit_board_leaves_unchanged_grid_rows_alone() -> None:
    app, backend = build(console_fakes.PAIRS)
    async with app.run_test(size=WIDE) as pilot:
        await backend.started.wait()
        await settled(pilot, app)
        main, inline = app.main, app.main.grid.styles.inline
        rows = inline.get_rule("grid_rows")
        assert rows is not None and rows[0].value == 21  # one row of taller panes
        refreshed = count_pane_refreshes(main)
        fit_board(main)
        fit_board(main)
        assert inline.get_rule("grid_rows") is rows, "grid_rows set again to the same cells"
        assert refreshed == []
        # compact (the inline sizes cleared), then full panes of the stylesheet's 13 rows:
        # fit_board finds the 13 it computes already there and sets no inline grid_rows
        await pilot.resize_terminal(*SMALL)
        await settled(pilot, app)
        assert main.compact and not inline.has_rule("grid_rows")
        await pilot.resize_terminal(120, 36)
        await settled(pilot, app)
        assert not main.compact and main.grid.styles.grid_rows[0].value == 13
        assert not inline.has_rule("grid_rows"), "the stylesheet's 13 set again inline"
        # the stylesheet's 13 alone in effect, as fit_board meets it after the compact board:
        # setting it inline would refresh every pane's widgets
        inline.clear_rule("grid_rows")
        refreshed.clear()
        fit_board(main)
        assert refreshed == [] and not inline.has_rule("grid_rows")


async def test_a_resize_of_the_size_laid_out_lays_nothing_out(
    layouts: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered: list[Size] = []  # the Resize events that reach the screen
    real = MainScreen._screen_resized

    def resized(self: MainScreen, size: Size) -> None:
        delivered.append(size)
        real(self, size)

    monkeypatch.setattr(MainScreen, "_screen_resized", resized)
    app, backend = build(TWELVE)
    async with app.run_test(size=WIDE) as pilot:
        await backend.started.wait()
        await settled(pilot, app)
        main = app.main
        assert main._compositor.size == Size(*WIDE)
        layouts.clear()
        delivered.clear()
        # what the app passes on when the terminal reports a size twice or goes A -> B -> A
        # within its 1/120 s resize timer: a Resize of the size already laid out
        main.post_message(events.Resize(Size(*WIDE), Size(*WIDE)))
        app.post_message(events.Resize(Size(120, 36), Size(120, 36)))
        app.post_message(events.Resize(Size(*WIDE), Size(*WIDE)))
        await wait_for(pilot, lambda: len(delivered) == 2, "two resizes delivered to the screen")
        await settled(pilot, app)
        assert delivered == [Size(*WIDE)] * 2
        assert layouts == []
        await pilot.resize_terminal(120, 36)  # another size: laid out
        await settled(pilot, app)
        assert any(rec["size"] == Size(120, 36) for rec in layouts), layouts
        assert main._compositor.size == Size(120, 36)


async def test_the_heap_is_frozen_once_laid_out_and_thawed_on_unmount() -> None:
    gc.unfreeze()
    try:
        app, backend = build(TWELVE)
        async with app.run_test(size=WIDE) as pilot:
            await backend.started.wait()
            await settled(pilot, app)
            assert gc.get_freeze_count() > 0, "frozen after the first layout's resize"
            gc.unfreeze()
            await pilot.resize_terminal(120, 36)
            await settled(pilot, app)
            assert gc.get_freeze_count() > 0, "frozen again after a resize"
        assert gc.get_freeze_count() == 0, "unfrozen when the screen is unmounted"
    finally:
        gc.unfreeze()
