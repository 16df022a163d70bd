"""``multipar-console check-config``: a safe list validated, its active pairs as a table.

Owns ``check_config``, ``pairs_table``, and what it checks beyond the safe list's own
validation: ``size_problems`` (a pair whose ``max_position_size_usd`` is above the portfolio's
exposure cap, ``capital_usd × max_total_exposure``: the pair could never reach its size, the
exposure check would refuse it first) and ``market_problems`` (an active pair the exchange does
not list, or lists as not trading, in a markets file: ccxt ``load_markets()`` JSON keyed by
symbol, the form the engine's ``--markets-file`` reads through ``engine.core.markets.load_rules``;
docs/binance.md says how to save one). Every problem is one line naming the file, the pair and
what to do. Disabled pairs are not checked: they do not trade.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from console.options import APP_NAME
from engine.core.config import ConfigError, SafeList, default_path, read_safe_list
from engine.core.markets import MarketRulesError, load_rules


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
    p.add_argument(
        "--markets-file",
        metavar="PATH",
        type=Path,
        help="ccxt markets JSON: also flag an active pair the exchange does not list",
    )
    args = p.parse_args(list(argv))
    path = args.path if args.path is not None else default_path()
    try:
        _, cfg = check_safe_list(path)
        problems = []
        if args.markets_file is not None:
            problems += market_problems(cfg, str(path), args.markets_file)
    except (ConfigError, MarketRulesError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
    if problems:
        for line in problems:
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
    if args.markets_file is not None:
        print(f"markets: every active pair is listed in {args.markets_file}")
    return 0


def check_safe_list(path: Path) -> tuple[str, SafeList]:
    """The one validation of a safe list file, for ``check-config``, the daemon's start and
    ``reload``: the file read hardened (engine/core/config_file.py), the models, and
    ``size_problems``. Its text and the safe list; ``ConfigError`` with one line per problem."""
    text, cfg = read_safe_list(path)
    problems = size_problems(cfg, str(path))
    if problems:
        raise ConfigError(problems)
    return text, cfg


def size_problems(cfg: SafeList, name: str) -> list[str]:
    pf = cfg.portfolio
    cap = pf.max_exposure_usd
    problems = []
    for sym in cfg.active_symbols():
        size = cfg.pairs[sym].max_position_size_usd
        if size > cap:
            problems.append(
                f"{name}: pairs.{sym}.max_position_size_usd: {size:,.2f} USD is above the "
                f"portfolio's exposure cap {cap:,.2f} USD (capital_usd {pf.capital_usd:,.2f} × "
                f"max_total_exposure {pf.max_total_exposure:g}): lower it to {cap:,.2f} or less, "
                "or raise portfolio.max_total_exposure"
            )
    return problems


def read_markets(path: Path) -> dict[str, Any]:
    """A markets file's markets keyed by symbol; ``MarketRulesError`` with one line otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MarketRulesError(
            f"{path}: cannot read the markets file: {exc.strerror or exc} (check --markets-file)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}: " if isinstance(exc, json.JSONDecodeError) else ""
        raise MarketRulesError(f"{path}: {where}not JSON (save ccxt's load_markets() as JSON)") from None
    if not (isinstance(data, dict) and data and all(isinstance(m, dict) for m in data.values())):
        raise MarketRulesError(
            f"{path}: expected ccxt load_markets() JSON, an object keyed by symbol such as "
            '"BTC/USDT" (docs/binance.md, "Markets file", shows how to save one)'
        )
    return data


def market_problems(cfg: SafeList, name: str, markets_path: Path) -> list[str]:
    """One line per active pair the markets file does not list, lists as inactive, or whose
    rules the engine could not read. ``MarketRulesError`` when the file itself is unusable."""
    markets = read_markets(markets_path)
    problems = []
    for sym in cfg.active_symbols():
        m = markets.get(sym)
        if m is None:
            problems.append(
                f"{name}: pairs.{sym}: the exchange does not list {sym} in {markets_path} "
                "(check the symbol's spelling and quote currency, or set enabled: false)"
            )
        elif m.get("active") is False:
            problems.append(
                f"{name}: pairs.{sym}: {markets_path} lists {sym} as not trading "
                "(active: false): set enabled: false until it trades again"
            )
        else:
            try:
                load_rules({sym: m})
            except MarketRulesError as exc:
                problems.append(f"{name}: pairs.{sym}: {markets_path}: {exc} (refresh the markets file)")
    return problems
