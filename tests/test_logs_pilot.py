"""The logs an operator uses, driven by Textual's Pilot: the board's decision and event logs
scroll (keys and mouse), search (``/``, ``n``/``N``) and copy a line (clipboard and a file the
notification names); the log file viewer (``L``) follows a file this test writes, through
appends, rotation and truncation, with the same keys; help names the log files; every key is in
docs/keys.md. The backend is the FakeBackend, the clock is frozen, every file is under tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot

from console.app import MultiparApp, make_app
from console.logfiles import ConsoleFiles
from console.screens.logviewer import FileLog, LogViewerScreen
from console.screens.search import SearchPrompt
from console.widgets.logs import DecisionLog, EventLog
from tests.console_fakes import (
    FROZEN_MS,
    SMALL,
    WIDE,
    FakeBackend,
    FrozenClock,
    decision_msg,
    make_safe_list,
    screen_text,
)

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
SYMS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def build(backend: FakeBackend, files: ConsoleFiles | None = None) -> MultiparApp:
    app = make_app(backend, make_safe_list(), clock=FrozenClock())
    app.animation_level = "none"
    app.files = files
    return app


async def wait_for(pilot: Pilot[None], cond: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.02)


async def board(pilot: Pilot[None], backend: FakeBackend, n: int = 60) -> MultiparApp:
    """The reference board plus ``n`` decisions, numbered by price (36000 + i)."""
    app = pilot.app
    assert isinstance(app, MultiparApp)
    await wait_for(pilot, backend.started.is_set, "backend.start")
    for i in range(n):
        app.model.apply_decision(
            decision_msg(SYMS[i % 3], approved=i % 2 == 0, ts_ms=FROZEN_MS + i * 1000, price=36_000 + i)
        )
    app.repaint_now()
    await pilot.pause()
    return app


def notes(app: MultiparApp) -> list[str]:
    return [n.message for n in app._notifications]


def log_title(log: DecisionLog | EventLog | FileLog) -> str:
    return log.render().plain.splitlines()[0]


# ---------------------------------------------------------------------- scrolling


async def test_focused_decision_log_scrolls_with_the_keys() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        log = app.main.decision_log
        rows = app.model.decisions
        assert not log.has_focus and log.following and "row" not in log_title(log)
        await pilot.press("d")
        assert log.has_focus and log.selected_row() is rows[-1]
        await pilot.press("up", "up", "k")
        assert log.selected_row() is rows[-4] and not log.following
        assert f"row {len(rows) - 3}/{len(rows)}, 3 newer below" in log_title(log)
        await pilot.press("pageup")
        page = log.body_height - 1
        assert log.selected_row() is rows[-4 - page]
        await pilot.press("home")
        assert log.selected_row() is rows[0] and "36,000.00" in log.render().plain
        await pilot.press("pagedown", "j")
        assert log.selected_row() is rows[page + 1]
        await pilot.press("end")
        assert log.following and log.selected_row() is rows[-1]
        assert "row" not in log_title(log)
        await pilot.press("up", "down")  # down onto the newest row: following again
        assert log.following


async def test_a_held_log_keeps_its_row_while_new_rows_arrive_and_old_ones_drop() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend, n=498)  # the deque holds 500: three of the board's + these
        log = app.main.decision_log
        await pilot.press("d", "up", "up")
        held = log.selected_row()
        for i in range(10):  # ten new decisions; ten of the oldest fall off the deque
            app.model.apply_decision(decision_msg("BTC/USDT", approved=True, price=40_000 + i))
        app.repaint_now()
        await pilot.pause()
        assert log.selected_row() is held and not log.following
        assert "12 newer below" in log_title(log)
        assert "40,009.00" not in log.render().plain  # the view held still


async def test_mouse_wheel_scrolls_and_a_click_selects_a_row() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        log = app.main.decision_log
        first_shown = log.render().plain.splitlines()[1]
        log.post_message(events.MouseScrollUp(log, 5, 2, 0, -1, 0, False, False, False))
        await pilot.pause()
        assert not log.following and log.render().plain.splitlines()[1] != first_shown
        assert "newer below" in log_title(log)
        for _ in range(5):
            log.post_message(events.MouseScrollDown(log, 5, 2, 0, 1, 0, False, False, False))
        await pilot.pause()
        assert log.following  # back at the bottom: following again
        await pilot.click("#decision-log", offset=(10, 2))  # the second row shown
        rows = app.model.decisions
        first, _ = log.window(rows)
        assert log.has_focus and log.selected_row() is rows[first + 1]


async def test_escape_leaves_the_log_and_the_board_keys_work_again() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        log = app.main.decision_log
        await pilot.press("d", "up")
        assert app.selected_symbol == "BTC/USDT"  # up moved in the log, not the board
        await pilot.press("escape")
        assert not log.has_focus and log.following and not log.can_focus
        await pilot.press("right")
        assert app.selected_symbol == "ETH/USDT"  # the board's selection moved


# ---------------------------------------------------------------------- search


async def test_search_highlights_matches_and_n_N_walk_them() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        log = app.main.decision_log
        rows = list(app.model.decisions)
        await pilot.press("slash")  # from the board: the decision log's search
        assert isinstance(app.screen, SearchPrompt) and log.has_focus
        await pilot.press(*"sol")
        sol = [i for i, d in enumerate(rows) if "sol" in log.row_plain(d).lower()]
        assert len(sol) >= 4
        assert log.selected_row() is rows[sol[-1]]  # the newest match, as typed
        await pilot.press("enter")
        assert not isinstance(app.screen, SearchPrompt)
        assert f"/sol {len(sol)}/{len(sol)}" in log_title(log)
        # every occurrence on screen is highlighted with the match style
        hit = app.palette.badge_paused
        text = log.render()
        spans = [text.plain[s.start : s.end] for s in text.spans if s.style == hit]
        assert spans and all(s.lower() == "sol" for s in spans)
        await pilot.press("N", "N")
        assert log.selected_row() is rows[sol[-3]]
        await pilot.press("n")
        assert log.selected_row() is rows[sol[-2]]
        await pilot.press("n", "n")  # past the newest: wraps to the oldest, and says so
        assert log.selected_row() is rows[sol[0]]
        assert any("wrapped" in m for m in notes(app))
        await pilot.press("escape")  # clears the search, stays in the log
        assert log.query_text == "" and log.has_focus


async def test_escape_in_the_prompt_puts_the_log_back_and_no_match_says_so() -> None:
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        log = app.main.event_log
        app.model.add_event("engine running (pid 4102)")
        await pilot.press("e", "up")
        held = log.selected_row()
        await pilot.press("slash", *"pid")
        assert log.query_text == "pid"
        await pilot.press("escape")
        assert log.query_text == "" and log.selected_row() is held
        await pilot.press("slash", *"zzz", "enter")
        assert any("no match for 'zzz'" in m for m in notes(app))
        await pilot.press("n")
        assert any(m == "no match for 'zzz'" for m in notes(app))


def burst(app: MultiparApp, *keys: str) -> None:
    """Keys arriving together (one SSH packet, a paste): posted at once, each routed by the app
    when it arrives, as the terminal driver does; pilot.press would wait between them."""
    for key in keys:
        char = {"slash": "/", "enter": "\r"}.get(key, key if len(key) == 1 else None)
        app.post_message(events.Key(key, char))


async def test_keys_typed_right_after_slash_are_the_searchs_never_the_boards() -> None:
    """``/fy`` in one packet: without care ``f`` reaches the board (flatten confirm) and ``y``
    confirms it before the prompt exists. Then ``N`` and ``c`` typed right after Enter go to
    the log, not into the closing prompt."""
    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        log = app.main.event_log
        app.model.add_event("pid 1 first")
        app.model.add_event("pid 2 second")
        burst(app, "e", "slash", "p", "i", "d", "enter", "N", "c")
        await wait_for(pilot, lambda: app.clipboard, "the copy")
        assert log.query_text == "pid" and log.selected_row() is app.model.events[-2]
        assert app.clipboard.endswith("pid 1 first")
        await pilot.press("escape")  # clears the search
        burst(app, "slash", "f", "y", "enter")
        await pilot.pause(0.3)
        assert backend.commands == [] and not isinstance(app.screen, SearchPrompt)
        assert log.query_text == "fy"  # the search got them, no flatten was confirmed


# ---------------------------------------------------------------------- copy


async def test_c_copies_the_selected_line_to_the_clipboard_and_a_named_file(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = build(backend, ConsoleFiles.of_daemon_dir(tmp_path))
    async with app.run_test(size=SMALL) as pilot:
        await board(pilot, backend)
        log = app.main.decision_log
        await pilot.press("d", "up", "c")
        row = app.model.decisions[-2]
        want = log.row_plain(row)
        assert "36,058.00" in want and want.startswith("22:14:18")  # the whole row
        assert app.clipboard == want
        copied = tmp_path / "copied.txt"
        assert copied.read_text() == want + "\n"
        assert stat.S_IMODE(copied.stat().st_mode) == 0o600
        assert any(str(copied) in m and "OSC 52" in m for m in notes(app))
        assert app.copied_to_file


async def test_a_copy_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    (tmp_path / "dir").write_text("a file where a directory should be")
    backend = FakeBackend()
    app = build(backend, ConsoleFiles.of_daemon_dir(tmp_path / "dir"))
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend)
        app.model.add_event("engine running (pid 4102)")
        await pilot.press("e", "c")
        assert app.clipboard == app.main.event_log.row_plain(app.model.events[-1])
        assert any("clipboard (OSC 52) only: cannot write" in m for m in notes(app))
        assert not app.copied_to_file


# ---------------------------------------------------------------------- the log file viewer


def log_line(i: int, level: str = "INFO") -> str:
    return f"2023-11-14 22:13:{i % 60:02d},{i % 1000:03d} {level} engine.node: line {i}\n"


async def test_viewer_follows_a_file_through_appends_rotation_and_truncation(tmp_path: Path) -> None:
    engine = tmp_path / "engine.log"
    engine.write_text("".join(log_line(i) for i in range(200)))
    (tmp_path / "daemon.log").write_text(log_line(1, "WARNING"))
    backend = FakeBackend()
    app = build(backend, ConsoleFiles.of_daemon_dir(tmp_path))
    app.last_log_file = "engine"
    async with app.run_test(size=SMALL) as pilot:
        await board(pilot, backend, n=0)
        await pilot.press("L")
        screen = app.screen
        assert isinstance(screen, LogViewerScreen) and screen.current_name == "engine"
        body = screen.body
        assert body.has_focus and "line 199" in screen_text(app)
        with engine.open("a") as f:  # appended while open
            f.write(log_line(200, "ERROR"))
        await wait_for(pilot, lambda: "line 200" in screen_text(app), "the appended line")
        engine.rename(tmp_path / "engine.log.1")  # rotation: a new file under the name
        with (tmp_path / "engine.log.1").open("a") as f:
            f.write(log_line(201))  # written to the old file before the rotation
        engine.write_text(log_line(300))
        await wait_for(pilot, lambda: "line 300" in screen_text(app), "the rotated file's line")
        text = screen_text(app)
        assert "line 201" in text and "was replaced (rotated)" in text
        engine.write_text("")  # truncated in place
        with engine.open("a") as f:
            f.write(log_line(400))
        await wait_for(pilot, lambda: "line 400" in screen_text(app), "the line after truncation")
        assert "was truncated" in screen_text(app)
        await pilot.press("tab")
        assert screen.current_name == "console" and "waiting for the file" in screen_text(app)
        await pilot.press("shift+tab", "shift+tab", "shift+tab")
        assert screen.current_name == "daemon" and "line 1" in screen_text(app)
        await pilot.press("escape")
        assert app.screen is app.main


async def test_viewer_search_and_copy(tmp_path: Path) -> None:
    (tmp_path / "feed.log").write_text(
        "".join(log_line(i, "WARNING" if i % 10 == 0 else "INFO") for i in range(100))
    )
    backend = FakeBackend()
    app = build(backend, ConsoleFiles.of_daemon_dir(tmp_path))
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend, n=0)
        await pilot.press("L", "tab")  # daemon (missing) -> feed
        screen = app.screen
        assert isinstance(screen, LogViewerScreen) and screen.current_name == "feed"
        await pilot.press("slash", *"warning", "enter")
        body = screen.body
        assert body.selected_row() == log_line(90, "WARNING").rstrip("\n")
        assert "/warning 10/10" in log_title(body)
        await pilot.press("N", "c")
        want = log_line(80, "WARNING").rstrip("\n")
        assert app.clipboard == want and (tmp_path / "copied.txt").read_text() == want + "\n"
        assert want in screen_text(app)  # the selected line, whole, under the log


async def test_viewer_opened_and_searched_in_one_burst(tmp_path: Path) -> None:
    (tmp_path / "daemon.log").write_text(log_line(1) + log_line(2, "WARNING") + log_line(3))
    backend = FakeBackend()
    app = build(backend, ConsoleFiles.of_daemon_dir(tmp_path))
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend, n=0)
        burst(app, "L", "slash", *"warn", "enter", "c")
        await wait_for(pilot, lambda: app.clipboard, "the copy")
        assert app.clipboard == log_line(2, "WARNING").rstrip("\n") and backend.commands == []


async def test_viewer_without_log_files_says_so() -> None:
    backend = FakeBackend()
    app = build(backend, None)
    async with app.run_test(size=SMALL) as pilot:
        await board(pilot, backend, n=0)
        await pilot.press("L")
        assert "no log file known to this console" in screen_text(app)
        await pilot.press("L")  # L again closes it
        assert app.screen is app.main


# ---------------------------------------------------------------------- help, exit, docs


async def test_help_names_every_log_file() -> None:
    home = Path("/run/user/1000/multipar-console/book-0123456789abcdef")  # never created
    backend = FakeBackend()
    app = build(backend, ConsoleFiles.of_daemon_dir(home))
    async with app.run_test(size=(200, 120)) as pilot:
        await board(pilot, backend, n=0)
        await pilot.press("question_mark")
        text = screen_text(app)
        for name in ("daemon", "feed", "engine", "console"):
            assert str(home / f"{name}.log") in text
        assert str(home / "copied.txt") in text


async def test_help_from_a_log_lists_the_log_keys() -> None:
    from console.screens.help import HelpScreen, key_rows

    backend = FakeBackend()
    app = build(backend)
    async with app.run_test(size=WIDE) as pilot:
        await board(pilot, backend, n=3)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = key_rows(app, app.screen.sources)
        assert {r[3] for r in rows} >= {"log.decisions", "log.events", "logs.open"}
        assert "log.copy" not in {r[3] for r in rows}  # the board says them in short
        await pilot.press("escape", "d", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = {r[3] for r in key_rows(app, app.screen.sources) if r[0] == "log"}
        assert {"log.copy", "log.search", "log.next", "log.open", "log.leave"} <= ids


def test_exit_lines_name_one_file_per_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from console.logfiles import print_exit_lines

    files = ConsoleFiles.of_daemon_dir(tmp_path)
    print_exit_lines(files, "multipar-console", copied=True)
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in out] == [
        *(str(tmp_path / f"{n}.log") for n in ("daemon", "feed", "engine", "console")),
        str(tmp_path / "copied.txt"),
    ]
    assert out[0].startswith("multipar-console: daemon log:")
    remote = ConsoleFiles.for_console(tmp_path / "remote-console.log", "tcp://vps:7100")
    lines = remote.exit_lines("multipar-console")
    assert len(lines) == 2 and "daemon's host (tcp://vps:7100)" in lines[-1]


def test_exit_lines_on_a_terminal_that_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGHUP: stdout's terminal is gone; printing the paths must not raise."""
    from console.logfiles import print_exit_lines

    r, w = os.pipe()
    os.close(r)  # a write to w now fails with EPIPE
    broken = os.fdopen(w, "w")
    monkeypatch.setattr("sys.stdout", broken)
    print_exit_lines(ConsoleFiles.of_daemon_dir(tmp_path), "multipar-console", copied=False)
    monkeypatch.undo()
    with contextlib.suppress(OSError):
        broken.close()


def test_docs_keys_md_names_every_log_binding() -> None:
    from textual.binding import Binding

    from console.widgets.logs import BOARD_LOG_BINDINGS, DETAIL_LOG_BINDINGS
    from console.widgets.logview import LogView

    doc = (REPO / "docs" / "keys.md").read_text()
    bindings = [
        *LogView.BINDINGS, *DecisionLog.BINDINGS, *LogViewerScreen.BINDINGS,
        *SearchPrompt.BINDINGS, *BOARD_LOG_BINDINGS, *DETAIL_LOG_BINDINGS,
    ]  # fmt: skip
    for b in bindings:
        assert isinstance(b, Binding)
        assert b.id and f"`{b.id}`" in doc, f"docs/keys.md lacks binding id {b.id}"
        for key in b.key.split(","):
            assert f"`{key}`" in doc, f"docs/keys.md lacks key {key} ({b.id})"
