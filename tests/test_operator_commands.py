"""The operator's commands as an operator expects them, through the real core and book
(engine/core/commands.py, engine/core/operator_state.py): flatten all stops new entries until
they are resumed (and that survives a restart), re-arm returns each pair to its mode before the
halt (a reconciliation's waiting pairs still skipped), a command with nothing to do says so,
and the trading day's start equity is kept in the book, so the day's PnL survives a restart."""

from __future__ import annotations

import math
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.core.models import PairMode
from engine.core.portfolio import MS_PER_DAY, Portfolio
from engine.core.trader import FEED_LATENCY_ALLOWANCE_MS
from engine.journal.schema import MIGRATIONS
from engine.journal.store import Store
from tests import core_policies
from tests.core_harness import Harness, make_core
from tests.store_seed import seed_open_position
from tests.test_protective_stops import SYM, _core, _open_long
from tests.test_reconcile import _settled, _view

pytestmark = pytest.mark.timeout(60)

BTC, ETH, SOL = "BTC/USDT", "ETH/USDT", "SOL/USDT"
PRICES = {BTC: 60_000.0, ETH: 3_000.0, SOL: 150.0}
TF_S = 5


def _cfg(symbols: tuple[str, ...] = (BTC, ETH), **portfolio: object) -> SafeList:
    params = {"lookback": 10, "policy": "tests.core_policies:scripted"}
    pairs = {s: {"tier": "STABLE", "strategy": "policy", "max_position_size_usd": 500, "params": params} for s in symbols}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": [], **portfolio},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": pairs,
    })  # fmt: skip


def _warm(h: Harness) -> None:
    """60 closed candles of history per pair, ending at the current interval (indicators ready)."""
    rng = random.Random(3)
    tf = TF_S * 1000
    start = h.clock.ms - h.clock.ms % tf - 60 * tf
    for sym in h.core.pairs:
        closes = [1.0]
        for _ in range(60):
            closes.append(closes[-1] * math.exp(rng.gauss(0.0, 0.002)))
        k = PRICES[sym] / closes[-1]
        candles = [Candle(start + i * tf, closes[i] * k, max(closes[i], closes[i + 1]) * k * 1.003,
                          min(closes[i], closes[i + 1]) * k * 0.997, closes[i + 1] * k, 10.0, 5)
                   for i in range(60)]  # fmt: skip
        h.core.warm_pair(sym, candles)


def _policy_core(tmp_path: Path, db: Path | None = None, **portfolio: object) -> Harness:
    h = make_core(tmp_path, _cfg(**portfolio), timeframe_s=TF_S, db=db)
    _warm(h)
    return h


def _candles(h: Harness, n: int, action: int) -> None:
    """``n`` candles at the pairs' prices, each closed by a tick; the policy answers ``action``."""
    core_policies.action[0] = action
    try:
        for _ in range(n):
            for _ in range(TF_S * 2):
                h.clock.advance(500)
                for sym in h.core.pairs:
                    h.tick(sym, PRICES[sym])
            h.clock.advance(FEED_LATENCY_ALLOWANCE_MS)
            h.core.on_timer()
    finally:
        core_policies.action[0] = 0


def _open(h: Harness) -> set[str]:
    return {s for s, p in h.core.portfolio.positions.items() if p.is_open}


def test_flatten_all_stops_new_entries_until_resumed_and_a_restart_keeps_them_stopped(tmp_path: Path) -> None:
    h = _policy_core(tmp_path)
    _candles(h, 2, action=1)
    assert _open(h) == {BTC, ETH}  # the policy buys on every candle

    r = h.core.command("flatten_all")
    assert r.ok and not r.noop
    assert r.message == "new entries stopped until resumed; 2 position(s) flattened", r.message
    assert _open(h) == set()
    s = h.core.portfolio_summary()
    assert (s.entries_stopped, s.entries_reason) == (True, "flatten all")
    assert h.store.load_entries() == (True, "flatten all", h.clock.ms)
    assert [e["kind"] for e in h.store.recent_events()] == ["entries"]

    n = len(h.events.decisions)
    _candles(h, 4, action=1)
    assert _open(h) == set()  # the policy still says BUY: no pair opens
    refused = h.events.decisions[n:]
    assert {d.symbol for d in refused} == {BTC, ETH} and not any(d.approved for d in refused)
    for d in refused:
        check = dict((c.name, (c.ok, c.reason)) for c in d.checks)["pair_mode"]
        assert check == (False, "new entries stopped by the operator (flatten all): resume entries first")

    h.store.close()  # a restart (a crash: nothing more was written) keeps entries stopped
    h = make_core(tmp_path, h.core.cfg, clock=h.clock, db=h.db, timeframe_s=TF_S)
    _warm(h)
    assert h.core.entries.stopped and h.core.portfolio_summary().entries_stopped
    _candles(h, 3, action=1)
    assert _open(h) == set() and h.events.fills == []
    assert {d.symbol for d in h.events.decisions} == {BTC, ETH} and not any(d.approved for d in h.events.decisions)

    again = h.core.command("flatten_all")  # nothing open: says what it did (the gate stays)
    assert again.ok and again.message == "new entries stay stopped; 0 position(s) flattened"

    r = h.core.command("resume_entries")
    assert r.ok and r.message == "new entries resumed" and not h.core.entries.stopped
    assert h.store.load_entries() == (False, "operator", h.clock.ms)
    _candles(h, 2, action=1)
    assert _open(h) == {BTC, ETH}


def test_stop_and_resume_entries_alone_exits_still_run_and_a_second_time_is_a_noop(tmp_path: Path) -> None:
    h = _policy_core(tmp_path)
    _candles(h, 1, action=1)
    assert _open(h) == {BTC, ETH}
    r = h.core.command("stop_entries")
    assert r.ok and not r.noop and r.message.startswith("new entries stopped on every pair until resumed")
    assert _open(h) == {BTC, ETH}  # stopping entries closes nothing
    twice = h.core.command("stop_entries")
    assert twice.ok and twice.noop and twice.message == "nothing to do: new entries already stopped (operator)"

    _candles(h, 1, action=2)  # the policy sells: exits are not entries, they still run
    assert _open(h) == set()
    assert {f.reason for f in h.events.fills[-2:]} == {"signal"}

    h.core.command("pause", ETH)
    r = h.core.command("resume_entries")
    assert r.ok and r.message == "new entries resumed (ETH/USDT stay in their mode)"
    nothing = h.core.command("resume_entries")
    assert nothing.ok and nothing.noop and nothing.message == "nothing to do: new entries are not stopped"
    _candles(h, 1, action=1)
    assert _open(h) == {BTC}  # ETH is still paused


def test_rearm_returns_every_pair_to_its_mode_before_the_kill_after_a_restart_too(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, BTC, 0.004, 60_000.0)
    h = make_core(tmp_path, _cfg((BTC, ETH, SOL)), db=db)
    for sym, px in PRICES.items():
        h.tick(sym, px)
    assert h.core.command("pause", ETH).ok and h.core.command("reduce", SOL).ok

    assert h.core.command("kill").ok
    assert set(h.core.modes().values()) == {"HALTED"}
    assert h.store.modes_before_halt() == {BTC: PairMode.ACTIVE, ETH: PairMode.PAUSED, SOL: PairMode.REDUCING}
    assert h.core.command("kill").ok  # a second kill keeps the modes of before the first
    assert h.store.modes_before_halt() == {BTC: PairMode.ACTIVE, ETH: PairMode.PAUSED, SOL: PairMode.REDUCING}
    refused = h.core.command("pause", ETH)
    assert not refused.ok and refused.message == "ETH/USDT is HALTED: re-arm first"

    h = h.reopen()  # a restart: HALTED, and the modes to restore, are in the book
    assert set(h.core.modes().values()) == {"HALTED"}
    r = h.core.command("rearm")
    assert r.ok and r.message == "re-armed 3 pair(s) (ETH/USDT PAUSED, SOL/USDT REDUCING: as before the halt)"
    assert h.core.modes() == {BTC: "ACTIVE", ETH: "PAUSED", SOL: "REDUCING"}
    assert h.store.load_modes() == {BTC: PairMode.ACTIVE, ETH: PairMode.PAUSED, SOL: PairMode.REDUCING}
    assert h.store.modes_before_halt() == {}
    assert not h.core.portfolio_summary().halted

    again = h.core.command("rearm")
    assert again.ok and again.noop and again.message == "nothing to re-arm: re-armed 0 pair(s)"


def test_rearm_still_skips_a_pair_waiting_for_a_reconciliation_then_restores_its_mode(tmp_path: Path) -> None:
    h, venue = _core(tmp_path)
    _open_long(h, venue)
    assert h.core.command("pause", SYM).ok
    _settled(h)
    h.core.reconciler.apply(_view(h, balances={"BTC": 0.0}), "start")  # coins sold by hand
    assert h.core.pairs[SYM].mode is PairMode.HALTED
    assert h.store.modes_before_halt() == {SYM: PairMode.PAUSED}

    assert h.core.command("kill").ok  # a kill on top changes nothing of what re-arm restores
    r = h.core.command("rearm")
    assert r.noop and "BTC/USDT wait for a reconciliation choice" in r.message
    assert h.core.pairs[SYM].mode is PairMode.HALTED

    assert h.core.command("reconcile", SYM, choice="keep", who="ops@vps").ok
    r = h.core.command("rearm")
    assert r.ok and r.message == "re-armed 1 pair(s) (BTC/USDT PAUSED: as before the halt)"
    assert h.core.pairs[SYM].mode is PairMode.PAUSED


def test_rearm_tells_that_new_entries_stay_stopped(tmp_path: Path) -> None:
    h = make_core(tmp_path, _cfg())
    assert h.core.command("stop_entries").ok
    assert h.core.command("kill").ok
    r = h.core.command("rearm")
    assert r.message == "re-armed 2 pair(s); new entries stay stopped (operator) until resumed"
    assert h.core.entries.stopped


def test_a_pair_halted_in_an_older_book_is_re_armed_active(tmp_path: Path) -> None:
    """A version 5 book has no mode before the halt: re-arm gives ACTIVE, as it always did."""
    db = tmp_path / "book.sqlite"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for step in range(1, 6):
            MIGRATIONS[step](conn)
        conn.execute("PRAGMA user_version = 5")
        conn.execute("INSERT INTO pair_modes (symbol, mode, reason, ts) VALUES ('ETH/USDT', 'HALTED', 'kill switch', 1)")
    h = make_core(tmp_path, _cfg(), db=db)
    assert h.store.schema_version() == 7 and h.core.modes() == {BTC: "ACTIVE", ETH: "HALTED"}
    assert h.store.modes_before_halt() == {} and h.store.load_entries() is None
    assert h.core.command("rearm").message == "re-armed 1 pair(s)"
    assert h.core.modes() == {BTC: "ACTIVE", ETH: "ACTIVE"}


# ------------------------------------------------------------------ the trading day


def _day_start(ts: int, hour: int = 0) -> int:
    return (ts - hour * 3_600_000) // MS_PER_DAY * MS_PER_DAY + hour * 3_600_000


def test_the_day_pnl_is_the_same_after_a_restart_and_starts_again_the_next_day(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, BTC, 0.004, 60_000.0)
    h = make_core(tmp_path, _cfg((BTC,)), db=db)
    h.tick(BTC, 60_000.0)
    h.core.on_timer()  # the day's first mark: equity at 60,000
    start_equity = h.core.portfolio.day_start_equity
    assert h.store.load_day_start() == (_day_start(h.clock.ms), start_equity)
    h.clock.advance(1_000)
    h.tick(BTC, 61_000.0)
    assert h.core.command("flatten", BTC).ok
    h.core.on_timer()
    day = h.core.portfolio_summary().daily_pnl
    total = h.core.portfolio_summary().total_pnl
    assert day > 3.0 and total == pytest.approx(h.core.portfolio.equity({}) - 10_000.0)

    h = h.reopen()  # the book's day start: the day's PnL is the same as before the restart
    h.core.on_timer()
    s = h.core.portfolio_summary()
    assert s.daily_pnl == day and s.total_pnl == total
    assert s.day_start_ts == _day_start(h.clock.ms) and h.core.portfolio.day_start_equity == start_equity

    h.clock.advance(_day_start(h.clock.ms) + MS_PER_DAY - h.clock.ms)  # 00:00 UTC: a new day
    h.core.on_timer()
    s = h.core.portfolio_summary()
    assert s.daily_pnl == 0.0 and s.total_pnl == total
    assert h.store.load_day_start() == (_day_start(h.clock.ms), h.core.portfolio.equity({}))


def test_the_day_starts_at_the_configured_hour_and_a_changed_hour_starts_a_new_day(tmp_path: Path) -> None:
    h = make_core(tmp_path, _cfg((BTC,), day_start_hour_utc=6))
    h.core.on_timer()
    t0 = h.clock.ms  # 2023-11-14 22:13:20 UTC: the day began at 06:00 that morning
    assert h.core.portfolio.day_start_ts == _day_start(t0, 6) == 1_699_941_600_000
    h.clock.advance(_day_start(t0, 6) + MS_PER_DAY - 1_000 - t0)  # 05:59:59 the next morning
    h.core.on_timer()
    assert h.core.portfolio.day_start_ts == _day_start(t0, 6)
    h.clock.advance(1_000)  # 06:00
    h.core.on_timer()
    assert h.core.portfolio.day_start_ts == _day_start(t0, 6) + MS_PER_DAY
    h.store.close()

    h2 = make_core(tmp_path, _cfg((BTC,)), clock=h.clock, db=h.db)  # now from midnight UTC
    assert h2.core.portfolio.day_start_ts == 0  # the book's 06:00 start is not a day of this hour
    h2.core.on_timer()
    assert h2.core.portfolio.day_start_ts == _day_start(h.clock.ms)


def test_portfolio_restores_only_a_day_of_its_start_hour() -> None:
    pf = Portfolio(1_000, day_start_hour=6)
    assert not pf.restore_day(MS_PER_DAY * 10, 900.0)  # midnight is no 06:00 start
    assert pf.day_start_ts == 0 and pf.daily_pnl(1_000.0) == 0.0
    assert pf.restore_day(MS_PER_DAY * 10 + 6 * 3_600_000, 900.0)
    assert pf.daily_pnl(1_000.0) == 100.0
    assert not pf.starts_day(MS_PER_DAY * 11 + 6 * 3_600_000 - 1) and pf.starts_day(MS_PER_DAY * 11 + 6 * 3_600_000)


def test_the_store_refuses_a_non_finite_day_start(tmp_path: Path) -> None:
    with Store(tmp_path / "b.sqlite") as st:
        with pytest.raises(Exception, match="day start equity must be a finite number"):
            st.record_day_start(0, math.nan, 1)
        assert st.load_day_start() is None
