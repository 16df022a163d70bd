"""What the operator set and a restart must keep, besides the pairs' modes: the global stop of
new entries, each HALTED pair's mode before its halt, and the trading day's start equity.

Owns ``OperatorState``, a mixin of ``Store`` (it needs the store's ``_write`` and ``_read``;
schema step 6, docs/storage.md). Every write commits before it returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from engine.core.models import PairMode
from engine.journal.schema import StoreError


class OperatorState:
    # the Store's: one write transaction / one query, every sqlite error as a one-line StoreError
    _write: Callable[[str], AbstractContextManager[Any]]
    _read: Callable[..., list[tuple[Any, ...]]]

    # ---- new entries: stopped on every pair until the operator resumes them ----------------

    def set_entries(self, stopped: bool, reason: str, ts: int) -> None:
        """Stop (or resume) new entries on every pair; ``reason`` says who or what stopped them."""
        with self._write("set_entries") as c:
            c.execute(
                "INSERT INTO entries (id, stopped, reason, ts) VALUES (1, ?, ?, ?) ON CONFLICT (id) "
                "DO UPDATE SET stopped = excluded.stopped, reason = excluded.reason, ts = excluded.ts",
                (int(bool(stopped)), str(reason)[:200], int(ts)),
            )

    def load_entries(self) -> tuple[bool, str, int] | None:
        """(stopped, reason, ts) as last set; None when never set (entries allowed)."""
        rows = self._read("load_entries", "SELECT stopped, reason, ts FROM entries WHERE id = 1")
        return (bool(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    # ---- the modes a re-arm restores ----------------------------------------------------------

    def modes_before_halt(self) -> dict[str, PairMode]:
        """Each HALTED pair's mode before its halt (``set_modes`` keeps it); a HALTED pair not
        listed (halted before schema 6) had no mode recorded."""
        rows = self._read(
            "modes_before_halt",
            "SELECT symbol, before_halt FROM pair_modes WHERE mode = 'HALTED' AND before_halt IS NOT NULL",
        )
        return {sym: PairMode(mode) for sym, mode in rows}

    # ---- the trading day ------------------------------------------------------------------

    def record_day_start(self, start_ts: int, equity: float, ts: int) -> None:
        """The trading day that began at ``start_ts`` (ms) and the equity at its first mark."""
        if isinstance(equity, bool) or not isinstance(equity, int | float) or not math.isfinite(equity):
            raise StoreError(f"day start equity must be a finite number, got {equity!r}")
        with self._write("record_day_start") as c:
            c.execute(
                "INSERT INTO trading_day (id, start_ts, equity, marked_ts) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET start_ts = excluded.start_ts, equity = excluded.equity, "
                "marked_ts = excluded.marked_ts",
                (int(start_ts), float(equity), int(ts)),
            )

    def load_day_start(self) -> tuple[int, float] | None:
        """(start_ts, equity) of the last trading day marked; None in a new book."""
        rows = self._read("load_day_start", "SELECT start_ts, equity FROM trading_day WHERE id = 1")
        return (int(rows[0][0]), float(rows[0][1])) if rows else None
