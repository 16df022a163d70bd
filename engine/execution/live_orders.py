"""What the venue says about our orders, turned into the core's execution events, once each.

Owns ``Track`` (one client order id as the venue sees it: venue id, status, filled amount,
the fills already emitted) and ``OrderLedger`` (every track, the fill ids already emitted,
and the rules that turn a ccxt order or trade — from a create response, a lookup, a poll or
the private stream — into ``OrderAccepted`` / ``OrderFilled`` / ``OrderCancelled`` /
``OrderRejected``). No I/O: the worker feeds it, tests feed it dicts.

Rules:

- a fill is emitted once per venue trade id, whichever source reports it first;
- ``OrderAccepted`` precedes an order's first fill;
- an order is finished (its terminal event emitted) only when the venue says it is closed,
  cancelled, expired or rejected *and* the trades emitted add up to its filled amount: until
  then ``needs_trades`` tells the worker to fetch the order's trades;
- a buy whose fee was taken in the base asset ends a hair short of its quantity (see
  ``live_fills``): it is closed with ``OrderCancelled("filled at the venue; ... kept as the fee")``;
- a USDT-M protective stop is a conditional (algo) order until it triggers: its algo order
  says nothing about fills, and its "closed" (``TRIGGERED``/``FINISHED``) only means it became a
  regular order (``actualOrderId``). From then on the track follows that order, by its venue id.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.core.models import Side
from engine.core.orders import (
    ExecutionEvent,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
)
from engine.execution.live_fills import FeePrices, fill_from_trade, fill_id

log = logging.getLogger("engine.live")

SEEN_FILLS = 100_000  # fill ids remembered in-process (the journal refuses older repeats)
FULL = 1.0 - 1e-9  # the core's own "a rounding hair short is full"
VENUE_DONE = frozenset({"closed", "canceled", "cancelled", "expired", "rejected"})


@dataclass(slots=True)
class Track:
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    reason: str
    created_ms: int  # when the core journaled it (a restart's lookup waits out recvWindow from here)
    venue_symbol: str = ""  # ccxt's symbol: BTC/USDT (spot), BTC/USDT:USDT (USDT-M)
    reduce_only: bool = False
    order_type: str = "market"  # market | stop (a protective stop resting at the venue)
    conditional: bool = False  # a USDT-M stop still in the algo service (not yet triggered)
    triggered: bool = False  # it triggered: followed as the regular order ``venue_id``
    trigger: float = 0.0  # a stop's stop price
    limit: float = 0.0  # a spot stop-limit's limit price
    venue_id: str = ""
    venue_status: str = ""  # ccxt's: open, closed, canceled, expired, rejected
    venue_filled: float = 0.0
    venue_reason: str = ""
    accepted: bool = False
    gross: float = 0.0  # venue quantity of the fills emitted
    net: float = 0.0  # quantity the fills emitted gave the position
    base_fee: float = 0.0  # base kept as the fee
    events: list[ExecutionEvent] = field(default_factory=list)  # all emitted, for a replay
    done: bool = False
    placing: bool = False  # the create flow owns it (lookups wait for its answer)
    resolving: bool = False  # a lookup is in flight
    last_sent_wall: float = 0.0  # time.time() of the last create request
    last_news: float = 0.0  # monotonic: any word from the venue about it
    last_poll: float = 0.0

    @property
    def needs_trades(self) -> bool:
        """The venue filled more than the trades emitted so far."""
        return self.venue_filled > 0 and self.gross < self.venue_filled * FULL


class OrderLedger:
    def __init__(
        self,
        markets: Mapping[str, Mapping[str, Any]],
        emit: Callable[[ExecutionEvent], None],
        time_ms: Callable[[], int],
        fee_prices: FeePrices | None = None,
    ) -> None:
        self.markets = markets
        self._emit = emit
        self.time_ms = time_ms
        self.fee_prices = fee_prices or FeePrices()
        self.tracks: dict[str, Track] = {}
        self.by_venue_id: dict[tuple[str, str], Track] = {}  # (venue symbol, venue order id)
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.fills = 0
        self.duplicates = 0  # trades reported again by another source (dropped here)
        self.notes: list[str] = []  # fee warnings since the worker last logged them

    # ------------------------------------------------------------------ tracks

    def track(self, cid: str) -> Track | None:
        return self.tracks.get(cid)

    def add(self, t: Track) -> Track:
        return self.tracks.setdefault(t.client_order_id, t)

    def find(self, cid: str | None, venue_symbol: object, venue_id: object) -> Track | None:
        """The track a stream update is about: by client id, else by venue order id (ids are
        per market: a spot and a futures order may share one)."""
        if cid and cid in self.tracks:
            return self.tracks[cid]
        return self.by_venue_id.get((str(venue_symbol), str(venue_id))) if venue_id not in (None, "") else None

    def active(self) -> list[Track]:
        return [t for t in self.tracks.values() if not t.done]

    def prune(self, keep: int = 5_000) -> None:
        """Forget the oldest finished tracks beyond ``keep`` (checked cheaply: often called)."""
        if len(self.tracks) <= keep + 500:
            return
        done = [c for c, t in self.tracks.items() if t.done]
        for cid in done[: max(len(done) - keep, 0)]:
            t = self.tracks.pop(cid)
            self.by_venue_id.pop((t.venue_symbol, t.venue_id), None)

    # ------------------------------------------------------------------ venue facts

    def emit(self, t: Track, event: ExecutionEvent) -> None:
        t.events.append(event)
        self._emit(event)

    def accepted(self, t: Track, venue_id: object = "") -> None:
        if venue_id not in (None, ""):
            t.venue_id = str(venue_id)
            self.by_venue_id[(t.venue_symbol, t.venue_id)] = t
        t.last_news = time.monotonic()
        if not t.accepted and not t.done:
            t.accepted = True
            self.emit(t, OrderAccepted(t.client_order_id, self.time_ms(), t.venue_id))

    def order(self, t: Track, o: Mapping[str, Any]) -> None:
        """A ccxt order (create response, fetch_order, watch_orders) about ``t``."""
        if t.conditional and not self._conditional(t, o):
            return
        status = str(o.get("status") or "")
        if status == "rejected":
            t.venue_status = status
            t.venue_reason = str((o.get("info") or {}).get("r") or "rejected by the venue")
        else:
            self.accepted(t, o.get("id"))
            if status:
                t.venue_status = status
        filled = o.get("filled")
        if isinstance(filled, int | float) and filled > t.venue_filled:
            t.venue_filled = float(filled)
        for tr in o.get("trades") or ():
            self.trade(t, tr, default_ts=o.get("timestamp"))
        t.last_news = time.monotonic()
        self.finish(t)

    def _conditional(self, t: Track, o: Mapping[str, Any]) -> bool:
        """An update about a USDT-M stop still in the algo service; True when ``order`` should
        go on with it as a regular order (it is one, or it stays an open or ended algo order)."""
        info = o.get("info") or {}
        # REST's algo order (algoId, algoStatus, actualOrderId) or the stream's ALGO_UPDATE (aid, X, ai)
        is_algo = isinstance(info, Mapping) and any(k in info for k in ("algoId", "algoStatus", "aid"))
        if not is_algo:  # the regular order it became (a stream update found by client id)
            t.conditional, t.triggered = False, True
            return True
        status = str(info.get("algoStatus") or info.get("X") or "").upper()
        actual = info.get("actualOrderId") or info.get("ai")
        if status in ("TRIGGERED", "FINISHED") or actual not in (None, ""):
            # it became a regular order: follow that one by its id (lookups and trades too)
            t.conditional, t.triggered = False, True
            if actual not in (None, ""):
                t.venue_id = str(actual)
                self.by_venue_id[(t.venue_symbol, t.venue_id)] = t
            self.accepted(t)
            t.last_news = 0.0  # look the regular order up now
            return False
        self.accepted(t)  # (an algo id is not an order id: not indexed)
        t.venue_status = str(o.get("status") or t.venue_status)
        self.finish(t)  # cancelled or expired while still an algo order
        return False

    def trade(self, t: Track, tr: Mapping[str, Any], default_ts: object = None) -> bool:
        """One venue trade of ``t``; True when it was new and emitted."""
        market = self.markets.get(t.symbol) or {"symbol": t.symbol}
        fid = fill_id(market, tr.get("id"))
        if fid in self.seen:  # before the fee is converted: its warnings count a trade once
            self.duplicates += 1
            t.last_news = time.monotonic()
            return False
        try:
            tf = fill_from_trade(
                tr, market=market, client_order_id=t.client_order_id, side=t.side, reason=t.reason,
                fee_prices=self.fee_prices, default_ts=default_ts if isinstance(default_ts, int) else self.time_ms(),
                symbol=t.symbol,
            )
        except ValueError as exc:
            log.warning("%s - order %s: a trade could not be booked: %s", t.symbol, t.client_order_id, exc)
            return False
        t.last_news = time.monotonic()
        self.seen[fid] = None
        if len(self.seen) > SEEN_FILLS:
            self.seen.popitem(last=False)
        if tf.note:
            self.notes.append(f"{t.symbol} - fill {fid}: {tf.note}")
        self.accepted(t)
        t.gross += tf.gross
        t.net += tf.fill.qty
        if tf.fee_asset == str(market.get("base") or "") and t.side is Side.BUY:
            t.base_fee += tf.fee_amount
        if t.gross > t.venue_filled:
            t.venue_filled = t.gross  # a stream trade ahead of the order's own update
        self.fills += 1
        self.emit(t, OrderFilled(t.client_order_id, tf.fill))
        self.finish(t)
        return True

    def finish(self, t: Track) -> None:
        """Emit the terminal event once the venue is done with ``t`` and every trade is booked."""
        if t.done or t.venue_status not in VENUE_DONE or t.needs_trades:
            return
        ts = self.time_ms()
        cid = t.client_order_id
        st = t.venue_status
        if st == "closed":
            if t.net < t.qty * FULL:
                base = str((self.markets.get(t.symbol) or {}).get("base") or "base")
                why = f"filled at the venue: {t.gross:.10g} {base}"
                if t.base_fee > 0:
                    why += f", {t.base_fee:.10g} of it kept as the fee ({t.net:.10g} received)"
                self.emit(t, OrderCancelled(cid, ts, why))
        elif st == "rejected":
            if t.gross > 0:
                self.emit(t, OrderCancelled(cid, ts, f"rest rejected by the venue after {t.gross:.10g}: {t.venue_reason}"))
            else:
                self.emit(t, OrderRejected(cid, ts, f"rejected by the venue: {t.venue_reason}", True))
        else:
            self.emit(t, OrderCancelled(cid, ts, f"{st} at the venue after {t.gross:.10g} of {t.qty:.10g}"))
        t.done = True

    def replay(self, t: Track) -> None:
        """Say again everything said about ``t`` (the core asked about an order we finished:
        its journal refuses fills it already holds; terminal events change nothing twice)."""
        for e in t.events:
            self._emit(e)
