"""The trading core's clock port, as a compiled base class.

The core never reads a clock itself: each shell hands it one (engine/core/ports.py). The port is
a class rather than a Protocol so that the compiled core calls it natively: through a Protocol,
mypyc calls ``clock.monotonic()`` as a Python method, and the core reads the clock twice a tick
(``TradingCore.on_tick`` took 0.13 µs more that way at 1,000 pairs; docs/performance.md, "An
eighth look"). The engine's ``SystemClock``
(engine/node/clock.py) and the backtest's ``SimClock`` (engine/backtest/clock.py) are compiled
subclasses; a clock of one's own (a test's) subclasses it in plain Python.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

__all__ = ["Clock"]


@mypyc_attr(allow_interpreted_subclasses=True)  # a test's clock needs no compiler
class Clock:
    def time_ms(self) -> int:
        """Now, in ms since the epoch: stamps decisions, orders, fills and modes."""
        raise NotImplementedError

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: ages (staleness, retry back-off)."""
        raise NotImplementedError
