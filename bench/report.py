"""Figures, the results table, the results JSON and the comparison with a previous run.

Owns ``Figure`` (one measured figure: its per-run samples, its target and whether the median
meets it), the machine description recorded with every run, and the printing of the table
``figure | target | measured (median, spread) | met?`` and of ``--compare`` deltas.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Figure:
    """One figure: ``samples`` are per-run values; the median is compared with the target."""

    key: str  # stable id, used by --compare
    label: str
    unit: str
    op: str  # "<=" or ">=": how the median must relate to ``bound``; "" = informative only
    bound: float | None
    samples: list[float] = field(default_factory=list)
    note: str = ""
    missing: str = ""  # why it could not be measured, when ``samples`` is empty

    @property
    def median(self) -> float | None:
        xs = [x for x in self.samples if x is not None and math.isfinite(x)]
        return statistics.median(xs) if xs else None

    @property
    def spread(self) -> tuple[float, float] | None:
        xs = [x for x in self.samples if x is not None and math.isfinite(x)]
        return (min(xs), max(xs)) if xs else None

    @property
    def met(self) -> bool | None:
        m = self.median
        if m is None or not self.op or self.bound is None:
            return None
        return m <= self.bound if self.op == "<=" else m >= self.bound

    @property
    def target(self) -> str:
        if not self.op or self.bound is None:
            return "—"
        sym = "≤" if self.op == "<=" else "≥"
        return f"{sym} {_num(self.bound)} {self.unit}".rstrip()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(median=self.median, spread=self.spread, met=self.met, target=self.target)
        return d


def _num(x: float) -> str:
    ax = abs(x)
    if ax >= 100_000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def measured_text(f: Figure) -> str:
    m = f.median
    if m is None:
        return f"not measured: {f.missing}" if f.missing else "not measured"
    lo, hi = f.spread or (m, m)
    n = len(f.samples)
    text = f"{_num(m)} {f.unit}".rstrip()
    if n > 1:
        text += f" ({_num(lo)}–{_num(hi)}, n={n})"
    return text


def met_text(f: Figure) -> str:
    met = f.met
    return "—" if met is None else ("yes" if met else "NO")


def table(figures: list[Figure]) -> str:
    rows = [("figure", "target", "measured: median (min–max, runs)", "met?")]
    rows += [(f.label, f.target, measured_text(f), met_text(f)) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    widths[2] = min(widths[2], 60)
    lines = []
    for i, r in enumerate(rows):
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    notes = [f"  [{f.key}] {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    versions = {}
    for pkg in ("textual", "pyzmq", "msgpack", "pandas", "numpy", "talipp"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "missing"
    from engine.compiled import describe

    return {
        "core": describe(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_total_mb": mem_kb // 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))


def compare(previous: dict[str, Any], figures: list[Figure]) -> str:
    """Now against a previous results JSON, figure by figure (by key)."""
    old = {f["key"]: f for f in previous.get("figures", [])}
    rows = [("figure", "before", "now", "change")]
    for f in figures:
        prev = old.get(f.key)
        before = prev.get("median") if prev else None
        now = f.median
        if before is None or now is None:
            change = "—"
        elif before == 0:
            change = "n/a"
        else:
            change = f"{(now - before) / abs(before) * 100:+.1f}%"
        rows.append(
            (
                f.label,
                "—" if before is None else f"{_num(before)} {f.unit}".rstrip(),
                "—" if now is None else f"{_num(now)} {f.unit}".rstrip(),
                change,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(1, "-+-".join("-" * w for w in widths))
    when = previous.get("started", "?")
    return f"compared with {previous.get('_path', 'previous run')} ({when}):\n" + "\n".join(out)
