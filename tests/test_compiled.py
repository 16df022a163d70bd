"""The core compiled with mypyc (setup.py) and as plain Python: the same results, and never a
stale build.

Where a C compiler was at hand when the package was installed, the suite runs the compiled
core (the production path); these tests check that it is the one in use, that the plain
sources give the very same backtest (the golden digests, in a subprocess with
``MULTIPAR_PURE=1``), and that an edited source is run as such instead of the extension built
from its older text.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.machinery
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import engine
import engine.core.trader
from engine.compiled import MANIFEST, MODULES, c_compiler, status
from engine.core.candles import Candle
from engine.core.execution import PendingExit
from engine.core.models import CheckResult, Decision, Fill, Indicators, Side, Signal, SignalType
from engine.core.orders import Order, OrderStatus

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
BUILT = (ROOT / MANIFEST).exists()


def _run(code: str, cwd: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "MULTIPAR_PURE"} | env
    full["PYTHONPATH"] = str(cwd)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


WHERE = "import engine.compiled as c, engine.core.trader as t; print(c.status()[0], t.__file__.rsplit('.', 1)[1])"


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler: the package installed as plain Python")
@pytest.mark.skipif(bool(os.environ.get("MULTIPAR_PURE")), reason="MULTIPAR_PURE is set")
def test_the_core_runs_compiled_where_it_could_be_built() -> None:
    mode, why = status()
    assert mode == "compiled", f"the core runs interpreted: {why}"
    assert engine.core.trader.__file__.endswith(".so")


# Classes of the compiled modules that stay ordinary Python classes, and why: exceptions (mypyc
# compiles no subclass of a built-in exception as native) and a Protocol (a type, never
# instantiated).
NOT_NATIVE = {
    "engine.core.orders.OrderTransitionError", "engine.core.markets.MarketRulesError",
    "engine.execution.paper.PaperRejection", "engine.core.risk._HasCorrelatedWith",
}  # fmt: skip


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler: the package installed as plain Python")
@pytest.mark.skipif(bool(os.environ.get("MULTIPAR_PURE")), reason="MULTIPAR_PURE is set")
def test_the_compiled_classes_are_native() -> None:
    """A compiled class is a C struct only when every class it inherits from is compiled too;
    otherwise mypyc silently makes it an ordinary Python class whose every attribute is a dict
    lookup. ``TradingCore`` was one (its base ``OperatorCommands`` was left out of ``MODULES``),
    and so were the strategies (``Strategy`` had an ``abc.ABC`` base): every class of a compiled
    module is native (no ``__dict__``) but for the few listed."""
    import importlib

    found, plain = 0, []
    for m in MODULES:
        for name, cls in vars(importlib.import_module(m)).items():
            if inspect.isclass(cls) and cls.__module__ == m:
                found += 1
                if "__dict__" in dir(cls) and f"{m}.{name}" not in NOT_NATIVE:
                    plain.append(f"{m}.{name} ({', '.join(b.__name__ for b in cls.__mro__[1:])})")
    assert found > 40
    assert not plain, f"compiled as ordinary Python classes: {plain}"


def test_every_compiled_module_exists_and_is_listed_once() -> None:
    assert len(set(MODULES)) == len(MODULES)
    for m in MODULES:
        assert (ROOT / f"{m.replace('.', '/')}.py").is_file(), m
    # setup.py takes the list from engine/compiled.py (one list, not two)
    assert "MODULES" in {n.id for n in ast.walk(ast.parse((ROOT / "setup.py").read_text())) if isinstance(n, ast.Name)}


def test_plain_python_gives_the_golden_backtests() -> None:
    """The golden digests (tests/test_backtest_golden.py pins them for whichever build runs
    the suite) from the plain sources, in a process where the guard loads the ``.py`` files."""
    code = (
        "import engine.compiled as c, engine.core.trader as t\n"
        "assert c.status()[0] == 'interpreted' and t.__file__.endswith('.py'), (c.status(), t.__file__)\n"
        "import runpy; runpy.run_path('tests/test_backtest_golden.py', run_name='__main__')\n"
    )
    out = _run(code, ROOT, MULTIPAR_PURE="1")
    from tests.test_backtest_golden import GOLDEN

    got = dict(ast.literal_eval("{" + out + "}"))
    assert got == GOLDEN


@pytest.mark.skipif(not BUILT, reason="the core is not compiled here")
def test_an_edited_source_runs_instead_of_its_stale_extension(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "engine", tree / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    assert _run(WHERE, tree) == "compiled so"
    pair = tree / "engine" / "core" / "pair.py"
    pair.write_text(pair.read_text() + "\n# edited after the build\n")
    assert _run(WHERE, tree) == "interpreted py"
    why = _run("import engine.compiled as c; print(c.status()[1])", tree)
    assert why == "engine.core.pair changed since the build (pip install -e . rebuilds)"


@pytest.mark.skipif(not BUILT, reason="the core is not compiled here")
def test_a_missing_extension_runs_every_module_from_source(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "engine", tree / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    (so,) = (tree / "engine" / "core").glob("risk.*.so")
    so.unlink()
    assert _run(WHERE, tree) == "interpreted py"
    why = _run("import engine.compiled as c; print(c.status()[1])", tree)
    assert why == "no compiled engine.core.risk beside its source"



def _value_for(f: dataclasses.Field[Any], i: int) -> object:
    """A value of the field's declared kind, distinct from its default and from the others."""
    # a string under ``from __future__ import annotations``; a type once compiled
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "") or str(f.type)
    t = t.split(".")[-1] if " " not in t else t  # engine.core.models.Side -> Side
    if t == "type":  # an optional field, compiled: the only ones are floats and a Decision
        t = "Decision | None" if f.name == "decision" else "float | None"
    if t == "Side":
        return Side.SELL
    if t == "SignalType":
        return SignalType.SELL
    if t == "OrderStatus":
        return OrderStatus.FILLED
    if t == "Signal":
        return Signal("S", SignalType.HOLD, ts=i)
    if t.startswith("list"):
        return [CheckResult(f"c{i}", True)]
    if "Decision" in t:
        return Decision(f"k{i}", "S", i, "open_long", Signal("S", SignalType.BUY))
    if t == "bool":
        return f.default is not True
    if t.startswith("int"):
        return 1000 + i
    if t.startswith("float"):
        return 1000.5 + i
    assert t.startswith("str"), (f.name, f.type)
    return f"v{i}"


def _no_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


HOT = (Indicators, Signal, CheckResult, Decision, Fill, Candle, Order, PendingExit)


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
def test_written_out_inits_take_and_set_every_field(cls: type) -> None:
    """The hot dataclasses write their ``__init__`` out (mypyc compiles it; the one
    ``dataclasses`` would generate stays interpreted): the same parameters in field order, the
    same defaults, and every field set from its own parameter."""
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    if params != ["args", "kwargs"]:  # a compiled __init__ shows no signature: checked below
        assert params == [f.name for f in fields]
    required = {f.name: _value_for(f, i) for i, f in enumerate(fields) if _no_default(f)}
    bare = cls(**required)  # every other field takes its declared default
    for f in fields:
        if f.default is not dataclasses.MISSING:
            assert getattr(bare, f.name) == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert getattr(bare, f.name) == f.default_factory(), f.name
    values = {f.name: _value_for(f, i) for i, f in enumerate(fields)}
    obj = cls(**values)
    assert {f.name: getattr(obj, f.name) for f in fields} == values
    assert cls(*values.values()) == obj and dataclasses.replace(obj) == obj
    if cls is Decision:
        a = Decision("k", "S", 1, "open_long", Signal("S", SignalType.BUY))
        b = Decision("k", "S", 1, "open_long", Signal("S", SignalType.BUY))
        assert a.checks == [] and a.checks is not b.checks  # a fresh list each


def test_extensions_of_modules_no_longer_listed_are_strays(tmp_path: Path) -> None:
    """``setup.py`` removes them before an in-place build: a module taken off ``MODULES``
    must not keep running the extension built when it was on it."""
    from engine.compiled import NATIVE, stray_extensions

    suffix = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len)[-1]
    (tmp_path / "engine" / "core").mkdir(parents=True)
    (tmp_path / "engine" / "node").mkdir()
    listed = tmp_path / f"{MODULES[0].replace('.', '/')}{suffix}"
    shared = tmp_path / f"{NATIVE.replace('.', '/')}{suffix}"
    stray = tmp_path / "engine" / "node" / f"service{suffix}"
    for p in (listed, shared, stray, tmp_path / "engine" / "node" / "service.py"):
        p.write_bytes(b"")
    assert stray_extensions(tmp_path) == [stray]
    assert stray_extensions(ROOT) == []  # this tree's build is clean
