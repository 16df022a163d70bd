"""One request/reply channel over a ZeroMQ DEALER: a command out, the reply with its id back.

Owns ``Requester``: the daemon uses one to talk to its engine's command ROUTER, every console
one to talk to the daemon's control ROUTER. Each request carries a unique id (pid and a random
part, so consoles on two machines never collide) and a wall-clock deadline; the reply with that
id resolves its waiter, a reply nobody waits for any more is dropped, and a malformed one is
counted and dropped. ``IMMEDIATE`` keeps a request from being queued for a peer that is not
there (it is retried until the deadline instead), and ``reset()`` drops everything queued for a
peer that stopped answering, so its successor never runs a stale command.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from engine.wire import commands as engine_wire

log = logging.getLogger(__name__)

Secure = Callable[[zmq.Socket[Any]], None]


class Requester:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoint: str,
        *,
        name: str,
        secure: Secure | None = None,
    ) -> None:
        self._ctx = ctx
        self.endpoint = endpoint
        self.name = name  # for the log: "engine", "daemon"
        self._secure = secure
        self._sock: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid()}.{secrets.token_hex(3)}-"
        self.bad_replies = 0
        self._closed = True

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue a request for a peer that is not there
        if self._secure is not None:
            self._secure(sock)
        sock.connect(self.endpoint)
        self._sock = sock
        self._closed = False
        self._reader = asyncio.get_running_loop().create_task(
            self._read(sock), name=f"replies-{self.name}"
        )

    def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)  # the waiter sees "no reply", never a stray CancelledError
        self._pending.clear()

    def reset(self) -> None:
        """Drop every request still queued for a peer that stopped answering; open afresh."""
        was_open = not self._closed
        self.close()
        if was_open:
            self.open()

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                payload = await sock.recv()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            try:
                m = engine_wire.unpack(payload)
                rid = m.get("id")
                if type(rid) is not str:
                    raise engine_wire.CommandError("reply has no 'id'")
            except engine_wire.CommandError as exc:
                self.bad_replies += 1
                log.warning("dropped malformed reply from the %s: %s", self.name, exc)
                continue
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(m)
            # a reply nobody waits for answers a request that already timed out: drop it

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    async def request(
        self,
        cmd: str,
        symbol: str | None,
        timeout_s: float,
        *,
        deadline_ns: int | None = None,
        **extra: Any,
    ) -> tuple[dict[str, Any] | None, float]:
        """Send one request, wait ≤ ``timeout_s`` for the reply map with its id; (None, ms)
        when none came. ``deadline_ns`` (default: now + timeout) travels with the request: a
        peer that gets it later refuses it as expired."""
        if self._sock is None:
            return None, 0.0
        cmd_id = self.new_id()
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        m: dict[str, Any] = {"id": cmd_id, "cmd": cmd, **extra}
        if symbol is not None:
            m["symbol"] = symbol
        m["deadline_ns"] = (
            deadline_ns if deadline_ns is not None else time.time_ns() + int(timeout_s * 1e9)
        )
        payload = engine_wire.pack(m)
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        reply: dict[str, Any] | None = None
        try:
            while True:  # IMMEDIATE: Again while the peer (re)binds; retry until the deadline
                sock = self._sock
                if sock is None:
                    raise TimeoutError
                try:
                    await sock.send(payload, zmq.NOBLOCK)
                    break
                except zmq.Again:
                    if time.perf_counter() >= deadline:
                        raise TimeoutError from None
                    await asyncio.sleep(0.02)
            reply = await asyncio.wait_for(fut, max(0.0, deadline - time.perf_counter()))
        except (TimeoutError, zmq.ZMQError):
            reply = None
        finally:
            self._pending.pop(cmd_id, None)
        return reply, (time.perf_counter() - t0) * 1000.0
