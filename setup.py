"""The build: the trading core's hot modules compiled to C with mypyc, when it can be.

Everything else is in ``pyproject.toml``. The modules in ``engine/compiled.py``'s ``MODULES``
(candles, indicators, strategies, risk, portfolio, execution, the core itself and the
backtest's replay) are plain, type-annotated Python; mypyc turns them into C extensions that
run the same code about 1.7x faster (docs/performance.md). The build never fails for want of
it: without a C compiler, with ``MULTIPAR_PURE=1`` in the environment, or if mypyc fails, the
package installs as plain Python and says so. ``engine/compiled.py`` checks at import that the
compiled modules were built from the sources beside them and otherwise runs the sources.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_multipar_compiled", ROOT / "engine" / "compiled.py")
assert _spec is not None and _spec.loader is not None
_compiled = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compiled)  # by path: importing ``engine`` would run its guard
MANIFEST, MODULES, source_digest = _compiled.MANIFEST, _compiled.MODULES, _compiled.source_digest
stray_extensions, NATIVE, c_compiler = _compiled.stray_extensions, _compiled.NATIVE, _compiled.c_compiler


def _say(msg: str) -> None:
    print(f"multipar-console build: {msg}", file=sys.stderr)


class BuildExt(build_ext):
    """``build_ext`` that falls back to plain Python instead of failing, and writes the
    manifest (each compiled module's source digest) only when every extension was built."""

    def run(self) -> None:
        targets = [Path(self.build_lib) / MANIFEST]  # what a wheel ships beside the extensions
        if self.inplace or getattr(self, "editable_mode", False):
            targets.append(ROOT / MANIFEST)  # the extensions are put beside the sources
            _remove_strays()
        for target in targets:  # no manifest: the guard runs the sources whatever was built
            target.unlink(missing_ok=True)
        try:
            super().run()
        except Exception as exc:  # a compiler error: the sources run as they are
            _say(f"compiling the core failed ({exc}); installing it as plain Python")
            return
        if not self.extensions:
            return
        modules = {m: source_digest(ROOT, m) for m in MODULES}
        text = json.dumps({"python": sys.implementation.cache_tag, "modules": modules}, indent=1)
        for target in targets:
            if target.parent.is_dir():
                target.write_text(text + "\n")
        _say(f"compiled {len(MODULES)} modules of the core with mypyc")


def _remove_strays() -> None:
    """Extensions in the tree of modules no longer compiled: Python would still prefer them to
    their sources, and the guard checks only the modules it lists."""
    for path in stray_extensions(ROOT):
        _say(f"removing {path.relative_to(ROOT)}: no longer compiled")
        path.unlink()


def _ext_modules() -> list:
    if os.environ.get("MULTIPAR_PURE"):
        _say("MULTIPAR_PURE is set: the core installs as plain Python")
        return []
    if c_compiler() is None:
        _say("no C compiler found: the core installs as plain Python (apt-get install gcc to compile it)")
        return []
    try:
        from mypyc.build import mypycify

        return mypycify(
            # the compiled modules must type-check; what they import is read, not judged
            ["--ignore-missing-imports", "--follow-imports=silent",
             *(f"{m.replace('.', '/')}.py" for m in MODULES)],
            opt_level="3",
            debug_level="0",
            group_name=NATIVE.removesuffix("__mypyc"),
        )
    except (Exception, SystemExit) as exc:  # mypy absent, or the type check failed (it exits)
        _say(f"mypyc could not compile the core ({exc}); installing it as plain Python")
        return []


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": BuildExt})
