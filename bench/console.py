"""The console as a person runs it: ``multipar-console`` on a pty this bench reads.

Owns ``ConsoleRun`` (one console on a ``PtyTerminal`` of a fixed size: ``--demo`` in a private
HOME / XDG dir / run dir, which starts a daemon of its own, or ``attach`` to a running
``bench.daemon.DaemonRun``), the screen readers and the window measurement the console
benchmarks share, and three benchmarks. Since the daemon split a run is four processes, each
measured on its own row: console, daemon, feed, engine (pids from ``daemon.json`` and
``pids.json``; cleanup by pid only, see ``bench/daemon.py``).

  demo      3 pairs at 80×24 and 160×48: cold start (spawn → a price for every pair on the
            screen; the console starts the daemon, which starts feed and engine), bytes
            written to the terminal per second, frames per second, CPU of each process,
            resident memory of console + daemon + feed + engine after ≥ 10 s, and key →
            screen latency of ``p`` (pause/resume the selected pair: console → daemon →
            engine and back)
  load      100 pairs at 20 ticks/s each (2,000 ticks/s) at 160×48: console CPU (and the
            daemon's, which decodes the engine's whole stream for its own model), frame rate,
            bytes/s and ``p`` → screen latency under load
  kill      ctrl+k, y with paper positions open (three seeded in the store before start;
            a strategy may close one first): time from ``y`` to every pair row showing HALTED
            and flat, then the SQLite file is checked (no position, every pair HALTED); and
            the same with the engine SIGSTOPped (the daemon's kill-switch fallback: it
            SIGKILLs the engine and flattens from the book)
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.daemon import ROLES, DaemonRun, Procs, RunHome, console_argv
from bench.report import Figure
from bench.stack import (
    ROOT,
    CpuWindow,
    StateReader,
    alive,
    rss_mb,
    safe_list_text,
    synthetic_symbols,
)
from bench.terminal import KEY_CTRL_K, PtyTerminal

DEMO_SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
START_PRICE = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 150.0}
STARTUP_TIMEOUT_S = 30.0
_BORDERS = "│┃"


# -- reading the screen -----------------------------------------------------------------


def cell(screen: str, symbol: str) -> str:
    """The text from ``symbol`` to the next pane border on its line (a row or a pane title)."""
    for line in screen.splitlines():
        i = line.find(symbol)
        if i < 0:
            continue
        rest = line[i:]
        cut = min((rest.find(b) for b in _BORDERS if b in rest), default=len(rest))
        return rest[:cut]
    return ""


def demo_prices(screen: str) -> dict[str, float]:
    """Per demo pair, the first number near its name that is a plausible price for it."""
    lines = screen.splitlines()
    found: dict[str, float] = {}
    for sym in DEMO_SYMBOLS:
        lo, hi = START_PRICE[sym] * 0.5, START_PRICE[sym] * 1.5
        for i, line in enumerate(lines):
            if sym not in line:
                continue
            near = " ".join(lines[i : i + 3]).replace(sym, " ")
            for tok in re.findall(r"\d[\d,]*\.\d+", near):
                x = float(tok.replace(",", ""))
                if lo <= x <= hi:
                    found[sym] = x
                    break
            if sym in found:
                break
    return found


def all_demo_prices(screen: str) -> bool:
    return len(demo_prices(screen)) == len(DEMO_SYMBOLS)


def engine_running(screen: str) -> bool:
    """The header's engine state (``eng run`` at 80 columns, ``engine running`` when wider)."""
    head = screen.split("\n", 1)[0]
    return "eng run" in head or "engine running" in head


def every_row(
    pred: Callable[[str], bool], symbols: Sequence[str] = DEMO_SYMBOLS
) -> Callable[[str], bool]:
    return lambda s: all(pred(cell(s, sym)) for sym in symbols)


# -- one console --------------------------------------------------------------------------


class ConsoleRun:
    """One ``multipar-console`` on a pty of ``cols`` × ``rows``: ``demo()`` (a fresh private
    home; the console starts a daemon it owns) or ``attach()`` (to a running ``DaemonRun``)."""

    def __init__(
        self,
        cols: int,
        rows: int,
        args: Sequence[str],
        home: RunHome,
        procs: Procs,
        *,
        owns_daemon: bool,
        db: Path | None = None,
    ) -> None:
        self.home = home
        self.run_dir = home.run_dir
        self.procs = procs  # the daemon's processes (shared with the DaemonRun when attached)
        self.owns_daemon = owns_daemon
        self.db = db
        self.spawned = time.monotonic()
        # this tree's packages, not the editable install's (which points at one checkout): a
        # bench run from an exported tree measures that tree; the daemon's children follow it
        env = {**home.env, "PYTHONPATH": str(ROOT)}
        self.term = PtyTerminal(
            [*console_argv(), *args], cols=cols, rows=rows, env=env, cwd=str(ROOT)
        )

    @classmethod
    def demo(
        cls,
        cols: int,
        rows: int,
        *,
        config_text: str | None = None,
        extra: Sequence[str] = (),
        seed_positions: Sequence[str] = (),
    ) -> ConsoleRun:
        """``multipar-console --demo --seed 5`` in its own HOME, XDG dirs and run dir."""
        home = RunHome("mpc-")
        args = ["--demo", "--seed", "5", "--run-dir", str(home.run_dir)]
        args += ["--config", str(home.config(config_text))]
        db = None
        if seed_positions:
            db = home.path / "paper.sqlite"
            _seed_positions(db, seed_positions)
            args += ["--db", str(db)]
        return cls(cols, rows, [*args, *extra], home, Procs(home.run_dir), owns_daemon=True, db=db)

    @classmethod
    def attach(cls, daemon: DaemonRun, cols: int, rows: int) -> ConsoleRun:
        """``multipar-console attach`` to ``daemon``: a new console process, the same daemon."""
        args = ["attach", "--run-dir", str(daemon.run_dir), "--db", str(daemon.db)]
        return cls(cols, rows, args, daemon.home, daemon.procs, owns_daemon=False, db=daemon.db)

    @property
    def console_pid(self) -> int:
        return self.term.pid

    def daemon_pids(self, timeout_s: float = 10.0) -> dict[str, int]:
        """daemon, feed and engine pids once all three are known (the engine starts last)."""
        return self.procs.wait(timeout_s, self.term.pump)

    def all_pids(self, timeout_s: float = 5.0) -> dict[str, int]:
        """Every process of the run by role: console, daemon, feed, engine."""
        return {"console": self.console_pid, **self.daemon_pids(timeout_s)}

    def rss_total_mb(self) -> tuple[float, dict[str, float | None]]:
        each = {k: rss_mb(p) for k, p in self.all_pids(2.0).items()}
        if len(each) < 1 + len(ROLES) or None in each.values():
            self.ensure_alive("the memory reading")
            raise RuntimeError(f"no resident memory for every process: {each}")
        return sum(v for v in each.values() if v is not None), each

    def ensure_alive(self, during: str) -> None:
        """A process that died mid-run (crash, or someone else's kill) fails the run, loudly."""
        dead = [] if self.term.alive() else [f"console (wait status {self.term.exit_status})"]
        dead += self.procs.dead()
        if dead:
            logs = {n: self.home.tail(n) for n in ("console.log", "daemon.log")}
            raise RuntimeError(f"{', '.join(dead)} gone during {during}; {logs}")

    def db_state(self) -> tuple[dict[str, str], list[tuple[str, float]]]:
        db = self.db or (self.run_dir / "demo.sqlite")
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            modes = dict(conn.execute("SELECT symbol, mode FROM pair_modes").fetchall())
            positions = conn.execute("SELECT symbol, qty FROM positions WHERE qty != 0").fetchall()
        return modes, positions

    def quit(self, timeout_s: float = 15.0) -> bool:
        """``q`` (answering ``y`` to the demo's quit-with-positions confirm); True once the
        console has exited. Attached, ``q`` detaches at once and the daemon goes on."""
        with contextlib.suppress(OSError):
            self.term.send(b"q")
        deadline = time.monotonic() + timeout_s
        answered = False
        while time.monotonic() < deadline:
            if not self.term.alive():
                return True
            self.term.pump(0.05)
            if not answered and re.search(r"Quit with \d+ open", self.term.screen()):
                self.term.send(b"y")
                answered = True
        return False

    def close(self) -> None:
        """Stop the console (SIGTERM: it detaches; the demo's stops its daemon first); when
        the daemon is the console's own, give its processes 10 s, then SIGKILL them by pid."""
        if self.owns_daemon:
            self.procs.current()  # a last look: remember every pid before they go
        self.term.close()
        if self.owns_daemon:
            self.procs.reap(10.0)
            self.home.remove()


def _seed_positions(db: Path, symbols: Sequence[str]) -> None:
    """Open paper longs in a fresh book (stops far away), so the kill switch has work to do."""
    from engine.core.markets import default_rules, round_qty_down
    from tests.store_seed import seed_open_position

    for sym in symbols:
        price = START_PRICE.get(sym, 10.0)
        # on the lot step, as the engine opens them (off-step dust is never flattened)
        qty = round_qty_down(100.0 / price, default_rules(sym))
        seed_open_position(db, sym, qty, price, stop=price * 0.01, target=price * 100)


# -- shared measurements ------------------------------------------------------------------

PROCESSES = ("console", *ROLES)  # console, daemon, feed, engine: one row each


def per_process(values: dict[str, Any], unit: str = "%") -> str:
    """``console 5%, daemon 2%, feed 1%, engine 1%``: every process named, none folded."""
    return ", ".join(f"{k} {values.get(k) or 0:.0f}{unit}" for k in PROCESSES)


def median_each(runs: Sequence[dict[str, Any]], key: str) -> dict[str, float]:
    """Per process, the median over ``runs`` of ``run[key][process]``."""
    if not runs:
        return {}
    return {k: statistics.median(r[key].get(k) or 0.0 for r in runs) for k in PROCESSES}


def measure_window(run: ConsoleRun, seconds: float) -> dict[str, Any]:
    """Bytes/s, frames/s and CPU % of every process over ``seconds`` of steady state."""
    term = run.term
    cpu = CpuWindow(run.all_pids(5.0))
    term.track_screen = False  # count only: the reader stays cheap while CPU is measured
    b0, f0 = term.bytes_total, term.frames_total
    t0 = time.monotonic()
    cpu.start()
    term.drain_for(seconds)
    usage = cpu.stop()
    dt = time.monotonic() - t0
    term.track_screen = True
    run.ensure_alive("the measurement window")
    return {
        "bytes_per_s": (term.bytes_total - b0) / dt,
        "fps": (term.frames_total - f0) / dt,
        "cpu_pct": usage,
        "pids": cpu.pids,
        "seconds": dt,
    }


def _pause_latencies(run: ConsoleRun, symbol: str, trials: int) -> list[float]:
    """``p`` → the selected pair shows PAUSED (then ``p`` → it no longer does), in ms."""
    out: list[float] = []
    term = run.term
    for i in range(trials):
        want_paused = "PAUSED" not in cell(term.screen(), symbol)
        t0 = term.send(b"p")
        pred = (
            (lambda s: "PAUSED" in cell(s, symbol))
            if want_paused
            else (lambda s: "PAUSED" not in cell(s, symbol) and "ACTIVE" in cell(s, symbol))
        )
        t1 = term.wait_for(pred, 5.0)
        if t1 is None:
            break
        out.append((t1 - t0) * 1000.0)
        term.drain_for(0.3 + 0.1 * (i % 3))  # let the notification settle; vary the phase
    return out


# -- demo: 3 pairs ------------------------------------------------------------------------


def _demo_run(
    cols: int, rows: int, window_s: float, key_trials: int, rss_age_s: float, say: Any
) -> dict[str, Any]:
    run = ConsoleRun.demo(cols, rows)
    try:
        t_first = run.term.wait_for(all_demo_prices, STARTUP_TIMEOUT_S)
        if t_first is None:
            raise RuntimeError(
                f"no price for every pair within {STARTUP_TIMEOUT_S:.0f} s:\n{run.term.screen()}"
            )
        cold = t_first - run.spawned
        first_head = run.term.screen().split("\n", 1)[0]
        run.term.drain_for(min(2.0, window_s / 2))  # let start-up settle (first charts, toasts)
        win = measure_window(run, window_s)
        wait_rss = rss_age_s - (time.monotonic() - run.spawned)
        if wait_rss > 0:
            run.term.drain_for(wait_rss)
        rss, rss_each = run.rss_total_mb()
        keys = _pause_latencies(run, "BTC/USDT", key_trials)
        quit_ok = run.quit()
    finally:
        run.close()
    say(
        f"demo {cols}x{rows}: cold start {cold:.2f} s, {win['bytes_per_s'] / 1024:.1f} KiB/s, "
        f"{win['fps']:.1f} fps, cpu {per_process(win['cpu_pct'])}, rss {rss:.0f} MB "
        f"({per_process(rss_each, ' MB')}), p → screen {', '.join(f'{x:.0f}' for x in keys)} ms"
    )
    return {
        "cold_start_s": cold,
        "first_price_header": first_head,
        **win,
        "rss_mb": rss,
        "rss_each_mb": rss_each,
        "key_ms": keys,
        "quit_ok": quit_ok,
    }


def run_demo(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    runs = 1 if quick else 2
    window_s = 3.0 if quick else 6.0
    rss_age_s = 6.0 if quick else 10.0  # RSS read once the console has run this long
    key_trials = 2 if quick else 4
    sizes = [(80, 24), (160, 48)]
    results: dict[str, list[dict[str, Any]]] = {}
    for cols, rows in sizes:
        tag = f"{cols}x{rows}"
        results[tag] = []
        for _ in range(runs):
            try:
                results[tag].append(_demo_run(cols, rows, window_s, key_trials, rss_age_s, say))
            except Exception as exc:
                say(f"demo {tag} run failed: {exc}")
    figures = []
    for tag, rs in results.items():
        figures.append(
            Figure(
                f"terminal.bytes_per_s.{tag}",
                f"bytes to the terminal, 3 pairs, {tag}",
                "KiB/s",
                "<=",
                64.0,
                [r["bytes_per_s"] / 1024.0 for r in rs],
                note=(
                    f"{statistics.median(r['fps'] for r in rs):.1f} frames/s; CPU "
                    f"{per_process(median_each(rs, 'cpu_pct'))}"
                    if rs
                    else ""
                ),
                missing="" if rs else "every run failed",
            )
        )
    all_runs = [r for rs in results.values() for r in rs]
    rss_each = median_each(all_runs, "rss_each_mb")
    failed = "" if all_runs else "every run failed"
    figures.append(
        Figure(
            "demo.rss_mb",
            f"resident memory, console + daemon + feed + engine (demo, ≥ {rss_age_s:.0f} s)",
            "MB",
            "<=",
            300.0,
            [r["rss_mb"] for r in all_runs],
            note=(
                f"per process (median): {per_process(rss_each, ' MB')}. Meaning changed with "
                "the daemon split: the sum now includes the daemon, a fourth process; console "
                "+ feed + engine alone (the old sum) "
                f"{statistics.median(r['rss_mb'] - r['rss_each_mb']['daemon'] for r in all_runs):.0f} MB"
                if all_runs
                else ""
            ),
            missing=failed,
        )
    )
    figures.append(
        Figure(
            "demo.daemon_rss_mb",
            "resident memory of the daemon alone (demo)",
            "MB",
            "",
            None,
            [r["rss_each_mb"]["daemon"] for r in all_runs],
            note="new with the daemon split: no Textual, its own synced model of the book",
            missing=failed,
        )
    )
    figures.append(
        Figure(
            "demo.daemon_cpu_pct",
            "daemon CPU, 3 pairs (demo, 80x24 and 160x48)",
            "%",
            "",
            None,
            [r["cpu_pct"].get("daemon") or 0.0 for r in all_runs],
            note="new with the daemon split: the same at both sizes (it draws nothing)",
            missing=failed,
        )
    )
    keys = [x for r in all_runs for x in r["key_ms"]]
    figures.append(
        Figure(
            "demo.key_ms",
            "key → screen, p (pause), 3 pairs",
            "ms",
            "<=",
            100.0,
            keys,
            note=(
                f"pause/resume alternating, every press counted; max {max(keys):,.0f} ms. Since "
                "the daemon split p goes console → daemon → engine (one more hop), the ack back "
                "the same way"
                if keys
                else ""
            ),
            missing="" if keys else "no key trial completed",
        )
    )
    cold = [r["cold_start_s"] for r in all_runs]
    return figures, {"runs": results, "cold_start_s": cold}


# -- load: 100 pairs at 2,000 ticks/s -----------------------------------------------------


def board_shows_price(symbol: str) -> Callable[[str], bool]:
    """The 100-pair board at 160×48 shows a bid (for ``symbol``'s pane, or any pane)."""
    return lambda s: (
        re.search(r"bid \d", cell(s, symbol)) is not None or re.search(r"bid \d", s) is not None
    )


def engine_tick_rate(run_dir: Path, during: Callable[[], Any]) -> tuple[float | None, Any]:
    """Ticks/s the engine handled (from its heartbeats) while ``during()`` runs; its result."""
    reader = StateReader(f"ipc://{run_dir}/engine.pub", topics=(b"_hb",))
    try:
        reader.pump(0.0)
        hb0 = reader.wait_heartbeat(lambda hb: True, 3.0)
        out = during()
        hb1 = reader.wait_heartbeat(lambda hb: True, 3.0)
    finally:
        reader.close()
    if hb0 and hb1 and hb1["ts"] > hb0["ts"]:
        return (hb1["ticks"] - hb0["ticks"]) / ((hb1["ts"] - hb0["ts"]) / 1e9), out
    return None, out


def _load_run(window_s: float, key_trials: int, say: Any) -> dict[str, Any]:
    symbols = synthetic_symbols(100)
    # 100 candles of warm-up instead of 500: start-up is not what this run measures; compact:
    # the long form is refused by the daemon's status schema (see safe_list_text)
    cfg = safe_list_text(symbols, history=100, compact=True)
    run = ConsoleRun.demo(160, 48, config_text=cfg, extra=["--rate", "20"])
    try:
        if run.term.wait_for(board_shows_price(symbols[0]), STARTUP_TIMEOUT_S + 30) is None:
            raise RuntimeError(f"the 100-pair board never showed a price:\n{run.term.screen()}")
        run.term.drain_for(3.0)
        rate, win = engine_tick_rate(run.run_dir, lambda: measure_window(run, window_s))
        keys = _pause_latencies(run, symbols[0], key_trials)
        run.quit()
    finally:
        run.close()
    say(
        f"load 100 pairs 160x48: engine {rate or 0:,.0f} ticks/s, cpu "
        f"{per_process(win['cpu_pct'])}, {win['fps']:.1f} fps, "
        f"{win['bytes_per_s'] / 1024:.0f} KiB/s, p → screen {', '.join(f'{x:.0f}' for x in keys)} ms"
    )
    return {**win, "ticks_per_s": rate, "key_ms": keys}


def run_load(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    runs = 1 if quick else 2
    results = []
    for _ in range(runs):
        try:
            results.append(_load_run(4.0 if quick else 6.0, 3 if quick else 6, say))
        except Exception as exc:
            say(f"load run failed: {exc}")
    missing = "" if results else "every run failed (see the log above)"
    rates = [r["ticks_per_s"] for r in results if r["ticks_per_s"]]
    keys = [x for r in results for x in r["key_ms"]]
    cpu = median_each(results, "cpu_pct")
    note = (
        f"engine handled {statistics.median(rates):,.0f} ticks/s; CPU {per_process(cpu)} of a "
        f"core; {statistics.median(r['bytes_per_s'] for r in results) / 1024:.0f} KiB/s to the "
        "terminal"
        if results and rates
        else ""
    )
    figures = [
        Figure("load.console_cpu_pct", "console CPU, 100 pairs @ 2,000 ticks/s, 160x48", "%", "<=",
               30.0, [r["cpu_pct"].get("console") or 0.0 for r in results], note=note, missing=missing),
        Figure("load.daemon_cpu_pct", "daemon CPU, same load (a console attached)", "%", "", None,
               [r["cpu_pct"].get("daemon") or 0.0 for r in results], missing=missing,
               note="new with the daemon split: it decodes the engine's stream for its own model"),
        Figure("load.fps", "console frame rate, 100 pairs @ 2,000 ticks/s", "fps", ">=", 10.0,
               [r["fps"] for r in results], missing=missing),
        Figure("load.terminal_kib_s", "bytes to the terminal, 100 pairs @ 2,000 ticks/s, 160x48", "KiB/s",
               "<=", 64.0, [r["bytes_per_s"] / 1024.0 for r in results], missing=missing,
               note="issue 16: at any N; positions open by now, so more of each pane changes than at start"),
        Figure("load.key_ms", "key → screen, p (pause), 100 pairs @ 2,000 ticks/s", "ms", "<=",
               100.0, keys, missing=missing or ("" if keys else "no key trial completed"),
               note="console → daemon → engine since the daemon split"),
    ]  # fmt: skip
    return figures, {"runs": results}


# -- kill switch --------------------------------------------------------------------------


def _halted_and_flat(row: str) -> bool:
    return "HALTED" in row and "flat" in row


def open_rows(screen: str) -> int:
    """Demo pairs whose row shows a position (LONG/SHORT rather than flat)."""
    return sum(
        1 for sym in DEMO_SYMBOLS if ("LONG" in cell(screen, sym) or "SHORT" in cell(screen, sym))
    )


def _kill_trial(fallback: bool, say: Any) -> dict[str, Any]:
    run = ConsoleRun.demo(80, 24, seed_positions=DEMO_SYMBOLS)
    hung: int | None = None
    try:
        t_first = run.term.wait_for(all_demo_prices, STARTUP_TIMEOUT_S)
        if t_first is None:
            raise RuntimeError(f"no price for every pair within {STARTUP_TIMEOUT_S:.0f} s")
        cold = t_first - run.spawned
        first_head = run.term.screen().split("\n", 1)[0]
        # the console shows stored positions before the engine is up: kill a running engine
        if run.term.wait_for(engine_running, STARTUP_TIMEOUT_S) is None:
            raise RuntimeError("the engine never showed as running:\n" + run.term.screen())
        # a strategy may close a seeded position at once: at least one must still be open
        if run.term.wait_for(lambda s: open_rows(s) > 0, 10.0) is None:
            raise RuntimeError("no seeded position showed:\n" + run.term.screen())
        n_open = open_rows(run.term.screen())
        pids = run.daemon_pids(10.0)
        if fallback:
            hung = pids.get("engine")  # the daemon supervisor's pids.json names it
            if hung is None:
                raise RuntimeError(f"no engine pid in pids.json: {pids}")
            os.kill(hung, signal.SIGSTOP)
        run.term.send(KEY_CTRL_K)
        if run.term.wait_for(lambda s: "KILL SWITCH?" in s, 3.0) is None:
            raise RuntimeError("the kill confirm did not open:\n" + run.term.screen())
        t0 = run.term.send(b"y")
        t_ack = run.term.wait_for(lambda s: "KILL (fallback" in s, 10.0) if fallback else None
        t_flat = run.term.wait_for(every_row(_halted_and_flat), 20.0 if fallback else 10.0)
        modes, positions = run.db_state()
        db_ok = not positions and all(modes.get(s) == "HALTED" for s in DEMO_SYMBOLS)
        after = run.daemon_pids(2.0)
        run.quit()
    finally:
        if hung is not None and alive(hung):  # the daemon should have killed it
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung, signal.SIGCONT)  # never leave it stopped
        run.close()
    return {
        "cold_start_s": cold,
        "first_price_header": first_head,
        "open_at_kill": n_open,
        "flat_ms": None if t_flat is None else (t_flat - t0) * 1000.0,
        "ack_ms": None if t_ack is None else (t_ack - t0) * 1000.0,
        "db_ok": db_ok,
        "db_positions": positions,
        "pids_before": pids,
        "pids_after": after,
        "engine_replaced": pids.get("engine") != after.get("engine"),
    }


def run_kill(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    trials = 2 if quick else 20
    results = []
    for i in range(trials):
        try:
            r = _kill_trial(False, say)
            results.append(r)
            say(
                f"kill trial {i + 1}/{trials}: {r['open_at_kill']} open, y → HALTED+flat "
                f"{_ms(r['flat_ms'])}, store ok {r['db_ok']}, cold start {r['cold_start_s']:.2f} s"
            )
        except Exception as exc:
            say(f"kill trial {i + 1}/{trials} failed: {exc}")
    fallbacks: list[dict[str, Any]] = []
    for i in range(1 if quick else 3):
        try:
            fb = _kill_trial(True, say)
            fallbacks.append(fb)
            say(
                f"kill with the engine SIGSTOPped {i + 1}: fallback ack shown {_ms(fb['ack_ms'])}, "
                f"HALTED+flat {_ms(fb['flat_ms'])}, store ok {fb['db_ok']}, engine replaced "
                f"{fb['engine_replaced']}"
            )
        except Exception as exc:
            say(f"kill fallback trial failed: {exc}")
    flats = [r["flat_ms"] for r in results if r["flat_ms"] is not None]
    failed = trials - len(flats)
    p99 = _p99(flats)
    db_bad = sum(1 for r in results if not r["db_ok"])
    fb_flats = [f["flat_ms"] for f in fallbacks if f["flat_ms"] is not None]
    fb_acks = [f["ack_ms"] for f in fallbacks if f["ack_ms"] is not None]
    figures = [
        Figure(
            "kill.p99_ms",
            f"kill switch y → all flat+HALTED shown, p99 of {trials}",
            "ms",
            "<=",
            250.0,
            [p99] if p99 is not None else [],
            note=(
                f"1-3 seeded paper positions open (a strategy may close one first); median "
                f"{statistics.median(flats):.0f} ms, max {max(flats):.0f} ms over {len(flats)} "
                f"trials; {failed} trial(s) failed or not shown within 10 s; store not "
                f"flat+HALTED after {db_bad} trial(s). Since the daemon split kill goes "
                "console → daemon (its kill switch) → engine"
                if flats
                else ""
            ),
            missing="" if flats else "no trial completed",
        ),
        Figure(
            "kill.fallback_ms",
            "kill switch, engine hung: y → flat+HALTED shown",
            "ms",
            "<=",
            2000.0,
            fb_flats,
            note=(
                f"engine SIGSTOPped; the daemon waits 1 s for the engine's ack, SIGKILLs it "
                f"and flattens from the book (it did so before the split from the console); "
                f"the fallback ack shows after {statistics.median(fb_acks):.0f} ms; engine "
                f"replaced in {sum(1 for f in fallbacks if f['engine_replaced'])}/"
                f"{len(fallbacks)}, store flat+HALTED after "
                f"{sum(1 for f in fallbacks if f['db_ok'])}/{len(fallbacks)} trial(s)"
                if fb_acks
                else ""
            ),
            missing="" if fb_flats else "no fallback trial showed flat+HALTED",
        ),
    ]
    return figures, {
        "trials": results,
        "fallback": fallbacks,
        "cold_start_s": [r["cold_start_s"] for r in results],
    }


def _ms(x: float | None) -> str:
    return "never" if x is None else f"{x:.0f} ms"


def _p99(xs: list[float]) -> float | None:
    if not xs:
        return None
    ys = sorted(xs)
    # nearest rank: with 20 trials the p99 is the slowest one
    return ys[min(len(ys), math.ceil(0.99 * len(ys))) - 1]


def cold_start_figure(samples: list[float]) -> Figure:
    return Figure(
        "console.cold_start_s",
        "cold start: spawn → first price of every pair",
        "s",
        "<=",
        3.0,
        samples,
        note=(
            "multipar-console --demo on a pty at 80×24 / 160×48; samples from the demo and kill "
            "runs. Since the daemon split this includes starting the daemon (console → daemon "
            "→ feed, engine) and attaching to it"
        ),
        missing="" if samples else "no console run reached a price",
    )
