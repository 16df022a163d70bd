"""Backtest speed: 3 pairs × 1 year of 1-minute candles (1,576,800 candles) through
``run_backtest``, and the same simple moving-average cross on the same candles in freqtrade's
backtester and NautilusTrader's ``BacktestEngine`` when they are installed.

    python -m bench --only backtest            # a year (3 runs of ours, 1 of each peer)
    python -m bench --only backtest --quick    # 30 days, 1 run each
    python -m bench.backtest --days 90         # on its own, prints the figures

The candles are seeded random walks made in numpy (BTC, ETH, SOL levels and volatilities).
The strategy everywhere: long when SMA(9) crosses above SMA(21), flat when it crosses below,
500 USDT a position, taker fee 0.1 %. Ours is the ``momentum`` strategy with its RSI filter set
out of reach, confidence not required and the stop and target 20 and 50 ATR away (the risk
pipeline needs them; they all but never fire: the figures' notes count them), no spread and no
slippage; every trade still goes through the risk pipeline, the paper fills and the SQLite book.
Times are wall clock, from the candles in memory to the finished result: ours includes the
tick expansion and the book; freqtrade's ``Backtesting`` reads its feather files (written
before the clock starts) and prints no table; Nautilus's includes turning rows into bars.

Peers (the ``peers`` extra): ``pip install freqtrade nautilus_trader``. freqtrade pins pandas
below 3, so a separate environment keeps this one as it is::

    python -m venv .peers && .peers/bin/pip install freqtrade nautilus_trader
    MULTIPAR_PEERS_PYTHON=.peers/bin/python python -m bench --only backtest

A peer not importable here runs in ``MULTIPAR_PEERS_PYTHON`` when that is set (the candles are
handed over in a file, so they are the same candles); otherwise it is skipped and its figure
says how to install it. Both peers run offline (freqtrade's markets are given, not fetched).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Figure

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {"BTC/USDT": (60_000.0, 0.002, 5), "ETH/USDT": (3_000.0, 0.0025, 4), "SOL/USDT": (150.0, 0.003, 3)}
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN_MS = 60_000
TARGET_YEAR_S = 10.0
TARGET_VS_PEER = 10.0
FAST, SLOW, NOTIONAL = 9, 21, 500.0
CAPITAL = 1_000_000.0  # a year of crosses pays ~40,000 USDT of fees: no engine may run dry
PEERS = {"freqtrade": "freqtrade", "nautilus": "nautilus_trader"}
INSTALL = "pip install freqtrade nautilus_trader (or MULTIPAR_PEERS_PYTHON=<a python that has them>)"
PEERS_PYTHON = "MULTIPAR_PEERS_PYTHON"

SAFE_LIST = f"""
version: 1
portfolio:
  capital_usd: {CAPITAL:.0f}
  max_total_exposure: 0.01
  max_correlated_positions: 3
  min_confidence: 0.0
  risk_per_trade_usd: 100000
  taker_fee: 0.001
  slippage_bps: 0.0
engine: {{timeframe: 1m, history_candles: 500}}
pairs:
""" + "".join(
    f"""  {s}:
    tier: STABLE
    strategy: momentum
    max_position_size_usd: {NOTIONAL:g}
    params: {{ma_fast: {FAST}, ma_slow: {SLOW}, rsi_overbought: 99.99, rsi_oversold: 0.01,
              stop_atr: 20, take_profit_atr: 50}}
"""
    for s in PAIRS
)


def make_candles(days: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Per pair an (n, 6) array: ts (ms), open, high, low, close, volume; seeded random walks."""
    n = days * 1440
    rng = np.random.default_rng(seed)
    out = {}
    for symbol, (p0, vol, _) in PAIRS.items():
        close = p0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
        open_ = np.r_[p0, close[:-1]]
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, vol / 2, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, vol / 2, n)))
        volume = rng.uniform(1.0, 3.0, n)
        out[symbol] = np.column_stack([T0 + np.arange(n) * MIN_MS, open_, high, low, close, volume])
    return out


# ------------------------------------------------------------------ ours


def run_ours(candles: dict[str, np.ndarray]) -> dict[str, Any]:
    from engine.backtest.runner import run_backtest
    from engine.core.config import parse_safe_list

    cfg = parse_safe_list(SAFE_LIST, "bench-sma-cross.yaml")
    with tempfile.TemporaryDirectory(prefix="bt-bench-") as d:
        t = time.perf_counter()
        res = run_backtest(cfg, candles, Path(d) / "book.sqlite", spread_bps=0.0)
        elapsed = time.perf_counter() - t
    reasons: dict[str, int] = {}
    for tr in res.trades:
        reasons[tr.exit_reason] = reasons.get(tr.exit_reason, 0) + 1
    return {"elapsed_s": elapsed, "trades": len(res.trades), "exits": reasons}


# ------------------------------------------------------------------ freqtrade

FT_STRATEGY = f'''
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class SmaCross(IStrategy):
    INTERFACE_VERSION = 3
    timeframe = "1m"
    minimal_roi = {{"0": 100.0}}  # no take-profit
    stoploss = -0.99  # no stop
    startup_candle_count = {SLOW}

    def populate_indicators(self, df: DataFrame, metadata: dict) -> DataFrame:
        df["fast"] = df["close"].rolling({FAST}).mean()
        df["slow"] = df["close"].rolling({SLOW}).mean()
        return df

    def populate_entry_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        up = (df["fast"] > df["slow"]) & (df["fast"].shift(1) <= df["slow"].shift(1))
        df.loc[up, "enter_long"] = 1
        return df

    def populate_exit_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        down = (df["fast"] < df["slow"]) & (df["fast"].shift(1) >= df["slow"].shift(1))
        df.loc[down, "exit_long"] = 1
        return df
'''


def _ft_market(symbol: str, amount_decimals: int) -> dict[str, Any]:
    base, quote = symbol.split("/")
    step = 10.0**-amount_decimals
    return {
        "id": base + quote, "symbol": symbol, "base": base, "quote": quote, "baseId": base,
        "quoteId": quote, "type": "spot", "spot": True, "margin": False, "swap": False,
        "future": False, "option": False, "active": True, "contract": False, "linear": None,
        "inverse": None, "taker": 0.001, "maker": 0.001, "info": {},
        "precision": {"amount": step, "price": 0.01},
        "limits": {"amount": {"min": step, "max": 9e6}, "price": {"min": 0.01, "max": 1e7},
                   "cost": {"min": 5.0, "max": None}, "leverage": {"min": None, "max": None}},
    }  # fmt: skip


def run_freqtrade(candles: dict[str, np.ndarray]) -> dict[str, Any]:
    import pandas as pd
    from freqtrade.enums import RunMode
    from freqtrade.exchange import Exchange
    from freqtrade.optimize.backtesting import Backtesting

    markets = {s: _ft_market(s, dec) for s, (_, _, dec) in PAIRS.items()}

    def offline_markets(self: Any, force: bool = False, **_: Any) -> None:  # no exchange API here
        self._api.set_markets(markets)
        self._api_async.set_markets(markets)
        self._markets = self._api.markets
        self._last_markets_refresh = int(time.time() * 1000)

    Exchange.reload_markets = offline_markets  # type: ignore[method-assign]
    logging.getLogger("freqtrade").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bt-bench-ft-") as tmp:
        d = Path(tmp)
        datadir = d / "data" / "binance"
        datadir.mkdir(parents=True)
        (d / "strategies").mkdir()
        (d / "strategies" / "sma_cross.py").write_text(FT_STRATEGY)
        for s, rows in candles.items():
            df = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
            df["date"] = pd.to_datetime(df["date"].astype("int64"), unit="ms", utc=True)
            df.to_feather(datadir / f"{s.replace('/', '_')}-1m.feather")
        config = {
            "runmode": RunMode.BACKTEST, "dry_run": True, "strategy": "SmaCross",
            "strategy_path": str(d / "strategies"), "user_data_dir": d, "datadir": datadir,
            "timeframe": "1m", "stake_currency": "USDT", "stake_amount": NOTIONAL,
            "dry_run_wallet": CAPITAL, "max_open_trades": len(PAIRS), "fee": 0.001,
            "exchange": {"name": "binance", "pair_whitelist": list(candles), "pair_blacklist": []},
            "pairlists": [{"method": "StaticPairList"}], "dataformat_ohlcv": "feather",
            "entry_pricing": {"price_side": "same", "use_order_book": False},
            "exit_pricing": {"price_side": "same", "use_order_book": False},
            "export": "none", "backtest_cache": "none",
        }  # fmt: skip
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its result tables
            bt = Backtesting(config)
            bt.start()
        elapsed = time.perf_counter() - t
    stats = next(iter(bt.results["strategy"].values()))
    return {"elapsed_s": elapsed, "trades": int(stats["total_trades"])}


# ------------------------------------------------------------------ NautilusTrader


def run_nautilus(candles: dict[str, np.ndarray]) -> dict[str, Any]:
    from decimal import Decimal

    import pandas as pd
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.indicators import SimpleMovingAverage
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Currency, Money, Price, Quantity
    from nautilus_trader.persistence.wranglers import BarDataWrangler
    from nautilus_trader.trading.strategy import Strategy

    venue = Venue("BINANCE")

    class SmaCrossConfig(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        bar_type: BarType

    class SmaCross(Strategy):
        def __init__(self, config: SmaCrossConfig) -> None:
            super().__init__(config)
            self.fast = SimpleMovingAverage(FAST)
            self.slow = SimpleMovingAverage(SLOW)
            self.prev: tuple[float, float] | None = None

        def on_start(self) -> None:
            self.instrument = self.cache.instrument(self.config.instrument_id)
            self.register_indicator_for_bars(self.config.bar_type, self.fast)
            self.register_indicator_for_bars(self.config.bar_type, self.slow)
            self.subscribe_bars(self.config.bar_type)

        def on_bar(self, bar: Bar) -> None:
            if not self.slow.initialized:
                return
            prev, self.prev = self.prev, (self.fast.value, self.slow.value)
            if prev is None:
                return
            (pf, ps), (f, s) = prev, self.prev
            iid = self.config.instrument_id
            if pf <= ps and f > s and self.portfolio.is_flat(iid):
                qty = self.instrument.make_qty(NOTIONAL / bar.close.as_double())
                self.submit_order(self.order_factory.market(iid, OrderSide.BUY, qty))
            elif pf >= ps and f < s and not self.portfolio.is_flat(iid):
                self.close_all_positions(iid)

    def instrument(symbol: str, size_decimals: int) -> CurrencyPair:
        base, quote = symbol.split("/")
        step = Quantity(10.0**-size_decimals, size_decimals)
        return CurrencyPair(
            instrument_id=InstrumentId(Symbol(base + quote), venue), raw_symbol=Symbol(base + quote),
            base_currency=Currency.from_str(base), quote_currency=USDT, price_precision=2,
            size_precision=size_decimals, price_increment=Price(0.01, 2), size_increment=step,
            lot_size=None, max_quantity=None, min_quantity=step, max_notional=None,
            min_notional=Money(5.0, USDT), max_price=None, min_price=None, margin_init=Decimal(0),
            margin_maint=Decimal(0), maker_fee=Decimal("0.001"), taker_fee=Decimal("0.001"),
            ts_event=0, ts_init=0,
        )  # fmt: skip

    t = time.perf_counter()
    engine = BacktestEngine(config=BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH,
                     base_currency=None, starting_balances=[Money(CAPITAL, USDT)])  # fmt: skip
    for symbol, rows in candles.items():
        inst = instrument(symbol, PAIRS[symbol][2])
        engine.add_instrument(inst)
        bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
        frame = pd.DataFrame(
            rows[:, 1:6], columns=["open", "high", "low", "close", "volume"],
            index=pd.to_datetime(rows[:, 0].astype("int64"), unit="ms", utc=True),
        )  # fmt: skip
        engine.add_data(BarDataWrangler(bar_type, inst).process(frame))
        engine.add_strategy(SmaCross(SmaCrossConfig(instrument_id=inst.id, bar_type=bar_type)))
    engine.run()
    elapsed = time.perf_counter() - t
    fills = len(engine.trader.generate_order_fills_report())
    engine.dispose()
    return {"elapsed_s": elapsed, "trades": fills // 2}


RUNNERS = {"freqtrade": run_freqtrade, "nautilus": run_nautilus}


def run_peer(name: str, candles: dict[str, np.ndarray]) -> dict[str, Any]:
    """In this interpreter when the peer imports here, else in ``$MULTIPAR_PEERS_PYTHON``."""
    if importlib.util.find_spec(PEERS[name]) is not None:
        return RUNNERS[name](candles)
    python = os.environ.get(PEERS_PYTHON)
    if not python:
        return {"missing": f"{PEERS[name]} not installed: {INSTALL}"}
    with tempfile.TemporaryDirectory(prefix="bt-bench-peer-") as d:
        path = Path(d) / "candles.npz"
        np.savez(path, **{s.replace("/", "_"): rows for s, rows in candles.items()})
        cmd = [python, "-m", "bench.backtest", "--peer", name, "--candles-file", str(path)]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return {"missing": f"{name} in {python} failed: {(r.stderr or r.stdout).strip()[-300:]}"}
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------ the figures


def run(quick: bool, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    return measure(30 if quick else 365, 1 if quick else 3, say)


def measure(days: int, runs: int, say: Any) -> tuple[list[Figure], dict[str, Any]]:
    """Ours ``runs`` times and each peer once on ``days`` of candles; a year's time is
    measured on a year, scaled from a shorter run otherwise (the figure says so)."""
    logging.getLogger("engine").setLevel(logging.WARNING)  # fills log at INFO
    candles = make_candles(days)
    n = sum(len(rows) for rows in candles.values())
    ours = []
    for i in range(runs):
        ours.append(run_ours(candles))
        got = ours[-1]
        say(
            f"backtest run {i + 1}/{runs}: {n:,} candles in {got['elapsed_s']:.1f} s = "
            f"{n / got['elapsed_s']:,.0f} candles/s, {got['trades']:,} trades"
        )
    rates = [n / r["elapsed_s"] for r in ours]
    peers: dict[str, dict[str, Any]] = {}
    for name in RUNNERS:
        say(f"backtest peer {name} ...")
        try:
            peers[name] = run_peer(name, candles)
        except Exception as exc:  # a peer that breaks is reported, never a crash
            peers[name] = {"missing": f"{name} failed: {type(exc).__name__}: {exc}"}
        got = peers[name]
        done = f"{n / got['elapsed_s']:,.0f} candles/s, {got['trades']:,} trades" if "elapsed_s" in got else ""
        say(f"backtest peer {name}: {done or got['missing']}")
    year = 3 * 365 * 1440
    scope = "3 pairs × 1 year of 1m candles" + ("" if days == 365 else f" (scaled from {days} days)")
    note = (
        f"run_backtest, SMA({FAST})/SMA({SLOW}) cross as the momentum strategy; "
        f"{ours[-1]['trades']:,} trades, exits {ours[-1]['exits']}; median of {runs}"
    )
    figures = [
        Figure("backtest.year_s", f"backtest {scope}", "s", "<=", TARGET_YEAR_S, [year / r for r in rates], note=note),
        Figure("backtest.candles_per_s", "backtest candles/s (ours)", "candles/s", "", None, rates),
    ]
    peer_rates = {k: n / v["elapsed_s"] for k, v in peers.items() if "elapsed_s" in v}
    for name, got in peers.items():
        figures.append(
            Figure(
                f"backtest.{name}_candles_per_s", f"backtest candles/s ({name}, same candles)", "candles/s",
                "", None, [peer_rates[name]] if name in peer_rates else [],
                note="" if "missing" in got else f"{got['trades']:,} trades", missing=got.get("missing", ""),
            )
        )
    vs = Figure("backtest.vs_peer", "backtest speed vs the faster peer", "×", ">=", TARGET_VS_PEER)
    if peer_rates:
        best = max(peer_rates, key=lambda k: peer_rates[k])
        vs.samples, vs.note = [r / peer_rates[best] for r in rates], f"faster peer: {best}"
    else:
        vs.missing = f"no peer installed: {INSTALL}"
    figures.append(vs)
    details = {"days": days, "candles": n, "ours": ours, "peers": peers}
    return figures, details


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.backtest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--days", type=int, default=365, help="days of 1m candles per pair")
    ap.add_argument("--runs", type=int, default=1, help="runs of ours (peers run once)")
    ap.add_argument("--peer", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    ap.add_argument("--candles-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer:  # the worker of run_peer: one peer on the given candles, one JSON line out
        with np.load(args.candles_file) as z:
            candles = {k.replace("_", "/"): z[k] for k in z.files}
        print(json.dumps(RUNNERS[args.peer](candles)))
        return 0
    from bench import report

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    figures, _ = measure(args.days, args.runs, say)
    print(report.table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
