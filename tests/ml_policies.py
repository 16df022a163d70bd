"""Policies the ML tests load by import path (``params.policy``)."""

from __future__ import annotations

from typing import Any

from engine.core.ml_interface import FEATURES


class Recorder:
    """A policy with a layout: records every observation it gets, answers ``action[0]``."""

    layout = FEATURES

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.action = [0]

    def __call__(self, state: Any) -> int:
        self.seen.append(state.copy())
        return self.action[0]


RECORDER = Recorder()


class Replay:
    """Answers the recorded ``actions`` in order, recording what it saw (``FEATURES`` layout)."""

    layout = FEATURES

    def __init__(self) -> None:
        self.actions: list[int] = []
        self.seen: list[Any] = []

    def __call__(self, state: Any) -> int:
        self.seen.append(state.copy())
        return self.actions[len(self.seen) - 1] if len(self.seen) <= len(self.actions) else 0


REPLAY = Replay()
