"""``MultiParEnv`` (engine/ml): the gymnasium environment that steps the backtest's own core.

- ``check_env`` passes on the environment built with no argument (the simulated market).
- The same seed gives the same episode (window, observations, rewards, infos); another seed
  another window.
- A held-out random-action episode against the backtest's books: the same actions replayed by a
  policy in ``run_backtest`` give the same decisions, fills and final equity; the rewards add up
  to the change of equity; the equity is recomputed from the book's fills alone.
- An action that would break the exposure cap is refused with the check's reason, and is a
  no-op: no order, no position.
- A saved policy file makes the same decisions in the environment as in the ``policy`` strategy
  of a plain backtest on the same window.
- ``gymnasium.vector``: sync and async vector environments over different windows.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from engine.backtest.runner import run_backtest
from engine.core.policy_file import LinearPolicy
from engine.ml.data import bundled_safe_list, cut_window
from engine.ml.env import MultiParEnv, policy_config
from tests import ml_policies

pytestmark = pytest.mark.timeout(120)
WINDOW, WARMUP = 240, 120


@pytest.fixture(scope="module")
def env() -> Any:
    e = MultiParEnv(window=WINDOW, warmup=WARMUP, sim_days=1.5)
    yield e
    e.close()


def test_check_env_passes_on_the_default_environment() -> None:
    from gymnasium.utils.env_checker import check_env

    e = MultiParEnv()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*infinity.*")  # the Box is unbounded on purpose
            check_env(e, skip_render_check=True)
        assert e.symbols == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    finally:
        e.close()


def _episode(env: MultiParEnv, seed: int, actions_seed: int) -> tuple[list[Any], list[int], dict[str, Any], dict]:
    rng = np.random.default_rng(actions_seed)
    obs, info = env.reset(seed=seed)
    trace: list[Any] = [(obs.tobytes(), dict(info))]
    actions: list[int] = []
    while True:
        a = int(rng.integers(0, 3))
        actions.append(a)
        obs, r, term, trunc, info = env.step(a)
        trace.append((obs.tobytes(), r, term, trunc, {k: v for k, v in info.items() if k != "result"}))
        if term or trunc:
            return trace, actions, info, trace[0][1]


def test_the_same_seed_gives_the_same_episode(env: MultiParEnv) -> None:
    a, _, _, first = _episode(env, seed=7, actions_seed=1)
    b, _, _, _ = _episode(env, seed=7, actions_seed=1)
    assert a == b
    other = env.reset(seed=9)[1]["window_start_ms"]
    assert other != first["window_start_ms"]  # another seed, another window


def _book(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


FILLS = "SELECT symbol, side, qty, price, fee, ts, reason FROM fills ORDER BY rowid"
DECISIONS = "SELECT key, action, approved, qty FROM decisions ORDER BY rowid"


def test_a_random_episode_matches_the_backtests_books(env: MultiParEnv, tmp_path: Path) -> None:
    trace, actions, last, first = _episode(env, seed=3, actions_seed=11)
    assert trace[-1][3] is True and trace[-1][2] is False  # truncated at the end of the data
    res = last["result"]
    book = env.book
    assert book is not None and book.exists()
    env_fills, env_decisions = _book(book, FILLS), _book(book, DECISIONS)
    assert len(env_fills) >= 10, "random actions should trade"
    rewards = sum(t[1] for t in trace[1:])
    capital = env.capital
    assert last["equity"] == res.equity[-1].equity
    assert rewards == pytest.approx(last["equity"] - capital, abs=1e-6)

    # the same actions, replayed by a policy in a plain backtest of the same window
    ml_policies.REPLAY.actions[:] = actions
    ml_policies.REPLAY.seen.clear()
    cfg = policy_config(env.cfg, spec="tests.ml_policies:REPLAY")
    candles = cut_window(env.candles, first["window_start_ms"], WINDOW, WARMUP, env.tf_s * 1000)
    bt = run_backtest(cfg, candles, tmp_path / "bt.sqlite", warmup=WARMUP)
    assert len(ml_policies.REPLAY.seen) == len(actions)
    assert [o for o, *_ in trace[:-1]] == [s.astype(np.float32).tobytes() for s in ml_policies.REPLAY.seen]
    assert _book(tmp_path / "bt.sqlite", FILLS) == env_fills
    assert _book(tmp_path / "bt.sqlite", DECISIONS) == env_decisions
    assert bt.equity[-1].equity == last["equity"]

    # the books alone: cash from the fills, positions marked at the last close
    cash, qty = capital, {}
    for symbol, side, q, price, fee, _ts, _why in env_fills:
        sign = 1.0 if side == "buy" else -1.0
        cash -= sign * q * price + fee
        qty[symbol] = qty.get(symbol, 0.0) + sign * q
    marks = {s: float(candles[s][-1, 4]) for s in candles}
    equity = cash + sum(q * marks[s] for s, q in qty.items())
    assert equity == pytest.approx(last["equity"], rel=1e-9)
    outcomes = {t[4].get("outcome") for t in trace[1:]}
    assert {"approved", "hold", "no_trade"} <= outcomes


def test_an_action_over_the_exposure_cap_is_refused_with_its_reason(tmp_path: Path) -> None:
    cfg = bundled_safe_list()
    pc = cfg.portfolio.model_copy(update={"max_total_exposure": 0.001})  # $10 of $10,000
    env = MultiParEnv(cfg.model_copy(update={"portfolio": pc}), pairs=["BTC/USDT"], window=60, warmup=WARMUP, sim_days=1.0)
    try:
        env.reset(seed=1)
        refused = 0
        while True:
            _obs, r, term, trunc, info = env.step(1)  # BUY, every candle
            assert info.get("position", 0.0) == 0.0
            if info["outcome"] == "refused":
                refused += 1
                assert "total_exposure: Total exposure $" in info["reason"], info["reason"]
                assert "would exceed max $10.00" in info["reason"]
            else:  # never approved: other checks may refuse first, or the data may not decide
                assert info["outcome"] in ("no_trade",), info
            if term or trunc:
                break
        assert refused >= 5
        assert _book(env.book, FILLS) == []
        assert _book(env.book, "SELECT count(*) FROM orders") == [(0,)]
        assert r == 0.0 and info["equity"] == env.capital
    finally:
        env.close()


def test_a_saved_policy_decides_the_same_in_the_environment_and_the_backtest(env: MultiParEnv, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = len(env.layout)
    policy = LinearPolicy(env.layout, rng.normal(size=(n, 3)), [0.3, 0.0, 0.0], np.zeros(n), np.full(n, 0.2))
    path = policy.save(tmp_path / "policy.npz")
    loaded = LinearPolicy.load(path)
    obs, info = env.reset(seed=5)
    actions = []
    while True:
        a = loaded(obs)
        actions.append(a)
        obs, _r, term, trunc, last = env.step(a)
        if term or trunc:
            break
    assert 1 in actions and 0 in actions
    env_decisions, env_fills = _book(env.book, DECISIONS), _book(env.book, FILLS)
    assert any(d[2] == 1 for d in env_decisions), "the policy should trade"
    cfg = policy_config(env.cfg, spec=str(path))
    candles = cut_window(env.candles, info["window_start_ms"], WINDOW, WARMUP, env.tf_s * 1000)
    bt = run_backtest(cfg, candles, tmp_path / "bt.sqlite", warmup=WARMUP)
    assert _book(tmp_path / "bt.sqlite", DECISIONS) == env_decisions
    assert _book(tmp_path / "bt.sqlite", FILLS) == env_fills
    assert bt.equity[-1].equity == last["equity"]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_vector_envs_step_several_windows(asynchronous: bool) -> None:
    from engine.ml.vector import make_vector_env

    venv = make_vector_env(2, asynchronous=asynchronous, window=60, warmup=WARMUP, sim_days=1.0)
    try:
        obs, info = venv.reset(seed=[1, 2])
        assert obs.shape == (2, 8) and obs.dtype == np.float32
        assert info["window_start_ms"][0] != info["window_start_ms"][1]
        for _ in range(20):
            obs, r, _term, _trunc, info = venv.step(np.array([1, 0]))
        assert r.shape == (2,) and np.all(np.isfinite(r))
    finally:
        venv.close()


def test_terminated_on_the_drawdown_limit_and_reset_abandons_the_run() -> None:
    env = MultiParEnv(window=WINDOW, warmup=WARMUP, sim_days=1.5, max_drawdown=0.0005)  # 0.05 % of the peak
    try:
        rng = np.random.default_rng(2)
        env.reset(seed=3)
        while True:
            _obs, _r, term, trunc, info = env.step(int(rng.integers(1, 3)))
            if term or trunc:
                break
        assert term and not trunc, "random trading loses 0.05 % within the window"
        assert info["equity"] <= env._peak * (1 - 0.0005) + 1e-9  # 0.05 % below the peak
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(0)
        ended = env.book
        env.reset(seed=4)  # the ended run's book is removed with it
        assert ended is not None and not ended.exists() and env.book != ended
        _obs, _r, term, trunc, _info = env.step(0)
        paused = env.book
        env.reset(seed=4)  # abandons a run paused at a decision: its book closed and removed
        assert paused is not None and not paused.exists() and env.book != paused
    finally:
        env.close()
