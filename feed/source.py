"""The contract between a market-data source and the feed process.

A source (``sim``, ``binance``, ``replay``) streams normalised ticks into a ``Publisher`` until
the stop event is set, and serves closed candles for the history socket. The publisher assigns
sequence numbers and receive times, so a source only reports what the market said.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

SOURCE_NAMES = ("sim", "binance", "replay")


class Publisher(Protocol):  # implemented by feed/publisher.py TickPublisher
    def publish_tick(
        self,
        symbol: str,
        ts_exchange_ms: int,
        bid: float,
        ask: float,
        last: float,
        base_volume: float = 0.0,
        quote_volume: float = 0.0,
    ) -> None:
        """Publish one tick; the publisher assigns seq and ts_recv."""
        ...

    def set_status(
        self, state: str, last_error: str | None = None, reconnects: int | None = None
    ) -> None:
        """Record the connection state; published on ``_status`` when it changes."""
        ...


class Source(Protocol):
    name: str  # "sim" | "binance" | "replay"
    symbols: list[str]

    async def run(self, publisher: Publisher, stop: asyncio.Event) -> None:
        """Stream ticks into ``publisher`` until ``stop`` is set."""
        ...

    async def history(self, symbol: str, timeframe_s: int, limit: int) -> list[list[float]]:
        """Closed candles ``[[ts_ms, o, h, l, c, v], ...]``, oldest first."""
        ...

    async def close(self) -> None: ...
