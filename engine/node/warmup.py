"""The engine's warm-up from the feed's history, at any number of pairs (issue 16).

Owns ``warm_all``: every pair's history asked of the feed (``HistorySource``) on two worker
threads, ``PREFETCH`` requests ahead, while the engine thread seeds the pairs already answered
(``TradingCore.warm_pair``: indicators, strategy state, and the correlations in bulk). So the
feed builds the next answers while the engine digests the last, instead of one round trip then
one warm-up, a thousand times over. Meanwhile the engine thread beats once every
``HEARTBEAT_INTERVAL_S`` (not once per pair: a beat counts over every pair), answers commands
(a kill during warm-up is not left waiting), and, once bound, publishes what is warm every
``WARM_PUBLISH_S`` (a console sees the pairs come in with their last close instead of
nothing until the last pair is warm). Pairs holding a position or an order go first. Ticks
that arrive meanwhile are kept and price their pair on screen at once (engine/node/early_ticks.py);
the core sees them only after the warm-up, in order (``EngineNode.run`` replays them).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from engine.core.candles import Candle
from engine.core.ports import HistoryUnavailable
from engine.node.early_ticks import EarlyTicks
from engine.wire.liveness import HEARTBEAT_INTERVAL_S

if TYPE_CHECKING:
    from engine.node.service import EngineNode

log = logging.getLogger("engine")

PREFETCH = 4  # history requests in flight ahead of the pair being warmed
WORKERS = 2
WARM_PUBLISH_S = 0.25  # pair states and the portfolio published this often during warm-up
WAIT_S = 0.05  # the engine thread's turn while it waits for an answer


def _order(node: EngineNode) -> list[str]:
    core = node.core
    held = {s for s, p in core.portfolio.positions.items() if p.qty != 0.0}
    held |= {getattr(o, "symbol", "") for o in core.execution.orders.values()}
    return sorted(core.pairs, key=lambda s: s not in held)  # stable: the safe list's order otherwise


def history_pool() -> ThreadPoolExecutor:
    """The worker threads history requests run on (the engine thread never waits on the feed)."""
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="history")


def ask_history(node: EngineNode, pool: ThreadPoolExecutor, sym: str) -> Future[list[Candle]]:
    """``sym``'s history asked of the feed on ``pool``; the answer is the future's."""
    return pool.submit(node.history.candles, sym, node.core.timeframe_s, node.history_limit)


def warm_all(node: EngineNode, should_stop: Callable[[], bool], log_each: Callable[[str, int], None]) -> bool:
    """Warm every pair; False when ``should_stop`` said so first."""
    core = node.core
    symbols = iter(_order(node))
    pool = history_pool()
    pending: deque[tuple[str, Future[list[Candle]]]] = deque()
    last_publish = -1e9
    early = node.early_ticks = EarlyTicks(node)

    def top_up() -> None:
        while len(pending) < PREFETCH:
            sym = next(symbols, None)
            if sym is None:
                return
            pending.append((sym, ask_history(node, pool, sym)))

    def turn() -> None:
        nonlocal last_publish
        now = node.clock.monotonic()
        if now - node._last_hb >= HEARTBEAT_INTERVAL_S:
            node._heartbeat(now)
        if node._bound:
            node._drain_commands()
            early.drain()
            if now - last_publish >= WARM_PUBLISH_S:
                last_publish = now
                node.publisher.publish_due(core, node.stats, now)

    try:
        top_up()
        turn()
        while pending:
            sym, fut = pending.popleft()
            candles: list[Candle] | None = None
            while True:
                if should_stop():  # SIGTERM during a slow warm-up: stop within one turn
                    return False
                turn()
                try:
                    candles = fut.result(timeout=WAIT_S)
                except TimeoutError:
                    continue
                except HistoryUnavailable as exc:
                    log.warning("%s - no history from the feed (%s): indicators warm up live", sym, exc)
                break
            top_up()
            if candles is not None:
                log_each(sym, early.warm(sym, candles))
        turn()
        return True
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
