"""A pair added by a reload while trading live (issue 17), against the local Binance-protocol
exchange through ccxt: the real live client (``connect``), the real core and book, the engine's
``ReloadRunner`` and ``ReconcileRunner`` pumped as the engine loop does. The added pair's rules
come from the exchange, its entries wait for a reconciliation that covers it (an order of ours
already at the exchange HALTs it), it buys once; a symbol the exchange does not list refuses the
whole reload with the reason, nothing changed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
import zmq

from engine.core.markets import default_rules
from engine.core.models import PairMode, Side
from engine.core.orders import Order
from engine.node.reconcile_run import ReconcileRunner
from engine.node.reload_run import PENDING_NAME, ReloadRunner, digest
from engine.node.tick_in import TopicStats
from tests.core_harness import FakeClock, make_core, safe_list
from tests.live_venue import VenueThread
from tests.test_live_reconcile import _pump
from tests.test_live_venue_view import _by_hand, _price

pytestmark = pytest.mark.timeout(60)
BTC = {"BTC/USDT": "momentum"}


def _reload(runner: ReloadRunner, cfg_path: Path, strategies: dict[str, str]) -> Any:
    text = yaml.safe_dump(safe_list(strategies).model_dump(mode="json"))
    cfg_path.with_name(PENDING_NAME).write_text(text)
    return runner.handle({"id": "r1", "digest": digest(text)})


def test_a_pair_added_live_gets_the_exchanges_rules_waits_for_reconciliation_and_buys(
    tmp_path: Path, venue: VenueThread, connect: Any
) -> None:
    for sym, price in (("BTC/USDT", 60_000.0), ("BNB/USDT", 600.0), ("SOL/USDT", 150.0)):
        _price(venue, sym, price)
    clock = FakeClock()
    client, acct = connect(clock)  # started on BTC/USDT and ETH/USDT
    cfg_path = tmp_path / "safe_list.yaml"
    cfg_path.write_text(yaml.safe_dump(safe_list(BTC).model_dump(mode="json")))
    h = make_core(tmp_path, safe_list(BTC), clock=clock, client=client)
    reconcile = ReconcileRunner(client, h.core, settle_s=0.0)
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    node = SimpleNamespace(cfg=h.core.cfg, core=h.core, live=client, sub=sub, stats={"BTC/USDT": TopicStats()},
                           history=None, history_limit=0, publisher=object(), _by_topic={}, _reconcile=reconcile,
                           subscribe_ticks=lambda: None, left_topics=set())  # (the SUB's side: tests/test_tick_wire.py)  # fmt: skip
    runner = ReloadRunner(node, cfg_path)  # type: ignore[arg-type]
    try:
        assert _pump(h, client, reconcile, lambda: reconcile.runs >= 1)
        # an order of ours for SOL already rests at the exchange (an earlier run's): a mismatch
        _by_hand(venue, acct).create_order("SOL/USDT", "limit", "buy", 0.1, 100.0, {"clientOrderId": "mp-earlier-sol"})

        # a symbol the exchange does not list: the whole reload refused, nothing changed
        ack = _reload(runner, cfg_path, {**BTC, "BNB/USDT": "momentum", "ZZZ/USDT": "momentum"})
        assert not ack.ok and "ZZZ/USDT is not listed by the exchange" in ack.message, ack.message
        assert list(h.core.pairs) == ["BTC/USDT"] and "BNB/USDT" not in client.cfg.symbols
        assert "BNB/USDT" not in cfg_path.read_text()

        ack = _reload(runner, cfg_path, {**BTC, "BNB/USDT": "momentum", "SOL/USDT": "momentum"})
        assert ack.ok, ack.message
        rules = h.core.rules["BNB/USDT"]
        assert (rules.amount_step, rules.min_qty) == (0.001, 0.001) and rules != default_rules("BNB/USDT")
        assert {"BNB/USDT", "SOL/USDT"} <= set(client.cfg.symbols) and "BNB/USDT" in client.rules
        assert h.core.reconciler.blocks("BNB/USDT") and not h.core.reconciler.blocks("BTC/USDT")
        assert _pump(h, client, reconcile, lambda: not h.core.reconciler.new_pairs)
        report = h.core.reconciler.report
        assert report is not None and {"BNB/USDT", "SOL/USDT"} <= {p.symbol for p in report.pairs}
        assert report.waiting == ["SOL/USDT"] and h.core.pairs["SOL/USDT"].mode is PairMode.HALTED
        assert "mp-earlier-sol" in report.pair("SOL/USDT").mismatches[0]  # type: ignore[union-attr]
        assert h.core.pairs["BNB/USDT"].mode is PairMode.ACTIVE and not h.core.reconciler.blocks("BNB/USDT")

        buy = Order("mp-bnb-buy", "BNB/USDT", Side.BUY, 0.02, "signal", "k-bnb", clock.ms, updated_ts=clock.ms)
        assert h.core.execution.submit(buy, 600.0, 600.1)
        assert _pump(h, client, reconcile, lambda: "BNB/USDT" in h.store.load_positions())
        fills = [f for f in h.store.fills() if f.order_id == buy.client_order_id]
        assert len(fills) == 1 and fills[0].fill_id.startswith("binance:")
        held = venue.server.spot.account(acct.key).balances["BNB"][0]
        assert h.store.load_positions()["BNB/USDT"].qty == pytest.approx(float(held))
    finally:
        sub.close(0)
        runner.close()


def test_the_preview_of_a_live_addition_says_where_its_rules_come_from() -> None:
    from engine.core import reload

    d = reload.diff(safe_list(BTC), safe_list({**BTC, "BNB/USDT": "momentum"}))
    assert reload.refusals(d, set()) == []  # adding live is no longer refused
    (line,) = reload.describe(d, set(), {"BTC/USDT": "ACTIVE"}, live=True)
    assert line.startswith("+ BNB/USDT: subscribed on the feed") and "rules from the exchange" in line
    assert "exchange" not in reload.describe(d, set(), {"BTC/USDT": "ACTIVE"})[0]


def test_a_futures_pair_added_live_has_its_leverage_set_and_trades_as_a_perpetual(venue: VenueThread, connect: Any) -> None:
    from engine.core.orders import OrderFilled
    from engine.execution.binance_live import LiveClientError
    from tests.test_live_client import _wait_event

    _price(venue, "SOL/USDT", 150.0)
    clock = FakeClock()
    client, acct = connect(clock)  # spot only at start: no futures stream, no leverage set
    with pytest.raises(LiveClientError, match=r"ZZZ/USDT:USDT is not listed by the exchange"):
        client.add_symbols({"SOL/USDT": 4, "ZZZ/USDT": 2})
    assert "SOL/USDT" not in client.cfg.symbols and "SOLUSDT" not in venue.server.futures.account(acct.key).leverage
    rules = client.add_symbols({"SOL/USDT": 4})
    assert venue.server.futures.account(acct.key).leverage["SOLUSDT"] == 4 and client.cfg.futures["SOL/USDT"] == 4
    assert rules["SOL/USDT"].min_notional > 0 and client.rules["SOL/USDT"] == rules["SOL/USDT"]
    got: list[Any] = []
    client.bind(got.append)
    entry = Order("mp-sol-fut", "SOL/USDT", Side.BUY, 1.0, "signal", "k-sol", clock.ms, stop_loss=100.0)
    client.submit(entry, 0.0, 0.0)
    fill = _wait_event(client, got, entry.client_order_id, OrderFilled).fill
    assert fill.fill_id.startswith("binance-usdm:SOLUSDT:") and fill.qty == 1.0
    view = client.venue_view(["SOL/USDT"], {}, light=True)  # what the reconciliation compares
    assert not view.error and view.markets["SOL/USDT"] == "futures" and view.positions["SOL/USDT"][0] == 1.0
