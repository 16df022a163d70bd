"""``multipar-console daemon``: one book's daemon in the foreground (systemd runs it so; the
console starts it in the background on demand).

Owns ``run_daemon``: the checks before anything starts (the safe list validated, the book
checked read-only: one line and exit 2), the book's lock (a second daemon on the same book
exits 2 naming the holder), the book's home directory and ``daemon.json``, the daemon's log
(``daemon.log``, 0600, redacted; warnings also on stderr for the journal unless ``--quiet``),
signals (SIGTERM/SIGINT: orderly stop; SIGHUP: the safe list reloaded, console/daemon/reload.py:
a daemon must never die of a hang-up), systemd's ``READY=1`` once the control socket
is bound, and its watchdog ping. ``--owner-pid`` ties a demo's daemon to its console.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

from console.daemon.home import (
    BookHome,
    DaemonInfo,
    pid_alive,
    remove_daemon_file,
    write_daemon_file,
)
from console.daemon.service import Daemon
from console.daemon.systemd import Notify
from console.options import child_args, default_db_path

log = logging.getLogger(__name__)

APP = "multipar-console"
OWNER_CHECK_S = 0.5


def _setup_logging(path: Path, level: str, quiet: bool) -> None:
    from feed.private import LOG_FORMAT, RedactingFormatter, private_log_handler

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    try:
        handler, note = private_log_handler(path)
    except OSError as exc:
        print(f"{APP} daemon: cannot open log file {path}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None
    root.addHandler(handler)
    if not quiet:  # systemd's journal (or the terminal) gets the warnings too
        err = logging.StreamHandler(sys.stderr)
        err.setLevel(logging.WARNING)
        err.setFormatter(RedactingFormatter(LOG_FORMAT))
        root.addHandler(err)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    if note:
        log.warning("%s", note)


def _fail(msg: str) -> int:
    print(f"{APP}: {msg}", file=sys.stderr)
    return 2


def run_daemon(args: argparse.Namespace) -> int:
    from console import preflight
    from console.daemon.booklock import BookLock, BookLockError
    from console.rundir import RunDirError, create_run_dir

    os.umask(0o077)  # the book, logs and sockets of a trading run are nobody else's business
    try:
        run = preflight.check_run(args, default_db_path(), APP)
    except preflight.RunRefused as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    validated, source, book = run.validated, run.source, run.book
    cfg_path = validated.source
    mode = "DEMO" if args.demo else "LIVE" if run.credentials is not None else "PAPER"
    engine_secrets = None
    if run.credentials is not None:
        from console.live import LiveRefused, confirm_live, describe, live_env

        try:  # a daemon a console started got --yes-live from it: the console asked
            confirm_live(args.yes_live, describe(args, validated.cfg.active_symbols()))
        except LiveRefused as exc:
            return _fail(str(exc))
        engine_secrets = live_env(run.credentials)
    try:
        if args.run_dir is not None:
            home = BookHome.at(args.run_dir)
        elif book is None:  # a fresh demo: its book lives in a run directory of its own
            home = BookHome.at(create_run_dir().path)
        else:
            home = BookHome.for_book(book)
        endpoints = home.endpoints.with_overrides(
            feed_pub=args.feed_pub,
            feed_rep=args.feed_rep,
            engine_pub=args.engine_pub,
            engine_cmd=args.engine_cmd,
        )
    except RunDirError as exc:
        return _fail(str(exc))
    book = book or home.path / preflight.DEMO_BOOK_NAME
    try:
        book.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"--db: cannot create {book.parent}: {exc.strerror}")
    try:  # one daemon per book, held until this process exits
        lock = BookLock.acquire(book)
    except BookLockError as exc:
        return _fail(str(exc))
    _setup_logging(home.daemon_log, args.log_level, args.quiet)
    try:
        cfg_copy = preflight.write_run_copy(validated, home.path)
    except OSError as exc:
        return _fail(f"cannot copy the safe list into {home.path}: {exc}")
    listen: tuple[str, int] | None = None
    if args.listen:
        try:
            listen = parse_listen(args.listen)
        except ValueError as exc:
            return _fail(f"--listen: {exc}")
    feed_args, engine_args = child_args(args, source)
    log.info(
        "daemon starting: pid %d, mode %s, source %s, config %s (the engine runs on its copy %s),"
        " book %s, home %s",
        os.getpid(), mode, source, cfg_path.absolute(), cfg_copy, book, home.path,
    )  # fmt: skip
    notifier = None
    if validated.cfg.notify.channels:  # aiohttp (14 MB, 0.13 s) only for a daemon that notifies
        from console.daemon.notify import Notifier

        notifier = Notifier(validated.cfg.notify, book)
    daemon = Daemon(
        validated.cfg, cfg_copy, home, book, mode, source, feed_args, engine_args,
        endpoints=endpoints, notifier=notifier, engine_secrets=engine_secrets,
    )  # fmt: skip
    daemon.cfg_source = cfg_path.absolute()  # what reload and SIGHUP read again
    try:
        code = asyncio.run(_serve(daemon, home, args, listen))
    except Exception:
        log.exception("daemon crashed")
        daemon.stop_sync()
        remove_daemon_file(home, os.getpid())
        print(f"{APP}: daemon crashed; see {home.daemon_log}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    log.info("daemon exited with code %d", code)
    return code


def parse_listen(url: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (the gateway takes PORT..PORT+3)."""
    if not url.startswith("tcp://") or ":" not in url[6:]:
        raise ValueError(f"{url!r} is not tcp://HOST:PORT")
    host, _, port = url[6:].rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65533 or not host:
        raise ValueError(f"{url!r}: the port must be a number below 65533 and a host given")
    return host.strip("[]"), int(port)


async def _serve(
    daemon: Daemon, home: BookHome, args: argparse.Namespace, listen: tuple[str, int] | None
) -> int:
    loop = asyncio.get_running_loop()
    notify = Notify()
    got: list[int] = []

    def on_stop_signal(signum: int) -> None:
        got.append(signum)
        daemon.request_stop(f"{signal.Signals(signum).name} received")

    def on_hup() -> None:
        # a hang-up reloads the safe list (validated first: a bad file changes nothing)
        log.warning("SIGHUP received: reloading the safe list %s", daemon.cfg_source)
        daemon.request_reload("SIGHUP")

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if daemon.notifier is not None:
        await daemon.notifier.start()
        log.info("notifications on: %s", ", ".join(daemon.notifier.channels) or "no channel")
    await daemon.start()
    gateway = None
    if listen is not None:
        from console.daemon.gateway import RemoteGateway
        from console.daemon.keys import CurveError, default_keys_dir

        try:
            gateway = RemoteGateway(
                daemon.endpoints.as_dict(),
                listen[0],
                listen[1],
                args.keys_dir or default_keys_dir(),
            )
            gateway.start()
        except CurveError as exc:
            print(f"{APP}: --listen: {exc}", file=sys.stderr)
            log.error("--listen: %s", exc)
            await daemon.stop()
            if daemon.notifier is not None:
                await daemon.notifier.stop()
            return 2
        daemon.remote = args.listen
        daemon.gateway = gateway
        log.info("serving remote consoles with CURVE on %s", gateway.endpoints())
    info = DaemonInfo(
        pid=os.getpid(),
        book=daemon.db_path,
        mode=daemon.mode,
        source=daemon.source,
        started_ts=time.time(),
        endpoints=daemon.endpoints,
        home=home.path,
        remote=daemon.remote,
    )
    write_daemon_file(home, info)
    notify.ready(f"trading {len(daemon.cfg.active_symbols())} pairs on {daemon.db_path.name}")
    tasks = []
    if notify.watchdog_s > 0:
        tasks.append(loop.create_task(_watchdog(notify, notify.watchdog_s / 2), name="watchdog"))
    if args.owner_pid:
        tasks.append(loop.create_task(_watch_owner(daemon, args.owner_pid), name="owner"))
    try:
        await daemon.wait_stopped()
    finally:
        notify.stopping()
        if gateway is not None:
            gateway.stop()
        if daemon.notifier is not None:
            await daemon.notifier.stop()  # bounded; what is not sent stays in the outbox
        remove_daemon_file(home, os.getpid())
        for t in tasks:
            t.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


async def _watchdog(notify: Notify, every_s: float) -> None:
    while True:
        notify.ping()
        await asyncio.sleep(every_s)


async def _watch_owner(daemon: Daemon, owner: int) -> None:
    """A demo's daemon belongs to its console: when the console is gone, so is the daemon."""
    while pid_alive(owner):
        await asyncio.sleep(OWNER_CHECK_S)
    with contextlib.suppress(Exception):
        daemon.request_stop(f"its console (pid {owner}) is gone")
