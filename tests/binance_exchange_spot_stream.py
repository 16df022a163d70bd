"""Spot user data over the websocket API (``/ws-api/v3``) for the local Binance exchange.

A mixin of ``binance_exchange_spot.SpotVenue`` (split out to keep files short): the websocket-API
session (``userDataStream.subscribe.signature``, ``userDataStream.unsubscribe``,
``session.subscriptions``, ``ping``, ``time``), events wrapped ``{"subscriptionId": n, "event":
{...}}`` (``executionReport``, ``outboundAccountPosition``, ``eventStreamTerminated``), and the
faults on it (closed, muted, malformed, terminated).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from binance_exchange_core import D0, ApiError, fmt8
from binance_server import Connection

if TYPE_CHECKING:
    from binance_exchange_spot import SpotOrder, SpotVenue

    _Base = SpotVenue
else:
    _Base = object


class SpotUserStream(_Base):
    """The websocket API's user-data side (state lives on SpotVenue: ``streams``, ``muted``...)."""

    # ------------------------------------------------------------------ user data (websocket API)

    def execution_report(self, o: SpotOrder, x: str, trade: dict[str, Any] | None = None) -> dict[str, Any]:
        t = self.host.auth.server_time()
        return {
            "e": "executionReport", "E": t, "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type,
            "f": o.time_in_force or "GTC", "q": fmt8(o.orig_qty), "p": fmt8(o.price), "P": fmt8(o.stop_price),
            "F": fmt8(D0), "g": o.order_list_id, "C": "" if x != "CANCELED" else o.client_order_id, "x": x,
            "X": o.status, "r": "NONE", "i": o.order_id,
            "l": trade["qty"] if trade else fmt8(D0), "z": fmt8(o.executed), "L": trade["price"] if trade else fmt8(D0),
            "n": trade["commission"] if trade else "0", "N": trade["commissionAsset"] if trade else None,
            "T": trade["time"] if trade else o.update_time, "t": trade["id"] if trade else -1, "v": 0, "I": 0,
            "w": o.is_open and o.working, "m": bool(trade and trade["isMaker"]), "M": False, "O": o.time,
            "Z": fmt8(o.cum_quote), "Y": trade["quoteQty"] if trade else fmt8(D0), "Q": fmt8(o.orig_quote_qty),
            "W": o.working_time if o.working else -1, "V": "EXPIRE_MAKER",
        }

    def account_position(self, api_key: str, assets: tuple[str, ...]) -> dict[str, Any]:
        acct = self.account(api_key)
        t = self.host.auth.server_time()
        return {"e": "outboundAccountPosition", "E": t, "u": t,
                "B": [{"a": a, "f": fmt8(acct.bal(a)[0]), "l": fmt8(acct.bal(a)[1])} for a in dict.fromkeys(assets)]}

    async def _report(self, o: SpotOrder, x: str, trade: dict[str, Any] | None = None, assets: tuple[str, ...] = ()) -> None:
        entry = self.entries[o.symbol]
        await self.push(o.api_key, self.execution_report(o, x, trade))
        await self.push(o.api_key, self.account_position(o.api_key, assets or (entry["baseAsset"], entry["quoteAsset"])))

    async def push(self, api_key: str, event: dict[str, Any]) -> None:
        if self.muted:
            self.events_dropped += 1
            return
        for conn, subs in list(self.streams.items()):
            for sid, key in list(subs.items()):
                if key == api_key:
                    await conn.send(json.dumps({"subscriptionId": sid, "event": event}, separators=(",", ":")))
                    self.events_sent += 1

    async def send_raw(self, text: str, api_key: str | None = None) -> int:
        """Send ``text`` as is (e.g. a malformed frame) to the user-data connections of ``api_key``."""
        conns = [c for c, subs in self.streams.items() if subs and (api_key is None or api_key in subs.values())]
        for c in conns:
            await c.send(text)
        return len(conns)

    async def terminate_subscriptions(self, api_key: str | None = None) -> int:
        """``eventStreamTerminated`` to each subscription of ``api_key`` (None: all), which ends it;
        the connection stays open (Binance does this when the session's subscription ends)."""
        n = 0
        for conn, subs in list(self.streams.items()):
            for sid, key in list(subs.items()):
                if api_key is None or key == api_key:
                    event = {"e": "eventStreamTerminated", "E": self.host.auth.server_time()}
                    await conn.send(json.dumps({"subscriptionId": sid, "event": event}, separators=(",", ":")))
                    del subs[sid]
                    n += 1
        return n

    def subscribers(self, api_key: str | None = None) -> int:
        return sum(1 for subs in self.streams.values() for k in subs.values() if api_key is None or k == api_key)

    async def close_streams(self, api_key: str | None = None, abrupt: bool = True) -> int:
        """Close every websocket-API connection carrying ``api_key``'s user data (None: all)."""
        victims = [c for c, subs in self.streams.items() if api_key is None or api_key in subs.values()]
        for c in victims:
            self.streams.pop(c, None)
            if abrupt and c.transport is not None:
                c.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await c.ws.close(code=1001, message=b"going away")
        return len(victims)

    async def ws_api_handler(self, request: web.Request) -> web.StreamResponse:
        if self.host.paused:
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=False, timeout=2.0)
        await ws.prepare(request)
        conn = Connection(ws=ws, transport=request.transport, combined=False, path=request.path)
        self.streams[conn] = {}
        self.host.stats.counts["WS /ws-api/v3"] += 1
        try:
            await self.host.serve_frames(conn, self._ws_api_request)
        finally:
            self.streams.pop(conn, None)
        return ws

    async def _ws_api_request(self, conn: Connection, text: str) -> None:
        rate_limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 2}]
        try:
            req = json.loads(text)
        except ValueError:
            await conn.send(json.dumps({"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON."}}))
            return
        rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
        self.host.stats.counts[f"WS {method}"] += 1
        try:
            if method == "userDataStream.subscribe.signature":
                acct = self.host.auth.verify_ws(params)
                sid = next(self._sub_ids)
                if conn in self.streams:
                    self.streams[conn][sid] = acct.api_key
                result: Any = {"subscriptionId": sid}
            elif method == "userDataStream.unsubscribe":
                subs = self.streams.get(conn, {})
                if "subscriptionId" in params:
                    subs.pop(int(params["subscriptionId"]), None)
                else:
                    subs.clear()
                result = {}
            elif method == "session.subscriptions":
                result = [{"subscriptionId": sid} for sid in sorted(self.streams.get(conn, {}))]
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.host.auth.server_time()}
            else:
                raise ApiError(-1020, "This operation is not supported.")
        except ApiError as e:
            await conn.send(json.dumps({"id": rid, "status": e.status, "error": {"code": e.code, "msg": e.msg}, "rateLimits": rate_limits}))
            return
        await conn.send(json.dumps({"id": rid, "status": 200, "result": result, "rateLimits": rate_limits}))
