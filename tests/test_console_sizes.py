"""The board at every terminal size from 60×20 to 250×70: nothing clipped, the space used.

A size sweep with the fake backend (``tests/console_fakes.py``): at each size the reference
board (and the board with the feed down, whose problem bar takes rows) is painted and checked
with Textual's own geometry: every widget the compositor draws lies wholly inside its clip
(the screen, intersected with every container above it), or wholly outside it (scrolled away;
never cut in half); every pair's pane is wholly on screen (three pairs fit at every size); and
every line a console widget renders fits its content box, in width and in number. Then: the
logs take the rows the panes leave from 160×48 up, toasts never cover the risk gauges, and the
compact board's selected pair shows its position's entry, stop, take-profit and age.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from rich.cells import cell_len
from textual.errors import NoWidget
from textual.widget import Widget
from textual.widgets._toast import Toast

from console.app import MultiparApp, make_app
from console.widgets.base import ModelWidget
from console.widgets.pair_pane import PairRowHeader
from engine.core.config import Tier
from tests import console_fakes
from tests.console_fakes import (
    FakeBackend,
    FrozenClock,
    feed_down_status_map,
    make_safe_list,
    screen_text,
)

SIZES = [(60, 20), (80, 24), (100, 30), (120, 36), (140, 40), (160, 48), (200, 60), (250, 70)]


@pytest.fixture(autouse=True)
def _fresh_sequence_numbers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(console_fakes, "_seq", {})
    yield


def feed_down(app: MultiparApp) -> None:
    app.model.apply_feed_status(feed_down_status_map())


def build(backend: FakeBackend) -> MultiparApp:
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    return app


async def painted(pilot: Any, app: MultiparApp) -> None:
    for _ in range(2):  # the board fits itself after a layout pass: paint, settle, paint
        app.repaint_now()
        await pilot.pause()
        await pilot.pause()


def lines_of(widget: Widget) -> list[str]:
    """What a widget renders, as plain lines (a console widget's ``Text``, a ``Static``'s
    content)."""
    out = widget.render()
    plain = getattr(out, "plain", None)
    return plain.split("\n") if isinstance(plain, str) else []


def clipped(app: MultiparApp) -> list[str]:
    """Every way the current screen is cut: a widget partly outside its clip, a line wider
    than its widget, more lines than its widget's rows."""
    screen = app.screen
    problems: list[str] = []
    for widget in screen.walk_children(with_self=False):
        try:
            geo = screen.find_widget(widget)
        except NoWidget:
            continue  # not displayed
        region = geo.region
        if not region.area:
            continue
        shown = region.intersection(geo.clip)
        name = f"{type(widget).__name__}#{widget.id or ''} {region}"
        if shown.area and shown != region:
            problems.append(f"{name} cut to {shown}")
        if not shown.area or not isinstance(widget, ModelWidget | PairRowHeader):
            continue
        box = widget.content_region
        lines = lines_of(widget)
        if len(lines) > box.height:
            problems.append(f"{name}: {len(lines)} lines in {box.height} rows")
        for line in lines:
            if cell_len(line) > box.width:
                problems.append(f"{name}: {cell_len(line)} columns in {box.width}: {line!r}")
    return problems


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("board", ["reference", "feed-down"])
async def test_nothing_is_clipped_at_any_size(size: tuple[int, int], board: str) -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=size) as pilot:
        await backend.started.wait()
        if board == "feed-down":
            feed_down(app)
        await painted(pilot, app)
        assert app.main.problems.display == (board == "feed-down")
        assert clipped(app) == []
        screen = app.screen.region
        whole = []
        for pane in app.main.panes.values():
            geo = app.screen.find_widget(pane)
            if geo.clip.contains_region(geo.region) and screen.contains_region(geo.region):
                whole.append(pane.symbol)
        if board == "reference":  # three pairs fit whole at every size
            assert whole == ["BTC/USDT", "ETH/USDT", "SOL/USDT"], size
        else:  # the problem bar's rows may send a row of panes below the fold (scrolled, not cut)
            assert whole[:1] == ["BTC/USDT"], size
            if size != (120, 36):
                assert len(whole) == 3, size
        text = screen_text(app).splitlines()
        assert len(text) == size[1] and all(cell_len(line) <= size[0] for line in text)
        assert any("^k KILL" in line for line in text), "the kill key is always on screen"


async def test_120x36_shows_every_pane_whole_and_resizing_refits() -> None:
    """At 120×36 the SOL pane used to be cut by the grid's 70 % cap; and a resize refits."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        assert not app.main.compact and app.main.columns == 2
        sol = app.main.panes["SOL/USDT"]
        assert sol.region.bottom <= app.main.grid.region.bottom == app.main.query_one("#logs").region.y
        for size in [(250, 70), (80, 24), (120, 36)]:
            await pilot.resize_terminal(*size)
            await painted(pilot, app)
            assert clipped(app) == [], size
        assert sol.outer_size.height == 13


@pytest.mark.parametrize("size", [(160, 48), (200, 60), (250, 70)], ids=["160x48", "200x60", "250x70"])
async def test_big_terminals_give_the_rows_to_the_charts_and_the_logs(size: tuple[int, int]) -> None:
    """No empty half screen: the panes grow (a taller chart, up to 24 rows) and the logs take
    every row left between them and the footer."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=size) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        main = app.main
        pane = main.panes["BTC/USDT"]
        logs = main.query_one("#logs")
        footer_y = size[1] - 1
        assert pane.outer_size.height > 13 and pane.spark.size.height >= 4, "a chart, not a sparkline"
        assert "┤" in pane.spark.render().plain, "the chart has a price axis"
        assert logs.region.y == main.grid.region.bottom and logs.region.bottom == footer_y
        assert logs.region.height >= size[1] // 3
        used = main.grid.region.height + logs.region.height
        assert used == size[1] - 1 - main.portfolio.outer_size.height - 1  # header, gauges, footer


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 36), (160, 48)], ids=["60x20", "80x24", "120x36", "160x48"])
async def test_toasts_never_cover_the_risk_gauges(size: tuple[int, int]) -> None:
    """A burst of toasts stays over the logs: the oldest make room (the event log keeps every
    ack), never climbing over the pairs or the exposure and correlation gauges."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=size, notifications=True) as pilot:
        await backend.started.wait()
        feed_down(app)  # the problem bar pushes the gauges down: the worst case
        await painted(pilot, app)
        for i in range(12):  # a burst of acks, one of them long enough to wrap
            text = f"pause BTC/USDT: ok ({i} ms) — paused"
            app.notify(text * (3 if i == 9 else 1), timeout=60)
        for _ in range(3):
            await pilot.pause(0.05)
        gauges = app.main.portfolio.region
        pairs = app.main.grid.region
        screen = app.screen
        toasts = [(t, screen.find_widget(t)) for t in screen.query(Toast)]
        assert toasts, "the toasts are on screen"
        for _toast, geo in toasts:
            assert geo.clip.contains_region(geo.region), f"a toast cut: {geo.region} in {geo.clip}"
            assert geo.region.y >= gauges.bottom, f"{geo.region} covers the gauges {gauges}"
            assert geo.region.y >= pairs.bottom, f"{geo.region} covers the pairs {pairs}"
        newest = max(toasts, key=lambda tg: tg[1].region.y)[0]
        assert "(11 ms)" in str(newest.render()), "the newest toast is the lowest"
        assert len(toasts) < 12, "the oldest made room"


async def test_compact_board_shows_the_selected_position_entry_stop_target_and_age() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        assert app.main.compact
        lines = screen_text(app).splitlines()
        i = next(n for n, line in enumerate(lines) if "BTC/USDT" in line and "ACTIVE" in line)
        assert lines[i + 1].split() == [
            "LONG", "0.0082", "@", "36,420.00", "stop", "35,873.70", "tp", "37,512.60", "age", "12m", "34s",
        ]  # fmt: skip
        await pilot.press("j")  # ETH: its own position under its row, BTC's line gone
        await painted(pilot, app)
        lines = screen_text(app).splitlines()
        i = next(n for n, line in enumerate(lines) if "ETH/USDT" in line and "PAUSED" in line)
        assert "LONG 0.146 @ 2,041.50  stop 2,010.88  tp 2,102.74  age 12m 34s" in lines[i + 1]
        assert sum("age 12m 34s" in line for line in lines) == 1
        await pilot.press("j")  # SOL is flat: no position, says so
        await painted(pilot, app)
        lines = screen_text(app).splitlines()
        i = next(n for n, line in enumerate(lines) if "SOL/USDT" in line and "STALE" in line)
        assert lines[i + 1].strip().startswith("flat")
        await pilot.resize_terminal(60, 20)  # at 60 columns: the short form, still every figure
        await pilot.press("k")
        await painted(pilot, app)
        lines = screen_text(app).splitlines()
        i = next(n for n, line in enumerate(lines) if "ETH/USDT" in line)
        assert "LONG 0.146 @ 2,041.50 SL 2,010.88 TP 2,102.74 12m 34s" in lines[i + 1]



@pytest.mark.parametrize("size", [(120, 36), (160, 48), (250, 70)], ids=["120x36", "160x48", "250x70"])
async def test_many_pairs_scroll_by_whole_rows_of_panes(size: tuple[int, int]) -> None:
    """Twelve pairs do not fit: the grid shows whole rows of panes only and scrolls; the pane
    selected at the bottom comes into view whole."""
    pairs = tuple((f"C{i:02d}/USDT", Tier.STABLE, "momentum", 100.0) for i in range(12))
    backend = FakeBackend(board=False)
    app = make_app(backend, make_safe_list(pairs), clock=FrozenClock())
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        grid = app.main.grid
        assert grid.region.height % 13 == 0 and grid.region.height >= 13
        assert app.main.query_one("#logs").region.height >= 4
        assert clipped(app) == []
        await pilot.press("shift+tab")  # wraps to the last pair
        await painted(pilot, app)
        last = app.main.panes["C11/USDT"]
        geo = app.screen.find_widget(last)
        assert geo.clip.contains_region(geo.region), f"{geo.region} in {geo.clip}"
        assert clipped(app) == []


def test_the_tall_chart_sends_one_span_per_run_of_a_colour() -> None:
    """Three 9-row charts at 160×48 repaint twice a second: a span (an escape sequence) per cell
    doubled the bytes sent to the terminal (bench: 99 KiB/s against a 64 KiB/s goal)."""
    from console.widgets.chart import close_chart
    from console.widgets.palette import DEFAULT_PALETTE
    from tests.console_fakes import closes_for

    lines = close_chart(closes_for("BTC/USDT"), 48, 9, DEFAULT_PALETTE)
    drawn = sum(ch in "█▀▄" for line in lines for ch in line.plain)
    spans = [s for line in lines for s in line.spans]
    assert drawn > 50 and len(spans) <= drawn  # a span per cell, blanks and gaps too: 333 here
    for line in lines:
        styles = [s.style for s in line.spans]
        assert all(a != b for a, b in itertools.pairwise(styles)), line.plain


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_the_detail_screen_is_not_clipped_either(size: tuple[int, int]) -> None:
    """Enter on the board: the pair's detail fits every size too (its chart gives up rows
    first). Left alone: below 68 columns its footer's last keys scroll off (eight keys, none
    of them the board's Detail that the board's footer drops)."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=size) as pilot:
        await backend.started.wait()
        await painted(pilot, app)
        await pilot.press("enter")
        await painted(pilot, app)
        assert type(app.screen).__name__ == "PairDetailScreen"
        cut = [c for c in clipped(app) if not (size[0] < 68 and c.startswith("FooterKey"))]
        assert cut == []
