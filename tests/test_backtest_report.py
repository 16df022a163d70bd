"""The report a trader reads: its figures on a hand-computed three-trade run, the edge cases,
the "why not traded" ledger, the terminal text at 80 columns and the HTML report (drawn by a
headless Chromium when one is installed)."""

from __future__ import annotations

import html as htmllib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from engine.backtest import metrics as mx
from engine.backtest.html import downsample, render_html, write_html
from engine.backtest.report import summary_text
from engine.backtest.result import (
    BacktestResult,
    EquityPoint,
    PairSeries,
    Rejection,
    RunMeta,
    Trade,
)

pytestmark = pytest.mark.timeout(30)

D = 86_400_000  # one day in ms
H = 3_600_000
M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
BTC, ETH = "BTC/USDT", "ETH/USDT"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _meta(pairs: list[str], days: float = 10, capital: float = 10_000.0) -> RunMeta:
    return RunMeta(
        config="safe_list.yaml", pairs=pairs, timeframe="1m", start_ms=T0,
        end_ms=T0 + int(days * D), capital=capital, fee_rate=0.001, slippage_bps=2.0,
        candles=int(days * 1440) * len(pairs), elapsed_s=0.5,
    )  # fmt: skip


def three_trades() -> BacktestResult:
    """10 days from 2024-01-01, capital 10,000 USD, fees 0.1 % a side.

    1. BTC long 0.1 from day 1 @ 40,000 to day 2 @ 42,000 (signal), stop 39,000:
       fees 4.00 + 4.20 = 8.20; PnL 0.1 x 2,000 - 8.20 = +191.80; R = 0.1 x 1,000 = 100
    2. ETH short 2 from day 3 @ 2,000 to day 4 @ 2,100 (stop), stop 2,100:
       fees 4.00 + 4.20 = 8.20; PnL 2 x -100 - 8.20 = -208.20; R = 2 x 100 = 200
    3. BTC long 0.1 from day 5 @ 41,000 to day 8 @ 44,000 (take profit), stop 40,000:
       fees 4.10 + 4.40 = 8.50; PnL 0.1 x 3,000 - 8.50 = +291.50; R = 100
    Marked equity at each midnight: day 6 dips to 9,883.60 (BTC marked at 40,000 with trade 3
    open), day 7 at 10,083.60.
    """
    trades = [
        Trade(BTC, "long", 0.1, T0 + D, 40_000.0, T0 + 2 * D, 42_000.0, 8.2, 191.8, "signal"),
        Trade(ETH, "short", 2.0, T0 + 3 * D, 2_000.0, T0 + 4 * D, 2_100.0, 8.2, -208.2, "stop"),
        Trade(BTC, "long", 0.1, T0 + 5 * D, 41_000.0, T0 + 8 * D, 44_000.0, 8.5, 291.5,
              "take_profit"),
    ]  # fmt: skip
    eq = [10000, 10000, 10191.8, 10191.8, 9983.6, 9983.6, 9883.6, 10083.6, 10275.1, 10275.1,
          10275.1]  # fmt: skip
    equity = [EquityPoint(T0 + k * D, e, e, 0.0) for k, e in enumerate(eq)]
    rejections = [
        Rejection(T0 + D + M, BTC, "open_long", "total_exposure", "exposure 1.2x > 1.0x"),
        Rejection(T0 + 3 * D + M, ETH, "open_long", "correlation", "3 correlated > 2"),
        Rejection(T0 + 6 * D, ETH, "open_short", "min_confidence", "confidence 0.40 < 0.60"),
        Rejection(T0 + 7 * D, ETH, "open_short", "correlation_cap", "3 correlated > 2"),
    ]
    closes_btc = [40000, 40000, 42000, 41500, 41000, 41000, 40000, 42000, 44000, 43000, 43500]
    closes_eth = [2000, 2000, 2050, 2000, 2100, 2050, 2000, 1990, 2010, 2030, 2040]
    days = [T0 + k * D for k in range(11)]
    series = [
        PairSeries(BTC, days, [float(c) for c in closes_btc],
                   [(T0 + D, 39_000.0), (T0 + 5 * D, 40_000.0)]),
        PairSeries(ETH, days, [float(c) for c in closes_eth], [(T0 + 3 * D, 2_100.0)]),
    ]  # fmt: skip
    return BacktestResult(_meta([BTC, ETH]), trades, equity, rejections, {BTC: 6, ETH: 5}, series)


# ---- the figures -------------------------------------------------------------------------------


def test_three_trade_figures_match_the_hand_computation() -> None:
    s = mx.compute(three_trades())
    p = s.portfolio
    assert (p.trades, p.wins, p.losses) == (3, 2, 1)
    assert p.win_rate == pytest.approx(2 / 3)
    # net: 191.80 - 208.20 + 291.50 = 275.10; fees 8.20 + 8.20 + 8.50 = 24.90
    assert p.net_pnl == pytest.approx(275.10)
    assert p.fees == pytest.approx(24.90)
    # gross profit 191.80 + 291.50 = 483.30, gross loss 208.20, PF = 483.30 / 208.20 = 2.3213
    assert (p.gross_profit, p.gross_loss) == (pytest.approx(483.30), pytest.approx(208.20))
    assert p.profit_factor == pytest.approx(2.3213, abs=1e-4)
    # expectancy 275.10 / 3 = 91.70 = 2/3 x 241.65 - 1/3 x 208.20
    assert p.expectancy == pytest.approx(91.70)
    assert p.avg_win == pytest.approx(241.65) and p.avg_loss == pytest.approx(-208.20)
    # R multiples 191.80/100 = 1.918, -208.20/200 = -1.041, 291.50/100 = 2.915: mean 1.264
    assert p.expectancy_r == pytest.approx(1.264)
    assert p.r_trades == 3
    # peak 10,191.80 (last at day 3), trough 9,883.60 on day 6: 308.20 = 3.0240 % of the peak;
    # back above the peak on day 8: 5 days under water
    dd = p.drawdown
    assert dd.usd == pytest.approx(308.20)
    assert dd.pct == pytest.approx(0.030240, abs=1e-6)
    assert (dd.peak_ts, dd.trough_ts, dd.recovery_ts) == (T0 + 3 * D, T0 + 6 * D, T0 + 8 * D)
    assert dd.duration_ms == 5 * D and dd.longest_ms == 5 * D
    # in a position: days 1-2, 3-4, 5-8 = 5 of 10 days; BTC 4 days, ETH 1 day
    assert p.exposure == pytest.approx(0.5)
    by = {f.scope: f for f in s.pairs}
    assert by[BTC].exposure == pytest.approx(0.4) and by[ETH].exposure == pytest.approx(0.1)
    # holds 1 + 1 + 3 days: 5/3 days = 40 h
    assert p.avg_hold_ms == pytest.approx(40 * H)
    # CAGR over 10 days: 1.02751 ^ (365 / 10) - 1 = e^(36.5 x 0.0271386) - 1 = 1.6927
    assert p.cagr == pytest.approx(1.027510**36.5 - 1)
    assert p.cagr == pytest.approx(1.6927, abs=1e-4)
    assert p.calmar == pytest.approx(p.cagr / (308.2 / 10191.8))
    # the equity at the end of each UTC day 0..9 over the one before (day -1: the capital)
    rets = [0, 0, 191.8 / 10000, 0, 9983.6 / 10191.8 - 1, 0, 9883.6 / 9983.6 - 1,
            10083.6 / 9883.6 - 1, 10275.1 / 10083.6 - 1, 0]  # fmt: skip
    curve = mx.portfolio_curve(three_trades())
    assert mx.daily_returns(curve, T0, T0 + 10 * D) == pytest.approx(rets)
    mean = sum(rets) / 10
    assert p.sharpe == pytest.approx(mean / statistics.stdev(rets) * math.sqrt(365))
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in rets) / 10)
    assert p.sortino == pytest.approx(mean / downside * math.sqrt(365))
    # per pair: BTC never lost (PF ∞); ETH's closed-trade curve fell 208.20 = 2.082 % and never
    # came back: 10 days from the start to the end
    assert by[BTC].profit_factor == math.inf and by[BTC].net_pnl == pytest.approx(483.30)
    assert by[ETH].profit_factor == 0.0
    assert by[ETH].drawdown.pct == pytest.approx(0.02082)
    assert by[ETH].drawdown.recovery_ts is None and by[ETH].drawdown.duration_ms == 10 * D


def test_cagr_on_a_known_span() -> None:
    """10,000 -> 12,100 over exactly two years of 365 days: 1.21 ^ (1/2) - 1 = 10 %."""
    r = BacktestResult(_meta([BTC], days=730))
    r.equity = [EquityPoint(T0, 10_000, 10_000, 0), EquityPoint(T0 + 730 * D, 12_100, 12_100, 0)]
    assert mx.compute(r).portfolio.cagr == pytest.approx(0.10)
    assert mx.cagr(10_000, 11_000, 365 * D) == pytest.approx(0.10)  # one year: the return
    assert mx.cagr(10_000, 0, 365 * D) == -1.0  # wiped out


def test_no_trades() -> None:
    r = BacktestResult(_meta([BTC]))
    r.equity = [EquityPoint(T0 + k * H, 10_000, 10_000, 0) for k in range(241)]
    p = mx.compute(r).portfolio
    assert p.trades == 0 and p.win_rate is None and p.expectancy is None
    assert p.profit_factor is None and p.avg_hold_ms is None and p.expectancy_r is None
    assert p.exposure == 0.0 and p.cagr == 0.0 and p.drawdown.usd == 0.0
    assert p.sharpe is None and p.sortino is None  # zero volatility, mean 0: undefined
    assert p.calmar is None
    text = summary_text(r)
    assert "Profit factor —" in text and "No signal was refused." in text
    assert "<html" in render_html(r)


def test_no_losing_trade_gives_an_infinite_profit_factor() -> None:
    r = three_trades()
    r.trades = [t for t in r.trades if t.pnl > 0]
    p = mx.compute(r).portfolio
    assert p.profit_factor == math.inf and p.losses == 0 and p.avg_loss is None
    assert "Profit factor ∞" in summary_text(r)


def test_a_run_shorter_than_a_day_is_not_annualised() -> None:
    r = BacktestResult(_meta([BTC], days=0.5))
    r.trades = [Trade(BTC, "long", 1, T0 + H, 100, T0 + 4 * H, 110, 0.2, 9.8, "signal")]
    r.equity = [EquityPoint(T0, 10_000, 10_000, 0), EquityPoint(T0 + 4 * H, 10_009.8, 0, 0)]
    p = mx.compute(r).portfolio
    assert p.cagr is None and p.sharpe is None and p.sortino is None and p.calmar is None
    assert p.exposure == pytest.approx(3 / 12)  # 3 h of 12
    assert p.net_pnl == pytest.approx(9.8)
    assert "CAGR          —" in summary_text(r)


def test_zero_volatility() -> None:
    """Equity growing 1 % every day: no spread in the daily returns, no losing day: ∞."""
    r = BacktestResult(_meta([BTC], days=10))
    # each day's last minute, 23:59 (the capital at 00:00 on day 0 is the start)
    r.equity = [
        EquityPoint(T0 + (k + 1) * D - M, 10_000 * 1.01 ** (k + 1), 0, 0) for k in range(10)
    ]
    assert mx.daily_returns(mx.portfolio_curve(r), T0, T0 + 10 * D) == pytest.approx([0.01] * 10)
    p = mx.compute(r).portfolio
    assert p.sharpe == math.inf and p.sortino == math.inf and p.calmar == math.inf
    assert mx.sharpe([0.0, 0.0, 0.0]) is None and mx.sharpe([0.01]) is None


def test_no_equity_curve_falls_back_to_closed_trades() -> None:
    r = three_trades()
    r.equity = []
    p = mx.compute(r).portfolio
    # closed trades: 10,000 -> 10,191.80 (day 2) -> 9,983.60 (day 4) -> 10,275.10 (day 8)
    assert p.drawdown.usd == pytest.approx(208.2)
    assert p.drawdown.duration_ms == 6 * D  # from day 2 to day 8
    assert p.end_equity == pytest.approx(10_275.1)


def test_initial_stops_are_matched_to_their_entry() -> None:
    r = three_trades()
    r.series[0].stops = [(T0 + D, 39_000.0)]  # trade 3's stop was not recorded
    r.series[1].stops = [(T0 + 3 * D, 1_900.0)]  # a short's stop below entry: not a stop
    assert mx.initial_stops(r) == [39_000.0, None, None]
    p = mx.compute(r).portfolio
    assert p.r_trades == 1 and p.expectancy_r == pytest.approx(1.918)
    assert "+1.92R (1 of 3)" in summary_text(r)


# ---- the ledger --------------------------------------------------------------------------------


def test_the_why_not_traded_ledger() -> None:
    r = three_trades()
    r.rejections.append(Rejection(T0 + 9 * D, BTC, "open_long", "exposure_cap", "cap"))
    r.rejections.append(Rejection(T0 + 9 * D, BTC, "open_long", "funding_window", "later"))
    led = mx.compute(r).ledger
    # core names and the runner's aliases count together, in the pipeline's order
    assert led.checks == ["confidence", "exposure cap", "correlation cap", "funding window"]
    btc, eth = led.rows
    assert (btc.decided, btc.approved, btc.refused) == (6, 3, 3)
    assert btc.by_check == {"confidence": 0, "exposure cap": 2, "correlation cap": 0,
                            "funding window": 1}  # fmt: skip
    assert (eth.decided, eth.approved, eth.refused) == (5, 2, 3)
    assert eth.by_check["correlation cap"] == 2 and eth.by_check["confidence"] == 1
    t = led.total
    assert (t.decided, t.approved, t.refused) == (11, 5, 6)
    assert t.by_check == {"confidence": 1, "exposure cap": 2, "correlation cap": 2,
                          "funding window": 1}  # fmt: skip
    text = summary_text(r)
    assert re.search(r"correlation cap\s+2\s+0\s+2", text)
    assert re.search(r"total\s+11\s+5\s+6", text)


def test_the_ledger_without_signal_counts() -> None:
    r = three_trades()
    r.signals = {}
    led = mx.ledger(r)
    assert led.total.decided is None and led.total.approved is None and led.total.refused == 4
    assert re.search(r"total\s+—\s+—\s+4", summary_text(r))


# ---- the terminal text ------------------------------------------------------------------------


def test_terminal_text_fits_80_columns() -> None:
    r = three_trades()
    long_name = "1000SHIB/USDT:USDT"
    r.meta.pairs = [BTC, ETH, long_name, "DOGE/USDT", "XRP/USDT", "ADA/USDT"]
    r.signals[long_name] = 123_456
    for k, check in enumerate(mx.CHECK_LABELS):
        r.rejections.append(Rejection(T0 + k * H, long_name, "open_short", check, "x"))
    r.trades.append(
        Trade(long_name, "short", 1e6, T0, 0.01, T0 + 9 * D, 0.0001, 3.2, 9_876_543.21, "end")
    )
    text = summary_text(r)
    lines = text.splitlines()
    assert max(len(x) for x in lines) <= 80, max(lines, key=len)
    for word in ("Portfolio", "Per pair", "Why not traded", "Sharpe", "Sortino", "Calmar",
                 "stale data", "1000SHIB/USDT:U…"):  # fmt: skip
        assert word in text
    coloured = summary_text(r, color=True)
    assert "\x1b[32m" in coloured and "\x1b[31m" in coloured
    assert ANSI.sub("", coloured) == text
    assert "\x1b" not in text


# ---- the HTML ---------------------------------------------------------------------------------

EVIL = "<b>&\"Ev'il</b>/USDT"
EVIL_REASON = "</script><script>alert(1)</script> & \u2028"


def _evil() -> BacktestResult:
    r = three_trades()
    r.meta.pairs.append(EVIL)
    r.trades.append(Trade(EVIL, "long", 1, T0 + D, 10, T0 + 2 * D, 11, 0.02, 0.98, "<exit>"))
    r.rejections.append(Rejection(T0 + 2 * D, EVIL, "open_long", "<check>", EVIL_REASON))
    r.series.append(PairSeries(EVIL, [T0, T0 + 5 * D], [10.0, 11.0], [(T0 + D, 9.0)]))
    return r


def _data(page: str) -> dict:
    block = page.split('<script type="application/json" id="bt-data">', 1)[1]
    return json.loads(block.split("</script>", 1)[0])


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(_evil())
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "alert(1)</script>" not in page and "<b>" not in page
    assert "&lt;b&gt;&amp;&quot;Ev&#x27;il&lt;/b&gt;/USDT" in page  # in the tables
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page  # the reason, in the examples
    for ref in ("src=", "href=", "<link", "https://", "@import", "url(http"):
        assert ref not in page
    data = _data(page)  # the JSON parses back to the very strings
    assert any(c["title"].startswith(EVIL) for c in data["charts"])
    evil_chart = next(c for c in data["charts"] if c["title"].startswith(EVIL))
    assert evil_chart["reasons"] == ["<exit>"]
    ids = [c["id"] for c in data["charts"]]
    assert ids == ["chart-equity", "chart-drawdown", "chart-pair-0", "chart-pair-1",
                   "chart-pair-2", "chart-rejections"]  # fmt: skip
    for i in ids:
        assert f'<div class="chart" id="{i}"></div>' in page


def test_downsample_keeps_the_extremes() -> None:
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=100_000)).tolist()
    x = list(range(100_000))
    dx, dy = downsample(x, y, buckets=500)
    assert len(dx) <= 1002 and dx == sorted(dx)
    assert dx[0] == 0 and dx[-1] == 99_999
    assert min(dy) == min(y) and max(dy) == max(y)
    for a in range(0, 100_000, 200):  # every bucket's own low and high survive
        seg = y[a : a + 200]
        assert min(seg) in dy and max(seg) in dy
    assert downsample([1, 2, 3], [1.0, float("nan"), 3.0]) == ([1, 3], [1.0, 3.0])


def _year_of_minutes(pairs: int = 3, trades_per_pair: int = 2_000) -> BacktestResult:
    """A synthetic year of 1-minute candles per pair, a trade every ~4 h, per-minute equity."""
    n = 365 * 1440
    rng = np.random.default_rng(1)
    ts = (T0 + np.arange(n, dtype=np.int64) * M).tolist()
    syms = [f"P{k}/USDT" for k in range(pairs)]
    r = BacktestResult(_meta(syms, days=365))
    pnl_at = np.zeros(n)
    for k, sym in enumerate(syms):
        close = 100 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        step = n // trades_per_pair
        stops = []
        for j in range(trades_per_pair):
            a, b = j * step, j * step + step // 2
            pe, px = float(close[a]), float(close[b])
            pnl = px - pe - 0.002 * pe
            r.trades.append(
                Trade(sym, "long", 1.0, ts[a], pe, ts[b], px, 0.002 * pe, pnl, "signal")
            )
            stops.append((ts[a], pe * 0.98))
            pnl_at[b] += pnl
        r.series.append(PairSeries(sym, ts, close.tolist(), stops))
    equity = 10_000 + np.cumsum(pnl_at)
    r.equity = [EquityPoint(t, e, e, 0.0) for t, e in zip(ts, equity.tolist(), strict=True)]
    checks = ["total_exposure", "correlation", "min_confidence", "sizing"]
    r.rejections = [
        Rejection(ts[int(i)], syms[int(i) % pairs], "open_long", checks[int(i) % 4], "why")
        for i in rng.integers(0, n, 5_000)
    ]
    r.signals = dict.fromkeys(syms, 10_000)
    return r


@pytest.mark.timeout(120)
def test_a_year_of_minutes_stays_small(tmp_path: Path) -> None:
    r = _year_of_minutes()
    t = time.perf_counter()
    out = write_html(r, tmp_path / "year.html")
    took = time.perf_counter() - t
    size = out.stat().st_size
    print(f"HTML for 3 pairs x 525,600 candles, 6,000 trades: {size / 1e6:.2f} MB in {took:.2f} s")
    assert size < 2_000_000
    data = _data(out.read_text(encoding="utf-8"))
    for c in data["charts"]:
        for s in c["series"]:
            assert len(s["x"]) <= 4_002


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


@pytest.mark.timeout(120)
def test_html_charts_are_drawn_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    page = write_html(_evil(), tmp_path / "report.html")
    base = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2800"]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    run = subprocess.run(
        [*base, "--dump-dom", f"{page.as_uri()}#selftest"],
        capture_output=True, text=True, timeout=90, env=env,
    )  # fmt: skip
    dom = run.stdout
    assert "<body" in dom, run.stderr[-2000:]
    charts = re.findall(r'<div class="chart" id="([^"]+)"[^>]*data-drawn="1"', dom)
    assert len(charts) == 6, (charts, run.stderr[-2000:])
    assert 'data-charts-drawn="6"' in dom
    for cid in charts:  # each drawn chart holds an SVG with a path per series, not empty
        block = dom.split(f'id="{cid}"', 1)[1].split('<div class="chart"', 1)[0]
        paths = re.findall(r'<path d="([^"]*)"[^>]*class="series"', block)
        assert paths and any(len(d) > 10 for d in paths), cid
    # the equity line goes through every point it was given
    equity = dom.split('id="chart-equity"', 1)[1]
    assert len(re.search(r'<path d="([^"]*)"', equity).group(1).split("L")) == 11
    # hover, drag-zoom and legend toggles, fired by the page's own self-test
    got = json.loads(htmllib.unescape(re.search(r'data-selftest="([^"]*)"', dom).group(1)))
    assert [g["id"] for g in got] == charts
    for g in got:
        assert g["zoomed"] and g["hidden"] == 1, g
        assert "UTC" in g["tip"]
    assert "equity: " in got[0]["tip"] and "drawdown: " in got[1]["tip"]
    assert "alert(1)" not in "".join(re.findall(r"<script>(.*?)</script>", dom, re.S)[1:])
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=90, env=env
    )
    assert shot.exists() and shot.stat().st_size > 10_000
