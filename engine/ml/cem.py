"""A dependency-light learner: cross-entropy search over a linear policy, in numpy.

Owns ``train_cem``, ``episode_return`` and ``fit_normaliser``. The policy is the project's
``LinearPolicy`` (``engine.core.policy_file``): ``argmax(((obs - mean) / scale) @ W + b)``. The
search keeps a Gaussian over ``(W, b)``; each iteration draws ``population`` candidates, scores
each by its mean episode return (fraction of capital) on the same training windows (the same
seeds for all: common random numbers), and refits the Gaussian to the best ``elite`` share. The
best candidate ever scored is returned. Candidates are scored in ``workers`` processes (each
with its own ``MultiParEnv``) when more than one.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.core.policy_file import N_ACTIONS, LinearPolicy
from engine.ml.env import MultiParEnv


def episode_return(env: MultiParEnv, policy: Callable[[np.ndarray], int], seed: int) -> tuple[float, int]:
    """One episode from ``reset(seed=seed)`` acting with ``policy``: (sum of rewards, steps)."""
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += reward
        steps += 1
        if terminated or truncated:
            return total, steps


def fit_normaliser(env: MultiParEnv, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and spread over one episode of random actions (a spread of 0, a
    feature that never moved there, gets scale 1)."""
    rng = np.random.default_rng(seed)
    seen: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    while True:
        seen.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(0, N_ACTIONS)))
        if terminated or truncated:
            break
    x = np.asarray(seen, dtype=np.float64)
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 1e-9, std, 1.0)


def _policy(theta: np.ndarray, layout: tuple[str, ...], mean: np.ndarray, scale: np.ndarray) -> LinearPolicy:
    n = len(layout)
    return LinearPolicy(layout, theta[: n * N_ACTIONS].reshape(n, N_ACTIONS), theta[n * N_ACTIONS :], mean, scale)


# one environment per worker process
_WORKER: dict[str, Any] = {}


def _init(env_kwargs: dict[str, Any], mean: np.ndarray, scale: np.ndarray, seeds: Sequence[int], books: str) -> None:
    env = MultiParEnv(**env_kwargs, book_dir=books)  # the books go in the search's own temp dir
    _WORKER.update(env=env, mean=mean, scale=scale, seeds=list(seeds))


def _score(theta: np.ndarray) -> tuple[float, int]:
    env: MultiParEnv = _WORKER["env"]
    policy = _policy(theta, env.layout, _WORKER["mean"], _WORKER["scale"])
    runs = [episode_return(env, policy, s) for s in _WORKER["seeds"]]
    return float(np.mean([r for r, _ in runs])) / env.capital, sum(n for _, n in runs)


def train_cem(
    env_kwargs: dict[str, Any],
    *,
    iterations: int = 8,
    population: int = 16,
    seeds: Sequence[int] = (0, 1),
    elite: float = 0.25,
    init_std: float = 0.5,
    hold_bias: float = 1.0,
    workers: int = 1,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> tuple[LinearPolicy, list[dict[str, float]]]:
    """Search ``iterations`` x ``population`` candidates on the windows of ``seeds``; returns
    the best policy and one line of figures per iteration. The search starts around HOLD
    (``hold_bias`` on its logit): trading must earn its fees to be kept."""
    env = MultiParEnv(**env_kwargs)
    try:
        mean, scale = fit_normaliser(env, seed)
        layout = env.layout
    finally:
        env.close()
    n = len(layout)
    dim = n * N_ACTIONS + N_ACTIONS
    mu = np.zeros(dim)
    mu[n * N_ACTIONS] = hold_bias
    sigma = np.full(dim, init_std)
    rng = np.random.default_rng(seed)
    n_elite = max(2, round(population * elite))
    best_theta, best_score = mu.copy(), -np.inf
    history: list[dict[str, float]] = []
    pool = None
    books = tempfile.TemporaryDirectory(prefix="multipar-cem-")
    if workers > 1:
        pool = mp.get_context("spawn").Pool(workers, _init, (env_kwargs, mean, scale, list(seeds), books.name))
    else:
        _init(env_kwargs, mean, scale, seeds, books.name)
    try:
        for it in range(iterations):
            thetas = mu + sigma * rng.standard_normal((population, dim))
            thetas[0] = best_theta if np.isfinite(best_score) else mu  # the best so far, re-scored
            scored = pool.map(_score, list(thetas)) if pool is not None else [_score(t) for t in thetas]
            scores = np.array([s for s, _ in scored])
            order = np.argsort(-scores, kind="stable")
            elites = thetas[order[:n_elite]]
            mu = elites.mean(axis=0)
            sigma = elites.std(axis=0) + 0.02 * init_std  # a floor: the search never freezes
            if scores[order[0]] > best_score:
                best_score, best_theta = float(scores[order[0]]), thetas[order[0]].copy()
            row = {
                "iteration": it + 1, "best": float(scores[order[0]]), "elite_mean": float(scores[order[:n_elite]].mean()),
                "mean": float(scores.mean()), "steps": float(sum(k for _, k in scored)),
            }
            history.append(row)
            say(f"iteration {it + 1}/{iterations}: best {row['best']:+.4%}, elite mean {row['elite_mean']:+.4%}, "
                f"population mean {row['mean']:+.4%} of capital per episode")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        else:
            _WORKER.pop("env").close()
        books.cleanup()
    policy = _policy(best_theta, layout, mean, scale)
    policy.meta = {
        "method": "cross-entropy search", "iterations": iterations, "population": population,
        "seeds": list(seeds), "train_score": best_score, "window": env_kwargs.get("window", 720),
    }
    return policy, history
