"""Feed publish → engine decision latency over ipc, real processes, at 1k and 10k ticks/s.

Starts the real sim feed (3 pairs, ``--rate`` per pair so the total is 1,000 or 10,000
ticks/s) and the real engine (the repo's safe list, 500 candles of warm-up history, 1m
candles), waits for the first ticks and a short warm-up, then reads ``latency_us`` from the
engine's heartbeat: p50/p99/max of ``time.time_ns() - tick.tr`` when the tick is fully
handled, over the last 4096 ticks. Each sample is one window of 4096 ticks that all arrived
after the warm-up and after the previous sample's window; several windows per process run,
several runs.

Baseline, side by side: the same feed read by a bare SUB in this process that only stamps the
arrival time (no engine, no decode until afterwards): the transport's own latency on this
machine, which the engine's figure cannot beat.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.report import Figure
from bench.stack import CpuWindow, Stack, StateReader

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
RING = 4096
WARMUP_S = 2.0


def _one_run(total_rate: float, windows: int, say: Any) -> dict[str, Any]:
    with Stack.create() as st:
        reader = StateReader(st.engine_pub, topics=(b"_hb",))
        try:
            st.start_feed(SYMBOLS, total_rate / len(SYMBOLS))
            st.start_engine()
            first = reader.wait_heartbeat(lambda hb: hb.get("ticks", 0) > 0, 30.0)
            if first is None:
                raise RuntimeError("the engine handled no tick within 30 s")
            time.sleep(WARMUP_S)
            cpu = CpuWindow({"feed": st.pid("feed"), "engine": st.pid("engine")})
            cpu.start()
            start_hb = reader.wait_heartbeat(lambda hb: True, 5.0) or first
            base = start_hb["ticks"]
            t_base = start_hb["ts"]
            out: list[dict[str, Any]] = []
            for _ in range(windows):
                need = base + RING
                hb = reader.wait_heartbeat(lambda hb, need=need: hb.get("ticks", 0) >= need, 20.0)
                if hb is None or not hb.get("latency_us"):
                    break
                lat = hb["latency_us"]
                out.append(
                    {
                        "p50_us": lat["p50"],
                        "p99_us": lat["p99"],
                        "max_us": lat["max"],
                        "ticks": hb["ticks"],
                        "bad": hb.get("bad", 0),
                    }
                )
                base = hb["ticks"]
            last = reader.heartbeats[-1][1]
            rate = (last["ticks"] - start_hb["ticks"]) / max((last["ts"] - t_base) / 1e9, 1e-9)
            usage = cpu.stop()
        finally:
            reader.close()
    say(
        f"latency {total_rate:,.0f}/s run: "
        + ", ".join(
            f"p50 {w['p50_us']:.0f} p99 {w['p99_us']:.0f} max {w['max_us']:.0f} µs" for w in out
        )
        + f"; engine handled {rate:,.0f} ticks/s, cpu feed {usage['feed'] or 0:.0f}% engine {usage['engine'] or 0:.0f}%"
    )
    return {"windows": out, "engine_ticks_per_s": rate, "cpu_pct": usage}


def _floor_run(total_rate: float, seconds: float) -> dict[str, float]:
    """The same feed read by a bare SUB that only stamps arrival: the transport's own latency."""
    import msgpack
    import zmq

    from feed.wire import message_parts

    with Stack.create() as st:
        st.start_feed(SYMBOLS, total_rate / len(SYMBOLS))
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 1_000_000)
        for s in SYMBOLS:
            sock.setsockopt(zmq.SUBSCRIBE, s.encode())
        sock.connect(st.feed_pub)
        stamps: list[tuple[int, bytes]] = []
        start = time.monotonic()
        end = start + WARMUP_S + seconds
        try:
            while time.monotonic() < end:
                if not sock.poll(100):
                    continue
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)  # a tick is one frame (tick version 3)
                    except zmq.Again:
                        break
                    stamps.append((time.time_ns(), frame))  # decode later: keep the reader cheap
        finally:
            sock.close(0)
    lat = sorted(t - msgpack.unpackb(message_parts([f])[1])[3] for t, f in stamps[len(stamps) // 3 :])
    n = len(lat)
    if not n:
        return {}
    return {"p50_us": lat[n // 2] / 1e3, "p99_us": lat[n * 99 // 100] / 1e3, "n": n}


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    runs = 1 if quick else 3
    plans = [(1_000.0, 1), (10_000.0, 1 if quick else 3)]
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    for rate, windows in plans:
        results = []
        for _ in range(runs):
            try:
                results.append(_one_run(rate, windows, say))
            except Exception as exc:  # a figure not measured is reported, never a crash
                say(f"latency {rate:,.0f}/s run failed: {exc}")
        ws = [w for r in results for w in r["windows"]]
        tag = f"{rate / 1000:.0f}k"
        got = [r["engine_ticks_per_s"] for r in results]
        note = (
            f"{len(results)} run(s) × {windows} window(s) of {RING} ticks; engine handled "
            f"{statistics.median(got):,.0f} ticks/s; worst max {max((w['max_us'] for w in ws), default=0):,.0f} µs; "
            f"cpu feed {statistics.median((r['cpu_pct']['feed'] or 0) for r in results):.0f}% engine "
            f"{statistics.median((r['cpu_pct']['engine'] or 0) for r in results):.0f}%"
            if results
            else ""
        )
        floor: dict[str, float] = {}
        try:
            if quick:  # the baseline needs processes of its own: full runs only
                say(f"latency floor {rate:,.0f}/s: skipped with --quick")
            else:
                floor = _floor_run(rate, 4.0)
                say(
                    f"latency floor {rate:,.0f}/s (feed → bare SUB, no engine): p50 "
                    f"{floor.get('p50_us', 0):.0f} p99 {floor.get('p99_us', 0):.0f} µs"
                )
        except Exception as exc:
            say(f"latency floor {rate:,.0f}/s failed: {exc}")
        if floor:
            note += (
                f"; baseline feed → bare SUB (no engine) p50 {floor['p50_us']:.0f} µs, "
                f"p99 {floor['p99_us']:.0f} µs"
            )
        missing = "" if ws else "no heartbeat with latency (see the log above)"
        figures.append(
            Figure(f"latency.{tag}.p50_us", f"feed → engine decision p50 @ {tag} ticks/s", "µs",
                   "<=", 150.0, [w["p50_us"] for w in ws], note=note, missing=missing)
        )  # fmt: skip
        figures.append(
            Figure(f"latency.{tag}.p99_us", f"feed → engine decision p99 @ {tag} ticks/s", "µs",
                   "<=", 1000.0, [w["p99_us"] for w in ws], missing=missing)
        )  # fmt: skip
        details[tag] = {"runs": results, "floor": floor}
    return figures, details
