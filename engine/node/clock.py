"""The system clock, as the trading core's ``Clock`` port (the core never reads it itself)."""

from __future__ import annotations

import time


class SystemClock:
    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
