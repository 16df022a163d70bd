"""The daemon's control socket from the command line: ``status`` and ``stop``.

Owns ``request`` (one blocking request/reply over a DEALER, bounded by a timeout: a daemon that
does not answer is an answer too) and the two subcommands. ``multipar-console status`` prints a
plain summary (daemon, feed, children, each pair's mode and position, equity, heartbeat ages)
or ``--json``, and exits 0 when healthy, 1 when degraded (a child down or silent, the feed
down, a pair STALE or HALTED, or a daemon that does not answer), 3 when no daemon runs for the
book. ``multipar-console stop`` stops the book's daemon (``--flatten``: close every position
first; a daemon that does not answer gets SIGTERM) and waits until it has exited.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from console.daemon import wire as dwire
from console.daemon.home import DaemonInfo, find_daemon, pid_alive
from console.options import APP_NAME, default_db_path
from engine.wire import commands as engine_wire
from engine.wire.schema import AckMsg, SchemaError

EXIT_HEALTHY = 0
EXIT_DEGRADED = 1
EXIT_NOT_RUNNING = 3
STOP_WAIT_S = 20.0


def request(
    endpoint: str,
    cmd: str,
    timeout_s: float,
    *,
    symbol: str | None = None,
    secure: Any = None,
    **extra: Any,
) -> dict[str, Any] | None:
    """One command to a daemon's control socket; its reply map, or None after ``timeout_s``."""
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if secure is not None:
            secure(sock)
        sock.connect(endpoint)
        rid = f"cli{os.getpid()}.{secrets.token_hex(3)}"
        deadline_ns = time.time_ns() + int(timeout_s * 1e9)
        sock.send(dwire.make_request(rid, cmd, symbol, deadline_ns, **extra))
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000) + 1):
                break
            try:
                m = engine_wire.unpack(sock.recv())
            except engine_wire.CommandError:
                continue
            if m.get("id") == rid:
                return m
        return None
    finally:
        ctx.destroy(linger=0)


def _book_parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{APP_NAME} {prog}", description=description)
    p.add_argument(
        "--db", metavar="PATH", type=Path, help=f"the book (default: {default_db_path()})"
    )
    p.add_argument("--run-dir", metavar="DIR", type=Path, help="the daemon's directory, if set")
    return p


def locate(args: argparse.Namespace) -> tuple[Path, DaemonInfo | None]:
    book = Path(args.db or default_db_path()).expanduser().absolute()
    return book, find_daemon(book, args.run_dir)


def _age(x: float | None) -> str:
    return "never" if x is None else f"{x:.1f} s"


def format_status(st: dwire.StatusMsg) -> str:
    lines = [
        f"daemon    pid {st.pid}, {st.mode}, source {st.source}, up {st.uptime_s:.0f} s"
        + (", stopping" if st.stopping else ""),
        f"book      {st.book}",
        f"health    {st.health}" + (f": {'; '.join(st.problems)}" if st.problems else ""),
        f"feed      {st.feed}",
        f"config    v{st.config_version} ({st.config_digest})",
    ]
    for c in st.children:
        pid = f"pid {c.pid}" if c.pid else "no pid"
        lines.append(
            f"{c.name:<9} {c.state}, {pid}, restarts {c.restarts}, last beat {_age(c.beat_age_s)} ago"
            + (f" ({c.message})" if c.message and c.state != "running" else "")
        )
    eq = "unknown" if st.equity is None else f"{st.equity:,.2f} USD"
    lines.append(f"equity    {eq}" + (", HALTED" if st.halted else ""))
    for p in st.pairs:
        pos = f"{p.side} {p.qty:g} (uPnL {p.unrealised:+,.2f})" if p.side else "flat"
        lines.append(f"  {p.symbol:<12} {p.mode:<8} {pos}")
    if st.remote:
        lines.append(f"remote    {st.remote}")
    return "\n".join(lines)


def status_json(st: dwire.StatusMsg) -> dict[str, Any]:
    d = st.to_wire(versioned=False)
    d.pop("id", None)
    d.pop("seq", None)
    d.pop("safe_list", None)
    d["running"] = True
    return d


def status_main(argv: list[str]) -> int:
    p = _book_parser(
        "status", "Is the book's daemon up and healthy? Exit 0 healthy, 1 degraded, 3 not running."
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    args = p.parse_args(argv)
    book, info = locate(args)
    if info is None:
        if args.json:
            print(json.dumps({"running": False, "book": str(book)}))
        else:
            print(f"not running: no daemon for {book}")
        return EXIT_NOT_RUNNING
    m = request(info.endpoints.daemon_ctl, dwire.STATUS, 3.0)
    st, why = None, "does not answer"
    if m is not None:
        try:
            st = dwire.StatusMsg.from_wire(m)
        except SchemaError as exc:
            why = f"answers something unreadable ({exc})"
    if st is None:
        text = f"daemon pid {info.pid} of {book} {why} on {info.endpoints.daemon_ctl}"
        if args.json:
            print(
                json.dumps(
                    {"running": True, "health": "degraded", "pid": info.pid, "problems": [text]}
                )
            )
        else:
            print(f"degraded: {text}")
        return EXIT_DEGRADED
    print(json.dumps(status_json(st)) if args.json else format_status(st))
    return EXIT_HEALTHY if st.health == "healthy" else EXIT_DEGRADED


def stop_main(argv: list[str]) -> int:
    p = _book_parser("stop", "Stop the book's daemon: the engine, the feed and the daemon itself.")
    p.add_argument(
        "--flatten",
        action="store_true",
        help="close every position first; refuse to stop if that fails",
    )
    args = p.parse_args(argv)
    book, info = locate(args)
    if info is None:
        print(f"not running: no daemon for {book}")
        return EXIT_NOT_RUNNING
    m = request(
        info.endpoints.daemon_ctl, dwire.STOP, 16.0 if args.flatten else 3.0, flatten=args.flatten
    )
    if m is None:
        print(f"daemon pid {info.pid} does not answer: sending SIGTERM", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
    else:
        try:
            ack = AckMsg.from_wire(m)
        except SchemaError as exc:
            print(f"{APP_NAME}: unreadable answer from the daemon: {exc}", file=sys.stderr)
            return 1
        print(ack.message)
        if not ack.ok:
            return 1
    deadline = time.monotonic() + STOP_WAIT_S
    while pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(info.pid):
        print(f"daemon pid {info.pid} still running after {STOP_WAIT_S:.0f} s", file=sys.stderr)
        return 1
    print(f"stopped: daemon pid {info.pid} of {info.book}")
    return 0
