"""USDT-M futures side of the local Binance exchange (``/fapi``), one-way mode, cross margin.

Used through ``binance_exchange.BinanceExchange`` (``server.futures``); see that module for the
API (algo orders, countdownCancelAll and the listenKey stream are in
``binance_exchange_futures_algo.py``). Every spot USDT pair is also a perpetual (same id, e.g. ``BTCUSDT`` = ccxt ``BTC/USDT:USDT``)
whose price is the spot pair's book top. Plain orders (MARKET, LIMIT; reduceOnly) go to
``/fapi/v1/order``; conditional ones (STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT) only to
the algo-order API ``/fapi/v1/algoOrder`` (the order endpoint refuses them with -4120, as Binance
does since December 2025). Private events go to listenKey streams as ``ORDER_TRADE_UPDATE``,
``ALGO_UPDATE`` and ``ACCOUNT_UPDATE``. Hedge mode can be switched on (``dual_side``) so that a
client can be seen refusing it; orders in hedge mode are refused with -4061 (not modelled).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web
from binance_exchange_core import (
    D0,
    MSG_NO_ORDER,
    MSG_UNKNOWN_ORDER,
    ApiError,
    OrderRecord,
    check_client_id,
    dec,
    decimal_param,
    mandatory,
    now_ms,
)
from binance_exchange_futures_algo import ALGO_TYPES, AlgoOrder, FuturesAlgoAndStreams
from binance_server import Connection

if TYPE_CHECKING:
    from binance_exchange import BinanceExchange, RequestContext

OPEN = ("NEW", "PARTIALLY_FILLED")
DELIVERY = 4133404800000


def _min_notional(base: str) -> int:
    return {"BTC": 100, "ETH": 20}.get(base, 5)


@dataclass
class Position:
    amt: Decimal = D0  # signed: > 0 long, < 0 short
    entry: Decimal = D0
    realized: Decimal = D0
    update_time: int = 0


@dataclass(eq=False)
class FutOrder:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    orig_type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    reduce_only: bool
    api_key: str
    time: int
    update_time: int = 0
    status: str = "NEW"
    executed: Decimal = D0
    cum_quote: Decimal = D0
    close_position: bool = False
    parts: int = 1
    close_stream: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def avg(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else D0


@dataclass
class FutAccount:
    api_key: str
    wallet: Decimal = D0
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, FutOrder] = field(default_factory=dict)
    algos: dict[int, AlgoOrder] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    listen_key: str | None = None

    def pos(self, symbol: str) -> Position:
        return self.positions.setdefault(symbol, Position())


class FuturesVenue(FuturesAlgoAndStreams):
    """USDT-M perpetuals behind ``/fapi`` with listenKey user streams."""

    def __init__(self, host: BinanceExchange, taker_fee: float = 0.0005, maker_fee: float = 0.0002) -> None:
        self.host = host
        self.taker_fee, self.maker_fee = dec(taker_fee), dec(maker_fee)
        self.dual_side = False
        self.countdown_cancels_algo = False  # Binance documents "open orders"; algo orders are a separate service
        self.default_leverage = 20
        self.fill_parts = 1
        self.accounts: dict[str, FutAccount] = {}
        self.entries = {e["symbol"]: e for e in self._build_entries()}
        self._order_ids = itertools.count(8_000_000_000)
        self._algo_ids = itertools.count(3_000)
        self._trade_ids = itertools.count(700_000_000)
        self.listen_keys: dict[str, str] = {}  # listenKey -> api key
        self.streams: dict[Connection, str] = {}  # connection -> api key
        self.countdowns: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.countdown_fired: list[tuple[str, str, int]] = []  # (api key, symbol, orders cancelled)
        self.muted = False  # True: user-data events are dropped (a silent stream), connections stay open
        self.events_dropped = 0

    # ------------------------------------------------------------------ markets

    def _build_entries(self) -> list[dict[str, Any]]:
        out = []
        for spot in self.host._exchange_info_symbols:
            if spot.get("quoteAsset") != "USDT":
                continue
            m = self.host.markets[spot["symbol"]]
            tick = Decimal(str(m.tick)).normalize()
            step = Decimal(1).scaleb(min(0, math.floor(math.log10(100.0 / max(m.mid, 1e-9)))))
            pp, qp = max(0, -int(tick.as_tuple().exponent)), max(0, -int(step.as_tuple().exponent))
            out.append({
                "symbol": spot["symbol"], "pair": spot["symbol"], "contractType": "PERPETUAL", "deliveryDate": DELIVERY,
                "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": spot["baseAsset"], "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": pp,
                "quantityPrecision": qp, "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
                "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": f"{tick:f}", "maxPrice": "10000000", "tickSize": f"{tick:f}"},
                    {"filterType": "LOT_SIZE", "minQty": f"{step:f}", "maxQty": "100000", "stepSize": f"{step:f}"},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": f"{step:f}", "maxQty": "10000", "stepSize": f"{step:f}"},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": str(_min_notional(spot["baseAsset"]))},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            })
        return out

    def exchange_info_symbols(self) -> list[dict[str, Any]]:
        return list(self.entries.values())

    def _f(self, market_id: str, name: str) -> dict[str, Any]:
        return next(f for f in self.entries[market_id]["filters"] if f["filterType"] == name)

    def _q(self, market_id: str, x: Decimal) -> str:
        return f"{x:.{self.entries[market_id]['quantityPrecision']}f}"

    def _p(self, market_id: str, x: Decimal) -> str:
        return f"{x:.{max(2, self.entries[market_id]['pricePrecision'])}f}"

    # ------------------------------------------------------------------ accounts

    def account(self, api_key: str) -> FutAccount:
        acct = self.accounts.get(api_key)
        if acct is None:
            acct = self.accounts[api_key] = FutAccount(api_key)
        return acct

    def positions(self, api_key: str | None = None) -> dict[str, Position]:
        """Open (non-zero) positions of an account (default: the server's default key)."""
        acct = self.account(api_key or self.host.api_key)
        return {s: p for s, p in acct.positions.items() if p.amt != 0}

    def open_orders(self, api_key: str | None = None, symbol: str | None = None) -> list[FutOrder]:
        accts = self.accounts.values() if api_key is None else [self.account(api_key)]
        return [o for a in accts for o in a.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def open_algo_orders(self, api_key: str | None = None, symbol: str | None = None) -> list[AlgoOrder]:
        accts = self.accounts.values() if api_key is None else [self.account(api_key)]
        return [o for a in accts for o in a.algos.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def _mark(self, market_id: str) -> Decimal:
        return dec(self.host.markets[market_id].last)

    def _lev(self, acct: FutAccount, market_id: str) -> int:
        return acct.leverage.get(market_id, self.default_leverage)

    def _upnl(self, acct: FutAccount) -> Decimal:
        return sum((p.amt * (self._mark(s) - p.entry) for s, p in acct.positions.items() if p.amt), D0)

    def _pos_margin(self, acct: FutAccount) -> Decimal:
        return sum((abs(p.amt) * self._mark(s) / self._lev(acct, s) for s, p in acct.positions.items() if p.amt), D0)

    def _order_margin(self, acct: FutAccount, symbol: str | None = None) -> Decimal:
        return sum(((o.orig_qty - o.executed) * o.price / self._lev(acct, o.symbol) for o in acct.orders.values()
                    if o.is_open and not o.reduce_only and (symbol is None or o.symbol == symbol)), D0)

    def _available(self, acct: FutAccount) -> Decimal:
        return acct.wallet + self._upnl(acct) - self._pos_margin(acct) - self._order_margin(acct)

    # ------------------------------------------------------------------ routes

    def add_routes(self, app: web.Application) -> None:
        r = self.host.route
        r(app, "GET", "/fapi/v1/ping", self._ping, "futures", 1, public=True)
        r(app, "GET", "/fapi/v1/time", self._time, "futures", 1, public=True)
        r(app, "GET", "/fapi/v1/exchangeInfo", self._exchange_info, "futures", 1, public=True)
        r(app, "GET", "/fapi/v1/ticker/bookTicker", self._book_ticker, "futures", 2, public=True)
        r(app, "GET", "/fapi/v1/ticker/price", self._price, "futures", 1, public=True)
        r(app, "GET", "/fapi/v1/premiumIndex", self._premium, "futures", 1, public=True)
        r(app, "POST", "/fapi/v1/order", self.new_order, "futures", 1, order=True)
        r(app, "GET", "/fapi/v1/order", self.query_order, "futures", 1)
        r(app, "DELETE", "/fapi/v1/order", self.cancel_order, "futures", 1)
        r(app, "GET", "/fapi/v1/openOrders", self.get_open_orders, "futures", 1)
        r(app, "DELETE", "/fapi/v1/allOpenOrders", self.cancel_all, "futures", 1)
        r(app, "GET", "/fapi/v1/allOrders", self.all_orders, "futures", 5)
        r(app, "GET", "/fapi/v1/userTrades", self.user_trades, "futures", 5)
        for v in ("v2", "v3"):
            r(app, "GET", f"/fapi/{v}/positionRisk", self.position_risk, "futures", 5)
            r(app, "GET", f"/fapi/{v}/account", self.get_account, "futures", 5)
            r(app, "GET", f"/fapi/{v}/balance", self.get_balance, "futures", 5)
        r(app, "GET", "/fapi/v1/leverageBracket", self.leverage_bracket, "futures", 1)
        r(app, "POST", "/fapi/v1/leverage", self.set_leverage, "futures", 1)
        r(app, "POST", "/fapi/v1/marginType", self.set_margin_type, "futures", 1)
        r(app, "GET", "/fapi/v1/positionSide/dual", self.get_dual, "futures", 30)
        r(app, "POST", "/fapi/v1/positionSide/dual", self.set_dual, "futures", 1)
        r(app, "POST", "/fapi/v1/countdownCancelAll", self.countdown, "futures", 10)
        r(app, "POST", "/fapi/v1/algoOrder", self.new_algo, "futures", 1, order=True)
        r(app, "GET", "/fapi/v1/algoOrder", self.query_algo, "futures", 1)
        r(app, "DELETE", "/fapi/v1/algoOrder", self.cancel_algo, "futures", 1)
        r(app, "GET", "/fapi/v1/openAlgoOrders", self.get_open_algos, "futures", 1)
        r(app, "DELETE", "/fapi/v1/algoOpenOrders", self.cancel_all_algos, "futures", 1)
        r(app, "GET", "/fapi/v1/allAlgoOrders", self.all_algos, "futures", 5)
        r(app, "POST", "/fapi/v1/listenKey", self.listen_key_new, "futures", 1, key_only=True)
        r(app, "PUT", "/fapi/v1/listenKey", self.listen_key_keep, "futures", 1, key_only=True)
        r(app, "DELETE", "/fapi/v1/listenKey", self.listen_key_close, "futures", 1, key_only=True)

    # ------------------------------------------------------------------ public

    async def _ping(self, ctx: RequestContext) -> Any:
        return {}

    async def _time(self, ctx: RequestContext) -> Any:
        return {"serverTime": self.host.auth.server_time()}

    async def _exchange_info(self, ctx: RequestContext) -> Any:
        return {"timezone": "UTC", "serverTime": now_ms(), "futuresType": "U_MARGINED", "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
            "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": self.exchange_info_symbols()}

    def _sym(self, params: dict[str, str], required: bool = True) -> str | None:
        market_id = mandatory(params, "symbol") if required else params.get("symbol")
        if market_id is not None and market_id not in self.entries:
            raise ApiError(-1121, "Invalid symbol.")
        return market_id

    async def _book_ticker(self, ctx: RequestContext) -> Any:
        def one(s: str) -> dict[str, Any]:
            m = self.host.markets[s]
            return {"symbol": s, "bidPrice": self._p(s, dec(m.bid)), "bidQty": "10", "askPrice": self._p(s, dec(m.ask)),
                    "askQty": "10", "time": now_ms()}
        s = self._sym(ctx.params, False)
        return one(s) if s else [one(x) for x in self.entries]

    async def _price(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params, False)
        rows = [{"symbol": x, "price": self._p(x, self._mark(x)), "time": now_ms()} for x in ([s] if s else self.entries)]
        return rows[0] if s else rows

    async def _premium(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params, False)
        rows = [{"symbol": x, "markPrice": self._p(x, self._mark(x)), "indexPrice": self._p(x, self._mark(x)),
                 "estimatedSettlePrice": self._p(x, self._mark(x)), "lastFundingRate": "0.00010000",
                 "interestRate": "0.00010000", "nextFundingTime": now_ms() + 3_600_000, "time": now_ms()}
                for x in ([s] if s else self.entries)]
        return rows[0] if s else rows

    # ------------------------------------------------------------------ orders

    def _check_qty_price(self, market_id: str, otype: str, qty: Decimal, price: Decimal, reduce_only: bool) -> None:
        lot = self._f(market_id, "MARKET_LOT_SIZE" if otype == "MARKET" else "LOT_SIZE")
        step, lo, hi = dec(lot["stepSize"]), dec(lot["minQty"]), dec(lot["maxQty"])
        if qty <= 0:
            raise ApiError(-4003, "Quantity less than or equal to zero.")
        if qty % step != 0:
            raise ApiError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < lo:
            raise ApiError(-4004, "Quantity less than min quantity.")
        if qty > hi:
            raise ApiError(-4005, "Quantity greater than max quantity.")
        if price:
            pf = self._f(market_id, "PRICE_FILTER")
            if (price - dec(pf["minPrice"])) % dec(pf["tickSize"]) != 0:
                raise ApiError(-4014, "Price not increased by tick size.")
            pp = self._f(market_id, "PERCENT_PRICE")
            mark = self._mark(market_id)
            if price > mark * dec(pp["multiplierUp"]):
                raise ApiError(-4016, f"Limit price can't be higher than {self._p(market_id, mark * dec(pp['multiplierUp']))}.")
            if price < mark * dec(pp["multiplierDown"]):
                raise ApiError(-4024, f"Limit price can't be lower than {self._p(market_id, mark * dec(pp['multiplierDown']))}.")
        mn = dec(self._f(market_id, "MIN_NOTIONAL")["notional"])
        if not reduce_only and qty * (price or self._mark(market_id)) < mn:
            raise ApiError(-4164, f"Order's notional must be no smaller than {mn} (unless you choose reduce only).")

    def _position_side(self, params: dict[str, str]) -> None:
        ps = params.get("positionSide", "BOTH").upper()
        if self.dual_side or ps != "BOTH":
            raise ApiError(-4061, "Order's position side does not match user's setting.")

    async def new_order(self, ctx: RequestContext) -> Any:
        p = ctx.params
        acct = self.account(ctx.api_key)
        s = self._sym(p)
        assert s is not None
        side = mandatory(p, "side").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(-1117, "Invalid side.")
        otype = mandatory(p, "type").upper()
        if otype in (*ALGO_TYPES, "TRAILING_STOP_MARKET"):
            raise ApiError(-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        if otype not in ("MARKET", "LIMIT"):
            raise ApiError(-1116, "Invalid orderType.")
        self._position_side(p)
        cid = p.get("newClientOrderId") or f"web_{secrets.token_hex(8)}"
        check_client_id(cid)
        qty = decimal_param(p, "quantity", required=True) or D0
        price = decimal_param(p, "price") or D0
        tif = p.get("timeInForce", "GTC")
        if otype == "LIMIT":
            mandatory(p, "timeInForce")
            mandatory(p, "price")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        self._check_qty_price(s, otype, qty, price, reduce_only)
        if any(o.is_open and o.client_order_id == cid for o in acct.orders.values()):
            raise ApiError(-4116, "ClientOrderId is duplicated.")
        pos = acct.pos(s)
        if reduce_only and (pos.amt == 0 or (pos.amt > 0) == (side == "BUY")):
            raise ApiError(-2022, "ReduceOnly Order is rejected.")
        m = self.host.markets[s]
        if not reduce_only:
            px = price if otype == "LIMIT" else dec(m.ask if side == "BUY" else m.bid)
            closing = min(qty, abs(pos.amt)) if pos.amt and (pos.amt > 0) != (side == "BUY") else D0
            if (qty - closing) * px / self._lev(acct, s) > self._available(acct):
                raise ApiError(-2019, "Margin is insufficient.")
        t = self.host.auth.server_time()
        o = FutOrder(next(self._order_ids), s, cid, side, otype, otype, tif, qty, price, reduce_only, ctx.api_key, t, t)
        partial = self.host.faults.take(ctx.method, ctx.path, ("partial",))
        o.parts = max(1, partial.parts if partial else self.fill_parts)
        o.close_stream = self.host.faults.take(ctx.method, ctx.path, ("close_user_stream",)) is not None
        acct.orders[o.order_id] = o
        self.host.stats.orders.append(OrderRecord("futures", s, o.order_id, cid, side, otype, self._q(s, qty), ctx.api_key))
        await self._order_event(o, "NEW")
        ack = self.view(o) if p.get("newOrderRespType", "ACK") == "ACK" else None
        await self._work(o, first=True)
        return ack or self.view(o)

    def view(self, o: FutOrder) -> dict[str, Any]:
        return {
            "orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_order_id,
            "price": self._p(o.symbol, o.price), "avgPrice": self._p(o.symbol, o.avg), "origQty": self._q(o.symbol, o.orig_qty),
            "executedQty": self._q(o.symbol, o.executed), "cumQty": self._q(o.symbol, o.executed),
            "cumQuote": f"{o.cum_quote:.8f}", "timeInForce": o.time_in_force, "type": o.type, "reduceOnly": o.reduce_only,
            "closePosition": o.close_position, "side": o.side, "positionSide": "BOTH", "stopPrice": "0",
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.orig_type, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": o.time, "updateTime": o.update_time or o.time,
        }

    async def _work(self, o: FutOrder, first: bool) -> None:
        m = self.host.markets[o.symbol]
        book = dec(m.ask if o.side == "BUY" else m.bid)
        acct = self.account(o.api_key)
        if o.reduce_only:  # never more than the position left to reduce
            pos = acct.pos(o.symbol)
            room = abs(pos.amt) if pos.amt and (pos.amt > 0) != (o.side == "BUY") else D0
            if room <= 0:
                await self._finish(o, "EXPIRED")
                return
        else:
            room = o.orig_qty
        remaining = min(o.orig_qty - o.executed, room)
        if o.type == "MARKET":
            step = dec(self._f(o.symbol, "LOT_SIZE")["stepSize"])
            each = max(step, (remaining / o.parts // step) * step)
            left = remaining
            while left > 0:
                q = min(each, left) if o.parts > 1 else left
                left -= q
                await self._fill(o, q, book, maker=False, more=left > 0)
            if o.is_open:
                await self._finish(o, "EXPIRED")
            return
        if (o.side == "BUY" and book <= o.price) or (o.side == "SELL" and book >= o.price):
            await self._fill(o, remaining, book if first else o.price, maker=not first, more=False)
        elif first and o.time_in_force in ("IOC", "FOK"):
            await self._finish(o, "EXPIRED")

    async def _fill(self, o: FutOrder, qty: Decimal, price: Decimal, maker: bool, more: bool) -> None:
        acct = self.account(o.api_key)
        pos = acct.pos(o.symbol)
        signed = qty if o.side == "BUY" else -qty
        realized = D0
        if pos.amt == 0 or (pos.amt > 0) == (signed > 0):
            pos.entry = (abs(pos.amt) * pos.entry + qty * price) / (abs(pos.amt) + qty)
            pos.amt += signed
        else:
            closing = min(qty, abs(pos.amt))
            realized = closing * (price - pos.entry) * (1 if pos.amt > 0 else -1)
            pos.amt += signed
            if pos.amt == 0:
                pos.entry = D0
            elif (pos.amt > 0) == (signed > 0):  # flipped through zero
                pos.entry = price
        fee = (qty * price * (self.maker_fee if maker else self.taker_fee)).quantize(Decimal("0.00000001"))
        acct.wallet += realized - fee
        pos.realized += realized
        t = self.host.auth.server_time()
        pos.update_time = o.update_time = t
        o.executed += qty
        o.cum_quote += qty * price
        o.status = "FILLED" if o.executed >= o.orig_qty else "PARTIALLY_FILLED"
        trade = {"buyer": o.side == "BUY", "commission": f"{fee:.8f}", "commissionAsset": "USDT", "id": next(self._trade_ids),
                 "maker": maker, "orderId": o.order_id, "price": self._p(o.symbol, price), "qty": self._q(o.symbol, qty),
                 "quoteQty": f"{qty * price:.8f}", "realizedPnl": f"{realized:.8f}", "side": o.side, "positionSide": "BOTH",
                 "symbol": o.symbol, "time": t}
        acct.trades.append(trade)
        if o.close_stream and not more:
            o.close_stream = False
            await self.close_streams(o.api_key)
        await self._order_event(o, "TRADE", trade)
        await self._account_event(acct, o.symbol)
        if o.close_stream and more:
            o.close_stream = False
            await self.close_streams(o.api_key)

    async def _finish(self, o: FutOrder, status: str) -> None:
        o.status = status
        o.update_time = self.host.auth.server_time()
        await self._order_event(o, "CANCELED" if status == "CANCELED" else "EXPIRED")

    async def on_price(self, market_id: str) -> None:
        if market_id not in self.entries:
            return
        last = self._mark(market_id)
        for a in list(self.accounts.values()):
            for algo in [x for x in a.algos.values() if x.is_open and x.symbol == market_id]:
                down = (algo.order_type in ("STOP_MARKET", "STOP")) == (algo.side == "SELL")
                if (down and last <= algo.trigger) or (not down and last >= algo.trigger):
                    await self._trigger(a, algo)
            for o in [x for x in a.orders.values() if x.is_open and x.symbol == market_id and x.type == "LIMIT"]:
                await self._work(o, first=False)

    def _find(self, acct: FutAccount, params: dict[str, str], unknown: tuple[int, str]) -> FutOrder:
        s = self._sym(params)
        oid, cid = params.get("orderId"), params.get("origClientOrderId")
        if not oid and not cid:
            raise ApiError(-1102, "Either orderId or origClientOrderId must be sent.")
        if oid:
            o = acct.orders.get(int(oid)) if oid.isdigit() else None
        else:
            same = [x for x in acct.orders.values() if x.client_order_id == cid and x.symbol == s]
            o = max(same, key=lambda x: x.order_id) if same else None
        if o is None or o.symbol != s:
            raise ApiError(*unknown)
        return o

    async def query_order(self, ctx: RequestContext) -> Any:
        return self.view(self._find(self.account(ctx.api_key), ctx.params, (-2013, MSG_NO_ORDER)))

    async def cancel_order(self, ctx: RequestContext) -> Any:
        o = self._find(self.account(ctx.api_key), ctx.params, (-2011, MSG_UNKNOWN_ORDER))
        if not o.is_open:
            raise ApiError(-2011, MSG_UNKNOWN_ORDER)
        await self._finish(o, "CANCELED")
        return self.view(o)

    async def get_open_orders(self, ctx: RequestContext) -> Any:
        return [self.view(o) for o in self.open_orders(ctx.api_key, self._sym(ctx.params, False))]

    async def cancel_all(self, ctx: RequestContext) -> Any:
        for o in self.open_orders(ctx.api_key, self._sym(ctx.params)):
            await self._finish(o, "CANCELED")
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    async def all_orders(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params)
        return [self.view(o) for o in self.account(ctx.api_key).orders.values() if o.symbol == s]

    async def user_trades(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params)
        p = ctx.params
        rows = [t for t in self.account(ctx.api_key).trades if t["symbol"] == s]
        if p.get("orderId"):
            rows = [t for t in rows if str(t["orderId"]) == p["orderId"]]
        if p.get("startTime"):
            rows = [t for t in rows if t["time"] >= int(p["startTime"])]
        return rows[: int(p.get("limit", "500"))]

    # ------------------------------------------------------------------ account

    def _pos_row(self, acct: FutAccount, s: str, p: Position, v3: bool) -> dict[str, Any]:
        mark = self._mark(s)
        lev = self._lev(acct, s)
        notional = p.amt * mark
        row = {"symbol": s, "positionSide": "BOTH", "positionAmt": self._q(s, p.amt), "entryPrice": f"{p.entry:.8f}",
               "breakEvenPrice": f"{p.entry:.8f}", "markPrice": f"{mark:.8f}", "unRealizedProfit": f"{p.amt * (mark - p.entry):.8f}",
               "liquidationPrice": "0", "isolatedMargin": "0.00000000", "notional": f"{notional:.8f}", "marginAsset": "USDT",
               "isolatedWallet": "0", "initialMargin": f"{abs(notional) / lev:.8f}", "maintMargin": f"{abs(notional) * Decimal('0.004'):.8f}",
               "positionInitialMargin": f"{abs(notional) / lev:.8f}", "openOrderInitialMargin": f"{self._order_margin(acct, s):.8f}",
               "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": p.update_time}
        if not v3:
            row.update({"leverage": str(lev), "marginType": acct.margin_type.get(s, "cross"), "isAutoAddMargin": "false",
                        "maxNotionalValue": "1000000"})
        return row

    async def position_risk(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        s = self._sym(ctx.params, False)
        v3 = "/v3/" in ctx.path
        syms = [s] if s else list(self.entries)
        return [self._pos_row(acct, x, acct.pos(x), v3) for x in syms if not v3 or acct.pos(x).amt != 0]

    def _asset_row(self, acct: FutAccount) -> dict[str, Any]:
        upnl, avail = self._upnl(acct), self._available(acct)
        im = self._pos_margin(acct) + self._order_margin(acct)
        return {"asset": "USDT", "walletBalance": f"{acct.wallet:.8f}", "unrealizedProfit": f"{upnl:.8f}",
                "marginBalance": f"{acct.wallet + upnl:.8f}", "maintMargin": "0", "initialMargin": f"{im:.8f}",
                "positionInitialMargin": f"{self._pos_margin(acct):.8f}", "openOrderInitialMargin": f"{self._order_margin(acct):.8f}",
                "crossWalletBalance": f"{acct.wallet:.8f}", "crossUnPnl": f"{upnl:.8f}", "availableBalance": f"{avail:.8f}",
                "maxWithdrawAmount": f"{max(D0, avail):.8f}", "marginAvailable": True, "updateTime": now_ms()}

    async def get_account(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        a = self._asset_row(acct)
        v3 = "/v3/" in ctx.path
        return {"totalInitialMargin": a["initialMargin"], "totalMaintMargin": "0", "totalWalletBalance": a["walletBalance"],
                "totalUnrealizedProfit": a["unrealizedProfit"], "totalMarginBalance": a["marginBalance"],
                "totalPositionInitialMargin": a["positionInitialMargin"], "totalOpenOrderInitialMargin": a["openOrderInitialMargin"],
                "totalCrossWalletBalance": a["walletBalance"], "totalCrossUnPnl": a["unrealizedProfit"],
                "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"], "canTrade": True,
                "assets": [a], "positions": [self._pos_row(acct, s, p, v3) for s, p in acct.positions.items() if p.amt != 0]}

    async def get_balance(self, ctx: RequestContext) -> Any:
        a = self._asset_row(self.account(ctx.api_key))
        return [{"accountAlias": "SgsR", "asset": "USDT", "balance": a["walletBalance"], "crossWalletBalance": a["walletBalance"],
                 "crossUnPnl": a["unrealizedProfit"], "availableBalance": a["availableBalance"],
                 "maxWithdrawAmount": a["maxWithdrawAmount"], "marginAvailable": True, "updateTime": a["updateTime"]}]

    async def leverage_bracket(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params, False)
        brackets = [{"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0.0},
                    {"bracket": 2, "initialLeverage": 50, "notionalCap": 1000000, "notionalFloor": 50000, "maintMarginRatio": 0.01, "cum": 300.0}]
        return [{"symbol": x, "notionalCoef": 1.0, "brackets": brackets} for x in ([s] if s else self.entries)]

    async def set_leverage(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params)
        assert s is not None
        raw = mandatory(ctx.params, "leverage")
        if not raw.isdigit() or not 1 <= int(raw) <= 125:
            raise ApiError(-4028, f"Leverage {raw} is not valid")
        self.account(ctx.api_key).leverage[s] = int(raw)
        return {"leverage": int(raw), "maxNotionalValue": "1000000", "symbol": s}

    async def set_margin_type(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params)
        assert s is not None
        mt = mandatory(ctx.params, "marginType").upper()
        cur = self.account(ctx.api_key).margin_type.get(s, "CROSSED")
        if mt == cur:
            raise ApiError(-4046, "No need to change margin type.")
        self.account(ctx.api_key).margin_type[s] = mt
        return {"code": 200, "msg": "success"}

    async def get_dual(self, ctx: RequestContext) -> Any:
        return {"dualSidePosition": self.dual_side}

    async def set_dual(self, ctx: RequestContext) -> Any:
        want = mandatory(ctx.params, "dualSidePosition").lower() == "true"
        if want == self.dual_side:
            raise ApiError(-4059, "No need to change position side.")
        if self.open_orders(ctx.api_key):
            raise ApiError(-4067, "Position side cannot be changed if there exists open orders.")
        if self.positions(ctx.api_key):
            raise ApiError(-4068, "Position side cannot be changed if there exists position.")
        self.dual_side = want
        return {"code": 200, "msg": "success"}

    async def _order_event(self, o: FutOrder, x: str, trade: dict[str, Any] | None = None) -> None:
        t = self.host.auth.server_time()
        await self._push(o.api_key, {"e": "ORDER_TRADE_UPDATE", "E": t, "T": t, "o": {
            "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type, "f": o.time_in_force,
            "q": self._q(o.symbol, o.orig_qty), "p": self._p(o.symbol, o.price), "ap": self._p(o.symbol, o.avg), "sp": "0",
            "x": x, "X": o.status, "i": o.order_id, "l": trade["qty"] if trade else "0", "z": self._q(o.symbol, o.executed),
            "L": trade["price"] if trade else "0", "N": "USDT", "n": trade["commission"] if trade else "0", "T": t,
            "t": trade["id"] if trade else 0, "b": "0", "a": "0", "m": bool(trade and trade["maker"]), "R": o.reduce_only,
            "wt": "CONTRACT_PRICE", "ot": o.orig_type, "ps": "BOTH", "cp": o.close_position,
            "rp": trade["realizedPnl"] if trade else "0", "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}})

    async def _account_event(self, acct: FutAccount, symbol: str) -> None:
        t = self.host.auth.server_time()
        p = acct.pos(symbol)
        await self._push(acct.api_key, {"e": "ACCOUNT_UPDATE", "E": t, "T": t, "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": f"{acct.wallet:.8f}", "cw": f"{acct.wallet:.8f}", "bc": "0"}],
            "P": [{"s": symbol, "pa": self._q(symbol, p.amt), "ep": f"{p.entry:.8f}", "bep": f"{p.entry:.8f}",
                   "cr": f"{p.realized:.8f}", "up": f"{p.amt * (self._mark(symbol) - p.entry):.8f}", "mt": "cross",
                   "iw": "0", "ps": "BOTH", "ma": "USDT"}]}})
