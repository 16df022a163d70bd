"""Policies the tests load by name through the safe list (``params.policy``)."""

from __future__ import annotations

from typing import Any

seen: list[Any] = []


def hold_and_record(state: Any) -> int:
    seen.append(state.copy())
    return 0
