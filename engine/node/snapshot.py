"""The snapshot a console gets when it attaches: the engine's state and the book's recent past.

Owns ``build_snapshot``: every pair's state (closes included) and the portfolio, built by the
publisher's own builders so they are field for field what the ``pair`` and ``portfolio``
topics carry; the book's latest decisions, fills and operator events (oldest first); and the
publisher's sequence number of every topic at that moment, so a console drops the live
messages the snapshot already holds and counts a gap when one is missing after it. The node
builds it inside one loop turn: nothing is published while it is built (docs/wire.md,
"Snapshot").

Also owns the level an operator event read back from the book is shown with
(``event_level``): the book keeps an event's kind and message, not its level.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from engine.journal.store import Store
from engine.node.publisher import StatePublisher, fill_msg, reconcile_msg
from engine.node.tick_in import TopicStats
from engine.wire.schema import MAX_STR, NoticeMsg, SnapshotMsg

if TYPE_CHECKING:
    from engine.core.trader import TradingCore

SNAPSHOT_HISTORY = 200  # decisions, fills and events read back from the book, each

# The level the core publishes each journaled kind with (engine/core/commands.py ``_notice``;
# the kill fallback journals "kill-fallback"): the same line live and from the book.
_EVENT_LEVELS = {"kill": "error", "kill-fallback": "error", "exit_blocked": "warning"}


def event_level(kind: str) -> str:
    """``error`` for a kill (by the engine or the console's fallback), ``warning`` for a blocked
    exit, ``info`` for anything else (a re-arm)."""
    return _EVENT_LEVELS.get(kind, "info")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_STR else text[: MAX_STR - 1] + "…"


def build_snapshot(
    cmd_id: str,
    core: TradingCore,
    publisher: StatePublisher,
    stats: dict[str, TopicStats],
    store: Store,
    limit: int = SNAPSHOT_HISTORY,
) -> SnapshotMsg:
    """One ``SnapshotMsg`` answering the command ``cmd_id``. The pairs are built on copies of
    their transport stats, so the sparkline's closes ride along without changing when the
    live stream sends them next."""
    now = core.clock.monotonic()
    pairs = []
    for sym, ps in core.pairs.items():
        st = replace(stats.get(sym) or TopicStats(), closes_sent_at=-1e9, closes_sent_for=-1)
        pairs.append(publisher.pair_state(core, ps, st, now))
    decisions = store.recent_decisions(limit=limit)
    decisions.reverse()  # oldest first
    events = store.recent_events(limit)
    events.reverse()
    return SnapshotMsg(
        id=cmd_id,
        portfolio=publisher.portfolio(core),
        pairs=pairs,
        decisions=decisions,
        fills=[fill_msg(f) for f in store.recent_fills(limit)],
        events=[NoticeMsg(e["ts"], _cut(e["kind"]), event_level(e["kind"]), _cut(e["message"])) for e in events],
        seq=publisher.sequence_numbers(),
        ts=time.time_ns(),
        pid=os.getpid(),
        reconcile=reconcile_msg(core.reconciler.report) if core.reconciler.report is not None else None,
    )
