"""The board: header, problem bar, portfolio bar, one pane per pair, decision and event logs.

Owns ``MainScreen``: the layout (full panes in a grid from 120 columns and 36 rows, one row
per pair below that, switched by Textual breakpoint classes on resize, never per tick; the
grid's rows sized by ``console/screens/fit.py`` on a resize or a change of the problem bar), the
pane selection and navigation keys, the kill progress panel (shown in the decision log's
place after a kill or flatten-all until Escape), and ``repaint()`` which the app's timer calls
with what changed.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Region, Size
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from console.kill_progress import KillProgress
from console.model import DIRTY_EVENTS, DIRTY_HEADER, DIRTY_LOG, DIRTY_PORTFOLIO, ConsoleModel
from console.screens.fit import fit_board, fit_footer, prefit_grid
from console.widgets.footer import BoardFooter
from console.widgets.header import StatusHeader
from console.widgets.kill_progress import KillProgressPanel
from console.widgets.logs import BOARD_LOG_BINDINGS, DecisionLog, EventLog
from console.widgets.pair_pane import PairPane, PairRowHeader
from console.widgets.portfolio import PortfolioBar, RiskCaps
from console.widgets.problems import ProblemBar

FRAMES_PER_PANE_PAINT = 3  # a pane's prices repaint every 3rd frame: 4 Hz at the 12 Hz timer
FRAMES_PER_SELECTED_PAINT = 2  # the selected pane's: 6 Hz
# Full panes need about 48 columns each and 13 rows; below these the board goes compact.
WIDE_COLUMNS = 156  # three panes side by side
MEDIUM_COLUMNS = 120  # two panes side by side
TALL_ROWS = 36
PALETTE_HINT_COLUMNS = 100  # below this the footer drops "^p palette" so every key fits
REFREEZE_TRIES = 10  # after a pane's removal: full collections before the heap is frozen regardless
REFREEZE_RETRY_S = 0.2


class MainScreen(Screen[None]):
    """Every pair at once, with the selected pane highlighted."""

    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"),
        (MEDIUM_COLUMNS, "-medium"),
        (WIDE_COLUMNS, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-short"),
        (TALL_ROWS, "-tall"),
    ]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "up,k", "move(-1, 0)", "Up", show=False, id="nav.up", tooltip="Select the pane above"
        ),
        Binding(
            "down,j",
            "move(1, 0)",
            "Down",
            show=False,
            id="nav.down",
            tooltip="Select the pane below",
        ),
        Binding(
            "left,h",
            "move(0, -1)",
            "Left",
            show=False,
            id="nav.left",
            tooltip="Select the pane to the left",
        ),
        Binding(
            "right,l",
            "move(0, 1)",
            "Right",
            show=False,
            id="nav.right",
            tooltip="Select the pane to the right",
        ),
        Binding(
            "tab",
            "cycle(1)",
            "Next",
            show=False,
            id="nav.next",
            tooltip="Select the next pair (wraps)",
        ),
        Binding(
            "shift+tab",
            "cycle(-1)",
            "Previous",
            show=False,
            id="nav.previous",
            tooltip="Select the previous pair (wraps)",
        ),
        Binding(
            "enter",
            "app.open_detail",
            "Detail",
            id="pair.detail",
            tooltip="Open the selected pair's detail: chart, decisions",
        ),
        Binding(
            "R",
            "app.show_reconcile",
            "Reconcile",
            key_display="R",
            show=False,
            id="reconcile.open",
            tooltip="Reconciliation: book vs exchange, and your choices",
        ),
        Binding(
            "T",
            "app.show_trades",
            "Trades",
            key_display="T",
            show=False,
            id="trades.open",
            tooltip="Trades: round trips, performance, CSV export",
        ),
        *BOARD_LOG_BINDINGS,  # d, e, /, L: the logs (console/widgets/logs.py)
        # No description: help and the footer leave it out (docs/keys.md describes it).
        Binding("escape", "close_progress", "", show=False, id="progress.close"),
    ]

    def __init__(
        self,
        model: ConsoleModel,
        mode: str,
        caps: RiskCaps,
        wall: Callable[[], float],
        on_select: Callable[[str], None],
    ) -> None:
        super().__init__(id="main")
        self.model = model
        self.on_select = on_select
        self.header = StatusHeader(model, mode, wall, id="header")
        self.problems = ProblemBar(model, id="problems")  # feed/engine trouble: what, since, why
        self.portfolio = PortfolioBar(model, caps, id="portfolio")
        self.panes: dict[str, PairPane] = {s: PairPane(model, s) for s in model.symbols}
        self.decision_log = DecisionLog(model, id="decision-log")
        self.progress_panel = KillProgressPanel(id="kill-progress")  # in its place when shown
        self.event_log = EventLog(model, id="event-log")
        self.selected_index = 0
        self.grid = VerticalScroll(id="pair-grid", classes=f"-n{min(len(model.symbols), 3)}")
        self._hidden_dirty: set[str] = set()  # changed while scrolled out of view
        self._deferred: set[str] = set()  # changed, waiting for its turn
        self._painted: dict[str, tuple[object, ...]] = {}  # mode, position, stale as last shown
        self._phase = {sym: i % FRAMES_PER_PANE_PAINT for i, sym in enumerate(model.symbols)}
        self._frame_no = 0
        self._watch_key: tuple[object, ...] = ()  # the view watch_set() last answered for
        self._visible_key: tuple[object, ...] = ()  # the view _visible_symbols() last walked
        self._visible: set[str] = set()

    def compose(self) -> ComposeResult:
        self._prefit(self.app.size)
        yield self.header
        yield self.problems
        yield self.portfolio
        yield PairRowHeader()
        with self.grid:
            yield from self.panes.values()
        with Horizontal(id="logs"):
            yield self.progress_panel
            yield self.decision_log
            yield self.event_log
        yield BoardFooter()  # keys enabled or dimmed in place: no relayout of the board

    def on_mount(self) -> None:
        self.select(0)

    def on_unmount(self) -> None:
        self.thaw_heap()

    def freeze_heap(self) -> None:
        """Keep the board's objects out of the cyclic collector's full passes (``gc.freeze``):
        1,000 panes are about 800,000 tracked objects, and each full collection, which the
        frame's garbage triggers every few seconds, walked them all (0.7 s a time on this VM,
        in the middle of whatever ran). Called once the board is laid out (after a resize, and
        after the board follows a reload); objects made later are collected as before. The young
        generations are collected first, so the layout's own cyclic garbage is not kept for good.
        A frozen object that becomes garbage is never collected: the board thaws the heap
        before it removes a pane (``thaw_heap``), and ``on_unmount`` thaws it."""
        gc.collect(1)
        gc.freeze()

    @staticmethod
    def thaw_heap() -> None:
        """What ``freeze_heap`` kept from the collector is collectable again (a removed pane's
        widgets are a cycle: left frozen, they would stay for the console's life)."""
        gc.unfreeze()

    def freeze_when_gone(self, gone: list[weakref.ref[Widget]], tries: int = REFREEZE_TRIES) -> None:
        """After panes were removed: the heap frozen again once they are collected. A removed
        widget is still referenced for a moment (Textual's pending messages and callbacks), and
        freezing it then would keep it for good; so a full collection, and another try a little
        later while any is left (at most ``tries``, then frozen regardless)."""
        gc.collect()
        if tries > 0 and any(ref() is not None for ref in gone):
            self.set_timer(REFREEZE_RETRY_S, lambda: self.freeze_when_gone(gone, tries - 1))
            return
        gc.freeze()

    async def follow_pairs(self, added: list[str], removed: list[str]) -> None:
        """The board follows the safe list (a reload): the removed pairs' panes go, the added
        ones come, the grid is sized for its rows, the selection stays on a pane that is there
        (an added pair's, so it is in view). The heap is thawed before a pane goes and frozen
        again once the removed panes are collected (``freeze_when_gone``)."""
        gone = []
        # the model holds the new list already, and a frame may paint during the awaits below
        self.selected_index = min(self.selected_index, max(0, len(self.model.symbols) - 1))
        if removed:
            self.thaw_heap()  # a removed pane must be collectable (frozen, it never would be)
        for s in removed:
            pane = self.panes.pop(s, None)
            if pane is not None:
                gone.append(weakref.ref(pane))
                await pane.remove()
        for s in added:
            pane = PairPane(self.model, s)
            self.panes[s] = pane
            self._phase[s] = 0
            await self.grid.mount(pane)
        self.selected_index = min(self.selected_index, max(0, len(self.panes) - 1))
        self.call_after_refresh(fit_board, self)  # the grid sized for its new rows
        if gone:
            self.call_after_refresh(self.freeze_when_gone, gone)
        else:
            self.call_after_refresh(self.freeze_heap)
        if added:  # the new pair selected, so its pane is in view
            self.call_after_refresh(self.select, self.model.symbols.index(added[0]))
        elif removed:  # the selection's highlight on a pane that is still there
            self.call_after_refresh(self.select, self.selected_index)

    def _prefit(self, size: Size) -> None:
        """Before the first layout: the breakpoint classes the first resize will set, and the
        grid's size (``prefit_grid``), so that the first layout is the one that stays (at 1,000
        pairs each layout of the board is 0.2 to 1 s; start-up made five or six)."""
        if not size:
            return
        for dim, points in (
            (size.width, self.HORIZONTAL_BREAKPOINTS),
            (size.height, self.VERTICAL_BREAKPOINTS),
        ):
            self.add_class(*self._get_breakpoint_classes(dim, list(points or ())))
        prefit_grid(self, size.height)

    def _screen_resized(self, size: Size) -> None:
        """Textual lays the screen out again at once on every resize event, one of the same
        size too (a terminal reports its size two or three times at start-up): at 1,000 pairs
        each is a layout of 4,000 widgets, 0.2 to 0.8 s. One of the size already laid out is
        skipped; a layout something asked for still runs on the screen's next update."""
        if size == self._compositor.size:
            return
        super()._screen_resized(size)

    def on_resize(self, event: events.Resize) -> None:
        # at 80 columns the footer needs the palette hint's room for the quit key
        self.query_one(Footer).show_command_palette = event.size.width >= PALETTE_HINT_COLUMNS
        fit_footer(self, event.size.width)  # console/screens/fit.py
        self.call_after_refresh(fit_board, self)
        self.call_after_refresh(self.freeze_heap)

    # ------------------------------------------------------------------ selection

    @property
    def compact(self) -> bool:
        return self.has_class("-narrow") or self.has_class("-short")

    @property
    def columns(self) -> int:
        """Panes per grid row in the current layout."""
        if self.compact:
            return 1
        cols = 3 if self.has_class("-wide") else 2
        return max(1, min(cols, len(self.panes)))

    @property
    def selected_symbol(self) -> str | None:
        syms = self.model.symbols  # shorter than the selection for a moment during a reload
        return syms[min(self.selected_index, len(syms) - 1)] if syms else None

    def select(self, index: int) -> None:
        syms = self.model.symbols
        if not syms:
            return
        index = max(0, min(len(syms) - 1, index))
        old = self.panes.get(syms[min(self.selected_index, len(syms) - 1)])
        new = self.panes.get(syms[index])
        if new is None:  # a reload's pane not mounted yet: follow_pairs selects it once it is
            return
        self.selected_index = index
        if old is not None and old is not new:
            old.set_selected(False)
        new.set_selected(True)
        new.scroll_visible(animate=False)
        self.on_select(syms[index])

    def action_move(self, rows: int, cols: int) -> None:
        n = len(self.model.symbols)
        if not n:
            return
        target = self.selected_index + rows * self.columns + cols
        if rows and not 0 <= target < n:
            return  # no pane above the top row or below the bottom one: stay
        self.select(max(0, min(n - 1, target)))

    def action_cycle(self, step: int) -> None:
        n = len(self.model.symbols)
        if n:
            self.select((self.selected_index + step) % n)

    # ------------------------------------------------------------------ kill progress

    def show_progress(self, progress: KillProgress) -> None:
        """The panel of a kill or flatten-all, in the decision log's place until Escape."""
        self.progress_panel.show(progress)
        self.progress_panel.display = True
        self.decision_log.display = False

    def action_close_progress(self) -> None:
        self.progress_panel.display = False
        self.decision_log.display = True

    # ------------------------------------------------------------------ painting

    def repaint(self, dirty: set[str], charts: set[str] | None) -> None:
        """Redraw only what changed; the app calls this inside ``batch_update()``."""
        if DIRTY_HEADER in dirty:
            self.header.refresh()
            if self.problems.repaint(self.size.width):  # shown, hidden or resized
                self.call_after_refresh(fit_board, self)
        if DIRTY_PORTFOLIO in dirty:
            self.portfolio.refresh()
        if DIRTY_LOG in dirty:
            self.decision_log.refresh()
        if DIRTY_EVENTS in dirty:
            self.event_log.refresh()
        if self.progress_panel.display:
            self.progress_panel.repaint()
        # Only panes in the scroll window are drawn; a hidden one is drawn when it scrolls in.
        # With 100 pairs and 9 on screen this is most of the console's CPU (bench/console.py).
        visible = self._visible_symbols()
        panes = self.panes
        hidden = self._hidden_dirty
        # A pane shows a new price at most 4 times a second, the selected one 6 (the eye does
        # not read more; it bounds the console's CPU and terminal bytes at any tick rate); a
        # change of mode, position or staleness (what the operator acts on) is painted at once.
        # Panes take turns (a third on each frame) so every frame still draws.
        # A pane's part whose text did not change is not sent (PairPane.repaint).
        self._frame_no += 1
        pairs = self.model.pairs
        painted = self._painted
        phase = self._phase
        selected = self.selected_symbol
        if self._deferred:
            dirty = dirty | self._deferred
            self._deferred = set()
        for sym in dirty:
            pane = panes.get(sym)
            if pane is None:
                continue
            if sym not in visible:
                hidden.add(sym)
                continue
            pv = pairs[sym]
            key = (pv.state.mode, pv.has_position, pv.state.stale)
            every = FRAMES_PER_SELECTED_PAINT if sym == selected else FRAMES_PER_PANE_PAINT
            turn = painted.get(sym) == key  # prices only: the pane's turn decides
            if turn and (self._frame_no + phase[sym]) % every:
                self._deferred.add(sym)
                continue
            painted[sym] = key
            pane.repaint(full=not turn)
        if charts:
            for sym in charts:
                pane = panes.get(sym)
                if pane is not None:
                    if sym in visible:
                        pane.repaint_chart()
                    else:
                        hidden.add(sym)
        if hidden:
            for sym in hidden & visible:
                panes[sym].repaint()
                panes[sym].repaint_chart()
            hidden -= visible

    @property
    def pending(self) -> bool:
        """Changed panes still waiting to be drawn: their turn, or their scroll into view; or
        news for the kill progress panel (an order sent marks nothing else dirty)."""
        return bool(self._deferred or self._hidden_dirty) or self.progress_panel.stale

    def _visible_symbols(self) -> set[str]:
        """The panes in the scroll window, walked only when the scroll offset, the grid's size
        or the panes' placement changed (at 1,000 pairs the walk was 9 % of the console's CPU
        when done every frame). The caller must not change the set."""
        grid = self.grid
        panes = self.panes
        first = next(iter(panes.values()), None)
        key = (
            grid.scroll_x,
            grid.scroll_y,
            grid.size,
            grid.virtual_size,
            first.virtual_region if first is not None else None,
            first.size if first is not None else None,
        )
        if key != self._visible_key:
            window = Region(int(grid.scroll_x), int(grid.scroll_y), grid.size.width, grid.size.height)
            self._visible = {s for s, p in panes.items() if p.virtual_region.overlaps(window)}
            self._visible_key = key
        return self._visible

    def watch_set(self) -> set[str] | None:
        """The pairs whose fast state the console follows: the panes in the scroll window and the
        selected pair (its detail screen). None when nothing moved since the last call (the
        scroll offset, the grid's size and the selection are the same): called every frame,
        it looks at every pane only when the view changed."""
        grid = self.grid
        key = (grid.scroll_x, grid.scroll_y, grid.size, grid.virtual_size, self.selected_index)
        if key == self._watch_key:
            return None
        self._watch_key = key
        visible = self._visible_symbols() if grid.size.area else set()
        selected = self.selected_symbol
        return visible | {selected} if selected is not None else visible
