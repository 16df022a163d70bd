"""Strategies, found by name: every module in this package registers itself on import."""

from __future__ import annotations

import importlib
import pkgutil

from engine.core.strategies.base import Strategy, register, registry

_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    _loaded = True


def known_strategies() -> set[str]:
    _load_all()
    return set(registry())


def create_strategy(name: str, symbol: str, params: object) -> Strategy:
    _load_all()
    try:
        cls = registry()[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r} (known: {', '.join(sorted(registry()))})") from None
    return cls(symbol, params)  # type: ignore[arg-type]


__all__ = ["Strategy", "create_strategy", "known_strategies", "register", "registry"]
