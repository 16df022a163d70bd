"""The daemon's side of the wire: its control commands, its topics and their messages.

A console talks to one socket, the daemon's control ROUTER (``daemon_ctl``), with the engine's
command framing (``engine.wire.commands``: one msgpack map with ``v``, ``id``, ``cmd`` and
optional ``symbol`` and ``deadline_ns``; exactly one reply per command). The daemon answers
``status`` (``StatusMsg``) and ``stop`` (an ack; ``flatten: true`` closes every position first)
itself, runs ``kill`` through its kill switch (which needs no engine), and relays every other
engine command (``pause`` … ``snapshot``) to the engine, with the console's id on the reply.
Every frame but the last of a request is its routing envelope, sent back with the reply, so
the control socket works behind a ROUTER/DEALER relay (the remote gateway).

The daemon's PUB (``daemon_pub``) carries ``_child`` (``ChildMsg``: a child's state, on every
change and each second for every child) and ``devent`` (``NoticeMsg``: the daemon's notices:
a kill-switch fallback, a stop on the way). docs/wire.md, "Daemon".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.wire import commands as engine_wire
from engine.wire.codec import INT64, Message

TOPIC_CHILD = b"_child"
TOPIC_EVENT = b"devent"
TOPIC_CONFIG = b"config"  # a reload's outcome (console/daemon/reload.py)

STATUS = "status"
STOP = "stop"
RELOAD = "reload"  # the safe list re-read, validated and applied (``confirm``: the previewed digest)
RELOAD_PREVIEW = "reload_preview"  # the same, stopping at the diff and what each change will do
DAEMON_COMMANDS = (STATUS, STOP, RELOAD_PREVIEW)
KILL = "kill"
# relayed to the engine as they are (kill excepted: the daemon's kill switch runs it)
RELAYED = tuple(c for c in engine_wire.COMMANDS if c != KILL)
# a relayed command's own fields, passed on to the engine as they are (it checks them)
RELAYED_FIELDS = ("choice", "who")
COMMANDS = (*engine_wire.COMMANDS, *DAEMON_COMMANDS)


@dataclass(slots=True)
class ChildMsg(Message):
    """Topic ``_child``: one supervised child (``feed``/``engine``) as the daemon sees it."""

    name: str
    state: str  # starting | running | restarting | dead | held | stopped
    pid: int | None = None
    restarts: int = 0
    next_restart_s: float | None = None
    beat_age_s: float | None = None
    message: str = ""
    seq: int = 0


@dataclass(slots=True)
class PairStatusMsg(Message):
    symbol: str
    mode: str
    side: str = ""  # "long" | "short" | "" (flat)
    qty: float = 0.0
    unrealised: float = 0.0


@dataclass(slots=True)
class StatusMsg(Message):
    """The answer to ``status``: what ``multipar-console status`` prints and a console shows
    on attach before the first ``_child`` message."""

    id: str
    pid: int
    book: str
    mode: str
    source: str
    uptime_s: float
    health: str  # healthy | degraded
    problems: list[str] = field(default_factory=list)
    children: list[ChildMsg] = field(default_factory=list)
    feed: str = ""  # the feed's own state line (live, reconnecting, …)
    pairs: list[PairStatusMsg] = field(default_factory=list)
    equity: float | None = None
    halted: bool = False
    stopping: bool = False
    remote: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    # the validated text the engine trades on, line by line (a wire string is at most 4,096
    # characters; a safe list of 100 pairs is longer): a console builds its panes from it
    safe_list: list[str] = field(default_factory=list)
    config_version: int = 0  # 1 + the reloads applied in this book (console/daemon/reload.py)
    config_digest: str = ""  # the first 16 hex digits of the safe list's SHA-256


class DaemonCommandError(engine_wire.CommandError):
    pass


def parse_request(payload: bytes) -> dict[str, Any]:
    """One control command; ``CommandError`` naming what is wrong."""
    m = engine_wire.unpack(payload)
    cmd_id = m.get("id")
    if type(cmd_id) is not str or not 0 < len(cmd_id) <= 128:
        raise DaemonCommandError("command has no 'id' (a string of 1-128 characters)")
    cmd = m.get("cmd")
    if type(cmd) is not str or cmd not in COMMANDS:
        raise DaemonCommandError(
            f"unknown command {str(cmd)[:40]!r} (known: {', '.join(COMMANDS)})"
        )
    symbol = m.get("symbol")
    if cmd in engine_wire.COMMANDS_WITH_SYMBOL and (
        type(symbol) is not str or not 0 < len(symbol) <= 64
    ):
        raise DaemonCommandError(f"command {cmd!r} needs a 'symbol'")
    deadline = m.get("deadline_ns")
    if deadline is not None and (type(deadline) is not int or not 0 <= deadline < INT64):
        raise DaemonCommandError("'deadline_ns' must be an integer (ns since the epoch)")
    confirm = m.get("confirm")
    if confirm is not None and (type(confirm) is not str or len(confirm) > 64):
        raise DaemonCommandError("'confirm' must be a digest of at most 64 characters")
    if type(m.get("flatten", False)) is not bool:
        raise DaemonCommandError("'flatten' must be true or false")
    return m


def make_request(
    cmd_id: str,
    cmd: str,
    symbol: str | None = None,
    deadline_ns: int | None = None,
    **extra: Any,
) -> bytes:
    m: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
    if symbol is not None:
        m["symbol"] = symbol
    if deadline_ns is not None:
        m["deadline_ns"] = deadline_ns
    m.update(extra)
    return engine_wire.pack(m)
