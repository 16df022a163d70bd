"""``multipar-console``: the command line. Finds or starts the book's daemon, then attaches.

Owns the subcommands (``daemon``, ``attach``, ``status``, ``stop``, ``keys``; ``check-config`` is
``console/config_checks.py``) and the console's own run (config.toml, ``console/settings.py``,
validated before anything starts): ``multipar-console`` starts the book's daemon in the background when
none runs (a session of its own: an SSH drop does not reach it) and attaches; ``--demo`` starts
a daemon that belongs to this console (a fresh book in a fresh run directory) and stops with
it. The console logs to ``console.log`` in the daemon's directory (never the screen); SIGHUP
and SIGTERM detach it as ``q`` does: trading goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from console.options import APP_NAME, build_parser, default_db_path
from engine.core.config import ConfigError

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 8.0
# After a signal, once the console has detached, the terminal gets this long to be restored.
# Seen here: after a hang-up Textual's writer thread can die on the vanished pty and the app's
# own shutdown then blocks the event loop for ever on a full output queue.
FORCE_EXIT_AFTER_S = 3.0


# -- the console --------------------------------------------------------------------------
def _redact(argv: Sequence[str]) -> list[str]:
    """Argument lists for the log: the value of any key/secret/token option hidden, and the
    user info and secret query parameters of every URL (feed.private.redact_argv)."""
    from feed.private import redact_argv

    return redact_argv(argv)


def _setup_logging(path: Path, level: str) -> None:
    """console.log: created 0600 (an existing one with wider modes is tightened, and the log
    says so), every line with its URLs redacted. Exits 2 with one line when it cannot."""
    from feed.private import private_log_handler

    root = logging.getLogger()
    for h in list(root.handlers):  # the screen belongs to the app: no stream handler
        root.removeHandler(h)
    try:
        handler, note = private_log_handler(path)
    except OSError as exc:
        print(f"{APP_NAME}: cannot open log file {path}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    if note:
        log.warning("%s", note)


def _force_exit(code: int) -> None:
    """The children are already stopped; only the terminal restore hangs: leave without it."""
    log.error(
        "terminal not released %.0f s after the children stopped: exiting without restoring it",
        FORCE_EXIT_AFTER_S,
    )
    logging.shutdown()
    os._exit(code)


async def serve(app: Any, backend: Any) -> int:
    """Run the app in this loop; SIGHUP/SIGTERM run the same orderly shutdown as ``q``."""
    loop = asyncio.get_running_loop()
    got: list[int] = []
    shutting_down: list[asyncio.Task[None]] = []
    watchdogs: list[threading.Timer] = []  # cancelled once the app has let go of the terminal

    async def orderly(signum: int) -> None:
        log.warning("%s received: orderly shutdown", signal.Signals(signum).name)
        # children first: after a hang-up the terminal is gone and painting may fail
        with contextlib.suppress(Exception):
            await asyncio.wait_for(backend.stop(), SHUTDOWN_TIMEOUT_S)
        # a watchdog thread, because a stuck terminal write blocks this loop, timeouts and all
        watchdog = threading.Timer(FORCE_EXIT_AFTER_S, _force_exit, args=(128 + signum,))
        watchdog.daemon = True
        watchdogs.append(watchdog)
        watchdog.start()
        shutdown = getattr(app, "shutdown", None)
        try:
            if shutdown is not None:
                await asyncio.wait_for(shutdown(), SHUTDOWN_TIMEOUT_S)
        except Exception:
            log.exception("app shutdown failed")
        finally:
            with contextlib.suppress(Exception):
                app.exit()

    def on_signal(signum: int) -> None:
        got.append(signum)
        if not shutting_down:
            shutting_down.append(loop.create_task(orderly(signum), name="signal-shutdown"))

    for sig in (signal.SIGHUP, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await app.run_async()
        if shutting_down:
            with contextlib.suppress(Exception):
                await shutting_down[0]
    finally:
        for watchdog in watchdogs:
            watchdog.cancel()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        # idempotent: the app's own shutdown normally did this already
        with contextlib.suppress(Exception):
            await asyncio.wait_for(backend.stop(), SHUTDOWN_TIMEOUT_S)
    return 128 + got[0] if got else 0


def _fail(msg: str, code: int = 2) -> int:
    print(f"{APP_NAME}: {msg}", file=sys.stderr)
    return code


def _settings() -> Any:
    """config.toml (theme, keymap), validated before anything starts: exit 2 with one line
    per problem (console.settings)."""
    from console.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        raise SystemExit(2) from None


def run_console(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``multipar-console [options]``: attach to the book's daemon, starting it if needed."""
    from console import preflight
    from console.daemon.home import BookHome, find_daemon
    from console.daemon_start import start_daemon
    from console.rundir import RunDirError, create_run_dir

    os.umask(0o077)  # logs, database and sockets of a trading run are nobody else's business
    _settings()  # a bad config.toml stops here, before any daemon starts
    try:  # here too, so the one line lands on this terminal
        checked = preflight.check_run(args, default_db_path(), APP_NAME)
    except preflight.RunRefused as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    book = checked.book
    live_extra: list[str] = []
    if args.demo:  # the demo's daemon belongs to this console: fresh run directory, owned
        try:
            run = create_run_dir(args.run_dir)
        except RunDirError as exc:
            return _fail(str(exc))
        extra = ["--owner-pid", str(os.getpid())]
        if args.run_dir is None:
            extra += ["--run-dir", str(run.path)]
        started = start_daemon(argv, extra, run.path, owned=True)
    else:
        assert book is not None
        info = find_daemon(book, args.run_dir)
        if info is not None:
            return attach_to(info, None, args.log_level)
        if checked.credentials is not None:  # asked here, on this terminal, before it starts
            from console.live import LiveRefused, confirm_live, describe

            try:
                confirm_live(args.yes_live, describe(args, checked.validated.cfg.active_symbols()))
            except LiveRefused as exc:
                return _fail(str(exc))
            live_extra = ["--yes-live"]
        try:
            home = BookHome.at(args.run_dir) if args.run_dir else BookHome.for_book(book)
        except RunDirError as exc:
            return _fail(str(exc))
        started = start_daemon(argv, live_extra, home.path, owned=False)
        if isinstance(started[0], int):  # another console may have started one at the same time
            info = find_daemon(book, args.run_dir)
            if info is not None:
                return attach_to(info, None, args.log_level)
    if isinstance(started[0], int):
        return _fail(started[1], started[0])
    info, owned = started
    return attach_to(info, owned, args.log_level)


def attach_main(argv: Sequence[str]) -> int:
    """``multipar-console attach``: attach to a running daemon (never starts one)."""
    from console.daemon.home import find_daemon

    p = argparse.ArgumentParser(
        prog=f"{APP_NAME} attach",
        description="Attach a console to the book's running daemon; q detaches.",
    )
    p.add_argument(
        "--db", metavar="PATH", type=Path, help=f"the book (default: {default_db_path()})"
    )
    p.add_argument("--run-dir", metavar="DIR", type=Path, help="the daemon's directory, if set")
    p.add_argument(
        "--connect",
        metavar="tcp://HOST:PORT",
        help="a remote daemon's gateway (daemon --listen), with --server-key and --client-key",
    )
    p.add_argument("--server-key", metavar="FILE", type=Path, help="the daemon's server.key")
    p.add_argument("--client-key", metavar="FILE", type=Path, help="this console's NAME.key_secret")
    p.add_argument("--log-level", metavar="LEVEL", default="INFO")
    args = p.parse_args(list(argv))
    os.umask(0o077)
    _settings()
    if args.connect:
        return attach_remote(args)
    book = Path(args.db or default_db_path()).expanduser().absolute()
    info = find_daemon(book, args.run_dir)
    if info is None:
        print(
            f"{APP_NAME}: no daemon runs for {book} (start one: {APP_NAME} --db {book}, "
            f"or {APP_NAME} daemon --db {book})",
            file=sys.stderr,
        )
        return 3
    return attach_to(info, None, args.log_level)


def attach_remote(args: argparse.Namespace) -> int:
    from console.daemon import keys

    try:
        server = keys.load_public(args.server_key) if args.server_key else None
        pub, sec = keys.load_client_pair(args.client_key) if args.client_key else (None, None)
    except keys.CurveError as exc:
        return _fail(str(exc))
    if server is None or pub is None or sec is None:
        return _fail("--connect needs --server-key FILE and --client-key FILE (see keys --help)")
    try:
        endpoints = remote_endpoints(args.connect)
    except ValueError as exc:
        return _fail(f"--connect: {exc}")

    def secure(sock: Any) -> None:
        keys.secure_client(sock, server, pub, sec)

    log_dir = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / APP_NAME
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _attach(
        endpoints, None, log_dir / "remote-console.log", args.log_level, secure, args.connect
    )


def remote_endpoints(url: str) -> Any:
    """tcp://HOST:PORT: the gateway's four ports (feed PUB, engine PUB, daemon PUB, control)."""
    from console.daemon.main import parse_listen
    from console.rundir import Endpoints

    host, p = parse_listen(url)
    if ":" in host:
        host = f"[{host}]"
    return Endpoints(
        feed_pub=f"tcp://{host}:{p}",
        feed_rep="",
        engine_pub=f"tcp://{host}:{p + 1}",
        engine_cmd="",
        daemon_pub=f"tcp://{host}:{p + 2}",
        daemon_ctl=f"tcp://{host}:{p + 3}",
    )


def attach_to(info: Any, owned: Any, log_level: str) -> int:
    return _attach(info.endpoints, owned, info.home / "console.log", log_level, None, "local")


def _attach(
    endpoints: Any, owned: Any, log_path: Path, log_level: str, secure: Any, where: str
) -> int:
    """Fetch the daemon's status (its safe list and mode), build the app, run it."""
    from console.ctl import request
    from console.daemon import wire as dwire
    from engine.core.config import parse_safe_list
    from engine.wire.schema import SchemaError

    _setup_logging(log_path, log_level)
    m = request(endpoints.daemon_ctl, dwire.STATUS, 5.0, secure=secure)
    try:
        status = dwire.StatusMsg.from_wire(m) if m is not None else None
        text = "\n".join(status.safe_list) + "\n" if status else ""
        cfg = parse_safe_list(text, "the daemon's safe list") if status else None
    except (SchemaError, ConfigError) as exc:
        return _fail(f"the daemon's status is unreadable: {exc}", 1)
    if status is None or cfg is None:
        if owned is not None:
            owned.terminate()
        return _fail(f"the daemon does not answer on {endpoints.daemon_ctl}", 1)
    log.info(
        "%s attaching to the %s daemon pid %d of %s (%s), args %s",
        APP_NAME, status.mode, status.pid, status.book, where, _redact(sys.argv[1:]),
    )  # fmt: skip
    from console.app import make_app
    from console.client import DaemonClient
    from console.logfiles import ConsoleFiles, print_exit_lines

    try:
        settings = _settings()
    except SystemExit:
        if owned is not None:
            owned.terminate()
        raise
    backend = DaemonClient(endpoints, status.mode, secure=secure, owned=owned, where=where)
    atexit.register(backend.stop_sync)  # a crash must not orphan a demo's daemon either
    app = make_app(backend, cfg, settings=settings)
    app.model.config_version = status.config_version  # the header shows it once a reload moved it
    app.files = files = ConsoleFiles.for_console(log_path, where)  # the logs: L, ?, on exit
    try:
        code = asyncio.run(serve(app, backend))
    except Exception:
        log.exception("console crashed")
        backend.stop_sync()
        print(f"{APP_NAME}: crashed; see {log_path}", file=sys.stderr)
        return 1
    log.info("%s exited with code %d", APP_NAME, code)
    print_exit_lines(files, APP_NAME, app.copied_to_file)  # one line per log file
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    sub, rest = (args_list[0], args_list[1:]) if args_list else ("", [])
    if sub == "check-config":
        from console.config_checks import check_config

        return check_config(rest)
    if sub == "daemon":
        from console.daemon.main import run_daemon

        return run_daemon(build_parser(f"{APP_NAME} daemon", daemon=True).parse_args(rest))
    if sub == "attach":
        return attach_main(rest)
    if sub in ("status", "stop"):
        from console import ctl

        return ctl.status_main(rest) if sub == "status" else ctl.stop_main(rest)
    if sub == "reload":
        from console.reload_cli import reload_main

        return reload_main(rest)
    if sub == "keys":
        from console.daemon.keys import keys_main

        return keys_main(rest)
    if sub == "backtest":
        from console.backtest_cli import backtest_main

        return backtest_main(rest)
    if sub == "reconcile":
        from console.reconcile_cli import reconcile_main

        return reconcile_main(rest)
    if sub == "download":
        from console.download_cli import download_main

        return download_main(rest)
    args = build_parser().parse_args(args_list)
    return run_console(args, args_list)


if __name__ == "__main__":
    sys.exit(main())
