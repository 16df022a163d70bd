"""Attaching to an engine: its replies over the DEALER, and asking for its snapshot.

Owns ``decode_ack`` and ``to_ack`` (an ack frame, and the ``Ack`` the app shows), ``decode_reply`` (a reply frame is an ack when it has ``ok``, else a ``SnapshotMsg``) and
``fetch_snapshot``: ask the engine for its ``snapshot`` until it answers, each attempt with the
command timeout (a warming engine answers between history requests), for at most
``SNAPSHOT_RETRY_FOR_S``. The backend hands what it gets to the bridge, which applies it and
then the live stream after it (docs/wire.md, "Snapshot").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from console.model import Ack
from engine.wire import commands as engine_wire
from engine.wire import liveness
from engine.wire.schema import AckMsg, SchemaError, SnapshotMsg

# A warming engine answers between history requests: keep asking this long.
SNAPSHOT_RETRY_FOR_S = liveness.START_GRACE_S
SNAPSHOT_RETRY_PAUSE_S = 0.2

Reply = AckMsg | SnapshotMsg


def decode_ack(payload: bytes) -> AckMsg:
    """One ack frame from the engine; ``CommandError``/``SchemaError`` when it is not one."""
    return AckMsg.from_wire(engine_wire.unpack(payload))


def to_ack(msg: AckMsg, cmd: str, elapsed_ms: float) -> Ack:
    """The engine's ack as the app shows it: its modes and halted flag apply at once."""
    return Ack(
        cmd,
        msg.ok,
        msg.message,
        elapsed_ms,
        fallback=msg.fallback,
        modes=msg.modes,
        halted=msg.halted,
        flat=list(msg.flat),
        noop=msg.noop,
    )


# (cmd, symbol, timeout_s) -> (the reply with the command's id or None, elapsed ms)
Request = Callable[[str, str | None, float], Awaitable[tuple[Reply | None, float]]]


def decode_reply(payload: bytes) -> Reply:
    """One reply frame: an ack (it has ``ok``) or a snapshot; ``CommandError``/``SchemaError``
    when it is neither."""
    return reply_from_map(engine_wire.unpack(payload))


def reply_from_map(m: dict[str, Any]) -> Reply:
    """A decoded reply map as its message: an ack when it has ``ok``, else a snapshot;
    ``SchemaError`` when it fits neither."""
    return AckMsg.from_wire(m) if engine_wire.is_ack(m) else SnapshotMsg.from_wire(m)


async def fetch_snapshot(
    request: Request,
    timeout_s: float,
    retry_for_s: float = SNAPSHOT_RETRY_FOR_S,
    pause_s: float = SNAPSHOT_RETRY_PAUSE_S,
) -> tuple[SnapshotMsg | None, str]:
    """The engine's snapshot, or None and why not: a refusal other than "expired" (an engine
    that has no snapshot) at once, no answer after ``retry_for_s``."""
    t0 = time.monotonic()
    why = "no answer"
    while True:
        reply, _ = await request(engine_wire.SNAPSHOT, None, timeout_s)
        if isinstance(reply, SnapshotMsg):
            return reply, ""
        if reply is not None:
            why = reply.message
            if not why.startswith("expired"):
                return None, why
        if time.monotonic() - t0 >= retry_for_s:
            return None, why
        await asyncio.sleep(pause_s)


def summary(snap: SnapshotMsg) -> str:
    return (
        f"{len(snap.pairs)} pairs, {len(snap.decisions)} decisions, {len(snap.fills)} fills, "
        f"{len(snap.events)} events"
    )


log = logging.getLogger(__name__)


class SnapshotSync:
    """Keep a model in step with the engine: at each new engine (the bridge heard its first
    message) hold its live stream, ask for its snapshot through ``_request``, apply it, then the
    stream after it. Used by the daemon (its own model) and by every attached console."""

    bridge: Any
    command_timeout_s: float
    synced: bool
    _stopped: bool
    _snapshot_task: asyncio.Task[None] | None
    _request_map: Callable[..., Awaitable[tuple[dict[str, Any] | None, float]]]
    _event: Callable[[str, str], None]

    async def _request(
        self, cmd: str, symbol: str | None, timeout_s: float
    ) -> tuple[Reply | None, float]:
        """One command through ``_request_map`` (the engine's DEALER, or the daemon's), its
        reply decoded; a malformed one is logged and counts as no reply."""
        m, elapsed = await self._request_map(cmd, symbol, timeout_s)
        if m is None:
            return None, elapsed
        try:
            return reply_from_map(m), elapsed
        except SchemaError as exc:
            log.warning("dropped malformed %s reply: %s", cmd, exc)
            return None, elapsed

    def _on_new_engine(self, pid: int) -> None:
        """The bridge heard a new engine (its first beat, or any message before one; pid 0 when
        unknown yet): hold its stream and ask for its snapshot."""
        if self._stopped or self.bridge is None:
            return
        self.synced = False
        self.bridge.hold()
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()  # a previous engine's: superseded
        self._snapshot_task = asyncio.get_running_loop().create_task(
            self._sync(pid), name="snapshot"
        )

    async def _sync(self, pid: int) -> None:
        """Engine ``pid``'s snapshot to the bridge; without one, the held stream as it is."""
        snap, why = await fetch_snapshot(self._request, self.command_timeout_s)
        if self._stopped or self.bridge is None:
            return
        if snap is None:
            self.bridge.release()
            self._event(f"no snapshot from the engine ({why}): live stream only", "warning")
        elif self.bridge.apply_snapshot(snap):
            log.info("snapshot of engine %d: %s", pid, summary(snap))
        self.synced = True
