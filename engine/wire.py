"""Engine wire formats: what the engine publishes (PUB) and the commands it answers (ROUTER).

Published messages are ``[topic, msgpack(map)]``; every map carries ``v`` (wire version) and
``seq`` (per-topic sequence number). Topics:

- ``pair``       one pair's state (price, indicators, signal, decision, position, mode)
- ``portfolio``  capital, equity, PnL, exposure and correlation gauges, correlation matrix
- ``decision``   one risk decision with every check's result (approved or rejected)
- ``fill``       one execution
- ``_hb``        heartbeat

Commands travel DEALER -> ROUTER as one frame ``msgpack({"v", "id", "cmd", "symbol"?})``
and every command gets exactly one ack ``msgpack({"v", "id", "cmd", "ok", "message", ...})``.
See docs/wire.md for every field.
"""

from __future__ import annotations

from typing import Any

import msgpack

ENGINE_WIRE_VERSION = 1

TOPIC_PAIR = b"pair"
TOPIC_PORTFOLIO = b"portfolio"
TOPIC_DECISION = b"decision"
TOPIC_FILL = b"fill"
TOPIC_HEARTBEAT = b"_hb"

COMMANDS = ("ping", "pause", "resume", "reduce", "flatten", "flatten_all", "kill", "rearm")
COMMANDS_WITH_SYMBOL = ("pause", "resume", "reduce", "flatten")


class CommandError(ValueError):
    """A command message that cannot be understood; answered with ok=False when it has an id."""


_packer = msgpack.Packer(use_bin_type=True)


def pack(m: dict[str, Any]) -> bytes:
    return _packer.pack({"v": ENGINE_WIRE_VERSION, **m})


def unpack(payload: bytes) -> dict[str, Any]:
    try:
        m = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:
        raise CommandError(f"undecodable payload: {type(exc).__name__}") from None
    if type(m) is not dict or m.get("v") != ENGINE_WIRE_VERSION:
        raise CommandError("not a versioned map")
    return m


def make_command(cmd_id: str, cmd: str, symbol: str | None = None, deadline_ns: int | None = None) -> bytes:
    """``deadline_ns`` (wall clock): a command that reaches the engine later is refused as
    expired, so a command the console gave up on never runs late (a stalled engine that
    resumes). ``kill`` ignores it: halting late is always safe."""
    m: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
    if symbol is not None:
        m["symbol"] = symbol
    if deadline_ns is not None:
        m["deadline_ns"] = deadline_ns
    return pack(m)


def parse_command(payload: bytes) -> dict[str, Any]:
    """Validate one command map; raise CommandError naming what is wrong."""
    m = unpack(payload)
    if type(m.get("id")) is not str or not m["id"]:
        raise CommandError("command has no 'id'")
    cmd = m.get("cmd")
    if cmd not in COMMANDS:
        raise CommandError(f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})")
    if cmd in COMMANDS_WITH_SYMBOL and type(m.get("symbol")) is not str:
        raise CommandError(f"command {cmd!r} needs a 'symbol'")
    if "deadline_ns" in m and type(m["deadline_ns"]) is not int:
        raise CommandError("'deadline_ns' must be an integer (ns since the epoch)")
    return m


def make_ack(cmd_id: str, cmd: str, ok: bool, message: str, **extra: Any) -> bytes:
    return pack({"id": cmd_id, "cmd": cmd, "ok": ok, "message": message, **extra})
