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
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import engine
import engine.core.trader
from engine.compiled import MANIFEST, MODULES, status

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
BUILT = (ROOT / MANIFEST).exists()


def _compiler() -> str | None:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc)


def _run(code: str, cwd: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "MULTIPAR_PURE"} | env
    full["PYTHONPATH"] = str(cwd)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


WHERE = "import engine.compiled as c, engine.core.trader as t; print(c.status()[0], t.__file__.rsplit('.', 1)[1])"


@pytest.mark.skipif(_compiler() is None, reason="no C compiler: the package installed as plain Python")
@pytest.mark.skipif(bool(os.environ.get("MULTIPAR_PURE")), reason="MULTIPAR_PURE is set")
def test_the_core_runs_compiled_where_it_could_be_built() -> None:
    mode, why = status()
    assert mode == "compiled", f"the core runs interpreted: {why}"
    assert engine.core.trader.__file__.endswith(".so")


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
