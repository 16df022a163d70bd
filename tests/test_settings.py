"""config.toml: the theme and the keymap the console starts with, validated before anything
starts, the theme saved when the operator changes it; and the help screen's legend.

Every test writes its config.toml under pytest's tmp_path ($XDG_CONFIG_HOME points there);
the conftest's session fixture already keeps the developer's own out of every test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from console.cli import main
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.screens.legend import LEGEND
from console.screens.main import MainScreen
from console.settings import (
    Settings,
    SettingsError,
    binding_scopes,
    config_path,
    load_settings,
    save_theme,
    with_theme,
)
from tests.console_fakes import FakeBackend, FrozenClock, make_safe_list, screen_text

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
HELP_SNAPSHOT = ROOT / "tests/__snapshots__/test_console_snapshots/TestHelp.test_help_160x48.svg"
WIDE = (160, 48)


@pytest.fixture
def cfg_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$XDG_CONFIG_HOME/multipar-console/config.toml under tmp_path (not written yet)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "multipar-console" / "config.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    return err.value.problems


# ------------------------------------------------------------------------- the file


def test_the_path_follows_xdg_config_home_else_dot_config() -> None:
    assert config_path({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/u"}) == Path(
        "/x/cfg/multipar-console/config.toml"
    )
    assert config_path({"HOME": "/home/u"}) == Path("/home/u/.config/multipar-console/config.toml")


def test_no_file_means_the_defaults(cfg_file: Path) -> None:
    s = load_settings()
    assert s.path == cfg_file and s.theme is None and s.keymap == {}
    assert not cfg_file.exists()


def test_theme_and_keymap_quoted_or_dotted_ids(cfg_file: Path) -> None:
    write(
        cfg_file,
        '# mine\ntheme = "nord"\n\n[keymap]\n"pair.flatten" = "x"\nhelp = "?, f1"\n'
        'portfolio.rearm = "ctrl+r"\n',
    )
    s = load_settings()
    assert s.theme == "nord"
    # "?" is stored as Textual names it; the dotted key (a nested table in TOML) is the id
    assert s.keymap == {"pair.flatten": "x", "help": "question_mark,f1", "portfolio.rearm": "ctrl+r"}


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('theme = "nord"\n[keymap\n', ["not valid TOML", "line 2", "fix the syntax"]),
        ('them = "nord"\n', ["them: unknown key", "known: theme, keymap"]),
        ('theme = "nrod"\n', ["theme: unknown theme 'nrod'", "did you mean 'nord'", "textual-dark"]),
        ("theme = 3\n", ["theme: expected a string"]),
        ("keymap = 3\n", ["keymap: expected a table"]),
        ('[keymap]\n"pair.flaten" = "x"\n', ['keymap."pair.flaten": unknown binding id',
                                             "did you mean 'pair.flatten'", "docs/keys.md"]),
        ('[keymap]\n"pair.flatten" = 5\n', ['keymap."pair.flatten": expected a string of keys']),
        ('[keymap]\n"pair.flatten" = "Ctrl+X"\n', ["'Ctrl+X' is not a key name", "ctrl+x"]),
        ('[keymap]\n"pair.flatten" = ""\n', ["'' is not a key name"]),
        # app-wide: p is the pause key on every screen
        ('[keymap]\n"help" = "p"\n', ['keymap."help": key \'p\' clashes with pair.pause on every '
                                      "screen", "remap pair.pause too"]),
        # Textual's own keys cannot be remapped away: no "remap … too" for them
        ('[keymap]\n"help" = "ctrl+p"\n', ["clashes with ctrl+p (command palette)"]),
        # one screen only: a on the reconciliation screen is adopt
        ('[keymap]\n"pair.pause" = "a"\n', ["key 'a' clashes with reconcile.adopt on the "
                                           "reconciliation screen"]),
        # two ids moved onto one key: said once
        ('[keymap]\n"pair.flatten" = "x"\n"pair.pause" = "x"\n', ["key 'x' clashes with"]),
    ],
)  # fmt: skip
def test_each_problem_is_one_line_naming_the_file_and_the_key(
    cfg_file: Path, text: str, needles: list[str]
) -> None:
    write(cfg_file, text)
    problems = problems_of(cfg_file)
    assert len(problems) == 1, problems
    line = problems[0]
    assert "\n" not in line and line.startswith(f"{cfg_file}: "), line
    for needle in needles:
        assert needle in line, (needle, line)


def test_a_swap_and_a_key_a_binding_already_has_are_no_clash(cfg_file: Path) -> None:
    write(cfg_file, '[keymap]\n"pair.flatten" = "p"\n"pair.pause" = "x"\nhelp = "question_mark"\n')
    assert load_settings().keymap == {"pair.flatten": "p", "pair.pause": "x", "help": "question_mark"}
    # the reconciliation screen's own f shadows the app's f by design: keeping f is no clash
    write(cfg_file, '[keymap]\n"pair.flatten" = "f,x"\n')
    assert load_settings().keymap == {"pair.flatten": "f,x"}


def test_every_problem_is_reported_not_only_the_first(cfg_file: Path) -> None:
    write(cfg_file, 'theme = "nope"\ncolour = 1\n[keymap]\n"nope.id" = "x"\n')
    problems = problems_of(cfg_file)
    assert [p.split(": ")[1] for p in problems] == ["colour", "theme", 'keymap."nope.id"']


def test_every_binding_the_docs_list_is_known_by_id() -> None:
    """docs/keys.md's binding ids are the ones a keymap may use (and nothing else is checked)."""
    ids = {b.id for _, bs in binding_scopes() for b in bs if b.id}
    documented: set[str] = set()
    for line in (ROOT / "docs/keys.md").read_text(encoding="utf-8").splitlines():
        cells = line.strip().strip("|").split("|")
        if line.startswith("|") and len(cells) >= 3:  # | key | binding id | does |
            documented.update(re.findall(r"`([a-z_.]+)`", cells[1]))
    assert {"kill", "pair.flatten", "help", "theme", "reconcile.adopt", "detail.back"} <= ids
    assert documented - ids == set(), "documented ids the console does not have"


def test_saving_the_theme_creates_the_file_and_keeps_everything_else(cfg_file: Path) -> None:
    save_theme(cfg_file, "dracula")
    assert load_settings().theme == "dracula"
    write(cfg_file, '# my settings\n[keymap]\n"pair.flatten" = "x"  # x flattens\n')
    save_theme(cfg_file, "nord")
    text = cfg_file.read_text()
    assert text.startswith("# my settings\ntheme = \"nord\"\n") and "# x flattens" in text
    s = load_settings()
    assert (s.theme, s.keymap) == ("nord", {"pair.flatten": "x"})
    save_theme(cfg_file, "gruvbox")  # the line is replaced, not added again
    assert cfg_file.read_text().count("theme =") == 1 and load_settings().theme == "gruvbox"
    assert not list(cfg_file.parent.glob(".*.tmp"))


def test_with_theme_never_puts_the_line_inside_a_table() -> None:
    text = '[keymap]\ntheme = "x"\n'  # a binding id called theme, inside the table
    out = with_theme(text, "nord")
    assert out.startswith('theme = "nord"\n') and out.endswith('[keymap]\ntheme = "x"\n')


def test_an_unwritable_place_is_one_line_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    s = Settings(blocker / "multipar-console" / "config.toml")
    problem = s.remember_theme("nord")
    assert problem is not None and "not saved" in problem and "\n" not in problem
    assert s.theme is None


# ------------------------------------------------------------------------- in the app


def build(settings: Settings | None, backend: FakeBackend) -> MultiparApp:
    app = make_app(backend, make_safe_list(), clock=FrozenClock(), settings=settings)
    app.animation_level = "none"
    return app


async def wait_for(pilot: Pilot[None], cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


async def test_the_keymap_moves_a_key_by_binding_id(cfg_file: Path) -> None:
    write(cfg_file, '[keymap]\n"pair.flatten" = "x"\n"help" = "f1"\n')
    backend = FakeBackend()
    app = build(load_settings(), backend)
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, backend.started.is_set, "the board")
        app.repaint_now()
        await pilot.press("f")  # no longer flatten
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen) and app.screen.kind == "flatten"
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog to close")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        rows = screen_text(app).splitlines()
        assert any("Flatten the selected pair" in r and "│ x " in r for r in rows)  # help follows
        assert backend.commands == []


async def test_the_theme_is_kept_across_two_runs(cfg_file: Path) -> None:
    backend = FakeBackend()
    app = build(load_settings(), backend)
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, backend.started.is_set, "the board")
        assert app.theme == "textual-dark"
        await pilot.press("t")  # the theme picker, as the palette's "Theme" opens it
        await pilot.pause(0.2)
        await pilot.press(*"nord", "enter")
        await wait_for(pilot, lambda: app.theme == "nord", "the theme to change")
        await wait_for(pilot, cfg_file.exists, "config.toml to be written")
    assert load_settings().theme == "nord"

    second = FakeBackend()
    app2 = build(load_settings(), second)
    async with app2.run_test(size=WIDE) as pilot:
        await wait_for(pilot, second.started.is_set, "the board")
        assert app2.theme == "nord"
        assert app2.palette.up.color is not None  # the palette follows the loaded theme
        app2.theme = "gruvbox"
        await wait_for(pilot, lambda: load_settings().theme == "gruvbox", "the new theme saved")


async def test_without_settings_nothing_is_written(cfg_file: Path) -> None:
    backend = FakeBackend()
    app = build(None, backend)
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, backend.started.is_set, "the board")
        app.theme = "nord"
        await pilot.pause(0.2)
    assert not cfg_file.exists()


# ------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("argv", [["--demo"], ["attach"]])
def test_a_bad_config_toml_stops_the_console_before_anything_starts(
    cfg_file: Path, tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    write(cfg_file, '[keymap]\n"pair.flaten" = "x"\n')
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--run-dir", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"{cfg_file}: keymap.\"pair.flaten\""), err
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()


# ------------------------------------------------------------------------- the legend


async def test_the_help_screen_shows_every_legend_term() -> None:
    backend = FakeBackend()
    app = build(None, backend)
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, backend.started.is_set, "the board")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        legend = app.screen.query_one("#help-legend")
        assert legend.region.x > app.screen.query_one("#help-keys").region.x  # beside the keys
        text = screen_text(app)
        for term, _ in LEGEND:
            assert term in text, term


def test_the_legend_names_what_the_issue_asks_for() -> None:
    terms = " ".join(t for t, _ in LEGEND).split()
    for needed in ["RSI", "BB", "ATR", "ρ", "age", "ACTIVE", "PAUSED", "REDUCING", "HALTED",
                   "STALE", "MA", "PnL", "uPnL"]:  # fmt: skip
        assert needed in terms, needed


def test_the_help_snapshot_shows_the_legend() -> None:
    svg = HELP_SNAPSHOT.read_text(encoding="utf-8").replace("&#160;", " ")
    assert "On the screens" in svg
    for term in ["REDUCING", "HALTED", "STALE", "RSI", "ATR", "ρ", "uPnL", "Correlated Corr"]:
        assert term in svg, term
