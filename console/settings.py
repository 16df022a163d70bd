"""The operator's own settings: ``$XDG_CONFIG_HOME/multipar-console/config.toml``.

Owns ``Settings`` (the colour theme and the keymap), ``config_path``, ``load_settings`` (every
problem one line naming the file, the key and what to do: bad TOML, an unknown key, an unknown
theme, an unknown binding id, a key name Textual does not have, a key that clashes with
another binding on some screen) and ``Settings.remember_theme`` (the theme is written back
when the operator changes it; the rest of the file, comments included, is left as it was).

The keymap overrides keys by binding id (``docs/keys.md`` lists them), exactly as Textual's
``App.set_keymap`` does; ``binding_scopes`` finds every binding of the app and of every
screen and widget under ``console.screens`` and ``console.widgets``, so a screen added later
is checked without being listed here. Nothing here runs in the daemon.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import pkgutil
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from textual.binding import Binding
from textual.keys import Keys, _normalize_key_list, key_to_character
from textual.theme import BUILTIN_THEMES

from console.options import APP_NAME

CONFIG_NAME = "config.toml"
KNOWN_KEYS = ("theme", "keymap")
MODIFIERS = ("ctrl", "alt", "shift", "meta", "super", "hyper")
_KEY_RE = re.compile(rf"^(?:(?:{'|'.join(MODIFIERS)})\+)*([A-Za-z0-9_]+)$")
_NAMED_KEYS = frozenset(k.value for k in Keys if "+" not in k.value)

Scope = tuple[str, list[Binding]]  # (where, its bindings: one per key, as Textual splits them)


class SettingsError(Exception):
    """config.toml cannot be used; ``problems`` holds one user-facing line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/multipar-console/config.toml`` (``~/.config`` when unset)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / APP_NAME / CONFIG_NAME


def known_themes() -> list[str]:
    return sorted(BUILTIN_THEMES)


@dataclass
class Settings:
    """What config.toml says; ``path`` is where a changed theme is saved."""

    path: Path
    theme: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)

    def apply(self, app: Any) -> None:
        """Set the theme and the keymap on a mounted app (before the first frame counts)."""
        if self.keymap:
            app.set_keymap(dict(self.keymap))
        if self.theme and self.theme in app.available_themes:
            app.theme = self.theme

    def remember_theme(self, name: str) -> str | None:
        """Save ``name`` as the theme unless it already is; a one-line problem, or None."""
        if name == self.theme:
            return None
        try:
            save_theme(self.path, name)
        except (OSError, SettingsError) as exc:
            why = exc.problems[0] if isinstance(exc, SettingsError) else exc.strerror or exc
            return f"theme {name!r} not saved to {self.path}: {why}"
        self.theme = name
        return None


# -- bindings ---------------------------------------------------------------------------
def _per_key(bindings: Iterable[Any]) -> list[Binding]:
    return list(Binding.make_bindings(bindings))


def binding_scopes() -> list[Scope]:
    """("everywhere", the app's bindings) and, for every screen and widget class of the
    console that declares bindings, (its name, its own bindings plus the app's): the keys
    that are live together. Textual's own (ctrl+q, ctrl+c, ctrl+p) are in the app's."""
    from console.app import DETACH_BINDING, MultiparApp  # lazy: the app imports this module

    app_map = MultiparApp._merge_bindings()
    app_bindings = [b for bs in app_map.key_to_bindings.values() for b in bs]
    app_bindings += _per_key([DETACH_BINDING, Binding(MultiparApp.COMMAND_PALETTE_BINDING,
                                                      "command_palette", "command palette")])
    scopes: list[Scope] = [("every screen", app_bindings)]
    for package in ("console.screens", "console.widgets"):
        pkg = import_module(package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            module = import_module(f"{package}.{info.name}")
            for obj in vars(module).values():
                if (
                    isinstance(obj, type)
                    and obj.__module__ == module.__name__
                    and "BINDINGS" in vars(obj)
                    and hasattr(obj, "_merge_bindings")
                ):
                    own = [b for bs in obj._merge_bindings().key_to_bindings.values() for b in bs]
                    scopes.append((_scope_name(obj.__name__), own + app_bindings))
    return scopes


def _scope_name(cls_name: str) -> str:
    names = {"MainScreen": "the board", "PairDetailScreen": "the detail screen",
             "ReconcileScreen": "the reconciliation screen", "HelpScreen": "the help screen"}
    return names.get(cls_name, cls_name)


def binding_ids(scopes: list[Scope]) -> set[str]:
    return {b.id for _, bs in scopes for b in bs if b.id}


def _label(b: Binding) -> str:
    return b.id or f"{b.key} ({b.description or b.action})"


def _bad_key(key: str) -> bool:
    m = _KEY_RE.match(key)
    if m is None:
        return True
    base = m.group(1)
    return not (len(base) == 1 or base in _NAMED_KEYS or key_to_character(base) is not None)


def keymap_problems(name: str, keymap: dict[str, str], scopes: list[Scope]) -> list[str]:
    """One line per unknown id, bad key name, or key the keymap puts where another binding
    already answers on some screen."""
    ids = binding_ids(scopes)
    problems: list[str] = []
    good: dict[str, str] = {}
    for bid, keys in keymap.items():
        where = f"{name}: keymap.{json.dumps(bid)}"
        if bid not in ids:
            near = difflib.get_close_matches(bid, sorted(ids), n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            problems.append(
                f"{where}: unknown binding id ({hint}every id is in docs/keys.md, e.g. pair.flatten)"
            )
            continue
        bad = [k for k in keys.split(",") if _bad_key(k)]
        if bad or not keys:
            problems.append(
                f"{where}: {bad[0] if bad else keys!r} is not a key name (use names like "
                "x, X, ctrl+x, f5, escape, question_mark; several keys: \"x,ctrl+x\")"
            )
            continue
        good[bid] = keys
    seen: set[tuple[str, str]] = set()
    for scope, bindings in scopes:
        owners: dict[str, dict[str, Binding]] = {}
        defaults: dict[str, set[str]] = {}  # a key a binding has by default is no clash of ours
        for b in bindings:
            if b.id:
                defaults.setdefault(b.id, set()).add(b.key)
            keys = good[b.id].split(",") if b.id in good else [b.key]
            for k in keys:
                owners.setdefault(k, {})[_label(b)] = b
        for key, by_label in owners.items():
            if len(by_label) < 2:
                continue
            moved = sorted(
                lb
                for lb, b in by_label.items()
                if b.id in good and key in good[b.id].split(",") and key not in defaults[b.id]
            )
            for lb in moved:
                others = sorted(o for o in by_label if o != lb)
                if any((o, key) in seen for o in [lb, *others]):
                    continue  # said once per key, whichever of them moved
                seen.add((lb, key))
                also = f", or remap {others[0]} too" if by_label[others[0]].id else ""
                problems.append(
                    f"{name}: keymap.{json.dumps(lb)}: key {key!r} clashes with {', '.join(others)} "
                    f"on {scope} (pick another key{also})"
                )
    return problems


# -- the file ----------------------------------------------------------------------------
def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``pair.flatten = "x"`` unquoted is a nested table in TOML: read it as the dotted id."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def parse_settings(text: str, path: Path, scopes: list[Scope] | None = None) -> Settings:
    """Validate config.toml's text; ``SettingsError`` with one line per problem."""
    name = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"{name}: not valid TOML: {exc} (fix the syntax)"]) from None
    problems: list[str] = []
    for key in data:
        if key not in KNOWN_KEYS:
            problems.append(
                f"{name}: {key}: unknown key (known: {', '.join(KNOWN_KEYS)}; see "
                "docs/configuration.md, \"config.toml\")"
            )
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        problems.append(f'{name}: theme: expected a string, e.g. theme = "nord"')
        theme = None
    elif isinstance(theme, str) and theme not in BUILTIN_THEMES:
        near = difflib.get_close_matches(theme, known_themes(), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        problems.append(
            f"{name}: theme: unknown theme {theme!r} ({hint}known: {', '.join(known_themes())})"
        )
        theme = None
    raw = data.get("keymap", {})
    keymap: dict[str, str] = {}
    if not isinstance(raw, dict):
        problems.append(f'{name}: keymap: expected a table, e.g. [keymap] then "pair.flatten" = "x"')
    else:
        for bid, keys in _flatten(raw).items():
            if not isinstance(keys, str):
                problems.append(
                    f"{name}: keymap.{json.dumps(bid)}: expected a string of keys, e.g. \"x\" "
                    f"or \"x,ctrl+x\" (got {keys!r})"
                )
                continue
            keymap[bid] = _normalize_key_list(keys) if keys.strip() else ""
        if keymap:  # the bindings are looked up only when there is something to check
            problems += keymap_problems(name, keymap, scopes if scopes is not None else binding_scopes())
    if problems:
        raise SettingsError(problems)
    return Settings(path, theme, keymap)


def load_settings(path: Path | None = None, scopes: list[Scope] | None = None) -> Settings:
    """Read and validate config.toml; a missing file means the defaults."""
    p = Path(path) if path is not None else config_path()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return Settings(p)
    except OSError as exc:
        raise SettingsError(
            [f"{p}: cannot read: {exc.strerror or exc} (fix its permissions or remove it)"]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError([f"{p}: not UTF-8 text (byte {exc.start}) (save it as UTF-8)"]) from None
    return parse_settings(text, p, scopes)


_THEME_LINE = re.compile(r"^[ \t]*theme[ \t]*=.*$", re.MULTILINE)
_TABLE_LINE = re.compile(r"^[ \t]*\[", re.MULTILINE)


def with_theme(text: str, theme: str) -> str:
    """``text`` with its top-level ``theme = …`` line set to ``theme`` (added when absent);
    every other line, comments included, kept."""
    line = f"theme = {json.dumps(theme)}"
    table = _TABLE_LINE.search(text)
    top_end = table.start() if table else len(text)
    m = _THEME_LINE.search(text, 0, top_end)
    if m is not None:
        return text[: m.start()] + line + text[m.end() :]
    head, rest = text[:top_end], text[top_end:]
    if head and not head.endswith("\n"):
        head += "\n"
    return head + line + "\n" + ("\n" if rest else "") + rest


def save_theme(path: Path, theme: str) -> None:
    """Write ``theme`` into config.toml (created with its directory when missing), atomically."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "# multipar-console settings: docs/configuration.md, \"config.toml\"\n"
    new = with_theme(text, theme)
    try:
        if tomllib.loads(new).get("theme") != theme:
            raise ValueError("the theme line did not take")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise SettingsError([f"{path}: cannot set the theme in it ({exc}): edit it by hand"]) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
