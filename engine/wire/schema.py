"""One typed schema for everything the engine publishes and the book reads back.

Owns the message classes (pair state, portfolio, decision, order, fill, ack, heartbeat and
the maps nested in them) and their codec: ``to_wire()`` gives the msgpack-ready map,
``from_wire(map)`` checks every field's type and range and raises ``SchemaError`` naming the
field. The engine node builds them from the trading core, the journal reads decisions back
as them, the console's model stores them and its widgets read their attributes, and the test
fakes build them: a field renamed in one place fails everywhere at once.

Rules: a field is required unless it has a default; ``None`` is allowed only where the type
says ``| None``; numbers must be finite (ints stand in for floats; bools are never numbers);
integers fit 64 bits; strings are at most 4,096 characters and lists at most 10,000 items;
unknown keys are ignored (a newer engine may add fields); an optional field whose value is
``None`` is left out of the map (absent and ``None`` mean the same). See docs/wire.md.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, get_type_hints

ENGINE_WIRE_VERSION = 1
MAX_STR = 4096
MAX_LIST = 10_000
INT64 = 2**63
MAX_ABS = 1e18  # no price, quantity or amount of money means anything beyond this


class SchemaError(ValueError):
    """A map that does not fit its message type; the receiver counts and drops it."""


Check = Callable[[Any, str], Any]


def _float(x: Any, where: str) -> float:
    t = type(x)
    if t is float:
        if -MAX_ABS < x < MAX_ABS:  # NaN fails both comparisons
            return x
    elif t is int and -MAX_ABS < x < MAX_ABS:
        return float(x)
    raise SchemaError(f"{where}: expected a finite number, got {x!r}"[:200])


def _int(x: Any, where: str) -> int:
    if type(x) is int and -INT64 <= x < INT64:
        return x
    raise SchemaError(f"{where}: expected a 64-bit integer, got {x!r}"[:200])


def _str(x: Any, where: str) -> str:
    if type(x) is str and len(x) <= MAX_STR:
        return x
    raise SchemaError(f"{where}: expected a string of at most {MAX_STR} characters, got {type(x).__name__}")


def _bool(x: Any, where: str) -> bool:
    if type(x) is bool:
        return x
    raise SchemaError(f"{where}: expected true or false, got {x!r}"[:200])


def _optional(inner: Check) -> Check:
    def check(x: Any, where: str) -> Any:
        return None if x is None else inner(x, where)

    return check


def _list(inner: Check) -> Check:
    def check(x: Any, where: str) -> list[Any]:
        if type(x) is not list or len(x) > MAX_LIST:
            raise SchemaError(f"{where}: expected a list of at most {MAX_LIST} items")
        return [inner(v, where) for v in x]

    return check


def _tuple(items: tuple[Check, ...]) -> Check:
    def check(x: Any, where: str) -> tuple[Any, ...]:
        if type(x) not in (list, tuple) or len(x) != len(items):
            raise SchemaError(f"{where}: expected a list of {len(items)} items")
        return tuple(c(v, where) for c, v in zip(items, x, strict=True))

    return check


def _dict(key: Check, value: Check) -> Check:
    def check(x: Any, where: str) -> dict[Any, Any]:
        if type(x) is not dict or len(x) > MAX_LIST:
            raise SchemaError(f"{where}: expected a map of at most {MAX_LIST} entries")
        return {key(k, where): value(v, where) for k, v in x.items()}

    return check


def _nested(cls: type[Message]) -> Check:
    def check(x: Any, where: str) -> Message:
        if type(x) is not dict:
            raise SchemaError(f"{where}: expected a map")
        return cls._decode(x, where + ".")

    return check


_SCALARS: dict[Any, Check] = {float: _float, int: _int, str: _str, bool: _bool}


def _checker(tp: Any) -> Check:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        return _optional(_checker(inner[0]))
    if origin is list:
        return _list(_checker(args[0]))
    if origin is tuple:
        return _tuple(tuple(_checker(a) for a in args))
    if origin is dict:
        return _dict(_checker(args[0]), _checker(args[1]))
    if isinstance(tp, type) and issubclass(tp, Message):
        return _nested(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    raise TypeError(f"unsupported wire type {tp!r}")


def _plain(x: Any) -> Any:
    if isinstance(x, Message):
        return x.to_wire(versioned=False)
    if type(x) in (list, tuple):
        return [_plain(v) for v in x]
    if type(x) is dict:
        return {k: _plain(v) for k, v in x.items()}
    return x


M = TypeVar("M", bound="Message")


class Message:
    """Base of every wire message: a slotted dataclass with a compiled field checker."""

    __slots__ = ()
    _spec: ClassVar[tuple[tuple[str, Check, bool, Any], ...]]
    _plain_fields: ClassVar[frozenset[str]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._spec = ()  # compiled lazily: annotations may name classes defined later

    @classmethod
    def _compile(cls) -> tuple[tuple[str, Check, bool, Any], ...]:
        hints = get_type_hints(cls)
        spec = []
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == "seq" or f.name.startswith("_"):
                continue
            required = f.default is MISSING and f.default_factory is MISSING
            default = f.default if f.default is not MISSING else f.default_factory
            spec.append((f.name, _checker(hints[f.name]), required, default))
        cls._spec = tuple(spec)
        return cls._spec

    @classmethod
    def _decode(cls: type[M], m: dict[Any, Any], prefix: str = "") -> M:
        spec = cls._spec or cls._compile()
        kw: dict[str, Any] = {}
        for name, check, required, default in spec:
            x = m.get(name, MISSING)
            if x is MISSING:
                if required:
                    raise SchemaError(f"{cls.__name__}: field {prefix}{name} is missing")
                kw[name] = default() if callable(default) else default
                continue
            kw[name] = check(x, prefix + name)
        return cls(**kw)

    @classmethod
    def from_wire(cls: type[M], m: Any) -> M:
        """Check a decoded map (``v`` must be the integer wire version) and build the message."""
        if type(m) is not dict:
            raise SchemaError(f"{cls.__name__}: payload is not a map")
        v = m.get("v")
        if type(v) is not int or v != ENGINE_WIRE_VERSION:
            raise SchemaError(f"{cls.__name__}: field v: expected wire version {ENGINE_WIRE_VERSION}, got {v!r}"[:200])
        msg = cls._decode(m)
        seq = m.get("seq")
        if seq is not None and hasattr(msg, "seq"):
            msg.seq = _int(seq, "seq")  # type: ignore[attr-defined]
        return msg

    def to_wire(self, versioned: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"v": ENGINE_WIRE_VERSION} if versioned else {}
        for f in fields(self):  # type: ignore[arg-type]
            x = getattr(self, f.name)
            if x is None and f.default is None:
                continue
            out[f.name] = _plain(x)
        return out


# ---- nested maps ------------------------------------------------------------------------------


@dataclass(slots=True)
class IndicatorsMsg(Message):
    """Indicator values if the forming candle closed at the last price (the live preview)."""

    rsi: float | None = None
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    bb_pos: float | None = None  # 0 at the lower band, 1 at the upper
    ma_fast: float | None = None
    ma_slow: float | None = None
    atr: float | None = None


@dataclass(slots=True)
class SignalMsg(Message):
    """The strategy's view at the last closed candle."""

    type: str
    confidence: float | None = None
    entry: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    reasoning: str = ""
    ts: int = 0  # ms: open time of the candle that produced it


@dataclass(slots=True)
class DecisionBriefMsg(Message):
    approved: bool
    action: str
    reasons: list[str] = field(default_factory=list)
    ts: int = 0


@dataclass(slots=True)
class PositionMsg(Message):
    qty: float
    side: str  # long | short
    entry: float
    stop_loss: float = 0.0
    take_profit: float = 0.0
    unrealised: float = 0.0
    realised: float = 0.0
    notional: float = 0.0


@dataclass(slots=True)
class CorrelationMsg(Message):
    symbols: list[str] = field(default_factory=list)
    matrix: list[list[float | None]] = field(default_factory=list)


# ---- published messages ---------------------------------------------------------------------


@dataclass(slots=True)
class PairStateMsg(Message):
    """Topic ``pair``: one pair's state. ``stale`` is the engine's verdict (no tick for the
    safe list's ``stale_after_s``); ``exit_pending`` names an exit waiting to be filled."""

    symbol: str
    mode: str
    stale: bool
    tier: str = ""
    strategy: str = ""
    last: float | None = None
    bid: float | None = None
    ask: float | None = None
    change_pct: float | None = None
    tick_age_ms: int | None = None
    ticks: int = 0
    gaps: int = 0
    bad: int = 0
    ind: IndicatorsMsg = field(default_factory=IndicatorsMsg)
    signal: SignalMsg | None = None
    decision: DecisionBriefMsg | None = None
    position: PositionMsg | None = None
    exit_pending: str | None = None
    closes: list[float] | None = None  # sparkline, sent at most twice a second
    ts: int = 0  # ns, engine publish time
    seq: int = 0


@dataclass(slots=True)
class PortfolioMsg(Message):
    """Topic ``portfolio``. ``correlated_cluster`` is the largest set of open positions the
    correlation check counts together; ``halted``: some pair is HALTED (re-arm needed)."""

    capital: float
    cash: float
    equity: float
    realised: float
    unrealised: float
    fees: float
    daily_pnl: float
    exposure_used: float
    exposure_max: float
    correlated_used: int
    correlated_max: int
    halted: bool
    positions: int
    correlated_cluster: list[str] = field(default_factory=list)
    corr: CorrelationMsg = field(default_factory=CorrelationMsg)
    ts: int = 0
    seq: int = 0


@dataclass(slots=True)
class DecisionMsg(Message):
    """Topic ``decision``: a risk decision with every check (name, ok, reason)."""

    key: str
    symbol: str
    ts: int
    action: str
    approved: bool
    signal: SignalMsg
    qty: float | None = None
    price: float | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    id: int | None = None  # row id when read back from the book
    seq: int = 0

    @property
    def reasons(self) -> list[str]:
        return [reason or name for name, ok, reason in self.checks if not ok]


@dataclass(slots=True)
class OrderMsg(Message):
    """Topic ``order``: an order's state each time it changes (new → … → filled/rejected)."""

    client_order_id: str
    symbol: str
    side: str
    qty: float
    status: str
    reason: str
    decision_key: str = ""
    filled_qty: float = 0.0
    avg_price: float = 0.0
    message: str = ""
    ts: int = 0
    seq: int = 0


@dataclass(slots=True)
class FillMsg(Message):
    fill_id: str
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    ts: int
    reason: str = ""
    seq: int = 0


@dataclass(slots=True)
class NoticeMsg(Message):
    """Topic ``event``: something the operator should read (kill, re-arm, a blocked exit)."""

    ts: int
    kind: str
    level: str
    message: str
    seq: int = 0


@dataclass(slots=True)
class LatencyMsg(Message):
    n: int
    p50: float
    p99: float
    max: float


@dataclass(slots=True)
class HeartbeatMsg(Message):
    """Topic ``_hb``: liveness. ``phase`` is ``warming`` while history loads, then ``running``."""

    kind: str
    pid: int
    ts: int  # ns
    phase: str = "running"
    ticks: int = 0
    bad: int = 0
    decisions: int = 0
    mode_counts: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    latency_us: LatencyMsg | None = None
    final: bool = False
    seq: int = 0


@dataclass(slots=True)
class AckMsg(Message):
    """The one answer to each command. ``modes`` and ``halted`` let a console show the new
    state before the next ``pair``/``portfolio`` message arrives."""

    id: str
    cmd: str
    ok: bool
    message: str
    modes: dict[str, str] = field(default_factory=dict)
    halted: bool | None = None
