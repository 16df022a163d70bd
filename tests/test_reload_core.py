"""A new safe list applied to a running core (engine/core/reload.py, issue 17 point 4 and 5):
pairs added, removed (REDUCING until flat), changed (rebuilt, position untouched), limits
changed (the next decision), refusals with their reason, and nothing the operator set undone.
Real core, real paper client, real SQLite book (tests/core_harness.py).
"""

from __future__ import annotations

from pathlib import Path

from engine.core import reload
from engine.core.candles import Candle
from engine.core.models import CheckResult, PairMode, Signal, SignalType
from tests.core_harness import Walk, make_core, safe_list
from tests.store_seed import seed_open_position

THREE = {"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion", "SOL/USDT": "breakout"}


def _apply(h, new):  # type: ignore[no-untyped-def]
    d = reload.diff(h.core.cfg, new)
    assert reload.refusals(d, reload.open_positions(h.core)) == []
    return d, reload.apply(h.core, new, d)


def test_diff_and_preview_name_each_change_and_what_it_does(tmp_path: Path) -> None:
    old = safe_list(THREE)
    new = safe_list({"BTC/USDT": "momentum", "ETH/USDT": "breakout", "BNB/USDT": "momentum"}, max_total_exposure=0.05)
    d = reload.diff(old, new)
    assert (d.added, d.removed, list(d.changed)) == (["BNB/USDT"], ["SOL/USDT"], ["ETH/USDT"])
    assert d.portfolio == ["max_total_exposure: 0.1 -> 0.05"]
    lines = reload.describe(d, {"SOL/USDT"}, {"BTC/USDT": "ACTIVE", "ETH/USDT": "ACTIVE", "SOL/USDT": "ACTIVE"})
    assert lines[0] == "+ BNB/USDT: subscribed on the feed, warmed from history, starts ACTIVE"
    assert "- SOL/USDT: has a position: REDUCING" in lines[1]
    assert "~ ETH/USDT: strategy: 'mean_reversion' -> 'breakout'" in lines[2] and "rebuilt from history" in lines[2]
    assert "never closes" in lines[3]
    assert reload.describe(reload.diff(old, old), set()) == ["no change: the file is the safe list in force"]


def test_changes_that_cannot_be_made_live_are_refused_with_the_reason() -> None:
    old = safe_list(THREE)
    futures = old.model_copy(update={"pairs": {**old.pairs, "BTC/USDT": old.pairs["BTC/USDT"].model_copy(update={"market": "futures"})}})
    d = reload.diff(old, futures)
    assert reload.refusals(d, set()) == []  # flat: the pair is rebuilt
    (line,) = reload.refusals(d, {"BTC/USDT"})
    assert line == "pairs.BTC/USDT.market: 'spot' -> 'futures' with a position open: flatten BTC/USDT first, then reload"
    tf = old.model_copy(update={"engine": old.engine.model_copy(update={"timeframe": "5m"})})
    assert "stop and start the daemon" in reload.refusals(reload.diff(old, tf), set())[0]
    fee = safe_list(THREE, taker_fee=0.002)
    assert reload.refusals(reload.diff(old, fee), set())[0].startswith("portfolio.taker_fee: 0.001 -> 0.002")


def test_an_added_pair_is_warmed_starts_active_and_trades(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list(THREE))
    Walk(h).run(20)
    _, done = _apply(h, safe_list({**THREE, "BNB/USDT": "momentum"}))
    assert done.added == ["BNB/USDT"] and done.warm == ["BNB/USDT"]
    ps = h.core.pairs["BNB/USDT"]
    assert ps.mode is PairMode.ACTIVE and "BNB/USDT" in h.core.rules and "BNB/USDT" in h.core.corr.symbols
    t0 = (h.clock.ms // 60_000 - 100) * 60_000
    candles = [Candle(t0 + i * 60_000, 580.0, 581.0, 579.0, 580.0 + (i % 7), 10.0) for i in range(100)]
    assert reload.warm(h.core, "BNB/USDT", candles) == 100
    assert ps.ind.atr is not None and ps.runtime.candles == 100
    assert h.tick("BNB/USDT", 585.0) and ps.last == 585.0
    w = Walk(h, seed=3)
    w.price["BNB/USDT"] = 585.0
    w.run(300)  # every pair keeps ticking, the new one among them, candles close
    assert ps.runtime.candles > 100


def test_a_removed_pair_with_a_position_is_reducing_until_flat_then_gone(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "SOL/USDT", qty=1.0, price=150.0)
    h = make_core(tmp_path, safe_list(THREE), db=db)
    h.core.command("pause", "ETH/USDT")
    _, done = _apply(h, safe_list({"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion"}))
    assert done.reducing == ["SOL/USDT"] and done.left == []
    assert h.core.pairs["SOL/USDT"].mode is PairMode.REDUCING
    assert h.core.pairs["ETH/USDT"].mode is PairMode.PAUSED  # the operator's pause is kept
    assert h.store.load_modes()["SOL/USDT"] is PairMode.REDUCING  # journaled
    h.tick("SOL/USDT", 150.0)
    assert reload.sweep(h.core) == []  # not flat yet: still traded, its stops still run
    assert h.core.command("flatten", "SOL/USDT").ok
    assert reload.sweep(h.core) == ["SOL/USDT"]
    assert "SOL/USDT" not in h.core.pairs and "SOL/USDT" not in h.core.cfg.pairs and h.core.leaving == {}


def test_a_removed_flat_pair_leaves_at_once(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list(THREE))
    _, done = _apply(h, safe_list({"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion"}))
    assert done.left == ["SOL/USDT"] and list(h.core.pairs) == ["BTC/USDT", "ETH/USDT"]
    assert h.core.corr.symbols == ["BTC/USDT", "ETH/USDT"]


def test_a_changed_strategy_rebuilds_the_pair_without_touching_its_position(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "ETH/USDT", qty=0.1, price=3_000.0)
    h = make_core(tmp_path, safe_list(THREE), db=db)
    Walk(h).run(200)
    before = h.core.portfolio.positions["ETH/USDT"]
    old_runtime = h.core.pairs["ETH/USDT"].runtime
    _, done = _apply(h, safe_list({**THREE, "ETH/USDT": "momentum"}))
    ps = h.core.pairs["ETH/USDT"]
    assert done.warm == ["ETH/USDT"] and ps.runtime is not old_runtime and ps.runtime.cfg.strategy == "momentum"
    assert h.core.portfolio.positions["ETH/USDT"] is before and ps.mode is PairMode.ACTIVE
    assert reload.warm(h.core, "ETH/USDT", []) == len(ps.candles.closed)  # rebuilt from the candles it holds


def test_a_tighter_cap_applies_to_the_next_decision_and_closes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", qty=0.004, price=60_000.0)
    h = make_core(tmp_path, safe_list(THREE), db=db)
    h.core.set_quote("ETH/USDT", 2999.0, 3001.0)
    buy = Signal("ETH/USDT", SignalType.BUY, 0.9, 3001.0, 2900.0, 3300.0, "test", 0)

    def exposure_check() -> CheckResult:
        d = h.core.risk.evaluate(buy, h.core.risk_context(), "k")
        return next(c for c in d.checks if c.name == "total_exposure")

    assert exposure_check().ok  # under the old cap the same entry's exposure passes
    _apply(h, safe_list(THREE, max_total_exposure=0.01))
    assert h.core.risk.cfg.portfolio.max_total_exposure == 0.01
    assert h.core.portfolio_summary().exposure_max == 100.0
    refused = exposure_check()  # the next decision, under the new cap
    assert not refused.ok and "would exceed max $100.00" in refused.reason
    assert h.core.portfolio.positions["BTC/USDT"].is_open  # above the new cap, still open


def test_halted_and_the_kill_switch_survive_a_reload(tmp_path: Path) -> None:
    h = make_core(tmp_path, safe_list(THREE))
    h.core.command("kill")
    assert h.core.entries.stopped is False
    h.core.command("stop_entries")
    _apply(h, safe_list({**THREE, "BNB/USDT": "momentum", "ETH/USDT": "momentum"}))
    assert {s: p.mode for s, p in h.core.pairs.items()} == dict.fromkeys(
        ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT"], PairMode.HALTED
    )
    assert h.core.entries.stopped and h.core.portfolio_summary().halted
    assert h.store.load_modes()["BNB/USDT"] is PairMode.HALTED  # a restart keeps it too
