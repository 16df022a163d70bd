"""Engine sustained throughput with 100 pairs (and the paced run again over 1,000), and loss
counted by sequence numbers.

A real engine process runs a 100-pair safe list (``C000/USDT`` … spot, momentum, no warm-up
history so it starts at once). The bench binds the feed's tick endpoint itself with an XPUB
like the feed's (SNDHWM 100,000, the feed's default; the engine's SUB has RCVHWM 100,000)
and sends ticks as the feed does (one frame ``symbol NUL array`` by the feed's own codec,
``feed.wire.encode_tick_fields``, tick version 3; per-topic sequence numbers, round-robin over the pairs, exchange time advancing at the send rate).
Nobody watches a pair (the bench reads ``_hb`` and the ``pair`` roll-call only), as on a server
with no console attached:

  paced   50,000 ticks/s for 12 s (6 s with --quick): 600,000 ticks, three times what the two
          sockets' high-water marks hold (100,000 each, plus the kernel's buffer), so a run the
          engine only kept up with by queueing cannot pass. The engine must handle every tick,
          none lost (``gaps`` summed over the 100 ``pair`` states, and sent − handled, must be 0),
          and its backlog (sent by the time of a heartbeat − handled by then) is reported. The
          figure is the engine's CPU-seconds per tick (utime + stime from /proc over the run and
          its drain, divided by the ticks handled): everything the process does for a tick,
          ZeroMQ, decode, core, publishing and its loop, whatever the pace.
  paced, 1,000 pairs   the same pace over 1,000 pairs (50 ticks/s each; three runs, one with
          --quick; no flood): issue 16's per-tick target at its 1,000 pairs, the roll-call of every
          pair once a second and the larger working set included
  in process, 1,000 pairs   the paced run's split (``bursts_us_per_tick``): a real ``EngineNode`` in
          this process gets BATCH-tick bursts at the paced rate; the drain of each burst (the
          intake) and the loop's timers (the roll-call, the portfolio, the heartbeat: per-second
          work) are timed apart on the thread's CPU clock
  receive floor   the paced run's ticks over 1,000 pairs to ``bench/receive_floor.py``, a Python
          SUB that only polls and receives (two runs, one with --quick): what the paced figure
          holds before the engine decodes anything
  flood   as fast as the bench can send: the engine is saturated, and its handled rate
          (Δ``ticks`` / Δ``ts`` between heartbeats while it is busy) is its capacity; ticks the
          PUB drops at the high-water mark show up as gaps and are reported, not hidden
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import zmq

from bench.report import Figure
from bench.stack import (
    CLK_TCK,
    ROOT,
    CpuWindow,
    Stack,
    StateReader,
    cpu_seconds,
    safe_list_text,
    synthetic_symbols,
)
from engine.node.tick_in import tick_prefixes
from feed.wire import TOPIC_STATUS

PAIRS = 100
WIDE_PAIRS = 1000  # the paced figure again at the 1,000 pairs (issue 16)
FEED_HWM = 100_000  # python -m feed's default --hwm
TARGET_RATE = 50_000.0
BATCH = 250  # ticks per paced send burst (5 ms at 50k/s)
PACED_S, PACED_QUICK_S = 12.0, 6.0  # 600,000 / 300,000 ticks: beyond both high-water marks
CPU_US_PER_TICK_TARGET = 5.0  # issue 16: the engine's all-in cost per tick, decode included


def _encode(
    symbols: list[str], start: int, n: int, seqs: dict[str, int], te0_ms: int, rate: float
) -> list[bytes]:
    from feed.wire import TICK_SEP, encode_tick_fields

    out = []
    topics = [s.encode() + TICK_SEP for s in symbols]
    px = [10.0 + k for k in range(len(symbols))]
    m = len(symbols)
    for i in range(start, start + n):
        k = i % m
        s = symbols[k]
        seqs[s] += 1
        p = px[k] * (1.0 + 0.0005 * ((i // m) % 40 - 20) / 20)  # a slow saw: bounded, valid quotes
        te = te0_ms + int(i * 1000 / rate)
        out.append(topics[k] + encode_tick_fields(seqs[s], te, time.time_ns(), p - 0.001, p + 0.001, p, 1000.0 + i, 0.0))
    return out


def _main_thread_cpu(pid: int) -> float | None:
    """utime + stime of the process's main thread (the engine's loop: decode, core, publishing);
    the rest of the process's CPU is libzmq's I/O thread moving the bytes."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _backlog(
    sends: list[tuple[int, int]], heartbeats: list[tuple[float, dict[str, Any]]], base: int, end_ns: int
) -> int:
    """The largest (ticks sent by a heartbeat's time − ticks the engine had handled then) over the
    paced run: what the sockets were holding. ``sends``: (time_ns, sent so far) after each burst."""
    worst = 0
    for _, hb in heartbeats:
        ts = hb["ts"]
        if ts > end_ns or ts < sends[0][0]:
            continue
        sent = max((n for t, n in sends if t <= ts), default=0)
        worst = max(worst, sent - (hb["ticks"] - base))
    return worst


def _wait_subscribers(pub: zmq.Socket, want: set[bytes], timeout_s: float) -> set[bytes]:
    """XPUB hands us every subscription: wait until the subscriber holds every topic of ``want``
    (the engine: its symbols' first bytes and ``_status``, engine/node/tick_in.py); what is
    still missing when the time is up."""
    got: set[bytes] = set()
    deadline = time.monotonic() + timeout_s
    while not want <= got and time.monotonic() < deadline:
        if pub.poll(100):
            msg = pub.recv()
            if msg[:1] == b"\x01":
                got.add(msg[1:])
    return want - got


def _quiet(reader: StateReader, expect: int, timeout_s: float) -> int:
    """Wait until the engine's tick count reaches ``expect`` or stops moving; return it."""
    last, still = -1, 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hb = reader.wait_heartbeat(lambda hb: True, 2.0)
        if hb is None:
            continue
        n = hb["ticks"]
        if n >= expect:
            return int(n)
        still = still + 1 if n == last else 0
        if still >= 2:
            return int(n)
        last = n
    return max(last, 0)


def _gaps(reader: StateReader, symbols: list[str]) -> int:
    reader.pump(1.3)  # every pair publishes at least once a second
    return sum(int(reader.pairs.get(s, {}).get("gaps", 0)) for s in symbols)


def _send_paced(
    send: Any, symbols: list[str], n: int, seqs: dict[str, int], te0: int
) -> tuple[list[tuple[int, int]], float]:
    """``n`` ticks round-robin over ``symbols`` at ``TARGET_RATE``, in ``BATCH``-tick bursts
    encoded as they go (600,000 ticks held at once would be ~100 MB): the feed's own cost per
    tick rides along, as in a real feed. ``([(time_ns, sent so far)] per burst, seconds)``."""
    sends: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        due = t0 + i / TARGET_RATE
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.002))
        for m in _encode(symbols, i, min(BATCH, n - i), seqs, te0, TARGET_RATE):
            send(m)
        sends.append((time.time_ns(), min(i + BATCH, n)))
    return sends, time.perf_counter() - t0


def _one_run(quick: bool, say: Any, pairs: int = PAIRS, flood: bool = True) -> dict[str, Any]:
    symbols = synthetic_symbols(pairs)
    paced_n = int(TARGET_RATE * (PACED_QUICK_S if quick else PACED_S))
    flood_n = (200_000 if quick else 400_000) if flood else 0
    with Stack.create(safe_list_text(symbols, history=0)) as st:
        ctx = zmq.Context.instance()
        pub = ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.SNDHWM, FEED_HWM)
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(st.feed_pub)
        reader = StateReader(st.engine_pub)
        try:
            st.start_engine("--history", "0")
            missing = _wait_subscribers(pub, tick_prefixes(symbols) | {TOPIC_STATUS}, 30.0)
            if missing:
                raise RuntimeError(f"the engine did not subscribe to {sorted(missing)} within 30 s")
            seqs = dict.fromkeys(symbols, 0)
            te0 = int(time.time() * 1000)
            send = pub.send
            reader.pump(1.2)
            base = _quiet(reader, 0, 3.0)
            hb_paced = len(reader.heartbeats)

            # -- paced at the target rate
            pid = st.pid("engine")
            cpu = CpuWindow({"engine": pid})
            cpu0, main0 = cpu_seconds(pid), _main_thread_cpu(pid)
            cpu.start()
            sends, paced_s = _send_paced(send, symbols, paced_n, seqs, te0)
            end_ns = time.time_ns()
            handled_paced = _quiet(reader, base + paced_n, 15.0) - base
            cpu1, main1 = cpu_seconds(pid), _main_thread_cpu(pid)
            cpu_paced = cpu.stop()["engine"]
            cpu_us = main_us = None
            if cpu0 is not None and cpu1 is not None and main0 is not None and main1 is not None and handled_paced:
                cpu_us = (cpu1 - cpu0) * 1e6 / handled_paced
                main_us = (main1 - main0) * 1e6 / handled_paced
            backlog = _backlog(sends, reader.heartbeats[hb_paced:], base, end_ns)
            gaps_paced = _gaps(reader, symbols)
            say(
                f"throughput paced, {pairs} pairs: sent {paced_n:,} at {paced_n / paced_s:,.0f}/s, engine handled "
                f"{handled_paced:,}, gaps {gaps_paced}, largest backlog {backlog:,}, engine cpu "
                f"{cpu_paced or 0:.0f}% = {cpu_us or 0:.2f} CPU-µs per tick ({main_us or 0:.2f} in its "
                f"main thread, the rest libzmq's I/O thread)"
            )
            flood_send_s, handled_flood, capacity, gaps_total, busy = 1e-9, 0, None, gaps_paced, []
            if flood_n:
                flood = _encode(symbols, paced_n, flood_n, seqs, te0, TARGET_RATE)

                # -- flood: saturate the engine
                base2 = base + handled_paced
                hb_start = len(reader.heartbeats)
                t1 = time.perf_counter()
                for m in flood:
                    send(m)
                flood_send_s = time.perf_counter() - t1
                final = _quiet(reader, base2 + flood_n, 30.0)
                handled_flood = final - base2
                gaps_total = _gaps(reader, symbols)  # misses a tail of dropped ticks: no later seq
                busy = [
                    (hb["ts"], hb["ticks"])
                    for _, hb in reader.heartbeats[hb_start:]
                    if base2 < hb["ticks"] < final
                ]
                if len(busy) >= 2:
                    capacity = (busy[-1][1] - busy[0][1]) / ((busy[-1][0] - busy[0][0]) / 1e9)
                else:  # drained within a heartbeat: bound it from the total instead
                    capacity = handled_flood / max(time.perf_counter() - t1, 1e-9)
                say(
                    f"throughput flood: sent {flood_n:,} in {flood_send_s:.2f} s "
                    f"({flood_n / flood_send_s:,.0f}/s), engine handled {handled_flood:,} at "
                    f"{capacity:,.0f} ticks/s ({len(busy)} busy heartbeats), not handled "
                    f"{flood_n - handled_flood:,} (seq gaps seen {gaps_total - gaps_paced:,})"
                )
        finally:
            reader.close()
            pub.close(0)
    return {
        "paced_sent": paced_n,
        "paced_rate": paced_n / paced_s,
        "paced_handled": handled_paced,
        "paced_gaps": gaps_paced,
        "paced_lost": max(paced_n - handled_paced, 0) + gaps_paced,
        "paced_engine_cpu_pct": cpu_paced,
        "paced_cpu_us_per_tick": cpu_us,
        "paced_main_thread_us_per_tick": main_us,
        "paced_backlog_max": backlog,
        "flood_sent": flood_n,
        "flood_send_rate": flood_n / flood_send_s if flood_n else None,
        "flood_handled": handled_flood,
        "flood_dropped": flood_n - handled_flood,
        "flood_gaps_seen": gaps_total - gaps_paced,
        "capacity_ticks_per_s": capacity,
        "busy_heartbeats": len(busy),
    }


@contextlib.contextmanager
def _node_in_process(pairs: int) -> Iterator[tuple[Any, zmq.Socket[Any], list[str]]]:
    """A real ``EngineNode`` on ``pairs`` pairs (system clock, SQLite book in a temporary dir,
    no warm-up history), its feed socket bound by a PUB of ours: ``(node, pub, symbols)``."""
    from pathlib import Path

    from engine.core.config import SafeList
    from engine.node.service import Endpoints, EngineNode

    class _NoHistory:
        def candles(self, symbol: str, timeframe_s: int, limit: int) -> list[Any]:
            return []

    symbols = synthetic_symbols(pairs)
    pair = {"tier": "STABLE", "strategy": "momentum", "max_position_size_usd": 500}
    cfg = SafeList.model_validate({
        "portfolio": {"capital_usd": 10_000, "correlation_groups": []},
        "engine": {"timeframe": "1m", "history_candles": 0},
        "pairs": dict.fromkeys(symbols, pair),
    })  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mpc-intake-") as tmp:
        ctx = zmq.Context()
        ends = Endpoints(*(f"ipc://{tmp}/{k}" for k in ("fp", "fr", "p", "c")))
        node = EngineNode(cfg, Path(tmp) / "book.sqlite", ends, history=_NoHistory(), context=ctx)
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 0)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(ends.feed_pub)
        try:
            node.bind()
            time.sleep(0.5)  # the SUB's subscriptions reach the PUB
            yield node, pub, symbols
        finally:
            pub.close(0)
            node.close()
            ctx.term()


def receive_floor(pairs: int = WIDE_PAIRS, quick: bool = False) -> dict[str, Any]:
    """The paced run's ticks over ``pairs`` pairs sent to a bare Python subscriber
    (bench/receive_floor.py) instead of the engine: its CPU per message, all threads
    (``cpu_us_per_msg``) and its main thread (``main_us_per_msg``)."""
    symbols = synthetic_symbols(pairs)
    n = int(TARGET_RATE * (PACED_QUICK_S if quick else PACED_S))
    with tempfile.TemporaryDirectory(prefix="mpb-floor-") as d:
        endpoint = f"ipc://{d}/feed.pub"
        pub = zmq.Context.instance().socket(zmq.XPUB)
        pub.setsockopt(zmq.SNDHWM, FEED_HWM)
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(endpoint)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.receive_floor", endpoint, str(n), *symbols],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            missing = _wait_subscribers(pub, tick_prefixes(symbols), 30.0)
            if missing:
                raise RuntimeError(f"the bare subscriber did not subscribe to {sorted(missing)} within 30 s")
            _send_paced(pub.send, symbols, n, dict.fromkeys(symbols, 0), int(time.time() * 1000))
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            pub.close(0)
    res: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if res["received"] < n:
        raise RuntimeError(f"the bare subscriber received {res['received']:,} of {n:,} ticks")
    return res


def intake_us_per_tick(rounds: int = 6, n: int = 50_000) -> list[float]:
    """The engine's tick intake in process, on the main thread's CPU clock (little moved by other
    load on the machine, unlike the process's CPU-seconds): a real ``EngineNode`` on 100 pairs
    (system clock, SQLite book in a temporary dir) drains ``n`` feed-encoded ticks waiting on its
    real SUB socket over ipc. Per round: µs per tick of ``EngineNode._drain_ticks``, which is
    receiving (two frames, framing checked), decode, the core's tick and the bookkeeping."""
    out: list[float] = []
    with _node_in_process(PAIRS) as (node, pub, symbols):
        seqs = dict.fromkeys(symbols, 0)
        te0 = int(time.time() * 1000)
        for r in range(rounds):
            for m in _encode(symbols, r * n, n, seqs, te0, TARGET_RATE):
                pub.send(m)
            time.sleep(0.5)  # all of them in the SUB's queue
            base = node.ticks_total
            t0 = time.thread_time()
            deadline = time.monotonic() + 30.0
            while node.ticks_total - base < n and time.monotonic() < deadline:
                node._drain_ticks()
            got = node.ticks_total - base
            if got:
                out.append((time.thread_time() - t0) * 1e6 / got)
    return out


def bursts_us_per_tick(pairs: int = WIDE_PAIRS, rounds: int = 4, n: int = 50_000) -> tuple[list[float], list[float]]:
    """The paced run's split, in process: ``(intake, timers)`` µs per tick, one sample per round.
    Ticks come in ``BATCH``-tick bursts at about the paced rate (the thread spins between them,
    so no sleep or wake-up is in it); each burst is drained (``_drain_ticks``, the intake) and the
    loop's timers run once (``tick_timers``: the core's timer, the roll-call, the portfolio, the
    heartbeat), each on the thread's CPU clock. The timers' work is paid per second, not per tick:
    at ``pairs`` pairs it is mostly the roll-call's state of every pair once a second."""
    intake: list[float] = []
    timers: list[float] = []
    with _node_in_process(pairs) as (node, pub, symbols):
        seqs = dict.fromkeys(symbols, 0)
        te0 = int(time.time() * 1000)
        drain, tick_timers = node._drain_ticks, node.tick_timers
        for r in range(-1, rounds):  # round -1 is not kept: the first roll-call sends every pair at once
            msgs = _encode(symbols, (r + 1) * n, n, seqs, te0, TARGET_RATE)
            t_in = t_tm = 0.0
            got = 0
            next_at = time.perf_counter()
            for k in range(0, n, BATCH):
                for m in msgs[k : k + BATCH]:
                    pub.send(m)
                next_at += BATCH / TARGET_RATE
                while time.perf_counter() < next_at:
                    pass  # spin: the burst crosses the socket meanwhile
                base = node.ticks_total
                want = min(BATCH, n - k)
                deadline = time.monotonic() + 5.0
                t0 = time.thread_time()
                while node.ticks_total - base < want and time.monotonic() < deadline:
                    drain()
                t1 = time.thread_time()
                tick_timers()
                t_tm += time.thread_time() - t1
                t_in += t1 - t0
                got += node.ticks_total - base
            if got and r >= 0:
                intake.append(t_in * 1e6 / got)
                timers.append(t_tm * 1e6 / got)
    return intake, timers


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    runs = 1 if quick else 5  # the paced figure moves by 2x between runs on a shared VM
    intake = intake_us_per_tick(3 if quick else 6)
    say("throughput intake in process: " + ", ".join(f"{x:.2f}" for x in intake) + " µs per tick")
    b_intake, b_timers = bursts_us_per_tick(rounds=2 if quick else 4)
    say(f"throughput in process, {WIDE_PAIRS:,} pairs in {BATCH}-tick bursts: intake "
        + ", ".join(f"{x:.2f}" for x in b_intake) + " µs per tick, the loop's timers "
        + ", ".join(f"{x:.2f}" for x in b_timers) + " µs per tick")  # fmt: skip
    results = []
    for _ in range(runs):
        try:
            results.append(_one_run(quick, say))
        except Exception as exc:
            say(f"throughput run failed: {exc}")
    wide: list[dict[str, Any]] = []  # the same pace over 1,000 pairs (50 ticks/s each), no flood
    for _ in range(1 if quick else 3):
        try:
            wide.append(_one_run(quick, say, WIDE_PAIRS, flood=False))
        except Exception as exc:
            say(f"throughput run at {WIDE_PAIRS} pairs failed: {exc}")
    floor: list[dict[str, Any]] = []  # the same pace to a subscriber that only receives
    for _ in range(1 if quick else 2):
        try:
            floor.append(receive_floor(WIDE_PAIRS, quick))
            say(f"throughput receive floor, {WIDE_PAIRS:,} pairs: a bare Python SUB took "
                f"{floor[-1]['cpu_us_per_msg']:.2f} CPU-µs per tick ({floor[-1]['main_us_per_msg']:.2f} in its main thread)")  # fmt: skip
        except Exception as exc:
            say(f"throughput receive floor failed: {exc}")
    missing = "" if results else "every run failed (see the log above)"
    cpu = [r["paced_engine_cpu_pct"] for r in results if r["paced_engine_cpu_pct"] is not None]
    cpu_tick = [r["paced_cpu_us_per_tick"] for r in results if r["paced_cpu_us_per_tick"] is not None]
    figures = [
        Figure(
            "throughput.intake_us_per_tick",
            "engine tick intake in process (recv, decode, core), 100 pairs",
            "µs",
            "",
            None,
            intake,
            missing="" if intake else "no tick drained",
            note="main thread CPU per tick of EngineNode._drain_ticks over 50,000 ticks waiting on its SUB "
            "socket (ipc), one sample per round; the libzmq I/O thread and the loop's wake-ups are not in it",
        ),
        Figure(
            f"throughput.burst_intake_us_per_tick.{WIDE_PAIRS}",
            f"engine tick intake in process, {WIDE_PAIRS:,} pairs, {BATCH}-tick bursts",
            "µs",
            "",
            None,
            b_intake,
            missing="" if b_intake else "no tick drained",
            note=f"as the intake figure, the ticks coming in bursts at about 50k ticks/s (the paced run's "
            f"shape) over {WIDE_PAIRS:,} pairs; the loop's timers are the next figure",
        ),
        Figure(
            f"throughput.timers_us_per_tick.{WIDE_PAIRS}",
            f"the engine loop's timers per tick, in process, {WIDE_PAIRS:,} pairs, 50k ticks/s",
            "µs",
            "",
            None,
            b_timers,
            missing="" if b_timers else "no tick drained",
            note="EngineNode.tick_timers once per burst (core timer, roll-call, portfolio, heartbeat), "
            "per tick handled: per-second work, mostly the roll-call of every pair once a second",
        ),
        Figure(
            "throughput.cpu_us_per_tick",
            "engine CPU per tick, 50k ticks/s paced, 100 pairs",
            "µs",
            "<=",
            CPU_US_PER_TICK_TARGET,
            cpu_tick,
            missing=missing or ("" if cpu_tick else "no /proc CPU reading"),
            note=(
                f"CPU-seconds of the engine process over the paced run and its drain / ticks handled: "
                f"ZeroMQ, decode, core, publishing, loop (main thread "
                f"{statistics.median(r['paced_main_thread_us_per_tick'] or 0 for r in results):.2f} µs, "
                f"the rest libzmq's I/O thread); {results[0]['paced_sent']:,} ticks per run, "
                f"largest backlog {statistics.median(r['paced_backlog_max'] for r in results):,.0f} ticks"
                if results
                else ""
            ),
        ),
        Figure(
            f"throughput.cpu_us_per_tick.{WIDE_PAIRS}",
            f"engine CPU per tick, 50k ticks/s paced, {WIDE_PAIRS:,} pairs",
            "µs",
            "<=",
            CPU_US_PER_TICK_TARGET,
            [r["paced_cpu_us_per_tick"] for r in wide if r["paced_cpu_us_per_tick"] is not None],
            missing="" if wide else "every run failed (see the log above)",
            note=(
                f"as the 100-pair figure, over {WIDE_PAIRS:,} pairs at {TARGET_RATE / WIDE_PAIRS:.0f} ticks/s "
                f"each (main thread {statistics.median(r['paced_main_thread_us_per_tick'] or 0 for r in wide):.2f} µs; "
                f"lost {sum(r['paced_lost'] for r in wide)}): the roll-call of every pair once a second "
                f"and the state of {WIDE_PAIRS:,} pairs are in it"
                if wide
                else ""
            ),
        ),
        Figure(
            f"throughput.receive_floor_us_per_tick.{WIDE_PAIRS}",
            f"a bare Python subscriber's CPU per tick, 50k ticks/s paced, {WIDE_PAIRS:,} pairs",
            "µs",
            "",
            None,
            [r["cpu_us_per_msg"] for r in floor],
            missing="" if floor else "every run failed (see the log above)",
            note=(
                "bench/receive_floor.py: the paced run's ticks to a process that only polls and receives "
                f"(main thread {statistics.median(r['main_us_per_msg'] for r in floor):.2f} µs, the rest "
                "libzmq's I/O thread): the part of the engine's figure paid before a tick is decoded"
                if floor
                else ""
            ),
        ),
        Figure(
            "throughput.capacity",
            "engine throughput, 100 pairs (saturated)",
            "ticks/s",
            ">=",
            TARGET_RATE,
            [r["capacity_ticks_per_s"] for r in results],
            missing=missing,
            note=(
                f"flood of {results[0]['flood_sent']:,} ticks at ~"
                f"{statistics.median(r['flood_send_rate'] for r in results):,.0f}/s; not handled "
                f"(dropped at the high-water marks while saturated, expected): "
                f"{statistics.median(r['flood_dropped'] for r in results):,.0f}"
                if results
                else ""
            ),
        ),
        Figure(
            "throughput.lost_at_50k",
            "ticks lost at 50k ticks/s paced, 100 pairs",
            "ticks",
            "<=",
            0.0,
            [float(r["paced_lost"]) for r in results],
            missing=missing,
            note=(
                f"sequence gaps + (sent − handled) over {results[0]['paced_sent']:,} ticks "
                f"({results[0]['paced_sent'] / TARGET_RATE:.0f} s: beyond both sockets' 100,000-message "
                f"high-water marks); engine CPU at 50k/s "
                f"{statistics.median(cpu):.0f}% of a core"
                if cpu
                else ""
            ),
        ),
    ]
    return figures, {"runs": results, "runs_1000": wide}
