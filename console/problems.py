"""What is wrong with the feed or the engine right now, in words the operator can act on.

Owns ``Problem`` and ``board_problems``: from the feed's ``_status`` map (feed-owned format,
``feed.wire``: ``state``, ``since``, ``last_error``, ``reconnects``) and the supervisor's view
of both children (``ChildStatus``), the problems the board's problem bar shows: what is wrong,
since when, why (the error text as the feed or the supervisor said it) and, when the error says
the network is not there (a DNS failure, a refused or unreachable host), that ``--demo`` trades
a simulated market with no network. No Textual here.

A feed that is still starting is not a problem: a ``reconnecting`` feed with no error is shown
only once it has waited ``CONNECT_GRACE_S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from console.model import ChildStatus
from engine.wire.liveness import HUNG_AFTER_S

CONNECT_GRACE_S = 5.0  # a feed this long without a first connection is news
# Words of an error that mean "no network here" (getaddrinfo, asyncio, aiohttp), and what they
# mean in a few words, most specific first.
OFFLINE_WORDS: tuple[tuple[str, str], ...] = (
    ("name or service not known", "DNS lookup failed"),
    ("temporary failure in name resolution", "DNS lookup failed"),
    ("nodename nor servname", "DNS lookup failed"),
    ("no address associated with hostname", "DNS lookup failed"),
    ("getaddrinfo failed", "DNS lookup failed"),
    ("network is unreachable", "network unreachable"),
    ("no route to host", "network unreachable"),
    ("connection refused", "connection refused"),
    ("connect call failed", "connection refused"),
    ("cannot connect to host", "cannot connect"),
)
DEMO_HINT = "no network? multipar-console --demo trades a simulated market offline"
DEMO_HINT_SHORT = "no network? try --demo"


@dataclass(frozen=True, slots=True)
class Problem:
    """One line of the problem bar: ``who`` (feed | engine) ``what`` since ``since``."""

    who: str
    what: str  # "reconnecting", "stopped", "restarting in 3s", "silent 5s", "dead"
    since: float | None  # wall clock (epoch s) when it began, when known
    for_s: float | None  # how long it has lasted, when known
    detail: str  # why, as the feed or supervisor said it ("" when nobody said)
    error: bool  # red (nothing is coming) or amber (trying)
    offline: str = ""  # what the detail says in a few words when there is no network (--demo)
    retries: int = 0


def offline_cause(text: str) -> str:
    """"DNS lookup failed", "network unreachable", "connection refused", "cannot
    connect" when an error text says the network is not there, else ""."""
    low = text.lower()
    for words, cause in OFFLINE_WORDS:
        if words in low:
            return cause
    return ""


def _int(x: object) -> int | None:
    return x if type(x) is int else None


def feed_problem(status: Mapping[str, Any], child: ChildStatus, wall: float, now: float) -> Problem | None:
    """The feed's problem: its process first (dead, held, restarting), then its connection."""
    proc = _child_problem(child, now)
    if proc is not None:
        return proc
    state = status.get("state")
    if state not in ("reconnecting", "stale", "stopped"):
        return None
    err = status.get("last_error")
    detail = err if isinstance(err, str) else ""
    since_ns = _int(status.get("since"))
    since = since_ns / 1e9 if since_ns is not None else None
    for_s = max(0.0, wall - since) if since is not None else None
    if state == "reconnecting" and not detail and (for_s is None or for_s < CONNECT_GRACE_S):
        return None  # starting up: the first connection is on its way
    return Problem(
        "feed",
        str(state),
        since,
        for_s,
        detail,
        error=state == "stopped",
        offline=offline_cause(detail),
        retries=_int(status.get("reconnects")) or 0,
    )


def _child_problem(child: ChildStatus, now: float) -> Problem | None:
    """A child that is not running (dead, held, restarting) or running but silent."""
    state = child.state
    age = max(0.0, now - child.updated_at) if child.updated_at else None
    if state in ("dead", "held"):
        what = "held (not restarting)" if state == "held" else "dead"
        return Problem(child.name, what, None, age, child.message, True, offline_cause(child.message))
    if state == "restarting":
        left = child.restart_in(now)
        what = "restarting" + ("" if left is None else f" in {left:.0f}s")
        return Problem(child.name, what, None, age, child.message, False, offline_cause(child.message))
    if state == "running":
        beat = child.beat_age(now)
        if beat is not None and beat > HUNG_AFTER_S:
            return Problem(child.name, f"silent {beat:.0f}s", None, None, "no heartbeat", True)
    return None


def board_problems(
    status: Mapping[str, Any], children: Mapping[str, ChildStatus], wall: float, now: float
) -> list[Problem]:
    """Every problem the board shows, the feed's first. ``wall`` is epoch seconds (the feed's
    ``since``), ``now`` the model's clock (children's ages)."""
    out: list[Problem] = []
    feed = children.get("feed")
    if feed is not None:
        p = feed_problem(status, feed, wall, now)
        if p is not None:
            out.append(p)
    engine = children.get("engine")
    if engine is not None:
        p = _child_problem(engine, now)
        if p is not None:
            out.append(p)
    return out
