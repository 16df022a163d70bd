"""The repo's own rules, run as tests so the README's one test command checks them too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def test_ruff_clean() -> None:
    r = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_contracts_hold() -> None:
    """console -> engine -> feed, feed/engine never import textual, nor does the daemon;
    only engine.ml imports gymnasium (pyproject.toml)."""
    r = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 6 kept, 0 broken" in r.stdout, r.stdout


def test_trading_core_reads_no_clock() -> None:
    """The core gets time only through its Clock port, so a backtest or a test can drive it:
    no module of engine/core imports time or datetime (import-linter does not see stdlib
    modules that are imported and never called, so this reads the source)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "engine" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("time", "datetime")]
    assert not offenders, offenders
