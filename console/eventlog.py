"""The lines of the console's event log, and the ones it recovers from the engine's book.

Owns ``EventLine`` (one operator-facing line), the event levels, the identity of a line that
states an engine fact (a fill, a journaled notice: ``fill_key``, ``notice_key``) so the same
fact is never shown twice, and ``book_lines``: the fills and events of a ``SnapshotMsg`` as
lines marked ``[book]``, oldest first. ``console.model`` keeps the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.wire.schema import FillMsg, NoticeMsg, SnapshotMsg

EVENT_LEVELS = ("info", "success", "warning", "error")
BOOK_MARK = "[book] "  # a line read back from the book, not seen live


@dataclass(slots=True)
class EventLine:
    """One operator-facing line of the event log: acks, fills, child restarts, errors."""

    at: float  # wall clock, epoch seconds
    level: str  # info | success | warning | error
    text: str
    key: str = ""  # an engine fact's identity (fill id, journaled notice): never shown twice


def level_of(level: str) -> str:
    return level if level in EVENT_LEVELS else "info"


def fill_text(msg: FillMsg) -> str:
    return (
        f"fill {msg.symbol} {msg.side} {msg.qty:.6g} @ {msg.price:,.8g} ({msg.reason or 'order'})"
    )


def fill_key(msg: FillMsg) -> str:
    return f"fill:{msg.fill_id}"


def notice_key(msg: NoticeMsg) -> str:
    """A journaled notice is published with the ts, kind and message the book keeps."""
    return f"event:{msg.ts}:{msg.kind}:{msg.message}"


def book_lines(msg: SnapshotMsg, shown: set[str]) -> list[EventLine]:
    """The snapshot's fills and events as marked lines at their own time, oldest first (a fill
    before an event of the same ms), leaving out the facts whose key is in ``shown``."""
    lines = [
        EventLine(f.ts / 1000.0, "info", BOOK_MARK + fill_text(f), fill_key(f)) for f in msg.fills
    ]
    lines += [
        EventLine(n.ts / 1000.0, level_of(n.level), BOOK_MARK + n.message, notice_key(n))
        for n in msg.events
    ]
    lines.sort(key=lambda e: e.at)
    return [e for e in lines if e.key not in shown]


def recovered_text(msg: SnapshotMsg) -> str:
    """What an attach (or the engine's restart) brought back: the open positions and the
    book's history now in the decision and event logs."""
    held = sum(1 for p in msg.pairs if p.position is not None and p.position.qty != 0.0)
    return (
        f"attached: {held} open position{'s' * (held != 1)}, {len(msg.decisions)} decisions, "
        f"{len(msg.fills)} fills, {len(msg.events)} events recovered from the book"
    )
