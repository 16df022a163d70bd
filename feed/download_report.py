"""What a download tells: each pair's result, the run's report and the progress line.

Owns ``PairResult`` (what one pair's download did: the candles added and stored, their range,
the gaps the exchange has, what it lacks before the first and after the last candle, an error
or an interruption, and the paragraph that says so), ``DownloadReport`` (every pair's result
and what stopped the run) and ``ProgressBar`` (one line on stderr redrawn in place, off when
stderr is not a terminal). No network and no file: ``feed.download`` fills them in.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from feed.candles import Gap, fmt_ts


@dataclass
class PairResult:
    """What one pair's download did."""

    pair: str
    timeframe: str
    path: Path
    start_ms: int  # the wanted range: candles opening in [start_ms, end_ms)
    end_ms: int
    rows_before: int = 0
    rows: int = 0  # stored now
    first_ts: int | None = None
    last_ts: int | None = None
    requests: int = 0
    gaps: list[Gap] = field(default_factory=list)  # inside the stored range: the exchange has none
    other_gaps: int = 0  # gaps of the file outside the wanted range (not asked for this run)
    missing_before: Gap | None = None  # wanted, before the first candle the exchange has
    missing_after: Gap | None = None  # wanted, after the last candle the exchange has
    error: str | None = None
    interrupted: bool = False

    @property
    def added(self) -> int:
        return self.rows - self.rows_before

    def summary(self, base: Path | None = None) -> str:
        """One paragraph: added, range, gaps, file; for the end of the run."""
        name = self.path.relative_to(base) if base is not None and self.path.is_relative_to(base) else self.path
        head = f"{self.pair} {self.timeframe}: +{self.added:,} candles"
        if self.rows:
            head += f", {self.rows:,} stored {fmt_ts(self.first_ts)} → {fmt_ts(self.last_ts)} UTC"
        else:
            head += ", none stored"
        head += f" [{name}]"
        lines = [head]
        if self.missing_before is not None:
            lines.append(f"  no candles before {fmt_ts(self.missing_before.end_ms)} "
                         f"(asked from {fmt_ts(self.missing_before.start_ms)}; the pair may be younger)")
        if self.gaps:
            missing = sum(g.missing for g in self.gaps)
            lines.append(f"  {len(self.gaps)} gap(s) in the exchange's data, {missing:,} candles missing "
                         "(left empty, not filled):")
            lines += [f"    {g}" for g in self.gaps[:10]]
            if len(self.gaps) > 10:
                lines.append(f"    ... and {len(self.gaps) - 10} more")
        if self.other_gaps:
            lines.append(f"  the file has {self.other_gaps} more gap(s) outside this range (not asked for; "
                         "see download --list, fill with --from/--days)")
        if self.missing_after is not None:
            lines.append(f"  no candles after {fmt_ts(self.missing_after.start_ms - self.missing_after.tf_ms)}"
                         f" up to {fmt_ts(self.missing_after.end_ms)} ({self.missing_after.missing:,} asked)")
        if self.interrupted:
            lines.append("  interrupted: what was fetched is stored; run again to continue")
        elif self.error:
            lines.append(f"  failed: {self.error}; what was fetched is stored; run again to continue")
        return "\n".join(lines)


@dataclass
class DownloadReport:
    """Every pair's result, in order, and the error that stopped the run (None: it completed)."""

    results: list[PairResult] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False


class ProgressBar:
    """One line on ``stream``: pair, timeframe, a bar and the share of the missing range done."""

    WIDTH = 24

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, min_interval_s: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.min_interval_s = min_interval_s
        self._label = ""
        self._total = 0
        self._last = 0.0
        self._shown = 0

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._last = label, max(0, total), 0.0
        self.update(0, force=True)

    def update(self, done: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        frac = min(1.0, done / self._total) if self._total else 1.0
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        text = f"{self._label} [{bar}] {frac:4.0%} {min(done, self._total):,}/{self._total:,} candles"
        pad = max(0, self._shown - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._shown = len(text)

    def finish(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0
