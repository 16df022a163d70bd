"""``python -m engine``: run the trading engine process (the node, engine/node/service.py)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from engine.core.config import ConfigError, load_safe_list, parse_timeframe
from engine.node.live import ENV_API_KEY, ENV_API_SECRET  # console/live.py sets them for us only


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine", description="multipar-console trading engine")
    p.add_argument("--config", required=True, help="path of safe_list.yaml")
    p.add_argument("--db", required=True, help="SQLite file (created if missing)")
    p.add_argument("--feed-pub", required=True, help="feed tick endpoint to connect, e.g. ipc:///run/x/feed.pub")
    p.add_argument("--feed-rep", required=True, help="feed history endpoint to connect")
    p.add_argument("--pub", required=True, help="state endpoint to bind")
    p.add_argument("--cmd", required=True, help="command endpoint to bind (ROUTER)")
    p.add_argument("--timeframe", help="candle interval (overrides the safe list), e.g. 1m, 15s")
    p.add_argument("--history", type=int, help="warm-up candles to request (overrides the safe list)")
    p.add_argument("--markets-file", help="ccxt load_markets() JSON: the exchange's lot and price steps")
    p.add_argument("--live", action="store_true",
                   help=f"trade on Binance: key and secret from ${ENV_API_KEY} and ${ENV_API_SECRET}, "
                        "endpoints from $MULTIPAR_BINANCE_REST_URL / $MULTIPAR_BINANCE_WS_URL when set")
    p.add_argument("--testnet", action="store_true", help="with --live: Binance's testnet")
    p.add_argument("--log-file", help="log here instead of stderr")
    p.add_argument("--log-level", default="INFO")
    return p


class _Stop:
    def __init__(self) -> None:
        self.flag = False

    def __call__(self, *_: object) -> None:
        self.flag = True


def _setup_logging(log_file: str | None, level: str) -> bool:
    """Log to ``log_file`` (0600, tightened if wider) or stderr, URLs redacted; False if it
    cannot be opened (the reason is printed on stderr, one line naming the file)."""
    from feed.private import LOG_FORMAT, RedactingFormatter, private_log_handler

    handler: logging.Handler
    note = None
    if log_file:
        try:
            handler, note = private_log_handler(log_file)
        except OSError as exc:
            print(f"--log-file: cannot open {log_file}: {exc.strerror or exc}", file=sys.stderr)
            return False
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    if note:
        logging.getLogger("engine").warning("%s", note)
    return True


def _fail(message: str, code: int, *, log_file: str | None) -> int:
    """Why the engine cannot start: in its log file, then on stderr, so it is the log's last
    line (what the console's supervisor shows). Returns ``code``: 2 when restarting cannot
    help (a bad configuration or book: the supervisor leaves the engine dead), else 1."""
    if log_file:
        logging.getLogger("engine").error("%s", message)
    print(message, file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not _setup_logging(args.log_file, str(args.log_level)):
        return 2
    try:
        cfg = load_safe_list(args.config)
        timeframe_s = parse_timeframe(args.timeframe) if args.timeframe else None
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"--timeframe: {exc}", file=sys.stderr)
        return 2
    if not Path(args.db).parent.exists():
        print(f"--db: directory {Path(args.db).parent} does not exist", file=sys.stderr)
        return 2
    rules = None
    if args.markets_file:
        from engine.core.markets import MarketRulesError, default_rules, load_rules

        try:
            loaded = load_rules(args.markets_file, symbols=cfg.active_symbols())
        except MarketRulesError as exc:
            print(f"--markets-file: {exc} (pass a ccxt load_markets() JSON file)", file=sys.stderr)
            return 2
        rules = {s: loaded.get(s) or default_rules(s) for s in cfg.active_symbols()}
    from engine.journal.check import check_book
    from engine.journal.store import StoreError

    try:
        check_book(args.db)  # read-only: a foreign or damaged file is refused before any write
    except StoreError as exc:
        return _fail(str(exc), 2, log_file=args.log_file)

    live = None
    if args.live:
        import os

        from engine.node.live import LiveUnavailable, start_live

        try:  # the order boundary comes from the exchange's markets
            live, rules = start_live(os.environ, cfg, cfg.active_symbols(), args.testnet)
        except LiveUnavailable as exc:
            return _fail(f"--live: {exc}", 2, log_file=args.log_file)

    from engine.node.service import Endpoints, EngineNode  # after arg checks: keeps --help fast

    stop = _Stop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        service = EngineNode(
            cfg,
            Path(args.db),
            Endpoints(args.feed_pub, args.feed_rep, args.pub, args.cmd),
            timeframe_s=timeframe_s,
            history_limit=args.history,
            rules=rules,
            live=live,
            config_path=Path(args.config),
        )
    except StoreError as exc:
        if live is not None:
            live.close()
        # The book passed check_book: locked, busy, an I/O error. Exit 1: worth another try
        # (2 would tell the supervisor that no restart can help).
        return _fail(str(exc), 1, log_file=args.log_file)
    try:
        service.bind()
        service.warm_up(lambda: stop.flag)
        service.run(lambda: stop.flag)
    finally:
        service.close()
        logging.getLogger("engine").info("Engine stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
