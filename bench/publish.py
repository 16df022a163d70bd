"""What the engine publishes about its pairs, and what that costs it, at 100 and 1,000 pairs
(issue 16, point 3: publish what is watched).

In process: a real ``EngineNode`` (unbound sockets, a temporary SQLite file, no history) on a
clock the bench moves. Every pair ticks every 20 ms (50 ticks/s a pair: every pair's state
changes all the time, the worst case for publishing) for 10 simulated seconds, and after each
round the node's timers run (``tick_timers``: the throttled state messages) as its loop does.
Three audiences, set through the subscription frames the node's XPUB would hand it:

  nobody    a daemon and no console: the ``pair`` roll-call only
  console   a console showing 12 panes (``view:SYM`` for 12 pairs) and the roll-call
  all       a subscriber of every topic (``b""``): every pair watched, the rate every pair had
            before issue 16 (10 Hz each) plus the roll-call

Per simulated second: messages and bytes published, and the engine's wall time in the timers
(building and packing the messages; the socket drops them, nobody is connected). Also timed:
``TradingCore.portfolio_summary()`` at each size (the portfolio gauges; the correlation part of
the portfolio message is ``bench/scaling.py``'s).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.report import Figure
from bench.stack import safe_list_text, synthetic_symbols
from engine.core.clock import Clock

SIM_S = 10.0
STEP_MS = 20
PANES = 12


class _Clock(Clock):
    def __init__(self) -> None:
        self.ms = 1_700_000_040_000

    def time_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000.0


class _NoHistory:
    def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Any]:
        return []


@contextlib.contextmanager
def _node(n: int) -> Iterator[tuple[Any, _Clock]]:
    from engine.core.config import load_safe_list
    from engine.node.service import Endpoints, EngineNode

    d = Path(tempfile.mkdtemp(prefix="mpp-", dir="/tmp"))
    (d / "safe_list.yaml").write_text(safe_list_text(synthetic_symbols(n), history=0))
    clock = _Clock()
    eps = Endpoints(*(f"ipc://{d}/{x}" for x in ("fp", "fr", "p", "c")))
    node = None
    try:
        node = EngineNode(load_safe_list(d / "safe_list.yaml"), d / "book.sqlite", eps, clock=clock,
                          history=_NoHistory())  # fmt: skip
        yield node, clock
    finally:
        if node is not None:
            node.close()
        shutil.rmtree(d, ignore_errors=True)


def _one(n: int, audience: str) -> dict[str, Any]:
    import engine.node.publisher as publisher_mod
    from engine.wire.commands import TOPIC_PAIR, TOPICS, view_topic
    from feed.wire import encode_tick_fields

    with _node(n) as (node, clock):
        symbols = list(node.core.pairs)
        pub = node.publisher
        for t in TOPICS:
            pub.on_subscription(b"\x01" + t)
        if audience == "console":
            for sym in symbols[:PANES]:
                pub.on_subscription(b"\x01" + view_topic(sym))
        elif audience == "all":
            pub.on_subscription(b"\x01")
        sizes: list[int] = []
        real_pack = publisher_mod.pack_map

        def pack(m: dict[str, Any]) -> bytes:
            b = real_pack(m)
            sizes.append(len(b))
            return b

        publisher_mod.pack_map = pack  # type: ignore[assignment]
        try:
            topics = [s.encode() for s in symbols]
            timers_ns = 0
            steps = int(SIM_S * 1000 / STEP_MS)
            warm = int(1000 / STEP_MS)  # the first second (every pair's first message) is not counted
            counted = 0
            for step in range(steps + warm):
                clock.ms += STEP_MS
                seq = step + 1
                for i, topic in enumerate(topics):
                    p = 10.0 + i + (seq % 9) * 0.001
                    node.on_message(topic, encode_tick_fields(seq, clock.ms, 0, p, p + 0.001, p))
                if step == warm:
                    sizes.clear()
                    sent0, pair0 = pub.sent, pub._seq.get(TOPIC_PAIR, 0)
                    timers_ns = 0
                t0 = time.perf_counter_ns()
                node.tick_timers()
                timers_ns += time.perf_counter_ns() - t0
                counted = step - warm + 1 if step >= warm else 0
            secs = counted * STEP_MS / 1000.0
            summary = []
            for _ in range(200):
                t0 = time.perf_counter_ns()
                node.core.portfolio_summary()
                summary.append(time.perf_counter_ns() - t0)
            return {
                "pairs": n,
                "audience": audience,
                "msgs_per_s": (pub.sent - sent0) / secs,
                "rollcall_per_s": (pub._seq.get(TOPIC_PAIR, 0) - pair0) / secs,
                "kib_per_s": sum(sizes) / 1024.0 / secs,
                "timers_ms_per_s": timers_ns / 1e6 / secs,
                "watched": len(pub.watched),
                "summary_us": statistics.median(summary) / 1000.0,
            }
        finally:
            publisher_mod.pack_map = real_pack  # type: ignore[assignment]


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    logging.getLogger("engine").setLevel(logging.WARNING)
    runs = 1 if quick else 2
    rows: list[dict[str, Any]] = []
    for n in (100, 1000):
        for audience in ("nobody", "console", "all"):
            for _ in range(runs):
                r = _one(n, audience)
                rows.append(r)
                say(
                    f"publish {n} pairs, {audience}: {r['msgs_per_s']:,.0f} msgs/s "
                    f"({r['rollcall_per_s']:,.0f} roll-call), {r['kib_per_s']:,.0f} KiB/s, "
                    f"timers {r['timers_ms_per_s']:.1f} ms per s, {r['watched']} watched, "
                    f"portfolio summary {r['summary_us']:.0f} µs"
                )

    def pick(n: int, audience: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["pairs"] == n and r["audience"] == audience]

    figures = []
    for n in (100, 1000):
        all_ms = statistics.median(pick(n, "all", "timers_ms_per_s"))
        all_msgs = statistics.median(pick(n, "all", "msgs_per_s"))
        figures.append(Figure(
            f"publish.console_{n}_msgs",
            f"engine state msgs/s, {n} pairs, a console with {PANES} panes",
            "msgs/s", "", None, pick(n, "console", "msgs_per_s"),
            note=(f"every pair ticking 50/s; {statistics.median(pick(n, 'console', 'kib_per_s')):,.0f} KiB/s, "
                  f"building them {statistics.median(pick(n, 'console', 'timers_ms_per_s')):.0f} ms per s; "
                  f"every pair watched (the pre-issue-16 rate): {all_msgs:,.0f} msgs/s, "
                  f"{statistics.median(pick(n, 'all', 'kib_per_s')):,.0f} KiB/s, {all_ms:.0f} ms per s"),
        ))  # fmt: skip
        figures.append(Figure(
            f"publish.nobody_{n}_rollcall",
            f"state msgs/s per unwatched pair, {n} pairs (≤ 1)",
            "msgs/s", "<=", 1.0, [x / n for x in pick(n, "nobody", "rollcall_per_s")],
            note=(f"no console: {statistics.median(pick(n, 'nobody', 'msgs_per_s')):,.0f} msgs/s in all, "
                  f"{statistics.median(pick(n, 'nobody', 'timers_ms_per_s')):.0f} ms per s of the engine"),
        ))  # fmt: skip
        figures.append(Figure(
            f"publish.summary_{n}_us",
            f"portfolio summary build, {n} pairs",
            "µs", "<=", 1000.0, pick(n, "nobody", "summary_us"),
            note="TradingCore.portfolio_summary(): the gauges (the correlation part is bench/scaling.py's)",
        ))  # fmt: skip
    return figures, {"rows": rows}
