"""Market data for the environment: the simulated market's history, and windows cut from it.

Owns ``sim_candles`` (the feed's simulated market at candle scale, ``feed.sim``: the model the
demo streams, deterministic in its seed), ``bundled_safe_list`` and ``cut_window``. Candles are
per pair an ``(n, 6)`` float64 array: ts (ms), open, high, low, close, volume, in time order,
the shape ``engine.backtest.runner.run_backtest`` and the download directory's files use.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.core.config import SafeList, load_safe_list

SIM_END_S = 1_735_689_600.0  # 2025-01-01 00:00 UTC: simulated history ends here (any fixed time)
BUNDLED = Path(__file__).resolve().parents[2] / "safe_list.yaml"


def bundled_safe_list() -> SafeList:
    """The repository's own safe_list.yaml (not $MULTIPAR_SAFE_LIST nor ./safe_list.yaml: an
    environment built with no argument is the same everywhere)."""
    return load_safe_list(BUNDLED)


@lru_cache(maxsize=8)
def _sim(symbols: tuple[str, ...], tiers: tuple[str, ...], days: float, seed: int, tf_s: int) -> dict[str, np.ndarray]:
    from feed.sim.source import SimSource

    src = SimSource(list(symbols), seed=seed, tiers=dict(zip(symbols, tiers, strict=True)), clock=lambda: SIM_END_S)
    n = max(int(days * 86_400 // tf_s), 1)
    out = {}
    for s in symbols:
        a = np.asarray(src.history_sync(s, tf_s, n), dtype=np.float64)
        a.flags.writeable = False  # shared by every window cut from it
        out[s] = a
    return out


def sim_candles(cfg: SafeList, days: float, seed: int = 0, timeframe_s: int | None = None) -> dict[str, np.ndarray]:
    """``days`` of the simulated market for ``cfg``'s active pairs (each at its tier's
    volatility), ending 2025-01-01; cached per process (read-only arrays)."""
    symbols = tuple(cfg.active_symbols())
    tiers = tuple(str(cfg.pairs[s].tier) for s in symbols)
    return _sim(symbols, tiers, float(days), int(seed), int(timeframe_s or cfg.engine.timeframe_s))


def cut_window(
    candles: Mapping[str, np.ndarray], start_ms: int, length: int, warmup: int, tf_ms: int
) -> dict[str, np.ndarray]:
    """Each pair's candles from ``warmup`` candle times before ``start_ms`` to ``length`` after
    it (fewer at the data's edges): the warm-up the backtest seeds from, then the episode."""
    lo, hi = start_ms - warmup * tf_ms, start_ms + length * tf_ms
    out = {}
    for s, a in candles.items():
        ts = a[:, 0]
        i, j = np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "left")
        out[s] = a[i:j]
    return out


def datadir_candles(cfg: SafeList, data_dir: str | Path | None, timeframe: str | None = None) -> dict[str, np.ndarray]:
    """``cfg``'s active pairs from a download directory (``multipar-console download``; ours or
    freqtrade's files), every candle it holds; ``feed.datadir.DataError`` when a file is missing."""
    from feed.datadir import load_candles

    tf = timeframe or cfg.engine.timeframe
    out = {}
    for s in cfg.active_symbols():
        c = load_candles(s, tf, data_dir=data_dir)
        out[s] = np.column_stack([c.ts.astype("float64"), c.open, c.high, c.low, c.close, c.volume])
    return out


def split(candles: Mapping[str, np.ndarray], fraction: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each pair's candles before and from the time ``fraction`` of the common span: training
    data and held-out data that never overlap."""
    lo = max(float(a[0, 0]) for a in candles.values())
    hi = min(float(a[-1, 0]) for a in candles.values())
    cut = lo + (hi - lo) * fraction
    first = {s: a[a[:, 0] < cut] for s, a in candles.items()}
    second = {s: a[a[:, 0] >= cut] for s, a in candles.items()}
    return first, second
