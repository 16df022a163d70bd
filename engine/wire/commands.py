"""Engine topics, the msgpack framing, and the operator commands the engine answers.

Published messages are ``[topic, msgpack(map)]``; every map carries ``v`` (wire version) and
``seq`` (per-topic sequence number); their fields are the typed messages of
``engine.wire.schema``. Topics:

- ``pair``       one pair's state (``PairStateMsg``), every pair at most once a second
- ``view:SYM``   the same for one watched pair, up to 10 Hz, only while subscribed
- ``portfolio``  account, gauges and correlation matrix (``PortfolioMsg``)
- ``decision``   one risk decision with every check's result (``DecisionMsg``)
- ``order``      an order's state each time it changes (``OrderMsg``)
- ``fill``       one execution (``FillMsg``)
- ``event``      an operator-visible notice (``NoticeMsg``)
- ``reconcile``  the latest reconciliation with the exchange, live only (``ReconcileMsg``)
- ``_hb``        heartbeat (``HeartbeatMsg``)

Commands travel DEALER -> ROUTER as one frame ``msgpack({"v", "id", "cmd", "symbol"?,
"deadline_ns"?})`` and every command gets exactly one reply, one frame: an ack (``AckMsg``),
or for ``snapshot`` the ``SnapshotMsg`` (an ack with ``ok: false`` when it is refused: a reply
with an ``ok`` key is an ack). See docs/wire.md.
"""

from __future__ import annotations

from typing import Any

import msgpack

from engine.wire.schema import ENGINE_WIRE_VERSION, INT64, MAX_STR, AckMsg, SnapshotMsg

TOPIC_PAIR = b"pair"
TOPIC_PORTFOLIO = b"portfolio"
TOPIC_DECISION = b"decision"
TOPIC_FILL = b"fill"
TOPIC_ORDER = b"order"
TOPIC_EVENT = b"event"
TOPIC_HEARTBEAT = b"_hb"
TOPIC_RECONCILE = b"reconcile"
# ``view:`` + symbol: one pair's state for the consoles that show it, up to 10 times a second,
# published only while some subscriber holds that topic (the engine's PUB is an XPUB and reads the
# subscriptions). ``pair`` carries every pair at most once a second (and at once when its mode,
# position, pending exit or decision changes). Not "pair:…": a subscription is a prefix, and one to
# ``pair`` must not take every pair's fast stream.
TOPIC_VIEW = b"view:"


def view_topic(symbol: str) -> bytes:
    """The topic of ``symbol``'s fast state: ``view:BTC/USDT``."""
    return TOPIC_VIEW + symbol.encode()


# every topic the engine publishes, as named in a snapshot's ``seq`` map
TOPICS = (TOPIC_PAIR, TOPIC_PORTFOLIO, TOPIC_DECISION, TOPIC_ORDER, TOPIC_FILL, TOPIC_EVENT, TOPIC_HEARTBEAT,
          TOPIC_RECONCILE)  # fmt: skip

OPERATOR_COMMANDS = ("ping", "pause", "resume", "reduce", "flatten", "flatten_all", "kill", "rearm", "reconcile",
                     "stop_entries", "resume_entries", "reload")  # fmt: skip
# ``reload`` (``digest``: the 16 hex digits naming the validated text the daemon wrote beside the
# engine's safe list) applies a new safe list pair by pair (engine/node/reload_run.py)
# ``flatten_all`` stops new entries on every pair until ``resume_entries`` (``stop_entries`` alone
# stops them without closing anything); the entries gate is in the ``portfolio`` topic
# ``reconcile`` settles one pair a reconciliation halted: ``choice`` adopt | flatten | keep, ``who``
# (the operator, for the book's record); without a symbol it asks for a fresh reconciliation
RECONCILE_CHOICES = ("adopt", "flatten", "keep")
SNAPSHOT = "snapshot"  # answered with a SnapshotMsg, not an ack; changes nothing
COMMANDS = (*OPERATOR_COMMANDS, SNAPSHOT)
COMMANDS_WITH_SYMBOL = ("pause", "resume", "reduce", "flatten")


class CommandError(ValueError):
    """A command message that cannot be understood; answered with ok=False when it has an id."""


_packer = msgpack.Packer(use_bin_type=True)


def pack(m: dict[str, Any]) -> bytes:
    return _packer.pack({"v": ENGINE_WIRE_VERSION, **m})


def pack_map(m: dict[str, Any]) -> bytes:
    """Pack a map that already carries ``v`` (a schema message's ``to_wire()``)."""
    return _packer.pack(m)


def unpack(payload: bytes) -> dict[str, Any]:
    try:
        m = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:
        raise CommandError(f"undecodable payload: {type(exc).__name__}") from None
    if type(m) is not dict or type(m.get("v")) is not int or m["v"] != ENGINE_WIRE_VERSION:
        raise CommandError("not a versioned map")
    return m


def make_command(cmd_id: str, cmd: str, symbol: str | None = None, deadline_ns: int | None = None,
                 **extra: str) -> bytes:  # fmt: skip
    """``deadline_ns`` (wall clock): a command that reaches the engine later is refused as
    expired, so a command the console gave up on never runs late (a stalled engine that
    resumes). ``kill`` ignores it: halting late is always safe. ``extra``: a command's own
    fields (``reconcile``: ``choice``, ``who``)."""
    m: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
    if symbol is not None:
        m["symbol"] = symbol
    if deadline_ns is not None:
        m["deadline_ns"] = deadline_ns
    m.update({k: v for k, v in extra.items() if v is not None})
    return pack(m)


def parse_command(payload: bytes) -> dict[str, Any]:
    """Validate one command map; raise CommandError naming what is wrong."""
    m = unpack(payload)
    cmd_id = m.get("id")
    if type(cmd_id) is not str or not cmd_id or len(cmd_id) > 128:
        raise CommandError("command has no 'id' (a string of 1-128 characters)")
    cmd = m.get("cmd")
    if type(cmd) is not str or cmd not in COMMANDS:
        raise CommandError(f"unknown command {str(cmd)[:40]!r} (known: {', '.join(COMMANDS)})")
    symbol = m.get("symbol")
    if cmd in COMMANDS_WITH_SYMBOL and (type(symbol) is not str or not 0 < len(symbol) <= 64):
        raise CommandError(f"command {cmd!r} needs a 'symbol'")
    deadline = m.get("deadline_ns")
    if deadline is not None and (type(deadline) is not int or not 0 <= deadline < INT64):
        raise CommandError("'deadline_ns' must be an integer (ns since the epoch)")
    if cmd == "reconcile" and symbol is not None:
        if type(symbol) is not str or not 0 < len(symbol) <= 64:
            raise CommandError("command 'reconcile' has a bad 'symbol'")
        if m.get("choice") not in RECONCILE_CHOICES:
            raise CommandError(f"command 'reconcile' needs a 'choice' ({', '.join(RECONCILE_CHOICES)})")
    if cmd == "reload" and not (type(m.get("digest")) is str and 0 < len(m["digest"]) <= 64):
        raise CommandError("command 'reload' needs a 'digest' (the safe list's version)")
    who = m.get("who")
    if who is not None and (type(who) is not str or len(who) > 128):
        raise CommandError("'who' must be a string of at most 128 characters")
    return m


def make_ack(ack: AckMsg) -> bytes:
    """The ack frame; the message text is cut to the schema's string limit."""
    m = ack.to_wire()
    if len(ack.message) > MAX_STR:
        m["message"] = ack.message[: MAX_STR - 1] + "…"
    return _packer.pack(m)


def make_snapshot(snap: SnapshotMsg) -> bytes:
    """The snapshot reply frame (its lists are bounded by the builder: engine/node/snapshot.py)."""
    return _packer.pack(snap.to_wire())


def is_ack(m: dict[str, Any]) -> bool:
    """A reply map is an ack when it has ``ok`` (a ``SnapshotMsg`` never has)."""
    return "ok" in m
