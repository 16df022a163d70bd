"""What the bridge decodes and where it goes: the model's interface (``StateSink``), the engine's
topics and the model method each one feeds, the topics a snapshot carries, and the decoders that
turn a bad frame into ``BadMessage`` (counted and dropped by ``console.bridge.Bridge``).
A pair's fast state (``view:SYM``, the panes in view) is ``view_message``'s: a ``PairStateMsg``
whose symbol is the topic's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from engine.wire import commands as engine_wire
from engine.wire.schema import (
    DecisionMsg,
    FillMsg,
    Message,
    NoticeMsg,
    OrderMsg,
    PairStateMsg,
    PortfolioMsg,
    ReconcileMsg,
    SchemaError,
    SnapshotMsg,
)
from feed import wire as feed_wire


class StateSink(Protocol):
    """The part of ConsoleModel the bridge feeds."""

    def apply_pair(self, msg: PairStateMsg) -> None: ...

    def apply_portfolio(self, msg: PortfolioMsg) -> None: ...

    def apply_decision(self, msg: DecisionMsg) -> None: ...

    def apply_order(self, msg: OrderMsg) -> None: ...

    def apply_fill(self, msg: FillMsg) -> None: ...

    def apply_notice(self, msg: NoticeMsg) -> None: ...

    def apply_feed_status(self, m: dict[str, Any]) -> None: ...

    def apply_heartbeat(self, kind: str, pid: int | None, phase: str = "", venue: Any = None) -> None: ...

    def apply_snapshot(self, msg: SnapshotMsg) -> None: ...

    def apply_reconcile(self, msg: ReconcileMsg | None) -> None: ...

    def set_child(self, name: str, **fields: Any) -> None: ...

    def add_event(self, text: str, level: str = "info") -> None: ...


class BadMessage(ValueError):
    """A message the bridge cannot use; counted and dropped."""


# Engine topic -> (message type, sequence key, StateSink method); heartbeats are handled apart.
ENGINE_TOPICS: dict[bytes, tuple[type[Message], str, str]] = {
    engine_wire.TOPIC_PAIR: (PairStateMsg, "engine:pair", "apply_pair"),
    engine_wire.TOPIC_PORTFOLIO: (PortfolioMsg, "engine:portfolio", "apply_portfolio"),
    engine_wire.TOPIC_DECISION: (DecisionMsg, "engine:decision", "apply_decision"),
    engine_wire.TOPIC_ORDER: (OrderMsg, "engine:order", "apply_order"),
    engine_wire.TOPIC_FILL: (FillMsg, "engine:fill", "apply_fill"),
    engine_wire.TOPIC_EVENT: (NoticeMsg, "engine:event", "apply_notice"),
    engine_wire.TOPIC_RECONCILE: (ReconcileMsg, "engine:reconcile", "apply_reconcile"),
}
# Topics whose state a snapshot carries (its ``seq`` name -> the bridge's sequence key): a live
# message at or below the snapshot's number is dropped. Orders are not in a snapshot, so an
# order message is never dropped; heartbeats are never held.
SNAPSHOT_TOPICS = {
    t.decode(): ENGINE_TOPICS[t][1]
    for t in (
        engine_wire.TOPIC_PAIR,
        engine_wire.TOPIC_PORTFOLIO,
        engine_wire.TOPIC_DECISION,
        engine_wire.TOPIC_FILL,
        engine_wire.TOPIC_EVENT,
        engine_wire.TOPIC_RECONCILE,
    )
}
Held = tuple[str, Any, Callable[[Any], None]]  # (sequence key, decoded message, model method)


def decode_engine(payload: bytes) -> dict[str, Any]:
    try:
        return engine_wire.unpack(payload)
    except engine_wire.CommandError as exc:
        raise BadMessage(str(exc)) from None


def decode_feed(payload: bytes) -> dict[str, Any]:
    try:
        return feed_wire.decode_map(payload)
    except feed_wire.WireError as exc:
        raise BadMessage(str(exc)) from None


def view_message(topic: bytes, m: dict[str, Any]) -> PairStateMsg:
    """A ``view:SYM`` message: a pair state whose symbol is the topic's."""
    try:
        msg = PairStateMsg.from_wire(m)
    except SchemaError as exc:
        raise BadMessage(f"{topic[:40]!r}: {exc}") from None
    if topic[len(engine_wire.TOPIC_VIEW):] != msg.symbol.encode():
        raise BadMessage(f"{topic[:40]!r}: carries {msg.symbol[:40]!r}")
    return msg
