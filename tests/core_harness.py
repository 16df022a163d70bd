"""In-process trading core for tests: a clock that moves only when told, the real paper
client, a real SQLite journal in a temp dir, and a sink that keeps every event.

``make_core`` builds what ``engine.node.service.EngineNode`` builds, minus the sockets;
``Walk`` drives it with a seeded random walk, so a test exercises the production path.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.clock import Clock
from engine.core.config import SafeList
from engine.core.events import CoreEvent, DecisionMade, FillBooked, OrderUpdated
from engine.core.markets import default_rules
from engine.core.orders import ExecutionEvent, Order
from engine.core.ports import ExecutionClient
from engine.core.trader import TradingCore
from engine.execution.paper import PaperExecutionClient
from engine.journal.store import Store

T0_MS = 1_700_000_000_000
START = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}


class FakeClock(Clock):
    def __init__(self, ms: int = T0_MS) -> None:
        self.ms = ms

    def time_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000.0

    def advance(self, ms: int) -> None:
        self.ms += ms


@dataclass
class Events:
    all: list[CoreEvent] = field(default_factory=list)

    def emit(self, event: CoreEvent) -> None:
        self.all.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.all if isinstance(e, kind)]

    @property
    def decisions(self) -> list[Any]:
        return [e.decision for e in self.of(DecisionMade)]

    @property
    def fills(self) -> list[Any]:
        return [e.fill for e in self.of(FillBooked)]

    @property
    def orders(self) -> list[Order]:
        return [e.order for e in self.of(OrderUpdated)]


def safe_list(strategies: dict[str, str] | None = None, **portfolio: Any) -> SafeList:
    """The repo's shape, with the given pairs → strategies (default: the repo's three)."""
    strategies = strategies or {"BTC/USDT": "momentum", "ETH/USDT": "mean_reversion", "SOL/USDT": "breakout"}
    pairs = {
        sym: {"tier": "STABLE", "strategy": strat, "max_position_size_usd": 500, "params": {"lookback": 10}}
        for sym, strat in strategies.items()
    }
    return SafeList.model_validate(
        {
            "portfolio": {"capital_usd": 10_000, "correlation_groups": [], **portfolio},
            "engine": {"timeframe": "1m", "history_candles": 0},
            "pairs": pairs,
        }
    )


def paper(cfg: SafeList, clock: FakeClock) -> PaperExecutionClient:
    rules = {s: default_rules(s) for s in cfg.active_symbols()}
    return PaperExecutionClient(cfg.portfolio.taker_fee, cfg.portfolio.slippage_bps, rules, clock)


@dataclass
class Harness:
    core: TradingCore
    clock: FakeClock
    events: Events
    store: Store
    db: Path

    def tick(self, symbol: str, price: float, spread: float = 1e-4, volume: float = 0.0) -> bool:
        ps = self.core.pairs[symbol]
        half = price * spread / 2
        return self.core.on_tick(ps, self.clock.ms, price - half, price + half, price, volume)

    def reopen(self, client: ExecutionClient | None = None) -> Harness:
        """The same book after a restart: a new core (and by default a new paper venue)."""
        self.store.close()
        return make_core(self.db.parent, self.core.cfg, clock=self.clock, client=client, db=self.db)


def make_core(
    tmp: Path,
    cfg: SafeList | None = None,
    *,
    clock: FakeClock | None = None,
    client: ExecutionClient | None = None,
    db: Path | None = None,
    timeframe_s: int | None = None,
) -> Harness:
    cfg = cfg or safe_list()
    clock = clock or FakeClock()
    events = Events()
    db = db or tmp / "book.sqlite"
    store = Store(db)
    core = TradingCore(
        cfg, clock=clock, journal=store, sink=events, client=client or paper(cfg, clock),
        rules={s: default_rules(s) for s in cfg.active_symbols()}, timeframe_s=timeframe_s,
    )
    return Harness(core, clock, events, store, db)


class Walk:
    """Seeded correlated-free log-normal walks, one tick per pair every ``step_ms``."""

    def __init__(self, h: Harness, seed: int = 1, sd: float = 0.0015, step_ms: int = 500) -> None:
        self.h = h
        self.rng = random.Random(seed)
        self.sd = sd
        self.step_ms = step_ms
        self.price = {s: START.get(s, 100.0) for s in h.core.pairs}
        self.volume = dict.fromkeys(h.core.pairs, 1_000.0)

    def run(self, steps: int, until: Callable[[], bool] | None = None, every: Callable[[], None] | None = None) -> int:
        for i in range(steps):
            self.h.clock.advance(self.step_ms)
            for s in self.h.core.pairs:
                self.price[s] *= math.exp(self.rng.gauss(0.0, self.sd))
                self.volume[s] += self.rng.uniform(0.0, 5.0)
                self.h.tick(s, self.price[s], volume=self.volume[s])
            self.h.core.on_timer()
            if every is not None:
                every()
            if until is not None and until():
                return i + 1
        return steps


class ScriptedClient:
    """An execution client whose answers a test scripts, around the real paper fill rules.

    ``plan`` is consumed one entry per ``submit``: "fill" (paper rules), "reject" (retryable),
    "raise_after_fill" (the venue fills it, then the connection drops: ``submit`` raises).
    When the plan is empty it fills. ``venue`` keeps every order the venue received.
    """

    rests_stops = False

    def __init__(self, cfg: SafeList, clock: FakeClock, plan: list[str] | None = None,
                 journal_check: Callable[[Order], bool] | None = None) -> None:
        self.paper = paper(cfg, clock)
        self.clock = clock
        self.plan = list(plan or [])
        self.venue: list[Order] = []
        self.lookups: list[str] = []
        self.journal_check = journal_check
        self.journaled_at_submit: list[bool] = []
        self._listener: Callable[[ExecutionEvent], None] | None = None

    def bind(self, listener: Callable[[ExecutionEvent], None]) -> None:
        self._listener = listener
        self.paper.bind(listener)

    def submit(self, order: Order, bid: float, ask: float) -> None:
        if self.journal_check is not None:
            self.journaled_at_submit.append(self.journal_check(order))
        step = self.plan.pop(0) if self.plan else "fill"
        if step == "reject":
            from engine.core.orders import OrderRejected

            assert self._listener is not None
            self._listener(OrderRejected(order.client_order_id, self.clock.time_ms(), "venue busy, try again"))
            return
        self.venue.append(order)
        if step == "raise_after_fill":
            # the venue fills it, but the answer never reaches us
            self.paper.fill(order.client_order_id, order.symbol, order.side, order.qty, bid, ask,
                            self.clock.time_ms(), order.reason)
            raise ConnectionResetError("connection reset by peer")
        self.paper.submit(order, bid, ask)

    def lookup(self, order: Order) -> None:
        self.lookups.append(order.client_order_id)
        self.paper.lookup(order)

    def cancel(self, order: Order) -> None:
        self.paper.cancel(order)
