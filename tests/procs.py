"""Start the real feed and engine processes on ipc endpoints in a temp dir, for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def alive(pid: int) -> bool:
    """Is the process running? A zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def until(pred: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Let the event loop run until ``pred()`` holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def short_tmpdir() -> Path:
    """ipc:// paths must stay under ~100 bytes; pytest's tmp_path can be longer."""
    return Path(tempfile.mkdtemp(prefix="mp-", dir="/tmp"))


@dataclass
class Stack:
    dir: Path
    config: Path
    db: Path
    feed_pub: str
    feed_rep: str
    engine_pub: str
    engine_cmd: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def feed_cmd(self, *extra: str, symbols: list[str] = SYMBOLS, rate: float = 20.0, seed: int = 7) -> list[str]:
        return [
            sys.executable, "-m", "feed", "--source", "sim", "--symbols", ",".join(symbols),
            "--pub", self.feed_pub, "--rep", self.feed_rep, "--seed", str(seed), "--rate", str(rate),
            "--log-file", str(self.dir / "feed.log"), *extra,
        ]

    def engine_cmd_line(self, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "engine", "--config", str(self.config), "--db", str(self.db),
            "--feed-pub", self.feed_pub, "--feed-rep", self.feed_rep, "--pub", self.engine_pub,
            "--cmd", self.engine_cmd, "--log-file", str(self.dir / "engine.log"), *extra,
        ]

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs[name] = p
        return p

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        p = self.procs.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p.stderr:
            p.stderr.close()
        return p.returncode

    def log(self, name: str) -> str:
        f = self.dir / f"{name}.log"
        return f.read_text() if f.exists() else ""


@contextmanager
def stack(config_text: str | None = None) -> Iterator[Stack]:
    d = short_tmpdir()
    cfg = d / "safe_list.yaml"
    cfg.write_text(config_text if config_text is not None else (ROOT / "safe_list.yaml").read_text())
    s = Stack(
        dir=d, config=cfg, db=d / "engine.sqlite",
        feed_pub=f"ipc://{d}/feed.pub", feed_rep=f"ipc://{d}/feed.rep",
        engine_pub=f"ipc://{d}/engine.pub", engine_cmd=f"ipc://{d}/engine.cmd",
    )
    try:
        yield s
    finally:
        for name in list(s.procs):
            s.stop(name, signal.SIGKILL)


class Subscriber:
    """A SUB socket that collects decoded maps per topic."""

    def __init__(self, endpoint: str, topics: list[bytes] | None = None) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        for t in topics or [b""]:
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        self.sock.connect(endpoint)

    def recv(self, timeout_s: float = 0.2) -> tuple[bytes, dict[str, Any]] | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        topic, payload = self.sock.recv_multipart()
        return topic, msgpack.unpackb(payload, raw=False)

    def wait_for(self, pred: Callable[[bytes, dict[str, Any]], bool], timeout_s: float = 20.0) -> tuple[bytes, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.recv(0.2)
            if got is not None and pred(*got):
                return got
        raise TimeoutError("no matching message before the deadline")

    def close(self) -> None:
        self.sock.close(0)


class Commander:
    """A DEALER socket speaking the engine's command protocol."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.n = 0

    def send(self, cmd: str, symbol: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        from engine.wire.commands import make_command, unpack

        self.n += 1
        cid = f"t{self.n}"
        self.sock.send(make_command(cid, cmd, symbol))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sock.poll(100):
                ack = unpack(self.sock.recv())
                if ack["id"] == cid:
                    return ack
        raise TimeoutError(f"no ack for {cmd}")

    def close(self) -> None:
        self.sock.close(0)
