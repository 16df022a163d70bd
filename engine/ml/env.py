"""``MultiParEnv``: a gymnasium environment on the trading core, stepping the backtest over history.

Owns ``MultiParEnv`` and ``DEFAULT_LAYOUT``. One step is one pair's candle close (docs/ml.md):

- **Observation**: the ``float32`` vector the ``policy`` strategy builds for that pair
  (``engine.core.ml_interface.observation``): the seed's six fields (rsi, bb_position, atr,
  exposure, daily_pnl, correlation) and the extras of ``layout`` (by default this pair's
  ``position`` and ``unrealised``), in a ``Box(-inf, inf)``.
- **Action**: ``Discrete(3)``, the seed's 0 HOLD, 1 BUY, 2 SELL, for that pair. Pairs take
  turns in the core's own order: at each candle time every pair's close is a step of its own
  (``info["symbol"]`` names the pair the observation belongs to), so each action is decided on
  the portfolio the previous one left, exactly as the ``policy`` strategy decides live.
- **Every action goes the live way**: it is the policy strategy's answer, so it becomes a
  signal that passes the gap rule, the entry's placement, the nine risk checks (exposure cap,
  correlation, sizing, costs ...), the order boundary and the paper fill (``engine.ml.episode``
  runs ``run_backtest`` itself). A refused action is a no-op: ``info["outcome"]`` is
  ``"refused"`` (a failed check) or ``"no_trade"`` (no decision: a SELL on a flat spot pair, an
  order still open) and ``info["reason"]`` says why.
- **Reward**: the change of the core's accounting equity (cash + positions at the last
  prices) since the previous step, in USD: fees and slippage included, as booked.
- **Episode**: ``reset(seed=, options=)`` picks a window of ``window`` candle times (at a
  random start drawn from the seed, or ``options={"start_ms": ..., "window": ...}``) after a
  warm-up of the safe list's ``engine.history_candles``; ``truncated`` when the window's data
  ends (the last candles closed, the backtest's result in ``info["result"]``); ``terminated``
  when equity falls ``max_drawdown`` below its peak.

Built with no argument it trades the bundled safe list's pairs on three days of the simulated
market (``feed.sim``), so ``gymnasium.utils.env_checker.check_env(MultiParEnv())`` runs as is.
Each episode's book (SQLite, as any backtest's) is written to ``book_dir`` (by default a
temporary directory removed by ``close``) and removed at the next ``reset`` unless
``keep_books``; ``MultiParEnv.book`` names it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from engine.core.config import SafeList, load_safe_list
from engine.core.markets import MarketRules
from engine.core.ml_interface import FEATURES, check_layout
from engine.ml.data import bundled_safe_list, cut_window, sim_candles
from engine.ml.episode import AGENT_SPEC, Episode, Outcome, Point

DEFAULT_LAYOUT = FEATURES  # the seed's six and the pair's position and unrealised PnL


def policy_config(cfg: SafeList, pairs: list[str] | None = None, spec: str = AGENT_SPEC) -> SafeList:
    """``cfg`` with its active pairs (or ``pairs``) trading the ``policy`` strategy with
    ``spec``; every other setting (risk, sizing, stops in ATR, fees) kept."""
    known = set(cfg.pairs)
    if pairs is not None and not set(pairs) <= known:
        raise ValueError(f"pairs {sorted(set(pairs) - known)} are not in the safe list ({', '.join(cfg.pairs)})")
    out = {}
    for s, pc in cfg.pairs.items():
        on = pc.enabled if pairs is None else s in pairs
        params = pc.params.model_copy(update={"policy": spec})
        out[s] = pc.model_copy(update={"enabled": on, "strategy": "policy", "params": params})
    return cfg.model_copy(update={"pairs": out})


class MultiParEnv(gym.Env[np.ndarray, np.int64]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        cfg: SafeList | str | Path | None = None,
        candles: Mapping[str, np.ndarray] | None = None,
        *,
        pairs: list[str] | None = None,
        window: int = 720,
        warmup: int | None = None,
        layout: tuple[str, ...] | list[str] = DEFAULT_LAYOUT,
        max_drawdown: float = 0.2,
        spread_bps: float = 2.0,
        sim_days: float = 3.0,
        sim_seed: int = 0,
        timeframe_s: int | None = None,
        rules: Mapping[str, MarketRules] | None = None,
        book_dir: str | Path | None = None,
        keep_books: bool = False,
    ) -> None:
        base = bundled_safe_list() if cfg is None else cfg if isinstance(cfg, SafeList) else load_safe_list(cfg)
        self.cfg = policy_config(base, pairs)
        self.symbols = self.cfg.active_symbols()
        if not self.symbols:
            raise ValueError("no active pair to trade: enable one in the safe list or pass pairs=")
        self.layout = check_layout(layout)
        self.tf_s = int(timeframe_s or self.cfg.engine.timeframe_s)
        self.warmup = int(self.cfg.engine.history_candles if warmup is None else warmup)
        if window < 1 or self.warmup < 0 or not 0.0 < max_drawdown <= 1.0:
            raise ValueError("window must be >= 1, warmup >= 0 and max_drawdown in (0, 1]")
        self.window, self.max_drawdown, self.spread_bps, self.rules = int(window), float(max_drawdown), spread_bps, rules
        data = sim_candles(self.cfg, sim_days, sim_seed, self.tf_s) if candles is None else candles
        missing = [s for s in self.symbols if s not in data or len(data[s]) == 0]
        if missing:
            raise ValueError(f"no candles for {', '.join(missing)}")
        self.candles = {s: np.asarray(data[s], dtype=np.float64) for s in self.symbols}
        self.capital = self.cfg.portfolio.capital_usd
        n = len(self.layout)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self._own_dir, self._keep = book_dir is None, keep_books
        self._dir = Path(tempfile.mkdtemp(prefix="multipar-env-")) if book_dir is None else Path(book_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        if self._own_dir:  # an environment dropped without close() still removes its books
            weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        self._episode: Episode | None = None
        self._episodes = 0
        self._obs = np.zeros(n, np.float32)
        self._equity = self._peak = float(self.capital)
        self._ended = True

    # ------------------------------------------------------------------ the window

    def starts(self, window: int | None = None) -> tuple[int, int]:
        """The first and last start (ms, on the candle grid) a window of ``window`` candle times
        can take with a full warm-up in every pair's data."""
        tf = self.tf_s * 1000
        w = self.window if window is None else int(window)
        lo = max(int(a[0, 0]) for a in self.candles.values()) + self.warmup * tf
        hi = min(int(a[-1, 0]) for a in self.candles.values()) + tf - w * tf
        if hi < lo:
            n = min(len(a) for a in self.candles.values())
            raise ValueError(
                f"the data holds {n} candles per pair; a window of {w} after a warm-up of "
                f"{self.warmup} needs {w + self.warmup}: pass a smaller window= or more data"
            )
        return lo, hi

    def _pick(self, options: Mapping[str, Any]) -> tuple[int, int]:
        tf = self.tf_s * 1000
        window = int(options.get("window", self.window))
        lo, hi = self.starts(window)
        if "start_ms" in options:
            start = int(options["start_ms"])
            if not lo <= start <= hi:
                raise ValueError(f"options start_ms {start} is outside [{lo}, {hi}] for a window of {window}")
        else:
            start = lo + int(self.np_random.integers(0, (hi - lo) // tf + 1)) * tf
        return start, window

    # ------------------------------------------------------------------ gymnasium

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._finish_episode()
        start, window = self._pick(options or {})
        candles = cut_window(self.candles, start, window, self.warmup, self.tf_s * 1000)
        self._episodes += 1
        book = self._dir / f"episode-{os.getpid()}-{id(self):x}-{self._episodes}.sqlite"
        self._episode = Episode(
            self.cfg, candles, book, layout=self.layout, timeframe_s=self.tf_s,
            warmup=self.warmup, spread_bps=self.spread_bps, rules=self.rules,
        )
        point = self._episode.start()
        if point is None:
            raise ValueError(f"the window from {start} holds no candle to decide on: pass a longer window=")
        self._ended = False
        self._equity = self._peak = point.equity
        self._obs = point.state.astype(np.float32)
        info = self._info(point, None)
        info["window_start_ms"] = start
        return self._obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._ended or self._episode is None:
            raise RuntimeError("the episode has ended: call reset()")
        a = int(action)
        if not self.action_space.contains(a):
            raise ValueError(f"action {action!r} is not 0 HOLD, 1 BUY or 2 SELL")
        ep = self._episode
        point = ep.act(a)
        if point is None:  # the data ended: the last candles closed, the run is finished
            self._ended = True
            res = ep.result
            assert res is not None
            final = res.equity[-1]
            reward = final.equity - self._equity
            self._equity = final.equity
            info = self._info(None, ep.last_outcome())
            info.update(equity=final.equity, cash=final.cash, exposure=final.exposure, result=res)
            return self._obs, float(reward), False, True, info
        reward = point.equity - self._equity
        self._equity = point.equity
        self._peak = max(self._peak, point.equity)
        self._obs = point.state.astype(np.float32)
        terminated = point.equity <= self._peak * (1.0 - self.max_drawdown)
        info = self._info(point, point.outcome)
        if terminated:
            self._ended = True
            ep.close()
        return self._obs, float(reward), bool(terminated), False, info

    @property
    def book(self) -> Path | None:
        """The current episode's book (complete once the episode is truncated; removed at the
        next ``reset`` and by ``close`` unless ``keep_books``)."""
        return self._episode.book if self._episode is not None else None

    def close(self) -> None:
        self._finish_episode()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def _finish_episode(self) -> None:
        ep, self._episode = self._episode, None
        if ep is not None:
            ep.close()
            if not self._keep:
                ep.book.unlink(missing_ok=True)
        self._ended = True

    def _info(self, point: Point | None, outcome: Outcome | None) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if point is not None:
            info.update(
                symbol=point.symbol, candle_ts=point.candle_ts, ts=point.ts, equity=point.equity,
                cash=point.cash, exposure=point.exposure, realised=point.realised, fees=point.fees,
                position=point.position,
            )
        if outcome is not None:
            info.update(action=outcome.action, outcome=outcome.kind, reason=outcome.reason)
            if outcome.decision is not None:
                info["decision"] = outcome.decision.action
        return info
