"""The backtest's clock: the current tick's exchange time, set by the replay before each tick.

A module of its own so that it is compiled with the core (``engine/compiled.py``): the core asks
the time several times a tick, and a call from compiled code into an interpreted method costs
more than the method.
"""

from __future__ import annotations

from engine.core.clock import Clock

__all__ = ["SimClock"]


class SimClock(Clock):
    """The backtest's clock: the current tick's exchange time."""

    __slots__ = ("ms",)

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def time_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000.0
