"""What a live engine's exchange connection means for the operator: the lines the event log
says when a ban starts or ends and when the private user stream drops or returns.

Owns ``venue_news``: from the previous and the new ``VenueMsg`` of the engine's heartbeat (and
the wall clock), the (text, level) lines to log; the model stores the new one for the header
(BANNED / NO STREAM beside the LIVE badge) and the daemon's notifications.
"""

from __future__ import annotations

import time
from typing import Any


def venue_news(prev: Any, venue: Any, wall_s: float) -> list[tuple[str, str]]:
    """Lines for the event log: a ban starting or ending, the user stream down or back."""
    out: list[tuple[str, str]] = []
    now_ms = int(wall_s * 1000)
    was_banned = prev is not None and prev.banned_until_ms > now_ms
    if venue.banned_until_ms > now_ms and not was_banned:
        until = time.strftime("%H:%M:%S", time.gmtime(venue.banned_until_ms / 1000))
        out.append((f"Binance banned this IP until {until} UTC (HTTP 418): no new orders until then",
                    "error"))  # fmt: skip
    elif was_banned and venue.banned_until_ms <= now_ms:
        out.append(("Binance ban over: orders resume", "info"))
    if prev is not None and prev.stream_ok != venue.stream_ok:
        if venue.stream_ok:
            out.append(("exchange user stream back", "info"))
        else:
            why = f": {venue.last_error}" if venue.last_error else ""
            out.append((f"exchange user stream down, fills polled over REST{why}", "warning"))
    return out
