"""The ML environment's speed: ``MultiParEnv`` steps per second, alone and under
``gymnasium.vector`` (sync in one process, async in worker processes), over several windows.

    python -m bench --only ml            # ~1 min
    python -m bench --only ml --quick    # ~20 s
    python -m bench.ml                   # the same, printed on its own

A step is one pair's candle close (docs/ml.md), i.e. one decision through the trading core;
the data is the bundled safe list's three pairs on three days of the simulated market, windows
of 720 candle times (2,160 steps an episode), episodes resetting themselves (resets counted).
Two action streams: random (a trade on most steps: orders, fills and SQLite writes) and all
HOLD (the core's per-candle work and the environment's own overhead only).
"""

from __future__ import annotations

import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Figure

CASES = (("single", 1, False), ("sync4", 4, False), ("async2", 2, True), ("async4", 4, True))


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    warnings.filterwarnings("ignore", module="gymnasium")
    from engine.ml.vector import make_vector_env, steps_per_second

    total = 4_000 if quick else 12_000  # environment steps per measurement, all envs together
    runs = 1 if quick else 3
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for policy in ("random", "hold"):
        for name, n, asynchronous in CASES:
            samples = []
            for k in range(runs):
                venv = make_vector_env(n, asynchronous=asynchronous)
                try:
                    r = steps_per_second(venv, total // n, seed=k, policy=policy)
                finally:
                    venv.close()
                samples.append(r["steps_per_s"])
                say(f"ml {policy} {name}: {r['steps_per_s']:,.0f} steps/s ({r['steps']} steps in {r['seconds']:.1f} s)")
            kind = "AsyncVectorEnv" if asynchronous else "SyncVectorEnv" if n > 1 else "one MultiParEnv"
            figures.append(Figure(
                f"ml.{policy}.{name}", f"env steps/s, {policy} actions, {kind} x {n}", "steps/s", "", None, samples,
            ))  # fmt: skip
            details[f"{policy}.{name}"] = {"samples": samples, "median": statistics.median(samples)}
    return figures, details


def main() -> int:
    from bench import report

    figs, _ = run("--quick" in sys.argv, lambda s: print(s, file=sys.stderr, flush=True))
    print(report.table(figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
