"""The kill switch's last resort on a LIVE book: when the engine does not answer a kill, the
daemon's fallback (engine/node/fallback.py) closes the book's positions at the exchange through
the same live client, pointed by URL only as the engine is, waits for the fills, cancels every
open order of the pairs and asks the exchange what is left. It never books a paper fill in a
live book: an exchange it cannot reach is a failure, said as one."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.journal.store import Store
from engine.node.fallback import flatten_from_store
from engine.node.live import ENV_API_KEY, ENV_API_SECRET, ENV_REST_URL, ENV_WS_URL, LiveUnavailable
from tests.core_harness import safe_list
from tests.live_venue import Account, VenueThread
from tests.store_seed import seed_open_position
from tests.test_live_venue_view import _by_hand


def test_the_fallback_closes_a_live_position_at_the_exchange(tmp_path: Path, venue: VenueThread) -> None:
    acct = Account(venue, {"USDT": 10_000.0, "BTC": 0.05})
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", 0.004, 60_000.0, stop=59_000.0, target=70_000.0)
    server = venue.server
    env = {ENV_API_KEY: acct.key, ENV_API_SECRET: acct.secret, ENV_REST_URL: server.rest_url,
           ENV_WS_URL: server.ws_url}  # fmt: skip
    by_hand = _by_hand(venue, acct).create_order("BTC/USDT", "limit", "sell", 0.001, 100_000.0)
    fills = flatten_from_store(db, safe_list({"BTC/USDT": "momentum"}), {}, live_env=env, wait_s=15.0)
    assert [(f.symbol, str(f.side)) for f in fills] == [("BTC/USDT", "sell")]
    assert fills[0].fill_id.startswith("binance:")  # the exchange's trade, not a paper one
    with Store(db) as store:
        assert not store.load_positions() and not store.open_orders()
        modes = store.load_modes()
    assert modes["BTC/USDT"].value == "HALTED"
    ours = [o for o in server.stats.orders if o.api_key == acct.key and o.client_order_id.startswith("mp-")]
    assert [o.side.lower() for o in ours] == ["sell"]
    free, locked = server.spot.account(acct.key).balances["BTC"]  # a sell pays its fee in USDT
    assert float(free) == pytest.approx(0.05 - 0.004 - 0.001) and float(locked) == 0.001  # the foreign order's
    # the order placed by hand is not ours: never cancelled, and the event log says so
    assert [o.order_id for o in server.spot.open_orders(acct.key)] == [int(by_hand["id"])]
    with Store(db) as store:
        event = next(e for e in store.recent_events() if e["kind"] == "kill-fallback" and "flattened" in e["message"])
    assert "none of ours left open, 1 not ours left alone" in event["message"], event
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert acct.secret.encode() not in path.read_bytes()


def test_an_unreachable_exchange_is_a_failure_never_a_paper_fill(tmp_path: Path) -> None:
    db = tmp_path / "book.sqlite"
    seed_open_position(db, "BTC/USDT", 0.004, 60_000.0, stop=59_000.0, target=70_000.0)
    env = {ENV_API_KEY: "k", ENV_API_SECRET: "s", ENV_REST_URL: "http://127.0.0.1:9",
           ENV_WS_URL: "ws://127.0.0.1:9/ws"}  # fmt: skip
    with pytest.raises(LiveUnavailable):
        flatten_from_store(db, safe_list({"BTC/USDT": "momentum"}), {}, live_env=env, wait_s=2.0)
    with Store(db) as store:  # untouched: the position is still there, no fill booked
        assert "BTC/USDT" in store.load_positions()
