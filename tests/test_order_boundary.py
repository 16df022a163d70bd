"""The exchange's order boundary decided in the core: maximum quantity and notional and the
percent-price band read from the loaded markets (``rules_from_markets``), an entry above the
maximum capped to it by the risk pipeline (or refused, with the reason in the decision, when the
cap leaves too little), the band's arithmetic for limit prices, and the live client's last guard
for orders that do not pass through risk (exits).

Markets are loaded through ccxt from the local Binance exchange (``tests/binance_exchange.py``),
whose own filter check (``SpotVenue.check_filters``) is the referee at the boundary.
"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.core.candles import Candle
from engine.core.config import SafeList
from engine.core.markets import (
    DEFAULT_RULES,
    MarketRules,
    check_limit_price,
    check_max,
    check_order,
    price_band,
    round_qty_down,
)
from engine.core.models import Position, Side, Signal, SignalType
from engine.core.orders import Order, OrderRejected
from engine.core.risk import RiskContext, RiskEngine
from engine.core.trader import FEED_LATENCY_ALLOWANCE_MS, TradingCore
from engine.execution.binance_connect import LiveConfig
from engine.execution.binance_live import BinanceLiveClient
from engine.execution.binance_rules import rules_from_markets
from engine.journal.store import Store
from tests import core_policies
from tests.binance_exchange import ThreadedExchange, make_ccxt
from tests.binance_server import DEFAULT_MARKETS_FILE
from tests.core_harness import Events, FakeClock, Harness, paper

pytestmark = pytest.mark.timeout(60)

BTC, ETH = "BTC/USDT", "ETH/USDT"


def _set_filter(market: dict[str, Any], kind: str, **fields: Any) -> None:
    filters = market["info"]["filters"]
    for f in filters:
        if f["filterType"] == kind:
            f.update(fields)
            return
    filters.append({"filterType": kind, **fields})


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The local exchange serving edited filters: BTC's NOTIONAL max applies to MARKET orders,
    ETH's LOT_SIZE max is below its MARKET_LOT_SIZE max and its band is Binance's documented
    asymmetric example."""
    markets = json.loads(DEFAULT_MARKETS_FILE.read_text())
    _set_filter(markets[BTC], "NOTIONAL", maxNotional="250000.00000000", applyMaxToMarket=True)
    _set_filter(markets[ETH], "LOT_SIZE", maxQty="50.00000000")
    _set_filter(markets[ETH], "PERCENT_PRICE_BY_SIDE", bidMultiplierUp="1.2", bidMultiplierDown="0.2",
                askMultiplierUp="5", askMultiplierDown="0.8", avgPriceMins=1)
    path = tmp_path_factory.mktemp("markets") / "markets.json"
    path.write_text(json.dumps(markets))
    with ThreadedExchange(markets_file=path) as t:
        yield t


@pytest.fixture(scope="module")
def loaded(exchange: Any) -> dict[str, Any]:
    """ccxt's ``load_markets()`` over HTTP from the local exchange (exchangeInfo, spot and USDT-M)."""
    ex = make_ccxt(exchange.server, "sync", options={"fetchMarkets": {"types": ["spot", "linear"]}, "fetchMargins": False})
    before = exchange.server.stats.counts["GET /api/v3/exchangeInfo"]
    markets = ex.load_markets(reload=True)
    assert exchange.server.stats.counts["GET /api/v3/exchangeInfo"] == before + 1
    return markets


def _venue_refuses(exchange: Any, symbol: str, otype: str, side: str, qty: float, price: float, ref: float) -> str | None:
    """The local exchange's verdict (its -1013 filter name) on an order, or None if it passes."""
    market_id = symbol.replace("/", "")
    try:
        exchange.server.spot.check_filters(market_id, otype, side.upper(), Decimal(repr(qty)),
                                           Decimal(repr(price)) if price else Decimal(0), Decimal(0),
                                           Decimal(repr(ref)))  # fmt: skip
    except Exception as exc:  # the exchange's ApiError (its module is loaded under another name)
        if type(exc).__name__ != "ApiError":
            raise
        return str(exc.msg)  # type: ignore[attr-defined]
    return None


# --------------------------------------------------------------------------- (a) from the loaded markets


def test_rules_read_the_maximums_and_the_band_from_markets_loaded_through_ccxt(loaded: dict[str, Any]) -> None:
    rules = rules_from_markets(loaded, [BTC, ETH, "BTC/USDT:USDT"])
    btc, eth, perp = rules[BTC], rules[ETH], rules["BTC/USDT:USDT"]
    # BTC: MARKET_LOT_SIZE maxQty 900 (smaller than LOT_SIZE's 9000); NOTIONAL max applies to MARKET
    assert (btc.max_qty, btc.max_notional) == (900.0, 250_000.0)
    assert (btc.bid_down, btc.bid_up, btc.ask_down, btc.ask_up) == (0.2, 5.0, 0.2, 5.0)
    # ETH: LOT_SIZE maxQty 50 is now the smaller; NOTIONAL's max does not apply to MARKET: none
    assert (eth.max_qty, eth.max_notional) == (50.0, 0.0)
    assert (eth.bid_down, eth.bid_up, eth.ask_down, eth.ask_up) == (0.2, 1.2, 0.8, 5.0)
    # USDT-M: MARKET_LOT_SIZE maxQty 10000; PERCENT_PRICE x0.95..x1.05 fills both sides
    assert perp.max_qty == 10_000.0 and perp.max_notional == 0.0 and perp.min_notional == 100.0
    assert (perp.bid_down, perp.bid_up, perp.ask_down, perp.ask_up) == (0.95, 1.05, 0.95, 1.05)
    # the minimums and steps as before
    assert (btc.amount_step, btc.price_step, btc.min_qty, btc.min_notional) == (1e-05, 0.01, 1e-05, 5.0)


def test_a_market_without_filters_has_no_maximum_and_no_band(loaded: dict[str, Any]) -> None:
    bare = {**loaded[BTC], "info": {}}
    r = rules_from_markets({BTC: bare})[BTC]
    assert (r.max_qty, r.max_notional, r.bid_up, r.ask_up) == (0.0, 0.0, 0.0, 0.0)
    assert price_band(r, "sell", 60_000.0) is None and check_max(1e9, 1e9, r) is None


def test_the_rules_and_the_exchange_agree_at_the_maximums(exchange: Any, loaded: dict[str, Any]) -> None:
    rules = rules_from_markets(loaded, [BTC, ETH])
    btc, eth = rules[BTC], rules[ETH]
    # quantity: 900 BTC passes MARKET_LOT_SIZE, one step more fails it (at a price where notional is fine)
    assert check_order(900.0, 100.0, btc) is None and _venue_refuses(exchange, BTC, "MARKET", "buy", 900.0, 0, 100.0) is None
    why = check_order(900.00001, 100.0, btc)
    assert why is not None and "above exchange maximum 900" in why and "MARKET_LOT_SIZE maxQty" in why
    assert _venue_refuses(exchange, BTC, "MARKET", "buy", 900.00001, 0, 100.0) == "Filter failure: MARKET_LOT_SIZE"
    # ETH: LOT_SIZE's 50 binds MARKET orders too
    assert "above exchange maximum 50" in (check_order(50.0001, 100.0, eth) or "")
    assert _venue_refuses(exchange, ETH, "MARKET", "sell", 50.0001, 0, 100.0) == "Filter failure: LOT_SIZE"
    # notional: 250,000 at the average price passes, a cent more fails
    assert check_order(5.0, 50_000.0, btc) is None and _venue_refuses(exchange, BTC, "MARKET", "buy", 5.0, 0, 50_000.0) is None
    why = check_order(5.0, 50_000.01, btc)
    assert why is not None and why == "notional $250,000.05 above exchange maximum $250,000.00 (NOTIONAL maxNotional)"
    assert _venue_refuses(exchange, BTC, "MARKET", "buy", 5.0, 0, 50_000.01) == "Filter failure: NOTIONAL"


# --------------------------------------------------------------------------- (c) the band's arithmetic


def test_price_band_by_side() -> None:
    r = MarketRules(1e-4, 0.01, 1e-4, 5.0, bid_up=1.2, bid_down=0.2, ask_up=5.0, ask_down=0.8)
    assert price_band(r, "buy", 100.0) == pytest.approx((20.0, 120.0))
    assert price_band(r, "sell", 100.0) == pytest.approx((80.0, 500.0))
    assert price_band(r, "SELL", 100.0) == price_band(r, "sell", 100.0)
    assert price_band(r, "sell", 0.0) is None and price_band(r, "sell", math.nan) is None
    assert price_band(DEFAULT_RULES[BTC], "sell", 100.0) is None  # built-in defaults: no band
    with pytest.raises(ValueError, match="buy or sell"):
        price_band(r, "long", 100.0)


def test_check_limit_price_for_a_protective_stop_limit_sell() -> None:
    r = MarketRules(1e-4, 0.01, 1e-4, 5.0, bid_up=1.2, bid_down=0.2, ask_up=5.0, ask_down=0.8)
    ref = 3_000.0
    assert check_limit_price(2_400.0, "sell", ref, r) is None  # exactly ref x ask_down
    assert check_limit_price(15_000.0, "sell", ref, r) is None  # exactly ref x ask_up
    low = check_limit_price(2_399.99, "sell", ref, r)
    assert low is not None and "sell limit price 2399.99 below the exchange's band [2400, 15000]" in low
    assert "x0.8..x5 of reference 3000" in low and "PERCENT_PRICE_BY_SIDE" in low
    assert "above" in (check_limit_price(3_600.01, "buy", ref, r) or "")
    assert check_limit_price(600.0, "buy", ref, r) is None
    assert check_limit_price(0.0, "sell", ref, r) is not None
    # check_order checks the band only for an order with a limit price (side and reference given)
    assert check_order(0.01, 2_000.0, r) is None
    assert "below the exchange's band" in (check_order(0.01, 2_000.0, r, side="sell", ref_price=ref) or "")


def test_the_band_agrees_with_the_exchange(exchange: Any, loaded: dict[str, Any]) -> None:
    eth = rules_from_markets(loaded, [ETH])[ETH]
    ref = 3_000.0
    for side in ("buy", "sell"):
        lo, hi = price_band(eth, side, ref) or (0.0, 0.0)
        for price, ok in ((lo, True), (hi, True), (lo - 0.01, False), (hi + 0.01, False)):
            price = round(price, 2)
            ours = check_limit_price(price, side, ref, eth)
            theirs = _venue_refuses(exchange, ETH, "LIMIT", side, 0.01, price, ref)
            assert (ours is None) is ok, (side, price, ours)
            assert theirs == (None if ok else "Filter failure: PERCENT_PRICE_BY_SIDE"), (side, price, theirs)


# --------------------------------------------------------------------------- (b) the risk pipeline


def _cfg() -> SafeList:
    pf = {"capital_usd": 100_000, "max_total_exposure": 1.0, "min_confidence": 0.6, "risk_per_trade_usd": 1_000,
          "atr_multiplier": 2.0, "correlation_groups": []}  # fmt: skip
    pairs = {BTC: {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 50_000}}
    return SafeList.model_validate({"portfolio": pf, "pairs": pairs})


def _entry(risk: RiskEngine, price: float = 50_000.0) -> Any:
    signal = Signal(BTC, SignalType.BUY, 0.9, price, price * 0.98, price * 1.04, "test", ts=1)
    ctx = RiskContext(positions={}, marks={BTC: price}, atr={BTC: 10.0}, equity=100_000.0, cash=100_000.0)
    return risk.evaluate(signal, ctx, "k")


def _sizing(decision: Any) -> Any:
    return next(c for c in decision.checks if c.name == "sizing")


def test_an_entry_above_the_exchange_max_qty_is_capped_to_it() -> None:
    base = DEFAULT_RULES[BTC]
    uncapped = _entry(RiskEngine(_cfg(), {BTC: base}))
    assert uncapped.approved and uncapped.qty == 1.0 and uncapped.size_rule == "max_position"  # $50,000
    capped = _entry(RiskEngine(_cfg(), {BTC: MarketRules(1e-05, 0.01, 1e-05, 5.0, max_qty=0.25)}))
    assert capped.approved and capped.qty == 0.25 and capped.size_rule == "exchange_max"
    assert _sizing(capped).reason == "0.25 units ($12500.00) set by exchange max 0.25 units (LOT_SIZE / MARKET_LOT_SIZE maxQty)"


def test_an_entry_above_the_exchange_max_notional_is_capped_to_it() -> None:
    capped = _entry(RiskEngine(_cfg(), {BTC: MarketRules(1e-05, 0.01, 1e-05, 5.0, max_notional=20_000.0)}))
    assert capped.approved and capped.qty == 0.4 and capped.size_rule == "exchange_max"
    assert "set by exchange max notional $20,000.00 (NOTIONAL maxNotional)" in _sizing(capped).reason
    assert check_max(capped.qty, capped.price, MarketRules(1e-05, 0.01, 1e-05, 5.0, max_notional=20_000.0)) is None


def test_a_cap_that_leaves_less_than_the_exchange_minimum_is_refused_with_both_figures() -> None:
    d = _entry(RiskEngine(_cfg(), {BTC: MarketRules(1e-05, 0.01, 1e-05, 5.0, max_notional=3.0)}))
    assert not d.approved and d.qty == 0.0
    assert d.reasons == ["size 6e-05 units ($3.00) set by exchange max notional $3.00 (NOTIONAL maxNotional): "
                         "notional $3.00 below exchange minimum $5.00"]


@settings(max_examples=300, deadline=None)
@given(
    price=st.floats(0.0001, 200_000.0),
    max_notional=st.floats(5.0, 1_000_000.0),
    step_exp=st.integers(-8, 0),
)
def test_a_notional_capped_size_never_breaks_the_max(price: float, max_notional: float, step_exp: int) -> None:
    step = 10.0**step_exp
    assume(max_notional / price / step < 1e13)  # a size a float holds to the step (real markets: far fewer steps)
    rules = MarketRules(step, 1e-8, step, 0.0, max_notional=max_notional)
    cfg = SafeList.model_validate({
        "portfolio": {"capital_usd": 1e12, "max_total_exposure": 1.0, "min_confidence": 0.6, "risk_per_trade_usd": 1e12,
                      "atr_multiplier": 1.0, "correlation_groups": []},
        "pairs": {BTC: {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 1e13}},
    })  # fmt: skip
    signal = Signal(BTC, SignalType.BUY, 0.9, price, price * 0.5, price * 2.0, "test", ts=1)
    ctx = RiskContext(positions={}, marks={BTC: price}, atr={BTC: price * 1e-9}, equity=1e12, cash=None)
    d = RiskEngine(cfg, {BTC: rules}).evaluate(signal, ctx, "k")
    if d.approved:
        assert check_max(d.qty, price, rules) is None
        assert d.qty == round_qty_down(d.qty, rules)
        if d.size_rule == "exchange_max":  # about the most the exchange takes (float division may lose a step)
            two_more = (Decimal(repr(d.qty)) + 2 * Decimal(repr(step))) * Decimal(repr(price))
            assert two_more > Decimal(repr(max_notional))
    else:
        assert "exchange max notional" in _sizing(d).reason or "costs" in {c.name for c in d.checks if not c.ok}


def test_exits_are_not_capped_by_risk() -> None:
    """An exit closes the whole position (risk passes it); the live client's guard is what
    refuses one above the exchange's maximum (see below)."""
    risk = RiskEngine(_cfg(), {BTC: MarketRules(1e-05, 0.01, 1e-05, 5.0, max_qty=0.25)})
    sell = Signal(BTC, SignalType.SELL, 0.9, 50_000.0, 51_000.0, 48_000.0, "test", ts=1)
    ctx = RiskContext(positions={BTC: Position(BTC, 0.5, 49_000.0)}, marks={BTC: 50_000.0})
    d = risk.evaluate(sell, ctx, "k")
    assert d.approved and d.action == "close_long" and d.qty == 0.5


# --------------------------------------------------------------------------- in the core: recorded as a decision


def _policy_cfg() -> SafeList:
    params = {"lookback": 10, "policy": "tests.core_policies:scripted"}
    return SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": {BTC: {"tier": "STABLE", "strategy": "policy", "max_position_size_usd": 500, "params": params}},
    })  # fmt: skip


def _core(tmp_path: Path, rules: MarketRules, tf_s: int) -> Harness:
    cfg, clock, events = _policy_cfg(), FakeClock(), Events()
    store = Store(tmp_path / "book.sqlite")
    core = TradingCore(cfg, clock=clock, journal=store, sink=events, client=paper(cfg, clock),
                       rules={BTC: rules}, timeframe_s=tf_s)  # fmt: skip
    return Harness(core, clock, events, store, tmp_path / "book.sqlite")


def _buy_signal(h: Harness, tf_s: int, price: float = 59_000.0) -> None:
    """Warm the indicators, then one candle closed with the policy saying BUY."""
    rng = random.Random(3)
    tf = tf_s * 1000
    start = h.clock.ms - h.clock.ms % tf - 60 * tf
    closes = [1.0]
    for _ in range(60):
        closes.append(closes[-1] * math.exp(rng.gauss(0.0, 0.002)))
    k = price / closes[-1]
    candles = [Candle(start + i * tf, closes[i] * k, max(closes[i], closes[i + 1]) * k * 1.003,
                      min(closes[i], closes[i + 1]) * k * 0.997, closes[i + 1] * k, 10.0, 5) for i in range(60)]  # fmt: skip
    h.core.warm_pair(BTC, candles)
    core_policies.action[0] = 1
    try:
        h.clock.advance(100)
        assert h.tick(BTC, price)
        h.clock.advance(tf + FEED_LATENCY_ALLOWANCE_MS)
        h.core.on_timer()
    finally:
        core_policies.action[0] = 0


def test_in_the_core_an_entry_is_capped_to_the_exchange_max_and_the_order_sent_at_it(tmp_path: Path) -> None:
    h = _core(tmp_path, MarketRules(1e-05, 0.01, 1e-05, 5.0, max_qty=0.002), tf_s=5)
    _buy_signal(h, 5)
    (d,) = [d for d in h.events.decisions if d.action == "open_long"]
    assert d.approved and d.qty == 0.002 and d.size_rule == "exchange_max"
    assert h.events.orders and all(o.qty == 0.002 for o in h.events.orders)
    assert [f.qty for f in h.events.fills] == [0.002]
    (rec,) = h.store.recent_decisions(BTC)
    assert any(n == "sizing" and ok and "set by exchange max 0.002 units" in r for n, ok, r in rec.checks)
    h.store.close()


def test_in_the_core_an_entry_the_exchange_cannot_take_is_a_decision_with_its_reason(tmp_path: Path) -> None:
    h = _core(tmp_path, MarketRules(1e-05, 0.01, 1e-05, 5.0, max_notional=4.0), tf_s=5)
    _buy_signal(h, 5)
    (d,) = [d for d in h.events.decisions if d.action == "open_long"]
    assert not d.approved and h.events.orders == [] and h.events.fills == []
    (rec,) = h.store.recent_decisions(BTC)  # journaled: the "why not traded" ledger shows it
    assert not rec.approved and h.store.orders() == []
    (why,) = rec.reasons
    assert "set by exchange max notional $4.00 (NOTIONAL maxNotional): notional $" in why
    assert "below exchange minimum $5.00" in why
    h.store.close()


# --------------------------------------------------------------------------- the live client's last guard


def test_the_live_client_refuses_an_order_above_the_max_before_sending() -> None:
    clock = FakeClock()
    client = BinanceLiveClient(LiveConfig("k" * 16, "s" * 16, (BTC,)), clock)
    try:
        client.rules = {BTC: MarketRules(1e-05, 0.01, 1e-05, 5.0, max_qty=900.0, max_notional=250_000.0)}
        seen: list[Any] = []
        client.bind(seen.append)
        big = Order("exit-1", BTC, Side.SELL, 901.0, "stop", "k1", clock.ms, updated_ts=clock.ms)
        client.submit(big, 100.0, 100.01)
        rich = Order("exit-2", BTC, Side.BUY, 5.0, "flatten", "k2", clock.ms, updated_ts=clock.ms)
        client.submit(rich, 50_000.0, 50_000.01)  # counted at the ask: $250,000.05
        fits = Order("exit-3", BTC, Side.SELL, 900.0, "stop", "k3", clock.ms, updated_ts=clock.ms)
        client.submit(fits, 100.0, 100.01)
        client.drain()
        assert [type(e) for e in seen] == [OrderRejected] * 3
        first, second, third = seen
        assert not first.retryable and "BTC/USDT: quantity 901 above exchange maximum 900" in first.reason
        assert not second.retryable and "NOTIONAL maxNotional" in second.reason
        # within the maximum it goes on to the worker (not running here: a retryable refusal)
        assert third.retryable and "not running" in third.reason
    finally:
        client.close()
