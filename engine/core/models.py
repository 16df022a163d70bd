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


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
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

    def __init__(
        self,
        rsi: float | None = None,
        prev_rsi: float | None = None,
        bb_upper: float | None = None,
        bb_middle: float | None = None,
        bb_lower: float | None = None,
        ma_fast: float | None = None,
        ma_slow: float | None = None,
        prev_ma_fast: float | None = None,
        prev_ma_slow: float | None = None,
        atr: float | None = None,
        highest: float | None = None,
        lowest: float | None = None,
    ) -> None:
        self.rsi, self.prev_rsi, self.atr = rsi, prev_rsi, atr
        self.bb_upper, self.bb_middle, self.bb_lower = bb_upper, bb_middle, bb_lower
        self.ma_fast, self.ma_slow, self.prev_ma_fast, self.prev_ma_slow = ma_fast, ma_slow, prev_ma_fast, prev_ma_slow
        self.highest, self.lowest = highest, lowest


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class Signal:
    symbol: str
    type: SignalType
    confidence: float = 0.0  # 0..1
    entry: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    reasoning: str = ""
    ts: int = 0  # ms: open time of the candle that produced it

    def __init__(
        self,
        symbol: str,
        type: SignalType,
        confidence: float = 0.0,
        entry: float = 0.0,
        stop_loss: float = 0.0,
        take_profit: float = 0.0,
        reasoning: str = "",
        ts: int = 0,
    ) -> None:
        self.symbol, self.type, self.confidence, self.entry = symbol, type, confidence, entry
        self.stop_loss, self.take_profit, self.reasoning, self.ts = stop_loss, take_profit, reasoning, ts

    @property
    def actionable(self) -> bool:
        return self.type is not SignalType.HOLD


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
class CheckResult:
    name: str
    ok: bool
    reason: str = ""

    def __init__(self, name: str, ok: bool, reason: str = "") -> None:
        self.name, self.ok, self.reason = name, ok, reason


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
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

    def __init__(
        self,
        key: str,
        symbol: str,
        ts: int,
        action: str,
        signal: Signal,
        checks: list[CheckResult] | None = None,
        approved: bool = False,
        qty: float = 0.0,
        price: float = 0.0,
        size_rule: str = "",
    ) -> None:
        self.key, self.symbol, self.ts, self.action, self.signal = key, symbol, ts, action, signal
        self.checks = [] if checks is None else checks
        self.approved, self.qty, self.price, self.size_rule = approved, qty, price, size_rule

    @property
    def reasons(self) -> list[str]:
        return [c.reason or c.name for c in self.checks if not c.ok]


@dataclass(slots=True, init=False)  # __init__ written out: compiled (a generated one is not)
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

    def __init__(
        self,
        fill_id: str,
        order_id: str,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        fee: float,
        ts: int,
        reason: str = "",
    ) -> None:
        self.fill_id, self.order_id, self.symbol, self.side = fill_id, order_id, symbol, side
        self.qty, self.price, self.fee, self.ts, self.reason = qty, price, fee, ts, reason


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

    def copy(self) -> Position:
        """A copy with every field: ``dataclasses.replace(self)``, written out (tests hold the two equal)."""
        return Position(self.symbol, self.qty, self.entry, self.stop_loss, self.take_profit, self.realised,
                        self.fees, self.opened_ts)  # fmt: skip

    @property
    def is_open(self) -> bool:
        return self.qty != 0.0

    def notional(self, mark: float) -> float:
        return abs(self.qty) * mark

    def unrealised(self, mark: float) -> float:
        return self.qty * (mark - self.entry)
