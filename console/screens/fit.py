"""How the board's full panes fit the terminal: no pane cut in half, no empty half screen.

Owns ``pane_fit`` (the arithmetic) and ``fit_board`` (applies it to the main screen's grid on a
resize, or when the problem bar grows or shrinks). The panes and the logs share the rows left
by the header, the problem bar, the portfolio bar and the footer:

- every row of panes fits, with at least ``LOGS_MIN_ROWS`` for the logs: the panes grow, up to
  half of those rows and ``PANE_MAX_ROWS`` each (their chart grows; the logs get the rest);
- otherwise the grid scrolls (many pairs), showing as many whole rows of panes as leave the
  logs their ``LOGS_MIN_ROWS`` (at least one row of panes); the logs get the rest.

In the compact layout (one line per pair) the stylesheet alone sizes the rows: the inline
sizes set here are cleared.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from textual.css.scalar import Unit
from textual.screen import Screen
from textual.widgets import Footer

if TYPE_CHECKING:
    from console.screens.main import MainScreen

PANE_ROWS = 13  # a full pane: border 2, quote 3, sparkline 1, stats 7 (app.tcss)
PANE_MAX_ROWS = 24  # taller panes only draw a taller chart: the logs get the rest
LOGS_MIN_ROWS = 4  # the logs' title and three lines
CHROME_ROWS = 6  # header 1, portfolio bar 4, footer 1 (app.tcss): the first layout's guess
FOOTER_COMPACT_BELOW = 80  # columns: below, the footer's keys lose their padding
DETAIL_KEY_FROM = 70  # columns: below, the footer leaves out "⏎ Detail" (enter still opens it)


def pane_fit(avail: int, grid_rows: int) -> tuple[int, int]:
    """(height of a pane, height of the grid) for ``grid_rows`` rows of panes in ``avail`` rows
    shared with the logs."""
    if grid_rows * PANE_ROWS <= avail - LOGS_MIN_ROWS:
        pane = max(PANE_ROWS, min(PANE_MAX_ROWS, avail // 2 // grid_rows))
        return pane, pane * grid_rows
    shown = max(1, (avail - LOGS_MIN_ROWS) // PANE_ROWS)
    return PANE_ROWS, min(shown, grid_rows) * PANE_ROWS


def prefit_grid(screen: MainScreen, height: int) -> None:
    """Before the board's first layout: the grid and its panes sized as ``fit_board`` will
    size them in a terminal ``height`` rows tall with the problem bar hidden, so that its run
    after the first layout changes nothing (a changed grid lays every pane out again: 0.2 to
    1 s at 1,000 pairs)."""
    panes = screen.panes
    if screen.compact or not panes:
        return
    pane_h, grid_h = pane_fit(height - CHROME_ROWS, math.ceil(len(panes) / screen.columns))
    grid = screen.grid
    grid.styles.grid_rows = str(pane_h)
    grid.styles.height = grid_h
    grid.styles.max_height = grid_h
    if pane_h != PANE_ROWS:  # the stylesheet's height otherwise
        for pane in panes.values():
            pane.styles.height = pane_h


def fit_board(screen: MainScreen) -> None:
    """Size the grid and its panes for the screen as it is now (call after a layout pass)."""
    grid = screen.grid
    panes = list(screen.panes.values())
    if screen.compact or not panes:
        screen.problems.repaint(screen.size.width)
        grid.styles.max_height = None
        grid.styles.height = None
        grid.styles.grid_rows = None
        for pane in panes:
            pane.styles.height = None
        return
    screen.problems.repaint(screen.size.width)  # its height at this width
    used = screen.problems.rows + sum(
        w.outer_size.height
        for w in (screen.header, screen.portfolio, screen.query_one(Footer))
        if w.display
    )
    avail = screen.size.height - used
    pane_h, grid_h = pane_fit(avail, math.ceil(len(panes) / screen.columns))
    rows = grid.styles.grid_rows
    if not rows or len(rows) != 1 or rows[0].unit is not Unit.CELLS or rows[0].value != pane_h:
        # only a new height: setting the same one (the stylesheet's 13, parsed with another
        # percent unit, compares unequal) refreshes every pane's widget and lays the board
        # out again, about a second at 1,000 pairs
        grid.styles.grid_rows = str(pane_h)
    grid.styles.height = grid_h
    grid.styles.max_height = grid_h
    for pane in panes:
        if pane.styles.height is None or pane.styles.height.cells != pane_h:
            pane.styles.height = pane_h


def fit_footer(screen: Screen[Any], width: int) -> None:
    """Every key the footer shows fits ``width`` columns: compact keys below 80 columns, and
    below 70 no "⏎ Detail" (the board's one key whose action is also a plain Enter)."""
    screen.query_one(Footer).compact = width < FOOTER_COMPACT_BELOW
    keys = screen._bindings.key_to_bindings  # as the app swaps q's binding (console/app.py)
    show = width >= DETAIL_KEY_FROM
    enter = keys.get("enter", [])
    if enter and any(b.show != show for b in enter):
        keys["enter"] = [dataclasses.replace(b, show=show) for b in enter]
        screen.refresh_bindings()
