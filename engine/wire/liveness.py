"""Liveness: every timeout that depends on another, derived in one place.

The engine and the feed beat every ``HEARTBEAT_INTERVAL_S``. The engine also beats between
the history requests of its warm-up (each bounded by ``HISTORY_REQUEST_TIMEOUT_S``), so a slow
exchange never makes a healthy engine look dead. From those two:

- ``SILENT_AFTER_S``: the supervisor restarts a child this long without a beat (longer than
  one history request plus two beats);
- ``START_GRACE_S``: the first beat may take this long (interpreter start and imports on a
  loaded 2-core VPS); warm-up does not count, the engine beats before it starts;
- ``HUNG_AFTER_S``: the kill switch does not ask an engine this long silent, it acts at once,
  and a console shows the child as silent from the same moment;
- ``PAIR_REFRESH_S``: a quiet pair's state is republished this often, so its tick age moves;
  ``PAIR_SILENT_S``: a console shows a pair whose state is this old as STALE (the engine is
  not speaking; it is the engine's verdict otherwise). Both are floors: the roll-call sends at
  most ``ROLLCALL_PER_S`` states a second, so above that many pairs each is refreshed every
  ``pair_refresh_s(n)`` and silent after ``pair_silent_s(n)`` (1,000 pairs: 2 s and 6 s);
- ``HEALTHY_AFTER_S``: a child that has been beating this long, counted from its first beat,
  had a healthy run: the supervisor's restart backoff starts again from its first step (1 s).
  Twice the silence limit: a crash loop (a child that dies at start, or within seconds of its
  first beat) still backs off, while a child that crashes now and then, even every 20 s, is
  back in about a second instead of after a grown delay.
"""

from __future__ import annotations

from feed.wire import HEARTBEAT_INTERVAL_S as FEED_HEARTBEAT_INTERVAL_S

HEARTBEAT_INTERVAL_S = FEED_HEARTBEAT_INTERVAL_S  # the engine beats as often as the feed
HISTORY_REQUEST_TIMEOUT_S = 5.0
SILENT_AFTER_S = HISTORY_REQUEST_TIMEOUT_S + 2 * HEARTBEAT_INTERVAL_S
START_GRACE_S = 20.0
HUNG_AFTER_S = 3 * HEARTBEAT_INTERVAL_S
PAIR_REFRESH_S = HEARTBEAT_INTERVAL_S
PAIR_SILENT_S = 3 * PAIR_REFRESH_S
ROLLCALL_PER_S = 500  # the roll-call's budget: pair states a second, whatever the number of pairs
HEALTHY_AFTER_S = 2 * SILENT_AFTER_S

assert SILENT_AFTER_S > HISTORY_REQUEST_TIMEOUT_S + HEARTBEAT_INTERVAL_S
assert HUNG_AFTER_S < SILENT_AFTER_S  # the kill acts before the supervisor would restart
assert HEALTHY_AFTER_S > SILENT_AFTER_S  # a healthy run outlasted at least one silence window


def pair_refresh_s(n_pairs: int) -> float:
    """How often the roll-call republishes each of ``n_pairs`` quiet pairs: once a second up to
    ``ROLLCALL_PER_S`` pairs, then as often as that budget allows (a pair on someone's screen
    has its own topic, at up to 10 Hz; this is the pairs nobody shows)."""
    return max(PAIR_REFRESH_S, n_pairs / ROLLCALL_PER_S)


def pair_silent_s(n_pairs: int) -> float:
    """A console shows a pair STALE when its state is this old: as many refreshes missed as
    ``PAIR_SILENT_S`` is of ``PAIR_REFRESH_S`` (three)."""
    return PAIR_SILENT_S * pair_refresh_s(n_pairs) / PAIR_REFRESH_S
