"""One typed schema for everything the engine publishes and the book reads back.

Owns the message classes (pair state, portfolio, decision, order, fill, ack, heartbeat, the
maps nested in them, and the snapshot a console asks for when it attaches) and their codec:
``to_wire()`` gives the msgpack-ready map, ``from_wire(map)`` checks every field's type and
range and raises ``SchemaError`` naming the field. The engine node builds them from the trading core, the journal reads decisions back
as them, the console's model stores them and its widgets read their attributes, and the test
fakes build them: a field renamed in one place fails everywhere at once.

Rules: a field is required unless it has a default; ``None`` is allowed only where the type
says ``| None``; numbers must be finite (ints stand in for floats; bools are never numbers);
integers fit 64 bits; strings are at most 4,096 characters and lists at most 10,000 items;
unknown keys are ignored (a newer engine may add fields); an optional field whose value is
``None`` is left out of the map (absent and ``None`` mean the same). See docs/wire.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.wire.codec import ENGINE_WIRE_VERSION, INT64, MAX_STR, Message, SchemaError

__all__ = [
    "ENGINE_WIRE_VERSION",
    "INT64",
    "MAX_STR",
    "AckMsg",
    "CorrLinkMsg",
    "CorrelationMsg",
    "DecisionBriefMsg",
    "DecisionMsg",
    "FillMsg",
    "HeartbeatMsg",
    "IndicatorsMsg",
    "LatencyMsg",
    "Message",
    "NoticeMsg",
    "OrderMsg",
    "PairCheckMsg",
    "PairStateMsg",
    "PortfolioMsg",
    "PositionMsg",
    "ReconcileMsg",
    "SchemaError",
    "SignalMsg",
    "SnapshotMsg",
    "VenueMsg",
]

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
    opened_ts: int = 0  # ms: when the position was opened (its age); 0 = not known


@dataclass(slots=True)
class CorrLinkMsg(Message):
    """One couple of pairs and their live correlation of returns."""

    a: str
    b: str
    rho: float


@dataclass(slots=True)
class CorrelationMsg(Message):
    """Live correlations of returns (None while warming up); pairs at or above ``threshold``
    are linked, as are the safe list's configured groups.

    ``version`` 2 (issue 16): ``symbols`` is the part a console shows (the open positions
    first, then the safe list's order, at most ``CORR_SHOWN``), ``matrix`` their correlations,
    ``links`` the strongest couples of all ``pairs`` symbols by |ρ|. Version 1 (no such
    fields) had every symbol in ``symbols`` and the whole N×N ``matrix``."""

    symbols: list[str] = field(default_factory=list)
    matrix: list[list[float | None]] = field(default_factory=list)
    threshold: float | None = None
    links: list[CorrLinkMsg] = field(default_factory=list)
    pairs: int = 0  # every symbol the tracker follows (``symbols`` is the shown part)
    version: int = 1


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
    # only while warming up: closed candles the indicators hold, and the strategy's need
    warm_candles: int | None = None
    warm_need: int | None = None


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
    correlated_max: int
    halted: bool
    positions: int
    correlated_cluster: list[str] = field(default_factory=list)
    # absent (None): unchanged since the last message that carried it (sent when it changed, at
    # most once a second, again every 10 s, and always in a snapshot)
    corr: CorrelationMsg | None = None
    ts: int = 0
    seq: int = 0
    total_pnl: float | None = None  # realised - fees + unrealised since the account opened
    day_start_ts: int = 0  # ms: when the trading day of ``daily_pnl`` began; 0 = not marked yet
    entries_stopped: bool = False  # new entries stopped on every pair until the operator resumes them
    entries_reason: str = ""  # what stopped them: "flatten all", "operator"

    @property
    def correlated_used(self) -> int:
        return len(self.correlated_cluster)


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
class VenueMsg(Message):
    """A live engine's exchange connection (paper engines send none): ``state`` of the client
    (starting | running | failed | closed), a 418 ban or a 429 back-off in force until the
    given epoch ms (0: none), whether the private user stream is up, the last error (one line,
    never a secret)."""

    state: str
    banned_until_ms: int = 0
    backoff_until_ms: int = 0
    stream_ok: bool = True
    last_error: str = ""


@dataclass(slots=True)
class PairCheckMsg(Message):
    """One pair in a reconciliation report (engine/core/reconcile_view.py ``PairCheck``):
    the book's view beside the exchange's, what was applied, why the pair waits (if it does),
    and the operator's choice."""

    symbol: str
    market: str = "spot"
    verdict: str = "ok"  # ok | applied | mismatch | error | unchecked
    book_qty: float = 0.0
    book_entry: float = 0.0
    book_stop: float = 0.0
    book_orders: list[str] = field(default_factory=list)
    venue_qty: float | None = None
    venue_entry: float | None = None
    venue_orders: list[str] = field(default_factory=list)
    foreign_orders: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    choice: str = ""  # adopt | flatten | keep
    choice_by: str = ""
    choice_ts: int = 0
    mode_before: str = ""


@dataclass(slots=True)
class ReconcileMsg(Message):
    """Topic ``reconcile``: the latest reconciliation of the book with the exchange (live only),
    sent when one is made and when the operator makes a choice."""

    ts: int  # ms
    trigger: str  # start | reconnect | periodic | command
    ok: bool = True
    error: str = ""
    pairs: list[PairCheckMsg] = field(default_factory=list)
    seq: int = 0


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
    venue: VenueMsg | None = None  # live engines only


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
    # set by the daemon's kill switch when it had to do the engine's job: the pairs it flattened
    fallback: bool = False
    flat: list[str] = field(default_factory=list)
    noop: bool = False  # the command found nothing to do (already flat, already stopped)


@dataclass(slots=True)
class SnapshotMsg(Message):
    """The answer to the ``snapshot`` command: everything a console needs on attach, built in
    one loop turn. ``seq`` is the publisher's sequence number of every topic at that moment
    (0: nothing sent yet): a live message at or below it is already in the snapshot, the first
    one above it follows it with no gap. ``decisions``, ``fills`` and ``events`` are the book's
    latest (at most ``SNAPSHOT_HISTORY`` each), oldest first."""

    id: str
    portfolio: PortfolioMsg
    pairs: list[PairStateMsg] = field(default_factory=list)
    decisions: list[DecisionMsg] = field(default_factory=list)
    fills: list[FillMsg] = field(default_factory=list)
    events: list[NoticeMsg] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)  # topic -> its last sequence number
    ts: int = 0  # ns, when it was built
    pid: int = 0  # the engine's: a console that heard no heartbeat yet knows whose it is
    reconcile: ReconcileMsg | None = None  # the latest reconciliation (live engines)
