"""Spot private side of the local Binance exchange: accounts, orders, filters, matching, user data.

Used through ``binance_exchange.BinanceExchange`` (``server.spot``); see that module for the API.
Orders match against the pair's moving book top (``MarketState.bid``/``ask``/``last`` of
``binance_server``): MARKET fills at once at the ask (buy) or bid (sell), optionally in several
partial fills; a LIMIT rests until the price crosses it (marketable at once: taker at the book);
STOP_LOSS(_LIMIT) and TAKE_PROFIT(_LIMIT) rest until ``last`` reaches ``stopPrice``. Every order
change goes to the account's user-data subscribers on the websocket API as ``executionReport``
and ``outboundAccountPosition``, wrapped ``{"subscriptionId": n, "event": {...}}``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web
from binance_exchange_core import (
    D0,
    MSG_DUPLICATE,
    MSG_INSUFFICIENT,
    MSG_NO_ORDER,
    MSG_UNKNOWN_ORDER,
    ApiError,
    OrderRecord,
    check_client_id,
    dec,
    decimal_param,
    floor_step,
    fmt8,
    mandatory,
    now_ms,
)
from binance_exchange_spot_stream import SpotUserStream
from binance_server import Connection

if TYPE_CHECKING:
    from binance_exchange import BinanceExchange, RequestContext

OPEN = ("NEW", "PARTIALLY_FILLED")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
ORDER_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER", *STOP_TYPES)
Q8 = Decimal("0.00000001")


@dataclass(eq=False)
class SpotOrder:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    stop_price: Decimal
    orig_quote_qty: Decimal
    api_key: str
    time: int
    working: bool
    working_time: int
    update_time: int = 0
    status: str = "NEW"
    executed: Decimal = D0
    cum_quote: Decimal = D0
    lock_asset: str = ""
    locked: Decimal = D0
    parts: int = 1
    part_qty: Decimal = D0
    close_stream: bool = False
    order_list_id: int = -1

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def view(self) -> dict[str, Any]:
        """GET /api/v3/order form."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id, "price": fmt8(self.price), "origQty": fmt8(self.orig_qty),
            "executedQty": fmt8(self.executed), "cummulativeQuoteQty": fmt8(self.cum_quote),
            "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": fmt8(self.stop_price), "icebergQty": fmt8(D0), "time": self.time,
            "updateTime": self.update_time or self.time, "isWorking": self.working,
            "workingTime": self.working_time if self.working else -1,
            "origQuoteOrderQty": fmt8(self.orig_quote_qty), "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class SpotAccountState:
    api_key: str
    balances: dict[str, list[Decimal]] = field(default_factory=dict)  # asset -> [free, locked]
    orders: dict[int, SpotOrder] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)

    def bal(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [D0, D0])


class SpotVenue(SpotUserStream):
    """The spot exchange behind ``/api/v3`` and the websocket API ``/ws-api/v3``."""

    def __init__(self, host: BinanceExchange, taker_fee: float = 0.001, maker_fee: float = 0.001) -> None:
        self.host = host
        self.taker_fee = dec(taker_fee)
        self.maker_fee = dec(maker_fee)
        self.bnb_discount = Decimal("0.75")
        self.accounts: dict[str, SpotAccountState] = {}
        self.entries = {e["symbol"]: e for e in host._exchange_info_symbols}
        self._order_ids = itertools.count(5_000_000)
        self._trade_ids = itertools.count(90_000_000)
        self.fill_parts = 1  # default partial fills per order (tests may raise it)
        self.sweep_ticks = 0  # each further partial fill of a market order this many ticks worse
        self.streams: dict[Connection, dict[int, str]] = {}  # connection -> {subscriptionId: api key}
        self._sub_ids = itertools.count(0)
        self.events_sent = 0
        self.muted = False  # True: user-data events are dropped (a silent stream), connections stay open
        self.events_dropped = 0

    # ------------------------------------------------------------------ accounts

    def account(self, api_key: str) -> SpotAccountState:
        acct = self.accounts.get(api_key)
        if acct is None:
            acct = self.accounts[api_key] = SpotAccountState(api_key)
        return acct

    def set_balance(self, api_key: str, asset: str, free: float | str | Decimal) -> None:
        self.account(api_key).bal(asset)[0] = dec(free)

    def open_orders(self, api_key: str | None = None, symbol: str | None = None) -> list[SpotOrder]:
        accts = self.accounts.values() if api_key is None else [self.account(api_key)]
        return [o for a in accts for o in a.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    # ------------------------------------------------------------------ routes

    def add_routes(self, app: web.Application) -> None:
        route = self.host.route
        route(app, "POST", "/api/v3/order", self.new_order, "spot", 1, order=True)
        route(app, "POST", "/api/v3/order/test", self.test_order, "spot", 1)
        route(app, "GET", "/api/v3/order", self.query_order, "spot", 4)
        route(app, "DELETE", "/api/v3/order", self.cancel_order, "spot", 1)
        route(app, "GET", "/api/v3/openOrders", self.get_open_orders, "spot", 6)
        route(app, "DELETE", "/api/v3/openOrders", self.cancel_open_orders, "spot", 1)
        route(app, "GET", "/api/v3/allOrders", self.all_orders, "spot", 20)
        route(app, "GET", "/api/v3/myTrades", self.my_trades, "spot", 20)
        route(app, "GET", "/api/v3/account", self.get_account, "spot", 20)
        route(app, "POST", "/api/v3/orderList/oco", self.new_oco, "spot", 1, order=True)
        app.router.add_get("/ws-api/v3", self.ws_api_handler)

    # ------------------------------------------------------------------ helpers

    def _market(self, params: dict[str, str]) -> Any:
        market_id = mandatory(params, "symbol")
        if market_id not in self.entries:
            raise ApiError(-1121, "Invalid symbol.")
        return self.host.markets[market_id]

    def _find(self, acct: SpotAccountState, params: dict[str, str], unknown: tuple[int, str]) -> SpotOrder:
        market_id = mandatory(params, "symbol")
        oid = params.get("orderId")
        cid = params.get("origClientOrderId")
        if not oid and not cid:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        found: SpotOrder | None = None
        if oid:
            try:
                found = acct.orders.get(int(oid))
            except ValueError:
                raise ApiError(-1100, "Illegal characters found in parameter 'orderId'; legal range is '^[0-9]{1,20}$'.") from None
            if found is not None and cid and found.client_order_id != cid:
                found = None
        else:
            same = [o for o in acct.orders.values() if o.client_order_id == cid and o.symbol == market_id]
            found = max(same, key=lambda o: o.order_id) if same else None
        if found is None or found.symbol != market_id:
            raise ApiError(*unknown)
        return found

    def _filters(self, market_id: str) -> dict[str, dict[str, Any]]:
        return {f["filterType"]: f for f in self.entries[market_id].get("filters", [])}

    def check_filters(self, market_id: str, otype: str, side: str, qty: Decimal, price: Decimal, stop: Decimal, ref: Decimal) -> None:
        """Binance's symbol filters; -1013 "Filter failure: <NAME>" on the first that fails."""
        f = self._filters(market_id)

        def fail(name: str) -> ApiError:
            return ApiError(-1013, f"Filter failure: {name}")

        pf = f.get("PRICE_FILTER")
        for p in (price, stop):
            if p and pf:
                lo, hi, tick = dec(pf["minPrice"]), dec(pf["maxPrice"]), dec(pf["tickSize"])
                if (lo > 0 and p < lo) or (hi > 0 and p > hi) or (tick > 0 and (p - lo) % tick != 0):
                    raise fail("PRICE_FILTER")
        pp = f.get("PERCENT_PRICE_BY_SIDE")
        if pp and price and ref > 0:
            up, down = ("bidMultiplierUp", "bidMultiplierDown") if side == "BUY" else ("askMultiplierUp", "askMultiplierDown")
            if price > ref * dec(pp[up]) or price < ref * dec(pp[down]):
                raise fail("PERCENT_PRICE_BY_SIDE")
        for name in ("LOT_SIZE", "MARKET_LOT_SIZE") if otype == "MARKET" else ("LOT_SIZE",):
            lot = f.get(name)
            if lot:
                lo, hi, step = dec(lot["minQty"]), dec(lot["maxQty"]), dec(lot["stepSize"])
                if qty < lo or (hi > 0 and qty > hi) or (step > 0 and (qty - lo) % step != 0) or qty <= 0:
                    raise fail(name)
        px = price if otype != "MARKET" and price else ref
        notional = qty * px
        nf = f.get("NOTIONAL")
        if nf:
            is_mkt = otype in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
            if (not is_mkt or nf.get("applyMinToMarket", True)) and notional < dec(nf["minNotional"]):
                raise fail("NOTIONAL")
            if (not is_mkt or nf.get("applyMaxToMarket", False)) and dec(nf.get("maxNotional", "0")) > 0 and notional > dec(nf["maxNotional"]):
                raise fail("NOTIONAL")
        mf = f.get("MIN_NOTIONAL")
        if mf and (otype != "MARKET" or mf.get("applyToMarket", True)) and notional < dec(mf["minNotional"]):
            raise fail("MIN_NOTIONAL")
        mo = f.get("MAX_NUM_ORDERS")
        if mo and otype != "MARKET" and len(self.open_orders(None, market_id)) >= int(mo["maxNumOrders"]):
            raise fail("MAX_NUM_ORDERS")

    # ------------------------------------------------------------------ new order

    def _parse_new(self, acct: SpotAccountState, params: dict[str, str]) -> SpotOrder:
        m = self._market(params)
        side = mandatory(params, "side").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(-1117, "Invalid side.")
        otype = mandatory(params, "type").upper()
        if otype not in ORDER_TYPES:
            raise ApiError(-1116, "Invalid orderType.")
        if otype not in self.entries[m.market_id].get("orderTypes", ORDER_TYPES):
            raise ApiError(-1013, "Order type not supported for this symbol.")
        cid = params.get("newClientOrderId") or f"web_{next(self._order_ids)}x"
        check_client_id(cid)
        qty = decimal_param(params, "quantity")
        quote_qty = decimal_param(params, "quoteOrderQty")
        price = decimal_param(params, "price") or D0
        stop = decimal_param(params, "stopPrice") or D0
        tif = params.get("timeInForce", "")
        if otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            mandatory(params, "timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise ApiError(-1115, "Invalid timeInForce.")
        elif tif:
            raise ApiError(-1106, "Parameter 'timeInForce' sent when not required.")
        if (otype != "MARKET" or quote_qty is None) and qty is None:
            mandatory(params, "quantity")
        if otype != "MARKET" and quote_qty is not None:
            raise ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if otype in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and not price:
            mandatory(params, "price")
        if otype in STOP_TYPES and not stop:
            mandatory(params, "stopPrice")
        precision = int(self.entries[m.market_id].get("baseAssetPrecision", 8))
        if qty is not None and qty != qty.quantize(Decimal(1).scaleb(-precision), rounding=ROUND_DOWN):
            raise ApiError(-1111, "Parameter 'quantity' has too much precision.")
        ref = dec(m.last)
        if qty is None and quote_qty is not None:  # MARKET by quote amount
            px = dec(m.ask if side == "BUY" else m.bid)
            step = dec(self._filters(m.market_id).get("LOT_SIZE", {}).get("stepSize", "0"))
            qty = floor_step(quote_qty / px, step) if px > 0 else D0
        assert qty is not None
        self.check_filters(m.market_id, otype, side, qty, price, stop, ref)
        if otype in STOP_TYPES:
            last = dec(m.last)
            down = (otype.startswith("STOP_LOSS") and side == "SELL") or (otype.startswith("TAKE_PROFIT") and side == "BUY")
            if (down and last <= stop) or (not down and last >= stop):
                raise ApiError(-2010, "Order would trigger immediately.")
        if otype == "LIMIT_MAKER" and ((side == "BUY" and price >= dec(m.ask)) or (side == "SELL" and price <= dec(m.bid))):
            raise ApiError(-2010, "Order would immediately match and take.")
        dup = [o for o in acct.orders.values() if o.is_open and o.client_order_id == cid and o.symbol == m.market_id]
        if dup:
            raise ApiError(-2010, MSG_DUPLICATE)
        t = self.host.auth.server_time()
        base, quote = self.entries[m.market_id]["baseAsset"], self.entries[m.market_id]["quoteAsset"]
        o = SpotOrder(
            order_id=next(self._order_ids), symbol=m.market_id, client_order_id=cid, side=side, type=otype,
            time_in_force=tif, orig_qty=qty, price=price, stop_price=stop, orig_quote_qty=quote_qty or D0,
            api_key=acct.api_key, time=t, working=otype not in STOP_TYPES, working_time=t, update_time=t,
        )
        # Funds: a resting order locks what it may spend; a market order needs it free now.
        if side == "BUY":
            need = quote_qty if quote_qty is not None else qty * (price if otype != "MARKET" and price else dec(m.ask))
            if otype in ("STOP_LOSS", "TAKE_PROFIT"):
                need = qty * dec(m.ask)
            asset = quote
        else:
            need, asset = qty, base
        if acct.bal(asset)[0] < need:
            raise ApiError(-2010, MSG_INSUFFICIENT)
        if otype != "MARKET":
            o.lock_asset, o.locked = asset, need
            acct.bal(asset)[0] -= need
            acct.bal(asset)[1] += need
        return o

    async def test_order(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        o = self._parse_new(acct, ctx.params)
        if o.locked:  # undo the lock: a test order is never placed
            acct.bal(o.lock_asset)[0] += o.locked
            acct.bal(o.lock_asset)[1] -= o.locked
        return {}

    async def new_order(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        o = self._parse_new(acct, ctx.params)
        partial = self.host.faults.take(ctx.method, ctx.path, ("partial",))
        o.parts = max(1, partial.parts if partial else self.fill_parts)
        o.close_stream = self.host.faults.take(ctx.method, ctx.path, ("close_user_stream",)) is not None
        acct.orders[o.order_id] = o
        self.host.stats.orders.append(OrderRecord("spot", o.symbol, o.order_id, o.client_order_id, o.side, o.type, fmt8(o.orig_qty), acct.api_key))
        await self._report(o, "NEW")
        fills = await self._work(o, first=True)
        rtype = ctx.params.get("newOrderRespType") or ("FULL" if o.type in ("MARKET", "LIMIT") else "ACK")
        ack = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": o.order_list_id,
               "clientOrderId": o.client_order_id, "transactTime": o.time}
        if rtype == "ACK":
            return ack
        v = o.view()
        result = {**ack, **{k: v[k] for k in ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty",
                                              "status", "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode")}}
        if o.stop_price:
            result["stopPrice"] = v["stopPrice"]
        if rtype == "FULL":
            result["fills"] = [{"price": f["price"], "qty": f["qty"], "commission": f["commission"],
                                "commissionAsset": f["commissionAsset"], "tradeId": f["id"]} for f in fills]
        return result

    async def new_oco(self, ctx: RequestContext) -> Any:
        """POST /api/v3/orderList/oco: an above leg and a below leg; one fills, the other expires."""
        p = ctx.params
        acct = self.account(ctx.api_key)
        side = mandatory(p, "side").upper()
        qty = mandatory(p, "quantity")
        list_id = next(self._order_ids)
        legs = []
        for pos in ("above", "below"):
            leg = {"symbol": mandatory(p, "symbol"), "side": side, "quantity": qty, "type": mandatory(p, f"{pos}Type").upper()}
            for src, dst in (("ClientOrderId", "newClientOrderId"), ("Price", "price"), ("StopPrice", "stopPrice"), ("TimeInForce", "timeInForce")):
                if p.get(pos + src):
                    leg[dst] = p[pos + src]
            legs.append(leg)
        orders: list[SpotOrder] = []
        needs: list[Decimal] = []
        for leg in legs:  # each leg alone must be affordable; the list locks the larger need once
            o = self._parse_new(acct, leg)
            needs.append(o.locked)
            self._unlock(acct, o)
            orders.append(o)
        holder = orders[needs.index(max(needs))]
        holder.locked = max(needs)
        acct.bal(holder.lock_asset)[0] -= holder.locked
        acct.bal(holder.lock_asset)[1] += holder.locked
        for o in orders:
            o.order_list_id = list_id
            acct.orders[o.order_id] = o
            self.host.stats.orders.append(OrderRecord("spot", o.symbol, o.order_id, o.client_order_id, o.side, o.type, fmt8(o.orig_qty), acct.api_key))
            await self._report(o, "NEW")
        for o in orders:
            if o.is_open:
                await self._work(o, first=True)
        t = now_ms()
        list_cid = p.get("listClientOrderId") or f"oco_{list_id}"
        return {
            "orderListId": list_id, "contingencyType": "OCO", "listStatusType": "EXEC_STARTED", "listOrderStatus": "EXECUTING",
            "listClientOrderId": list_cid, "transactionTime": t, "symbol": orders[0].symbol,
            "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id} for o in orders],
            "orderReports": [o.view() for o in orders],
        }

    def _unlock(self, acct: SpotAccountState, o: SpotOrder) -> None:
        if o.locked:
            acct.bal(o.lock_asset)[0] += o.locked
            acct.bal(o.lock_asset)[1] -= o.locked
            o.locked = D0

    # ------------------------------------------------------------------ matching

    async def on_price(self, market_id: str) -> None:
        """The book top of ``market_id`` moved: trigger stops and fill what the price crossed."""
        for o in sorted(self.open_orders(None, market_id), key=lambda o: o.order_id):
            if o.is_open:
                await self._work(o, first=False)

    async def _work(self, o: SpotOrder, first: bool) -> list[dict[str, Any]]:
        m = self.host.markets[o.symbol]
        bid, ask, last = dec(m.bid), dec(m.ask), dec(m.last)
        fills: list[dict[str, Any]] = []
        if not o.working:
            down = (o.type.startswith("STOP_LOSS") and o.side == "SELL") or (o.type.startswith("TAKE_PROFIT") and o.side == "BUY")
            if not ((down and last <= o.stop_price) or (not down and last >= o.stop_price)):
                return fills
            o.working, o.working_time = True, self.host.auth.server_time()
            first = True  # a triggered order is new to the book: marketable means taker
        book = ask if o.side == "BUY" else bid
        if o.type in ("MARKET", "STOP_LOSS", "TAKE_PROFIT"):
            remaining = o.orig_qty - o.executed
            chunks = self._chunks(remaining, o.parts)
            worse = dec(m.tick) * self.sweep_ticks * (1 if o.side == "BUY" else -1)
            for i, q in enumerate(chunks):
                fills.append(await self._fill(o, q, book + worse * i, maker=False, more=i < len(chunks) - 1))
            return fills
        crosses = (o.side == "BUY" and book <= o.price) or (o.side == "SELL" and book >= o.price)
        if not crosses:
            if first and o.time_in_force in ("IOC", "FOK"):
                await self._finish(o, "EXPIRED")
            return fills
        px, maker = (book, False) if first else (o.price, True)
        remaining = o.orig_qty - o.executed
        if first and o.parts > 1 and o.time_in_force == "GTC":  # fill one part now, the rest on later crossings
            o.part_qty = self._chunks(o.orig_qty, o.parts)[0]
        if o.parts > 1 and o.time_in_force == "GTC":
            q = min(remaining, o.part_qty or self._chunks(o.orig_qty, o.parts)[0])
            fills.append(await self._fill(o, q, px, maker, more=q < remaining))
        else:
            fills.append(await self._fill(o, remaining, px, maker, more=False))
        if o.is_open and o.time_in_force == "IOC":
            await self._finish(o, "EXPIRED")
        return fills

    def _chunks(self, qty: Decimal, parts: int) -> list[Decimal]:
        if parts <= 1:
            return [qty]
        exp = qty.as_tuple().exponent
        unit = Decimal(1).scaleb(exp if isinstance(exp, int) else -8)
        each = floor_step(qty / parts, unit)
        if each <= 0:
            return [qty]
        out = [each] * (parts - 1)
        out.append(qty - each * (parts - 1))
        return out

    async def _fill(self, o: SpotOrder, qty: Decimal, price: Decimal, maker: bool, more: bool) -> dict[str, Any]:
        acct = self.account(o.api_key)
        entry = self.entries[o.symbol]
        base, quote = entry["baseAsset"], entry["quoteAsset"]
        quote_amt = (qty * price).quantize(Q8, rounding=ROUND_DOWN)
        rate = self.maker_fee if maker else self.taker_fee
        if o.side == "BUY":
            spend_asset, spend, recv_asset, recv = quote, quote_amt, base, qty
        else:
            spend_asset, spend, recv_asset, recv = base, qty, quote, quote_amt
        if o.order_list_id != -1 and not o.locked:  # an order list's lock moves to the leg that fills
            for sib in acct.orders.values():
                if sib.order_list_id == o.order_list_id and sib is not o and sib.locked:
                    o.locked, sib.locked = sib.locked, D0
                    break
        if o.locked:  # release this fill's share of the lock, then spend from free
            remaining = o.orig_qty - o.executed
            if qty >= remaining:
                share = o.locked
            elif o.side == "BUY" and o.price:
                share = min(o.locked, qty * o.price)
            else:
                share = min(o.locked, (o.locked * qty / remaining).quantize(Q8))
            o.locked -= share
            acct.bal(spend_asset)[1] -= share
            acct.bal(spend_asset)[0] += share
        acct.bal(spend_asset)[0] -= spend
        fee_asset, fee = recv_asset, (recv * rate).quantize(Q8)
        if self.host.auth.accounts[o.api_key].fee_in_bnb and quote == "USDT":
            bnb = self.host.markets.get("BNBUSDT")
            if bnb is not None and bnb.last > 0:
                bnb_fee = (quote_amt * rate * self.bnb_discount / dec(bnb.last)).quantize(Q8)
                if acct.bal("BNB")[0] >= bnb_fee:
                    fee_asset, fee = "BNB", bnb_fee
        acct.bal(recv_asset)[0] += recv
        acct.bal(fee_asset)[0] -= fee
        o.executed += qty
        o.cum_quote += quote_amt
        o.update_time = self.host.auth.server_time()
        o.status = "FILLED" if o.executed >= o.orig_qty else "PARTIALLY_FILLED"
        trade_id = next(self._trade_ids)
        trade = {
            "symbol": o.symbol, "id": trade_id, "orderId": o.order_id, "orderListId": o.order_list_id,
            "price": fmt8(price), "qty": fmt8(qty), "quoteQty": fmt8(quote_amt), "commission": fmt8(fee),
            "commissionAsset": fee_asset, "time": o.update_time, "isBuyer": o.side == "BUY", "isMaker": maker,
            "isBestMatch": True,
        }
        acct.trades.append(trade)
        if o.close_stream and not more:  # the stream dies before the last fill is reported
            o.close_stream = False
            await self.close_streams(o.api_key)
        await self._report(o, "TRADE", trade=trade, assets=(base, quote, fee_asset))
        if o.close_stream and more:  # ... or right after the first of several fills
            o.close_stream = False
            await self.close_streams(o.api_key)
        if o.status == "FILLED" and o.order_list_id != -1:
            for other in list(acct.orders.values()):
                if other.order_list_id == o.order_list_id and other is not o and other.is_open:
                    await self._finish(other, "EXPIRED")
        return trade

    async def _finish(self, o: SpotOrder, status: str) -> None:
        acct = self.account(o.api_key)
        self._unlock(acct, o)
        o.status = status
        o.update_time = self.host.auth.server_time()
        await self._report(o, "CANCELED" if status == "CANCELED" else "EXPIRED")

    # ------------------------------------------------------------------ queries

    async def query_order(self, ctx: RequestContext) -> Any:
        return self._find(self.account(ctx.api_key), ctx.params, (-2013, MSG_NO_ORDER)).view()

    async def cancel_order(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        o = self._find(acct, ctx.params, (-2011, MSG_UNKNOWN_ORDER))
        if not o.is_open:
            raise ApiError(-2011, MSG_UNKNOWN_ORDER)
        await self._finish(o, "CANCELED")
        if o.order_list_id != -1:  # cancelling one leg cancels the whole order list
            for sib in [x for x in acct.orders.values() if x.order_list_id == o.order_list_id and x.is_open]:
                await self._finish(sib, "CANCELED")
        return self._cancel_view(o, ctx.params.get("newClientOrderId"))

    def _cancel_view(self, o: SpotOrder, new_cid: str | None) -> dict[str, Any]:
        v = o.view()
        return {"symbol": o.symbol, "origClientOrderId": o.client_order_id, "orderId": o.order_id,
                "orderListId": o.order_list_id, "clientOrderId": new_cid or f"cancel_{o.order_id}",
                "transactTime": o.update_time, **{k: v[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty",
                                                                   "status", "timeInForce", "type", "side", "selfTradePreventionMode")}}

    async def get_open_orders(self, ctx: RequestContext) -> Any:
        sym = ctx.params.get("symbol")
        if sym and sym not in self.entries:
            raise ApiError(-1121, "Invalid symbol.")
        return [o.view() for o in sorted(self.open_orders(ctx.api_key, sym), key=lambda o: o.order_id)]

    async def cancel_open_orders(self, ctx: RequestContext) -> Any:
        m = self._market(ctx.params)
        orders = self.open_orders(ctx.api_key, m.market_id)
        if not orders:
            raise ApiError(-2011, MSG_UNKNOWN_ORDER)
        for o in orders:
            await self._finish(o, "CANCELED")
        return [self._cancel_view(o, None) for o in orders]

    async def all_orders(self, ctx: RequestContext) -> Any:
        m = self._market(ctx.params)
        acct = self.account(ctx.api_key)
        limit = int(ctx.params.get("limit", "500"))
        start = int(ctx.params.get("startTime", "0"))
        out = [o.view() for o in sorted(acct.orders.values(), key=lambda o: o.order_id) if o.symbol == m.market_id and o.time >= start]
        return out[-limit:]

    async def my_trades(self, ctx: RequestContext) -> Any:
        m = self._market(ctx.params)
        p = ctx.params
        trades = [t for t in self.account(ctx.api_key).trades if t["symbol"] == m.market_id]
        if p.get("orderId"):
            trades = [t for t in trades if str(t["orderId"]) == p["orderId"]]
        if p.get("startTime"):
            trades = [t for t in trades if t["time"] >= int(p["startTime"])]
        if p.get("endTime"):
            trades = [t for t in trades if t["time"] <= int(p["endTime"])]
        if p.get("fromId"):
            trades = [t for t in trades if t["id"] >= int(p["fromId"])]
        return trades[: int(p.get("limit", "500"))]

    async def get_account(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        omit_zero = ctx.params.get("omitZeroBalances") == "true"
        balances = [{"asset": a, "free": fmt8(f), "locked": fmt8(lk)} for a, (f, lk) in sorted(acct.balances.items())
                    if not (omit_zero and f == 0 and lk == 0)]
        return {
            "makerCommission": int(self.maker_fee * 10000), "takerCommission": int(self.taker_fee * 10000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt8(self.maker_fee), "taker": fmt8(self.taker_fee), "buyer": fmt8(D0), "seller": fmt8(D0)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False, "requireSelfTradePrevention": False,
            "preventSor": False, "updateTime": now_ms(), "accountType": "SPOT", "balances": balances,
            "permissions": ["SPOT"], "uid": 100000000 + list(self.accounts).index(ctx.api_key),
        }
