"""``python -m bench``: run every benchmark and print one table of figures against their targets.

    python -m bench                      # everything (~19 min on 2 cores; backtest ~10 with peers)
    python -m bench --quick              # fewer runs and trials (~6 min)
    python -m bench --only compute,kill  # some of: compute latency throughput publish demo load kill attach backtest live ml
    python -m bench --json out.json      # results JSON (default: bench/results/<time>.json)
    python -m bench --compare bench/results/previous.json

Benchmarks print figures; they are not tests and fail nothing (the exit status is 0 unless the
command line is wrong). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Runs as ``python -m bench`` from the repo root or as a script: make the root importable.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bench import report  # noqa: E402
from bench.report import Figure  # noqa: E402

RESULTS_DIR = _ROOT / "bench" / "results"
Bench = Callable[[bool, Callable[[str], None]], tuple[list[Figure], dict[str, Any]]]


def _benches() -> dict[str, Bench]:
    from bench import (
        attach,
        backtest,
        compute,
        console,
        latency,
        live,
        ml,
        publish,
        scaling,
        throughput,
    )

    return {
        "compute": compute.run,
        "latency": latency.run,
        "throughput": throughput.run,
        "publish": publish.run,
        "demo": console.run_demo,
        "load": console.run_load,
        "kill": console.run_kill,
        "attach": attach.run,
        "backtest": backtest.run,
        "live": live.run,
        "ml": ml.run,
        "scaling": scaling.run,
        "cold": scaling.run_cold,
    }


NAMES = ("compute", "latency", "throughput", "publish", "demo", "load", "kill", "attach", "backtest", "live", "ml",
         "scaling", "cold")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(unknown) or text!r}; choose from {', '.join(NAMES)}"
        )
    return names


def _loadavg() -> str:
    """1/5/15-minute load: other work on the machine shows in every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--only", type=_names, metavar="NAME[,NAME]", help=f"some of: {', '.join(NAMES)}"
    )
    ap.add_argument("--quick", action="store_true", help="fewer runs and trials (~6 min)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="where to write the results JSON")
    ap.add_argument(
        "--compare", type=Path, metavar="PATH", help="print deltas against a previous results JSON"
    )
    args = ap.parse_args(argv)

    previous: dict[str, Any] | None = None
    if args.compare is not None:
        try:
            previous = json.loads(args.compare.read_text())
            previous["_path"] = str(args.compare)
        except (OSError, ValueError) as exc:
            ap.error(f"--compare {args.compare}: {exc}")

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {text}", file=sys.stderr, flush=True)

    names = args.only or list(NAMES)
    benches = _benches()
    machine = report.machine()
    say(
        f"bench {'--quick ' if args.quick else ''}{','.join(names)} on {machine['nproc']} cores "
        f"({machine['cpu']}), Python {machine['python']}, {machine['core']}, load {_loadavg()}"
    )
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name in names:
        b0 = time.monotonic()
        say(f"--- {name}")
        try:
            figs, det = benches[name](args.quick, say)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            logging.getLogger("bench").exception("%s failed", name)
            figs, det = (
                [Figure(f"{name}.failed", f"{name} benchmark", "", "", None, missing=str(exc))],
                {},
            )
        figures += figs
        details[name] = det
        timings[name] = time.monotonic() - b0
    cold = [x for n in ("demo", "kill") for x in details.get(n, {}).get("cold_start_s", [])]
    if "demo" in names or "kill" in names:
        from bench.console import cold_start_figure

        figures.append(cold_start_figure(cold))
    elapsed = time.monotonic() - t0
    say(f"done in {elapsed:.0f} s, load {_loadavg()}")

    print()
    print(report.table(figures))
    print(
        f"\n{len(figures)} figures in {elapsed:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})"
    )
    payload = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": machine,
        "loadavg_end": _loadavg(),
        "elapsed_s": elapsed,
        "timings_s": timings,
        "figures": [f.to_dict() for f in figures],
        "details": details,
    }
    out = args.json or RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S.json", time.localtime(started))
    report.write_json(out, payload)
    print(f"results: {os.path.relpath(out)}")
    if previous is not None:
        print()
        print(report.compare(previous, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
