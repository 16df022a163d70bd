"""The notifier's outbox in the book, on a thread of its own, and the events not yet in it.

Owns ``OutboxWriter``. ``notify.Notifier`` puts each event on its queue in memory (``put``,
never blocking); ``run`` opens the book's outbox (``engine.journal.outbox``), trying again
every 2 s while the book refuses, prunes the rows done for 30 days, then writes the queue to it,
one row per event and channel, until the notifier stops and the queue is empty. Every outbox
call, the senders' included, runs on the writer's one thread through ``call`` (see there why
not on the loop, and why one thread); ``close`` closes the outbox after the writes still on
that thread and lets the thread go. Logs through the notifier's logger: its lines are the
notifier's. Never imports Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from engine.journal.outbox import Outbox
from engine.journal.schema import StoreError

log = logging.getLogger("console.daemon.notify")

T = TypeVar("T")

KEEP_DONE_S = 30 * 86_400  # sent and failed rows are pruned from the book after 30 days

Queued = tuple[str, str, int]  # an event: kind, text, ts_ns


class OutboxWriter:
    """The book's outbox, opened and written on one thread; the events waiting to be written."""

    def __init__(
        self,
        book: Path,
        channels: Sequence[str],
        *,
        scrub: Callable[[str], str],
        now_ns: Callable[[], int],
    ) -> None:
        """``channels``: the names a row is written for, one row per event and channel;
        ``scrub`` cleans an error of secrets before a log line says it."""
        self.book = book
        self._names = list(channels)
        self._scrub = scrub
        self._now_ns = now_ns
        self.queue: deque[Queued] = deque()  # kept across a stop: the next start writes it
        self.wake = asyncio.Event()  # set when the queue has something, or the notifier stops
        self.ready = asyncio.Event()  # set once the outbox is open
        self.drained = False  # stopping, and every queued event is in the outbox
        self.outbox: Outbox | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._failing = False

    def put(self, kind: str, text: str, ts_ns: int) -> None:
        """Queue one event for the outbox (in memory: never blocks)."""
        self.queue.append((kind, text, ts_ns))
        self.wake.set()

    def start(self) -> None:
        """Fresh events on the running loop, and the outbox's thread."""
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.drained = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify-outbox")

    async def opened(self) -> Outbox:
        """The outbox, once ``run`` has opened it."""
        await self.ready.wait()
        assert self.outbox is not None
        return self.outbox

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one outbox call on the outbox's own thread.

        Not on the loop: a write waits for the engine's commit (its fsync, synchronous=FULL)
        up to the busy timeout, 2 s, which would stall everything else the daemon does. One
        dedicated thread (rather than asyncio.to_thread's pool) keeps the connection on the
        thread that opened it and runs the calls in order, the close after the last write.
        """
        assert self._executor is not None
        job = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        job.add_done_callback(_retrieve)
        # shielded: a caller cancelled by stop() leaves the call to finish on its thread (a
        # batch taken from the queue is written, a delivered row is marked sent)
        return await asyncio.shield(job)

    async def open(self) -> None:
        """Open the outbox, trying again every few seconds while the book refuses."""
        told = False
        while True:
            try:
                self.outbox = await self.call(Outbox, self.book)
                if told:
                    log.info("notify: the book's outbox is open")
                break
            except StoreError as exc:
                if not told:
                    log.warning(
                        "notify: cannot open the outbox (trying again): %s", self._scrub(str(exc))
                    )
                    told = True
                await asyncio.sleep(2.0)  # stop() cancels this task if the book never opens
        with contextlib.suppress(StoreError):
            cut = self._now_ns() - int(KEEP_DONE_S * 1e9)
            if n := await self.call(self.outbox.prune, cut):
                log.info("notify: pruned %d sent or failed messages older than 30 days", n)

    async def run(
        self,
        stopping: Callable[[], bool],
        pause: Callable[[float], Awaitable[bool]],
        written: Callable[[], None],
    ) -> None:
        """The writer's task: open the outbox, then write the queue to it, calling ``written``
        after each batch. Once ``stopping()`` and the queue is empty, sets ``drained``, calls
        ``written`` a last time and returns; also returns when ``pause``, after a failed
        write, says the notifier is stopping (the queue stays in memory)."""
        await self.open()
        self.ready.set()
        while True:
            if not self.queue:
                if stopping():  # all written: the senders deliver what is due, then end
                    self.drained = True
                    written()
                    return
                await self.wake.wait()
                self.wake.clear()
                continue
            batch = list(self.queue)
            self.queue.clear()  # taken before the write: a cancelled wait must not write twice
            try:
                await self.call(self.write, batch)
            except StoreError as exc:
                self.queue.extendleft(reversed(batch))
                if not self._failing:
                    log.warning(
                        "notify: cannot write %d messages to the book (trying again): %s",
                        len(batch),
                        self._scrub(str(exc)),
                    )
                    self._failing = True
                if await pause(1.0):
                    return
                continue
            self._failing = False
            written()

    def write(self, batch: list[Queued]) -> None:
        """On the outbox's thread: one row per event and channel."""
        assert self.outbox is not None
        for kind, text, ts_ns in batch:
            self.outbox.add(kind, text, self._names, ts_ns)

    async def close(self, deadline: float) -> None:
        """Close the outbox after the writes still queued on its thread, waiting until
        ``deadline`` (loop time, at least 50 ms); a write still waiting for the book's lock
        finishes on the thread later."""
        executor, outbox = self._executor, self.outbox
        if executor is not None:
            if outbox is not None:  # after the writes still queued on that thread
                closed = asyncio.wrap_future(executor.submit(outbox.close))
                closed.add_done_callback(_retrieve)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(closed),
                        timeout=max(0.05, deadline - asyncio.get_running_loop().time()),
                    )
            executor.shutdown(wait=False)  # a write still waiting for the lock finishes later
        self._executor, self.outbox = None, None


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Consume an abandoned job's outcome (its error is said by whoever waited, if anyone)."""
    if not fut.cancelled():
        fut.exception()
