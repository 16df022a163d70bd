"""The feed process, ``python -m feed``: one source, one tick PUB socket, one history ROUTER.

Owns the command line, logging set-up, wiring source -> publisher, and the orderly shutdown on
SIGTERM, SIGINT or SIGHUP (stop streaming, publish status ``stopped``, close the source and the
sockets, exit 0). Bad arguments print one line on stderr and exit 2; a source that fails while
running exits 1 so a supervisor restarts it. Nothing is written to stdout.

    python -m feed --source sim --symbols BTC/USDT,ETH/USDT,SOL/USDT \\
        --pub ipc:///tmp/run/feed.pub --rep ipc:///tmp/run/feed.rep --seed 7 --rate 4
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from feed.errors import FeedError
from feed.private import LOG_FORMAT, RedactingFormatter, private_log_handler, redact_text
from feed.source import SOURCE_NAMES, Source

log = logging.getLogger("feed")

PROG = "python -m feed"
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}/[A-Z0-9]{2,10}(:[A-Z0-9]{2,10})?$")  # as engine.core.config
ENDPOINT_RE = re.compile(r"^(ipc|tcp|inproc)://.+$")
MAX_IPC_PATH = 100  # the kernel's sun_path limit is 107 bytes
TIER_NAMES = ("STABLE", "VOLATILE", "MEME")
SOURCE_STOP_WAIT_S = 1.0  # shutdown budget: source returns, closes, sockets close, < 2 s total
SOURCE_CLOSE_WAIT_S = 0.5
LIVE_HWM = 100_000  # a live subscriber this far behind loses ticks (its seq shows the gap)
REPLAY_HWM = 10_000  # a replay waits instead: a buffer, not a loss limit; smaller holds less
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        self.exit(EXIT_USAGE, f"{PROG}: error: {redact_text(message)} (see --help)\n")


def _symbols(text: str) -> list[str]:
    symbols = [s.strip() for s in text.split(",") if s.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError("no symbols given, e.g. BTC/USDT,ETH/USDT")
    for s in symbols:
        if not SYMBOL_RE.match(s):
            raise argparse.ArgumentTypeError(f"symbol {s!r} is not BASE/QUOTE in capitals, e.g. BTC/USDT")
    if len(set(symbols)) != len(symbols):
        raise argparse.ArgumentTypeError(f"a symbol is listed twice in {text!r}")
    return symbols


def _endpoint(text: str) -> str:
    if not ENDPOINT_RE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ipc://, tcp:// or inproc:// endpoint")
    if text.startswith("ipc://") and len(text) - len("ipc://") > MAX_IPC_PATH:
        raise argparse.ArgumentTypeError(f"ipc path of {text!r} is longer than {MAX_IPC_PATH} chars")
    return text


def _tiers(text: str) -> dict[str, str]:
    tiers: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        sym, sep, tier = item.partition("=")
        tier = tier.strip().upper()
        if not sep or not sym.strip() or tier not in TIER_NAMES:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not SYMBOL=TIER with TIER one of {', '.join(TIER_NAMES)}"
            )
        tiers[sym.strip()] = tier
    return tiers


def _positive(kind: type[float] | type[int], allow_zero: bool = False) -> Any:
    def convert(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or value < 0 or (value == 0 and not allow_zero) or value == float("inf"):
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number {bound}")
        return value

    return convert


def _time_scale(text: str) -> float:
    from feed.sim.profiles import MAX_TIME_SCALE  # only when given: other sources skip feed.sim

    value: float = _positive(float)(text)
    if value > MAX_TIME_SCALE:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {MAX_TIME_SCALE:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Publish normalised ticks for several symbols over ZeroMQ.")
    p.add_argument("--source", required=True, choices=SOURCE_NAMES)
    p.add_argument("--symbols", type=_symbols, default=_symbols("BTC/USDT,ETH/USDT,SOL/USDT"),
                   help="comma-separated, e.g. BTC/USDT,ETH/USDT,SOL/USDT")
    p.add_argument("--pub", required=True, type=_endpoint, help="tick PUB endpoint to bind")
    p.add_argument("--rep", required=True, type=_endpoint, help="history ROUTER endpoint to bind")
    p.add_argument("--hwm", type=_positive(int), default=None,
                   help=f"PUB high-water mark per subscriber (default {LIVE_HWM:,}; replay "
                   f"{REPLAY_HWM:,}: a replay waits for a subscriber this far behind, never drops)")
    sim = p.add_argument_group("sim")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--rate", type=_positive(float), default=4.0, help="ticks/s per pair")
    sim.add_argument("--tiers", type=_tiers, default={}, help="BTC/USDT=STABLE,SOL/USDT=VOLATILE")
    sim.add_argument("--time-scale", type=_time_scale, default=1.0, metavar="S",
                     help="market seconds per wall second (default 1; the demo runs 30, so a 2 s "
                     "candle moves like a 1-minute one); ticks per wall second stay --rate")
    replay = p.add_argument_group("replay")
    replay.add_argument("--replay-file", help="CSV or Parquet of candles or ticks")
    replay.add_argument("--speed", type=_positive(float, allow_zero=True), default=1.0,
                        help="x real time; 0 = as fast as the slowest subscriber takes it")
    replay.add_argument("--loop", action="store_true", help="start again at the end of the file")
    replay.add_argument("--no-wait", action="store_true",
                        help="start at once instead of waiting for the first tick subscriber")
    replay.add_argument("--warmup", type=_positive(int, allow_zero=True), default=500,
                        help="candles per symbol served as history and not replayed")
    binance = p.add_argument_group("binance")
    binance.add_argument("--ws-url", help="websocket base URL (default: $MULTIPAR_BINANCE_WS_URL); "
                         "anything on a command line is visible to every local user: put "
                         "credentials in the environment variable")
    binance.add_argument("--rest-url", help="REST root URL (default: $MULTIPAR_BINANCE_REST_URL)")
    binance.add_argument("--testnet", action="store_true")
    binance.add_argument("--markets-file")
    binance.add_argument("--stale-after", type=_positive(float), default=10.0,
                         help="seconds without a tick before a symbol is reported stale")
    p.add_argument("--log-file", help="log here instead of stderr")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.pub == args.rep:
        parser.error("--pub and --rep must be different endpoints")
    unknown = sorted(set(args.tiers) - set(args.symbols))
    if unknown:
        parser.error(f"--tiers names {', '.join(unknown)}, not in --symbols")
    if args.source == "replay" and not args.replay_file:
        parser.error("--source replay needs --replay-file PATH")
    return args


def _setup_logging(args: argparse.Namespace) -> None:
    """Log to --log-file (0600, tightened if wider) or stderr; URLs in every line redacted."""
    handler: logging.Handler
    note = None
    if args.log_file:
        try:
            handler, note = private_log_handler(args.log_file)
        except OSError as exc:
            _fail_usage(f"cannot open --log-file {args.log_file}: {exc.strerror or exc}")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(args.log_level)
    if note:
        log.warning("%s", note)


def _fail_usage(message: str) -> NoReturn:
    sys.stderr.write(f"{PROG}: error: {redact_text(message)}\n")
    raise SystemExit(EXIT_USAGE)


def build_source(args: argparse.Namespace) -> Source:
    """The source named by --source; imports only what that source needs (fast start-up)."""
    if args.source == "sim":
        from feed.sim import SimSource

        return SimSource(args.symbols, seed=args.seed, rate=args.rate, tiers=args.tiers,
                         time_scale=args.time_scale)
    if args.source == "replay":
        from feed.replay import ReplaySource

        return ReplaySource(args.replay_file, args.symbols, speed=args.speed, loop=args.loop,
                            warmup=args.warmup, wait_for_subscriber=not args.no_wait)
    try:
        from feed.binance import BinanceSource
    except ImportError as exc:
        raise FeedError(f"the binance source is not available: {exc}") from None
    return BinanceSource(  # type: ignore[no-any-return]
        args.symbols,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        testnet=args.testnet,
        markets_file=args.markets_file,
        stale_after_s=args.stale_after,
    )


async def run_feed(args: argparse.Namespace) -> int:
    import zmq
    import zmq.asyncio

    from feed.history import HistoryServer
    from feed.publisher import TickPublisher

    source = build_source(args)
    # A source with no real time to keep (replay) waits for a full subscriber instead of dropping.
    flow_control = bool(getattr(source, "flow_control", False))
    hwm = args.hwm or (REPLAY_HWM if flow_control else LIVE_HWM)
    ctx = zmq.Context()
    publisher: TickPublisher | None = None
    history: HistoryServer | None = None
    try:
        try:
            publisher = TickPublisher(args.pub, source.name, hwm, symbols=args.symbols, ctx=ctx,
                                      nodrop=flow_control)
        except zmq.ZMQError as exc:
            raise FeedError(f"cannot bind --pub {args.pub}: {exc}") from None
        try:
            history = HistoryServer(args.rep, source, ctx=zmq.asyncio.Context.shadow(ctx.underlying))
        except zmq.ZMQError as exc:
            raise FeedError(f"cannot bind --rep {args.rep}: {exc}") from None
        return await _serve(source, publisher, history)
    finally:
        # Order matters: no request may reach a closed source; "stopped" goes out last.
        if history is not None:
            await history.close()
        await _close_source(source)
        if publisher is not None:
            publisher.close()
            log.info("feed stopped (%d ticks published)", publisher.published)
        ctx.term()


async def _close_source(source: Source) -> None:
    try:
        await asyncio.wait_for(source.close(), SOURCE_CLOSE_WAIT_S)
    except Exception as exc:  # closing is best effort: the process is exiting anyway
        log.warning("closing the %s source: %s", source.name, redact_text(str(exc) or type(exc).__name__))


async def _serve(source: Source, publisher: Any, history: Any) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("%s received: shutting down", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    src_task = loop.create_task(source.run(publisher, stop), name="source")
    workers = {
        src_task,
        loop.create_task(publisher.run(stop), name="publisher"),
        loop.create_task(history.run(stop), name="history"),
    }
    stop_task = loop.create_task(stop.wait(), name="stop")
    exit_code = EXIT_OK
    error: str | None = None
    done, _ = await asyncio.wait({*workers, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        failed = next(iter(done))
        exc = failed.exception()
        error = redact_text(f"{failed.get_name()} {'failed: ' + repr(exc) if exc else 'ended unexpectedly'}")
        log.error("%s", error, exc_info=exc)
        exit_code = EXIT_FAILED
    stop.set()
    # Orderly: the source notices stop within its own sleep; cancel it if it does not.
    pending = [t for t in workers if not t.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=SOURCE_STOP_WAIT_S)
        for t in late:
            t.cancel()
        if late:
            await asyncio.wait(late, timeout=0.2)
    for t in workers:
        if t.done() and not t.cancelled() and t.exception() and exit_code == EXIT_OK:
            log.error("%s failed while stopping: %r", t.get_name(), t.exception())
    stop_task.cancel()
    from feed.wire import STATUS_STOPPED

    publisher.set_status(STATUS_STOPPED, error)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _setup_logging(args)
    try:
        return asyncio.run(run_feed(args))
    except FeedError as exc:
        if args.log_file:
            log.error("%s", exc)
        sys.stderr.write(f"{PROG}: error: {redact_text(str(exc))}\n")
        return EXIT_USAGE
    except Exception as exc:  # through the redacting formatter, never printed raw on stderr
        log.exception("feed crashed")
        if args.log_file:
            sys.stderr.write(f"{PROG}: crashed: {redact_text(repr(exc))[:300]}; see {args.log_file}\n")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
