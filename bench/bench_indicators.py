"""Per-tick indicator cost on the engine's hot path, three ways.

Standalone script (not a test). It builds a 500-candle 1-minute history, then
replays one synthetic tick stream (~20 ticks per candle, so candle closes are
included) through:

  ours    CandleBuilder.on_tick + preview of RSI, Bollinger, SMA fast/slow and
          ATR on every tick, commit (update) when a candle closes
  pandas  the naive way: write the tick into a DataFrame of the last 500
          candles and recompute rolling RSI/BB/MA/ATR with pandas every tick
  talipp  talipp's incremental indicators: ``update`` (replace the forming
          input) per tick, ``add`` when a new candle starts

The three do the same work (a candle and every indicator's value on every tick): their ratios
are the like-for-like headline ``python -m bench --only compute`` prints (issue 16). The
engine's own tick is cheaper (it previews indicators only when it publishes) and is not divided
into these.

Each path is timed per tick with perf_counter_ns (~50 ns of timer overhead is
included in every figure) over several runs; the table shows the median of the
per-run mean µs/tick, the min-max spread of those means, and the pooled p99.

    /work/venv/bin/python bench/bench_indicators.py [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Runs as a plain script from anywhere: make the repo root importable.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from engine.core.candles import Candle, CandleBuilder  # noqa: E402
from engine.core.indicators import (  # noqa: E402
    ATR,
    RSI,
    SMA,
    BollingerBands,
    bollinger_position,
)

TF_S = 60
TF_MS = TF_S * 1000
HISTORY = 500
RSI_N, BB_N, BB_K, FAST_N, SLOW_N, ATR_N = 14, 20, 2.0, 20, 50, 14
T0 = 1_700_000_040_000  # aligned to the minute

Tick = tuple[int, float, float]


# ------------------------------------------------------------------ data


def make_history(seed: int = 1, n: int = HISTORY, start: float = 60000.0) -> list[Candle]:
    rng = random.Random(seed)
    out: list[Candle] = []
    close = start
    for i in range(n):
        o = close
        close = o * math.exp(rng.gauss(0.0, 0.001))
        hi = max(o, close) * (1 + abs(rng.gauss(0.0, 0.0004)))
        lo = min(o, close) * (1 - abs(rng.gauss(0.0, 0.0004)))
        out.append(Candle(T0 + i * TF_MS, o, hi, lo, close, rng.uniform(1.0, 5.0), 20))
    return out


def make_ticks(
    history: Sequence[Candle], n: int, seed: int = 2, per_candle: int = 20
) -> list[Tick]:
    rng = random.Random(seed)
    ts = history[-1].ts + TF_MS
    price = history[-1].close
    mean_gap = TF_MS / per_candle
    out: list[Tick] = []
    for _ in range(n):
        ts += max(1, int(rng.expovariate(1.0 / mean_gap)))
        price *= math.exp(rng.gauss(0.0, 0.0002))
        out.append((ts, price, rng.uniform(0.0, 0.3)))
    return out


# ------------------------------------------------------------------ paths


def run_ours(
    history: Sequence[Candle], ticks: Sequence[Tick]
) -> tuple[list[int], dict[str, float]]:
    b = CandleBuilder(TF_S, history=HISTORY)
    rsi, bb = RSI(RSI_N), BollingerBands(BB_N, BB_K)
    fast, slow, atr = SMA(FAST_N), SMA(SLOW_N), ATR(ATR_N)
    for c in b.seed(history):
        rsi.update(c.close)
        bb.update(c.close)
        fast.update(c.close)
        slow.update(c.close)
        atr.update(c.high, c.low, c.close)

    clock = time.perf_counter_ns
    lat: list[int] = []
    view: tuple[Any, ...] = ()
    for ts, price, vol in ticks:
        t0 = clock()
        for c in b.on_tick(ts, price, vol):
            rsi.update(c.close)
            bb.update(c.close)
            fast.update(c.close)
            slow.update(c.close)
            atr.update(c.high, c.low, c.close)
        f = b.forming
        bands = bb.preview(price)
        view = (
            rsi.preview(price),
            bands,
            bollinger_position(price, bands[0], bands[2]) if bands else None,
            fast.preview(price),
            slow.preview(price),
            atr.preview(f.high, f.low, price) if f is not None else None,
        )
        lat.append(clock() - t0)
    rsi_v, bands_v, _, fast_v, slow_v, atr_v = view
    return lat, {
        "rsi": rsi_v,
        "bb_mid": bands_v[1],
        "sma_fast": fast_v,
        "sma_slow": slow_v,
        "atr": atr_v,
    }


def run_pandas(
    history: Sequence[Candle], ticks: Sequence[Tick]
) -> tuple[list[int], dict[str, float]]:
    import pandas as pd

    df = pd.DataFrame(
        {
            "ts": [c.ts for c in history],
            "open": [c.open for c in history],
            "high": [c.high for c in history],
            "low": [c.low for c in history],
            "close": [c.close for c in history],
            "volume": [c.volume for c in history],
        }
    )
    forming_ts = -1
    alpha_rsi, alpha_atr = 1.0 / RSI_N, 1.0 / ATR_N
    clock = time.perf_counter_ns
    lat: list[int] = []
    last: dict[str, float] = {}
    for ts, price, vol in ticks:
        t0 = clock()
        bucket = ts - ts % TF_MS
        if bucket != forming_ts:
            row = pd.DataFrame(
                {
                    "ts": [bucket],
                    "open": [price],
                    "high": [price],
                    "low": [price],
                    "close": [price],
                    "volume": [vol],
                }
            )
            df = pd.concat([df.iloc[1:], row], ignore_index=True)
            forming_ts = bucket
        else:
            i = len(df) - 1
            df.loc[i, "high"] = max(df.at[i, "high"], price)
            df.loc[i, "low"] = min(df.at[i, "low"], price)
            df.loc[i, "close"] = price
            df.loc[i, "volume"] += vol
        close, high, low = df["close"], df["high"], df["low"]
        delta = close.diff()
        gain = delta.clip(lower=0.0).ewm(alpha=alpha_rsi, adjust=False).mean()
        loss = (-delta.clip(upper=0.0)).ewm(alpha=alpha_rsi, adjust=False).mean()
        rsi = 100.0 - 100.0 / (1.0 + gain / loss)
        mid = close.rolling(BB_N).mean()
        sd = close.rolling(BB_N).std(ddof=0)
        upper, lower = mid + BB_K * sd, mid - BB_K * sd
        fast = close.rolling(FAST_N).mean()
        slow = close.rolling(SLOW_N).mean()
        prev = close.shift(1)
        tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
        atr = tr.ewm(alpha=alpha_atr, adjust=False).mean()
        last = {
            "rsi": float(rsi.iloc[-1]),
            "bb_mid": float(mid.iloc[-1]),
            "bb_upper": float(upper.iloc[-1]),
            "bb_lower": float(lower.iloc[-1]),
            "sma_fast": float(fast.iloc[-1]),
            "sma_slow": float(slow.iloc[-1]),
            "atr": float(atr.iloc[-1]),
        }
        lat.append(clock() - t0)
    return lat, last


def run_talipp(
    history: Sequence[Candle], ticks: Sequence[Tick]
) -> tuple[list[int], dict[str, float]]:
    from talipp.indicators import ATR as TATR
    from talipp.indicators import BB as TBB
    from talipp.indicators import RSI as TRSI
    from talipp.indicators import SMA as TSMA
    from talipp.ohlcv import OHLCV

    closes = [c.close for c in history]
    rsi, bb = TRSI(RSI_N, input_values=closes), TBB(BB_N, BB_K, input_values=closes)
    fast, slow = TSMA(FAST_N, input_values=closes), TSMA(SLOW_N, input_values=closes)
    atr = TATR(
        ATR_N, input_values=[OHLCV(c.open, c.high, c.low, c.close, c.volume) for c in history]
    )
    forming_ts = -1
    o = h = lo = v = 0.0
    clock = time.perf_counter_ns
    lat: list[int] = []
    for ts, price, vol in ticks:
        t0 = clock()
        bucket = ts - ts % TF_MS
        if bucket != forming_ts:
            # talipp has no candle builder: its last input IS the forming candle.
            forming_ts, o, h, lo, v = bucket, price, price, price, vol
            for ind in (rsi, bb, fast, slow):
                ind.add(price)
            atr.add(OHLCV(o, h, lo, price, v))
        else:
            h, lo, v = max(h, price), min(lo, price), v + vol
            for ind in (rsi, bb, fast, slow):
                ind.update(price)
            atr.update(OHLCV(o, h, lo, price, v))
        _ = (rsi[-1], bb[-1], fast[-1], slow[-1], atr[-1])
        lat.append(clock() - t0)
    return lat, {
        "rsi": rsi[-1],
        "bb_mid": bb[-1].cb,
        "sma_fast": fast[-1],
        "sma_slow": slow[-1],
        "atr": atr[-1],
    }


# ------------------------------------------------------------------ harness


def _measure(
    fn: Callable[[Sequence[Candle], Sequence[Tick]], tuple[list[int], dict[str, float]]],
    history: Sequence[Candle],
    ticks: Sequence[Tick],
    runs: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    means: list[float] = []
    pooled: list[int] = []
    final: dict[str, float] = {}
    fn(history, ticks[: min(len(ticks), 500)])  # untimed warm-up: imports, caches, allocator
    for _ in range(runs):
        gc.collect()
        lat, final = fn(history, ticks)
        means.append(sum(lat) / len(lat) / 1000.0)
        pooled.extend(lat)
    pooled.sort()
    q = statistics.quantiles(pooled, n=100) if len(pooled) > 1 else [pooled[0] * 1.0] * 99
    return {
        "ticks_per_run": len(ticks),
        "runs": runs,
        "us_per_tick_median": statistics.median(means),
        "us_per_tick_min": min(means),
        "us_per_tick_max": max(means),
        "spread_pct": 100.0 * (max(means) - min(means)) / statistics.median(means),
        "p50_us": q[49] / 1000.0,
        "p99_us": q[98] / 1000.0,
        "per_run_us": means,
    }, final


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ticks", type=int, default=20_000, help="ticks per run for ours")
    ap.add_argument("--talipp-ticks", type=int, default=4_000, help="ticks per run for talipp")
    ap.add_argument("--pandas-ticks", type=int, default=300, help="ticks per run for pandas")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", action="append", default=[], choices=["pandas", "talipp"])
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--quiet", action="store_true", help="no table")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    history = make_history(args.seed)
    ticks = make_ticks(
        history, max(args.ticks, args.talipp_ticks, args.pandas_ticks), seed=args.seed + 1
    )
    paths: list[tuple[str, Callable[..., Any], int]] = [("ours", run_ours, args.ticks)]
    if "pandas" not in args.skip:
        paths.append(("pandas", run_pandas, args.pandas_ticks))
    if "talipp" not in args.skip:
        paths.append(("talipp", run_talipp, args.talipp_ticks))

    results: dict[str, Any] = {}
    finals: dict[str, dict[str, float]] = {}
    for name, fn, n in paths:
        results[name], finals[name] = _measure(fn, history, ticks[:n], args.runs)
    # Same tick prefix for a like-for-like check of the last values shown.
    n_check = min(n for _, _, n in paths)
    check = {name: fn(history, ticks[:n_check])[1] for name, fn, _ in paths}

    base = results["ours"]["us_per_tick_median"]
    ratios = {
        f"{k}_vs_ours": v["us_per_tick_median"] / base for k, v in results.items() if k != "ours"
    }
    out: dict[str, Any] = {
        "config": {
            "timeframe_s": TF_S,
            "history_candles": HISTORY,
            "ticks_per_candle": 20,
            "indicators": f"RSI({RSI_N}) BB({BB_N},{BB_K}) SMA({FAST_N}) SMA({SLOW_N}) ATR({ATR_N})",
            "runs": args.runs,
            "seed": args.seed,
        },
        "results": results,
        "ratios": ratios,
        "final_values_same_ticks": check,
        "env": {"python": platform.python_version(), "machine": platform.machine(), **_versions()},
        "elapsed_s": time.perf_counter() - started,
    }
    if not args.quiet:
        _print(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("pandas", "numpy", "talipp"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _print(out: dict[str, Any]) -> None:
    cfg = out["config"]
    print(
        f"per-tick cost, {cfg['indicators']}, {cfg['history_candles']} candles of history, {cfg['runs']} runs"
    )
    print(
        f"{'path':<8} {'ticks/run':>9} {'µs/tick':>9} {'min-max':>17} {'spread':>7} {'p50':>8} {'p99':>9} {'× ours':>8}"
    )
    base = out["results"]["ours"]["us_per_tick_median"]
    for name, r in out["results"].items():
        print(
            f"{name:<8} {r['ticks_per_run']:>9} {r['us_per_tick_median']:>9.2f} "
            f"{r['us_per_tick_min']:>8.2f}-{r['us_per_tick_max']:<8.2f} {r['spread_pct']:>6.1f}% "
            f"{r['p50_us']:>8.2f} {r['p99_us']:>9.2f} {r['us_per_tick_median'] / base:>8.1f}"
        )
    print("last values on the same ticks:")
    for name, vals in out["final_values_same_ticks"].items():
        print(f"  {name:<8} " + "  ".join(f"{k}={v:.6g}" for k, v in vals.items()))
    print(f"elapsed {out['elapsed_s']:.1f} s")


if __name__ == "__main__":
    main()
