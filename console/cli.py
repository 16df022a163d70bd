"""``multipar-console``: the command line. Builds the run directory, the backend and the app.

Owns argument parsing, the ``check-config`` subcommand, where the paper database lives, the
console's log file (never the screen) and the SIGHUP/SIGTERM handlers that run the same
orderly shutdown as ``q``, so an SSH drop leaves no child behind.
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

from engine.core.config import ConfigError, SafeList, default_path, load_safe_list, parse_timeframe

log = logging.getLogger(__name__)

APP_NAME = "multipar-console"
SOURCES = ("sim", "binance", "replay")
SHUTDOWN_TIMEOUT_S = 8.0
# After a signal, once the children are stopped, the terminal gets this long to be restored.
# Seen here: after a hang-up Textual's writer thread can die on the vanished pty and the app's
# own shutdown then blocks the event loop for ever on a full output queue.
FORCE_EXIT_AFTER_S = 3.0


def default_db_path(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/multipar-console/paper.sqlite`` (``~/.local/state`` when unset)."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME") or Path.home()) / ".local" / "state"
    )
    return Path(state) / APP_NAME / "paper.sqlite"


DEMO_TIMEFRAME = "2s"


def _timeframe(value: str) -> str:
    try:
        parse_timeframe(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=APP_NAME,
        description=(
            "Keyboard-driven console that trades several crypto pairs (paper by default). "
            f"Validate a safe list with: {APP_NAME} check-config [PATH]"
        ),
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="simulated market + paper + a fresh database: no network",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        help="safe list (default: $MULTIPAR_SAFE_LIST, ./safe_list.yaml, the bundled one)",
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        type=Path,
        help="paper database (default: ~/.local/state/multipar-console/paper.sqlite)",
    )
    p.add_argument(
        "--source", choices=SOURCES, help="market data source (default: binance; sim with --demo)"
    )
    p.add_argument(
        "--seed", metavar="N", type=int, help="seed of the simulated market (sim source)"
    )
    p.add_argument(
        "--timeframe",
        metavar="TF",
        type=_timeframe,
        help="candle interval, e.g. 15s, 1m, 1h (overrides the safe list)",
    )
    b = p.add_argument_group("binance source")
    b.add_argument(
        "--ws-url",
        metavar="URL",
        help="websocket URL (e.g. a local test server); the feed gets it in its environment, "
        "never on its command line. This console's own command line is visible to every "
        "local user: put credentials in $MULTIPAR_BINANCE_WS_URL instead",
    )
    b.add_argument(
        "--rest-url",
        metavar="URL",
        help="REST URL, passed like --ws-url (credentials: $MULTIPAR_BINANCE_REST_URL)",
    )
    b.add_argument("--testnet", action="store_true", help="use the exchange's testnet")
    b.add_argument(
        "--markets-file",
        metavar="PATH",
        type=Path,
        help="markets JSON, so no REST call is needed at start",
    )
    sim = p.add_argument_group("sim and replay sources")
    sim.add_argument("--rate", type=float, metavar="N", help="sim: ticks per second per pair")
    sim.add_argument(
        "--replay-file",
        type=Path,
        metavar="PATH",
        help="replay: CSV or Parquet of candles or ticks",
    )
    sim.add_argument(
        "--speed", type=float, metavar="X", help="replay: speed factor (0 = as fast as possible)"
    )
    r = p.add_argument_group("processes and sockets")
    r.add_argument(
        "--run-dir",
        metavar="DIR",
        type=Path,
        help="use this directory (mode 0700) for sockets, logs and pids",
    )
    r.add_argument(
        "--feed-pub", metavar="EP", help="feed tick endpoint (tcp://HOST:PORT for split hosts)"
    )
    r.add_argument("--feed-rep", metavar="EP", help="feed history endpoint")
    r.add_argument("--engine-pub", metavar="EP", help="engine state endpoint")
    r.add_argument("--engine-cmd", metavar="EP", help="engine command endpoint")
    r.add_argument(
        "--feed-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the feed (repeatable)",
    )
    r.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for the engine (repeatable)",
    )
    r.add_argument(
        "--log-level",
        metavar="LEVEL",
        default="INFO",
        help="console.log level (DEBUG, INFO, WARNING)",
    )
    return p


# -- check-config -------------------------------------------------------------------------
def pairs_table(cfg: SafeList) -> str:
    """Active pairs as a plain text table."""
    head = ("SYMBOL", "TIER", "STRATEGY", "MARKET", "LEVERAGE", "MAX SIZE USD")
    rows = [
        (
            sym,
            pc.tier.value,
            pc.strategy,
            pc.market,
            f"{pc.leverage}x",
            f"{pc.max_position_size_usd:,.2f}",
        )
        for sym, pc in cfg.pairs.items()
        if pc.enabled
    ]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    right = {4, 5}  # numbers right-aligned

    def fmt(row: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(head), *(fmt(r) for r in rows)])


def check_config(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog=f"{APP_NAME} check-config",
        description="Validate a safe list and list its active pairs.",
    )
    p.add_argument(
        "path", nargs="?", type=Path, help="safe list (default: as the console finds it)"
    )
    args = p.parse_args(list(argv))
    path = args.path if args.path is not None else default_path()
    try:
        cfg = load_safe_list(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    active = cfg.active_symbols()
    disabled = len(cfg.pairs) - len(active)
    print(
        f"{path}: ok, {len(active)} active pair(s)" + (f", {disabled} disabled" if disabled else "")
    )
    print(pairs_table(cfg))
    pf = cfg.portfolio
    print(
        f"capital {pf.capital_usd:,.2f} USD, exposure cap {pf.max_exposure_usd:,.2f} USD"
        f" ({pf.max_total_exposure:.0%}), timeframe {cfg.engine.timeframe}"
    )
    return 0


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


def _child_args(args: argparse.Namespace, source: str) -> tuple[list[str], list[str]]:
    """The feed's and the engine's extra arguments. --ws-url/--rest-url are listed here, but
    ProcessBackend takes them out: they reach the feed in its environment, never its argv."""
    feed = ["--source", source]
    if args.seed is not None:
        feed += ["--seed", str(args.seed)]
    if args.ws_url:
        feed += ["--ws-url", args.ws_url]
    if args.rest_url:
        feed += ["--rest-url", args.rest_url]
    if args.testnet:
        feed.append("--testnet")
    if args.markets_file:
        feed += ["--markets-file", str(args.markets_file)]
    if args.rate is not None:
        feed += ["--rate", str(args.rate)]
    if args.replay_file:
        feed += ["--replay-file", str(Path(args.replay_file).expanduser().absolute())]
    if args.speed is not None:
        feed += ["--speed", str(args.speed)]
    feed += args.feed_arg
    engine: list[str] = []
    if args.markets_file:  # the engine sizes and fills on the exchange's steps, as the feed sees them
        engine += ["--markets-file", str(Path(args.markets_file).expanduser().absolute())]
    # The demo trades on 2-second candles so signals, decisions and fills show within a minute;
    # paper and live runs use the safe list's timeframe (1m) unless --timeframe says otherwise.
    timeframe = args.timeframe or (DEMO_TIMEFRAME if args.demo else None)
    if timeframe:
        engine += ["--timeframe", timeframe]
    engine += args.engine_arg
    return feed, engine


def _force_exit(code: int) -> None:
    """The children are already stopped; only the terminal restore hangs: leave without it."""
    log.error("terminal not released %.0f s after the children stopped: exiting without restoring it", FORCE_EXIT_AFTER_S)
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


def run_console(args: argparse.Namespace) -> int:
    from console import preflight
    from console.rundir import RunDirError, create_run_dir
    from engine.journal.check import check_book
    from engine.journal.schema import StoreError

    os.umask(0o077)  # logs, database and sockets of a trading run are nobody else's business
    cfg_path = Path(args.config) if args.config is not None else default_path()
    try:
        validated = preflight.validate(cfg_path)  # the engine gets this text, not the file
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    cfg = validated.cfg
    mode = "DEMO" if args.demo else "PAPER"
    source = args.source or ("sim" if args.demo else "binance")
    if source == "replay" and not args.replay_file:
        print(f"{APP_NAME}: --source replay needs --replay-file PATH", file=sys.stderr)
        return 2
    # The book, checked read-only before the run directory or any child (None: a fresh demo's)
    planned_db = preflight.planned_book(
        args.db, demo=args.demo, run_dir=args.run_dir, default=default_db_path()
    )
    try:
        if planned_db is not None:
            check_book(planned_db)
    except StoreError as exc:
        print(f"{APP_NAME}: {exc}", file=sys.stderr)
        return 2
    try:
        run = create_run_dir(args.run_dir)
        endpoints = run.endpoints.with_overrides(
            feed_pub=args.feed_pub,
            feed_rep=args.feed_rep,
            engine_pub=args.engine_pub,
            engine_cmd=args.engine_cmd,
        )
    except RunDirError as exc:
        print(f"{APP_NAME}: {exc}", file=sys.stderr)
        return 2
    _setup_logging(run.logs.console, args.log_level)

    db_path = planned_db or run.path / preflight.DEMO_BOOK_NAME
    try:
        db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{APP_NAME}: --db: cannot create {db_path.parent}: {exc.strerror}", file=sys.stderr)
        return 2
    from console.booklock import BookLock, BookLockError

    try:  # one trading process per book, held until this process exits
        book_lock = BookLock.acquire(db_path)
    except BookLockError as exc:
        print(f"{APP_NAME}: {exc}", file=sys.stderr)
        return 2
    try:
        engine_cfg_path = preflight.write_run_copy(validated, run.path)
    except OSError as exc:
        print(f"{APP_NAME}: cannot copy the safe list into {run.path}: {exc}", file=sys.stderr)
        return 2
    feed_args, engine_args = _child_args(args, source)
    log.info(
        "%s starting: mode %s, source %s, config %s (the engine runs on its copy %s), db %s, "
        "run dir %s, args %s",
        APP_NAME, mode, source, cfg_path.absolute(), engine_cfg_path, db_path, run.path,
        _redact(sys.argv[1:]),
    )  # fmt: skip

    from console.app import make_app
    from console.backend import ProcessBackend

    backend = ProcessBackend(
        cfg,
        engine_cfg_path,
        endpoints,
        db_path,
        mode,
        feed_args,
        engine_args,
        run.logs,
        pids_path=run.pids,
    )
    atexit.register(backend.stop_sync)  # a crash must not orphan the children either
    # console.log is already the root logger's file (set up above, for before and after the
    # app too): passing log_path would write every line twice
    app = make_app(backend, cfg)
    try:
        code = asyncio.run(serve(app, backend))
    except Exception:
        log.exception("console crashed")
        backend.stop_sync()
        print(f"{APP_NAME}: crashed; see {run.logs.console}", file=sys.stderr)
        return 1
    book_lock.release()
    log.info("%s exited with code %d", APP_NAME, code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "check-config":
        return check_config(args_list[1:])
    args = build_parser().parse_args(args_list)
    return run_console(args)


if __name__ == "__main__":
    sys.exit(main())
