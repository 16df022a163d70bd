"""Paper execution fills (price, slippage, fee, precision, idempotency), the execution
events it answers ``submit`` and ``lookup`` with, and the market rules behind them (exact
step flooring, price ticks, order checks, loading ccxt markets).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.clock import Clock
from engine.core.markets import (
    DECIMAL_PLACES,
    DEFAULT_RULES,
    FALLBACK_RULES,
    MarketRules,
    MarketRulesError,
    check_order,
    default_rules,
    load_rules,
    round_price,
    round_qty_down,
    rules_for,
)
from engine.core.models import Side
from engine.core.orders import (
    ExecutionEvent,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderNotFound,
    OrderRejected,
    OrderStatus,
    apply_event,
    client_order_id,
)
from engine.execution.paper import PaperExecutionClient, PaperRejection, fill_id_for

BTC = DEFAULT_RULES["BTC/USDT"]


# ------------------------------------------------------------------------ market rules


def test_known_defaults_and_fallback() -> None:
    assert BTC.amount_step == 0.00001 and DEFAULT_RULES["ETH/USDT"].amount_step == 0.0001
    assert DEFAULT_RULES["SOL/USDT"].amount_step == 0.001
    assert all(r.min_notional == 5.0 for r in DEFAULT_RULES.values())
    assert default_rules("BTC/USDT") is BTC
    assert default_rules("PEPE/USDT") == FALLBACK_RULES == MarketRules(1e-6, 1e-8, 1e-6, 5.0)
    custom = MarketRules(0.1, 0.1, 0.1, 1.0)
    assert rules_for("BTC/USDT", {"BTC/USDT": custom}) is custom
    assert rules_for("BTC/USDT", {}) is BTC


@pytest.mark.parametrize(
    ("qty", "step", "expect"),
    [
        (0.3, 0.1, 0.3),  # 0.3 / 0.1 is 2.9999999999999996 in floats: must stay 0.3
        (0.7, 0.1, 0.7),
        (0.123456789, 0.00001, 0.12345),
        (1.99999999, 0.001, 1.999),
        (0.0000099, 0.00001, 0.0),
        (5.0, 1.0, 5.0),
        (1234.5678, 0.01, 1234.56),
        (-1.0, 0.1, 0.0),
    ],
)
def test_round_qty_down_is_exact(qty: float, step: float, expect: float) -> None:
    assert round_qty_down(qty, MarketRules(step, 0.01, step, 0.0)) == expect


@settings(max_examples=300, deadline=None)
@given(qty=st.floats(1e-7, 1e4), step=st.sampled_from([1e-8, 1e-6, 0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0]))
def test_property_round_qty_down_floors_onto_the_grid(qty: float, step: float) -> None:
    r = round_qty_down(qty, MarketRules(step, 0.01, step, 0.0))
    d, s = Decimal(repr(r)), Decimal(repr(step))
    assert r <= qty and d % s == 0 and qty - r < step * (1 + 1e-9)
    assert round_qty_down(r, MarketRules(step, 0.01, step, 0.0)) == r  # idempotent


def test_round_price_against_us() -> None:
    assert round_price(100.001, BTC, up=True) == 100.01
    assert round_price(100.009, BTC, up=False) == 100.0
    assert round_price(100.01, BTC, up=True) == 100.01  # already on the tick


@pytest.mark.parametrize(
    ("qty", "price", "reason"),
    [
        (0.001, 50_000.0, None),
        (0.0001, 50_000.0, None),  # $5.00 exactly is enough
        (0.00009, 50_000.0, "notional $4.50 below exchange minimum $5.00"),
        (0.000001, 50_000.0, "below exchange minimum 1e-05"),
        (0.000015, 500_000.0, "not a multiple of the amount step"),
        (0.0, 50_000.0, "must be a positive number"),
        (0.001, float("nan"), "price nan must be a positive number"),
    ],
)
def test_check_order(qty: float, price: float, reason: str | None) -> None:
    got = check_order(qty, price, BTC)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


CCXT_MARKETS = {
    "BTC/USDT": {
        "symbol": "BTC/USDT",
        "precision": {"amount": 1e-05, "price": 0.01},
        "limits": {"amount": {"min": 1e-05, "max": 9000.0}, "cost": {"min": 5.0, "max": None}},
    },
    "PEPE/USDT": {
        "precision": {"amount": 1.0, "price": 1e-08},
        "limits": {"amount": {"min": 1.0}, "cost": {"min": 1.0}},
    },
    "XRP/USDT": {"precision": {}, "limits": {}},  # nothing known: fallback values
}


def test_load_rules_from_ccxt_markets_and_json(tmp_path: Path) -> None:
    rules = load_rules(CCXT_MARKETS)
    assert rules["BTC/USDT"] == MarketRules(1e-05, 0.01, 1e-05, 5.0)
    assert rules["PEPE/USDT"] == MarketRules(1.0, 1e-08, 1.0, 1.0)
    assert rules["XRP/USDT"] == FALLBACK_RULES
    path = tmp_path / "markets.json"
    path.write_text(json.dumps(CCXT_MARKETS))
    assert load_rules(path, symbols=["BTC/USDT"]) == {"BTC/USDT": rules["BTC/USDT"]}
    assert load_rules(str(path)) == rules


def test_load_rules_decimal_places_mode() -> None:
    m = {"ADA/USDT": {"precision": {"amount": 1, "price": 4}, "limits": {"cost": {"min": 10}}}}
    r = load_rules(m, precision_mode=DECIMAL_PLACES)["ADA/USDT"]
    assert r.amount_step == pytest.approx(0.1) and r.price_step == pytest.approx(0.0001) and r.min_notional == 10


def test_load_rules_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(MarketRulesError, match="cannot read"):
        load_rules(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MarketRulesError, match=r"bad\.json: line 1: not JSON"):
        load_rules(bad)
    with pytest.raises(MarketRulesError, match=r"BTC/USDT: amount_step -1\.0 must be a positive number"):
        load_rules({"BTC/USDT": {"precision": {"amount": -1}}})
    with pytest.raises(MarketRulesError, match="X/USDT: expected an object"):
        load_rules({"X/USDT": 5})


# --------------------------------------------------------------------- paper execution


class FakeClock(Clock):
    def __init__(self, ms: int = 1_000) -> None:
        self.ms = ms

    def time_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


def _client(fee: float = 0.001, slip_bps: float = 1.0, clock: FakeClock | None = None) -> PaperExecutionClient:
    return PaperExecutionClient(fee, slip_bps, dict(DEFAULT_RULES), clock or FakeClock())


def test_buy_fills_at_ask_plus_slippage_rounded_up() -> None:
    f = _client().fill("BTC/USDT|1|BUY", "BTC/USDT", Side.BUY, 0.0123456, 49_990.0, 50_000.0, 123, "signal")
    assert f.price == 50_005.0  # 50000 × 1.0001
    assert f.qty == 0.01234  # floored to the 0.00001 step
    assert f.fee == pytest.approx(0.01234 * 50_005.0 * 0.001)
    assert (f.side, f.ts, f.reason, f.symbol) == (Side.BUY, 123, "signal", "BTC/USDT")


def test_sell_fills_at_bid_minus_slippage_rounded_down() -> None:
    f = _client(slip_bps=3.0).fill("o", "ETH/USDT", Side.SELL, 0.5, 3_000.0, 3_001.0, 1)
    assert f.price == 2_999.1  # 3000 × 0.9997 = 2999.1 exactly on the tick
    f = _client(slip_bps=1.0).fill("o2", "ETH/USDT", Side.SELL, 0.5, 3_000.55, 3_001.0, 1)
    assert f.price == 3_000.24  # 3000.249945 rounded down to 0.01
    assert f.price < 3_000.55


def test_zero_fee_and_zero_slippage() -> None:
    f = _client(0.0, 0.0).fill("o", "SOL/USDT", Side.BUY, 2.0, 149.9, 150.0, 1)
    assert (f.price, f.fee, f.qty) == (150.0, 0.0, 2.0)


def test_same_order_id_fills_once_with_a_deterministic_fill_id() -> None:
    c = _client()
    f1 = c.fill("BTC/USDT|60000|BUY", "BTC/USDT", Side.BUY, 0.01, 50_000, 50_001, 1)
    f2 = c.fill("BTC/USDT|60000|BUY", "BTC/USDT", Side.BUY, 0.01, 60_000, 60_001, 2)
    assert f2 is f1
    other = _client().fill("BTC/USDT|60000|BUY", "BTC/USDT", Side.BUY, 0.01, 1, 2, 3)
    assert other.fill_id == f1.fill_id == fill_id_for("BTC/USDT|60000|BUY")
    assert other.order_id == "BTC/USDT|60000|BUY"
    assert c.fill("next", "BTC/USDT", Side.BUY, 0.01, 50_000, 50_001, 1).fill_id != f1.fill_id


def test_unknown_symbol_uses_fallback_precision() -> None:
    f = _client(0.0, 0.0).fill("o", "PEPE/USDT", Side.BUY, 1234.5678919, 0.0000101, 0.00001012345, 1)
    assert f.qty == 1234.567891 and f.price == 0.00001013


@pytest.mark.parametrize(
    ("qty", "bid", "ask", "msg", "retryable"),
    [
        (0.000001, 50_000.0, 50_001.0, "rounds to 0", False),  # the same order can never pass
        (0.01, 0.0, 50_001.0, "not a valid quote", True),
        (0.01, 50_002.0, 50_001.0, "not a valid quote", True),  # crossed
        (0.01, float("nan"), 50_001.0, "not a valid quote", True),
    ],
)
def test_refused_orders(qty: float, bid: float, ask: float, msg: str, retryable: bool) -> None:
    c = _client()
    with pytest.raises(PaperRejection, match=msg) as err:
        c.fill("o", "BTC/USDT", Side.BUY, qty, bid, ask, 1)
    assert str(err.value).startswith("BTC/USDT: ") and "\n" not in str(err.value)
    assert err.value.retryable is retryable
    # a refused order is not remembered: a valid retry with the same id fills
    assert c.fill("o", "BTC/USDT", Side.BUY, 0.01, 50_000, 50_001, 1).qty == 0.01


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        PaperExecutionClient(-0.1, 1.0, {}, FakeClock())
    with pytest.raises(ValueError):
        PaperExecutionClient(0.001, 10_000.0, {}, FakeClock())


# ------------------------------------------------------------- the ExecutionClient port


def _order(key: str = "BTC/USDT|60000|BUY", qty: float = 0.0123456, side: Side = Side.BUY) -> Order:
    return Order(client_order_id(key), "BTC/USDT", side, qty, "signal", key, 1_000, updated_ts=1_000)


def _bound(c: PaperExecutionClient) -> list[ExecutionEvent]:
    events: list[ExecutionEvent] = []
    c.bind(events.append)
    return events


def test_submit_answers_accepted_then_filled_at_the_clock_time() -> None:
    clock = FakeClock(5_000)
    c = _client(clock=clock)
    events = _bound(c)
    order = _order(qty=0.01234)  # on the lot step, as the risk engine sizes it
    c.submit(order, 49_990.0, 50_000.0)
    cid = order.client_order_id
    assert events == [
        OrderAccepted(cid, 5_000),
        OrderFilled(cid, c.fill(cid, "BTC/USDT", Side.BUY, order.qty, 1, 2, 0)),  # the remembered fill
    ]
    fill = events[1].fill  # type: ignore[union-attr]
    assert (fill.fill_id, fill.order_id, fill.qty, fill.price, fill.ts, fill.reason) == (
        fill_id_for(cid), cid, 0.01234, 50_005.0, 5_000, "signal")
    for e in events:  # the events move the order to FILLED at the fill price
        apply_event(order, e)
    assert order.status is OrderStatus.FILLED and order.avg_price == 50_005.0
    assert order.filled_qty == order.qty and order.fees == fill.fee


def test_submit_of_a_refused_order_answers_rejected_with_retryable() -> None:
    c = _client(clock=FakeClock(7))
    events = _bound(c)
    dust = _order(qty=0.000001)
    c.submit(dust, 50_000.0, 50_001.0)
    assert len(events) == 1 and isinstance(events[0], OrderRejected)
    rej = events[0]
    assert (rej.client_order_id, rej.ts, rej.retryable) == (dust.client_order_id, 7, False)
    assert "rounds to 0" in rej.reason
    no_quote = _order("other", qty=0.01)
    c.submit(no_quote, 0.0, 0.0)
    assert isinstance(events[1], OrderRejected) and events[1].retryable is True
    assert apply_event(dust, rej) and dust.status is OrderStatus.REJECTED and dust.message == rej.reason


def test_resubmitting_or_looking_up_answers_the_same_fill() -> None:
    c = _client()
    events = _bound(c)
    order = _order(qty=0.01)
    c.submit(order, 50_000.0, 50_001.0)
    c.submit(order, 60_000.0, 60_001.0)  # a resend never fills twice at the venue
    c.lookup(order)
    fills = [e.fill for e in events if isinstance(e, OrderFilled)]
    assert len(fills) == 3 and fills[0] is fills[1] is fills[2]
    assert [type(e) for e in events] == [OrderAccepted, OrderFilled] * 3


def test_lookup_of_an_order_never_seen_answers_not_found() -> None:
    c = _client(clock=FakeClock(42))
    events = _bound(c)
    order = _order()
    c.lookup(order)
    assert events == [OrderNotFound(order.client_order_id, 42)]
    refused = _order("dust", qty=0.000001)
    c.submit(refused, 50_000.0, 50_001.0)
    c.lookup(refused)  # a refused order was never filled: the venue does not know it
    assert events[-1] == OrderNotFound(refused.client_order_id, 42)


def test_submit_before_bind_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="bind"):
        _client().submit(_order(qty=0.01), 50_000.0, 50_001.0)
