"""The self-contained HTML report: summary tables and interactive charts, readable offline.

Owns ``render_html`` (the page as a string), ``write_html`` (to a file) and ``downsample``.
One file, no network: the CSS and the chart code (``html_template.py``, vanilla JS drawing
SVG) are inlined, the data is JSON in a ``<script type="application/json">`` block.

Charts: equity and drawdown (portfolio, marked), per pair the close with entries (triangles:
up long, down short), exits (diamonds) and the initial stop of each trade (a dashed segment
from entry to exit), and the refusals over time stacked by check. Hover for values, click a
legend button to hide a series, drag to zoom every chart to that time range, double-click to
zoom out.

Downsampling keeps the file small for a year of 1-minute candles: each line series is split
into ``buckets`` equal runs of points and each run keeps its lowest and its highest point, in
time order (plus the first and last point), so every extreme survives: the deepest drawdown
and every price spike are drawn where they happened. Markers (entries, exits, stops) are never
downsampled. Zooming shows the kept points, not the raw candles.

Escaping: table text goes through ``html.escape``; the JSON is made safe inside ``<script>``
by escaping ``<``, ``>``, ``&`` and the line separators; the JS sets text with
``textContent`` only.
"""

from __future__ import annotations

import html as _html
import itertools
import json
import re
from pathlib import Path

import numpy as np

from engine.backtest import html_template as tpl
from engine.backtest import metrics as mx
from engine.backtest import report as rp
from engine.backtest.result import BacktestResult, Rejection

BUCKETS = 2000  # per line series: at most 2 x BUCKETS + 2 points
REJECTION_BARS = 300  # at most this many time buckets in the refusals chart
_STEP_NAMES = {
    60_000 * m: name
    for m, name in ((1, "minute"), (5, "5 minutes"), (15, "15 minutes"), (60, "hour"),
                    (240, "4 hours"), (1440, "day"), (10_080, "week"), (43_200, "30 days"))
}  # fmt: skip
_BAR_STEPS_MS = list(_STEP_NAMES)
PALETTE = ["#4a7bd0", "#d0743c", "#3f9a5b", "#a24fb3", "#c4a12a", "#d04a6a", "#2a9fb0", "#777"]


def downsample(
    x: list[int], y: list[float], buckets: int = BUCKETS
) -> tuple[list[int], list[float]]:
    """Each bucket's lowest and highest point in time order (see the module doc)."""
    v = np.asarray(y, dtype=float)
    if len(v) and not np.isfinite(v).all():  # a non-finite value is not drawn
        ok = np.isfinite(v)
        x, v = [t for t, good in zip(x, ok, strict=True) if good], v[ok]
    n = len(x)
    if n <= 2 * buckets + 2:
        return [int(t) for t in x], v.tolist()
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = {0, n - 1}
    for a, b in itertools.pairwise(edges.tolist()):
        if b > a:
            keep.add(int(a + np.argmin(v[a:b])))
            keep.add(int(a + np.argmax(v[a:b])))
    idx = sorted(keep)
    return [int(x[i]) for i in idx], [float(v[i]) for i in idx]


def _secs(ts: list[int], t0: int) -> list[int]:
    """Times as whole seconds from the run's start: the JSON stays small (the JS adds it back)."""
    return [round((t - t0) / 1000) for t in ts]


def _num(v: float) -> float:
    return float(f"{v:.8g}")


def _line(name: str, x: list[int], y: list[float], kind: str = "line", color: str = PALETTE[0]):
    return {"name": name, "type": kind, "color": color, "x": x, "y": y}


def _portfolio_charts(result: BacktestResult, buckets: int) -> list[dict]:
    t0 = result.meta.start_ms
    curve = mx.portfolio_curve(result)
    ts = _secs([t for t, _ in curve], t0)
    eq = np.asarray([e for _, e in curve], dtype=float)
    peak = np.maximum.accumulate(eq) if len(eq) else eq
    dd = np.where(peak > 0, (eq / np.where(peak > 0, peak, 1) - 1) * 100, 0.0)
    ex, ey = downsample(ts, [round(v, 2) for v in eq.tolist()], buckets)
    dx, dy = downsample(ts, [round(v, 4) for v in dd.tolist()], buckets)
    return [
        {"id": "chart-equity", "title": "Equity (USD)", "yfmt": "usd", "height": 260,
         "series": [_line("equity", ex, ey)]},
        {"id": "chart-drawdown", "title": "Drawdown (% below the running peak)", "yfmt": "pct",
         "height": 170, "series": [_line("drawdown", dx, dy, "area", "#d04a4a")]},
    ]  # fmt: skip


def _pair_chart(result: BacktestResult, i: int, sym: str, stops: list, buckets: int) -> dict:
    """The close line; the trades as columns (the JS makes the entry, exit and stop series)."""
    t0 = result.meta.start_ms
    series = next((s for s in result.series if s.symbol == sym), None)
    px, py = downsample(_secs(series.ts, t0), series.close, buckets) if series else ([], [])
    mine = sorted(
        ((t, s) for t, s in zip(result.trades, stops, strict=True) if t.symbol == sym),
        key=lambda p: p[0].entry_ts,
    )
    reasons = sorted({t.exit_reason for t, _ in mine})
    why = {r: k for k, r in enumerate(reasons)}
    cols: dict[str, list] = {k: [] for k in ("side", "qty", "et", "ep", "xt", "xp", "pnl", "why")}
    for t, _ in mine:
        for k, v in (
            ("side", int(t.side == "long")), ("qty", _num(t.qty)),
            ("ep", _num(t.entry_price)), ("xp", _num(t.exit_price)),
            ("pnl", round(t.pnl, 2)), ("why", why[t.exit_reason]),
        ):  # fmt: skip
            cols[k].append(v)
    cols["et"] = _secs([t.entry_ts for t, _ in mine], t0)
    cols["xt"] = _secs([t.exit_ts for t, _ in mine], t0)
    cols["stop"] = [None if s is None else _num(s) for _, s in mine]
    return {
        "id": f"chart-pair-{i}",
        "title": f"{sym}: close, entries, exits, initial stops",
        "yfmt": "price",
        "height": 240,
        "series": [_line("close", px, [_num(v) for v in py], color="#55607a")],
        "trades": cols,
        "reasons": reasons,
    }


def _rejection_chart(result: BacktestResult, led: mx.Ledger) -> dict | None:
    if not result.rejections:
        return None
    m = result.meta
    span = max(m.end_ms - m.start_ms, 1)
    step = next((s for s in _BAR_STEPS_MS if span / s <= REJECTION_BARS), _BAR_STEPS_MS[-1])
    counts: dict[str, dict[int, int]] = {c: {} for c in led.checks}
    for r in result.rejections:
        b = (r.ts // step) * step
        row = counts[mx.check_label(r.check)]
        row[b] = row.get(b, 0) + 1
    series = []
    for k, c in enumerate(led.checks):
        xs = sorted(counts[c])
        s = _line(c, _secs(xs, m.start_ms), [counts[c][x] for x in xs], "bars", PALETTE[k % 8])
        series.append({**s, "w": step // 1000})
    title = f"Refused signals per {_STEP_NAMES[step]}, by check"
    return {
        "id": "chart-rejections",
        "title": title,
        "yfmt": "count",
        "height": 200,
        "series": series,
    }


def _table(headers: list[str] | None, rows: list[list[str]], cls: str = "") -> str:
    def cell(v: str, tag: str) -> str:
        tone = ""
        if tag == "td" and v[:1] in "+-" and v not in ("-", "-∞") and any(c.isdigit() for c in v):
            tone = ' class="pos"' if v[0] == "+" else ' class="neg"'
        return f"<{tag}{tone}>{_html.escape(v)}</{tag}>"

    head = "<tr>" + "".join(cell(h, "th") for h in headers) + "</tr>" if headers else ""
    body = "".join("<tr>" + "".join(cell(v, "td") for v in r) + "</tr>" for r in rows)
    klass = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{klass}>{head}{body}</table></div>'


def _examples(result: BacktestResult) -> str:
    """The first refusal of each check, with the pipeline's own reason."""
    first: dict[str, Rejection] = {}
    for r in sorted(result.rejections, key=lambda r: r.ts):
        first.setdefault(mx.check_label(r.check), r)
    rows = [[c, rp.when(r.ts), r.symbol, r.action, r.reason] for c, r in first.items()]
    return "<h3>First refusal of each check</h3>" + _table(
        ["Check", "Time (UTC)", "Pair", "Action", "Reason"], rows, "examples"
    )


def _json_for_script(data: object) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    for a, b in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(a, b)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(result: BacktestResult, *, buckets: int = BUCKETS, summary=None) -> str:
    """The whole report as one HTML document."""
    s: mx.Summary = summary or mx.compute(result)
    m = result.meta
    esc = _html.escape
    stops = mx.initial_stops(result)
    charts = _portfolio_charts(result, buckets)
    charts += [
        _pair_chart(result, i, sym, stops, buckets) for i, sym in enumerate(mx.symbols(result))
    ]
    rej = _rejection_chart(result, s.ledger)
    if rej:
        charts.append(rej)
    items = rp.portfolio_items(s.portfolio)
    kv_rows = [[a for kv in items[i : i + 2] for a in kv] for i in range(0, len(items), 2)]
    pair_rows = [rp.pair_row(f) for f in s.pairs] + [rp.pair_row(s.portfolio)]
    pair_rows[-1][0] = "portfolio"
    title = f"Backtest {', '.join(m.pairs)} {m.timeframe}"
    n_equity = len(result.equity)
    run = (
        f"{rp.when(m.start_ms)} → {rp.when(m.end_ms)} UTC ({s.portfolio.days:.1f} days), "
        f"{m.candles:,} candles, capital {rp.money(m.capital, sign=False)} USD, fee "
        f"{m.fee_rate * 100:.3f}%, slippage {m.slippage_bps:g} bps, config {m.config}"
    )
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(run)}</p>',
        "<h2>Portfolio (marked equity)</h2>",
        _table(None, kv_rows, "kv"),
        "<h2>Per pair (drawdown and ratios on closed trades)</h2>",
        _table(rp.PAIR_HEADERS, pair_rows),
        "<h2>Why not traded: refusals by the first check that refused</h2>",
        *(_table(h, r) for h, r in rp.ledger_tables(s.ledger)),
        _examples(result) if result.rejections else "<p>No signal was refused.</p>",
        "<h2>Charts</h2>",
        '<p class="note">Hover for values; click a legend entry to hide it; drag across a chart to '
        "zoom every chart to that period; double-click or <i>reset zoom</i> to zoom out. "
        f"Line series are downsampled to at most {2 * buckets + 2:,} points (each of {buckets:,} "
        "buckets keeps its lowest and highest point, so extremes stay visible); the equity "
        f"curve had {n_equity:,} points; markers are all drawn.</p>",
        *(f'<div class="chart" id="{esc(c["id"])}"></div>' for c in charts),
        "<h2>How each figure is computed</h2>",
        f"<details><summary>Definitions</summary><pre>{esc(mx.__doc__ or '')}</pre></details>",
    ]
    data = {"start": m.start_ms, "end": m.end_ms, "charts": charts}
    parts = {
        "TITLE": esc(title),
        "CSS": tpl.CSS,
        "BODY": "\n".join(body),
        "JS": tpl.JS,
        "DATA": _json_for_script(data),
    }
    # one pass: text put in is never searched for placeholders again
    return re.sub(r"@(TITLE|CSS|BODY|JS|DATA)@", lambda g: parts[g.group(1)], tpl.PAGE)


def write_html(result: BacktestResult, path: Path | str, *, buckets: int = BUCKETS) -> Path:
    """Write the report to ``path`` (UTF-8) and return it."""
    path = Path(path)
    path.write_text(render_html(result, buckets=buckets), encoding="utf-8")
    return path
