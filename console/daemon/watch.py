"""What the daemon tells the operator while nobody watches: the notifier's events.

Owns ``BookWatch``, the part of the daemon (``service.py``) that turns what it sees into
notifications (``notify.py`` sends them, filtered by the safe list's ``notify.events``): a
kill, pairs newly HALTED or STALE (one message a second for all of them), a child restarting or
left dead (from ``set_child``), the feed down (the notifier's timer decides when that is worth
a message), fills as the bridge applies them (a snapshot's fills are history: not announced)
and a live engine's exchange banning this IP (HTTP 418) and the end of the ban.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from console.daemon.control import SILENT_FEED
from console.model import ConsoleModel

log = logging.getLogger("console.daemon.service")


class BookWatch:
    # the Daemon's
    model: ConsoleModel
    notifier: Any
    bridge: Any
    on_event: Callable[[str, str, str], None] | None
    _badges: dict[str, str]
    _banned: bool = False  # a live engine's exchange has banned this IP (HTTP 418)

    def notify(self, kind: str, text: str, level: str) -> None:
        """One message for the operator's phone (the notifier filters by the safe list)."""
        if self.on_event is not None:
            self.on_event(kind, text, level)
        if self.notifier is not None:
            try:
                self.notifier.event(kind, text)
            except Exception:  # a notification must never cost trading anything
                log.exception("notifier.event failed")

    def _watch_fills(self) -> None:
        """Fills as the bridge applies them (a snapshot's are history: not announced)."""
        apply = self.model.apply_fill

        def apply_and_notify(msg: Any) -> None:
            apply(msg)
            self.notify(
                "fill",
                f"fill {msg.symbol} {msg.side} {msg.qty:g} @ {msg.price:,.2f}"
                + (f" ({msg.reason})" if msg.reason else ""),
                "info",
            )

        self.model.apply_fill = apply_and_notify  # type: ignore[method-assign]

    def _watch_book(self) -> None:
        """Each second: pairs newly HALTED or STALE (one message for all of them), the feed."""
        now = self.model.clock()
        fresh: dict[str, list[str]] = {"HALTED": [], "STALE": []}
        for sym, pv in self.model.pairs.items():
            badge = pv.badge(now)
            if badge in fresh and self._badges.get(sym) != badge and sym in self._badges:
                fresh[badge].append(sym)
            self._badges[sym] = badge
        for badge, syms in fresh.items():
            if syms:
                self.notify(badge.lower(), f"{', '.join(syms)} {badge}", "warning")
        v = self.model.venue
        banned = v is not None and v.banned_until_ms > self.model.wall() * 1000
        if banned != self._banned:
            self._banned = banned
            if banned:
                until = time.strftime("%H:%M:%S", time.gmtime(v.banned_until_ms / 1000))
                self.notify("banned", f"Binance banned this IP until {until} UTC: no new orders", "error")
            else:
                self.notify("banned", "Binance ban over: orders resume", "info")
        if self.notifier is not None and self.bridge is not None:
            state = str(self.model.feed_status.get("state", "unknown"))
            feed = self.model.children["feed"]
            up = feed.state == "running" and state not in SILENT_FEED
            self.notifier.feed_state(up, f"feed {feed.state}, {state}")
