"""The problem bar under the header: a feed or engine in trouble says what, since when and why.

Owns ``ProblemBar``: one block per problem of ``console.problems.board_problems`` (the feed's
connection or process, the engine's process): a badge and what is wrong since when (UTC, and
for how long), the retries, the error text as the feed or the supervisor said it (wrapped to at
most two lines), and, when that error says there is no network, the ``--demo`` hint. Hidden
when nothing is wrong. ``repaint()`` says when its height changed, so the board fits again.
"""

from __future__ import annotations

import textwrap
import time

from rich.text import Text

from console.model import ConsoleModel
from console.problems import DEMO_HINT, DEMO_HINT_SHORT, Problem, board_problems
from console.widgets.base import ModelWidget
from console.widgets.palette import Palette, fmt_duration, pad_between

DETAIL_LINES = 2  # an error text longer than this many lines is cut with an ellipsis


def headline(p: Problem, pal: Palette, long: bool) -> Text:
    """The badge, what, since when (long: in UTC and for how long) and the retries."""
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append(f" {p.who.upper()} ", pal.badge("HALTED" if p.error else "STALE"))
    head.append(f" {p.what}", pal.error if p.error else pal.warn)
    if p.since is not None:
        head.append(" since ", pal.muted)
        head.append(time.strftime("%H:%M:%S", time.gmtime(p.since)) + (" UTC" if long else ""))
        if long and p.for_s is not None:
            head.append(f" ({fmt_duration(p.for_s)})", pal.muted)
    elif p.for_s is not None:
        head.append(" for ", pal.muted)
        head.append(fmt_duration(p.for_s))
    if p.retries:
        head.append(f" · {p.retries} retries" if long else f" r{p.retries}", pal.muted)
    if p.offline:
        head.append(" · ", pal.muted)
        head.append(p.offline, pal.error if p.error else pal.warn)
    return head


def problem_lines(p: Problem, width: int, pal: Palette) -> list[Text]:
    """The lines of one problem at ``width`` columns: the headline with the ``--demo`` hint
    beside it when it fits (else on a line of its own), then why, in at most two lines."""
    head = headline(p, pal, long=True)
    if head.cell_len > width:
        head = headline(p, pal, long=False)
    hint = Text()
    if p.offline:
        for words in (DEMO_HINT, DEMO_HINT_SHORT):
            if head.cell_len + len(words) + 2 <= width:
                hint = Text(words + " ", pal.accent)
                break
    lines = [pad_between(head, hint, width) if hint else head]
    if p.detail:
        wrapped = textwrap.wrap(p.detail, max(10, width - 6), max_lines=DETAIL_LINES, placeholder=" …")
        for i, chunk in enumerate(wrapped):
            line = Text("  why " if i == 0 else "      ", pal.muted, no_wrap=True)
            line.append(chunk)
            lines.append(line)
    if p.offline and not hint:  # too narrow beside the headline: a line of its own
        lines.append(Text("  " + DEMO_HINT_SHORT, pal.accent, no_wrap=True))
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return lines


class ProblemBar(ModelWidget):
    """Feed and engine problems, one block each; hidden when there are none."""

    def __init__(self, model: ConsoleModel, *, id: str | None = None) -> None:
        super().__init__(model, id=id)
        self._rows = 0

    def problems(self) -> list[Problem]:
        m = self.model
        return board_problems(m.feed_status, m.children, m.wall(), m.now())

    def lines(self, width: int) -> list[Text]:
        pal = self.palette
        out: list[Text] = []
        for p in self.problems():
            out.extend(problem_lines(p, width, pal))
        return out

    def render(self) -> Text:
        return Text("\n").join(self.lines(self.size.width or 80))

    @property
    def rows(self) -> int:
        """Lines shown since the last ``repaint`` (0: hidden)."""
        return self._rows

    def repaint(self, width: int) -> bool:
        """Show, hide or redraw at ``width`` columns; True when the height changed."""
        rows = len(self.lines(width))
        changed = rows != self._rows
        self._rows = rows
        if changed:
            self.styles.height = rows or None
            self.display = rows > 0
        self.refresh()
        return changed

    def text(self) -> str:
        """What the bar shows now, as plain text (for tests)."""
        return "\n".join(line.plain for line in self.lines(self.size.width or 80))
