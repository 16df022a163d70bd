"""What the exchange says, and what reconciliation concluded: plain data shared by the live
client (which fetches a ``VenueView``), the core (which compares it with the book and writes a
``ReconcileReport``), the wire, the console and ``multipar-console reconcile``.

A report's dict form (``to_dict``) is its wire and storage format (docs/wire.md, storage.md):

    {"ts": ms, "trigger": "start" | "reconnect" | "periodic" | "command", "ok": bool,
     "error": "", "pairs": [PairCheck.to_dict(), ...]}

Verdicts, per pair: ``ok`` (book and exchange agree), ``applied`` (they agree after applying
facts: fills the book missed, a protective stop placed again), ``mismatch`` (they differ in a
way only the operator may settle: the pair is HALTED until a choice), ``error`` (the exchange
could not be asked: HALTED), ``unchecked`` (something was in flight: compared next time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.core.models import Fill
from engine.core.orders import is_ours


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An open order at the exchange (spot, USDT-M, or a USDT-M conditional order)."""

    symbol: str  # the core's symbol (BTC/USDT)
    client_order_id: str
    side: str  # buy | sell
    qty: float
    filled: float = 0.0
    type: str = ""  # the exchange's: MARKET, LIMIT, STOP_LOSS_LIMIT, STOP_MARKET, ...
    price: float = 0.0
    trigger: float = 0.0
    reduce_only: bool = False

    @property
    def ours(self) -> bool:
        """Placed by this program (every client order id of ours starts with ``mp-``)."""
        return is_ours(self.client_order_id)

    @property
    def is_stop(self) -> bool:
        return "STOP" in self.type.upper() or self.trigger > 0.0

    def describe(self) -> str:
        at = f" @ {self.price:.8g}" if self.price else ""
        trig = f" stop {self.trigger:.8g}" if self.trigger else ""
        return f"{self.side} {self.qty:g} {self.type or 'order'}{trig}{at} ({self.client_order_id})"


@dataclass(frozen=True, slots=True)
class VenueView:
    """The exchange's state for some pairs, fetched at ``ts`` (ms). ``error`` set: the fetch
    failed and nothing else may be believed."""

    ts: int
    symbols: tuple[str, ...]
    markets: dict[str, str] = field(default_factory=dict)  # symbol -> "spot" | "futures"
    open_orders: tuple[VenueOrder, ...] = ()
    fills: tuple[Fill, ...] = ()  # our trades since the book's last fill (fill ids as the client books them)
    balances: dict[str, float] = field(default_factory=dict)  # spot asset -> total (free + locked)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)  # futures symbol -> (signed qty, entry)
    error: str = ""
    light: bool = False  # a periodic check: open orders and positions/balances only, no trades
    started_ts: int = 0  # when the fetch began (a fill booked after it makes a pair inconclusive)


@dataclass(slots=True)
class PairCheck:
    symbol: str
    market: str = "spot"
    verdict: str = "ok"
    book_qty: float = 0.0
    book_entry: float = 0.0
    book_stop: float = 0.0
    book_orders: list[str] = field(default_factory=list)
    venue_qty: float | None = None  # spot: the base asset's total balance; futures: the position
    venue_entry: float | None = None
    venue_orders: list[str] = field(default_factory=list)  # open orders of ours at the exchange
    foreign_orders: list[str] = field(default_factory=list)  # open orders not ours: listed, never touched
    applied: list[str] = field(default_factory=list)  # facts applied automatically
    mismatches: list[str] = field(default_factory=list)  # why the pair waits for the operator
    notes: list[str] = field(default_factory=list)
    choice: str = ""  # the operator's: adopt | flatten | keep
    choice_by: str = ""
    choice_ts: int = 0
    mode_before: str = ""  # the pair's mode before this reconciliation (restored by adopt/flatten)

    @property
    def waiting(self) -> bool:
        """Halted by this reconciliation and no choice made yet."""
        return self.verdict in ("mismatch", "error") and not self.choice

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> PairCheck:
        names = PairCheck.__dataclass_fields__
        return PairCheck(**{k: v for k, v in d.items() if k in names})


@dataclass(slots=True)
class ReconcileReport:
    ts: int
    trigger: str
    ok: bool = True  # the exchange answered
    error: str = ""
    pairs: list[PairCheck] = field(default_factory=list)

    @property
    def waiting(self) -> list[str]:
        """Pairs halted by this reconciliation that wait for the operator's choice."""
        return [p.symbol for p in self.pairs if p.waiting]

    @property
    def worth_showing(self) -> bool:
        """Anything an operator should see: a mismatch, an error, or something applied."""
        return any(p.verdict in ("applied", "mismatch", "error") or p.foreign_orders for p in self.pairs)

    def pair(self, symbol: str) -> PairCheck | None:
        return next((p for p in self.pairs if p.symbol == symbol), None)

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "trigger": self.trigger, "ok": self.ok, "error": self.error,
                "pairs": [p.to_dict() for p in self.pairs]}  # fmt: skip

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ReconcileReport:
        return ReconcileReport(int(d.get("ts") or 0), str(d.get("trigger") or ""), bool(d.get("ok", True)),
                               str(d.get("error") or ""),
                               [PairCheck.from_dict(p) for p in d.get("pairs") or [] if isinstance(p, dict)])  # fmt: skip

