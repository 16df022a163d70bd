"""Several windows at once: ``gymnasium.vector`` over ``MultiParEnv``, and its speed.

Owns ``make_vector_env`` and ``steps_per_second``. Each sub-environment is its own
``MultiParEnv`` (its own core, book and worker thread) seeded apart, so each resets to its own
window of the same data. ``SyncVectorEnv`` steps them one after the other in this process;
``AsyncVectorEnv`` runs each in a worker process (docs/ml.md: the figures, and when each pays).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from engine.ml.env import MultiParEnv


def make_vector_env(n: int, *, asynchronous: bool = False, **env_kwargs: Any) -> gym.vector.VectorEnv:
    """``n`` environments built with ``env_kwargs`` (``MultiParEnv``'s arguments; picklable
    for ``asynchronous``). Reset it with ``seed=`` to give each its own window."""
    if n < 1:
        raise ValueError("n must be >= 1")

    def make() -> MultiParEnv:
        return MultiParEnv(**env_kwargs)

    fns: list[Callable[[], gym.Env[Any, Any]]] = [make] * n
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, shared_memory=True)
    return gym.vector.SyncVectorEnv(fns)


def steps_per_second(
    venv: gym.vector.VectorEnv, steps: int, seed: int = 0, policy: str = "random"
) -> dict[str, float]:
    """Step ``venv`` ``steps`` times (episodes reset themselves) with random or HOLD actions;
    the environment steps (decisions) per second over all sub-environments, resets included."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    venv.reset(seed=seed)
    t_reset = time.perf_counter() - t0
    n = venv.num_envs
    t1 = time.perf_counter()
    for _ in range(steps):
        actions = rng.integers(0, 3, n) if policy == "random" else np.zeros(n, np.int64)
        venv.step(actions)
    dt = time.perf_counter() - t1
    return {"envs": n, "steps": steps * n, "seconds": dt, "steps_per_s": steps * n / dt, "reset_s": t_reset}
