"""Futures algo orders, the dead man's switch and the listenKey user stream of the local exchange.

A mixin of ``binance_exchange_futures.FuturesVenue`` (split out to keep files short): the
algo-order API (``/fapi/v1/algoOrder``, ``openAlgoOrders``, ``algoOpenOrders``, ``allAlgoOrders``)
with its triggers on the moving price, ``countdownCancelAll`` timers, and the listenKey endpoints
with their websocket stream (``ALGO_UPDATE`` events; ``ORDER_TRADE_UPDATE``/``ACCOUNT_UPDATE`` are
built by the venue and sent through ``_push`` here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass
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
    decimal_param,
    mandatory,
    now_ms,
)
from binance_server import Connection

if TYPE_CHECKING:
    from binance_exchange import RequestContext
    from binance_exchange_futures import FutAccount, FuturesVenue

    _Base = FuturesVenue
else:
    _Base = object

ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")


@dataclass(eq=False)
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    trigger: Decimal
    price: Decimal
    reduce_only: bool
    close_position: bool
    working_type: str
    time_in_force: str
    api_key: str
    create_time: int
    update_time: int = 0
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"


class FuturesAlgoAndStreams(_Base):
    """Algo orders, countdownCancelAll and listenKey streams (state lives on FuturesVenue)."""

    # ------------------------------------------------------------------ algo orders

    def algo_view(self, a: AlgoOrder) -> dict[str, Any]:
        v = {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL", "orderType": a.order_type,
             "symbol": a.symbol, "side": a.side, "positionSide": "BOTH", "timeInForce": a.time_in_force,
             "quantity": self._q(a.symbol, a.quantity), "algoStatus": a.status, "triggerPrice": self._p(a.symbol, a.trigger),
             "price": self._p(a.symbol, a.price), "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
             "workingType": a.working_type, "priceMatch": "NONE", "closePosition": a.close_position, "priceProtect": False,
             "reduceOnly": a.reduce_only, "createTime": a.create_time, "updateTime": a.update_time or a.create_time,
             "triggerTime": a.trigger_time, "goodTillDate": 0}
        if a.actual_order_id is not None:
            v["actualOrderId"] = str(a.actual_order_id)
        return v

    async def new_algo(self, ctx: RequestContext) -> Any:
        p = ctx.params
        acct = self.account(ctx.api_key)
        s = self._sym(p)
        assert s is not None
        if mandatory(p, "algoType").upper() != "CONDITIONAL":
            raise ApiError(-1130, "Invalid data sent for a parameter.")
        otype = mandatory(p, "type").upper()
        if otype not in ALGO_TYPES:
            raise ApiError(-1116, "Invalid orderType.")
        side = mandatory(p, "side").upper()
        self._position_side(p)
        trigger = decimal_param(p, "triggerPrice", required=True) or D0
        close_position = p.get("closePosition", "false").lower() == "true"
        qty = decimal_param(p, "quantity", required=not close_position) or D0
        price = decimal_param(p, "price", required=otype in ("STOP", "TAKE_PROFIT")) or D0
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        cid = p.get("clientAlgoId") or secrets.token_hex(11)
        check_client_id(cid, "clientAlgoId")
        if qty:
            self._check_qty_price(s, "MARKET", qty, D0, True)
        if any(a.is_open and a.client_algo_id == cid for a in acct.algos.values()):
            raise ApiError(-4116, "ClientOrderId is duplicated.")
        last = self._mark(s)
        down = (otype in ("STOP_MARKET", "STOP")) == (side == "SELL")
        if (down and last <= trigger) or (not down and last >= trigger):
            raise ApiError(-2021, "Order would immediately trigger.")
        t = self.host.auth.server_time()
        a = AlgoOrder(next(self._algo_ids), cid, s, side, otype, qty, trigger, price, reduce_only, close_position,
                      p.get("workingType", "CONTRACT_PRICE"), p.get("timeInForce", "GTC"), ctx.api_key, t, t)
        acct.algos[a.algo_id] = a
        self.host.stats.orders.append(OrderRecord("futures-algo", s, a.algo_id, cid, side, otype, self._q(s, qty), ctx.api_key))
        await self._algo_event(a)
        return self.algo_view(a)

    async def _trigger(self, acct: FutAccount, a: AlgoOrder) -> None:
        pos = acct.pos(a.symbol)
        a.trigger_time = a.update_time = self.host.auth.server_time()
        a.status = "TRIGGERED"
        qty = abs(pos.amt) if a.close_position else a.quantity
        reduces = pos.amt != 0 and (pos.amt > 0) != (a.side == "BUY")
        if (a.reduce_only or a.close_position) and (not reduces or qty <= 0):
            a.status = "EXPIRED"
            await self._algo_event(a)
            return
        from binance_exchange_futures import FutOrder

        otype = "MARKET" if a.order_type.endswith("_MARKET") else "LIMIT"
        o = FutOrder(next(self._order_ids), a.symbol, a.client_algo_id, a.side, otype, a.order_type, a.time_in_force,
                     qty, a.price, a.reduce_only or a.close_position, a.api_key, a.trigger_time, a.trigger_time)
        o.close_position = a.close_position
        acct.orders[o.order_id] = o
        a.actual_order_id = o.order_id
        await self._algo_event(a)
        await self._order_event(o, "NEW")
        await self._work(o, first=True)
        if not o.is_open:
            a.status = "FINISHED"
            await self._algo_event(a)

    def _find_algo(self, acct: FutAccount, params: dict[str, str], unknown: tuple[int, str]) -> AlgoOrder:
        aid, cid = params.get("algoId"), params.get("clientAlgoId")
        if not aid and not cid:
            raise ApiError(-1102, "Either algoId or clientAlgoId must be sent.")
        if aid:
            a = acct.algos.get(int(aid)) if aid.isdigit() else None
        else:
            same = [x for x in acct.algos.values() if x.client_algo_id == cid]
            a = max(same, key=lambda x: x.algo_id) if same else None
        if a is None:
            raise ApiError(*unknown)
        return a

    async def query_algo(self, ctx: RequestContext) -> Any:
        return self.algo_view(self._find_algo(self.account(ctx.api_key), ctx.params, (-2013, MSG_NO_ORDER)))

    async def cancel_algo(self, ctx: RequestContext) -> Any:
        a = self._find_algo(self.account(ctx.api_key), ctx.params, (-2011, MSG_UNKNOWN_ORDER))
        if not a.is_open:
            raise ApiError(-2011, MSG_UNKNOWN_ORDER)
        a.status, a.update_time = "CANCELED", self.host.auth.server_time()
        await self._algo_event(a)
        return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}

    async def get_open_algos(self, ctx: RequestContext) -> Any:
        return [self.algo_view(a) for a in self.open_algo_orders(ctx.api_key, self._sym(ctx.params, False))]

    async def cancel_all_algos(self, ctx: RequestContext) -> Any:
        for a in self.open_algo_orders(ctx.api_key, self._sym(ctx.params)):
            a.status, a.update_time = "CANCELED", self.host.auth.server_time()
            await self._algo_event(a)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    async def all_algos(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params)
        return [self.algo_view(a) for a in self.account(ctx.api_key).algos.values() if a.symbol == s]

    # ------------------------------------------------------------------ dead man's switch

    async def countdown(self, ctx: RequestContext) -> Any:
        s = self._sym(ctx.params)
        assert s is not None
        raw = mandatory(ctx.params, "countdownTime")
        if not raw.isdigit():
            raise ApiError(-1100, "Illegal characters found in parameter 'countdownTime'; legal range is '^[0-9]{1,20}$'.")
        key = (ctx.api_key, s)
        old = self.countdowns.pop(key, None)
        if old is not None:
            old.cancel()
        if int(raw) > 0:
            self.countdowns[key] = asyncio.get_running_loop().create_task(self._countdown(ctx.api_key, s, int(raw) / 1000.0))
        return {"symbol": s, "countdownTime": raw}

    async def _countdown(self, api_key: str, symbol: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.countdowns.pop((api_key, symbol), None)
        n = 0
        for o in self.open_orders(api_key, symbol):
            await self._finish(o, "CANCELED")
            n += 1
        if self.countdown_cancels_algo:
            for a in self.open_algo_orders(api_key, symbol):
                a.status, a.update_time = "CANCELED", self.host.auth.server_time()
                await self._algo_event(a)
                n += 1
        self.countdown_fired.append((api_key, symbol, n))

    async def stop_timers(self) -> None:
        for t in self.countdowns.values():
            t.cancel()
        self.countdowns.clear()

    # ------------------------------------------------------------------ user data (listenKey)

    async def listen_key_new(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        if acct.listen_key is None:
            acct.listen_key = secrets.token_urlsafe(48)[:64]
            self.listen_keys[acct.listen_key] = ctx.api_key
        return {"listenKey": acct.listen_key}

    async def listen_key_keep(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        if acct.listen_key is None:
            raise ApiError(-1125, "This listenKey does not exist.")
        return {"listenKey": acct.listen_key}

    async def listen_key_close(self, ctx: RequestContext) -> Any:
        acct = self.account(ctx.api_key)
        if acct.listen_key is not None:
            self.listen_keys.pop(acct.listen_key, None)
            acct.listen_key = None
            await self.close_streams(ctx.api_key, abrupt=False)
        return {}

    async def expire_listen_key(self, api_key: str | None = None) -> None:
        """Binance's 60-minute expiry: a ``listenKeyExpired`` event, then the stream closes."""
        acct = self.account(api_key or self.host.api_key)
        key = acct.listen_key
        if key is None:
            return
        await self._push(acct.api_key, {"e": "listenKeyExpired", "E": now_ms(), "listenKey": key})
        self.listen_keys.pop(key, None)
        acct.listen_key = None
        await self.close_streams(acct.api_key, abrupt=False)

    async def user_stream_handler(self, request: web.Request, listen_key: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, timeout=2.0)
        await ws.prepare(request)
        conn = Connection(ws=ws, transport=request.transport, combined=False, path=request.path)
        self.streams[conn] = self.listen_keys[listen_key]
        self.host.stats.counts["WS futures user stream"] += 1
        try:
            await self.host.serve_frames(conn)
        finally:
            self.streams.pop(conn, None)
        return ws

    def subscribers(self, api_key: str | None = None) -> int:
        return sum(1 for k in self.streams.values() if api_key is None or k == api_key)

    async def close_streams(self, api_key: str | None = None, abrupt: bool = True) -> int:
        victims = [c for c, k in self.streams.items() if api_key is None or k == api_key]
        for c in victims:
            self.streams.pop(c, None)
            if abrupt and c.transport is not None:
                c.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await c.ws.close(code=1001, message=b"going away")
        return len(victims)

    async def _push(self, api_key: str, event: dict[str, Any]) -> None:
        if self.muted:
            self.events_dropped += 1
            return
        text = json.dumps(event, separators=(",", ":"))
        for conn, key in list(self.streams.items()):
            if key == api_key:
                await conn.send(text)

    async def _algo_event(self, a: AlgoOrder) -> None:
        t = self.host.auth.server_time()
        await self._push(a.api_key, {"e": "ALGO_UPDATE", "T": t, "E": t, "o": {
            "caid": a.client_algo_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.order_type, "s": a.symbol, "S": a.side,
            "ps": "BOTH", "f": a.time_in_force, "q": self._q(a.symbol, a.quantity), "X": a.status,
            "ai": str(a.actual_order_id or ""), "ap": "0", "aq": "0", "act": "0", "tp": self._p(a.symbol, a.trigger),
            "p": self._p(a.symbol, a.price), "V": "EXPIRE_MAKER", "wt": a.working_type, "pm": "NONE", "cp": a.close_position,
            "pP": False, "R": a.reduce_only, "tt": a.trigger_time, "gtd": 0}})

