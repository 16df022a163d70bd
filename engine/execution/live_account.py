"""The exchange's view of the account, for reconciliation: ``fetch_view`` runs on the live
worker's loop (``BinanceLiveClient.venue_view`` hands it over and waits) and returns the core's
``VenueView`` for some pairs. Also ``fetch_positions`` (USDT-M positions, shared with the kill
switch's ``positions``).

What is asked, per pair (ccxt 4.5; Binance's request weights):

- open orders: spot ``GET /api/v3/openOrders`` (6); USDT-M ``GET /fapi/v1/openOrders`` (1) and the
  conditional orders of the algo service ``GET /fapi/v1/openAlgoOrders`` (1). Every order is listed,
  ours or not: ``VenueOrder.ours`` tells them apart by the client id (``mp-``); nothing here
  cancels anything;
- balances, once when a spot pair is asked: ``GET /api/v3/account`` (20): the total (free +
  locked) of each spot pair's base and quote asset, 0 when Binance lists none;
- positions, once when a USDT-M pair is asked: ``GET /fapi/v3/positionRisk`` (5): every futures
  pair, flat ones as ``(0.0, 0.0)``;
- fills (not when ``light``): the account's trades since the book's last fill of the pair
  (``since_ms`` less ``SINCE_MARGIN_MS``; the last 24 h when the book has none; never further back
  than ``MAX_LOOKBACK_MS``): spot ``GET /api/v3/myTrades`` (20), USDT-M ``GET /fapi/v1/userTrades``
  (5), asked by time windows Binance accepts (``startTime``..``endTime``, at most 24 h on spot,
  7 days on USDT-M), 1000 trades a page. A trade names its venue order, not our client id: the
  order comes from the worker's ledger when it knows it, else from the pair's orders since then
  (``GET /api/v3/allOrders`` (20) / ``GET /fapi/v1/allOrders`` (5), 1000 a page), else from a lookup
  of that one order (``GET /api/v3/order`` (4) / ``GET /fapi/v1/order`` (1)). Only the trades of
  our orders become ``Fill``s, built as the ledger builds them (``live_fills.fill_from_trade``, the
  same market, client id, side and fee prices), so each ``fill_id`` is the one the client emits
  for that trade: the journal refuses the ones it holds, the others are the fills it missed.
  Their reason is the ledger's when it knows the order, ``stop`` for a stop order (only the
  protective stops rest as stops), else ``reconcile``.

Bounds: at most ``MAX_PAGES`` trade requests and ``MAX_PAGES`` order pages per pair, and
``MAX_LOOKUPS`` single-order lookups. Past a bound the view is not built: ``ViewError`` (the
client returns a view with ``error`` set, nothing in it to believe) rather than a view that
silently lacks fills. A fill missed further back than ``MAX_LOOKBACK_MS`` is not fetched: the book
and the exchange then differ in quantity, which the core's comparison reports.

ccxt's rate limiter paces these requests (Binance's weights, as ccxt counts them); a 429 or 418
makes them wait through the worker's ``RestGate`` like any other request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.models import Fill, Side
from engine.core.orders import is_ours
from engine.core.reconcile_view import VenueOrder, VenueView
from engine.execution.live_fills import FeePrices, fill_from_trade

log = logging.getLogger("engine.live")

HOUR_MS = 3_600_000
SINCE_MARGIN_MS = 60_000  # before the book's last fill: a trade of the same millisecond, a clock skew
DEFAULT_LOOKBACK_MS = 24 * HOUR_MS  # a pair without a fill in the book
MAX_LOOKBACK_MS = 7 * 24 * HOUR_MS - HOUR_MS  # under USDT-M's 7-day limits (allOrders, userTrades)
SPOT_WINDOW_MS = 24 * HOUR_MS  # Binance spot: startTime..endTime at most 24 h
FUTURES_WINDOW_MS = 7 * 24 * HOUR_MS  # USDT-M: at most 7 days
PAGE = 1000  # Binance's largest page of trades or orders
MAX_PAGES = 10
MAX_LOOKUPS = 20


class ViewError(RuntimeError):
    """The view cannot be built whole (a bound passed, a symbol not traded); one line."""


@dataclass(frozen=True, slots=True)
class _OrderInfo:
    client_order_id: str
    side: str
    reason: str


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


def raw_type(o: Mapping[str, Any]) -> str:
    """The exchange's own order type (``STOP_LOSS_LIMIT``, ``STOP_MARKET``...), not ccxt's."""
    info = o.get("info") or {}
    if isinstance(info, Mapping):
        t = info.get("orderType") or info.get("origType") or info.get("type")  # algo | USDT-M | spot
        if t:
            return str(t).upper()
    return str(o.get("type") or "").upper()


def venue_order(symbol: str, o: Mapping[str, Any]) -> VenueOrder:
    """A ccxt open order (spot, USDT-M, or a USDT-M algo order) as the core's ``VenueOrder``."""
    info = o.get("info") or {}
    cid = o.get("clientOrderId") or (info.get("clientAlgoId") if isinstance(info, Mapping) else None) or ""
    reduce = o.get("reduceOnly")
    if reduce is None and isinstance(info, Mapping):
        reduce = str(info.get("reduceOnly", "")).lower() == "true"
    return VenueOrder(symbol, str(cid), str(o.get("side") or "").lower(), _num(o.get("amount")), _num(o.get("filled")),
                      raw_type(o), _num(o.get("price")), _num(o.get("triggerPrice") or o.get("stopPrice")),
                      bool(reduce))  # fmt: skip


async def fetch_positions(worker: Any, symbols: list[str]) -> dict[str, dict[str, float]]:
    """USDT-M positions of ``symbols`` that are not flat: ``{symbol: {qty (signed), entry, leverage}}``."""
    cfg = worker.cfg
    venue = {cfg.venue_symbol(s): s for s in symbols}
    got = await worker.api.call("positions", "fetch_positions", list(venue))
    out: dict[str, dict[str, float]] = {}
    for p in got:
        sym = venue.get(str(p.get("symbol")))
        qty = _num(p.get("contracts")) * (_num(p.get("contractSize")) or 1.0)
        if sym is None or qty == 0.0:
            continue
        sign = -1.0 if p.get("side") == "short" else 1.0
        out[sym] = {"qty": sign * qty, "entry": _num(p.get("entryPrice")),
                    "leverage": _num(p.get("leverage")) or float(cfg.futures.get(sym, 0))}  # fmt: skip
    return out


def venue_now_ms(worker: Any) -> int:
    """Binance's clock as ccxt knows it (trade times are the exchange's, not the engine's clock)."""
    diff = (worker.rest.options.get("timeDifference", 0) or 0) if worker.rest is not None else 0
    return int(time.time() * 1000) - int(diff)


async def fetch_view(worker: Any, symbols: tuple[str, ...], since_ms: Mapping[str, int], light: bool,
                     started_ts: int) -> VenueView:  # fmt: skip
    """The exchange's view of ``symbols`` (see the module docstring). Raises ``LiveCallError``
    (a request failed) or ``ViewError``; the client turns either into a view with ``error``."""
    cfg = worker.cfg
    unknown = [s for s in symbols if s not in cfg.symbols]
    if unknown:
        raise ViewError(f"{', '.join(unknown)}: not a pair of this client")
    markets = {s: "futures" if s in cfg.futures else "spot" for s in symbols}
    orders: list[VenueOrder] = []
    for s in symbols:
        for params in ([{}, {"trigger": True}] if s in cfg.futures else [{}]):
            what = f"{s} open {'conditional ' if params else ''}orders"
            got = await worker.api.call(what, "fetch_open_orders", cfg.venue_symbol(s), None, None, params)
            orders += [venue_order(s, o) for o in got]
    spot = [s for s in symbols if s not in cfg.futures]
    balances = await _balances(worker, spot) if spot else {}
    futures = [s for s in symbols if s in cfg.futures]
    positions: dict[str, tuple[float, float]] = {}
    if futures:
        open_ = await fetch_positions(worker, futures)
        positions = {s: (open_[s]["qty"], open_[s]["entry"]) if s in open_ else (0.0, 0.0) for s in futures}
    fills: list[Fill] = []
    if not light:
        now = venue_now_ms(worker)
        for s in symbols:
            since = since_ms.get(s)
            start = since - SINCE_MARGIN_MS if since else now - DEFAULT_LOOKBACK_MS
            fills += await _fills(worker, s, max(start, now - MAX_LOOKBACK_MS), now, started_ts)
    fills.sort(key=lambda f: (f.ts, f.fill_id))
    return VenueView(worker.time_ms(), tuple(symbols), markets, tuple(orders), tuple(fills), balances, positions,
                     light=light, started_ts=started_ts)  # fmt: skip


async def _balances(worker: Any, spot: list[str]) -> dict[str, float]:
    bal = await worker.api.call("balances", "fetch_balance", {"type": "spot"})
    assets: list[str] = []
    for s in spot:
        m = worker.markets.get(s) or {}
        for a in (m.get("base") or s.split("/")[0], m.get("quote") or s.split("/")[1]):
            if a not in assets:
                assets.append(a)
    out: dict[str, float] = {}
    for a in assets:
        row = bal.get(a) if isinstance(bal.get(a), Mapping) else {}
        total = row.get("total")
        out[a] = _num(total) if total is not None else _num(row.get("free")) + _num(row.get("used"))
    return out


async def _fills(worker: Any, symbol: str, since: int, now: int, default_ts: int) -> list[Fill]:
    """Our trades of ``symbol`` since ``since``, as the ledger would book them."""
    trades = await _trades(worker, symbol, since, now)
    if not trades:
        return []
    known = await _orders_of(worker, symbol, since, {str(t.get("order")) for t in trades})
    ledger = worker.ledger
    market = (ledger.markets.get(symbol) if ledger is not None else None) or worker.markets.get(
        worker.cfg.venue_symbol(symbol)) or {"symbol": symbol}  # fmt: skip
    fp = ledger.fee_prices if ledger is not None else FeePrices()
    prices = FeePrices(dict(fp.prices))  # the same prices; the ledger's unpriced counters untouched
    out: list[Fill] = []
    for tr in trades:
        o = known[str(tr.get("order"))]
        if not is_ours(o.client_order_id):
            continue  # a trade of an order not ours (placed by hand): never booked
        try:
            side = Side(o.side or str(tr.get("side") or "").lower())
            tf = fill_from_trade(tr, market=market, client_order_id=o.client_order_id, side=side,
                                 reason=o.reason, fee_prices=prices, default_ts=default_ts, symbol=symbol)  # fmt: skip
        except ValueError as exc:
            log.warning("%s - reconciliation: a trade of %s could not be booked: %s", symbol, o.client_order_id, exc)
            continue
        out.append(tf.fill)
    return out


async def _trades(worker: Any, symbol: str, since: int, now: int) -> list[dict[str, Any]]:
    """Every trade of the account in ``symbol`` from ``since`` to now, by windows and pages."""
    cfg = worker.cfg
    venue = cfg.venue_symbol(symbol)
    window = FUTURES_WINDOW_MS if symbol in cfg.futures else SPOT_WINDOW_MS
    seen: dict[str, dict[str, Any]] = {}
    start, pages = since, 0
    while start < now:
        end = min(start + window - 1, now)
        if pages >= MAX_PAGES:
            raise ViewError(f"{symbol}: trades since {_stamp(since)} need more than {MAX_PAGES} requests: "
                            "not all fetched")  # fmt: skip
        page = await worker.api.call(f"{symbol} trades", "fetch_my_trades", venue, start, PAGE, {"until": end})
        pages += 1
        for tr in page:
            seen[str(tr.get("id"))] = tr
        if len(page) < PAGE:
            start = end + 1
            continue
        last = max(int(tr.get("timestamp") or 0) for tr in page)  # a full page: on from its last trade's time
        start = last if last > start else start + 1  # (the same millisecond again: ids dedupe)
    return sorted(seen.values(), key=lambda tr: (int(tr.get("timestamp") or 0), str(tr.get("id"))))


async def _orders_of(worker: Any, symbol: str, since: int, ids: set[str]) -> dict[str, _OrderInfo]:
    """The client id, side and reason of each venue order id: the ledger's, the pair's orders
    since ``since``, then single lookups."""
    cfg = worker.cfg
    venue = cfg.venue_symbol(symbol)
    known: dict[str, _OrderInfo] = {}
    ledger = worker.ledger
    for oid in ids:
        t = ledger.by_venue_id.get((venue, oid)) if ledger is not None else None
        if t is not None:
            known[oid] = _OrderInfo(t.client_order_id, t.side.value, t.reason)
    start: int | None = since
    params: dict[str, Any] = {}
    for _ in range(MAX_PAGES):
        if ids <= known.keys():
            break
        page = await worker.api.call(f"{symbol} all orders", "fetch_orders", venue, start, PAGE, params)
        for o in page:
            if str(o.get("id")) in ids:
                known[str(o.get("id"))] = _info(ledger, o)
        if len(page) < PAGE:
            break
        start, params = None, {"orderId": max(int(o.get("id") or 0) for o in page) + 1}  # orders >= that id
    missing = sorted(ids - known.keys())
    if len(missing) > MAX_LOOKUPS:
        raise ViewError(f"{symbol}: {len(missing)} orders of recent trades not found among its orders: "
                        f"more than {MAX_LOOKUPS} to look up one by one")  # fmt: skip
    for oid in missing:
        o = await worker.api.call(f"{symbol} order {oid}", "fetch_order", oid, venue)
        known[oid] = _info(ledger, o)
    return known


def _info(ledger: Any, o: Mapping[str, Any]) -> _OrderInfo:
    cid = str(o.get("clientOrderId") or "")
    t = ledger.track(cid) if ledger is not None and cid else None
    if t is not None:
        return _OrderInfo(cid, t.side.value, t.reason)
    reason = "stop" if "STOP" in raw_type(o) else "reconcile"
    return _OrderInfo(cid, str(o.get("side") or "").lower(), reason)


def _stamp(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))
