"""The Textual app: a thin shell that owns the model, the backend and the operator's keys.

Owns ``make_app`` (the one factory the CLI and the tests use) and ``MultiparApp`` (bindings,
``check_action``, the single repaint timer and the orderly ``shutdown()``); the operator's
actions (commands and their acks, confirm flows, the kill switch, the command palette) are
its base, ``console.actions.OperatorActions``.

Ingest fast, render slow: the backend writes into the plain ``ConsoleModel``; ONE timer at
12 Hz hands what changed to the visible screens inside ``batch_update()``; charts follow at
3 Hz (every 4th frame). Logging goes to ``log_path``, never to the screen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.driver import Driver
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer

from console.actions import (
    MODE_COMMANDS,
    OperatorActions,
)
from console.guards import GuardedActions
from console.model import (
    DIRTY_EVENTS,
    DIRTY_HEADER,
    DIRTY_LOG,
    DIRTY_PORTFOLIO,
    Backend,
    ConsoleModel,
    PairView,
)
from console.reload_actions import ReloadActions
from console.screens.main import MainScreen
from console.settings import Settings
from console.sgr import lean_driver
from console.toasts import ToastRoom
from console.widgets.palette import DEFAULT_PALETTE, Palette
from console.widgets.portfolio import RiskCaps
from engine.core.config import SafeList

log = logging.getLogger(__name__)
# No handler configured must mean silence, not Python's last-resort stderr over the screen.
logging.getLogger("console").addHandler(logging.NullHandler())

FRAME_HZ = 12.0  # panes, header, logs
CHART_EVERY = 4  # frames between chart repaints: 12 / 4 = 3 Hz
BINDINGS_REFRESH_S = 0.5  # market-driven footer changes, at most twice a second
STOP_TIMEOUT_S = 20.0


DETACH_BINDING = Binding(
    "q",
    "quit",
    "Detach",
    id="quit",
    tooltip="Detach this console: the daemon keeps trading (S stops trading)",
)


class MultiparApp(ToastRoom, OperatorActions, GuardedActions, ReloadActions):  # toasts: console/toasts.py
    """The operator's console. Build it with ``make_app``."""

    CSS_PATH = "app.tcss"
    TITLE = "multipar-console"

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the kill switch works from every screen, dialogs included.
        Binding(
            "ctrl+k",
            "kill",
            "KILL",
            priority=True,
            id="kill",
            tooltip="Kill switch: halt every pair, cancel orders, flatten everything (then y to confirm)",
        ),
        Binding(
            "p",
            "pause_toggle",
            "Pause",
            id="pair.pause",
            tooltip="Pause the selected pair (no new entries; stops still run), or resume it",
        ),
        Binding(
            "f",
            "flatten",
            "Flatten",
            id="pair.flatten",
            tooltip="Flatten the selected pair's position at market (confirm with y)",
        ),
        Binding(
            "F",
            "flatten_all",
            "Flat all",
            key_display="F",
            id="portfolio.flatten_all",
            tooltip="Flatten every open position at market and stop new entries until E (confirm with y)",
        ),
        Binding(
            "r",
            "rearm",
            "Re-arm",
            id="portfolio.rearm",
            tooltip="Re-arm: each pair back to its mode (confirm with y)",
        ),
        # No description: help and the footer leave it out (docs/keys.md describes it).
        Binding("C", "reload_config", "", key_display="C", show=False, id="config.reload"),
        Binding(
            "P",
            "stop_entries",
            "No entries",
            key_display="P",
            show=False,
            id="portfolio.stop_entries",
            tooltip="Stop new entries on every pair until E",
        ),
        Binding(
            "E",
            "resume_entries",
            "Entries",
            key_display="E",
            show=False,
            id="portfolio.resume_entries",
            tooltip="Resume new entries on every pair (confirm with y)",
        ),
        Binding(
            "question_mark",
            "help",
            "Help",
            key_display="?",
            id="help",
            tooltip="Show every key and the kill switch rules",
        ),
        Binding(
            "t",
            "change_theme",
            "Theme",
            show=False,
            id="theme",
            tooltip="Pick a colour theme (saved in config.toml)",
        ),
        Binding(
            "q",
            "quit",
            "Quit",
            id="quit",
            tooltip="Quit the demo: its engine and feed stop; asks first when positions are open",
        ),
        Binding(
            "S",
            "stop_trading",
            "Stop",
            show=False,
            id="stop",
            tooltip="Stop trading: the daemon stops engine and feed (flattens first when asked)",
        ),
    ]

    def __init__(
        self,
        backend: Backend,
        cfg: SafeList,
        model: ConsoleModel,
        *,
        wall: Callable[[], float],
        log_path: Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings  # config.toml: theme and keymap (the CLI's; tests pass none)
        if getattr(backend, "detaches", False):  # attached to a daemon: q leaves it trading
            self._bindings.key_to_bindings["q"] = [DETACH_BINDING]
        self.backend = backend
        self.cfg = cfg
        self.model = model
        self.wall = wall
        self.log_path = log_path
        self.palette: Palette = DEFAULT_PALETTE
        self.selected_symbol: str | None = model.symbols[0] if model.symbols else None
        pf = cfg.portfolio
        self.caps = RiskCaps(
            pf.max_exposure_usd, pf.max_correlated_positions, pf.correlation_threshold
        )
        self.main = MainScreen(model, backend.mode, self.caps, wall, self._on_select)
        self.frames = 0
        self._frame_timer: Timer | None = None
        self._last_second = -1
        self._binding_state: tuple[Any, ...] | None = None
        self._bindings_refreshed_at = 0.0
        self._kill_in_flight = False
        self._shutting_down = False
        self._backend_stopped = False
        self._stop_lock = asyncio.Lock()
        self._log_handler: logging.Handler | None = None
        self._root_level: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def get_driver_class(self) -> type[Driver]:
        """The platform's driver, writing its colours as changes (console/sgr.py: about a
        third fewer bytes to the terminal, the same picture)."""
        return lean_driver(super().get_driver_class())

    def on_mount(self) -> None:
        self._attach_log_file()
        if self.settings is not None:
            self.settings.apply(self)
        self.palette = Palette.from_variables(self.get_css_variables())
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        self._frame_timer = self.set_interval(1.0 / FRAME_HZ, self._frame, name="repaint")
        self.run_worker(
            self._run_backend(),
            name="backend",
            group="backend",
            exclusive=True,
            description="start the feed, the engine and the bridge; they keep the model fed",
            exit_on_error=False,
        )

    async def on_unmount(self) -> None:
        if self._frame_timer is not None:
            self._frame_timer.stop()
        await self._stop_backend()
        self._detach_log_file()

    async def _run_backend(self) -> None:
        try:
            await self.backend.start(self.model)
            bridge = getattr(self.backend, "bridge", None)
            if bridge is not None:  # a reload applied by anyone: this console follows it
                bridge.on_config = self.on_config_message
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("backend failed to start")
            self.model.add_event(f"backend failed to start: {type(exc).__name__}: {exc}", "error")
            self.notify(f"backend failed to start: {exc}", severity="error", markup=False)

    async def _stop_backend(self) -> None:
        async with self._stop_lock:
            if self._backend_stopped:
                return
            self._backend_stopped = True
            try:
                await asyncio.wait_for(self.backend.stop(), STOP_TIMEOUT_S)
            except Exception:
                log.exception("backend did not stop cleanly")
            self.workers.cancel_group(self, "backend")

    async def shutdown(self) -> None:
        """Orderly exit, the same as ``q`` confirmed: stop engine and feed, then leave.

        Safe to call from a SIGHUP/SIGTERM handler and more than once.
        """
        if self._shutting_down:
            return
        self._shutting_down = True
        detaching = getattr(self.backend, "detaches", False)
        self.model.add_event(
            "detaching: trading goes on" if detaching else "stopping engine and feed…"
        )
        await self._stop_backend()
        self.exit()

    def _attach_log_file(self) -> None:
        if self.log_path is None:
            return
        from feed.private import private_log_handler  # 0600, URLs in every line redacted

        handler, note = private_log_handler(self.log_path)
        root = logging.getLogger()
        root.addHandler(handler)
        if note:
            log.warning("%s", note)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            self._root_level = root.level
            root.setLevel(logging.INFO)
        self._log_handler = handler

    def _detach_log_file(self) -> None:
        if self._log_handler is None:
            return
        root = logging.getLogger()
        root.removeHandler(self._log_handler)
        self._log_handler.close()
        self._log_handler = None
        if self._root_level is not None:
            root.setLevel(self._root_level)
            self._root_level = None

    def _on_theme_changed(self, theme: Theme) -> None:
        problem = self.settings.remember_theme(theme.name) if self.settings else None
        if problem:
            self.notify(problem, severity="warning", markup=False)
        self.palette = Palette.from_variables(self.get_css_variables())
        self.model.dirty.update(self.model.symbols)
        self.model.dirty.update((DIRTY_HEADER, DIRTY_PORTFOLIO, DIRTY_LOG, DIRTY_EVENTS))
        self.model.chart_dirty.update(self.model.symbols)

    # ------------------------------------------------------------------ painting

    def _frame(self) -> None:
        """The one repaint timer: hand what changed to every screen on the stack."""
        if not self.screen_stack:  # the app is closing: the timer may fire once more
            return
        self.frames += 1
        self.offer_reconcile()  # a new report with pairs waiting opens its screen, once
        self.make_toast_room()  # the layout moved under the toasts: console/toasts.py
        m = self.model
        dirty = m.take_dirty()
        charts = m.take_chart_dirty() if self.frames % CHART_EVERY == 0 else None
        second = int(self.wall())
        if second != self._last_second:  # clock, tick ages and heartbeats age without messages
            self._last_second = second
            dirty.add(DIRTY_HEADER)
            dirty.update(m.symbols)
        # A screen may hold work back for a later frame (panes take turns): it says so.
        if dirty or charts or any(getattr(s, "pending", False) for s in self.screen_stack):
            with self.batch_update():
                for screen in self.screen_stack:
                    repaint = getattr(screen, "repaint", None)
                    if repaint is not None:
                        repaint(dirty, charts)
        self._refresh_binding_state()
        watch = getattr(self.backend, "watch", None)  # the pairs in view: their fast state
        if watch is not None and (symbols := self.main.watch_set()) is not None:
            watch(symbols)

    def repaint_now(self) -> None:
        """Paint everything pending at once, charts included (tests and resize)."""
        self.frames = (self.frames // CHART_EVERY + 1) * CHART_EVERY - 1  # next frame draws charts
        self._frame()

    def _refresh_binding_state(self, force: bool = False) -> None:
        """Re-check which keys are enabled; the footer follows.

        Textual recomposes the footer on every refresh (measured: 12 % of the console's CPU with
        100 trading pairs), so changes that come from the market are shown at most twice a
        second; the operator's own actions (selection, acks) show at once. Pressing a key
        always consults ``check_action`` itself, so the throttle never enables a wrong key.
        """
        now = time.monotonic()
        if not force and now - self._bindings_refreshed_at < BINDINGS_REFRESH_S:
            return
        pv = self.selected_view
        state = (
            self.selected_symbol,
            pv.state.mode if pv else None,
            pv.has_position if pv else False,
            bool(self.model.open_positions()),
            self.model.halted,
            self._nothing_to_kill(),
        )
        if state != self._binding_state:
            self._binding_state = state
            self._bindings_refreshed_at = now
            self.refresh_bindings()

    # ------------------------------------------------------------------ selection

    @property
    def selected_view(self) -> PairView | None:
        if self.selected_symbol is None:
            return None
        return self.model.pairs.get(self.selected_symbol)

    def _on_select(self, symbol: str) -> None:
        self.selected_symbol = symbol
        self._refresh_binding_state(force=True)

    def select_symbol(self, symbol: str) -> None:
        if symbol in self.main.panes:
            self.main.select(self.model.symbols.index(symbol))

    def _nothing_to_kill(self) -> bool:
        """Already halted, flat and the engine alive: the kill switch has nothing left to do."""
        m = self.model
        return m.halted and not m.open_positions() and m.children["engine"].state == "running"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Disable (None: shown dimmed in the footer) what has nothing to act on."""
        pv = self.selected_view
        if action == "pause_toggle":
            return True if pv is not None and pv.state.mode in MODE_COMMANDS else None
        if action == "flatten":
            return True if pv is not None and pv.has_position else None
        if action == "flatten_all":
            return True if self.model.open_positions() else None
        if action == "kill":
            return None if self._nothing_to_kill() else True
        if action == "rearm":
            return True if self.model.halted else None
        if action == "open_detail":
            return True if pv is not None else None
        return True


def make_app(
    backend: Backend,
    cfg: SafeList,
    *,
    clock: Callable[[], float] | None = None,
    log_path: Path | None = None,
    settings: Settings | None = None,
) -> MultiparApp:
    """Build the console for ``cfg``'s active pairs, fed by ``backend``.

    ``clock`` (seconds) drives tick and heartbeat ages and the displayed UTC clock; tests pass
    a frozen one. Without it, ages use ``time.monotonic`` and the header shows ``time.time``.
    ``settings`` (``console.settings``, config.toml): the theme and keymap; a changed theme is
    saved there.
    """
    model = ConsoleModel.for_safe_list(cfg, clock=clock or time.monotonic, wall=clock or time.time)
    return MultiparApp(
        backend, cfg, model, wall=clock or time.time, log_path=log_path, settings=settings
    )
