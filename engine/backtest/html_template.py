"""The static part of the HTML report: its page, CSS and the chart code (vanilla JS + SVG).

Owns ``PAGE`` (placeholders ``@TITLE@``, ``@BODY@``, ``@DATA@``), ``CSS`` and ``JS``.
``html.py`` fills the page. The JS reads the JSON in ``<script id="bt-data">`` and draws every
``<div class="chart">`` at load: one SVG each with a ``<path>`` per series, then marks the div
``data-drawn="1"`` (and ``<body data-charts-drawn="N">``). Interaction: hover shows a crosshair
and a tooltip with the values at that time (or the nearest marker's label); the legend's
buttons toggle series; drag across a chart zooms every chart to that time range; double-click
or "reset zoom" zooms out. All text is set with ``textContent``, never parsed as HTML.
"""

from __future__ import annotations

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:12px 20px;
color:#1d2330;background:#fafbfc}
h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:22px 0 8px}h3{font-size:14px;margin:12px 0 4px}
.examples td,.examples th{text-align:left}
.meta{color:#555}.note{color:#666;font-size:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
td,th{padding:3px 9px;border-bottom:1px solid #e3e6ea;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}th{background:#eef1f4}
.kv td:nth-child(odd){color:#555;text-align:left}.kv td:nth-child(even){font-weight:600}
.pos{color:#137333}.neg{color:#b3261e}.scroll{overflow-x:auto}
.chart{position:relative;background:#fff;border:1px solid #dde1e6;border-radius:4px;
margin:8px 0 14px;padding:4px 6px;user-select:none}
.chart .head{display:flex;gap:8px;align-items:center;flex-wrap:wrap;font-size:13px}
.chart .title{font-weight:600;margin-right:6px}
.chart button{font:12px system-ui,sans-serif;border:1px solid #ccd;background:#fff;
border-radius:3px;padding:1px 7px;cursor:pointer}
.chart button.off{opacity:.4;text-decoration:line-through}
.chart button .sw{display:inline-block;width:10px;height:10px;margin-right:4px;
vertical-align:-1px;border-radius:2px}
.chart svg{display:block;width:100%;cursor:crosshair}
.chart .tip{position:absolute;pointer-events:none;background:rgba(255,255,255,.96);
border:1px solid #99a;border-radius:3px;padding:4px 7px;font-size:12px;display:none;
white-space:nowrap;z-index:2;box-shadow:0 1px 4px rgba(0,0,0,.15)}
.chart .tip div:first-child{font-weight:600}
.axis text{font-size:11px;fill:#555}.grid line{stroke:#edf0f3}
pre{background:#f1f3f5;padding:10px;overflow-x:auto;font-size:12px}
"""

JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var DATA = JSON.parse(document.getElementById("bt-data").textContent);
  var charts = [];
  function mk(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function tag(name, cls, parent, text) {
    var e = document.createElement(name);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmtTime(ms) { return new Date(ms).toISOString().slice(0, 16).replace("T", " "); }
  function fmt(v, f) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    if (f === "pct") return v.toFixed(2) + "%";
    if (f === "count") return String(Math.round(v));
    if (f === "usd") return v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    return String(Number(v.toPrecision(7)));
  }
  function niceTicks(lo, hi, n, f) {
    var raw = Math.max((hi - lo) / n, f === "count" ? 1 : 0), p = Math.pow(10, Math.floor(Math.log10(raw))), out = [];
    var step = [1, 2, 5, 10].map(function (m) { return m * p; }).find(function (s) { return s >= raw; });
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(v);
    return out;
  }
  var TSTEPS = [60e3, 300e3, 900e3, 1800e3, 3600e3, 10800e3, 21600e3, 43200e3, 864e5, 1728e5,
    6048e5, 12096e5, 2592e6, 7776e6, 15552e6, 31536e6];
  function timeTicks(lo, hi, n) {
    var raw = (hi - lo) / n, step = TSTEPS.find(function (s) { return s >= raw; }) || raw, out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
    return out;
  }
  function lowerBound(a, x) {
    var lo = 0, hi = a.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function Chart(root, spec) {
    var self = this;
    this.root = root; this.spec = spec; this.hidden = {};
    var lo = DATA.start, hi = DATA.end;
    spec.series.forEach(function (s) {
      if (s.x.length) { lo = Math.min(lo, s.x[0]); hi = Math.max(hi, s.x[s.x.length - 1]); }
    });
    if (hi <= lo) hi = lo + 60e3;
    this.full = [lo, hi]; this.view = [lo, hi];
    var head = tag("div", "head", root);
    tag("span", "title", head, spec.title);
    spec.series.forEach(function (s) {
      var b = tag("button", "", head);
      tag("span", "sw", b).style.background = s.color;
      b.appendChild(document.createTextNode(s.name));
      b.title = "show or hide";
      b.addEventListener("click", function () {
        self.hidden[s.name] = !self.hidden[s.name];
        b.classList.toggle("off", !!self.hidden[s.name]);
        self.draw();
      });
    });
    tag("button", "", head, "reset zoom").addEventListener("click", function () { zoomAll(null); });
    this.svg = mk("svg", {role: "img"}, root);
    this.tip = tag("div", "tip", root);
    this.svg.addEventListener("mousemove", function (ev) { self.hover(ev); });
    this.svg.addEventListener("mouseleave", function () {
      self.tip.style.display = "none"; if (self.cross) self.cross.setAttribute("visibility", "hidden");
    });
    this.svg.addEventListener("mousedown", function (ev) { self.drag = self.px(ev); });
    window.addEventListener("mouseup", function (ev) {
      if (self.drag === undefined) return;
      var a = self.drag, b = self.px(ev);
      self.drag = undefined; self.sel.setAttribute("visibility", "hidden");
      if (Math.abs(b - a) > 4) zoomAll([self.ix(Math.min(a, b)), self.ix(Math.max(a, b))]);
    });
    this.svg.addEventListener("dblclick", function () { zoomAll(null); });
  }
  Chart.prototype.px = function (ev) {
    var r = this.svg.getBoundingClientRect();
    return Math.max(this.m.l, Math.min(this.W - this.m.r, ev.clientX - r.left));
  };
  Chart.prototype.ix = function (px) {
    return this.view[0] + (px - this.m.l) / (this.W - this.m.l - this.m.r) * (this.view[1] - this.view[0]);
  };
  Chart.prototype.visible = function () {
    var h = this.hidden;
    return this.spec.series.filter(function (s) { return !h[s.name]; });
  };
  Chart.prototype.yRange = function (x0, x1) {
    var lo = Infinity, hi = -Infinity, stack = {}, zero = false;
    this.visible().forEach(function (s) {
      var a = Math.max(0, lowerBound(s.x, x0) - 1), b = Math.min(s.x.length, lowerBound(s.x, x1) + 1);
      if (s.type === "segments") { a = 0; b = s.x.length; }
      for (var i = a; i < b; i++) {
        if (s.type === "segments" && (s.x2[i] < x0 || s.x[i] > x1)) continue;
        var y = s.y[i];
        if (s.type === "bars") { stack[s.x[i]] = (stack[s.x[i]] || 0) + y; y = stack[s.x[i]]; }
        if (y < lo) lo = y; if (y > hi) hi = y;
      }
      if (s.type === "area" || s.type === "bars") zero = true;
    });
    if (zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi === lo) { var d = Math.abs(hi) * 0.01 || 1; lo -= d; hi += d; }
    var pad = (hi - lo) * 0.05;
    return [zero && lo === 0 ? 0 : lo - pad, zero && hi === 0 ? 0 : hi + pad];
  };
  Chart.prototype.draw = function () {
    var spec = this.spec, svg = this.svg, m = this.m = {l: 74, r: 14, t: 8, b: 22};
    var W = this.W = this.root.clientWidth - 12 || 800, H = spec.height;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H); svg.setAttribute("height", H);
    var x0 = this.view[0], x1 = this.view[1], yr = this.yRange(x0, x1), y0 = yr[0], y1 = yr[1];
    var sx = function (x) { return m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r); };
    var sy = function (y) { return H - m.b - (y - y0) / (y1 - y0) * (H - m.t - m.b); };
    this.sx = sx; this.sy = sy;
    var grid = mk("g", {"class": "grid"}, svg), axis = mk("g", {"class": "axis"}, svg);
    niceTicks(y0, y1, 5, spec.yfmt).forEach(function (v) {
      mk("line", {x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v)}, grid);
      mk("text", {x: m.l - 6, y: sy(v) + 4, "text-anchor": "end"}, axis).textContent = fmt(v, spec.yfmt);
    });
    var tt = timeTicks(x0, x1, Math.max(2, Math.floor(W / 140))), daily = tt.length > 1 && tt[1] - tt[0] >= 864e5;
    tt.forEach(function (v) {
      mk("line", {x1: sx(v), x2: sx(v), y1: m.t, y2: H - m.b}, grid);
      mk("text", {x: sx(v), y: H - 6, "text-anchor": "middle"}, axis).textContent = fmtTime(v).slice(0, daily ? 10 : 16);
    });
    var cid = "clip-" + spec.id;
    mk("rect", {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b},
      mk("clipPath", {id: cid}, mk("defs", {}, svg)));
    var plot = mk("g", {"clip-path": "url(#" + cid + ")"}, svg), base = {};
    this.visible().forEach(function (s) {
      var a = Math.max(0, lowerBound(s.x, x0) - 1), b = Math.min(s.x.length, lowerBound(s.x, x1) + 1);
      var d = [], i, x, y, r = Math.max(2.5, Math.min(5, (W - m.l - m.r) / Math.max(1, b - a)));
      if (s.type === "line" || s.type === "area") {
        for (i = a; i < b; i++) d.push((i === a ? "M" : "L") + sx(s.x[i]).toFixed(1) + " " + sy(s.y[i]).toFixed(1));
        if (s.type === "area" && b > a) d.push("L" + sx(s.x[b - 1]).toFixed(1) + " " + sy(0) + "L" + sx(s.x[a]).toFixed(1) + " " + sy(0) + "Z");
      } else if (s.type === "points") {
        for (i = a; i < b; i++) {
          x = sx(s.x[i]); y = sy(s.y[i]);
          if (s.shape === "up") d.push("M" + (x - r) + " " + (y + r) + "L" + x + " " + (y - r) + "L" + (x + r) + " " + (y + r) + "Z");
          else if (s.shape === "down") d.push("M" + (x - r) + " " + (y - r) + "L" + x + " " + (y + r) + "L" + (x + r) + " " + (y - r) + "Z");
          else d.push("M" + x + " " + (y - r) + "L" + (x + r) + " " + y + "L" + x + " " + (y + r) + "L" + (x - r) + " " + y + "Z");
        }
      } else if (s.type === "segments") {
        for (i = 0; i < s.x.length; i++) if (s.x2[i] >= x0 && s.x[i] <= x1) d.push("M" + sx(s.x[i]).toFixed(1) + " " + sy(s.y[i]).toFixed(1) + "H" + sx(s.x2[i]).toFixed(1));
      } else if (s.type === "bars") {
        for (i = a; i < b; i++) {
          if (!s.y[i]) continue;
          var lo = base[s.x[i]] || 0, hi = lo + s.y[i], xl = sx(s.x[i]), xr = Math.max(xl + 1, sx(s.x[i] + s.w) - 1);
          base[s.x[i]] = hi;
          d.push("M" + xl.toFixed(1) + " " + sy(lo).toFixed(1) + "V" + sy(hi).toFixed(1) + "H" + xr.toFixed(1) + "V" + sy(lo).toFixed(1) + "Z");
        }
      }
      var fill = s.type === "line" || s.type === "segments" ? "none" : s.color;
      mk("path", {d: d.join("") || "M0 0", stroke: s.color, fill: fill, "fill-opacity": s.type === "area" ? 0.25 : 0.85,
        "stroke-width": s.type === "segments" ? 2 : 1.3, "stroke-dasharray": s.type === "segments" ? "5 3" : "none",
        "class": "series", "data-series": s.name}, plot);
    });
    mk("rect", {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, fill: "none", stroke: "#ccd"}, svg);
    this.cross = mk("line", {y1: m.t, y2: H - m.b, stroke: "#778", "stroke-dasharray": "3 3", visibility: "hidden"}, svg);
    this.sel = mk("rect", {y: m.t, height: H - m.t - m.b, fill: "#4a7bd0", "fill-opacity": 0.15, visibility: "hidden"}, svg);
    this.root.setAttribute("data-drawn", "1");
  };
  Chart.prototype.hover = function (ev) {
    var px = this.px(ev), r = this.svg.getBoundingClientRect(), py = ev.clientY - r.top, x = this.ix(px), self = this;
    if (this.drag !== undefined) {
      this.sel.setAttribute("x", Math.min(this.drag, px)); this.sel.setAttribute("width", Math.abs(px - this.drag));
      this.sel.setAttribute("visibility", "visible"); return;
    }
    this.cross.setAttribute("x1", px); this.cross.setAttribute("x2", px); this.cross.setAttribute("visibility", "visible");
    var lines = [fmtTime(x) + " UTC"], near = null, best = 12;
    this.visible().forEach(function (s) {
      if (!s.x.length) return;
      var i = lowerBound(s.x, x);
      if (s.type === "line" || s.type === "area") {
        if (i > 0 && (i === s.x.length || x - s.x[i - 1] < s.x[i] - x)) i -= 1;
        lines.push(s.name + ": " + fmt(s.y[i], self.spec.yfmt));
      } else if (s.type === "bars") {
        i = lowerBound(s.x, x + 1) - 1;
        if (i >= 0 && x < s.x[i] + s.w && s.y[i]) lines.push(s.name + ": " + fmt(s.y[i], "count"));
      } else {
        for (var j = 0; j < s.x.length; j++) {
          var cx = self.sx(s.x[j]), cy = self.sy(s.y[j]);
          var dx = s.type === "segments" ? (px < cx ? cx - px : px > self.sx(s.x2[j]) ? px - self.sx(s.x2[j]) : 0) : px - cx;
          var dist = Math.sqrt(dx * dx + (py - cy) * (py - cy));
          if (dist < best) { best = dist; near = s.t[j]; }
        }
      }
    });
    if (near !== null) lines.push(near);
    var tip = this.tip;
    while (tip.firstChild) tip.removeChild(tip.firstChild);
    lines.forEach(function (t) { tag("div", "", tip, t); });
    tip.style.display = "block";
    var left = px + 16, top = py + 8;
    if (left + tip.offsetWidth > this.W) left = px - tip.offsetWidth - 10;
    tip.style.left = Math.max(0, left) + "px"; tip.style.top = top + "px";
  };
  function zoomAll(range) {
    charts.forEach(function (c) { c.view = range ? range.slice() : c.full.slice(); c.draw(); });
  }
  function ms(v) { return DATA.start + v * 1000; }
  function expand(spec) {  // times back to ms; a pair's trades into entry, exit and stop series
    spec.series.forEach(function (s) {
      s.x = s.x.map(ms); if (s.x2) s.x2 = s.x2.map(ms); if (s.w) s.w *= 1000;
    });
    var T = spec.trades, i;
    if (!T) return;
    var mkS = function (name, type, shape, color) {
      return {name: name, type: type, shape: shape, color: color, x: [], x2: [], y: [], t: []};
    };
    var L = mkS("long entry", "points", "up", "#1f9d55"), S = mkS("short entry", "points", "down", "#c0392b");
    var X = mkS("exit", "points", "diamond", "#2c5fb3"), P = mkS("initial stop", "segments", "", "#e0782b");
    for (i = 0; i < T.et.length; i++) {
      var e = T.side[i] ? L : S, stop = T.stop[i];
      e.x.push(ms(T.et[i])); e.y.push(T.ep[i]);
      e.t.push("entry " + (T.side[i] ? "long " : "short ") + T.qty[i] + " @ " + fmt(T.ep[i]) +
        (stop === null ? "" : ", stop " + fmt(stop)));
      if (stop !== null) {
        P.x.push(ms(T.et[i])); P.x2.push(ms(T.xt[i])); P.y.push(stop);
        P.t.push("initial stop " + fmt(stop) + " (entry " + fmt(T.ep[i]) + ")");
      }
    }
    T.xt.map(function (_, k) { return k; }).sort(function (a, b) { return T.xt[a] - T.xt[b]; }).forEach(function (k) {
      X.x.push(ms(T.xt[k])); X.y.push(T.xp[k]);
      X.t.push("exit (" + spec.reasons[T.why[k]] + ") " + T.qty[k] + " @ " + fmt(T.xp[k]) + ", PnL " +
        (T.pnl[k] > 0 ? "+" : "") + fmt(T.pnl[k], "usd"));
    });
    spec.series.push(L, S, X, P);
  }
  DATA.charts.forEach(function (spec) {
    expand(spec);
    var root = document.getElementById(spec.id);
    if (!root) return;
    var c = new Chart(root, spec);
    charts.push(c); c.draw();
  });
  document.body.setAttribute("data-charts-drawn", String(charts.length));
  if (location.hash === "#selftest") selfTest();
  function selfTest() {  // a headless browser cannot hover: fire the events and record what shows
    var out = [];
    charts.forEach(function (c) {
      var r = c.svg.getBoundingClientRect(), mid = r.left + c.m.l + (c.W - c.m.l - c.m.r) / 2, y = r.top + 40;
      var fire = function (type, x, target) {
        (target || c.svg).dispatchEvent(new MouseEvent(type, {clientX: x, clientY: y, bubbles: true}));
      };
      fire("mousemove", mid);
      var tip = c.tip.textContent, before = c.view[1] - c.view[0];
      fire("mousedown", mid - 100); fire("mousemove", mid + 100); fire("mouseup", mid + 100, window);
      var zoomed = c.view[1] - c.view[0] < before;
      var btn = c.root.querySelector(".head button");
      btn.click();
      var hid = c.svg.querySelectorAll("path.series").length;
      btn.click(); zoomAll(null);
      out.push({id: c.spec.id, tip: tip, zoomed: zoomed, hidden: c.spec.series.length - hid});
    });
    document.body.setAttribute("data-selftest", JSON.stringify(out));
  }
  var t;
  window.addEventListener("resize", function () {
    clearTimeout(t); t = setTimeout(function () { charts.forEach(function (c) { c.draw(); }); }, 100);
  });
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>@CSS@</style>
</head>
<body>
@BODY@
<script type="application/json" id="bt-data">@DATA@</script>
<script>@JS@</script>
</body>
</html>
"""
