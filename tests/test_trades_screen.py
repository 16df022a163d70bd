"""The trades screen (``T``): round trips from fills, their performance, the CSV export.

Unit tests of ``console/roundtrips.py`` (the backtest's ``TradeBook`` over the console's
``FillMsg``s: PnL after fees, exit reasons including the exchange's protective stop, fills
that close a position opened before the history, open positions; the real core's fills give
the same round trips and figures as the backtest counts them), the CSV file, then the
screen through Pilot and its snapshots at 80×24 and 160×48.
"""

from __future__ import annotations

import csv
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from console.roundtrips import (
    CSV_FIELDS,
    exports_dir,
    performance,
    protective_ids,
    round_trips,
    write_csv,
)
from console.screens.main import MainScreen
from console.screens.trades import TradesScreen
from engine.backtest.metrics import compute
from engine.backtest.result import BacktestResult, RunMeta
from engine.backtest.trades import TradeBook
from engine.core.events import FillBooked
from engine.node.publisher import fill_msg as wire_fill
from tests import console_fakes
from tests.console_fakes import (
    BTC_QTY,
    ETH_QTY,
    FROZEN_MS,
    SMALL,
    WIDE,
    FakeBackend,
    FrozenClock,
    make_safe_list,
    screen_text,
)
from tests.core_harness import Walk, make_core, safe_list
from tests.trade_fakes import MIN, fill, protective_order_id, scenario_fills

pytestmark = pytest.mark.timeout(60)

BOARD = {"BTC/USDT": BTC_QTY, "ETH/USDT": ETH_QTY}  # the reference board's open longs


# ---------------------------------------------------------------------- round trips


def test_round_trips_of_the_scenario_net_of_fees_with_every_exit_reason() -> None:
    trips = round_trips(scenario_fills(), BOARD)
    assert trips.skipped == 0 and trips.fills == 15
    got = [(t.symbol, t.exit_reason) for t in trips.trades]
    assert got == [
        ("ETH/USDT", "stop"),
        ("BTC/USDT", "signal"),
        ("BTC/USDT", "flatten"),
        ("SOL/USDT", "take_profit"),
        ("ETH/USDT", "exchange_stop"),  # booked as "stop"; its order is the protective stop
        ("SOL/USDT", "kill"),  # two partial exits make one round trip; the last one says why
    ]
    first_btc = trips.trades[1]
    fees = 0.01 * 36_000.0 * 0.001 + 0.01 * 36_300.0 * 0.001
    assert first_btc.pnl == pytest.approx(0.01 * 300.0 - fees)
    assert first_btc.fees == pytest.approx(fees)
    assert first_btc.exit_ts - first_btc.entry_ts == 12 * MIN
    sol = trips.trades[-1]
    assert sol.qty == 4.0 and sol.exit_price == pytest.approx((56.9 + 56.2) / 2)
    assert set(trips.open) == {"BTC/USDT", "ETH/USDT"}
    assert trips.open["BTC/USDT"].qty == pytest.approx(BTC_QTY)


def test_a_stop_is_the_exchanges_only_when_its_order_is_the_protective_one() -> None:
    t = FROZEN_MS
    plain = [
        fill("BTC/USDT", "buy", 1.0, 100.0, t, "signal"),
        fill("BTC/USDT", "sell", 1.0, 99.0, t + 5, "stop"),
    ]
    assert round_trips(plain, {}).trades[0].exit_reason == "stop"
    other = protective_order_id("BTC/USDT", t + 1)  # another position's protective stop
    wrong = [plain[0], fill("BTC/USDT", "sell", 1.0, 99.0, t + 5, "stop", other)]
    assert round_trips(wrong, {}).trades[0].exit_reason == "stop"
    assert protective_order_id("BTC/USDT", t, 7) in protective_ids("BTC/USDT", t)


def test_fills_closing_a_position_opened_before_the_history_are_left_out() -> None:
    fills = scenario_fills()
    trips = round_trips(fills[1:], BOARD)  # BTC's first entry is no longer held
    assert trips.skipped == 1
    assert [t.exit_reason for t in trips.trades] == [
        "stop", "flatten", "take_profit", "exchange_stop", "kill",
    ]  # fmt: skip
    # told the wrong positions (flat), BTC's and ETH's fills no longer add up from flat: they
    # are all left out rather than invented into round trips; SOL's still are
    blind = round_trips(fills, {})
    assert blind.skipped == 10 and {t.symbol for t in blind.trades} == {"SOL/USDT"}


def test_the_console_counts_the_real_cores_round_trips_as_the_backtest_does(tmp_path: Path) -> None:
    h = make_core(
        tmp_path, safe_list({"SOL/USDT": "breakout", "BTC/USDT": "momentum"}), timeframe_s=2
    )
    book = TradeBook()  # what the backtest runner does with the core's fills

    def follow() -> None:
        for e in h.events.all[follow.seen :]:  # type: ignore[attr-defined]
            if isinstance(e, FillBooked):
                book.on_fill(e.fill, e.position)
        follow.seen = len(h.events.all)  # type: ignore[attr-defined]

    follow.seen = 0  # type: ignore[attr-defined]
    Walk(h, seed=11, step_ms=100, sd=0.002).run(
        60_000, until=lambda: len(book.trades) >= 4, every=follow
    )
    assert len(book.trades) >= 4, "the walk made too few round trips"
    msgs = [wire_fill(f) for f in h.events.fills]
    now = {s: p.qty for s, p in h.core.portfolio.positions.items() if p.qty}
    trips = round_trips(msgs, now)
    assert trips.skipped == 0
    assert sorted(trips.trades, key=lambda t: t.exit_ts) == sorted(
        book.trades, key=lambda t: t.exit_ts
    )
    assert set(trips.open) == set(book.open)
    syms = ["BTC/USDT", "SOL/USDT"]
    total, pairs = performance(trips.trades, syms, 10_000.0)
    meta = RunMeta("", syms, "2s", 0, h.clock.ms, 10_000.0, 0.001, 5.0, 0)
    report = compute(BacktestResult(meta, trades=book.trades))
    for mine, theirs in zip([total, *pairs], [report.portfolio, *report.pairs], strict=True):
        assert (mine.trades, mine.wins, mine.win_rate) == (
            theirs.trades,
            theirs.wins,
            theirs.win_rate,
        )
        assert mine.net_pnl == pytest.approx(theirs.net_pnl)
        assert mine.profit_factor == pytest.approx(theirs.profit_factor)
        assert mine.avg_hold_ms == pytest.approx(theirs.avg_hold_ms)
    # and the realised PnL after fees is the book's: the portfolio's realised minus all fees
    # of the closed trips' fills
    assert sum(t.pnl for t in trips.trades) == pytest.approx(
        sum(t.pnl for t in book.trades), abs=1e-9
    )


# ---------------------------------------------------------------------- CSV


def test_csv_export_is_a_new_private_file_with_every_trip(tmp_path: Path) -> None:
    trips = round_trips(scenario_fills(), BOARD).trades
    now = FROZEN_MS / 1000.0
    path = write_csv(trips, tmp_path / "exports", now)
    assert path.name == "trades-20231114-221320.csv"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == CSV_FIELDS
    assert [r["exit_reason"] for r in rows] == [t.exit_reason for t in trips]
    assert float(rows[1]["pnl"]) == pytest.approx(trips[1].pnl)
    assert rows[1]["entry_time"] == "2023-11-14T20:43:20Z" and rows[1]["hold_s"] == "720"
    again = write_csv(trips, tmp_path / "exports", now)  # the same second: a new name
    assert again.name == "trades-20231114-221320-1.csv" and path.exists()


def test_exports_dir_follows_xdg_data_home(tmp_path: Path) -> None:
    assert (
        exports_dir({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "multipar-console" / "exports"
    )
    home = exports_dir({"HOME": str(tmp_path), "XDG_DATA_HOME": "relative"})
    assert home == tmp_path / ".local" / "share" / "multipar-console" / "exports"


# ---------------------------------------------------------------------- the screen


def build() -> tuple[MultiparApp, FakeBackend]:
    backend = FakeBackend()
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    return app, backend


def with_history(app: MultiparApp) -> None:
    for f in scenario_fills():
        app.model.apply_fill(f)


async def ready(pilot: Pilot[None], backend: FakeBackend) -> MultiparApp:
    app = pilot.app
    assert isinstance(app, MultiparApp)
    await backend.started.wait()
    with_history(app)
    app.repaint_now()
    await pilot.pause()
    return app


async def test_T_opens_the_trades_escape_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app, backend = build()
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("T")
        await pilot.pause()
        assert isinstance(app.screen, TradesScreen)
        text = screen_text(app)
        assert "6 closed" in text and "2 open (BTC/USDT, ETH/USDT)" in text
        assert "exchange stop" in text and "take-profit" in text and "kill switch" in text
        assert "36,000.00" in text and "36,300.00" in text and "12m 00s" in text
        total = next(line for line in text.splitlines() if line.lstrip().startswith("total"))
        assert total.split()[1:3] == ["6", "33%"]
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_a_live_fill_adds_its_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app, backend = build()
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("T")
        screen = app.screen
        assert isinstance(screen, TradesScreen) and len(screen.trips.trades) == 6
        # BTC's open long is closed by its take-profit: the pair goes flat
        app.model.apply_fill(fill("BTC/USDT", "sell", BTC_QTY, 36_700.0, FROZEN_MS, "take_profit"))
        app.model.apply_pair(console_fakes.btc_state(position=None))
        app.repaint_now()
        await pilot.pause()
        assert (
            len(screen.trips.trades) == 7 and screen.trips.trades[-1].exit_reason == "take_profit"
        )
        assert "BTC/USDT" not in screen.trips.open
        assert "7 closed" in screen_text(app)


async def test_s_saves_the_csv_and_shows_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app, backend = build()
    async with app.run_test(size=SMALL) as pilot:
        await ready(pilot, backend)
        await pilot.press("T", "s")
        await pilot.pause()
        files = list((tmp_path / "multipar-console" / "exports").glob("trades-*.csv"))
        assert len(files) == 1
        assert len(files[0].read_text().splitlines()) == 1 + 6
        assert str(files[0]) in " ".join(e.text for e in app.model.events)
        text = screen_text(app).replace("\n", "")
        assert "exported 6 round trips to" in text and files[0].name[:12] in text


async def test_an_export_that_cannot_be_written_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    app, backend = build()
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot, backend)
        await pilot.press("T", "s")
        await pilot.pause()
        assert isinstance(app.screen, TradesScreen) and app.screen.exported is None
        assert "export failed:" in screen_text(app)


async def test_no_fills_yet_says_so_and_exports_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app, backend = build()
    async with app.run_test(size=SMALL) as pilot:
        await backend.started.wait()
        await pilot.press("T", "s")
        await pilot.pause()
        text = screen_text(app)
        assert "0 closed" in text and "no fill yet" in text and "no closed round trip yet" in text
        assert not (tmp_path / "multipar-console").exists()


def test_docs_keys_md_names_the_trades_keys() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "keys.md").read_text()
    assert "## Trades screen" in doc and "`trades.open`" in doc
    for b in TradesScreen.BINDINGS:
        assert isinstance(b, Binding) and b.id and f"`{b.id}`" in doc, b
        assert all(f"`{k}`" in doc for k in b.key.split(",")), b


# ---------------------------------------------------------------------- snapshots

SnapCompare = Callable[..., bool]


def _painted(backend: FakeBackend) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await ready(pilot, backend)  # type: ignore[arg-type]

    return run_before


@pytest.mark.usefixtures("_deterministic")
class TestTradesSnapshots:
    def test_trades_80x24(self, snap_compare: SnapCompare) -> None:
        app, backend = build()
        assert snap_compare(app, terminal_size=SMALL, press=["T"], run_before=_painted(backend))

    def test_trades_160x48(self, snap_compare: SnapCompare) -> None:
        app, backend = build()
        assert snap_compare(app, terminal_size=WIDE, press=["T"], run_before=_painted(backend))
