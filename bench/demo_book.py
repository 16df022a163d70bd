"""Read a run's book as a trader would: round trips, holds, fees against the moves, stop distances.

    multipar-console daemon --demo --seed 7 --run-dir /tmp/demo   # let it trade; Ctrl-C after 5 min
    python -m bench.demo_book /tmp/demo/demo.sqlite --timeframe 2s

Per round trip (the fill that opens a position to the fill that closes it): the hold in candles,
the PnL before and after fees and how it ended; then the totals (wins, fees as a share of the
trades' gross movement); then every entry decision: approved or refused, the stop's distance below
the fill, the target's distance above it, the rule that set the size, and why a refusal refused.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.config import parse_timeframe


def report(book: Path, timeframe_s: int) -> str:
    db = sqlite3.connect(f"file:{book}?mode=ro", uri=True)
    lines: list[str] = []
    held: dict[str, tuple[str, float, float, float, int]] = {}
    trips: list[tuple[str, float, float, float, str]] = []
    for sym, side, qty, px, fee, ts, reason in db.execute(
        "SELECT symbol, side, qty, price, fee, ts, reason FROM fills ORDER BY ts, rowid"
    ):
        if sym not in held:
            held[sym] = (side, qty, px, fee, ts)
            continue
        side0, qty0, px0, fee0, ts0 = held.pop(sym)
        gross = (px - px0) * qty0 * (1 if side0 == "buy" else -1)
        trips.append((sym, (ts - ts0) / (timeframe_s * 1000), gross, fee0 + fee, reason))
    for sym, hold, gross, fees, reason in trips:
        lines.append(f"{sym:<10} hold {hold:5.1f} candles  gross {gross:+8.2f}  fees {fees:6.2f}  "
                     f"net {gross - fees:+8.2f}  exit {reason}")  # fmt: skip
    if held:
        lines.append(f"open: {', '.join(sorted(held))}")
    moved = sum(abs(t[2]) for t in trips)
    fees = sum(t[3] for t in trips)
    wins = sum(t[2] - t[3] > 0 for t in trips)
    holds = sorted(t[1] for t in trips)
    if trips:
        lines.append(f"round trips {len(trips)}, wins {wins}, median hold {holds[len(holds) // 2]:.1f} "
                     f"candles, fees {fees:.2f} = {fees / moved:.0%} of the gross movement {moved:.2f}"
                     if moved else f"round trips {len(trips)}")  # fmt: skip
    else:
        lines.append("no round trip yet")
    for sym, ok, e, sl, tp, checks in db.execute(
        "SELECT symbol, approved, entry, stop_loss, take_profit, checks_json FROM decisions "
        "WHERE action LIKE 'open_%' ORDER BY id"
    ):
        by = {name: (passed, why) for name, passed, why in json.loads(checks)}
        stop = f"stop {100 * abs(e - sl) / e:.2f}% from the fill" if e and sl else "no stop"
        target = f"target {100 * (tp - e) / e:+.2f}%" if e and tp else "no target"
        size = by.get("sizing", (True, ""))[1]
        refused = "; ".join(why for passed, why in by.values() if not passed)
        lines.append(f"{sym:<10} {'APPROVED' if ok else 'refused '} {stop}, {target}; {size}"
                     + ("" if ok else f"; why: {refused}"))  # fmt: skip
    db.close()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("book", type=Path)
    ap.add_argument("--timeframe", default="2s", help="the run's candle interval (the demo's: 2s)")
    args = ap.parse_args(argv)
    print(report(args.book, parse_timeframe(args.timeframe)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
