"""Replay of recorded market data (``--source replay``): a file of candles or ticks, streamed as ticks.

Owns ``ReplaySource``: streaming a ``ReplayFile`` (``feed.replay_file``: the file shapes, the
loading, the history rows) as one time-ordered stream of ticks, paced at ``speed`` x real time
(0 = as fast as possible), and serving its history. ``history()`` aggregates the history rows to
any multiple of the file's interval.

Start: by default the replay waits for its first tick subscriber (the publisher sees XPUB
subscriptions), so a fast replay is not over before the engine connects; ``wait_for_subscriber=
False`` (CLI ``--no-wait``) starts at once.

Flow control: a replay has no real time to keep, so it never outruns its subscribers
(``flow_control``: the feed opens its socket with ``ZMQ_XPUB_NODROP``). When a subscriber is a
high-water mark behind, ``publish_tick`` returns False and nothing is sent; the replay waits
(0.5 to 2 ms, the event loop running meanwhile) and sends the same tick again. At ``speed`` 0 it
therefore runs at the pace of its slowest subscriber; at ``speed`` > 0 it lags behind its
schedule while a subscriber is behind and catches up (as fast as the subscriber takes it) after.
When the file is done, the status ``stale`` (``finished``) carries the last sequence number of
every symbol, so a subscriber that has fewer knows it lost the tail.

Time: every timestamp is shifted by one offset, a whole number of the file's intervals, that
puts the first replayed candle at the next boundary at or after the moment streaming starts
(history served before then is re-placed with it). Ticks therefore carry the file's clock
(candles built from them line up with the file's), never behind the wall clock; at ``speed`` > 1
they run ahead of it. With ``loop`` the file starts again, shifted by its span, so time keeps
moving forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feed.errors import SourceConfigError, UnknownSymbolError
from feed.replay_file import CHUNK_ROWS, EMIT_CHUNK, ReplayFile
from feed.source import Publisher
from feed.wire import STATUS_CONNECTED, STATUS_STALE

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

YIELD_EVERY = 512  # ticks published between yields to the event loop at full speed
MIN_SLEEP_S = 0.002
RETRY_MIN_S = 0.0005  # flow control: first wait before sending a refused tick again
RETRY_MAX_S = 0.002  # ... doubling up to this: short, a subscriber frees room in large batches


class ReplaySource:
    """The ``replay`` source: ticks from a file of candles or ticks, paced at ``speed``."""

    name = "replay"
    flow_control = True  # no real time to keep: wait for slow subscribers rather than drop

    def __init__(
        self,
        path: str | Path,
        symbols: Sequence[str],
        speed: float = 1.0,
        loop: bool = False,
        *,
        warmup: int = 500,
        spread_bps: float = 2.0,
        wait_for_subscriber: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (speed >= 0.0 and math.isfinite(speed)):
            raise SourceConfigError(f"speed {speed!r} must be >= 0 (0 = as fast as possible)")
        if not symbols:
            raise SourceConfigError("no symbols to replay: pass --symbols BTC/USDT,...")
        self.path = Path(path)
        self.symbols = list(symbols)
        self.speed = speed
        self.loop = loop
        self.wait_for_subscriber = wait_for_subscriber
        self._clock = clock
        self.waits = 0  # flow control: times a tick was refused (a subscriber was full)
        self.waited_s = 0.0  # ... and the time spent waiting
        t0 = time.perf_counter()
        # CHUNK_ROWS and EMIT_CHUNK are read from this module when used, so they can be tuned here
        self._file = ReplayFile(self.path, self.symbols, warmup=warmup, spread_bps=spread_bps,
                                chunk_rows=CHUNK_ROWS)
        self._shift_to(self._clock())
        log.info(
            "replay %s: %d %s rows, %d ticks to replay for %s (%d bad rows skipped) in %.2fs",
            self.path, self.rows, self.kind, self.ticks, ", ".join(self.symbols),
            self.skipped_rows, time.perf_counter() - t0,
        )

    # -- the loaded file ----------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"candles"`` or ``"ticks"``."""
        return self._file.kind

    @property
    def interval_ms(self) -> int:
        """The file's candle interval (candle files; 0 for ticks)."""
        return self._file.interval_ms

    @property
    def rows(self) -> int:
        """Rows of the replayed symbols in the file."""
        return self._file.rows

    @property
    def skipped_rows(self) -> int:
        """Malformed rows left out."""
        return self._file.skipped_rows

    @property
    def span_ms(self) -> int:
        """One pass over the file, in whole intervals: a loop's next pass is shifted by this."""
        return self._file.span_ms

    @property
    def ticks(self) -> int:
        """Ticks in one pass over the file."""
        return self._file.ticks

    @property
    def _cols(self) -> dict[str, np.ndarray]:
        return self._file.cols

    @property
    def _order(self) -> np.ndarray | None:
        return self._file.order

    def chunks(self) -> Iterator[tuple[list[int], list[int], list[float], list[float], list[float],
                                       list[float], list[float]]]:
        """One pass over the file in time order, ``EMIT_CHUNK`` ticks at a time (``ReplayFile.chunks``)."""
        return self._file.chunks(EMIT_CHUNK)

    def _shift_to(self, now: float) -> None:
        """A whole number of intervals, so candles stay aligned; first replayed tick >= now."""
        align = self._file.align_ms
        self.offset_ms = -(-(int(now * 1000) - self._file.first_ms) // align) * align

    # -- streaming ----------------------------------------------------------------------------

    async def run(self, publisher: Publisher, stop: asyncio.Event) -> None:
        publisher.set_status(STATUS_CONNECTED, None, 0)
        wait_for_subscriber = getattr(publisher, "wait_for_subscriber", None)
        if self.wait_for_subscriber and wait_for_subscriber is not None:
            log.info("replay %s: waiting for a tick subscriber before starting", self.path.name)
            if not await wait_for_subscriber(stop):
                return
            # the clock starts now: re-place the first tick at or after this moment
            self._shift_to(self._clock())
        names = self.symbols
        publish = publisher.publish_tick
        clock = self._clock
        passes = 0
        since_yield = 0
        started = time.monotonic()
        pace = 1.0 / (1000.0 * self.speed) if self.speed > 0 else 0.0
        first = self._file.first_ms
        while not stop.is_set():
            shift = self.offset_ms + passes * self.span_ms
            wall0 = clock()
            for ts, sym, bid, ask, last, bv, qv in self.chunks():
                for i in range(len(ts)):
                    if pace:
                        delay = wall0 + (ts[i] - first) * pace - clock()
                        if delay > MIN_SLEEP_S:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), delay)
                            since_yield = 0
                    if stop.is_set():
                        return
                    name, te = names[sym[i]], ts[i] + shift
                    # False (never None): a subscriber is full and nothing was sent; wait, resend
                    if publish(name, te, bid[i], ask[i], last[i], bv[i], qv[i]) is False:
                        tick = (name, te, bid[i], ask[i], last[i], bv[i], qv[i])
                        if not await self._resend(publisher, tick, stop):
                            return
                    since_yield += 1
                    if since_yield >= YIELD_EVERY:  # let heartbeats and history requests through
                        since_yield = 0
                        await asyncio.sleep(0)
            passes += 1
            if not self.loop:
                break
            await asyncio.sleep(0)  # a short file in a loop must not starve the event loop
        if stop.is_set():
            return
        elapsed = time.monotonic() - started
        n = self.ticks * passes
        log.info("replay %s finished: %d ticks published in %.1f s (%.0f ticks/s); waited %.1f s "
                 "for subscribers to catch up (%d times)", self.path, n, elapsed,
                 n / max(elapsed, 1e-9), self.waited_s, self.waits)
        finished = getattr(publisher, "mark_finished", None)
        if finished is not None:
            finished()  # the status says no more ticks will come: its last_seq are final
        publisher.set_status(STATUS_STALE, f"replay of {self.path.name} finished", 0)
        await stop.wait()  # stay up: a feed that exits would be restarted and replay again

    async def _resend(self, publisher: Publisher, tick: tuple[Any, ...], stop: asyncio.Event) -> bool:
        """Flow control: send ``tick`` again until a full subscriber makes room; False on stop."""
        publish = publisher.publish_tick
        send_due = getattr(publisher, "send_due", None)  # heartbeat or status waiting for room
        self.waits += 1
        t0 = time.monotonic()
        delay = RETRY_MIN_S
        try:
            while not stop.is_set():
                await asyncio.sleep(delay)
                if send_due is not None:
                    send_due()  # first through the window when it opens: a beat is never starved
                if publish(*tick) is not False:
                    return True
                delay = min(delay * 2, RETRY_MAX_S)
            return False
        finally:
            self.waited_s += time.monotonic() - t0

    async def history(self, symbol: str, timeframe_s: int, limit: int) -> list[list[float]]:
        if symbol not in self.symbols:
            raise UnknownSymbolError(f"{symbol} is not replayed (replaying: {', '.join(self.symbols)})")
        if self.kind != "candles" or limit <= 0:
            return []
        tf = timeframe_s * 1000
        if tf < self.interval_ms or tf % self.interval_ms:
            raise ValueError(
                f"the replay file has {self.interval_ms // 1000}s candles; "
                f"{timeframe_s}s is not a multiple of that"
            )
        rows = self._file.history_rows[symbol]
        if len(rows) == 0:
            return []
        history_end = self._file.replay_start[symbol] + self.offset_ms  # where its replay begins
        out: list[list[float]] = []
        for r in rows.tolist():
            ts = int(r[0]) + self.offset_ms
            b = ts - ts % tf
            if out and out[-1][0] == b:
                cur = out[-1]
                cur[2] = max(cur[2], r[2])
                cur[3] = min(cur[3], r[3])
                cur[4] = r[4]
                cur[5] += r[5]
            else:
                out.append([b, r[1], r[2], r[3], r[4], r[5]])
        if out and out[-1][0] + tf > history_end:  # its tail is replayed: not closed yet
            out.pop()
        return out[-limit:]

    async def close(self) -> None:
        return None
