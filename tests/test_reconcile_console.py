"""The reconciliation in the console and on the command line: the model's state from message
sequences (topic ``reconcile``, the snapshot's report, the bridge's floors), the screen driven
by Pilot (it opens at attach when a pair waits and not otherwise; a, f, k confirm and send the
``reconcile`` command with the pair, the choice and who; an order not ours is listed and never
touched), snapshots at 80×24 and 160×48, and ``multipar-console reconcile`` on a real book.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from console.bridge import Bridge
from console.cli import main as cli_main
from console.model import Ack, ConsoleModel
from console.reconcile_actions import operator
from console.reconcile_cli import reconcile_main
from console.reconcile_state import DIRTY_RECONCILE, report_of
from console.rundir import Endpoints
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.screens.main import MainScreen
from console.screens.reconcile import ReconcileScreen
from engine.journal.store import Store
from engine.wire import commands as engine_wire
from engine.wire.schema import ReconcileMsg
from tests.console_fakes import (
    FOREIGN_ORDER,
    FROZEN_EPOCH_S,
    FROZEN_MS,
    SMALL,
    WIDE,
    FrozenClock,
    ReconcileBackend,
    btc_mismatch,
    eth_applied,
    make_safe_list,
    pair_check_msg,
    reconcile_msg,
    screen_text,
    snapshot_msg,
)

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]

pytestmark = pytest.mark.timeout(60)


def all_ok() -> ReconcileMsg:
    return reconcile_msg(
        pair_check_msg("BTC/USDT", book_qty=0.0082, venue_qty=0.0082),
        pair_check_msg("ETH/USDT", book_qty=0.146, venue_qty=0.146),
        pair_check_msg("SOL/USDT", venue_qty=0.0),
    )


def settled(choice: str = "adopt", **kw: Any) -> ReconcileMsg:
    """The default report as the engine republishes it once BTC's choice is recorded."""
    btc = btc_mismatch(choice=choice, choice_by="alice@desk", choice_ts=FROZEN_MS - 5_000)
    return reconcile_msg(btc, eth_applied(), pair_check_msg("SOL/USDT", venue_qty=0.0), **kw)


def new_model() -> ConsoleModel:
    return ConsoleModel(SYMBOLS, {}, clock=FrozenClock(), wall=FrozenClock())


# ---------------------------------------------------------------------- the state


class TestState:
    def test_a_report_a_choice_recorded_in_it_then_a_new_report(self) -> None:
        model = new_model()
        model.take_dirty()
        rs = model.reconcile
        assert rs.report is None and rs.waiting == [] and not rs.offer_due

        model.apply_reconcile(reconcile_msg())
        assert rs.report is not None and rs.report.trigger == "start"
        assert rs.waiting == ["BTC/USDT"] and rs.offer_due
        assert DIRTY_RECONCILE in model.take_dirty()
        assert not model.events  # the engine's own notice says it (topic event)
        btc = rs.report.pair("BTC/USDT")
        assert btc is not None and btc.venue_qty == 0.005 and btc.venue_entry is None
        assert btc.foreign_orders == [f"{FOREIGN_ORDER}: not ours, left alone"]
        rs.mark_offered()
        assert not rs.offer_due

        # a check a minute later finds BTC still waiting: not offered again
        model.apply_reconcile(reconcile_msg(ts=FROZEN_MS + 25_000, trigger="periodic"))
        assert rs.waiting == ["BTC/USDT"] and not rs.offer_due
        # ... but ETH waiting too is news
        eth = pair_check_msg("ETH/USDT", "mismatch", venue_qty=0.1, mismatches=["sold by hand"])
        model.apply_reconcile(reconcile_msg(btc_mismatch(), eth, ts=FROZEN_MS + 85_000))
        assert rs.waiting == ["BTC/USDT", "ETH/USDT"] and rs.offer_due
        rs.mark_offered()
        rs.acks.update({"BTC/USDT": "adopt: sent", "": "re-check: ok"})

        settle = settled(ts=FROZEN_MS + 85_000)  # the same report, BTC's choice recorded
        model.apply_reconcile(settle)
        assert rs.waiting == [] and not rs.offer_due
        assert rs.acks == {"BTC/USDT": "adopt: sent", "": "re-check: ok"}  # same report: kept
        btc = rs.report.pair("BTC/USDT")
        assert btc is not None and (btc.choice, btc.choice_by) == ("adopt", "alice@desk")

        model.apply_reconcile(reconcile_msg(ts=FROZEN_MS + 145_000, trigger="periodic"))
        assert rs.offer_due and rs.updates == 5  # BTC waits again: offered again
        assert rs.acks == {"": "re-check: ok"}  # a new check: the choices' acks are old news

    def test_nothing_waiting_is_not_offered_and_a_failure_is(self) -> None:
        model = new_model()
        model.apply_reconcile(all_ok())
        assert not model.reconcile.offer_due
        failed = reconcile_msg(
            pair_check_msg("BTC/USDT", "error", book_qty=0.0082, notes=["exchange not reached"]),
            ok=False,
            error="binance: 503 Service Unavailable",
            ts=FROZEN_MS + 1,
        )
        model.apply_reconcile(failed)
        assert model.reconcile.waiting == ["BTC/USDT"] and model.reconcile.offer_due
        assert model.reconcile.report is not None and not model.reconcile.report.ok

    def test_the_snapshot_carries_the_report_and_none_clears_it(self) -> None:
        model = new_model()
        model.apply_snapshot(snapshot_msg(reconcile_msg()))
        assert model.reconcile.waiting == ["BTC/USDT"]
        assert model.pairs["BTC/USDT"].state.mode == "HALTED"
        model.apply_snapshot(snapshot_msg(None))  # a new engine that holds none
        assert model.reconcile.report is None and not model.reconcile.offer_due

    def test_the_bridge_routes_the_topic_and_drops_what_the_snapshot_holds(self) -> None:
        model = new_model()
        bridge = Bridge(Endpoints.ipc(Path("/tmp")), model)

        def frame(msg: ReconcileMsg) -> list[bytes]:
            return [engine_wire.TOPIC_RECONCILE, engine_wire.pack_map(msg.to_wire())]

        bridge.hold()
        older = reconcile_msg()  # before the snapshot: BTC still waiting
        older.seq = 4
        bridge.dispatch("engine", frame(older))
        assert model.reconcile.report is None  # held
        snap_report = settled()
        snap_report.seq = 5
        assert bridge.apply_snapshot(snapshot_msg(snap_report))
        assert bridge.snapshot_dropped == 1  # the held older report never undoes the choice
        assert model.reconcile.waiting == [] and model.reconcile.report is not None
        newer = reconcile_msg(ts=FROZEN_MS + 60_000, trigger="periodic")
        newer.seq = 6
        bridge.dispatch("engine", frame(newer))
        assert model.reconcile.waiting == ["BTC/USDT"] and bridge.bad_messages == 0
        bridge.dispatch("engine", [engine_wire.TOPIC_RECONCILE, engine_wire.pack_map({"v": 1})])
        assert bridge.bad_messages == 1  # malformed: counted and dropped
        assert model.reconcile.report is not None and model.reconcile.report.trigger == "periodic"

    def test_report_of_keeps_every_field(self) -> None:
        msg = settled()
        report = report_of(msg)
        assert [p.symbol for p in report.pairs] == SYMBOLS
        btc = report.pair("BTC/USDT")
        assert btc is not None
        want = msg.pairs[0].to_wire(versioned=False)
        assert {k: v for k, v in btc.to_dict().items() if v is not None} == want


# ---------------------------------------------------------------------- the screen (Pilot)


def build(backend: ReconcileBackend, clock: FrozenClock | None = None) -> MultiparApp:
    app = make_app(backend, make_safe_list(), clock=clock or FrozenClock())
    app.animation_level = "none"
    return app


async def wait_for(pilot: Pilot[None], cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pilot.app.repaint_now()  # type: ignore[attr-defined]
        await pilot.pause(0.02)


async def attached(pilot: Pilot[None], backend: ReconcileBackend) -> MultiparApp:
    app = pilot.app
    assert isinstance(app, MultiparApp)
    await wait_for(pilot, backend.started.is_set, "backend.start")
    app.repaint_now()
    await pilot.pause()
    app.repaint_now()
    await pilot.pause()
    return app


def events(app: MultiparApp) -> list[str]:
    return [e.text for e in app.model.events]


async def test_the_screen_opens_at_attach_when_a_pair_waits() -> None:
    backend = ReconcileBackend(report=reconcile_msg(), mode="LIVE", detaches=True)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        screen = app.screen
        assert isinstance(screen, ReconcileScreen) and screen.selected == "BTC/USDT"
        text = screen_text(app)
        assert "RECONCILIATION 22:12:45 UTC (35 s ago) · start · exchange answered" in text
        assert "1 pair halted, waiting for a choice: BTC/USDT" in text
        assert "MISMATCH" in text and "book" in text and "exchange" in text
        assert re.search(r"qty\s+0\.0082\s+0\.005\b", text), text
        assert "a adopt the exchange's state into the book" in text
        lines = text.splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        # the mismatches wrap on word boundaries: every number of them is whole on some line
        assert any("mismatch the exchange holds 0.005 BTC" in line for line in lines), text
        for number in ("0.005", "0.0082:", "0.0032", "37210.55", "(mp-7a1c00000002)"):
            assert any(number in line for line in lines), number
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), "the board")
        app.repaint_now()
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)  # offered once: not again for this report


@pytest.mark.parametrize("report", [all_ok(), None], ids=["all-ok", "paper-none"])
async def test_the_screen_stays_shut_when_nothing_waits(report: ReconcileMsg | None) -> None:
    backend = ReconcileBackend(report=report)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await attached(pilot, backend)
        for _ in range(3):
            app.repaint_now()
            await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await pilot.press("R")  # but R opens it
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        text = screen_text(app)
        if report is None:
            assert "No reconciliation yet" in text
        else:
            assert "nothing waits for a choice" in text and text.count(" OK ") == 3


async def test_adopt_confirmed_sends_the_command_with_who_and_shows_the_ack() -> None:
    backend = ReconcileBackend(report=reconcile_msg(), mode="LIVE")
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.title_text == "Adopt the exchange's state for BTC/USDT?"
        assert confirm.body == (
            "The book takes the exchange's state: the book's 0.0082 @ 36,420.00 becomes 0.005 "
            f"(booked at the mark); the pair returns to ACTIVE. Recorded in the book as {operator()}."
        )
        assert backend.commands == []  # nothing before y
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.commands, "the command")
        assert backend.commands == [("reconcile", "BTC/USDT")]
        assert backend.extras == [{"choice": "adopt", "who": operator()}]
        assert re.fullmatch(r"[^@\s]+@\S+", operator()) and len(operator()) <= 128
        prefix = "reconcile BTC/USDT adopt: ok"
        await wait_for(pilot, lambda: any(t.startswith(prefix) for t in events(app)), "the ack")
        line = next(t for t in events(app) if t.startswith(prefix))
        assert re.search(r": ok \(\d+ ms\) — reconcile BTC/USDT done", line)
        assert line in [n.message for n in app._notifications]
        assert isinstance(app.screen, ReconcileScreen)
        await wait_for(pilot, lambda: "adopt: ok (" in screen_text(app), "the ack in the block")
        # the engine records the choice and publishes the report again: the block says who
        app.model.apply_reconcile(settled())
        await wait_for(
            pilot, lambda: "adopt by alice@desk at 22:13:15 UTC" in screen_text(app), "who"
        )
        assert "nothing waits for a choice" in screen_text(app)


async def test_flatten_and_keep_ask_first_and_no_sends_nothing() -> None:
    backend = ReconcileBackend(report=reconcile_msg())
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm")
        assert app.screen.title_text == "Flatten BTC/USDT at the exchange?"  # type: ignore[attr-defined]
        assert "-danger" in app.screen.classes
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "back")
        assert backend.commands == [] and "Flatten BTC/USDT at the exchange: cancelled" in events(
            app
        )
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm")
        assert app.screen.title_text == "Keep BTC/USDT halted?"  # type: ignore[attr-defined]
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.commands, "the command")
        assert backend.commands == [("reconcile", "BTC/USDT")]
        assert backend.extras[0]["choice"] == "keep"


async def test_a_pair_that_waits_for_nothing_is_not_sent_and_r_rechecks() -> None:
    backend = ReconcileBackend(report=reconcile_msg())
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        screen = app.screen
        assert isinstance(screen, ReconcileScreen)
        await pilot.press("down")
        assert screen.selected == "ETH/USDT"
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ReconcileScreen) and backend.commands == []
        assert any("ETH/USDT waits for no choice" in n.message for n in app._notifications)
        await pilot.press("r")  # a fresh reconciliation: no symbol, no confirm
        await wait_for(pilot, lambda: backend.commands, "the re-check")
        assert backend.commands == [("reconcile", None)] and backend.extras == [{}]
        await wait_for(pilot, lambda: "re-check: ok (" in screen_text(app), "its ack")


async def test_an_unknown_exchange_state_can_only_be_kept() -> None:
    failed = reconcile_msg(
        pair_check_msg("BTC/USDT", "error", book_qty=0.0082, notes=["exchange not reached"]),
        ok=False,
        error="binance: 503 Service Unavailable",
    )
    backend = ReconcileBackend(report=failed)
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        text = screen_text(app)
        assert "· start · exchange NOT reached" in text
        assert "binance: 503 Service Unavailable" in text
        await pilot.press("a")
        await pilot.pause()
        assert backend.commands == [] and isinstance(app.screen, ReconcileScreen)
        assert any("is unknown" in n.message for n in app._notifications)


async def test_orders_not_ours_are_listed_and_never_touched() -> None:
    backend = ReconcileBackend(report=reconcile_msg())
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        text = screen_text(app)
        assert f"not ours {FOREIGN_ORDER}: left alone" in text
        assert backend.commands == []  # showing it sends nothing, and no key of the screen cancels


async def test_a_new_report_opens_the_screen_but_never_over_a_dialog() -> None:
    backend = ReconcileBackend(report=all_ok())
    app = build(backend)
    async with app.run_test(size=SMALL) as pilot:
        await attached(pilot, backend)
        assert isinstance(app.screen, MainScreen)
        await pilot.press("ctrl+k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the kill confirm")
        app.model.apply_reconcile(reconcile_msg(ts=FROZEN_MS + 1_000, trigger="reconnect"))
        for _ in range(3):
            app.repaint_now()
            await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # the kill dialog keeps the keyboard
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        assert "· reconnect · exchange answered" in screen_text(app)


async def test_help_lists_r_on_the_board_and_the_screen_keys_on_the_screen() -> None:
    backend = ReconcileBackend(report=all_ok())
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await attached(pilot, backend)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = screen_text(app)
        assert re.search(r"board\s+│ R\s+│ Reconciliation: book vs exchange", text), text
        assert "Adopt the exchange's state" not in text  # the board's help: R only
        await pilot.press("escape", "R")
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = screen_text(app)
        assert re.search(r"reconcile\s+│ a\s+│ Adopt the exchange's state", text), text


def test_docs_keys_md_names_every_reconcile_binding() -> None:
    doc = (REPO / "docs" / "keys.md").read_text()
    assert "## Reconciliation screen" in doc
    bindings = [
        *ReconcileScreen.BINDINGS,
        *(b for b in MainScreen.BINDINGS if isinstance(b, Binding) and b.id == "reconcile.open"),
    ]
    assert len(bindings) == len(ReconcileScreen.BINDINGS) + 1
    for b in bindings:
        assert isinstance(b, Binding)
        assert b.id and f"`{b.id}`" in doc, f"docs/keys.md lacks binding id {b.id}"
        for key in b.key.split(","):
            assert f"`{key}`" in doc, f"docs/keys.md lacks key {key} ({b.id})"


async def test_a_failed_ack_says_so_in_the_block() -> None:
    backend = ReconcileBackend(report=reconcile_msg())
    backend.acks["reconcile"] = Ack("reconcile", False, "BTC/USDT waits for no choice", 9.0)
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await attached(pilot, backend)
        await wait_for(pilot, lambda: isinstance(app.screen, ReconcileScreen), "the screen")
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: "keep: FAILED (9 ms)" in screen_text(app), "the failure")
        assert any(t.startswith("reconcile BTC/USDT keep: FAILED") for t in events(app))


# ---------------------------------------------------------------------- snapshots

SnapCompare = Callable[..., bool]


def painted(backend: ReconcileBackend) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, MultiparApp)
        await backend.started.wait()
        for _ in range(3):
            app.repaint_now()
            await pilot.pause()
        assert isinstance(app.screen, ReconcileScreen)

    return run_before


@pytest.mark.usefixtures("_deterministic")
class TestSnapshots:
    """The screen as the operator sees it at attach: BTC waits (a position the book does not
    know, an order not ours), ETH had facts applied, SOL agrees."""

    def test_waiting_80x24(self, snap_compare: SnapCompare) -> None:
        backend = ReconcileBackend(report=reconcile_msg(), mode="LIVE", detaches=True)
        assert snap_compare(build(backend), terminal_size=SMALL, run_before=painted(backend))

    def test_waiting_160x48(self, snap_compare: SnapCompare) -> None:
        backend = ReconcileBackend(report=reconcile_msg(), mode="LIVE", detaches=True)
        assert snap_compare(build(backend), terminal_size=WIDE, run_before=painted(backend))

    def test_exchange_not_reached_80x24(self, snap_compare: SnapCompare) -> None:
        failed = reconcile_msg(
            pair_check_msg(
                "BTC/USDT", "error", book_qty=0.0082, book_entry=36_420.0,
                notes=["the exchange did not answer: positions and orders unknown"],
            ),
            pair_check_msg("ETH/USDT", "error", book_qty=0.146, book_entry=2_041.5),
            ok=False,
            error="binance: 503 Service Unavailable",
            trigger="reconnect",
        )  # fmt: skip
        backend = ReconcileBackend(report=failed, mode="LIVE", detaches=True)
        assert snap_compare(build(backend), terminal_size=SMALL, run_before=painted(backend))


# ---------------------------------------------------------------------- the command line


def book_with(tmp_path: Path, *reports: ReconcileMsg) -> Path:
    path = tmp_path / "live.sqlite"
    store = Store(path)
    try:
        for r in reports:
            store.record_reconciliation(report_of(r).to_dict())
    finally:
        store.close()
    return path


def files_of(tmp_path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}


NOW = FROZEN_EPOCH_S  # the reports are 35 s old


class TestCli:
    def test_text_shows_each_pair_and_exits_1_while_a_pair_waits(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        book = book_with(tmp_path, all_ok(), reconcile_msg())  # the newest one counts
        before = files_of(tmp_path)
        assert reconcile_main(["--db", str(book)], now=NOW) == 1
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0] == (
            "reconciliation 2023-11-14 22:12:45 UTC (35 s ago), trigger start: the exchange answered"
        )
        assert lines[1] == "1 pair halted, waiting for a choice: BTC/USDT"
        assert "BTC/USDT  spot  MISMATCH: HALTED: they differ, your choice" in lines
        assert re.search(r"^  qty\s+0\.0082\s+0\.005$", out, re.M), out
        assert f"  not ours  {FOREIGN_ORDER}: left alone" in lines
        assert (
            "  mismatch  the exchange holds 0.005 BTC, the book 0.0082: 0.0032 sold or moved outside the bot"
            in lines
        )
        assert any(ln.startswith("            an order of ours at the exchange") for ln in lines)
        assert any(
            ln.startswith("  applied   missed fill booked: sell 0.02 @ 2048.1") for ln in lines
        )
        assert any(
            ln.startswith("  choice    none yet: adopt the exchange's state") for ln in lines
        )
        assert "SOL/USDT  spot  OK: book and exchange agree (qty 0)" in lines
        assert out.index("BTC/USDT") < out.index("ETH/USDT") < out.index("SOL/USDT")
        assert files_of(tmp_path) == before  # read only: the book and its neighbours unchanged

    def test_json_is_the_report_and_its_age(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        msg = reconcile_msg()
        book = book_with(tmp_path, msg)
        assert reconcile_main(["--db", str(book), "--json"], now=NOW) == 1
        got = json.loads(capsys.readouterr().out)
        assert got.pop("age_s") == 35.0
        assert got == report_of(msg).to_dict()
        assert got["pairs"][0]["foreign_orders"] == [f"{FOREIGN_ORDER}: not ours, left alone"]

    def test_settled_exits_0_and_says_who_chose(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        book = book_with(tmp_path, settled("keep"))
        assert cli_main(["reconcile", "--db", str(book)]) == 0
        out = capsys.readouterr().out
        assert "  choice    keep by alice@desk at 22:13:15 UTC" in out
        assert "nothing waits for a choice" in out

    def test_a_failed_reconciliation_exits_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        failed = reconcile_msg(pair_check_msg("SOL/USDT", "unchecked"), ok=False, error="timeout")
        book = book_with(tmp_path, failed)
        assert reconcile_main(["--db", str(book)], now=NOW) == 1
        assert "the exchange was NOT reached: timeout" in capsys.readouterr().out

    def test_no_book_no_reconciliation_or_bad_input_is_one_line_and_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        missing = tmp_path / "nope.sqlite"
        assert cli_main(["reconcile", "--db", str(missing)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no book there" in err and str(missing) in err
        assert not missing.exists()  # never created

        empty = book_with(tmp_path)
        assert cli_main(["reconcile", "--db", str(empty)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no reconciliation in this book" in err

        junk = tmp_path / "junk.sqlite"
        junk.write_text("not a database, just text that is long enough " * 4)
        assert cli_main(["reconcile", "--db", str(junk)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not an SQLite database" in err

        with pytest.raises(SystemExit) as exc:
            cli_main(["reconcile", "--jsn"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "unrecognized arguments: --jsn" in err

        assert cli_main(["reconcile", "--db", str(tmp_path)]) == 2  # a directory
        assert capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------------- the command's path


async def test_the_client_and_the_daemon_pass_the_choice_and_who_to_the_engine() -> None:
    """DaemonClient sends ``choice`` and ``who`` with the command; the daemon's control relays
    them to the engine with its own deadline, and the console's id goes back on the reply."""
    from console.client import DaemonClient
    from console.daemon import wire as dwire
    from console.daemon.control import DaemonControl
    from engine.wire.schema import AckMsg

    sent: list[tuple[str, str | None, dict[str, Any]]] = []

    async def client_request(
        cmd: str, symbol: str | None, timeout_s: float, **extra: Any
    ) -> tuple[dict[str, Any] | None, float]:
        sent.append((cmd, symbol, extra))
        return AckMsg("x", cmd, True, "BTC/USDT: adopted").to_wire(), 4.0

    client = DaemonClient(Endpoints.ipc(Path("/tmp")), "LIVE")
    client._request_map = client_request  # type: ignore[method-assign]
    ack = await client.command("reconcile", "BTC/USDT", choice="adopt", who="alice@desk")
    assert (ack.ok, ack.message, ack.elapsed_ms) == (True, "BTC/USDT: adopted", 4.0)
    assert sent == [("reconcile", "BTC/USDT", {"choice": "adopt", "who": "alice@desk"})]

    relayed: list[tuple[Any, ...]] = []
    replies: list[dict[str, Any]] = []

    class Control(DaemonControl):
        command_timeout_s = 1.0
        stopping = False

        async def _request_map(self, *args: Any, **extra: Any) -> Any:  # type: ignore[override]
            relayed.append((*args, extra))
            return AckMsg("engine-id", "reconcile", True, "kept").to_wire(), 2.0

        async def _reply(self, envelope: list[bytes], m: dict[str, Any]) -> None:
            replies.append(m)

    payload = dwire.make_request(
        "console-7", "reconcile", "BTC/USDT", time.time_ns() + 10**9, choice="keep", who="bob@h"
    )
    await Control()._handle([b"peer"], dwire.parse_request(payload))
    cmd, symbol, timeout, _deadline, extra = relayed[0]
    assert (cmd, symbol, extra) == ("reconcile", "BTC/USDT", {"choice": "keep", "who": "bob@h"})
    assert 0 < timeout <= 1.0
    assert replies[0]["id"] == "console-7" and replies[0]["message"] == "kept"
