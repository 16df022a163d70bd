"""The options of a trading run, shared by the console and the daemon it starts.

Owns ``add_run_options`` (the safe list, the book, the market data source and its options,
sockets and child arguments), ``default_db_path``, and ``child_args``, which turns them into
the feed's and the engine's extra arguments. Nothing here imports Textual: the daemon parses
the same options as the console, so ``multipar-console daemon --source sim --db PATH`` means
what ``multipar-console --source sim --db PATH`` means.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from engine.compiled import describe
from engine.core.config import parse_timeframe

APP_NAME = "multipar-console"
SOURCES = ("sim", "binance", "replay")


def package_version() -> str:
    """The installed package's version (pyproject.toml's), from its metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(APP_NAME)
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def default_db_path(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/multipar-console/paper.sqlite`` (``~/.local/state`` when unset)."""
    env = os.environ if environ is None else environ
    state = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME") or Path.home()) / ".local" / "state"
    )
    return Path(state) / APP_NAME / "paper.sqlite"


DEMO_TIMEFRAME = "2s"
# The demo's simulated market runs 30 market seconds per wall second, so one 2 s candle holds a
# market minute: price moves per candle are those of 1-minute candles, large enough for a target
# beyond the round-trip costs (fees both sides, spread, slippage), and the strategies' 1-minute
# parameters apply unchanged. At 1x a 2 s candle moves ~0.02 %, far inside those costs.
DEMO_TIME_SCALE = 30
# What --demo trades when no --config (nor $MULTIPAR_SAFE_LIST) names a safe list: the shipped
# pairs with parameters that trade about three times as often (docs/strategies.md), since a
# newcomer watches the demo for minutes.
DEMO_SAFE_LIST = Path(__file__).resolve().parents[1] / "examples" / "demo_safe_list.yaml"


def safe_list_path(args: Any) -> Path:
    """The safe list a run uses: --config, else $MULTIPAR_SAFE_LIST, else the demo's for --demo,
    else ./safe_list.yaml or the bundled one."""
    from engine.core.config import ENV_SAFE_LIST, default_path

    if getattr(args, "config", None) is not None:
        return Path(args.config)
    if getattr(args, "demo", False) and not os.environ.get(ENV_SAFE_LIST):
        return DEMO_SAFE_LIST
    return default_path()


def _timeframe(value: str) -> str:
    try:
        parse_timeframe(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def build_parser(prog: str = APP_NAME, *, daemon: bool = False) -> argparse.ArgumentParser:
    """The console's options; with ``daemon``, the daemon's (the same, plus how it listens)."""
    if daemon:
        description = (
            "Run one book's daemon in the foreground: it supervises the feed and the engine "
            "and serves consoles (systemd: Type=notify). SIGTERM stops it in order."
        )
    else:
        description = (
            "Keyboard-driven console that trades several crypto pairs (paper by default). "
            "It starts the book's daemon if none runs, then attaches; q detaches, trading "
            f"goes on. Subcommands: {APP_NAME} attach | status | stop | daemon | keys | "
            "reconcile | download | backtest | check-config (each with --help)."
        )
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--version", action="version", version=f"{APP_NAME} {package_version()} ({describe()})")
    p.add_argument(
        "--demo",
        action="store_true",
        help="simulated market + paper + a fresh database: no network",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        help="safe list (default: $MULTIPAR_SAFE_LIST, with --demo examples/demo_safe_list.yaml, "
        "else ./safe_list.yaml, the bundled one)",
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
    live = p.add_argument_group("live trading (docs/live.md)")
    live.add_argument(
        "--live",
        action="store_true",
        help="trade real money on Binance: API key and secret from $MULTIPAR_API_KEY and "
        "$MULTIPAR_API_SECRET or --key-file; asks you to type LIVE first",
    )
    live.add_argument(
        "--yes-live", action="store_true", help="no typed confirmation (systemd, scripts)"
    )
    live.add_argument(
        "--key-file",
        metavar="PATH",
        type=Path,
        help="api_key: and api_secret: lines, mode 0600 (refused otherwise)",
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
        help="log level (DEBUG, INFO, WARNING)",
    )
    if daemon:
        d = p.add_argument_group("daemon")
        d.add_argument(
            "--listen",
            metavar="tcp://HOST:PORT",
            help="also serve remote consoles over tcp with CURVE on PORT..PORT+3 "
            f"(keys: {APP_NAME} keys init)",
        )
        d.add_argument("--keys-dir", metavar="DIR", type=Path, help="CURVE key directory")
        d.add_argument("--quiet", action="store_true", help="log to daemon.log only (not stderr)")
        d.add_argument("--owner-pid", type=int, default=0, help=argparse.SUPPRESS)
    return p


def child_args(args: argparse.Namespace, source: str) -> tuple[list[str], list[str]]:
    """The feed's and the engine's extra arguments. --ws-url/--rest-url are listed here, but
    the daemon takes them out: they reach the feed in its environment, never its argv."""
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
    if args.demo and source == "sim":  # before --feed-arg: a --time-scale given there wins
        feed += ["--time-scale", str(DEMO_TIME_SCALE)]
    feed += args.feed_arg
    engine: list[str] = []
    if getattr(args, "live", False):  # the key and secret reach it in its environment
        engine += ["--live", *(["--testnet"] if args.testnet else [])]
    if (
        args.markets_file
    ):  # the engine sizes and fills on the exchange's steps, as the feed sees them
        engine += ["--markets-file", str(Path(args.markets_file).expanduser().absolute())]
    # The demo trades on 2-second candles so signals, decisions and fills show within a minute;
    # paper and live runs use the safe list's timeframe (1m) unless --timeframe says otherwise.
    timeframe = args.timeframe or (DEMO_TIMEFRAME if args.demo else None)
    if timeframe:
        engine += ["--timeframe", timeframe]
    engine += args.engine_arg
    return feed, engine
