"""Policies the tests load by name through the safe list (``params.policy``)."""

from __future__ import annotations

from typing import Any

seen: list[Any] = []


def hold_and_record(state: Any) -> int:
    seen.append(state.copy())
    return 0


# ``scripted``: the action a test sets (0 HOLD, 1 BUY, 2 SELL), and one entry per call, so a
# test counts the candles the core decided on (tests/test_bad_data.py)
action = [0]
calls: list[int] = []


def scripted(state: Any) -> int:
    calls.append(action[0])
    return action[0]


def buy_when_flat(state: Any) -> int:
    """BUY while the portfolio holds nothing (``state[3]``, the exposure), else HOLD: after a
    restart it buys again only if the first buy was truly lost (tests/test_live_process.py)."""
    return 1 if state[3] == 0.0 else 0
