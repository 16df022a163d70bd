"""The app's part in the logs: entering a log, searching it, copying a line, the file viewer.

Owns ``LogActions``, a base of ``OperatorActions``. ``d`` / ``e`` (board; ``d`` on the detail
screen) give the keys to the decision / event log, ``/`` searches the decision log, ``L`` opens
the log file viewer (``console/screens/logviewer.py``) on the file last shown. ``copy_line``
is what ``c`` in any log calls: the line goes to the clipboard through Textual's
``copy_to_clipboard`` (OSC 52: through SSH, in terminals that allow it) and, because tmux or
SSH may drop OSC 52, to ``copied.txt`` in the daemon's directory, which the notification names.

``files`` (``console.logfiles.ConsoleFiles``) is set by the CLI once it knows the daemon's
directory; without it (tests, a bare ``make_app``) a copy goes to the clipboard only.

These keys (and a log's own ``/``) are *priority* bindings (console/widgets/logs.py): Textual
routes a key to the focused widget when it arrives and runs an ordinary binding only when that
widget gets to it, so ``/fy`` arriving in one SSH packet would send ``f`` and ``y`` to the board
(a flatten, confirmed) before the prompt exists. A priority binding runs on arrival: the log is
entered, or the prompt pushed, before the next key is routed. Out of place (typing in an input)
the actions step aside (``SkipAction``) and the key goes on as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.actions import SkipAction
from textual.app import App
from textual.widgets import Input

from console.logfiles import ConsoleFiles, write_copied
from console.model import Backend, ConsoleModel
from console.screens.detail import PairDetailScreen
from console.screens.logviewer import LogViewerScreen
from console.screens.main import MainScreen
from console.screens.search import SearchPrompt
from console.widgets.logs import DecisionLog, EventLog
from console.widgets.logview import LogView

PREVIEW_CHARS = 60


class LogActions(App[None]):
    # set by MultiparApp.__init__
    model: ConsoleModel
    backend: Backend
    wall: Callable[[], float]

    files: ConsoleFiles | None = None  # the CLI's: the daemon's directory's files
    last_log_file: str | None = None  # the viewer opens on the file it showed last
    copied_to_file = False  # a line went to files.copied: the exit lines name it

    def _log_on_screen(self, which: str) -> LogView | None:
        kind: type[LogView] = DecisionLog if which == "decisions" else EventLog
        for w in self.screen.query(kind):
            if w.display:
                return w
        return None

    def _typing(self) -> bool:
        return isinstance(self.screen, SearchPrompt) or isinstance(self.focused, Input)

    def action_focus_log(self, which: str) -> None:
        if self._typing() or not isinstance(self.screen, MainScreen | PairDetailScreen):
            raise SkipAction()
        log = self._log_on_screen(which)
        if log is None:
            if which == "decisions" and isinstance(self.screen, MainScreen):
                self.notify("the kill progress is shown: escape closes it", markup=False)
                return
            raise SkipAction()
        log.enter()

    def action_search_log(self) -> None:
        """``/``: the focused log's search, the viewer's, else the screen's decision log."""
        screen, focused = self.screen, self.focused
        if self._typing():
            raise SkipAction()
        if isinstance(focused, LogView):
            log: LogView | None = focused
        elif isinstance(screen, LogViewerScreen):
            log = screen.body
        elif isinstance(screen, MainScreen | PairDetailScreen):
            log = self._log_on_screen("decisions")
        else:
            log = None
        if log is None:
            raise SkipAction()
        log.action_search()

    def action_show_logs(self) -> None:
        if isinstance(self.screen, LogViewerScreen):
            self.screen.dismiss(None)
            return
        if self._typing() or not isinstance(self.screen, MainScreen):
            raise SkipAction()
        mode = getattr(self.backend, "mode", "")
        self.push_screen(
            LogViewerScreen(self.model, mode, self.wall, self.files, start=self.last_log_file)
        )

    def copy_line(self, text: str) -> None:
        """One log line, whole, to the clipboard and to ``files.copied``; a notification says
        where it went (or why the file could not be written)."""
        self.copy_to_clipboard(text)
        shown = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        files = self.files
        if files is None:
            self.notify(f"copied to the clipboard (OSC 52): {shown}", markup=False)
            return
        try:
            write_copied(files.copied, text)
        except OSError as exc:
            self.notify(
                f"copied to the clipboard (OSC 52) only: cannot write {files.copied}: "
                f"{exc.strerror or exc}",
                severity="warning",
                markup=False,
            )
            return
        self.copied_to_file = True
        self.notify(
            f"copied: {shown}\nclipboard (OSC 52) and {files.copied}", markup=False, timeout=6
        )

    def log_sources(self) -> list[tuple[str, list[Any]]]:
        """The logs' own keys for the help screen, when a log has them (the board's ``d``,
        ``e``, ``/`` and ``L`` rows say them in short otherwise)."""
        sources: list[tuple[str, list[Any]]] = []
        in_log = isinstance(self.focused, LogView)
        viewer = any(isinstance(s, LogViewerScreen) for s in self.screen_stack)
        if in_log or viewer:
            keys = list(LogView.BINDINGS)
            if isinstance(self.focused, DecisionLog):
                keys += DecisionLog.BINDINGS  # enter: the decision's own screen
            sources.append(("log", keys))
        if viewer:
            sources.append(("log files", list(LogViewerScreen.BINDINGS)))
        return sources
