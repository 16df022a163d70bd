"""Train a small policy on the trading core, save it, and backtest it against the hand-written
strategies on data it never saw.

    .venv/bin/pip install -e '.[ml]'
    .venv/bin/python examples/train_policy.py                   # ~2-3 min on 2 cores
    .venv/bin/python examples/train_policy.py --data ~/.local/share/multipar-console/data
    .venv/bin/python examples/train_policy.py --iterations 2 --population 4 --window 120  # seconds

1. Data: the simulated market (``feed.sim``, seeded; no network) or a download directory
   (``--data``, ``multipar-console download``). The first ``--train-share`` of the span trains,
   the rest is held out.
2. Training: ``MultiParEnv`` (engine/ml/env.py: the backtest's own core, one step per pair's
   candle close, reward = the change of equity after fees and slippage) and a cross-entropy
   search over a linear policy (engine/ml/cem.py, numpy only), scored on ``--windows`` windows
   of ``--window`` candle times.
3. The policy is saved in the project's policy file format (``--out``, docs/ml.md).
4. The held-out data is backtested twice with ``run_backtest``: the safe list's hand-written
   strategies, then the same pairs trading the ``policy`` strategy loading the saved file.
   Both results are printed.

Exit status: 0 done; 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="train_policy.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, help="safe list (default: the bundled safe_list.yaml)")
    ap.add_argument("--data", type=Path, help="a download directory (default: the simulated market)")
    ap.add_argument("--sim-days", type=float, default=4.0, help="simulated days in all (default 4)")
    ap.add_argument("--sim-seed", type=int, default=0)
    ap.add_argument("--train-share", type=float, default=0.6, help="share of the span that trains (0.6)")
    ap.add_argument("--window", type=int, default=720, help="candle times per training episode (720)")
    ap.add_argument("--windows", type=int, default=2, help="training windows per candidate (2)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up candles (the safe list's history_candles)")
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="processes scoring candidates (2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("policy.npz"), help="where the policy goes (policy.npz)")
    args = ap.parse_args(argv)
    if not 0.1 <= args.train_share <= 0.9 or min(args.window, args.windows, args.iterations, args.population, args.workers) < 1:
        ap.error("--train-share in [0.1, 0.9]; --window, --windows, --iterations, --population, --workers >= 1")
    return args


def backtest(cfg: Any, candles: dict[str, Any], book: Path, warmup: int) -> Any:
    from engine.backtest.metrics import compute
    from engine.backtest.runner import run_backtest

    result = run_backtest(cfg, candles, book, warmup=warmup)
    return result, compute(result).portfolio


def row(name: str, f: Any) -> str:
    win = f"{f.win_rate:.0%}" if f.win_rate is not None else "-"
    return (f"{name:<24} {f.net_pnl:>+10.2f} {f.total_return:>+8.3%} {f.trades:>7d} {win:>6} "
            f"{f.fees:>9.2f} {f.drawdown.pct:>8.3%}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import numpy as np

    from engine.core.config import ConfigError, load_safe_list
    from engine.ml.cem import train_cem
    from engine.ml.data import bundled_safe_list, datadir_candles, sim_candles, split
    from engine.ml.env import policy_config

    t0 = time.perf_counter()
    try:
        cfg = bundled_safe_list() if args.config is None else load_safe_list(args.config)
        if args.data is not None:
            from feed.datadir import DataError

            try:
                data = datadir_candles(cfg, args.data)
            except DataError as exc:
                print(f"train_policy.py: {exc}", file=sys.stderr)
                return 2
            source = f"candles from {args.data}"
        else:
            data = sim_candles(cfg, args.sim_days, args.sim_seed)
            source = f"{args.sim_days:g} days of the simulated market (seed {args.sim_seed})"
    except ConfigError as exc:
        print(f"train_policy.py: {exc}", file=sys.stderr)
        return 2
    train, held_out = split(data, args.train_share)
    warmup = cfg.engine.history_candles if args.warmup is None else args.warmup
    pairs = cfg.active_symbols()
    print(f"data: {source}; pairs {', '.join(pairs)}; {min(len(a) for a in train.values())} candles "
          f"per pair train, {min(len(a) for a in held_out.values())} held out")
    env_kwargs = {"cfg": cfg, "candles": train, "window": args.window, "warmup": warmup}
    print(f"training: cross-entropy search, {args.iterations} iterations x {args.population} "
          f"candidates x {args.windows} windows of {args.window} candle times, {args.workers} worker(s)")
    try:
        policy, history = train_cem(
            env_kwargs, iterations=args.iterations, population=args.population,
            seeds=list(range(args.windows)), workers=args.workers, seed=args.seed,
        )
    except ValueError as exc:  # a window that does not fit the data
        print(f"train_policy.py: {exc}", file=sys.stderr)
        return 2
    steps = sum(h["steps"] for h in history)
    t_train = time.perf_counter() - t0
    policy.meta.update(source=source, pairs=pairs)
    out = policy.save(args.out)
    print(f"trained in {t_train:.0f} s ({steps:.0f} environment steps); saved {out}")
    w = np.round(policy.weights, 3)
    for name, r in zip(policy.layout, w, strict=True):
        print(f"  {name:<12} HOLD {r[0]:+.3f}  BUY {r[1]:+.3f}  SELL {r[2]:+.3f}")

    print(f"\nheld-out backtest (run_backtest, the same core and paper fills), warm-up {warmup} candles:")
    print(f"{'strategies':<24} {'net PnL':>10} {'return':>8} {'trades':>7} {'win':>6} {'fees':>9} {'max DD':>8}")
    with tempfile.TemporaryDirectory(prefix="multipar-train-") as tmp:
        _, hand = backtest(cfg, held_out, Path(tmp) / "hand.sqlite", warmup)
        print(row("hand-written (safe list)", hand))
        _, learned = backtest(policy_config(cfg, spec=str(out.resolve())), held_out, Path(tmp) / "policy.sqlite", warmup)
        print(row(f"policy ({out.name})", learned))
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
