"""Toasts that never cover the risk gauges.

Owns ``ToastRoom``, a mixin of the app: Textual stacks toasts from the bottom right upwards, as
many as were sent; a burst of acks would climb over the pairs' positions and the exposure and
correlation gauges at the top of the board. Here each new toast first makes room: the oldest
ones are dropped (they stay in the event log, where every ack is written) until the stack fits
over the logs, below the gauges and the pairs. On a screen without them, below the header.
"""

from __future__ import annotations

import textwrap
from typing import Any

from textual.app import App
from textual.notifications import Notification, Notify

TOAST_WIDTH = 60  # Textual's Toast: width 60, max-width 50 %, padding 1 1, border-left, margin-top 1
TOAST_CHROME_ROWS = 3  # margin-top 1 + padding top and bottom
RACK_MARGIN_ROWS = 1  # the rack's margin-bottom (above the footer)


def toast_rows(notification: Notification, screen_width: int) -> int:
    """Rows one toast takes on a screen ``screen_width`` wide (its text wrapped by words)."""
    inner = max(10, min(TOAST_WIDTH, screen_width // 2) - 3)  # padding 2, border 1
    lines = 1 if notification.title else 0
    for text in notification.message.split("\n"):
        lines += max(1, len(textwrap.wrap(text, inner - 1)))  # one column spare: wrap differs
    return lines + TOAST_CHROME_ROWS


class ToastRoom(App[Any]):
    """Drop the oldest toasts until the stack fits below the risk gauges."""

    def toast_top(self) -> int:
        """The first row toasts may use: below the main board's gauges and pairs (over its
        logs), else below the header."""
        top = 1
        if not self.screen_stack:  # the app is closing: the repaint timer may still fire once
            return top
        for part in ("portfolio", "grid"):  # console/screens/main.py
            region = getattr(getattr(self.screen, part, None), "region", None)
            if region is not None and region.area:
                top = max(top, region.bottom)
        return top

    def _on_notify(self, event: Notify) -> None:
        event.prevent_default()  # App._on_notify would add it without making room
        self._notifications.add(event.notification)
        self.make_toast_room(refresh=False)
        self._refresh_notifications()

    def make_toast_room(self, refresh: bool = True) -> None:
        """Drop the oldest toasts (never the newest) until the stack fits below the gauges and
        the pairs. On each new toast, and on each frame: the board's layout moves (a problem
        bar, a selected compact row's second line, a resize)."""
        width, height = self.size
        room = height - RACK_MARGIN_ROWS - self.toast_top()
        shown = [n for n in self._notifications if not n.has_expired]  # oldest first
        used = sum(toast_rows(n, width) for n in shown)
        dropped = False
        for old in shown[:-1]:
            if used <= room:
                break
            used -= toast_rows(old, width)
            self._unnotify(old, refresh=False)
            dropped = True
        if dropped and refresh:
            self._refresh_notifications()
