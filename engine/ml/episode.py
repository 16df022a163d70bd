"""One episode: the backtest itself, paused at every decision a policy makes.

Owns ``Episode``, ``Point`` and ``AGENT`` (the policy the episode's pairs trade with).

The episode runs ``engine.backtest.runner.run_backtest``, unchanged, on a worker thread: the
same trading core, paper execution client, book, four ticks per candle, intra-candle rule and
timer as any backtest. Every pair trades the ``policy`` strategy with ``AGENT``
(``params.policy = "engine.ml.episode:AGENT"``); when the core asks a pair's policy for an
action (once per closed candle, after warm-up), the worker hands the observation to the caller
(``Episode.start`` / ``Episode.act`` return a ``Point``) and waits for the action. The action is
returned to the policy strategy as any policy's would be, so it becomes a signal that goes
through the core's own path: the gap rule, the entry's placement, the nine risk checks, the
order boundary, the paper fill. Nothing here decides or books anything.

Exactly one thread runs at a time (two locks hand the turn over), so the run is as
deterministic as a backtest. ``close`` abandons a run in the middle: the worker unwinds from
the waiting policy with ``_Abandoned`` (a ``BaseException``, which no ``except Exception`` in
the core catches) and its book is closed.

Each ``Point`` also carries the outcome of the previous action: the core's decision for that
candle (the ``DecisionMade`` events are watched on the core's own event sink), or why none was
made (a HOLD, a SELL on a flat spot pair, an order still open, a gap candle).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.backtest.result import BacktestResult
from engine.backtest.runner import RunSink, run_backtest
from engine.core.config import SafeList
from engine.core.events import CoreEvent, DecisionMade
from engine.core.markets import MarketRules
from engine.core.models import Decision, SignalType
from engine.core.trader import TradingCore

AGENT_SPEC = "engine.ml.episode:AGENT"
_current = threading.local()  # the episode whose worker thread this is


class _Abandoned(BaseException):
    """Raised in the worker from the waiting policy to end a run the caller gave up on."""


@dataclass(slots=True)
class Outcome:
    """What the core did with one action."""

    action: int
    kind: str  # "hold" | "approved" | "refused" | "no_trade"
    reason: str = ""
    decision: Decision | None = None


@dataclass(slots=True)
class Point:
    """A decision point: pair ``symbol``'s candle ``candle_ts`` just closed."""

    symbol: str
    candle_ts: int  # the candle decided on (its open time, ms)
    ts: int  # the core's clock (ms)
    state: np.ndarray  # the float64 observation the policy strategy built
    equity: float  # the core's accounting equity at the marks, now
    cash: float
    exposure: float
    realised: float
    fees: float
    position: float  # this pair's signed quantity
    outcome: Outcome | None = None  # of the previous action (None at the first point)


class _Decider:
    """The policy callable a pair's ``PolicyStrategy`` is bound to (``AGENT.bind``)."""

    __slots__ = ("episode", "layout", "strategy")

    def __init__(self, episode: Episode, strategy: Any) -> None:
        self.episode, self.strategy, self.layout = episode, strategy, episode.layout

    def __call__(self, state: np.ndarray) -> int:
        return self.episode._decide(self.strategy, state)


class _Agent:
    """``AGENT``: bound per pair to the episode running on the calling thread."""

    def bind(self, strategy: Any) -> _Decider:
        episode = getattr(_current, "episode", None)
        if episode is None:
            raise ValueError(f"{AGENT_SPEC} trades only inside engine.ml's environment")
        return _Decider(episode, strategy)

    def __call__(self, state: np.ndarray) -> int:  # never called: bind replaces it
        return 0


AGENT = _Agent()


class Episode:
    """``run_backtest`` over ``candles`` into ``book``, one decision at a time."""

    def __init__(
        self,
        cfg: SafeList,
        candles: Mapping[str, np.ndarray],
        book: Path,
        *,
        layout: tuple[str, ...],
        timeframe_s: int | None = None,
        warmup: int | None = None,
        spread_bps: float = 2.0,
        rules: Mapping[str, MarketRules] | None = None,
    ) -> None:
        self.cfg, self.candles, self.book, self.layout = cfg, candles, book, layout
        self._kw: dict[str, Any] = {
            "timeframe_s": timeframe_s, "warmup": warmup, "spread_bps": spread_bps, "rules": rules,
        }
        self.result: BacktestResult | None = None
        self.core: TradingCore | None = None
        self.decisions: list[Decision] = []  # every decision the core made, in order
        self.points = 0
        self._point: Point | None = None
        self._pending: tuple[str, int, int, int] | None = None  # symbol, candle ts, action, decisions seen
        self._action = 0
        self._error: BaseException | None = None
        self._done = False
        self._abandon = False
        self._to_worker = threading.Lock()
        self._to_caller = threading.Lock()
        self._to_worker.acquire()
        self._to_caller.acquire()
        self._thread = threading.Thread(target=self._work, name="multipar-episode", daemon=True)

    # ------------------------------------------------------------------ caller's side

    def start(self) -> Point | None:
        """Run to the first decision point; None when the data holds none."""
        self._thread.start()
        return self._wait()

    def act(self, action: int) -> Point | None:
        """Answer the current point with ``action``; run to the next point (None: the data
        ended and ``result`` holds the backtest's result)."""
        if self._done:
            raise RuntimeError("the episode has ended")
        self._action = action
        self._to_worker.release()
        return self._wait()

    @property
    def done(self) -> bool:
        return self._done

    def last_outcome(self) -> Outcome | None:
        """After the end: the outcome of the last action (None before any)."""
        return self._outcome_of_pending()

    def close(self) -> None:
        """Abandon the run if it is still going; the worker closes its book."""
        if self._thread.is_alive() and not self._done:
            self._abandon = True
            self._to_worker.release()
        if self._thread.ident is not None:
            self._thread.join()

    def _wait(self) -> Point | None:
        self._to_caller.acquire()
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        return None if self._done else self._point

    # ------------------------------------------------------------------ worker's side

    def _work(self) -> None:
        _current.episode = self
        try:
            self.result = run_backtest(self.cfg, self.candles, self.book, **self._kw)
        except _Abandoned:
            if self.core is not None:
                self.core.journal.close()  # type: ignore[attr-defined]  (the run's BacktestBook)
        except BaseException as exc:
            self._error = exc
        finally:
            self._done = True
            _current.episode = None
            self._to_caller.release()

    def _attach(self, strategy: Any) -> TradingCore:
        """The core, from the policy state hook it sets on every strategy; its events watched."""
        core = getattr(strategy.portfolio_state, "__self__", None)
        if not isinstance(core, TradingCore):
            raise RuntimeError("the policy strategy is not wired to a TradingCore")
        self.core = core
        sink = core.sink
        if not isinstance(sink, RunSink):
            raise RuntimeError("the policy strategy's core is not a backtest's")

        def watch(event: CoreEvent) -> None:
            if type(event) is DecisionMade:
                self.decisions.append(event.decision)

        sink.listeners.append(watch)
        return core

    def _decide(self, strategy: Any, state: np.ndarray) -> int:
        core = self.core or self._attach(strategy)
        symbol = strategy.symbol
        marks = core.marks()
        pf = core.portfolio
        pos = pf.positions.get(symbol)
        self._point = Point(
            symbol=symbol, candle_ts=strategy.candle.ts, ts=core.clock.time_ms(), state=state,
            equity=pf.equity(marks), cash=pf.cash, exposure=pf.exposure(marks), realised=pf.realised,
            fees=pf.fees, position=pos.qty if pos is not None else 0.0, outcome=self._outcome_of_pending(),
        )
        self.points += 1
        self._to_caller.release()
        self._to_worker.acquire()
        if self._abandon:
            raise _Abandoned
        action = self._action
        self._pending = (symbol, strategy.candle.ts, action, len(self.decisions))
        return action

    def _outcome_of_pending(self) -> Outcome | None:
        """What the core did with the last action (it acted on it before anything else)."""
        if self._pending is None or self.core is None:
            return None
        symbol, candle_ts, action, seen = self._pending
        self._pending = None
        prefix = f"{symbol}|{candle_ts}|"
        decision = next((d for d in self.decisions[seen:] if d.key.startswith(prefix)), None)
        if decision is not None:
            if decision.approved:
                return Outcome(action, "approved", f"{decision.action} {decision.qty:.10g}", decision)
            why = "; ".join(f"{c.name}: {c.reason}" for c in decision.checks if not c.ok) or "refused"
            return Outcome(action, "refused", why, decision)  # every check that failed
        if action not in (1, 2):
            return Outcome(action, "hold")
        return Outcome(action, "no_trade", self._why_no_decision(symbol, action))

    def _why_no_decision(self, symbol: str, action: int) -> str:
        core = self.core
        assert core is not None
        ps = core.pairs[symbol]
        pos = core.portfolio.positions.get(symbol)
        qty = pos.qty if pos is not None else 0.0
        signal = ps.signal
        if signal is not None and signal.type is SignalType.HOLD and signal.reasoning:
            return signal.reasoning  # the core turned it into a HOLD (gap candle, placement)
        if action == 2 and qty <= 0.0 and ps.runtime.cfg.market == "spot":
            return "SELL on a flat spot pair: no trade (spot is long-only)"
        pending = core.execution.open_order(symbol)
        if pending is not None:
            return f"order {pending.client_order_id} is {pending.status}: no new entry"
        if symbol in core.execution.exits:
            return "an exit is already pending"
        return "no decision was made"
