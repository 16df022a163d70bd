"""Portfolio accounting: open, add, reduce, close, flip, shorts, fees, daily PnL, valuation,
and the identity equity == cash + Σ qty×mark == capital + realised − fees + unrealised
at every step of hand-written and random fill sequences.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.clock import Clock
from engine.core.execution import ExecutionEngine
from engine.core.markets import DEFAULT_RULES
from engine.core.models import Fill, Side
from engine.core.orders import Order, OrderFilled, OrderStatus, apply_event
from engine.core.portfolio import MS_PER_DAY, Portfolio
from engine.core.ports import NullSink
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store

_n = 0


def _fill(symbol: str, side: str, qty: float, price: float, fee: float = 0.0, ts: int = 0) -> Fill:
    global _n
    _n += 1
    return Fill(f"f{_n}", f"o{_n}", symbol, Side(side), qty, price, fee, ts)


def _identity(pf: Portfolio, marks: dict[str, float]) -> float:
    eq = pf.equity(marks)
    assert eq == pytest.approx(pf.cash + sum(p.qty * marks.get(s, p.entry) for s, p in pf.positions.items()), abs=1e-6)
    assert eq == pytest.approx(pf.capital + pf.realised - pf.fees + pf.unrealised(marks), abs=1e-6)
    return eq


def test_open_add_reduce_close_long() -> None:
    pf = Portfolio(10_000)
    p = pf.apply_fill(_fill("BTC/USDT", "buy", 0.01, 50_000, fee=0.5, ts=1))
    assert (p.qty, p.entry, p.opened_ts) == (0.01, 50_000, 1)
    assert pf.cash == pytest.approx(10_000 - 500 - 0.5)
    _identity(pf, {"BTC/USDT": 51_000})
    p = pf.apply_fill(_fill("BTC/USDT", "buy", 0.03, 54_000, fee=1.0, ts=2))
    assert p.qty == pytest.approx(0.04) and p.entry == pytest.approx(53_000)  # (500 + 1620) / 0.04
    assert p.opened_ts == 1
    _identity(pf, {"BTC/USDT": 52_000})
    p = pf.apply_fill(_fill("BTC/USDT", "sell", 0.01, 55_000, fee=0.25))
    assert p.qty == pytest.approx(0.03) and p.entry == pytest.approx(53_000)  # reducing keeps the entry
    assert pf.realised == pytest.approx(20.0) and p.realised == pytest.approx(20.0)
    _identity(pf, {"BTC/USDT": 50_000})
    p = pf.apply_fill(_fill("BTC/USDT", "sell", 0.03, 52_000, fee=0.25))
    assert p.qty == 0.0 and not p.is_open and p.entry == 0.0
    assert pf.realised == pytest.approx(20.0 - 30.0)
    assert pf.fees == pytest.approx(2.0) and p.fees == pytest.approx(2.0)
    assert not pf.positions["BTC/USDT"].is_open and not any(p.is_open for p in pf.positions.values())
    assert pf.cash == pytest.approx(10_000 - 10 - 2.0)
    assert _identity(pf, {}) == pytest.approx(pf.cash)


def test_short_then_cover_and_flip() -> None:
    pf = Portfolio(1_000)
    marks = {"SOL/USDT": 150.0}
    p = pf.apply_fill(_fill("SOL/USDT", "sell", 2.0, 150.0))
    assert p.qty == -2.0 and pf.cash == pytest.approx(1_300.0)
    marks["SOL/USDT"] = 140.0
    assert pf.unrealised(marks) == pytest.approx(20.0) and pf.exposure(marks) == pytest.approx(280.0)
    assert _identity(pf, marks) == pytest.approx(1_020.0)
    # flip: buy 5 while short 2 -> close 2 at 140 (+20 realised), then long 3 at 140
    p = pf.apply_fill(_fill("SOL/USDT", "buy", 5.0, 140.0, ts=77))
    assert p.qty == pytest.approx(3.0) and p.entry == 140.0 and p.opened_ts == 77
    assert pf.realised == pytest.approx(20.0)
    _identity(pf, {"SOL/USDT": 145.0})
    # and back: sell 4 -> realise 3 × 5, short 1 at 145
    p = pf.apply_fill(_fill("SOL/USDT", "sell", 4.0, 145.0))
    assert p.qty == pytest.approx(-1.0) and p.entry == 145.0 and pf.realised == pytest.approx(35.0)
    _identity(pf, {"SOL/USDT": 160.0})


def test_float_dust_closes_flat() -> None:
    pf = Portfolio(1_000)
    for q in (0.1, 0.2):
        pf.apply_fill(_fill("ETH/USDT", "buy", q, 3_000))
    p = pf.apply_fill(_fill("ETH/USDT", "sell", 0.3, 3_000))
    assert p.qty == 0.0 and not p.is_open and pf.positions["ETH/USDT"] is p


def test_stops_are_kept_until_close_or_flip() -> None:
    pf = Portfolio(1_000)
    p = pf.apply_fill(_fill("BTC/USDT", "buy", 0.001, 50_000))
    p.stop_loss, p.take_profit = 49_000, 53_000  # as the execution engine attaches an entry's levels
    p = pf.apply_fill(_fill("BTC/USDT", "buy", 0.001, 50_000))
    assert (p.stop_loss, p.take_profit) == (49_000, 53_000)
    p = pf.apply_fill(_fill("BTC/USDT", "sell", 0.0005, 51_000))  # reducing keeps them
    assert (p.stop_loss, p.take_profit) == (49_000, 53_000)
    p = pf.apply_fill(_fill("BTC/USDT", "sell", 0.0015, 50_000))
    assert (p.stop_loss, p.take_profit) == (0.0, 0.0) and p.qty == 0.0
    p = pf.apply_fill(_fill("SOL/USDT", "sell", 1.0, 150.0))
    p.stop_loss, p.take_profit = 155.0, 140.0
    p = pf.apply_fill(_fill("SOL/USDT", "buy", 3.0, 149.0))  # flipped: a fresh long has no stops
    assert p.qty == pytest.approx(2.0) and (p.stop_loss, p.take_profit) == (0.0, 0.0)


class _Clock(Clock):
    def __init__(self) -> None:
        self.ms = 1_000

    def time_ms(self) -> int:
        self.ms += 1
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


def test_an_entry_orders_levels_are_attached_to_its_position(tmp_path: Path) -> None:
    """What attaches stops now: the execution engine books an entry's fill with its order's
    stop-loss and take-profit on the position; an exit's fill clears them."""
    clock = _Clock()
    pf = Portfolio(10_000)
    with Store(tmp_path / "book.db") as journal:
        journal.init_account(10_000, 0)
        ex = ExecutionEngine(PaperExecutionClient(0.0, 0.0, DEFAULT_RULES, clock), journal, NullSink(), pf, clock,
                             DEFAULT_RULES, lambda _sym: None)
        entry = Order("mp-entry", "BTC/USDT", Side.BUY, 0.002, "signal", "k1", 1, updated_ts=1,
                      stop_loss=49_000.0, take_profit=53_000.0)
        assert ex.submit(entry, 50_000.0, 50_000.0)
        pos = pf.positions["BTC/USDT"]
        assert pos.qty == 0.002 and (pos.stop_loss, pos.take_profit) == (49_000.0, 53_000.0)
        assert journal.load_positions()["BTC/USDT"] == pos  # journaled with its levels
        assert ex.close(pos, "flatten", "k2", 50_100.0, 50_100.0) == "filled"
        assert pos.qty == 0.0 and (pos.stop_loss, pos.take_profit) == (0.0, 0.0)
        assert journal.load_positions() == {}


def test_missing_mark_values_at_entry() -> None:
    pf = Portfolio(1_000)
    pf.apply_fill(_fill("DOGE/USDT", "buy", 100, 0.2))
    assert pf.exposure({}) == pytest.approx(20.0) and pf.unrealised({}) == 0.0
    assert pf.equity({}) == pytest.approx(1_000.0)


@pytest.mark.parametrize(
    ("qty", "price", "fee"), [(0.0, 1.0, 0.0), (-1.0, 1.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, -0.1), (float("nan"), 1.0, 0.0)]
)
def test_bad_fill_is_refused_without_changing_anything(qty: float, price: float, fee: float) -> None:
    pf = Portfolio(1_000)
    with pytest.raises(ValueError, match="BTC/USDT: fill"):
        pf.apply_fill(_fill("BTC/USDT", "buy", qty, price, fee))
    assert pf.cash == 1_000 and pf.fills == 0 and pf.positions == {}


def test_daily_pnl_resets_at_utc_midnight() -> None:
    pf = Portfolio(10_000)
    day = 20_000 * MS_PER_DAY
    assert pf.daily_pnl({}) == 0.0  # before any mark: against capital
    pf.apply_fill(_fill("BTC/USDT", "buy", 0.01, 50_000))
    assert pf.mark_day(day + 5, pf.equity({"BTC/USDT": 50_000})) is True
    assert pf.mark_day(day + 3_600_000, pf.equity({"BTC/USDT": 52_000})) is False  # same day: kept
    assert pf.daily_pnl({"BTC/USDT": 52_000}) == pytest.approx(20.0)
    assert pf.daily_pnl(pf.equity({"BTC/USDT": 49_000})) == pytest.approx(-10.0)  # equity form
    assert pf.mark_day(day + MS_PER_DAY, pf.equity({"BTC/USDT": 52_000})) is True
    assert pf.daily_pnl({"BTC/USDT": 52_000}) == pytest.approx(0.0)
    assert pf.day_start_equity == pytest.approx(10_020.0)


def test_valuation_gives_equity_exposure_and_unrealised_in_one_pass() -> None:
    """A long and a short marked (a pair with no mark: its entry): the three figures, each
    equal to its own method's, and the total PnL from the unrealised given or from marks."""
    pf = Portfolio(10_000)
    pf.apply_fill(_fill("BTC/USDT", "buy", 0.01, 50_000, fee=0.5))
    pf.apply_fill(_fill("SOL/USDT", "sell", 2.0, 150.0, fee=0.3))
    pf.apply_fill(_fill("ETH/USDT", "buy", 0.1, 3_000, fee=0.2))
    marks = {"BTC/USDT": 51_000, "SOL/USDT": 140.0}  # ETH unmarked: valued at its entry
    equity, exposure, unrealised = pf.valuation(marks)
    assert unrealised == pytest.approx(10 + 20)
    assert exposure == pytest.approx(510 + 280 + 300)
    assert equity == pytest.approx(10_000 - 1.0 + 30)
    assert (equity, exposure, unrealised) == (pf.equity(marks), pf.exposure(marks), pf.unrealised(marks))
    assert pf.valuation(types.MappingProxyType(marks)) == (equity, exposure, unrealised)  # any Mapping
    assert pf.total_pnl(unrealised) == pf.total_pnl(marks) == pytest.approx(equity - 10_000)


def test_replaying_the_journaled_fills_rebuilds_the_same_account(tmp_path: Path) -> None:
    fills = [
        _fill("BTC/USDT", "buy", 0.01, 50_000, 0.5),
        _fill("ETH/USDT", "buy", 0.2, 3_000, 0.6),
        _fill("BTC/USDT", "sell", 0.004, 51_000, 0.2),
        _fill("ETH/USDT", "sell", 0.2, 2_900, 0.58),
    ]
    a = Portfolio(5_000)
    with Store(tmp_path / "book.db") as journal:
        journal.init_account(5_000, 0)
        for f in fills:  # what the engine journals: the order, then its fill with the state after it
            order = Order(f.order_id, f.symbol, f.side, f.qty, "signal", f"key-{f.order_id}", f.ts)
            assert journal.record_order(order)
            apply_event(order, OrderFilled(f.order_id, f))
            assert order.status is OrderStatus.FILLED
            pos = a.apply_fill(f)
            assert journal.record_fill(f, order, pos, {"cash": a.cash, "realised": a.realised, "fees": a.fees})
        stored = journal.fills()
        account, positions = journal.load_account(), journal.load_positions()
    assert stored == fills
    b = Portfolio(5_000)
    for f in stored:
        b.apply_fill(f)
    assert (a.cash, a.realised, a.fees) == (b.cash, b.realised, b.fees)
    assert account == {"capital": 5_000, "cash": b.cash, "realised": b.realised, "fees": b.fees}
    assert {s: (p.qty, p.entry) for s, p in a.positions.items()} == {s: (p.qty, p.entry) for s, p in b.positions.items()}
    assert positions == {s: p for s, p in b.positions.items() if p.is_open}


_fills = st.lists(
    st.tuples(
        st.sampled_from(["BTC/USDT", "ETH/USDT", "DOGE/USDT"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 5_000),  # quantity in steps
        st.floats(0.5, 2.0),  # price factor
        st.floats(0.0, 0.002),  # fee rate
    ),
    max_size=60,
)
BASE = {"BTC/USDT": (50_000.0, 0.00001), "ETH/USDT": (3_000.0, 0.0001), "DOGE/USDT": (0.2, 1.0)}


@settings(max_examples=300, deadline=None)
@given(fills=_fills, mark_factor=st.floats(0.3, 3.0))
def test_property_identity_holds_at_every_step(fills: list[tuple[str, str, int, float, float]], mark_factor: float) -> None:
    pf = Portfolio(10_000)
    marks: dict[str, float] = {}
    for sym, side, steps, factor, fee_rate in fills:
        price, step = BASE[sym]
        px = round(price * factor, 2 if price > 1 else 5)
        qty = round(steps * step, 10)
        pf.apply_fill(_fill(sym, side, qty, px, fee=qty * px * fee_rate))
        marks[sym] = px
        _identity(pf, marks)
        _identity(pf, {s: m * mark_factor for s, m in marks.items()})
        assert pf.exposure(marks) == pytest.approx(sum(abs(p.qty) * marks[s] for s, p in pf.positions.items()))
    # flatten everything: realised − fees is then all that is left
    for sym, p in list(pf.positions.items()):
        if p.qty:
            pf.apply_fill(_fill(sym, "sell" if p.qty > 0 else "buy", abs(p.qty), marks[sym]))
    assert all(p.qty == 0.0 for p in pf.positions.values())
    assert pf.cash == pytest.approx(pf.capital + pf.realised - pf.fees, abs=1e-6)
