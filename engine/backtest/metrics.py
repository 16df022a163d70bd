"""The figures a trader reads, computed from a ``BacktestResult`` by pure functions.

Owns ``Figures`` (one scope: the portfolio or one pair), ``Ledger`` (the "why not traded"
counts) and ``compute`` (both, for a whole result). ``report.py`` and ``html.py`` only format
what this module returns; nothing here prints, reads a file or looks at the clock.

Definitions
-----------
All money is USD (the quote currency); times are UTC; ``span`` is the run from the first
candle's open (``meta.start_ms``) to the last candle's close (``meta.end_ms``).

Trades        round trips in ``result.trades`` (a partial exit is a trade of its own).
Win rate      trades with net PnL > 0 / trades. A trade at exactly 0 is neither a win nor a
              loss but still counts in the denominator.
Net PnL       sum of the trades' PnL, which is net of entry and exit fees. Fees: their sum.
Gross profit  sum of the net PnL of winning trades; gross loss: |sum| of the losing ones.
Profit factor gross profit / gross loss; no losing trade and some profit: inf (shown "∞");
              no winning and no losing trade: undefined (shown "—").
Expectancy    net PnL / trades (USD per trade) = win rate x average win - loss rate x average
              loss. In R: the mean of pnl / R over the trades whose initial risk is known,
              R = |entry price - initial stop| x qty; the initial stop is the pair's stop
              recorded at the entry (``PairSeries.stops``: the last one at or before the entry
              and after the pair's previous entry, and on the losing side of the entry price).
              Trades without one are left out of the R mean (the count says how many).
Equity curve  portfolio: ``result.equity`` (cash + marked positions), starting from the
              capital at ``start_ms`` and carried flat to ``end_ms``; without any equity point
              it falls back to the closed-trade curve below. Per pair: the closed-trade curve,
              capital + the cumulative net PnL of that pair's trades, stepping at each exit
              (the result holds no per-pair marked equity, so a pair's drawdown ignores the
              open trade's excursion).
Max drawdown  running peak P (the highest equity so far); drawdown = P - equity (USD) and
              (P - equity) / P (%). The max drawdown is the episode with the deepest % fall,
              reported in USD and % at its trough (so both numbers are the same fall).
DD duration   that episode's time under water: from the last point at the peak before the fall
              to the first point back at or above the peak (recovered), or to ``end_ms`` if it
              never recovered. ``longest_dd_ms``: the longest such time of any episode.
CAGR          (end equity / start equity) ^ (1 / years) - 1, years = span / 365 days; -100 %
              if the end equity is <= 0; undefined for a run shorter than one day.
Daily returns the equity at the end of each UTC day (its last point before midnight, carried
              over days without points; the last day ends with the final equity), from the
              day of ``start_ms`` to the day of ``end_ms``; r_d = E_d / E_(d-1) - 1 with E_-1
              the starting equity. Crypto trades every day: 365 periods a year.
Sharpe        mean(r) / stdev(r) x sqrt(365), sample stdev (n - 1), risk-free rate 0.
Sortino       mean(r) / DD x sqrt(365), DD = sqrt(sum(min(r, 0)^2) / n) over all n days
              (target 0). Both undefined for a run shorter than one day or fewer than two
              daily returns; a zero denominator (zero volatility, no losing day) gives inf
              when the mean is positive and undefined when it is 0.
Calmar        CAGR / max drawdown % (as fractions); no drawdown: inf if CAGR > 0.
Exposure      the share of the span during which a position was open (the union of the
              trades' entry..exit intervals; per pair: that pair's trades).
Average hold  mean of exit ts - entry ts over the trades.

The ledger ("why not traded"): per pair, the decisions the risk pipeline made (``signals``:
entries and exits; exits always pass), refused = the rejections recorded, approved = decided -
refused, and the refusals counted by the first check that refused them, named as a trader
says it (``CHECK_LABELS``: total_exposure is "exposure cap", correlation "correlation cap",
min_confidence "confidence", valid_stop "stop", sizing "size", ...).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.backtest.result import BacktestResult, Trade
from engine.core.risk import CHECKS

DAY_MS = 86_400_000
YEAR_DAYS = 365  # crypto trades every day
YEAR_MS = YEAR_DAYS * DAY_MS
ZERO_VOL = 1e-12  # a stdev below this x max(1, |mean|) is zero volatility (float noise)

# core check name (and the runner's aliases) -> the trader's word, in the pipeline's order
_LABELS = {
    "valid_stop": "stop", "costs": "costs", "min_confidence": "confidence", "pair_mode": "pair mode",
    "data_fresh": "stale data", "market_type": "market type", "sizing": "size",
    "total_exposure": "exposure cap", "correlation": "correlation cap",
}  # fmt: skip
_ALIASES = {"stop": "stop", "confidence": "confidence", "size": "size",
            "exposure_cap": "exposure cap", "correlation_cap": "correlation cap"}  # fmt: skip
CHECK_LABELS: dict[str, str] = {**{c: _LABELS.get(c, c) for c in CHECKS}, **_ALIASES}
_ORDER = [CHECK_LABELS[c] for c in CHECKS]


def check_label(check: str) -> str:
    """The trader's name of a risk check (unknown names: underscores as spaces)."""
    return CHECK_LABELS.get(check, check.replace("_", " ").strip() or "unknown")


@dataclass(slots=True)
class Drawdown:
    usd: float = 0.0  # positive: the fall from the peak
    pct: float = 0.0  # fraction of the peak
    peak_ts: int | None = None
    trough_ts: int | None = None
    recovery_ts: int | None = None  # None: not recovered by the end
    duration_ms: int = 0
    longest_ms: int = 0  # the longest time under water of any episode


@dataclass(slots=True)
class Figures:
    scope: str  # "portfolio" or the pair's symbol
    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float | None = None  # fraction
    net_pnl: float = 0.0
    fees: float = 0.0
    gross_profit: float = 0.0
    gross_loss: float = 0.0  # positive
    profit_factor: float | None = None
    expectancy: float | None = None  # USD per trade
    expectancy_r: float | None = None
    r_trades: int = 0  # trades with a known initial risk
    avg_win: float | None = None
    avg_loss: float | None = None  # negative
    best: float | None = None
    worst: float | None = None
    start_equity: float = 0.0
    end_equity: float = 0.0
    total_return: float = 0.0  # fraction
    drawdown: Drawdown = field(default_factory=Drawdown)
    cagr: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    calmar: float | None = None
    exposure: float | None = None  # fraction of the span
    avg_hold_ms: float | None = None
    days: float = 0.0  # the span in days


@dataclass(slots=True)
class LedgerRow:
    scope: str
    decided: int | None  # None: the result has no signal counts
    approved: int | None
    refused: int
    by_check: dict[str, int] = field(default_factory=dict)  # label -> refusals


@dataclass(slots=True)
class Ledger:
    checks: list[str]  # the labels that refused anything, in the pipeline's order
    rows: list[LedgerRow]  # per pair
    total: LedgerRow


@dataclass(slots=True)
class Summary:
    portfolio: Figures
    pairs: list[Figures]
    ledger: Ledger


# ---- building blocks (each a pure function) ------------------------------------------------


def profit_factor(gross_profit: float, gross_loss: float) -> float | None:
    if gross_loss > 0:
        return gross_profit / gross_loss
    return math.inf if gross_profit > 0 else None


def drawdown(curve: Sequence[tuple[int, float]], end_ms: int | None = None) -> Drawdown:
    """The deepest (by %) drawdown episode of an equity curve of (ts, equity), time-ordered."""
    if not curve:
        return Drawdown()
    end = curve[-1][0] if end_ms is None else max(end_ms, curve[-1][0])
    best = Drawdown()
    peak, peak_ts = curve[0][1], curve[0][0]
    cur: Drawdown | None = None  # the open episode
    longest = 0

    def close(ep: Drawdown, until: int) -> None:
        nonlocal best, longest
        ep.duration_ms = until - (ep.peak_ts or 0)
        longest = max(longest, ep.duration_ms)
        if ep.pct > best.pct or (ep.pct == best.pct and ep.usd > best.usd):
            best = ep

    for ts, eq in curve:
        if eq >= peak:
            if cur is not None:
                cur.recovery_ts = ts
                close(cur, ts)
                cur = None
            peak, peak_ts = eq, ts
            continue
        usd = peak - eq
        pct = usd / peak if peak > 0 else 1.0
        if cur is None:
            cur = Drawdown(peak_ts=peak_ts)
        if pct > cur.pct or (pct == cur.pct and usd > cur.usd):
            cur.usd, cur.pct, cur.trough_ts = usd, pct, ts
    if cur is not None:
        close(cur, end)
    best.longest_ms = longest
    return best


def daily_returns(curve: Sequence[tuple[int, float]], start_ms: int, end_ms: int) -> list[float]:
    """Per-UTC-day returns of a time-ordered equity curve (see "Daily returns" above)."""
    if not curve or end_ms <= start_ms:
        return []
    first_day, last_day = start_ms // DAY_MS, (end_ms - 1) // DAY_MS
    prev = curve[0][1]
    out: list[float] = []
    i, n, eq = 0, len(curve), curve[0][1]
    for day in range(first_day, last_day + 1):
        midnight = (day + 1) * DAY_MS
        while i < n and (curve[i][0] < midnight or day == last_day):
            eq = curve[i][1]
            i += 1
        out.append(eq / prev - 1.0 if prev > 0 else 0.0)
        prev = eq
    return out


def _ratio(mean: float, denom: float) -> float | None:
    if denom <= ZERO_VOL * max(1.0, abs(mean)):
        if mean > 0:
            return math.inf
        return -math.inf if mean < 0 else None
    return mean / denom * math.sqrt(YEAR_DAYS)


def sharpe(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    return _ratio(statistics.fmean(returns), statistics.stdev(returns))


def sortino(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return _ratio(statistics.fmean(returns), down)


def cagr(start_equity: float, end_equity: float, span_ms: int) -> float | None:
    if span_ms < DAY_MS or start_equity <= 0:
        return None
    if end_equity <= 0:
        return -1.0
    try:
        return (end_equity / start_equity) ** (YEAR_MS / span_ms) - 1.0
    except OverflowError:
        return math.inf


def calmar(cagr_: float | None, max_dd_pct: float) -> float | None:
    if cagr_ is None:
        return None
    if max_dd_pct <= 0:
        return math.inf if cagr_ > 0 else None
    return cagr_ / max_dd_pct


def exposure(intervals: Iterable[tuple[int, int]], start_ms: int, end_ms: int) -> float | None:
    """Share of [start_ms, end_ms] covered by the union of the intervals."""
    span = end_ms - start_ms
    if span <= 0:
        return None
    covered, reach = 0, start_ms
    for a, b in sorted((max(a, start_ms), min(b, end_ms)) for a, b in intervals):
        if b <= reach:
            continue
        a = max(a, reach)
        covered += b - a
        reach = b
    return covered / span


def initial_stops(result: BacktestResult) -> list[float | None]:
    """Per trade (in ``result.trades`` order): its initial stop level, None if unknown."""
    stops = {s.symbol: sorted(s.stops) for s in result.series}
    stop_ts = {sym: [ts for ts, _ in st] for sym, st in stops.items()}
    entries: dict[str, set[int]] = defaultdict(set)
    for t in result.trades:
        entries[t.symbol].add(t.entry_ts)
    ordered = {sym: sorted(es) for sym, es in entries.items()}
    out: list[float | None] = []
    for t in result.trades:
        es = ordered[t.symbol]
        k = bisect.bisect_left(es, t.entry_ts)
        after = es[k - 1] if k > 0 else None  # the pair's previous entry
        j = bisect.bisect_right(stop_ts.get(t.symbol, []), t.entry_ts) - 1
        level = None
        if j >= 0 and (after is None or stops[t.symbol][j][0] > after):
            level = stops[t.symbol][j][1]
            losing = level < t.entry_price if t.side == "long" else level > t.entry_price
            level = level if losing else None
        out.append(level)
    return out


def initial_risks(result: BacktestResult) -> list[float | None]:
    """Per trade: R in USD, |entry price - initial stop| x qty, None if unknown."""
    return [
        abs(t.entry_price - stop) * abs(t.qty) if stop is not None and t.qty else None
        for t, stop in zip(result.trades, initial_stops(result), strict=True)
    ]


# ---- one scope ------------------------------------------------------------------------------


def figures(
    result: BacktestResult,
    scope: str,
    trades: Sequence[Trade],
    curve: Sequence[tuple[int, float]],
    risks: Sequence[float | None],
) -> Figures:
    """Every figure of one scope from its trades (with their initial risks) and equity curve."""
    m = result.meta
    f = Figures(scope=scope, days=(m.end_ms - m.start_ms) / DAY_MS)
    pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    f.trades, f.wins, f.losses = len(pnls), len(wins), len(losses)
    f.net_pnl, f.fees = sum(pnls), sum(t.fees for t in trades)
    f.gross_profit, f.gross_loss = sum(wins), -sum(losses)
    f.profit_factor = profit_factor(f.gross_profit, f.gross_loss)
    if pnls:
        f.win_rate = len(wins) / len(pnls)
        f.expectancy = f.net_pnl / len(pnls)
        f.best, f.worst = max(pnls), min(pnls)
        f.avg_hold_ms = sum(t.exit_ts - t.entry_ts for t in trades) / len(trades)
    f.avg_win = sum(wins) / len(wins) if wins else None
    f.avg_loss = sum(losses) / len(losses) if losses else None
    rs = [t.pnl / r for t, r in zip(trades, risks, strict=True) if r]
    f.r_trades = len(rs)
    f.expectancy_r = sum(rs) / len(rs) if rs else None
    f.start_equity = curve[0][1] if curve else m.capital
    f.end_equity = curve[-1][1] if curve else m.capital
    f.total_return = f.end_equity / f.start_equity - 1.0 if f.start_equity > 0 else 0.0
    f.drawdown = drawdown(curve, m.end_ms)
    span = m.end_ms - m.start_ms
    f.cagr = cagr(f.start_equity, f.end_equity, span)
    if span >= DAY_MS:
        rets = daily_returns(curve, m.start_ms, m.end_ms)
        f.sharpe, f.sortino = sharpe(rets), sortino(rets)
    f.calmar = calmar(f.cagr, f.drawdown.pct)
    f.exposure = exposure(((t.entry_ts, t.exit_ts) for t in trades), m.start_ms, m.end_ms)
    return f


def closed_trade_curve(
    capital: float, start_ms: int, trades: Iterable[Trade]
) -> list[tuple[int, float]]:
    """Capital + cumulative net PnL, stepping at each trade's exit."""
    curve = [(start_ms, capital)]
    eq = capital
    for t in sorted(trades, key=lambda t: t.exit_ts):
        eq += t.pnl
        curve.append((max(t.exit_ts, start_ms), eq))
    return curve


def portfolio_curve(result: BacktestResult) -> list[tuple[int, float]]:
    """The marked equity curve from the capital at the start, time-ordered."""
    m = result.meta
    if not result.equity:
        return closed_trade_curve(m.capital, m.start_ms, result.trades)
    pts = sorted((p.ts, p.equity) for p in result.equity)
    if pts[0][0] > m.start_ms:
        pts.insert(0, (m.start_ms, m.capital))
    return pts


def symbols(result: BacktestResult) -> list[str]:
    """The run's pairs, then any other symbol the result mentions (sorted)."""
    seen = list(dict.fromkeys(result.meta.pairs))
    extra = {t.symbol for t in result.trades} | {r.symbol for r in result.rejections}
    extra |= set(result.signals)
    return seen + sorted(extra - set(seen))


def ledger(result: BacktestResult) -> Ledger:
    by_pair: dict[str, Counter[str]] = defaultdict(Counter)
    for r in result.rejections:
        by_pair[r.symbol][check_label(r.check)] += 1
    used = Counter[str]()
    for c in by_pair.values():
        used.update(c)
    checks = [c for c in _ORDER if c in used] + sorted(set(used) - set(_ORDER))
    known = bool(result.signals)

    def row(scope: str, decided: int | None, counts: Counter[str]) -> LedgerRow:
        refused = sum(counts.values())
        if decided is not None:
            decided = max(decided, refused)
        approved = decided - refused if decided is not None else None
        return LedgerRow(scope, decided, approved, refused, {c: counts[c] for c in checks})

    rows = [
        row(s, result.signals.get(s, 0) if known else None, by_pair.get(s, Counter()))
        for s in symbols(result)
    ]
    decided = sum(r.decided or 0 for r in rows) if known else None
    return Ledger(checks, rows, row("total", decided, used))


def compute(result: BacktestResult) -> Summary:
    """The portfolio's figures, each pair's, and the ledger."""
    m = result.meta
    risks = initial_risks(result)
    portfolio = figures(result, "portfolio", result.trades, portfolio_curve(result), risks)
    pairs = []
    for sym in symbols(result):
        idx = [i for i, t in enumerate(result.trades) if t.symbol == sym]
        trades = [result.trades[i] for i in idx]
        curve = closed_trade_curve(m.capital, m.start_ms, trades)
        pairs.append(figures(result, sym, trades, curve, [risks[i] for i in idx]))
    return Summary(portfolio, pairs, ledger(result))
