"""The kill switch's (and flatten-all's) progress, pair by pair: what its panel shows.

Owns ``KillProgress``, built when the operator confirms a kill or a flatten-all from the pairs
that held a position or an open order at that moment, then fed what the console already
receives: the command's ack (``apply_ack``) and, through the model's ``tap``, every order
update, fill, pair state and notice (``apply``). No Textual here.

A pair's stage moves: waiting (flatten-all) or HALTED (kill) → cancelling (an order that was
open at the kill, e.g. a resting protective stop) / cancelled (any order update saying so) →
closing (an order sent after the kill) → flat ✓ (the fill's price), or failed (an order
rejected: its message; the ack's "could not flatten X (why)") / blocked (the engine's
``exit_blocked`` notice). Every order update for the pair after the kill is a step of its
trail, whatever its reason. The exchange line is the live engine's ``kill_check`` notice;
paper has nothing at an exchange; after the daemon's fallback the engine checks nothing.

Call everything from the app's event loop (the model's tap runs there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from console.model import Ack, ConsoleModel
from engine.wire.schema import FillMsg, NoticeMsg, OrderMsg, PairStateMsg

# Stages, in the order a pair normally goes through them.
WAITING = "waiting"
HALTED = "HALTED"
CANCELLING = "cancelling"
CANCELLED = "cancelled"
CLOSING = "closing"
FLAT = "flat ✓"
FAILED = "failed"
BLOCKED = "blocked"
PROBLEMS = (FAILED, BLOCKED)

OPEN = frozenset({"new", "accepted", "partially_filled", "unknown"})  # engine.core.orders
FILLS_ONLY = "fills"  # a step known from fills only: its order's own update not seen yet
CHECK_KIND = "kill_check"  # the live engine's answer from the exchange (engine/node/kill_check.py)
BLOCKED_KIND = "exit_blocked"  # engine.core.execution: "{symbol} {reason} exit not filled: why"
_FAILED_PREFIX = "could not flatten "
_QTY_EPS = 1e-12


@dataclass(slots=True)
class OrderStep:
    """One order of the pair as last heard: an update or, before one, its fills."""

    order_id: str
    reason: str
    side: str
    qty: float
    status: str
    at: int  # the progress's message counter when it last changed; 0: open at the kill
    filled_qty: float = 0.0
    price: float = 0.0  # average fill price; 0: none yet
    message: str = ""

    @property
    def before(self) -> bool:
        """Open at the kill and not heard of since (a resting order the kill must cancel)."""
        return self.at == 0


@dataclass(slots=True)
class PairProgress:
    symbol: str
    side: str = ""  # the position at the kill: "long" | "short"; "" none
    qty: float = 0.0
    mode: str = ""
    position_open: bool = False  # per the latest pair state
    exit_pending: str | None = None
    state_at: int = 0  # the progress's message counter at the latest pair state
    orders: dict[str, OrderStep] = field(default_factory=dict)  # first heard first
    problem: str = ""  # FAILED or BLOCKED, from the ack or a notice
    reason: str = ""  # why, for the problem
    problem_at: int = 0
    ack_flat: bool = False  # the ack said every position was closed at once (paper)
    fallback_flat: bool = False  # in the fallback ack's ``flat``

    @property
    def closing_side(self) -> str:
        return {"long": "sell", "short": "buy"}.get(self.side, "")

    def _open(self) -> list[OrderStep]:
        return [o for o in self.orders.values() if o.status in OPEN]

    @property
    def flat(self) -> bool:
        if self.fallback_flat or self.ack_flat:
            return True
        if self._open():
            return False
        if not self.position_open:
            return True
        # the closing order filled since the latest state, or the state says no exit is
        # pending (a remainder below the lot step may stay: dust, flat for trading)
        return any(
            o.status == "filled" and o.side == self.closing_side and not o.before
            and (o.at > self.state_at or self.exit_pending is None)
            for o in self.orders.values()
        )  # fmt: skip

    @property
    def frozen(self) -> bool:
        """Flat for good: later orders and states of the pair (a new entry) are not the kill's."""
        if not self.flat:
            return False
        # flat by the ack alone: its fill (the price) and the flat state may still be on the way
        return not (self.ack_flat and self.position_open and self.price is None)

    @property
    def price(self) -> float | None:
        """The closing fill's average price, when one was heard."""
        for o in reversed(self.orders.values()):
            if o.price > 0.0 and o.side == self.closing_side:
                return o.price
        return None

    def last_order(self) -> OrderStep | None:
        return max(self.orders.values(), key=lambda o: o.at, default=None)

    @property
    def stage(self) -> str:
        if self.flat:
            return FLAT
        last = self.last_order()
        if self.problem and (last is None or self.problem_at > last.at):
            return self.problem
        if any(not o.before for o in self._open()):
            return CLOSING
        if last is not None and last.status == "rejected":
            return FAILED
        if any(o.before for o in self._open()):
            return CANCELLING
        if last is not None and last.status == "cancelled":
            return CANCELLED
        if self.exit_pending is not None or (last is not None and last.status == "filled"):
            return CLOSING
        return HALTED if self.mode == HALTED else WAITING

    @property
    def why(self) -> str:
        """The reason shown for a failed or blocked pair (the newest one)."""
        last = self.last_order()
        if last is not None and last.status == "rejected" and last.at > self.problem_at:
            return last.message or "rejected"
        return self.reason


def failures(message: str, symbols: Iterable[str]) -> dict[str, str]:
    """The pairs an ack says it could not flatten, with why: "...; could not flatten BTC/USDT
    (exit pending: no price), ETH/USDT (min notional 5.0)" (engine.core.commands); a reason
    may hold parentheses and commas, a symbol never "SYMBOL (" inside another's reason."""
    i = message.find(_FAILED_PREFIX)
    if i < 0:
        return {}
    text = message[i + len(_FAILED_PREFIX) :]
    starts = []
    for sym in symbols:
        at = text.find(f"{sym} (")
        while at > 0 and text[at - 2 : at] != ", ":  # a longer symbol ending in this one
            at = text.find(f"{sym} (", at + 1)
        if at >= 0:
            starts.append((at, sym))
    starts.sort()
    out = {}
    for k, (at, sym) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        chunk = text[at + len(sym) + 2 : end].rstrip().removesuffix(",").rstrip()
        out[sym] = chunk.removesuffix(")")
    return out


class KillProgress:
    """One kill's (or flatten-all's) progress; ``version`` rises with every change shown."""

    def __init__(self, cmd: str, symbols: Iterable[str], *, live: bool) -> None:
        self.cmd = cmd  # "kill" | "flatten_all"
        self.symbols = list(symbols)  # the safe list's: who an ack may name
        self.live = live
        self.pairs: dict[str, PairProgress] = {}
        self.ack: Ack | None = None
        self.ack_ms = 0.0
        self.check: NoticeMsg | None = None  # the engine's kill_check notice
        self.version = 0
        self._n = 0  # messages applied: orders every step and problem in time

    @classmethod
    def start(cls, cmd: str, model: ConsoleModel, *, live: bool) -> KillProgress:
        """The progress of ``cmd`` sent now: every pair with a position or an open order."""
        kp = cls(cmd, model.symbols, live=live)
        for sym, pv in model.pairs.items():
            pos = pv.state.position
            order = pv.order if pv.order is not None and pv.order.status in OPEN else None
            if not pv.has_position and order is None:
                continue
            p = kp.pairs[sym] = PairProgress(sym, mode=pv.state.mode)
            if pos is not None and pv.has_position:
                p.side, p.qty, p.position_open = pos.side, abs(pos.qty), True
            p.exit_pending = pv.state.exit_pending
            if order is not None:
                p.orders[order.client_order_id] = _step(order, at=0)
        return kp

    # ------------------------------------------------------------------ ingest

    def apply(self, msg: Any) -> None:
        """The model's tap: every pair state, order update, fill and notice it ingests."""
        t = type(msg)
        if t is PairStateMsg:
            self._pair(msg)
        elif t is OrderMsg:
            self._order(msg)
        elif t is FillMsg:
            self._fill(msg)
        elif t is NoticeMsg:
            self._notice(msg)

    def _tick(self) -> int:
        self._n += 1
        self.version += 1
        return self._n

    def _pair(self, msg: PairStateMsg) -> None:
        p = self.pairs.get(msg.symbol)
        if p is None or p.frozen:
            return
        self._n += 1
        p.state_at = self._n
        pos = msg.position
        open_ = pos is not None and pos.qty != 0.0
        if (msg.mode, open_, msg.exit_pending) != (p.mode, p.position_open, p.exit_pending):
            p.mode, p.position_open, p.exit_pending = msg.mode, open_, msg.exit_pending
            self.version += 1

    def _pair_for(self, symbol: str, order_id: str) -> PairProgress | None:
        p = self.pairs.get(symbol)
        if p is None:
            # a pair the console thought idle: after a kill (every pair HALTED) its order is
            # the kill's; after a flatten-all the pair may just be trading
            if self.cmd != "kill" or symbol not in self.symbols:
                return None
            p = self.pairs[symbol] = PairProgress(symbol, mode=HALTED)
        if p.frozen and order_id not in p.orders:
            return None
        return p

    def _order(self, msg: OrderMsg) -> None:
        p = self._pair_for(msg.symbol, msg.client_order_id)
        if p is None:
            return
        step = p.orders.get(msg.client_order_id)
        at = self._tick()
        if step is None:
            p.orders[msg.client_order_id] = _step(msg, at)
            return
        step.reason, step.side, step.qty, step.status = msg.reason, msg.side, msg.qty, msg.status
        step.filled_qty = max(step.filled_qty, msg.filled_qty)
        step.price = msg.avg_price if msg.avg_price > 0.0 else step.price
        step.message, step.at = msg.message, at

    def _fill(self, msg: FillMsg) -> None:
        p = self._pair_for(msg.symbol, msg.order_id)
        if p is None:
            return
        at = self._tick()
        step = p.orders.get(msg.order_id)
        if step is None:
            step = p.orders[msg.order_id] = OrderStep(
                msg.order_id, msg.reason, msg.side, msg.qty, FILLS_ONLY, at
            )
        done = step.filled_qty
        step.filled_qty = done + msg.qty
        step.price = (step.price * done + msg.price * msg.qty) / max(step.filled_qty, _QTY_EPS)
        step.at = at

    def _notice(self, msg: NoticeMsg) -> None:
        if msg.kind == CHECK_KIND:
            self.check = msg
            self.version += 1
        elif msg.kind == BLOCKED_KIND:
            sym = msg.message.split(" ", 1)[0]
            p = self.pairs.get(sym)
            if p is not None and not p.frozen:
                why = msg.message.split("exit not filled: ", 1)[-1]
                p.problem, p.reason, p.problem_at = BLOCKED, why, self._tick()

    def apply_ack(self, ack: Ack, elapsed_ms: float) -> None:
        """The command's answer: modes, the pairs it could not flatten and why, the fallback's
        flattened pairs; an ok ack that names no closing and no failure closed every position
        at once (paper: ``N position(s) flattened``)."""
        self.ack, self.ack_ms = ack, elapsed_ms
        at = self._tick()
        for sym in ack.flat:
            self.pairs.setdefault(sym, PairProgress(sym)).fallback_flat = True
        failed = failures(ack.message, self.symbols)
        for sym, why in failed.items():
            p = self.pairs.setdefault(sym, PairProgress(sym))
            p.problem, p.reason, p.problem_at = FAILED, why, at
        for sym, mode in ack.modes.items():
            if sym in self.pairs:
                self.pairs[sym].mode = mode
        instant = ack.ok and not ack.fallback and not failed and "closing" not in ack.message
        if instant:
            for p in self.pairs.values():
                p.ack_flat = p.ack_flat or bool(p.side)

    # ------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        """How many pairs are flat, failed or blocked, and still in progress."""
        out = {"flat": 0, "problem": 0, "busy": 0}
        for p in self.pairs.values():
            stage = p.stage
            key = "flat" if stage == FLAT else "problem" if stage in PROBLEMS else "busy"
            out[key] += 1
        return out

    def exchange(self) -> tuple[str, str]:
        """(level, text) of the exchange verification line; level: info | warning | error |
        pending | muted."""
        if self.check is not None:
            return self.check.level, self.check.message
        if not self.live:
            return "muted", "not applicable: paper, nothing rests at an exchange"
        if self.ack is not None and self.ack.fallback:
            if not self.ack.ok:
                return "error", "not checked: the daemon's fallback failed (see the ack)"
            return (
                "warning",
                "not checked: the daemon's fallback closed the book; look at the exchange",
            )
        return "pending", "waiting for the engine's check (≤ ~10 s after the closes)"

    @property
    def done(self) -> bool:
        """Every pair flat and the exchange's answer in (or none to wait for)."""
        return (
            self.ack is not None
            and all(p.flat for p in self.pairs.values())
            and self.exchange()[0] != "pending"
        )


def _step(msg: OrderMsg, at: int) -> OrderStep:
    return OrderStep(
        msg.client_order_id, msg.reason, msg.side, msg.qty, msg.status, at,
        msg.filled_qty, msg.avg_price, msg.message,
    )  # fmt: skip
