"""Which of the core's modules run compiled, and a guard that never runs a stale build.

``setup.py`` compiles ``MODULES`` with mypyc when a C compiler is at hand and writes
``MANIFEST``: the digest of each module's source at build time. Python prefers a compiled
extension to the source beside it, so after an edit (or a ``git pull``) without a rebuild the
extension would run the old code. ``guard`` (called by ``engine/__init__.py``, before any of
them is imported) compares the digests and, when any source changed, when an extension is
missing, when the manifest was written for another Python, or when ``MULTIPAR_PURE=1`` is set,
makes every one of them load from its source: all or none, since compiled modules call each
other directly.

``status()`` says which it is; ``multipar-console --version`` and the benchmarks print it.
Standard library only: ``setup.py`` reads this file before anything is installed.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODULES: tuple[str, ...] = (
    "engine.core.clock",
    "engine.core.models",
    "engine.core.events",
    "engine.core.costs",
    "engine.core.orders",
    "engine.core.protect",
    "engine.core.markets",
    "engine.core.candles",
    "engine.core.quality",
    "engine.core.indicators.base",
    "engine.core.indicators.averages",
    "engine.core.indicators.rsi",
    "engine.core.indicators.volatility",
    "engine.core.indicators.windows",
    "engine.core.strategies.base",
    "engine.core.strategies.momentum",
    "engine.core.strategies.mean_reversion",
    "engine.core.strategies.breakout",
    "engine.core.correlation",
    "engine.core.portfolio",
    "engine.core.placement",
    "engine.core.sizing",
    "engine.core.risk",
    "engine.core.execution",
    "engine.core.pair",
    "engine.core.commands",
    "engine.core.trader",
    "engine.execution.paper",
    "engine.journal.rows",
    "engine.backtest.clock",
    "engine.backtest.held",
    "engine.backtest.trades",
    "engine.backtest.replay",
    "engine.backtest.runner",
    "engine.node.tick_in",
    "engine.node.clock",
)
NATIVE = "engine._native__mypyc"  # the shared library of the compiled group (setup.py)
MANIFEST = "engine/_compiled.json"  # relative to the directory that holds ``engine/``
PURE_ENV = "MULTIPAR_PURE"

_state: dict[str, str] = {"mode": "interpreted", "why": "not built"}


def source_digest(root: Path, module: str) -> str:
    return hashlib.sha256((root / f"{module.replace('.', '/')}.py").read_bytes()).hexdigest()


class _FromSource(importlib.abc.MetaPathFinder):
    """Finds ``names`` as their ``.py`` files, ahead of the extensions beside them."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path or ():
            source = Path(entry) / leaf
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def guard(package_dir: Path) -> None:
    """Decide compiled or interpreted for this process (idempotent)."""
    if any(isinstance(f, _FromSource) for f in sys.meta_path):
        return
    root = package_dir.parent
    why = ""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        manifest = None
        why = "not built (no C compiler at install, or MULTIPAR_PURE set then)"
    except (OSError, ValueError) as exc:
        manifest = None
        why = f"unreadable {MANIFEST}: {exc}"
    if manifest is not None:
        built = manifest.get("modules", {})
        if os.environ.get(PURE_ENV):
            why = f"{PURE_ENV} is set"
        elif manifest.get("python") != sys.implementation.cache_tag:
            why = f"built for {manifest.get('python')}, this is {sys.implementation.cache_tag}"
        else:
            changed = [m for m in MODULES if built.get(m) != _digest_or_none(root, m)]
            suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
            absent = [m for m in MODULES if not (root / f"{m.replace('.', '/')}{suffix}").is_file()]
            if changed:
                why = f"{changed[0]} changed since the build (pip install -e . rebuilds)"
            elif absent:
                why = f"no compiled {absent[0]} beside its source"
    if not why:
        _state.update(mode="compiled", why="mypyc")
        return
    _state.update(mode="interpreted", why=why)
    sys.meta_path.insert(0, _FromSource(frozenset(MODULES)))


def stray_extensions(root: Path) -> list[Path]:
    """Extension files under ``root/engine`` of modules not in ``MODULES`` (the list changed
    since they were built): Python would prefer them to their sources, and ``guard`` looks only
    at the modules it lists. ``setup.py`` removes them before an in-place build."""
    keep = {*MODULES, NATIVE}
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    found = []
    for path in (root / "engine").rglob("*"):
        suffix = next((x for x in suffixes if path.name.endswith(x)), None)
        if suffix is not None and path.is_file():
            name = ".".join(path.relative_to(root).with_name(path.name[: -len(suffix)]).parts)
            if name not in keep:
                found.append(path)
    return found


def _digest_or_none(root: Path, module: str) -> str | None:
    try:
        return source_digest(root, module)
    except OSError:
        return None


def status() -> tuple[str, str]:
    """("compiled" | "interpreted", why)."""
    return _state["mode"], _state["why"]


def describe() -> str:
    """``status()`` in words, as ``--version`` and the benchmarks print it."""
    mode, why = status()
    return "core compiled with mypyc" if mode == "compiled" else f"core interpreted: {why}"


def c_compiler() -> str | None:
    """The C compiler a build would use (``CC``, else Python's own), if it is installed."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)
