"""The feed's history socket: a ROUTER that serves closed candles and source info, and its client.

Server side (``HistoryServer``): answers ``{v, op: "history", symbol, timeframe_s, limit}`` with
``{v, ok: true, symbol, timeframe_s, candles}`` and ``{v, op: "info"}`` with
``{v, ok: true, source, symbols}``; ``{v, op: "subscribe", symbols, tiers?}`` and
``{v, op: "unsubscribe", symbols}`` (a safe list reloaded) with ``{v, ok: true, symbols}``, every
symbol streamed after it; anything wrong gets ``{v, ok: false, error}`` (one line), and
what cannot be answered at all is counted and dropped. Each request runs in its own task, so a
slow exchange REST call never holds up another client.

Client side (``request_history``, ``request_info``): synchronous, one fresh DEALER per call with
a poll timeout, for the engine's start-up. They raise ``TimeoutError`` when the feed does not
answer in time and ``feed.wire.WireError`` (``HistoryRefused`` for ``ok: false``) otherwise.
See docs/wire.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import zmq
import zmq.asyncio

from feed.errors import FeedError, HistoryRefused
from feed.private import redact_text
from feed.source import Source
from feed.wire import WireError, decode_map, encode_map

log = logging.getLogger(__name__)

MAX_LIMIT = 5_000
MAX_TIMEFRAME_S = 7 * 86_400
MAX_REQUEST_BYTES = 64 * 1024
MAX_IN_FLIGHT = 32
HISTORY_TIMEOUT_S = 30.0  # a source that takes longer gets an error reply, not silence


def _error(message: str) -> bytes:
    """An error reply; ccxt's messages carry the request URL, whose credentials stay here."""
    return encode_map({"ok": False, "error": redact_text(message)})


def _plain_candles(candles: list[list[float]]) -> list[list[float]]:
    """Plain int/float rows (a source may hand back numpy scalars msgpack cannot pack)."""
    return [
        [int(c[0]), float(c[1]), float(c[2]), float(c[3]), float(c[4]), float(c[5])]
        for c in candles
    ]


class HistoryServer:
    """Binds the ROUTER endpoint and answers history/info requests from ``source``."""

    def __init__(
        self, endpoint: str, source: Source, ctx: zmq.asyncio.Context | None = None
    ) -> None:
        self.endpoint = endpoint
        self.source = source
        self._own_ctx = ctx is None
        self._ctx = ctx if ctx is not None else zmq.asyncio.Context()
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            if self._own_ctx:
                self._ctx.term()
            raise
        self._sock = sock
        # Sync view of the same socket: non-blocking drains and sends without a Future each.
        self._sync: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)
        self._tasks: set[asyncio.Task[None]] = set()
        self.served = 0
        self.bad_requests = 0  # malformed: answered with ok:false, or dropped if unanswerable
        self.dropped = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        sock = self._sock
        while not stop.is_set():
            if not await sock.poll(100, zmq.POLLIN):
                continue
            while True:  # drain what arrived: one await per batch, not per request
                try:
                    frames = self._sync.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._dispatch(frames)

    def _dispatch(self, frames: list[bytes]) -> None:
        # ROUTER frames: [identity, (b"" from REQ,) payload]; the envelope goes back unchanged.
        if len(frames) < 2 or len(frames) > 4:
            self.bad_requests += 1
            self.dropped += 1
            log.warning("history: dropped a request with %d frames", len(frames))
            return
        envelope, payload = frames[:-1], frames[-1]
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self._reply(envelope, _error(f"busy: {MAX_IN_FLIGHT} requests in flight, retry"))
            return
        task = asyncio.get_running_loop().create_task(self._answer(envelope, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, envelope: list[bytes], payload: bytes) -> None:
        try:
            reply = await self._handle(payload)
        except Exception as exc:  # a bug or a source failure: answer it, never kill the server
            log.exception("history request failed")
            reply = _error(f"internal error: {type(exc).__name__}: {exc}")
        self._reply(envelope, reply)

    def _reply(self, envelope: list[bytes], reply: bytes) -> None:
        try:
            self._sync.send_multipart([*envelope, reply], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or queue full: nothing else to do
            self.dropped += 1
            log.debug("history: reply dropped: %s", exc)

    def _bad(self, message: str) -> bytes:
        self.bad_requests += 1
        log.warning("history: bad request: %s", message)
        return _error(message)

    async def _handle(self, payload: bytes) -> bytes:
        if len(payload) > MAX_REQUEST_BYTES:
            return self._bad(f"request of {len(payload)} bytes exceeds {MAX_REQUEST_BYTES}")
        try:
            req = decode_map(payload)
        except WireError as exc:
            return self._bad(f"malformed request: {exc}")
        op = req.get("op")
        if op == "info":
            self.served += 1
            return encode_map(
                {"ok": True, "source": self.source.name, "symbols": list(self.source.symbols)}
            )
        if op == "subscribe":
            return await self._subscribe(req)
        if op == "unsubscribe":
            return await self._unsubscribe(req)
        if op != "history":
            return self._bad(f"unknown op {op!r} (known: history, info, subscribe, unsubscribe)")
        symbol, tf, limit = req.get("symbol"), req.get("timeframe_s"), req.get("limit")
        if type(symbol) is not str:
            return self._bad(f"field 'symbol': expected a string, got {symbol!r}")
        if type(tf) is not int or not 1 <= tf <= MAX_TIMEFRAME_S:
            return self._bad(f"field 'timeframe_s': expected an integer 1..{MAX_TIMEFRAME_S}, got {tf!r}")
        if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
            return self._bad(f"field 'limit': expected an integer 1..{MAX_LIMIT}, got {limit!r}")
        if symbol not in self.source.symbols:
            return self._bad(
                f"unknown symbol {symbol!r} (this feed streams: {', '.join(self.source.symbols)})"
            )
        try:
            candles = await asyncio.wait_for(
                self.source.history(symbol, tf, limit), HISTORY_TIMEOUT_S
            )
        except TimeoutError:
            return _error(f"history for {symbol} took longer than {HISTORY_TIMEOUT_S:g}s")
        except (FeedError, ValueError, KeyError) as exc:
            return _error(f"history for {symbol} unavailable: {exc}")
        self.served += 1
        return encode_map(
            {"ok": True, "symbol": symbol, "timeframe_s": tf, "candles": _plain_candles(candles)}
        )

    async def _subscribe(self, req: dict[str, Any]) -> bytes:
        """``{op: subscribe, symbols, tiers?}``: stream more symbols on the source's existing
        connection (a safe list reloaded); ``{ok, symbols}`` with every symbol streamed now."""
        symbols, tiers = req.get("symbols"), req.get("tiers") or {}
        if type(symbols) is not list or not symbols or not all(type(s) is str and 0 < len(s) <= 64 for s in symbols):
            return self._bad("field 'symbols': expected a list of symbols")
        if type(tiers) is not dict or not all(type(v) is str for v in tiers.values()):
            return self._bad("field 'tiers': expected a map of symbol to tier")
        add = getattr(self.source, "add_symbols", None)
        new = [s for s in symbols if s not in self.source.symbols]
        if new and add is None:
            return _error(f"the {self.source.name} source cannot add pairs while running (restart the feed)")
        if new:
            try:
                result = add(new, tiers)
                if asyncio.iscoroutine(result):
                    await result
            except (FeedError, ValueError, KeyError) as exc:
                return _error(f"cannot stream {', '.join(new)}: {exc}")
        self.served += 1
        return encode_map({"ok": True, "symbols": list(self.source.symbols)})

    async def _unsubscribe(self, req: dict[str, Any]) -> bytes:
        """``{op: unsubscribe, symbols}``: stop streaming symbols the engine let go (a safe list
        reloaded); ``{ok, symbols}`` with every symbol streamed now. A symbol not streamed is
        no error; a source that cannot drop pairs says so."""
        symbols = req.get("symbols")
        if type(symbols) is not list or not symbols or not all(type(s) is str and 0 < len(s) <= 64 for s in symbols):
            return self._bad("field 'symbols': expected a list of symbols")
        drop = getattr(self.source, "remove_symbols", None)
        gone = [s for s in symbols if s in self.source.symbols]
        if gone and drop is None:
            return _error(f"the {self.source.name} source cannot drop pairs while running")
        if gone:
            result = drop(gone)
            if asyncio.iscoroutine(result):
                await result
        self.served += 1
        return encode_map({"ok": True, "symbols": list(self.source.symbols)})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()


# -- client -----------------------------------------------------------------------------------


def _request(endpoint: str, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoint)
            sock.send(encode_map(request))
            if not sock.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN):
                raise TimeoutError(f"feed at {endpoint} did not answer {request.get('op')} "
                                   f"within {timeout_s:g}s")
            frames = sock.recv_multipart()
        finally:
            sock.close(linger=0)
    finally:
        ctx.term()
    reply = decode_map(frames[-1])
    if reply.get("ok") is not True:
        error = reply.get("error")
        raise HistoryRefused(str(error) if error else "feed refused the request without a reason")
    return reply


def _check_candles(candles: Any, symbol: str) -> list[list[float]]:
    if type(candles) is not list:
        raise WireError(f"history for {symbol}: 'candles' is not a list")
    prev_ts = -1
    for row in candles:
        if type(row) is not list or len(row) != 6:
            raise WireError(f"history for {symbol}: a candle is not [ts, o, h, l, c, v]: {row!r}")
        ts = row[0]
        if type(ts) is not int or ts <= prev_ts:
            raise WireError(f"history for {symbol}: candle time {ts!r} is not increasing")
        prev_ts = ts
        for x in row[1:]:
            if type(x) not in (int, float) or not math.isfinite(x):
                raise WireError(f"history for {symbol}: non-finite value in candle at {ts}")
        _, o, h, lo, c, v = row
        if min(o, h, lo, c) <= 0 or v < 0 or lo > min(o, c) or h < max(o, c):
            raise WireError(f"history for {symbol}: inconsistent candle at {ts}: {row!r}")
    return candles


def request_history(
    endpoint: str, symbol: str, timeframe_s: int, limit: int, timeout_s: float = 5.0
) -> list[list[float]]:
    """Closed candles ``[[ts_ms, o, h, l, c, v], ...]`` oldest first, from the feed at ``endpoint``.

    Raises TimeoutError if the feed does not answer within ``timeout_s``, HistoryRefused (a
    WireError) if it answers ``ok: false``, WireError if the reply is malformed.
    """
    reply = _request(
        endpoint,
        {"op": "history", "symbol": symbol, "timeframe_s": timeframe_s, "limit": limit},
        timeout_s,
    )
    if reply.get("symbol") != symbol or reply.get("timeframe_s") != timeframe_s:
        raise WireError(f"history reply is for {reply.get('symbol')!r}/{reply.get('timeframe_s')!r}, "
                        f"asked {symbol!r}/{timeframe_s!r}")
    return _check_candles(reply.get("candles"), symbol)


def request_subscribe(
    endpoint: str, symbols: list[str], tiers: dict[str, str] | None = None, timeout_s: float = 5.0
) -> list[str]:
    """Ask the feed at ``endpoint`` to stream ``symbols`` too; every symbol it streams now."""
    reply = _request(endpoint, {"op": "subscribe", "symbols": symbols, "tiers": tiers or {}}, timeout_s)
    got = reply.get("symbols")
    if type(got) is not list:
        raise WireError("subscribe reply lacks 'symbols'")
    return [str(s) for s in got]


def request_unsubscribe(endpoint: str, symbols: list[str], timeout_s: float = 5.0) -> list[str]:
    """Ask the feed at ``endpoint`` to stop streaming ``symbols``; every symbol it streams now."""
    reply = _request(endpoint, {"op": "unsubscribe", "symbols": symbols}, timeout_s)
    got = reply.get("symbols")
    if type(got) is not list:
        raise WireError("unsubscribe reply lacks 'symbols'")
    return [str(s) for s in got]


def request_info(endpoint: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """``{v, ok, source, symbols}`` from the feed at ``endpoint`` (same errors as request_history)."""
    reply = _request(endpoint, {"op": "info"}, timeout_s)
    if type(reply.get("source")) is not str or type(reply.get("symbols")) is not list:
        raise WireError("info reply lacks 'source' or 'symbols'")
    return reply
