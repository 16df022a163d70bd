"""The daemon's control socket: what a console's command does.

Owns ``DaemonControl``, the part of the daemon (``service.py``) that serves the control ROUTER:
each request is parsed (a malformed one is counted and, when it has an id, answered
``ok: false``) and handled in its own task, so a slow kill never holds up a ``status``.
``status`` and ``stop`` are answered here (``stop`` with ``flatten`` only once the book is
flat), ``kill`` runs the kill switch, and every other command is relayed to the engine with
the daemon's own deadline (at most the command timeout, never later than the console's), the
console's id put back on the reply. Every frame but the last of a request is its envelope and
goes back with the reply (docs/wire.md, "Daemon").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from console.daemon import wire as dwire
from console.model import Ack, ConsoleModel
from engine.wire import commands as engine_wire
from engine.wire.schema import AckMsg

log = logging.getLogger("console.daemon.service")

FLATTEN_WAIT_S = 10.0  # "flatten, then stop": how long the positions get to close
SILENT_FEED = ("down", "stale", "reconnecting", "error", "unknown")


class DaemonControl:
    # the Daemon's
    model: ConsoleModel
    db_path: Path
    mode: str
    source: str
    remote: str
    gateway: Any
    notifier: Any
    bridge: Any
    counters: dict[str, int]
    started_at: float
    stopping: bool
    command_timeout_s: float
    hung_after_s: float
    cfg_text: str
    _ctl: zmq.asyncio.Socket | None
    _spawn: Callable[[Coroutine[Any, Any, Any], str], Any]
    _request_map: Callable[..., Any]
    _send: Callable[..., Any]
    _reset_dealer: Callable[[], None]
    _event: Callable[..., None]
    kill: Callable[[], Coroutine[Any, Any, Ack]]
    reload: Callable[..., Coroutine[Any, Any, dict[str, Any]]]
    config_version: int
    config_digest: str
    notify: Callable[[str, str, str], None]
    request_stop: Callable[[str], None]
    child_msg: Callable[[str], dwire.ChildMsg]

    async def _serve_ctl(self) -> None:
        assert self._ctl is not None
        while True:
            try:
                frames = await self._ctl.recv_multipart()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            self.counters["requests"] += 1
            envelope, payload = frames[:-1], frames[-1]
            try:
                m = dwire.parse_request(payload)
            except engine_wire.CommandError as exc:
                self.counters["bad_requests"] += 1
                log.warning("bad request dropped: %s", exc)
                rid = _id_of(payload)
                if rid is not None:
                    await self._reply(envelope, AckMsg(rid, "?", False, str(exc)).to_wire())
                continue
            self._spawn(self._handle(envelope, m), f"ctl-{m['cmd']}")

    async def _reply(self, envelope: list[bytes], m: dict[str, Any]) -> None:
        if self._ctl is None or not envelope:
            return
        with contextlib.suppress(zmq.ZMQError):
            await self._ctl.send_multipart([*envelope, engine_wire.pack_map(m)], zmq.NOBLOCK)

    async def _handle(self, envelope: list[bytes], m: dict[str, Any]) -> None:
        cmd, rid = m["cmd"], m["id"]
        try:
            if cmd == dwire.STATUS:
                reply = self.status(rid).to_wire()
            elif cmd == dwire.STOP:
                reply = await self._stop_command(rid, m.get("flatten", False))
            elif self.stopping:
                reply = AckMsg(rid, cmd, False, "the daemon is stopping").to_wire()
            elif cmd in (dwire.RELOAD, dwire.RELOAD_PREVIEW):
                reply = await self.reload(f"console {rid}"[:64], preview=cmd == dwire.RELOAD_PREVIEW,
                                          confirm=m.get("confirm") or "")  # fmt: skip
                reply["id"] = rid
            elif cmd == dwire.KILL:
                log.warning("kill switch from a console (%s)", rid)
                ack = await self.kill()
                reply = _ack_wire(rid, ack)
                self.notify("kill", f"KILL switch: {ack.message}", "error")
            else:
                extra = {k: m[k] for k in dwire.RELAYED_FIELDS if k in m}
                reply = await self._relay(rid, cmd, m.get("symbol"), m.get("deadline_ns"), extra)
        except Exception as exc:  # a bug must cost one reply, not the control socket
            log.exception("%s failed", cmd)
            reply = AckMsg(rid, cmd, False, f"daemon error: {type(exc).__name__}").to_wire()
        await self._reply(envelope, reply)
        if cmd == dwire.STOP and reply.get("ok"):
            self.request_stop("a console asked")

    async def _relay(
        self,
        rid: str,
        cmd: str,
        symbol: str | None,
        deadline_ns: int | None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        timeout = self.command_timeout_s
        if deadline_ns is not None:
            timeout = min(timeout, max(0.0, (deadline_ns - time.time_ns()) / 1e9))
        # the engine gets our deadline: a command we gave up on must never run late
        m, _ = await self._request_map(
            cmd, symbol, timeout, time.time_ns() + int(timeout * 1e9), **(extra or {})
        )
        where = f"{cmd}{f' {symbol}' if symbol else ''}" + "".join(
            f" {k}={v}" for k, v in (extra or {}).items()
        )
        if m is None:
            if cmd != engine_wire.SNAPSHOT:
                self._reset_dealer()
            log.warning("%s: engine did not answer in %.1f s", where, timeout)
            return AckMsg(rid, cmd, False, f"engine did not answer in {timeout:.1f} s").to_wire()
        if cmd != engine_wire.SNAPSHOT and cmd != "ping":
            log.info("%s (%s) -> ok=%s %s", where, rid, m.get("ok"), m.get("message", ""))
        m["id"] = rid
        return m

    async def _stop_command(self, rid: str, flatten: bool) -> dict[str, Any]:
        """``stop``: an ack, then the orderly stop; with ``flatten``, only once flat."""
        if self.stopping:
            return AckMsg(rid, dwire.STOP, True, "already stopping").to_wire()
        if flatten and self.model.open_positions():
            ok, why = await self._flatten_everything()
            if not ok:
                self._event(f"stop refused: {why}", "error")
                return AckMsg(rid, dwire.STOP, False, f"{why}: not stopped").to_wire()
        left = self.model.open_positions()
        note = f" with {len(left)} open position(s): {', '.join(left)}" if left else " (flat)"
        self._event(f"stop requested by a console: stopping feed and engine{note}", "warning")
        return AckMsg(rid, dwire.STOP, True, f"stopping{note}").to_wire()

    async def _flatten_everything(self) -> tuple[bool, str]:
        ack, _ = await self._send("flatten_all", None, self.command_timeout_s)
        if ack is None:  # a hung engine: the kill switch flattens from the book itself
            kill = await self.kill()
            if not kill.ok:
                return False, f"flatten failed: {kill.message}"
        elif not ack.ok:
            return False, f"flatten refused: {ack.message}"
        deadline = time.monotonic() + FLATTEN_WAIT_S
        while self.model.open_positions() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = self.model.open_positions()
        if left:
            return (
                False,
                f"{len(left)} position(s) still open after {FLATTEN_WAIT_S:.0f} s ({', '.join(left)})",
            )
        return True, ""

    # -- status --------------------------------------------------------------------------
    def status(self, rid: str = "") -> dwire.StatusMsg:
        m = self.model
        now = m.clock()
        problems: list[str] = []
        children = [self.child_msg(n) for n in m.children]
        for c in children:
            if c.state != "running":
                problems.append(f"{c.name} {c.state}")
            elif c.beat_age_s is None or c.beat_age_s > self.hung_after_s:
                problems.append(f"{c.name} silent")
        feed_state = str(m.feed_status.get("state", "unknown"))
        if feed_state in SILENT_FEED:
            problems.append(f"feed {feed_state}")
        pairs = []
        for sym, pv in m.pairs.items():
            badge = pv.badge(now)
            if badge in ("STALE", "HALTED"):
                problems.append(f"{sym} {badge}")
            pos = pv.state.position
            pairs.append(
                dwire.PairStatusMsg(
                    symbol=sym,
                    mode=badge,
                    side=pos.side if pos is not None and pos.qty else "",
                    qty=pos.qty if pos is not None else 0.0,
                    unrealised=pos.unrealised if pos is not None else 0.0,
                )
            )
        counters = dict(self.counters)
        if self.bridge is not None:
            counters["bad_messages"] = self.bridge.bad_messages
        if self.notifier is not None:
            for k, v in self.notifier.status().items():
                if type(v) is int:
                    counters[f"notify_{k}"] = v
        if self.gateway is not None:
            counters["remote_accepted"] = self.gateway.accepted
            counters["remote_refused"] = self.gateway.refused
            counters["remote_failed_handshakes"] = self.gateway.failed_handshakes
        return dwire.StatusMsg(
            id=rid,
            pid=os.getpid(),
            book=str(self.db_path),
            mode=self.mode,
            source=self.source,
            uptime_s=time.monotonic() - self.started_at,
            health="degraded" if problems else "healthy",
            problems=problems,
            children=children,
            feed=feed_state,
            pairs=pairs,
            equity=m.portfolio.equity if m.portfolio is not None else None,
            halted=m.halted,
            stopping=self.stopping,
            remote=self.remote,
            counters=counters,
            safe_list=self.cfg_text.splitlines(),
            config_version=self.config_version,
            config_digest=self.config_digest,
        )


def _ack_wire(rid: str, ack: Ack) -> dict[str, Any]:
    return AckMsg(
        rid,
        ack.cmd,
        ack.ok,
        ack.message,
        modes=dict(ack.modes),
        halted=ack.halted,
        fallback=ack.fallback,
        flat=list(ack.flat),
    ).to_wire()


def _id_of(payload: bytes) -> str | None:
    with contextlib.suppress(engine_wire.CommandError):
        rid = engine_wire.unpack(payload).get("id")
        if type(rid) is str and 0 < len(rid) <= 128:
            return rid
    return None
