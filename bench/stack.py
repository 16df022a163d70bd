"""The real feed and engine processes for the process benchmarks, and what /proc says about them.

Owns ``Stack`` (a short private temp dir with ipc endpoints, a safe list and a SQLite file;
starts ``python -m feed`` / ``python -m engine`` exactly as the console does and stops them by
pid), ``StateReader`` (a SUB socket on the engine's state topics), the 100-pair safe list the
throughput and console-load benchmarks use, and CPU / RSS readings from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def short_tmpdir(prefix: str = "mpb-") -> Path:
    """ipc:// socket paths must stay under ~100 bytes: a fresh 0700 dir directly under /tmp."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_ticks(pid: int) -> int | None:
    """When a process started (clock ticks since boot): with its pid, who it is. A pid the
    kernel handed to someone else since has another start time, so it is never signalled."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


class CpuWindow:
    """CPU used by some pids between ``start()`` and ``stop()``, as % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._t0 = 0.0
        self._c0: dict[str, float | None] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}

    def stop(self) -> dict[str, float | None]:
        dt = time.monotonic() - self._t0
        out: dict[str, float | None] = {}
        for k, p in self.pids.items():
            c1, c0 = cpu_seconds(p), self._c0.get(k)
            out[k] = None if c1 is None or c0 is None or dt <= 0 else 100.0 * (c1 - c0) / dt
        return out


def safe_list_text(
    symbols: Sequence[str], *, history: int = 500, timeframe: str = "1m", compact: bool = False
) -> str:
    """A valid safe list of ``symbols``: spot, momentum, VOLATILE, small size caps.

    ``compact``: every pair after the first is a YAML alias of the first (``C001/USDT: *pair``),
    the same configuration in ~20 characters a pair. The daemon hands its safe list's text to
    every console in its ``status`` reply, whose schema refuses a string over 4,096 characters
    (``engine/wire/codec.py MAX_STR``): the long form of 100 pairs (14 kB) cannot be attached to.
    """
    lines = [
        "version: 1",
        "portfolio:",
        "  capital_usd: 10000",
        "  max_total_exposure: 0.10",
        "  max_correlated_positions: 2",
        "  min_confidence: 0.60",
        "  risk_per_trade_usd: 25",
        "  atr_multiplier: 2.0",
        "  correlation_groups: []",
        "  correlation_threshold: 0.80",
        "  correlation_window: 60",
        "  stale_after_s: 10",
        "  taker_fee: 0.001",
        "  slippage_bps: 1.0",
        "engine:",
        f"  timeframe: {timeframe}",
        f"  history_candles: {history}",
        "pairs:",
    ]
    if compact and symbols:
        first = "tier: VOLATILE, strategy: momentum, market: spot, max_position_size_usd: 100"
        lines.append(f"  {symbols[0]}: &pair {{enabled: true, {first}, leverage: 1}}")
        lines += [f"  {s}: *pair" for s in symbols[1:]]
        return "\n".join(lines) + "\n"
    for s in symbols:
        lines += [
            f"  {s}:",
            "    enabled: true",
            "    tier: VOLATILE",
            "    strategy: momentum",
            "    market: spot",
            "    leverage: 1",
            "    max_position_size_usd: 100",
        ]
    return "\n".join(lines) + "\n"


def synthetic_symbols(n: int) -> list[str]:
    return [f"C{i:03d}/USDT" for i in range(n)]


@dataclass
class Stack:
    """One private directory with the four endpoints, a safe list and a store."""

    dir: Path
    config: Path
    db: Path
    feed_pub: str
    feed_rep: str
    engine_pub: str
    engine_cmd: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def create(cls, config_text: str | None = None) -> Stack:
        d = short_tmpdir()
        cfg = d / "safe_list.yaml"
        cfg.write_text(
            config_text if config_text is not None else (ROOT / "safe_list.yaml").read_text()
        )
        return cls(
            dir=d, config=cfg, db=d / "engine.sqlite",
            feed_pub=f"ipc://{d}/feed.pub", feed_rep=f"ipc://{d}/feed.rep",
            engine_pub=f"ipc://{d}/engine.pub", engine_cmd=f"ipc://{d}/engine.cmd",
        )  # fmt: skip

    def start_feed(self, symbols: Sequence[str], rate: float, *extra: str, seed: int = 7) -> int:
        cmd = [
            sys.executable, "-m", "feed", "--source", "sim", "--symbols", ",".join(symbols),
            "--pub", self.feed_pub, "--rep", self.feed_rep, "--seed", str(seed),
            "--rate", f"{rate:g}", "--log-file", str(self.dir / "feed.log"), "--log-level", "WARNING",
            *extra,
        ]  # fmt: skip
        return self._start("feed", cmd)

    def start_engine(self, *extra: str) -> int:
        cmd = [
            sys.executable, "-m", "engine", "--config", str(self.config), "--db", str(self.db),
            "--feed-pub", self.feed_pub, "--feed-rep", self.feed_rep, "--pub", self.engine_pub,
            "--cmd", self.engine_cmd, "--log-file", str(self.dir / "engine.log"),
            "--log-level", "WARNING", *extra,
        ]  # fmt: skip
        return self._start("engine", cmd)

    def _start(self, name: str, cmd: list[str]) -> int:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs[name] = p
        return p.pid

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop(self, name: str, timeout_s: float = 5.0) -> int | None:
        p = self.procs.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return p.returncode

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StateReader:
    """SUB on the engine's PUB: decoded maps per topic, latest ``pair`` state per symbol."""

    def __init__(self, endpoint: str, topics: Sequence[bytes] = (b"_hb", b"pair")) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        self.sock.connect(endpoint)
        self.pairs: dict[str, dict[str, Any]] = {}
        self.heartbeats: list[tuple[float, dict[str, Any]]] = []  # (our monotonic, map)

    def pump(self, timeout_s: float) -> None:
        """Read everything that arrives within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if not self.sock.poll(max(0, int(left * 1000))):
                return
            while True:
                try:
                    topic, payload = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                m = msgpack.unpackb(payload, raw=False)
                if topic == b"_hb":
                    self.heartbeats.append((time.monotonic(), m))
                elif topic == b"pair":
                    self.pairs[m["symbol"]] = m
            if time.monotonic() >= deadline:
                return

    def wait_heartbeat(
        self, pred: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any] | None:
        """The first heartbeat from now on that satisfies ``pred``."""
        seen = len(self.heartbeats)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.pump(min(0.1, max(0.0, deadline - time.monotonic())))
            for _, hb in self.heartbeats[seen:]:
                if pred(hb):
                    return hb
            seen = len(self.heartbeats)
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close(0)
