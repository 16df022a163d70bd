"""The log file viewer (``L`` on the board): the daemon's, feed's, engine's and console's logs.

Owns ``LogViewerScreen`` and its body ``FileLog``, a ``LogView`` over a ``LogTail``: the last
``MAX_LINES`` lines of the file, then what is appended, polled ``POLL_HZ`` times a second
while the screen is open (rotation and truncation survived, see ``console/logtail.py``). The
same keys as the board's logs (up/down, pgup/pgdn, home/end, ``/`` with ``n``/``N``, ``c``);
``tab`` / ``shift+tab`` switch file; under the log the selected line is shown whole, wrapped;
``escape`` returns to the board. The status header stays on top, so a halt is never missed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.logfiles import ConsoleFiles
from console.logtail import MARK, MAX_LINES, LogTail
from console.model import DIRTY_HEADER, ConsoleModel
from console.widgets.header import StatusHeader
from console.widgets.logview import LogView
from console.widgets.palette import Palette

POLL_HZ = 4.0
_LEVEL = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) (\w+) ")


class FileLog(LogView):
    """One log file's tail, following it."""

    def empty_text(self) -> str:
        if self.tail is not None and self.tail.error:
            return "waiting for the file to appear (checked 4 times a second)"
        return "the file is empty" if self.tail is not None else "no log file to show"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tail: LogTail | None = None
        self.name_shown = ""
        self.on_selected: Callable[[], None] | None = None

    def log_rows(self) -> Sequence[str]:
        return self.tail.lines if self.tail is not None else ()

    def row_plain(self, row: str) -> str:
        return row

    def row_text(self, row: str, palette: Palette) -> Text:
        if row.startswith(MARK):
            return Text(row, palette.accent)
        m = _LEVEL.match(row)
        if m is None:  # a traceback's line, or a line not of our format
            return Text(row, palette.text)
        level = m.group(2)
        style = {
            "ERROR": palette.error,
            "CRITICAL": palette.error,
            "WARNING": palette.warn,
        }.get(level, palette.muted)
        line = Text(no_wrap=True)
        line.append(m.group(1) + " ", palette.muted)
        line.append(level, style + Style(bold=True))
        line.append(row[m.end() - 1 :], palette.warn if level == "WARNING" else palette.text)
        return line

    def log_title(self, rows: Sequence[str], palette: Palette) -> Text:
        title = Text(self.name_shown or "log", palette.accent)
        tail = self.tail
        if tail is None:
            return title
        if tail.error:
            title.append(f"  cannot read: {tail.error}", palette.warn)
        kept = len(tail.lines)
        title.append(f"  {kept} line" + "s" * (kept != 1), palette.muted)
        if tail.total > kept:
            title.append(f" (the newest {kept} of {tail.total} read)", palette.muted)
        return title

    def post_selected(self, row: Any) -> None:
        if self.on_selected is not None:
            self.on_selected()


class LogViewerScreen(Screen[None]):
    """The daemon's directory's log files, one at a time, followed live."""

    DEFAULT_CSS = """
    LogViewerScreen #logs-files {
        height: 2;
        padding: 0 1;
        background: $surface;
    }
    LogViewerScreen #logs-body {
        height: 1fr;
        padding: 0 1;
    }
    LogViewerScreen #logs-selected {
        height: 4;
        padding: 0 1;
        border-top: solid $primary 40%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "switch(1)", "Next file", id="logs.next_file", tooltip="The next log file"),
        Binding(
            "shift+tab",
            "switch(-1)",
            "Prev file",
            show=False,
            id="logs.previous_file",
            tooltip="The previous log file",
        ),
        Binding("escape", "back", "Back", id="logs.back", tooltip="Back to the board"),
        Binding("L", "back", "Back", show=False, id="logs.close", tooltip="Back to the board"),
        # its log's / before the log has the keys (L/ in one packet): console/log_actions.py
        Binding("slash", "app.search_log", "Search", show=False, priority=True, id="log.search"),
    ]

    def __init__(
        self,
        model: ConsoleModel,
        mode: str,
        wall: Callable[[], float],
        files: ConsoleFiles | None,
        start: str | None = None,
        max_lines: int = MAX_LINES,
    ) -> None:
        super().__init__(id="log-viewer")
        self.files = files
        self.names = [n for n, _ in files.logs] if files is not None else []
        self.current = self.names.index(start) if start in self.names else 0
        self.max_lines = max_lines
        self.header = StatusHeader(model, mode, wall, id="logs-header")
        self.tabs = Static(id="logs-files")
        self.body = FileLog(id="logs-body")
        self.body.on_selected = self._show_selected
        self.selected = Static(id="logs-selected")

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.tabs
        yield self.body
        yield self.selected
        yield Footer()

    def on_mount(self) -> None:
        self._open(self.current)
        self.body.enter()
        self.set_interval(1.0 / POLL_HZ, self.poll, name="log-tail")

    def on_unmount(self) -> None:
        if self.body.tail is not None:
            self.body.tail.close()

    # ------------------------------------------------------------------ files

    @property
    def current_name(self) -> str | None:
        return self.names[self.current] if self.names else None

    def _open(self, index: int) -> None:
        if self.body.tail is not None:
            self.body.tail.close()
        self.body.tail = None
        if self.files is None or not self.names:
            self.body.name_shown = "no log file known to this console"
            self._show_tabs()
            return
        self.current = index % len(self.names)
        path = self.files.logs[self.current][1]
        self.body.tail = LogTail(path, self.max_lines)
        self.body.name_shown = path.name
        self.body.follow()
        self.body.tail.poll()
        self._show_tabs()
        self.body.refresh()
        self._show_selected()

    def poll(self) -> None:
        tail = self.body.tail
        if tail is None:
            return
        error = tail.error
        if tail.poll() or tail.error != error:
            self.body.refresh()
            if self.body.following:
                self._show_selected()

    def action_switch(self, step: int) -> None:
        if self.names:
            self._open(self.current + step)
            app = self.app
            if hasattr(app, "last_log_file"):
                app.last_log_file = self.current_name

    def action_back(self) -> None:
        self.dismiss(None)

    # ------------------------------------------------------------------ drawing

    def _show_tabs(self) -> None:
        """The files (the shown one marked) and, below, the shown one's path."""
        pal = self.body.palette
        names = Text("Logs ", pal.accent, no_wrap=True, overflow="ellipsis")
        for i, name in enumerate(self.names):
            names.append(f" {name} ", pal.badge_demo if i == self.current else pal.muted)
        if len(self.names) > 1:
            names.append("  tab: next file", pal.muted)
        path = Text(no_wrap=True, overflow="ellipsis")
        if self.files is not None and self.names:
            path.append(str(self.files.logs[self.current][1]), pal.text)
        if self.files is not None and self.files.note:
            path.append(f"  ({self.files.note})", pal.muted)
        self.tabs.update(Text("\n").join([names, path]))

    def _show_selected(self) -> None:
        rows = self.body.log_rows()
        if not rows:
            self.selected.update("")
            return
        row = rows[self.body.cursor_index(rows)]
        self.selected.update(Text(row, self.body.palette.text))

    def repaint(self, dirty: set[str], charts: set[str] | None) -> None:
        if DIRTY_HEADER in dirty:
            self.header.refresh()
