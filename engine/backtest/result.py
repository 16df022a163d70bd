"""What a backtest run leaves behind, as plain data: the input of every report.

Owns ``BacktestResult`` and its parts. The runner fills it from the run's own book and the
candles it replayed; ``metrics.py`` computes the figures from it, ``report.py`` prints the
terminal summary and ``html.py`` writes the self-contained HTML report. ``to_json`` /
``from_json`` round-trip it (the results file), so a report can be rebuilt without rerunning.

Units: timestamps in ms since the epoch (UTC), money in the quote currency (USD), quantities
in base units. ``side`` is ``long``/``short``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_VERSION = 1


@dataclass(slots=True)
class RunMeta:
    config: str  # the safe list's path
    pairs: list[str]
    timeframe: str  # "1m"
    start_ms: int  # first candle replayed (its open time)
    end_ms: int  # last candle replayed (its close time)
    capital: float  # starting equity
    fee_rate: float  # taker fee used by the paper client, e.g. 0.001
    slippage_bps: float
    candles: int  # candles replayed (all pairs)
    elapsed_s: float = 0.0  # wall time of the run
    book: str = ""  # the run's SQLite book
    data: str = ""  # where the candles came from


@dataclass(slots=True)
class Trade:
    """One round trip: an entry and the exit that closed it (partial exits are separate trades)."""

    symbol: str
    side: str  # long | short
    qty: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    fees: float  # entry and exit fees
    pnl: float  # net of fees
    exit_reason: str  # signal | stop | take_profit | flatten | kill | end


@dataclass(slots=True)
class EquityPoint:
    ts: int
    equity: float  # cash + marked positions
    cash: float
    exposure: float  # gross notional of open positions


@dataclass(slots=True)
class Rejection:
    """A signal the risk pipeline refused, with the first check that refused it."""

    ts: int
    symbol: str
    action: str  # open_long | open_short
    check: str  # exposure_cap | correlation_cap | confidence | stop | size | ...
    reason: str


@dataclass(slots=True)
class PairSeries:
    """One pair's candles for the price chart (close prices, possibly downsampled)."""

    symbol: str
    ts: list[int] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    stops: list[tuple[int, float]] = field(default_factory=list)  # (ts, stop level) per entry


@dataclass(slots=True)
class BacktestResult:
    meta: RunMeta
    trades: list[Trade] = field(default_factory=list)
    equity: list[EquityPoint] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)  # symbol -> signals decided on
    series: list[PairSeries] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["version"] = RESULT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BacktestResult:
        if d.get("version") != RESULT_VERSION:
            raise ValueError(f"not a backtest result of version {RESULT_VERSION}")
        return cls(
            meta=RunMeta(**d["meta"]),
            trades=[Trade(**t) for t in d.get("trades", [])],
            equity=[EquityPoint(**e) for e in d.get("equity", [])],
            rejections=[Rejection(**r) for r in d.get("rejections", [])],
            signals=dict(d.get("signals", {})),
            series=[
                PairSeries(
                    symbol=s["symbol"],
                    ts=list(s["ts"]),
                    close=list(s["close"]),
                    stops=[tuple(x) for x in s.get("stops", [])],  # type: ignore[misc]
                )
                for s in d.get("series", [])
            ],
        )

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), separators=(",", ":")), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> BacktestResult:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
