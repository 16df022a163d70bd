"""Attaching a console to a daemon that already runs: ``multipar-console attach`` on a pty.

Owns the ``attach`` benchmark (issue 10 asks for "attach → full screen time, and the console's
CPU at 100 pairs"). Each daemon is a ``bench.daemon.DaemonRun`` (sim source, 2 s candles, a
fresh book, its own session), healthy by ``status`` and left to warm up before any console
comes; every attach is a new console process (``ConsoleRun.attach``), detached with ``q``, and
after each detach ``status`` must still exit 0 with the same daemon and engine pids.

  3 pairs, 80×24     spawn → full screen: the header's equity (a number, not "—") and a
                     plausible price on every pair's row; several trials; then the same after
                     an SSH drop's equivalent (the attached console gets SIGHUP, which
                     detaches it, and a new console attaches at once)
  100 pairs, 160×48  spawn → full screen: the header's equity and a bid in each of the nine
                     panes the grid shows first (C000 … C008); then one console attached for a
                     ≥ 10 s window at 20 ticks/s/pair (2,000 ticks/s): the console's CPU and the
                     daemon's (it decodes the engine's whole stream for its own model), side by
                     side with the feed's and the engine's
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.console import (
    STARTUP_TIMEOUT_S,
    ConsoleRun,
    all_demo_prices,
    measure_window,
    median_each,
    per_process,
)
from bench.daemon import DaemonRun
from bench.report import Figure
from bench.stack import safe_list_text, synthetic_symbols

BIG_PAIRS = 100
BIG_RATE = 20.0  # ticks/s per pair: 2,000 ticks/s in all, as in the load benchmark
FIRST_PANES = 9  # the 3 × 3 grid a 160×48 screen shows first
_EQUITY = re.compile(r"\bEq(?:uity)? -?[\d,]+\.\d\d\b")


def header_equity(screen: str) -> bool:
    """The header shows the portfolio's equity (``Eq 10,000.00``; ``Eq —`` until it comes)."""
    return _EQUITY.search(screen.split("\n", 1)[0]) is not None


def pane_bid(screen: str, symbol: str) -> bool:
    """``symbol``'s pane shows a bid: ``bid <number>`` below its title, in its column."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        x = line.find(symbol)
        if x >= 0:
            return any(re.match(r"bid \d", ln[x : x + 12]) for ln in lines[i + 1 : i + 4])
    return False


def full_screen_3(screen: str) -> bool:
    return header_equity(screen) and all_demo_prices(screen)


def full_screen_panes(symbols: Sequence[str]) -> Callable[[str], bool]:
    return lambda s: header_equity(s) and all(pane_bid(s, sym) for sym in symbols)


def _daemon_intact(d: DaemonRun, before: dict[str, int]) -> tuple[bool, str]:
    """``status`` exits 0 and the daemon and its engine are the processes they were."""
    code, data = d.status()
    now = d.procs.current()
    same = all(now.get(k) == before.get(k) for k in ("daemon", "engine"))
    ok = code == 0 and same and d.running()
    return ok, "" if ok else f"status {code} {data.get('problems')}, pids {before} → {now}"


def _attach_trials(
    d: DaemonRun,
    cols: int,
    rows: int,
    full: Callable[[str], bool],
    trials: int,
    say: Any,
    tag: str,
    *,
    hangup: bool = False,
) -> dict[str, Any]:
    """``trials`` consoles one after another: spawn → ``full`` screen, then ``q`` (or, with
    ``hangup``, SIGHUP) and a check that the daemon is untouched. Times in seconds."""
    before = d.procs.current()
    out: dict[str, Any] = {"full_s": [], "leave_s": [], "intact": [], "problems": []}
    for i in range(trials):
        run = ConsoleRun.attach(d, cols, rows)
        try:
            t_full = run.term.wait_for(full, STARTUP_TIMEOUT_S)
            if t_full is None:
                raise RuntimeError(
                    f"no full screen in {STARTUP_TIMEOUT_S:.0f} s:\n{run.term.screen()}"
                )
            out["full_s"].append(t_full - run.spawned)
            t0 = time.monotonic()
            if hangup:  # what an SSH drop delivers; the console detaches as on q
                os.kill(run.console_pid, signal.SIGHUP)
                left = run.term.wait_exit(15.0)
            else:
                left = run.quit()
            out["leave_s"].append(time.monotonic() - t0 if left else None)
        finally:
            run.close()
        time.sleep(0.5)  # the last console's teardown is not the next one's start-up
        ok, why = _daemon_intact(d, before)
        out["intact"].append(ok)
        if why:
            out["problems"].append(why)
        leave = out["leave_s"][-1]
        say(
            f"attach {tag} {'after SIGHUP ' if hangup else ''}{i + 1}/{trials}: full screen "
            f"{out['full_s'][-1]:.2f} s, {'SIGHUP' if hangup else 'q'} → exit "
            f"{'never' if leave is None else f'{leave:.2f} s'}, daemon intact {ok} {why}"
        )
    return out


def _small(trials: int, hup_trials: int, say: Any) -> dict[str, Any]:
    with DaemonRun() as d:
        ready = d.wait_healthy()
        time.sleep(3.0)  # warm: the engine's first candles and states are out
        say(f"attach: 3-pair daemon healthy {ready:.2f} s after spawn")
        res = _attach_trials(d, 80, 24, full_screen_3, trials, say, "3 pairs 80x24")
        res["hup"] = _attach_trials(
            d, 80, 24, full_screen_3, hup_trials + 1, say, "3 pairs 80x24", hangup=True
        )
        res["daemon_ready_s"] = ready
    # re-attach after a drop: every console after the first SIGHUP'd one
    res["reattach_s"] = res["hup"]["full_s"][1:]
    return res


def _big(trials: int, window_s: float, say: Any) -> dict[str, Any]:
    symbols = synthetic_symbols(BIG_PAIRS)
    cfg = safe_list_text(symbols, history=100, compact=True)  # compact: see safe_list_text
    full = full_screen_panes(symbols[:FIRST_PANES])
    with DaemonRun(config_text=cfg, rate=BIG_RATE) as d:
        ready = d.wait_healthy()
        time.sleep(3.0)
        say(f"attach: {BIG_PAIRS}-pair daemon healthy {ready:.2f} s after spawn")
        res = _attach_trials(d, 160, 48, full, trials, say, f"{BIG_PAIRS} pairs 160x48")
        run = ConsoleRun.attach(d, 160, 48)
        try:
            if run.term.wait_for(full, STARTUP_TIMEOUT_S) is None:
                raise RuntimeError(f"no full screen for the CPU window:\n{run.term.screen()}")
            run.term.drain_for(3.0)  # past the console's start-up
            win = measure_window(run, window_s)
            run.quit()
        finally:
            run.close()
    say(
        f"attach {BIG_PAIRS} pairs 160x48 over {win['seconds']:.1f} s: cpu "
        f"{per_process(win['cpu_pct'])}, {win['fps']:.1f} fps, "
        f"{win['bytes_per_s'] / 1024:.0f} KiB/s"
    )
    return {**res, "window": win, "daemon_ready_s": ready}


def _summary(xs: Sequence[float]) -> str:
    return f"median {statistics.median(xs):.2f} s, max {max(xs):.2f} s over {len(xs)}"


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    small: dict[str, Any] = {}
    big: dict[str, Any] = {}
    try:
        small = _small(3 if quick else 8, 1 if quick else 3, say)
    except Exception as exc:
        say(f"attach 3 pairs failed: {exc}")
    try:
        big = _big(2 if quick else 5, 5.0 if quick else 12.0, say)
    except Exception as exc:
        say(f"attach {BIG_PAIRS} pairs failed: {exc}")
    figures: list[Figure] = []
    full3 = small.get("full_s", [])
    leaves = [x for x in small.get("leave_s", []) if x is not None]
    intact = small.get("intact", []) + small.get("hup", {}).get("intact", [])
    figures.append(
        Figure(
            "attach.full_screen_s.80x24",
            "attach → full screen, 3 pairs, 80x24 (daemon running)",
            "s",
            "",
            None,
            full3,
            note=(
                f"{_summary(full3)} consoles; spawn of multipar-console attach → header equity "
                f"and every pair's price; q → console exit median "
                f"{statistics.median(leaves):.2f} s; daemon running with the same daemon and "
                f"engine pids (status exit 0) after {sum(intact)}/{len(intact)} detaches"
                if full3 and leaves
                else ""
            ),
            missing="" if full3 else "no attach reached a full screen",
        )
    )
    re3 = small.get("reattach_s", [])
    hup_exit = [x for x in small.get("hup", {}).get("leave_s", []) if x is not None]
    figures.append(
        Figure(
            "attach.reattach_after_hup_s.80x24",
            "re-attach after SIGHUP (SSH drop), 3 pairs, 80x24",
            "s",
            "",
            None,
            re3,
            note=(
                f"{_summary(re3)}; the previous console got SIGHUP (SIGHUP → exit median "
                f"{statistics.median(hup_exit):.2f} s), the next attach was spawned 0.5 s after "
                "it exited"
                if re3 and hup_exit
                else ""
            ),
            missing="" if re3 else "no re-attach reached a full screen",
        )
    )
    full100 = big.get("full_s", [])
    figures.append(
        Figure(
            f"attach.full_screen_s.{BIG_PAIRS}",
            f"attach → full screen, {BIG_PAIRS} pairs @ 2,000 ticks/s, 160x48",
            "s",
            "",
            None,
            full100,
            note=(
                f"{_summary(full100)} consoles; full = header equity and a bid in each of the "
                f"first {FIRST_PANES} panes (the 3×3 grid on screen)"
                if full100
                else ""
            ),
            missing="" if full100 else "no attach reached a full screen",
        )
    )
    win = big.get("window")
    cpu = median_each([win], "cpu_pct") if win else {}
    for who, bound in (("console", 30.0), ("daemon", None)):
        figures.append(
            Figure(
                f"attach.{who}_cpu_pct.{BIG_PAIRS}",
                f"{who} CPU, {BIG_PAIRS} pairs @ 2,000 ticks/s, one console attached at 160x48",
                "%",
                "<=" if bound is not None else "",
                bound,
                [cpu[who]] if win else [],
                note=(
                    (
                        f"one {win['seconds']:.0f} s window: {per_process(cpu)}; "
                        f"{win['fps']:.1f} fps, {win['bytes_per_s'] / 1024:.0f} KiB/s to the "
                        "terminal"
                    )
                    if who == "console"
                    else "the same window; the daemon decodes the engine's whole stream for "
                    "its own model of the book, whether a console is attached or not"
                )
                if win
                else "",
                missing="" if win else "no CPU window",
            )
        )
    return figures, {"small": small, "big": big}
