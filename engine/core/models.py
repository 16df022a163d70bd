"""Trading-domain values shared by the engine's parts: signals, checks, decisions, orders,
fills, positions and pair modes. Plain slotted dataclasses: they live on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SignalType(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class PairMode(StrEnum):
    """What the operator allows a pair to do. STALE is not a mode: it is derived from data age."""

    ACTIVE = "ACTIVE"  # entries and exits
    PAUSED = "PAUSED"  # no new entries; open positions keep their stops
    REDUCING = "REDUCING"  # exits only (same as PAUSED for entries; strategy exits still run)
    HALTED = "HALTED"  # kill switch: everything flat, nothing opens until re-armed


@dataclass(slots=True)
class Indicators:
    """Committed indicator values of a pair after its latest closed candle (None = warming up)."""

    rsi: float | None = None
    prev_rsi: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    ma_fast: float | None = None
    ma_slow: float | None = None
    prev_ma_fast: float | None = None
    prev_ma_slow: float | None = None
    atr: float | None = None
    highest: float | None = None  # highest high of the `lookback` candles BEFORE the latest
    lowest: float | None = None  # lowest low of the `lookback` candles BEFORE the latest


@dataclass(slots=True)
class Signal:
    symbol: str
    type: SignalType
    confidence: float = 0.0  # 0..1
    entry: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    reasoning: str = ""
    ts: int = 0  # ms: open time of the candle that produced it

    @property
    def actionable(self) -> bool:
        return self.type is not SignalType.HOLD


@dataclass(slots=True)
class CheckResult:
    name: str
    ok: bool
    reason: str = ""


@dataclass(slots=True)
class Decision:
    """The outcome of running a signal through the risk pipeline; stored whether approved or not."""

    key: str  # idempotency key: symbol|candle open ts|BUY/SELL (exits: symbol|reason|...); stored once
    symbol: str
    ts: int  # ms
    action: str  # "open_long", "open_short", "close_long", "close_short"
    signal: Signal
    checks: list[CheckResult] = field(default_factory=list)
    approved: bool = False
    qty: float = 0.0  # units approved (after sizing and exchange precision)
    price: float = 0.0  # reference price used for sizing
    size_rule: str = ""  # the rule that set an entry's size: risk | max_position | leverage | cash

    @property
    def reasons(self) -> list[str]:
        return [c.reason or c.name for c in self.checks if not c.ok]


@dataclass(slots=True)
class Fill:
    fill_id: str
    order_id: str  # client order id, derived from the decision key: idempotent
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    ts: int  # ms
    reason: str = ""  # "signal", "stop", "take_profit", "flatten", "kill", ...


@dataclass(slots=True)
class Position:
    """Net position of one pair. qty > 0 long, qty < 0 short (futures only)."""

    symbol: str
    qty: float = 0.0
    entry: float = 0.0  # average entry price
    stop_loss: float = 0.0
    take_profit: float = 0.0
    realised: float = 0.0  # realised PnL of this pair, fees excluded
    fees: float = 0.0
    opened_ts: int = 0

    @property
    def is_open(self) -> bool:
        return self.qty != 0.0

    def notional(self, mark: float) -> float:
        return abs(self.qty) * mark

    def unrealised(self, mark: float) -> float:
        return self.qty * (mark - self.entry)
