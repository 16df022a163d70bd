"""Which pairs move together: configured groups plus the live rolling correlation of returns.

Owns ``CorrelationTracker``. Each closed candle gives a log return per symbol; returns are
aligned by candle open time, so a pair of symbols is updated exactly once per candle time
both have closed, whichever arrives first (live, interleaved) and also when one symbol's
whole history is fed before the next (warm-up): each symbol remembers its last
``window + RETURN_SLACK`` returns by candle time. Every pair keeps a ``RollingCorrelation`` over
``window`` aligned returns. ``correlated_with(symbol)`` is what the risk check counts:
configured group members plus symbols whose live correlation is at or above ``threshold``.
O(number of symbols) per close.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence

from engine.core.indicators import RollingCorrelation

logger = logging.getLogger(__name__)

RETURN_SLACK = 16  # extra returns remembered beyond the window, for symbols closing a little late


class CorrelationTracker:
    def __init__(
        self,
        symbols: Sequence[str],
        window: int,
        threshold: float,
        groups: Iterable[Iterable[str]] = (),
        timeframe_ms: int | None = None,
    ) -> None:
        """``timeframe_ms``, when given, drops a return spanning a missing candle (no alignment)."""
        self.symbols = list(dict.fromkeys(symbols))
        self.window = window
        self.threshold = threshold
        self.timeframe_ms = timeframe_ms
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self._group_peers: dict[str, set[str]] = {s: set() for s in self.symbols}
        for group in groups:
            members = [s for s in group if s in self._index]
            for s in members:
                self._group_peers[s].update(m for m in members if m != s)
        self._pairs: dict[tuple[str, str], RollingCorrelation] = {}
        for i, a in enumerate(self.symbols):
            for b in self.symbols[i + 1 :]:
                self._pairs[(a, b)] = RollingCorrelation(window)
        self._last_close: dict[str, tuple[int, float]] = {}  # symbol -> (candle ts, close)
        # per symbol: candle ts -> log return, oldest first (the deque bounds the dict)
        self._returns: dict[str, dict[int, float]] = {s: {} for s in self.symbols}
        self._return_ts: dict[str, deque[int]] = {s: deque() for s in self.symbols}
        # per symbol, each other symbol in safe-list order: (its returns, the pair's correlation,
        # whether this symbol is the pair's x), so a close looks nothing up by name
        self._peers: dict[str, list[tuple[dict[int, float], RollingCorrelation, bool]]] = {}
        for s in self.symbols:
            self._peers[s] = [
                (self._returns[o], self._pairs[self._key(s, o)], self._key(s, o)[0] == s)
                for o in self.symbols
                if o != s
            ]
        self._keep = window + RETURN_SLACK
        self.bad = 0  # closes refused: unknown symbol, non-positive or non-finite price
        self.out_of_order = 0

    def _key(self, a: str, b: str) -> tuple[str, str]:
        return (a, b) if self._index[a] < self._index[b] else (b, a)

    def on_close(self, symbol: str, candle_ts: int, close: float) -> bool:
        """Feed one closed candle; True when it produced a return (False: first, bad or late)."""
        # ``0 < close < inf``: finite and positive (NaN fails every comparison)
        if symbol not in self._index or not 0.0 < close < math.inf:
            self.bad += 1
            return False
        last = self._last_close.get(symbol)
        if last is not None and candle_ts <= last[0]:
            self.out_of_order += 1
            return False
        self._last_close[symbol] = (candle_ts, close)
        if last is None:
            return False
        if self.timeframe_ms is not None and candle_ts - last[0] != self.timeframe_ms:
            return False  # a gap: this return spans several candles and would misalign
        ret = math.log(close / last[1])
        mine, order = self._returns[symbol], self._return_ts[symbol]
        mine[candle_ts] = ret
        order.append(candle_ts)
        if len(order) > self._keep:
            del mine[order.popleft()]
        # Each symbol's candle times only increase, so every pair sees its updates in time order.
        for returns, corr, first in self._peers[symbol]:
            peer = returns.get(candle_ts)
            if peer is None:
                continue  # the other symbol's close for this candle updates the pair when it arrives
            if first:
                corr.update(ret, peer)
            else:
                corr.update(peer, ret)
        return True

    def correlation(self, a: str, b: str) -> float | None:
        if a == b:
            return 1.0
        if a not in self._index or b not in self._index:
            return None
        return self._pairs[self._key(a, b)].value

    def matrix(self) -> tuple[list[str], list[list[float | None]]]:
        """Symbols and the symmetric matrix of live correlations (None while warming up)."""
        return self.symbols, [[self.correlation(a, b) for b in self.symbols] for a in self.symbols]

    def correlated_with(self, symbol: str) -> set[str]:
        """Configured group peers plus live peers at or above the threshold (never the symbol)."""
        peers = set(self._group_peers.get(symbol, ()))
        if symbol in self._index:
            for other in self.symbols:
                if other != symbol:
                    c = self._pairs[self._key(symbol, other)].value
                    if c is not None and c >= self.threshold:
                        peers.add(other)
        return peers
