"""The numpy kernels of the correlation tracker: Pearson correlation of aligned return windows.

Owns the arithmetic, not the memory: every function takes ``X``, the returns of some symbols
(rows) over the candle times kept (columns, oldest first, NaN where a symbol has no return),
and ``window``. A couple's correlation is taken over the last ``window`` candle times at which
both symbols have a return, exactly as ``RollingCorrelation`` fed those returns in time order
computes it (population moments; None when either side has no variance, σ below 1e-10 of its
mean's magnitude; clipped to [-1, 1]). NaN in a result means None.

(One couple, the risk check's question, is answered on the table's Python floats without an
array: ``engine.core.correlation.window_rho``.)

- ``row``: one symbol against every row, vectorised, O(rows × columns);
- ``block``: every couple of some rows at once: one matrix product over the last ``window``
  columns for the rows that have them all (the usual case), the window before the newest
  candle time for rows whose newest return has not arrived yet (the moments of a candle-close
  burst), and ``row`` for the few that fit neither (gaps, late starters);
- ``top_links``: the ``k`` strongest couples (by |ρ|) of a block.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.core.indicators.base import ZERO_VAR

Floats = npt.NDArray[np.float64]


def _finish(cov: Floats, vx: Floats, vy: Floats, mx: Floats, my: Floats) -> Floats:
    """ρ from moments, NaN where either side is flat, clipped to [-1, 1]. ``window_rho`` does
    the same on Python floats for one couple (tests/test_correlation_scale.py holds the two
    equal to 1e-12): change both."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / (np.sqrt(vx) * np.sqrt(vy))
    flat = (vx <= ZERO_VAR * mx * mx) | (vy <= ZERO_VAR * my * my)
    r = np.where(flat, np.nan, r)
    return np.clip(r, -1.0, 1.0)


def row(X: Floats, i: int, window: int) -> Floats:
    """ρ of row ``i`` against every row of ``X`` (NaN: None; ``out[i]`` is 1.0)."""
    valid = ~np.isnan(X)
    both = valid & valid[i]
    # keep, per row, only the last ``window`` shared positions
    from_end = np.cumsum(both[:, ::-1], axis=1)[:, ::-1]
    keep = both & (from_end <= window)
    enough = keep.sum(axis=1) == window
    xi = np.where(keep, X[i], 0.0)
    xo = np.where(keep, X, 0.0)
    my = xi.sum(axis=1) / window
    mx = xo.sum(axis=1) / window
    dy = np.where(keep, X[i] - my[:, None], 0.0)
    dx = np.where(keep, X - mx[:, None], 0.0)
    out = _finish(
        (dx * dy).sum(axis=1) / window, (dx * dx).sum(axis=1) / window, (dy * dy).sum(axis=1) / window, mx, my
    )
    out = np.where(enough, out, np.nan)
    out[i] = 1.0
    return out


def _normed(Xw: Floats, window: int) -> Floats:
    """Rows of ``Xw`` (all full) centred and scaled to unit length: the correlation of two
    rows is then their dot product (a flat row becomes NaN, None against everyone)."""
    m = Xw.mean(axis=1)
    D = Xw - m[:, None]
    ss = np.einsum("ij,ij->i", D, D)
    flat = ss / window <= ZERO_VAR * m * m
    with np.errstate(invalid="ignore", divide="ignore"):
        Z = D / np.sqrt(ss)[:, None]
    Z[flat] = np.nan
    return Z


def _cross(A: Floats, B: Floats) -> Floats:
    return np.clip(A @ B.T, -1.0, 1.0)


def block(X: Floats, window: int) -> Floats:
    """The symmetric matrix of every couple of rows of ``X`` (diagonal 1.0, NaN: None)."""
    n = X.shape[0]
    X = X[:, ~np.isnan(X).all(axis=0)]  # a candle time none of these rows holds changes no couple
    cols = X.shape[1]
    if cols < window or not n:
        out = np.full((n, n), np.nan)
        np.fill_diagonal(out, 1.0)
        return out
    valid = ~np.isnan(X)
    full1 = valid[:, cols - window :].all(axis=1)  # full on the last window
    g1 = np.flatnonzero(full1)
    if len(g1) == n:
        Z1 = _normed(X[:, cols - window :], window)
        out = _cross(Z1, Z1)
    else:
        out = np.full((n, n), np.nan)
        if len(g1):
            Z1 = _normed(X[g1, cols - window :], window)
            out[np.ix_(g1, g1)] = _cross(Z1, Z1)
    lagging = ~valid[:, -1]  # the newest candle time has not reached these rows yet
    full0 = np.zeros(n, dtype=bool)
    if cols > window and lagging.any():  # a couple with a lagging row: the window before the newest
        full0 = valid[:, cols - window - 1 : cols - 1].all(axis=1)
        g0 = np.flatnonzero(full0)
        late = np.flatnonzero(full0 & lagging)
        if len(late):
            Z0 = _normed(X[g0, cols - window - 1 : cols - 1], window)
            pos = np.searchsorted(g0, late)
            cross = _cross(Z0[pos], Z0)
            out[np.ix_(late, g0)] = cross
            out[np.ix_(g0, late)] = cross.T
    # rows no block holds (holes, late starters, a row full on the last window only that meets a
    # lagging one): one row at a time
    redo = ~(full1 | (full0 & lagging))
    if lagging.any():
        redo |= full1 & ~full0
    enough = valid.sum(axis=1) >= window
    for i in np.flatnonzero(redo):
        r = row(X, int(i), window) if enough[i] else np.full(n, np.nan)
        out[i, :] = r
        out[:, i] = r
    np.fill_diagonal(out, 1.0)
    return out


def top_links(M: Floats, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` couples (i < j) with the largest |ρ|, strongest first.

    Only the ``2k`` rows with the largest row maximum are searched: rows whose maximum exceeds
    a top-k couple's |ρ| each hold one of the k−1 stronger couples, so at most 2k−2 rows rank
    above any row of a top-k couple."""
    n = M.shape[0]
    if n < 2 or k <= 0:
        return []
    A = np.abs(M)
    A[np.isnan(A)] = -1.0
    np.fill_diagonal(A, -1.0)
    r = min(n, 2 * k)
    rows = np.argpartition(A.max(axis=1), n - r)[n - r :]
    sub = A[rows].ravel()
    m = min(2 * k, sub.size)  # a couple of two searched rows is there twice
    best = np.argpartition(sub, sub.size - m)[sub.size - m :]
    picked: set[tuple[int, int]] = set()
    for b in best.tolist():
        if sub[b] >= 0.0:
            i, j = int(rows[b // n]), b % n
            picked.add((min(i, j), max(i, j)))
    out = [(i, j, float(M[i, j])) for i, j in picked]
    out.sort(key=lambda t: (-abs(t[2]), t[0], t[1]))
    return out[:k]
