"""Which pairs move together: configured groups plus the rolling correlation of returns.

Owns ``CorrelationTracker``. Each closed candle gives a log return per symbol, stored in one
table of the last ``window + RETURN_SLACK`` candle times (a column per candle time, a row per
symbol, NaN where a symbol has no return): O(1) per close, whatever the number of symbols.
Returns are aligned by candle open time, so live (closes interleaved) and warm-up (one
symbol's whole history, then the next; ``warm`` stores only the tail that can still count)
fill the same table. The table is a list of rows of Python floats, written on every close;
its numpy copy, which the vectorised queries read, is brought up to date only when one of them
asks (the columns written since are copied): a backtest, whose risk check asks one couple at a
time, never pays for it.

A couple's correlation is taken over the last ``window`` candle times both symbols hold,
exactly as a ``RollingCorrelation`` fed those returns in time order computes it (population
moments, None when a side is flat, clipped to [-1, 1]; tests/test_correlation_scale.py checks
the two agree to 1e-9). Nothing keeps all N(N−1)/2 couples up to date. A correlation is
computed when asked and cached until either symbol has a new return:

- ``correlated_with(symbol, among)``: what the risk check counts, configured group peers plus
  symbols at or above ``threshold``, asked only ``among`` the open positions (O(open) couples,
  the only ones that can change a decision), each from the two rows' floats in O(window)
  (``window_rho``: no array is built for a couple);
- ``row``/``strongest``: one symbol against all, vectorised (the policy's state vector);
- ``view``: what a console shows, the matrix of a few symbols and the ``k`` strongest couples
  of all, from one matrix product (``correlation_math.block``), for the publisher to send at
  most once a second when ``version`` moved.

A candle time older than every one kept is dropped (a symbol more than ``RETURN_SLACK``
candles behind the others no longer counts until it catches up).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np

from engine.core import correlation_math as cm
from engine.core.indicators.base import ZERO_VAR

logger = logging.getLogger(__name__)

RETURN_SLACK: Final = 16  # candle times kept beyond the window, for symbols closing a little late
_NAN: Final = math.nan


class _LastClose:
    """A symbol's last close: its candle time and price, native (a list of ints boxed each one)."""

    __slots__ = ("px", "ts")

    def __init__(self) -> None:
        self.ts = 0
        self.px = 0.0  # 0.0: none yet (a close is positive)


def window_rho(x: list[float], y: list[float], seq: list[int], window: int) -> float | None:
    """ρ of the last ``window`` columns of ``seq`` (column numbers, oldest first) at which both
    rows ``x`` and ``y`` hold a return (not NaN): population moments, None when either side is
    flat (σ below 1e-10 of its mean's magnitude) or fewer than ``window`` are held, clipped to
    [-1, 1]. The usual case (both hold the last ``window``) reads ``window`` columns; a
    candle-close burst (one has no return at the newest candle time yet) one more."""
    picked: list[int] = []
    k = len(seq) - 1
    while k >= 0 and len(picked) < window:
        c = seq[k]
        a = x[c]
        b = y[c]
        if a == a and b == b:  # (NaN is not equal to itself)
            picked.append(c)
        k -= 1
    if len(picked) < window:
        return None
    sx = 0.0
    sy = 0.0
    for m in range(window - 1, -1, -1):  # oldest first
        c = picked[m]
        sx += x[c]
        sy += y[c]
    mx = sx / window
    my = sy / window
    cov = 0.0
    vx = 0.0
    vy = 0.0
    for m in range(window - 1, -1, -1):
        c = picked[m]
        dx = x[c] - mx
        dy = y[c] - my
        cov += dx * dy
        vx += dx * dx
        vy += dy * dy
    cov /= window
    vx /= window
    vy /= window
    if vx <= ZERO_VAR * mx * mx or vy <= ZERO_VAR * my * my:
        return None  # flat
    den = math.sqrt(vx) * math.sqrt(vy)
    if den == 0.0:  # both variances underflowed
        return None if cov == 0.0 else (1.0 if cov > 0.0 else -1.0)
    r = cov / den
    return -1.0 if r < -1.0 else (1.0 if r > 1.0 else r)


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
        self._keep = keep = window + RETURN_SLACK
        n = len(self.symbols)
        # returns: row = symbol, column = candle time (Python floats: written on every close)
        self._rows: list[list[float]] = [[_NAN] * keep for _ in range(n)]
        self._R = np.full((n, keep), np.nan)  # their numpy copy, as of the last ``_synced``
        self._stale = [False] * keep  # columns written since
        self._any_stale = False
        # The used columns, oldest candle time first, and their candle times: the column a new
        # candle time takes over is the first, and their order is the table's time order.
        # Candle times mostly come in order (an append); a late one is inserted in place.
        self._seq: list[int] = []
        self._seq_ts: list[int] = []
        self._order: np.ndarray | None = None  # ``_seq`` as an array
        self._last = [_LastClose() for _ in range(n)]  # per symbol
        self._ver = [0] * n  # per symbol: bumped on every new return
        self._epoch = 0  # bumped when a candle time leaves the table
        self._cache: dict[tuple[int, int], tuple[int, int, int, float | None]] = {}
        self.version = 0  # moves whenever any correlation may have changed
        self.bad = 0  # closes refused: unknown symbol, non-positive or non-finite price
        self.out_of_order = 0

    # ---- input --------------------------------------------------------------------------

    def on_close(self, symbol: str, candle_ts: int, close: float) -> bool:
        """Feed one closed candle; True when it produced a return (False: first, bad or late)."""
        # ``0 < close < inf``: finite and positive (NaN fails every comparison)
        i = self._index.get(symbol)
        if i is None or not 0.0 < close < math.inf:
            self.bad += 1
            return False
        last = self._last[i]
        prev_px = last.px
        prev_ts = last.ts
        if prev_px > 0.0 and candle_ts <= prev_ts:
            self.out_of_order += 1
            return False
        last.ts = candle_ts
        last.px = close
        if prev_px == 0.0:
            return False
        if self.timeframe_ms is not None and candle_ts - prev_ts != self.timeframe_ms:
            return False  # a gap: this return spans several candles and would misalign
        seq_ts = self._seq_ts
        if seq_ts and candle_ts == seq_ts[-1]:  # the newest candle time, the others just opened it
            col = self._seq[-1]
        elif not seq_ts or candle_ts > seq_ts[-1]:  # a new newest candle time
            col = self._new_column(candle_ts)
        else:  # a late one: its column when the time is kept (the times are in order), else a new one
            at = bisect.bisect_left(seq_ts, candle_ts)
            col = self._seq[at] if seq_ts[at] == candle_ts else self._new_column(candle_ts)
            if col < 0:
                return True  # older than every candle time kept: it can no longer count
        self._rows[i][col] = math.log(close / prev_px)
        self._stale[col] = True
        self._any_stale = True
        ver = self._ver
        ver[i] = ver[i] + 1
        self.version += 1
        return True

    def warm(self, symbol: str, closes: Sequence[tuple[int, float]]) -> int:
        """A symbol's history in bulk: only the closes whose returns the table can still hold
        go through ``on_close`` (the same path as live). Returns how many produced a return."""
        if symbol not in self._index:
            self.bad += len(closes)
            return 0
        tail = closes[-(self._keep + 1) :]
        return sum(self.on_close(symbol, ts, c) for ts, c in tail)

    def _new_column(self, ts: int) -> int:
        """The column for a new candle time ``ts`` (-1: older than every one kept)."""
        seq, seq_ts = self._seq, self._seq_ts
        if len(seq) < self._keep:  # a column never used yet: they are taken 0, 1, 2, ...
            col = len(seq)
        else:
            old = seq_ts[0]
            if old >= ts:
                return -1
            col = seq.pop(0)
            seq_ts.pop(0)
            for row in self._rows:
                row[col] = _NAN
            self._stale[col] = True
            self._any_stale = True
            self._epoch += 1
        if not seq_ts or seq_ts[-1] < ts:
            seq.append(col)
            seq_ts.append(ts)
        else:  # a candle time older than the newest kept (a symbol closing late)
            at = bisect.bisect(seq_ts, ts)
            seq.insert(at, col)
            seq_ts.insert(at, ts)
        self._order = None
        return col

    def _ordered(self) -> np.ndarray:
        if self._order is None:
            self._order = np.array(self._seq, dtype=np.intp)
        return self._order

    def _synced(self) -> np.ndarray:
        """The numpy copy of the table, brought up to date (the columns written since the last
        time, or all of it when many were)."""
        R = self._R
        if self._any_stale:
            stale = self._stale
            cols = [c for c in range(self._keep) if stale[c]]
            if 4 * len(cols) >= self._keep:
                R[:, :] = self._rows
            else:
                rows = self._rows
                for c in cols:
                    R[:, c] = [row[c] for row in rows]
            self._stale = [False] * self._keep
            self._any_stale = False
        return R

    def _table(self, rows: Sequence[int] | None = None) -> np.ndarray:
        """Returns of ``rows`` (all by default) over the kept candle times, oldest first."""
        order = self._ordered()
        R = self._synced()
        if rows is not None:
            R = R[np.asarray(rows, dtype=np.intp)]
        return R[:, order]

    # ---- queries ------------------------------------------------------------------------

    def correlation(self, a: str, b: str) -> float | None:
        if a == b:
            return 1.0
        i, j = self._index.get(a), self._index.get(b)
        if i is None or j is None:
            return None
        if i > j:
            i, j = j, i
        vi, vj, ep = self._ver[i], self._ver[j], self._epoch
        hit = self._cache.get((i, j))
        if hit is not None and hit[0] == vi and hit[1] == vj and hit[2] == ep:
            return hit[3]
        value = window_rho(self._rows[i], self._rows[j], self._seq, self.window)
        self._cache[(i, j)] = (vi, vj, ep, value)
        return value

    def row(self, symbol: str) -> dict[str, float | None]:
        """``symbol`` against every symbol (itself 1.0), one vectorised pass."""
        i = self._index.get(symbol)
        if i is None:
            return {}
        r = cm.row(self._table(), i, self.window)
        return {s: (None if v != v else float(v)) for s, v in zip(self.symbols, r.tolist(), strict=True)}

    def strongest(self, symbol: str) -> float | None:
        """The signed correlation of largest magnitude with another symbol (None: none yet)."""
        i = self._index.get(symbol)
        if i is None or len(self.symbols) < 2:
            return None
        r = cm.row(self._table(), i, self.window)
        r[i] = np.nan
        if np.isnan(r).all():
            return None
        return float(r[int(np.nanargmax(np.abs(r)))])

    def matrix(self, symbols: Sequence[str] | None = None) -> tuple[list[str], list[list[float | None]]]:
        """``symbols`` (every one by default) and the symmetric matrix of their correlations
        (None while warming up), in bulk."""
        syms = self.symbols if symbols is None else [s for s in symbols if s in self._index]
        M = cm.block(self._table([self._index[s] for s in syms]), self.window)
        return list(syms), [[None if v != v else v for v in r] for r in M.tolist()]

    def view(self, first: Sequence[str], shown: int, k: int) -> tuple[list[str], list[list[float | None]], list[tuple[str, str, float]]]:
        """What a console shows: up to ``shown`` symbols (``first``, then the safe list's order)
        with their matrix, and the ``k`` strongest couples of all symbols (by |ρ|)."""
        pick = list(dict.fromkeys([s for s in first if s in self._index] + self.symbols))[:shown]
        syms, matrix = self.matrix(pick)
        links: list[tuple[str, str, float]] = []
        if k > 0 and len(self.symbols) > 1:
            M = cm.block(self._table(), self.window)
            links = [(self.symbols[i], self.symbols[j], v) for i, j, v in cm.top_links(M, k)]
        return syms, matrix, links

    def correlated_with(self, symbol: str, among: Iterable[str] | None = None) -> set[str]:
        """Configured group peers plus live peers at or above the threshold (never the symbol).
        ``among``: look at these symbols only (the risk check's open positions); None: all."""
        peers = set(self._group_peers.get(symbol, ()))
        if symbol not in self._index:
            return peers
        thr = self.threshold
        if among is None:
            for other, c in self.row(symbol).items():
                if other != symbol and c is not None and c >= thr:
                    peers.add(other)
            return peers
        for other in among:
            if other != symbol and other not in peers:
                c = self.correlation(symbol, other)
                if c is not None and c >= thr:
                    peers.add(other)
        return peers
