"""Ticks that arrive while the engine warms up: shown at once, traded on only after (issue 16).

Owns ``EarlyTicks``. During warm-up (engine/node/warmup.py) the engine thread drains the feed's
socket each turn: every message is kept, in arrival order, exactly as received, and a tick's
bid/ask/last is put on its pair so the next publish shows a price (a thousand pairs are priced
on screen within seconds instead of after the last pair's 500-candle replay). Nothing goes
through ``TradingCore.on_tick`` then: no candle is built, no stop checked, no decision taken
on any pair during warm-up, as before. ``replay`` (the run loop's first act, after the live
start's reconciliation) restores the prices the core itself held (the history's last close)
and hands every kept message to ``EngineNode.on_message`` in order: each tick is seen once,
after its pair's history, so the warm-up's candles and the live ones neither double nor skip
(exactly what happened to the same ticks when they waited in the socket until warm-up ended).
Above ``CAP`` kept messages the rest wait in the socket as they used to.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import zmq

from engine.node.tick_in import read_message, tick_values
from feed.wire import WireError

if TYPE_CHECKING:
    from engine.core.candles import Candle
    from engine.node.service import EngineNode

log = logging.getLogger("engine")

CAP = 100_000  # messages kept (the SUB socket's own high-water mark)
DRAIN = 2_000  # messages read per turn


class EarlyTicks:
    def __init__(self, node: EngineNode, cap: int = CAP) -> None:
        self.node = node
        self.cap = cap
        self.kept: list[tuple[bytes, bytes]] = []
        self.shown = 0  # ticks that put a price on screen before their pair was warm
        self._core_px: dict[str, tuple[float, float, float]] = {}  # the core's own bid/ask/last
        self._seen: dict[str, tuple[float, float, float]] = {}  # the newest early tick's

    def drain(self) -> None:
        node = self.node
        sub = node.sub
        by_topic = node._by_topic
        for _ in range(min(DRAIN, self.cap - len(self.kept))):
            try:
                msg = read_message(sub, sub.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
            if msg is None:  # misframed: counted now, as the run loop does
                node.bad_total += 1
                continue
            topic, payload = msg
            self.kept.append((topic, payload))
            entry = by_topic.get(topic)
            if entry is None:
                continue
            try:
                _, _, _, bid, ask, last, _ = tick_values(topic, payload)
            except WireError:
                continue  # counted once, at replay
            if bid > 0.0 and ask >= bid and last > 0.0:
                self._show(entry[0].symbol, bid, ask, last)

    def _show(self, sym: str, bid: float, ask: float, last: float) -> None:
        ps = self.node.core.pairs.get(sym)
        if ps is None:
            return
        if sym not in self._core_px:
            self._core_px[sym] = (ps.bid, ps.ask, ps.last)
        ps.bid, ps.ask, ps.last = bid, ask, last
        ps.dirty = True
        self._seen[sym] = (bid, ask, last)
        self.shown += 1

    def warm(self, sym: str, candles: list[Candle]) -> int:
        """``warm_pair`` on the prices the core held, then the newest early price shown again."""
        core = self.node.core
        ps = core.pairs[sym]
        held = self._core_px.get(sym)
        if held is not None:
            ps.bid, ps.ask, ps.last = held
        n = core.warm_pair(sym, candles)
        if held is not None:
            self._core_px[sym] = (ps.bid, ps.ask, ps.last)
            ps.bid, ps.ask, ps.last = self._seen[sym]
            ps.dirty = True
        return n

    def replay(self) -> int:
        """Every kept message through the live path, in order, on the core's own prices; the count."""
        pairs = self.node.core.pairs
        for sym, px in self._core_px.items():
            ps = pairs.get(sym)
            if ps is not None:
                ps.bid, ps.ask, ps.last = px
        self._core_px.clear()
        self._seen.clear()
        kept, self.kept = self.kept, []
        on_message = self.node.on_message
        for topic, payload in kept:
            on_message(topic, payload)
        if kept:
            log.info("replayed %d messages received during warm-up (%d priced a pair early)", len(kept), self.shown)
        return len(kept)
