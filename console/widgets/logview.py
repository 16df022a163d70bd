"""A log an operator can use: scroll it, search it, copy a line out of it.

Owns ``LogView``, the base of the decision log, the event log and the log file viewer's body.
A subclass says what its rows are (``log_rows``: a bounded sequence, oldest first), how one is
drawn (``row_text``) and searched or copied (``row_plain``), and its title line.

Unfocused and untouched, a log follows its tail: the newest rows that fit, newest at the bottom,
exactly as before this base existed (O(visible rows) per repaint). Focused (``d``/``e`` on the
board, a click; the log file viewer's body always) it has a selected row: up/down (j/k), pgup/pgdn,
home/end move it and the view follows it; the mouse wheel scrolls. Away from the newest row the
log holds still while new rows arrive (the selected row is kept by identity, so rows dropped off
the bounded history never move it) and its title says how many newer rows wait below; reaching
the newest row (``end``, ``down`` on the last one, the wheel) follows the tail again.

``/`` opens a search prompt (``SearchPrompt``): matches are highlighted as you type and the
selection jumps to the newest match; ``n`` / ``N`` go to the next (newer) / previous (older)
match, wrapping around. ``c`` copies the selected row's whole text (never the truncated
drawing) through the app's ``copy_line`` (clipboard and a file). ``escape`` clears the search,
then leaves the log (focus back to the board, following again) and lets the screen's own
``escape`` run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.widget import Widget

from console.reasons import fit_words
from console.screens.search import SearchPrompt
from console.widgets.palette import DEFAULT_PALETTE, Palette

WHEEL_ROWS = 3


class LogView(Widget, can_focus=False):
    """A bounded log with a selected row, search and copy; subclasses say what the rows are.

    It takes focus only when asked (``enter``: a key, a click), never by a screen's auto-focus
    or the tab chain, so the board's keys stay the board's until the operator enters a log."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"logview--cursor"}
    DEFAULT_CSS = """
    LogView:focus {
        background: $primary 8%;
    }
    LogView > .logview--cursor {
        background: $primary 35%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False, id="log.up", tooltip="Select the row above"),
        Binding(
            "down,j",
            "move(1)",
            "Down",
            show=False,
            id="log.down",
            tooltip="Select the row below (on the newest row: follow new rows)",
        ),
        Binding("pageup", "page(-1)", "Page up", show=False, id="log.page_up", tooltip="One page up"),
        Binding(
            "pagedown", "page(1)", "Page down", show=False, id="log.page_down", tooltip="One page down"
        ),
        Binding("home", "first", "Oldest", show=False, id="log.first", tooltip="The oldest row kept"),
        Binding(
            "end", "last", "Follow", show=False, id="log.last", tooltip="The newest row, and follow new rows"
        ),
        Binding(
            "slash",
            "search",
            "Search",
            key_display="/",
            priority=True,  # the prompt is up before the next key is routed (log_actions.py)
            id="log.search",
            tooltip="Search this log: matches highlighted, n / N next / previous",
        ),
        Binding("n", "next_match(1)", "Next", id="log.next", tooltip="Next (newer) match, wraps"),
        Binding(
            "N",
            "next_match(-1)",
            "Prev",
            key_display="N",
            id="log.previous",
            tooltip="Previous (older) match, wraps",
        ),
        Binding(
            "c",
            "copy_line",
            "Copy",
            id="log.copy",
            tooltip="Copy the selected row whole: to the clipboard (OSC 52) and to a file",
        ),
        Binding(
            "escape",
            "leave",
            "Leave",
            show=False,
            id="log.leave",
            tooltip="Clear the search; again: leave the log, back to following its newest rows",
        ),
    ]

    TITLE = "Log"
    EMPTY = "nothing yet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.following = True
        self.query_text = ""  # the search; "" = none
        self._pattern: re.Pattern[str] | None = None
        self._anchor: object | None = None  # the selected row (by identity) when not following
        self._hint = 0  # its index when last seen
        self._offset = 0  # its line within the view
        self._plain: dict[int, tuple[object, str]] = {}  # id(row) -> (row, its plain text)

    # ------------------------------------------------------------------ what subclasses say

    def log_rows(self) -> Sequence[Any]:
        raise NotImplementedError

    def row_text(self, row: Any, palette: Palette) -> Text:
        raise NotImplementedError

    def log_title(self, rows: Sequence[Any], palette: Palette) -> Text:
        return Text(self.TITLE, palette.accent)

    def empty_text(self) -> str:
        return self.EMPTY

    def row_plain(self, row: Any) -> str:
        """The row as copied and searched: its whole text, never cut to the width."""
        key = id(row)
        hit = self._plain.get(key)
        if hit is not None and hit[0] is row:
            return hit[1]
        plain = self.row_text(row, DEFAULT_PALETTE).plain
        if len(self._plain) > 4096:  # holding the row keeps its id from being reused
            self._plain.clear()
        self._plain[key] = (row, plain)
        return plain

    # ------------------------------------------------------------------ state

    @property
    def palette(self) -> Palette:
        return getattr(self.app, "palette", DEFAULT_PALETTE)

    @property
    def body_height(self) -> int:
        return max(1, (self.size.height or 10) - 1)

    def cursor_index(self, rows: Sequence[Any]) -> int:
        """The selected row's index (the newest when following); -1 for an empty log."""
        n = len(rows)
        if n == 0:
            return -1
        if self.following or self._anchor is None:
            return n - 1
        hint = min(self._hint, n - 1)
        if rows[hint] is not self._anchor:  # rows dropped off the front: it moved towards 0
            for i in range(hint, -1, -1):
                if rows[i] is self._anchor:
                    hint = i
                    break
            else:  # gone (dropped, or the history replaced): stay where it was
                self._anchor = rows[hint]
        self._hint = hint
        return hint

    def window(self, rows: Sequence[Any]) -> tuple[int, int]:
        """(first row shown, selected row)."""
        n, body = len(rows), self.body_height
        cursor = self.cursor_index(rows)
        if self.following:
            return max(0, n - body), cursor
        first = max(0, min(cursor - min(self._offset, body - 1), n - body))
        return first, cursor

    def select(self, index: int, *, follow_at_end: bool = True) -> None:
        """Select row ``index`` and bring it into view; the newest row follows the tail."""
        rows = self.log_rows()
        n = len(rows)
        if n == 0:
            return
        index = max(0, min(n - 1, index))
        first, _ = self.window(rows)
        body = self.body_height
        if index == n - 1 and follow_at_end:
            self.following, self._anchor = True, None
        else:
            if index < first:
                first = index
            elif index >= first + body:
                first = index - body + 1
            self.following, self._anchor, self._hint = False, rows[index], index
            self._offset = index - first
        self.refresh()
        self.post_selected(rows[index])

    def selected_row(self) -> Any | None:
        """The selected row (the newest when following); None for an empty log."""
        rows = self.log_rows()
        return rows[self.cursor_index(rows)] if rows else None

    def follow(self) -> None:
        """Back to the newest rows, following them."""
        self.following, self._anchor = True, None
        self.refresh()

    def post_selected(self, row: Any) -> None:
        """Hook: a screen showing the selected row whole (the log file viewer) overrides."""

    def scroll_rows(self, delta: int) -> None:
        """The wheel: move the view, keep the selection inside it."""
        rows = self.log_rows()
        n, body = len(rows), self.body_height
        if n == 0:
            return
        first, cursor = self.window(rows)
        top = max(0, min(first + delta, max(0, n - body)))
        if delta > 0 and top >= n - body:
            self.follow()
            return
        cursor = max(top, min(cursor, top + body - 1))
        self.following, self._anchor, self._hint = False, rows[cursor], cursor
        self._offset = cursor - top
        self.refresh()

    def set_query(self, text: str) -> None:
        self.query_text = text
        self._pattern = re.compile(re.escape(text), re.IGNORECASE) if text else None
        self.refresh()

    def matches(self, rows: Sequence[Any]) -> list[int]:
        pat = self._pattern
        if pat is None:
            return []
        return [i for i, r in enumerate(rows) if pat.search(self.row_plain(r))]

    def find(self, step: int, *, start: int | None = None, wrap: bool = True) -> int | None:
        """The nearest matching row after (``step`` 1) or before (-1) ``start`` (default: the
        selected row), wrapping around when ``wrap``; None when nothing matches."""
        rows = self.log_rows()
        pat, n = self._pattern, len(rows)
        if pat is None or n == 0:
            return None
        at = self.cursor_index(rows) if start is None else start
        for k in range(1, n + 1 if wrap else n):
            i = (at + step * k) % n if wrap else at + step * k
            if not 0 <= i < n:
                return None
            if pat.search(self.row_plain(rows[i])):
                return i
        return None

    def preview(self, text: str) -> int:
        """The search as typed: highlight it, select the newest match; how many match."""
        self.set_query(text)
        rows = self.log_rows()
        hits = self.matches(rows)
        if hits:
            self.select(hits[-1], follow_at_end=False)
        return len(hits)

    # ------------------------------------------------------------------ drawing

    def status_text(self, rows: Sequence[Any], cursor: int) -> str:
        """What the title adds: the search and its matches, and rows waiting below."""
        parts = []
        n = len(rows)
        if self.query_text:
            hits = self.matches(rows)
            m = len(hits)
            where = f"{hits.index(cursor) + 1}/{m}" if cursor in hits else f"{m} match" + "es" * (m != 1)
            parts.append(f"/{self.query_text} {where}")
        if not self.following and n:
            newer = n - 1 - cursor
            parts.append(f"row {cursor + 1}/{n}" + (f", {newer} newer below (end follows)" if newer else ""))
        return "  " + " · ".join(parts) if parts else ""

    def render(self) -> Text:
        pal = self.palette
        width = self.size.width or 80
        rows = self.log_rows()
        first, cursor = self.window(rows)
        title = self.log_title(rows, pal)
        status = self.status_text(rows, cursor)
        if status:
            title.append(status, pal.warn)
        lines = [title]
        if not rows:
            lines.append(Text(self.empty_text(), pal.muted))
        mark = self.has_focus or not self.following
        hit_style = pal.badge_paused
        lines = [fit_words(line, width) for line in lines]
        for i in range(first, min(len(rows), first + self.body_height)):
            line = fit_words(self.row_text(rows[i], pal), width)  # never cut inside a number
            if mark and i == cursor:  # a bar the whole width, under the row's own colours
                line.pad_right(width - line.cell_len)
                line.stylize(self.get_component_rich_style("logview--cursor", partial=True))
            if self._pattern is not None:
                line.highlight_regex(self._pattern, hit_style)
            lines.append(line)
        return Text("\n").join(lines)

    # ------------------------------------------------------------------ keys and mouse

    def action_move(self, step: int) -> None:
        rows = self.log_rows()
        self.select(self.cursor_index(rows) + step)

    def action_page(self, step: int) -> None:
        rows = self.log_rows()
        self.select(self.cursor_index(rows) + step * max(1, self.body_height - 1))

    def action_first(self) -> None:
        self.select(0, follow_at_end=len(self.log_rows()) <= 1)

    def action_last(self) -> None:
        self.select(len(self.log_rows()) - 1)

    def action_search(self) -> None:
        self.enter()
        before = (self.query_text, self.following, self._anchor, self._hint, self._offset)

        def done(text: str | None) -> None:
            if text is None:  # escape: as it was
                self.set_query(before[0])
                self.following, self._anchor, self._hint, self._offset = before[1:]
                self.refresh()
            elif text and not self.preview(text):
                self.app.notify(f"no match for {text!r} in the kept rows", severity="warning", markup=False)

        self.app.push_screen(SearchPrompt(self, self.query_text), done)

    def action_next_match(self, step: int) -> None:
        if not self.query_text:
            self.app.notify("no search yet: / searches", severity="warning", markup=False)
            return
        rows = self.log_rows()
        at = self.cursor_index(rows)
        i = self.find(step)
        if i is None:
            self.app.notify(f"no match for {self.query_text!r}", severity="warning", markup=False)
            return
        if (step > 0 and i <= at) or (step < 0 and i >= at):
            where = "oldest" if step > 0 else "newest"
            self.app.notify(f"search wrapped to the {where} rows", markup=False, timeout=2)
        self.select(i, follow_at_end=False)

    def action_copy_line(self) -> None:
        rows = self.log_rows()
        if not rows:
            self.app.notify("nothing to copy: the log is empty", severity="warning", markup=False)
            return
        text = self.row_plain(self.selected_row())
        copy = getattr(self.app, "copy_line", None)
        if copy is not None:
            copy(text)
        else:
            self.app.copy_to_clipboard(text)

    def enter(self) -> None:
        """Take the keys: up/down and the rest now move in this log. At once (not on the next
        turn of the loop as ``focus()``), so a key typed right after (``e/``) is already ours."""
        self.can_focus = True
        self.screen.set_focus(self)

    def action_leave(self) -> None:
        if self.query_text:
            self.set_query("")
            return
        self.follow()
        if self.has_focus:
            self.can_focus = False
            others = [w for w in self.screen.focus_chain if not isinstance(w, LogView)]
            self.screen.set_focus(others[0] if others else None)
        raise SkipAction()  # the screen's escape runs too (back, close the panel)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.scroll_rows(-WHEEL_ROWS)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.scroll_rows(WHEEL_ROWS)

    def on_click(self, event: events.Click) -> None:
        self.enter()
        if event.y < 1:
            return
        rows = self.log_rows()
        first, _ = self.window(rows)
        index = first + event.y - 1
        if index < len(rows):
            self.select(index, follow_at_end=False)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
