"""Read-only views the core derives for its shells: one owner per derived fact.

Owns ``PortfolioSummary`` and ``portfolio_summary`` (what the portfolio gauges show, computed
once, by the core) and
``policy_state`` (the portfolio part of the ML state vector a policy strategy sees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.core.models import PairMode
from engine.core.risk import RiskContext

if TYPE_CHECKING:
    from engine.core.trader import TradingCore


@dataclass(slots=True, frozen=True)
class PortfolioSummary:
    capital: float
    cash: float
    equity: float
    realised: float
    unrealised: float
    fees: float
    daily_pnl: float  # equity minus equity at the first mark of the trading day (kept in the book)
    exposure_used: float
    exposure_max: float
    correlated_max: int
    halted: bool  # any pair HALTED: the kill switch (or its fallback) engaged, not re-armed
    positions: int
    # the largest set of open positions the correlation check counts together
    correlated_cluster: list[str] = field(default_factory=list)
    total_pnl: float = 0.0  # realised - fees + unrealised since the account was opened
    day_start_ts: int = 0  # when the trading day began (ms); 0 before its first mark
    entries_stopped: bool = False  # new entries stopped on every pair until the operator resumes them
    entries_reason: str = ""  # what stopped them (flatten all, the operator)

    @property
    def correlated_used(self) -> int:
        return len(self.correlated_cluster)


def portfolio_summary(core: TradingCore) -> PortfolioSummary:
    """What the portfolio gauges show, computed once by the core for every shell."""
    marks = core.marks()
    pf = core.portfolio
    pc = core.cfg.portfolio
    equity, exposure, unrealised = pf.valuation(marks)
    return PortfolioSummary(
        capital=pc.capital_usd,
        cash=pf.cash,
        equity=equity,
        realised=pf.realised,
        unrealised=unrealised,
        fees=pf.fees,
        daily_pnl=pf.daily_pnl(equity),
        exposure_used=exposure,
        exposure_max=pc.max_exposure_usd,
        # the check's own rule on the open positions only (O(open), not O(pairs)): the
        # gauge and the check agree at any number of pairs
        correlated_cluster=core.risk.largest_open_cluster(
            RiskContext(positions=core.live_positions(), correlated_with=core.corr)
        ),
        correlated_max=pc.max_correlated_positions,
        halted=any(p.mode is PairMode.HALTED for p in core.pairs.values()),
        positions=sum(1 for p in pf.positions.values() if p.is_open),
        total_pnl=pf.total_pnl(unrealised), day_start_ts=pf.day_start_ts,
        entries_stopped=core.entries.stopped, entries_reason=core.entries.reason,
    )


def policy_state(core: TradingCore, symbol: str) -> dict[str, Any]:
    """``total_exposure`` and ``daily_pnl`` as fractions of capital, the pair's strongest
    live correlation with another pair (signed; None while warming up), and the pair's own
    ``position`` (signed notional) and ``unrealised`` PnL, as fractions of capital."""
    marks = core.marks()
    pf = core.portfolio
    capital = core.cfg.portfolio.capital_usd or 1.0
    equity, exposure, _ = pf.valuation(marks)
    strongest = core.corr.strongest(symbol)  # one vectorised row, not N look-ups
    position = unrealised = 0.0
    pos = pf.positions.get(symbol)
    if pos is not None and pos.is_open:  # the pair's own position, at its mark (entry before a tick)
        mark = marks.get(symbol) or pos.entry
        position, unrealised = pos.qty * mark / capital, pos.unrealised(mark) / capital
    return {
        "total_exposure": exposure / capital,
        "daily_pnl": pf.daily_pnl(equity) / capital,
        "correlation": strongest,
        "position": position,
        "unrealised": unrealised,
    }
